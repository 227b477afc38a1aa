"""What the throw-away local servers share (streams.local_kafka.LocalKafka,
streams.local_registry.LocalRegistry, sinks.connect.LocalConnect): each is run by a script
of deploy/ (`_run("start" | "stop" | "status" | "kill")`, with this process's environment
and the server's own variables) with a data dir of its own, started again on other ports
when an auto-picked one was taken meanwhile, stopped at exit if still running, and its
temporary data dir deleted when stopped."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
from pathlib import Path

COMMAND_TIMEOUT = 900  # seconds: generous, the first start may run Maven to fetch the jars


def free_ports(count: int = 1, host: str = "127.0.0.1") -> list[int]:
    """Return `count` distinct TCP ports that are currently free on `host`."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class ScriptServer:
    """Base of a local server. A subclass sets NAME, SCRIPT (its deploy/ script), ENV_PREFIX,
    PORT_TAKEN (what the script prints when a port is in use), LOG_NAME, `port`,
    `data_dir`, `_temp_dir`, `_auto_ports` (its ports were picked here), `_started`
    (False), and implements `_script_env()` (the script's variables)."""

    NAME = "server"
    SCRIPT: Path
    ENV_PREFIX = "SERVER"  # of the script's variables (KAFKA_PORT, ...)
    PORT_TAKEN = "Address already in use"
    data_dir: Path
    _temp_dir: bool
    _auto_ports: bool
    _started: bool

    LOG_NAME = "server.log"  # in data_dir: the server's stdout and stderr
    port: int

    @property
    def address(self) -> str:
        """Where it answers, for messages: its URL (LocalKafka: its bootstrap)."""
        return self.url  # type: ignore[attr-defined]

    @property
    def log_file(self) -> Path:
        return self.data_dir / self.LOG_NAME

    def _script_env(self) -> dict[str, str]:
        raise NotImplementedError

    def _pick_ports(self) -> None:
        """Pick free ports again (LocalKafka has two)."""
        self.port = free_ports(1)[0]

    def _run(self, command: str) -> subprocess.CompletedProcess:
        env = {**os.environ, **self._script_env(),
               # the script stops the server if this process dies without stop()
               f"{self.ENV_PREFIX}_OWNER_PID": str(os.getpid())}
        return subprocess.run(["bash", str(self.SCRIPT), command], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT)

    def start(self):
        """Start the server and wait until it answers (the script waits); returns self."""
        for attempt in range(3):
            result = self._run("start")
            if result.returncode == 0:
                break
            # an auto-picked port may have been taken meanwhile: pick again
            if self._auto_ports and self.PORT_TAKEN in result.stderr and attempt < 2:
                self._pick_ports()
                continue
            raise RuntimeError(f"local {self.NAME} failed to start on {self.address} "
                               f"(exit {result.returncode}):\n{result.stdout}{result.stderr}")
        self._started_now()
        return self

    def _started_now(self) -> None:
        if not self._started:
            self._started = True
            atexit.register(self.stop)

    def stop(self) -> None:
        """Stop the server (no-op if not running); delete a temporary data dir."""
        if self.data_dir.exists():
            result = self._run("stop")
            if result.returncode != 0:
                raise RuntimeError(f"local {self.NAME} stop failed:\n{result.stdout}{result.stderr}")
        if self._temp_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        if self._started:
            self._started = False
            atexit.unregister(self.stop)

    def is_running(self) -> bool:
        return self.data_dir.exists() and self._run("status").returncode == 0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
