"""What the throw-away local servers share (streams.local_kafka.LocalKafka,
streams.local_registry.LocalRegistry, sinks.connect.LocalConnect): each is run by a script
of deploy/ (`_run("start" | "stop" | "status")`) with a data dir of its own, stopped at
exit if still running, and its temporary data dir deleted when stopped."""

from __future__ import annotations

import atexit
import shutil
import subprocess
from pathlib import Path


class ScriptServer:
    """Base of a local server; a subclass sets NAME, `data_dir`, `_temp_dir`, `_started`
    (False) and `_run(command)`, and calls `_started_now()` at the end of its start()."""

    NAME = "server"
    data_dir: Path
    _temp_dir: bool
    _started: bool

    def _run(self, command: str) -> subprocess.CompletedProcess:
        raise NotImplementedError

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
