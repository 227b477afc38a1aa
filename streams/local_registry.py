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
import subprocess
import tempfile
from pathlib import Path

from streams.local_kafka import free_ports
from streams.local_server import ScriptServer

REGISTRY_SH = Path(__file__).resolve().parents[1] / "deploy" / "registry" / "registry.sh"

# Generous: the first start may run Maven to fetch the registry (~140 MB).
_COMMAND_TIMEOUT = 900


class LocalRegistry(ScriptServer):
    """An Apicurio Registry on 127.0.0.1, started and stopped via registry.sh.

    port: a free one when None.  data_dir: pid, log and (storage "file") the H2
    database; when None a temporary directory, deleted by stop().  storage: "mem"
    (default here: nothing kept after stop) or "file" (kept in data_dir across
    restarts).  heap: JVM heap flags (default: registry.sh's, -Xmx256m).  The log is
    data_dir/registry.log.
    """

    NAME = "registry"

    def __init__(
        self,
        port: int | None = None,
        data_dir: str | os.PathLike | None = None,
        *,
        storage: str = "mem",
        heap: str | None = None,
        start_timeout: int = 90,
    ):
        self._auto_port = port is None
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

    @property
    def log_file(self) -> Path:
        return self.data_dir / "registry.log"

    def _run(self, command: str) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env.update(
            REGISTRY_PORT=str(self.port),
            REGISTRY_DATA_DIR=str(self.data_dir),
            REGISTRY_STORAGE=self.storage,
            REGISTRY_START_TIMEOUT=str(self.start_timeout),
            # registry.sh stops the registry if this process dies without stop().
            REGISTRY_OWNER_PID=str(os.getpid()),
        )
        if self.heap is not None:
            env["REGISTRY_HEAP"] = self.heap
        return subprocess.run(
            ["bash", str(REGISTRY_SH), command],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT,
        )

    def start(self) -> "LocalRegistry":
        """Start the registry and wait until its ccompat API answers; returns self."""
        for attempt in range(3):
            result = self._run("start")
            if result.returncode == 0:
                break
            if self._auto_port and "not usable" in result.stderr and attempt < 2:
                self.port = free_ports(1)[0]
                continue
            raise RuntimeError(
                f"local registry failed to start on {self.url} "
                f"(exit {result.returncode}):\n{result.stdout}{result.stderr}"
            )
        self._started_now()
        return self

    def __repr__(self) -> str:
        return f"LocalRegistry(url={self.url!r}, data_dir={str(self.data_dir)!r})"
