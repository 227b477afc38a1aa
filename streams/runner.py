"""Running a stream worker as a child process (`workerfile worker`): for the demo, the
benchmarks and the reliability tests, which stop it gently or kill it with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


class WorkerProcess:
    """One `workerfile worker` process with its own data directory and log file."""

    def __init__(self, bootstrap: str, app_id: str, data_dir: str | os.PathLike, partitions: int = 4,
                 loglevel: str | None = None, log_path: str | os.PathLike | None = None, web_port: int = 0,
                 env: dict[str, str] | None = None):
        self.bootstrap = bootstrap
        self.app_id = app_id
        self.data_dir = Path(data_dir)
        self.partitions = partitions
        # the tests' WORKERFILE_TEST_LOGLEVEL (read here, not at import): more of the log when chasing a failure
        self.loglevel = loglevel or os.environ.get("WORKERFILE_TEST_LOGLEVEL", "warning")
        self.log_path = Path(log_path) if log_path else self.data_dir / "worker.log"
        self.web_port = web_port
        self.env = env  # extra environment, e.g. WORKERFILE_API_TOKENS, WORKERFILE_PSEUDONYM_KEY_FILE
        self.proc: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        cmd = [sys.executable, "-m", "workerfile.cli", "worker", "--broker", self.bootstrap,
               "--app-id", self.app_id, "--data-dir", str(self.data_dir),
               "--partitions", str(self.partitions), "--loglevel", self.loglevel,
               "--web-port", str(self.web_port)]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env={**os.environ, **(self.env or {})})
        log.close()
        return self

    @property
    def base_url(self) -> str:
        """Where its HTTP API answers (when started with a web port)."""
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush — a crash."""
        if self.running:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM and wait; SIGKILL if it does not stop in time."""
        if not self.running:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> "WorkerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(condition, timeout: float, interval: float = 1.0, what: str = "condition"):
    """Poll `condition()` until it returns a truthy value; raise TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached in {timeout} s")
