"""Throw-away local schema registries for tests and development.

Wraps ``deploy/registry/registry.sh`` (Apicurio Registry from Maven Central, run on
Java 17), like ``streams/local_kafka.py`` wraps the broker.  Each instance has its own
port and data directory::

    with LocalRegistry() as registry:
        os.environ["WORKERFILE_SCHEMA_REGISTRY_URL"] = registry.url

``url`` is the Confluent-compatible API (``/apis/ccompat/v7``), what the Confluent
wire format and Confluent's own serializers talk to.  Standard library only.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from streams.local_server import ScriptServer, free_ports

REGISTRY_SH = Path(__file__).resolve().parents[1] / "deploy" / "registry" / "registry.sh"

class LocalRegistry(ScriptServer):
    """An Apicurio Registry on 127.0.0.1, started and stopped via registry.sh.

    port: a free one when None.  data_dir: pid, log and (storage "file") the H2
    database; when None a temporary directory, deleted by stop().  storage: "mem"
    (default here: nothing kept after stop) or "file" (kept in data_dir across
    restarts).  heap: JVM heap flags (default: registry.sh's, -Xmx256m).  The log is
    data_dir/registry.log.
    """

    NAME = "registry"
    SCRIPT = REGISTRY_SH
    LOG_NAME = "registry.log"
    ENV_PREFIX = "REGISTRY"
    PORT_TAKEN = "not usable"

    def __init__(
        self,
        port: int | None = None,
        data_dir: str | os.PathLike | None = None,
        *,
        storage: str = "mem",
        heap: str | None = None,
        start_timeout: int = 90,
    ):
        self._auto_ports = port is None
        self.port = port or free_ports(1)[0]
        self._temp_dir = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="local-registry-") if data_dir is None else data_dir).resolve()
        self.storage = storage
        self.heap = heap
        self.start_timeout = start_timeout
        self._started = False

    @property
    def url(self) -> str:
        """The Confluent-compatible API, e.g. "http://127.0.0.1:40123/apis/ccompat/v7"."""
        return f"http://127.0.0.1:{self.port}/apis/ccompat/v7"

    @property
    def base_url(self) -> str:
        """The registry's root (its own APIs are under /apis/registry/v2)."""
        return f"http://127.0.0.1:{self.port}"

    def _script_env(self) -> dict[str, str]:
        env = {"REGISTRY_PORT": str(self.port), "REGISTRY_DATA_DIR": str(self.data_dir),
               "REGISTRY_STORAGE": self.storage, "REGISTRY_START_TIMEOUT": str(self.start_timeout)}
        if self.heap is not None:
            env["REGISTRY_HEAP"] = self.heap
        return env

    def __repr__(self) -> str:
        return f"LocalRegistry(url={self.url!r}, data_dir={str(self.data_dir)!r})"
