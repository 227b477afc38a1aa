"""Throw-away single-node Kafka brokers for tests and development.

Wraps ``deploy/kafka/kafka.sh`` (a real Apache Kafka broker in KRaft mode, run
from jars fetched by Maven).  Each instance has its own ports and data
directory, so several brokers can run side by side::

    with LocalKafka() as kafka:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)

Standard library only.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from streams.local_server import ScriptServer, free_ports  # noqa: F401 - free_ports is imported from here too

KAFKA_SH = Path(__file__).resolve().parents[1] / "deploy" / "kafka" / "kafka.sh"

class LocalKafka(ScriptServer):
    """A single-node Kafka broker on 127.0.0.1, started and stopped via kafka.sh.

    port, controller_port: picked among free ports when None.  data_dir:
    broker state, kept; when None a temporary directory, deleted by stop().
    extra_config: extra server.properties lines.  heap: JVM heap flags
    (default: kafka.sh's).  env: further kafka.sh environment variables, e.g.
    KAFKA_LISTENER_PROTOCOL, KAFKA_ADD_SCRAM, KAFKA_CLIENT_CONFIG for a secured
    broker (deploy/security/).  The log is in data_dir/kafka.log.
    """

    NAME = "Kafka"
    SCRIPT = KAFKA_SH
    LOG_NAME = "kafka.log"
    ENV_PREFIX = "KAFKA"

    def __init__(
        self,
        port: int | None = None,
        data_dir: str | os.PathLike | None = None,
        *,
        controller_port: int | None = None,
        extra_config: str | None = None,
        heap: str | None = None,
        start_timeout: int = 60,
        env: dict[str, str] | None = None,
    ):
        self._auto_ports = port is None and controller_port is None
        self._pick_ports(port, controller_port)
        self._temp_dir = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="local-kafka-") if data_dir is None else data_dir).resolve()
        self.extra_config = extra_config
        self.heap = heap
        self.start_timeout = start_timeout
        self.env = dict(env or {})
        self._started = False

    def _pick_ports(self, port=None, controller_port=None):
        candidates = [p for p in free_ports(3) if p not in (port, controller_port)]
        self.port = port or candidates.pop(0)
        self.controller_port = controller_port or candidates.pop(0)

    @property
    def bootstrap(self) -> str:
        """Bootstrap servers string for clients, e.g. "127.0.0.1:40123"."""
        return f"127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return self.bootstrap

    def _script_env(self) -> dict[str, str]:
        env = {**self.env, "KAFKA_PORT": str(self.port), "KAFKA_CONTROLLER_PORT": str(self.controller_port),
               "KAFKA_DATA_DIR": str(self.data_dir), "KAFKA_START_TIMEOUT": str(self.start_timeout)}
        if self.extra_config is not None:
            env["KAFKA_EXTRA_CONFIG"] = self.extra_config
        if self.heap is not None:
            env["KAFKA_HEAP"] = self.heap
        return env

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would (no-op if not running); the data dir stays,
        so start() brings the same node back."""
        if self.data_dir.exists():
            result = self._run("kill")
            if result.returncode != 0:
                raise RuntimeError(f"local Kafka kill failed:\n{result.stdout}{result.stderr}")

    def __repr__(self) -> str:
        return f"LocalKafka(bootstrap={self.bootstrap!r}, data_dir={str(self.data_dir)!r})"
