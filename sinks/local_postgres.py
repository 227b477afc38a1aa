"""Throw-away PostgreSQL servers for tests and development (like streams.local_kafka).

Runs Debian's PostgreSQL binaries (`apt-get install postgresql`; they live in
/usr/lib/postgresql/<version>/bin) with `initdb` and `pg_ctl` on a free port bound to
127.0.0.1, in a temporary directory deleted by stop(). PostgreSQL refuses to run as
root: as root, the server runs as the `postgres` user (`runuser -u postgres --`) in a
directory that user owns. A watchdog stops the server if the process that started it
dies without calling stop()::

    with LocalPostgres() as pg:
        dsn = pg.create_database("sink_test")

Standard library only. The server trades durability for speed (fsync off): test data.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from streams.local_kafka import free_ports

RUN_AS = "postgres"


class PostgresNotInstalled(RuntimeError):
    pass


def find_bin_dir() -> Path:
    """The directory with initdb, pg_ctl and postgres (the newest installed version)."""
    found = shutil.which("initdb")
    if found and (Path(found).resolve().parent / "pg_ctl").exists():
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    raise PostgresNotInstalled("PostgreSQL server binaries (initdb, pg_ctl) not found: "
                               "apt-get install postgresql")


class LocalPostgres:
    """One PostgreSQL server on 127.0.0.1 with trust authentication for user `postgres`."""

    def __init__(self, port: int | None = None, start_timeout: int = 60):
        self.bin_dir = find_bin_dir()
        self._auto_port = port is None
        self.port = port or free_ports(1)[0]
        self.start_timeout = start_timeout
        self.base_dir: Path | None = None
        self._watchdog: subprocess.Popen | None = None

    @property
    def data_dir(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "postgres.log"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname} connect_timeout=10"

    # --- running the binaries as the right user ---------------------------------------

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        runuser = shutil.which("runuser") or next(
            (p for p in ("/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser") if os.path.exists(p)), "runuser")
        return [runuser, "-u", RUN_AS, "--", *argv]

    def _run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self._as_owner(argv), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=self.base_dir)

    def start(self) -> "LocalPostgres":
        self.base_dir = Path(tempfile.mkdtemp(prefix="local-pg-"))
        try:
            self._start()
        except BaseException:
            if self.data_dir.exists():  # a server that started after all must not outlive its directory
                self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "stop"])
            self._cleanup()
            raise
        self._start_watchdog()
        atexit.register(self.stop)
        return self

    def _start(self) -> None:
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(RUN_AS)
            except KeyError:
                raise PostgresNotInstalled(f"no user {RUN_AS!r} to run PostgreSQL as (root cannot): "
                                           "apt-get install postgresql creates it") from None
            os.chown(self.base_dir, owner.pw_uid, owner.pw_gid)
        os.chmod(self.base_dir, 0o700)
        init = self._run([str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                          "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed (exit {init.returncode}):\n{init.stdout}{init.stderr}")
        for attempt in range(3):
            options = (f"-c port={self.port} -c listen_addresses=127.0.0.1 "
                       f"-c unix_socket_directories={self.base_dir} -c fsync=off -c synchronous_commit=off "
                       f"-c full_page_writes=off -c max_connections=40 -c shared_buffers=32MB")
            started = self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                                 "-w", "-t", str(self.start_timeout), "-o", options, "start"],
                                timeout=self.start_timeout + 30)
            if started.returncode == 0:
                break
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            if self._auto_port and "already in use" in log and attempt < 2:
                self.port = free_ports(1)[0]
                continue
            raise RuntimeError(f"PostgreSQL failed to start on 127.0.0.1:{self.port} "
                               f"(exit {started.returncode}):\n{started.stdout}{started.stderr}\n{log[-3000:]}")

    def _start_watchdog(self) -> None:
        """Stops the server and deletes its directory once this process is gone."""
        pg_ctl = " ".join(self._as_owner([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir),
                                          "-m", "immediate", "stop"]))
        script = (f"while [ -d /proc/{os.getpid()} ] && [ -d '{self.data_dir}' ]; do sleep 2; done; "
                  f"[ -d '{self.data_dir}' ] && {{ {pg_ctl} >/dev/null 2>&1; rm -rf '{self.base_dir}'; }}; exit 0")
        self._watchdog = subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True)

    def create_database(self, name: str) -> str:
        """Create database `name` (letters, digits, underscores); returns its DSN."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a plain database name: {name!r}")
        result = self._run([str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                            "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", f'CREATE DATABASE "{name}"'])
        if result.returncode != 0:
            raise RuntimeError(f"CREATE DATABASE {name} failed: {result.stderr}")
        return self.dsn(name)

    def is_running(self) -> bool:
        return (self.base_dir is not None and self.data_dir.exists()
                and self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "status"]).returncode == 0)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory; no-op when stopped."""
        if self.base_dir is None:
            return
        if self.data_dir.exists():
            self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])
        self._cleanup()
        atexit.unregister(self.stop)

    def _cleanup(self) -> None:
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None
        if self._watchdog is not None:
            if self._watchdog.poll() is None:
                self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalPostgres(port={self.port}, base_dir={str(self.base_dir)!r})"
