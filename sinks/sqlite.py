"""The SQLite store (stdlib sqlite3), the embedded default of `workerfile sink`.

`document` is the file as compact JSON text (`CHECK (json_valid(document))`): query it
with SQLite's JSON functions, e.g. `json_extract(document, '$.training_hours')`.
`updated_at` is an RFC 3339 UTC timestamp (text). The database is in WAL mode, so
readers are never blocked by the sink; every batch is one `BEGIN IMMEDIATE`
transaction, so two sinks on the same file take turns.
"""

from __future__ import annotations

import sqlite3
from typing import Iterable, Mapping

import orjson

from sinks.base import (DEFAULT_GROUP, TOPIC, ApplyResult, FileChange, FileStore, indexed_columns,
                        latest_per_worker, utc_now)

SCHEMA = """
CREATE TABLE IF NOT EXISTS worker_files (
    ssn                 TEXT PRIMARY KEY,
    version             INTEGER NOT NULL,
    document            TEXT NOT NULL CHECK (json_valid(document)),
    highest_skill_level TEXT,
    current_employer    TEXT,
    region              TEXT,
    updated_at          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS worker_files_highest_skill_level ON worker_files (highest_skill_level);
CREATE INDEX IF NOT EXISTS worker_files_current_employer ON worker_files (current_employer);
CREATE INDEX IF NOT EXISTS worker_files_region ON worker_files (region);
CREATE TABLE IF NOT EXISTS worker_file_deletions (
    ssn        TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    deleted_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sink_offsets (
    consumer_group  TEXT NOT NULL,
    topic           TEXT NOT NULL,
    kafka_partition INTEGER NOT NULL,
    next_offset     INTEGER NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);
"""

UPSERT = """
INSERT INTO worker_files (ssn, version, document, highest_skill_level, current_employer, region, updated_at)
SELECT :ssn, :version, :document, :highest_skill_level, :current_employer, :region, :now
WHERE NOT EXISTS (SELECT 1 FROM worker_file_deletions d WHERE d.ssn = :ssn AND d.version >= :version)
ON CONFLICT (ssn) DO UPDATE SET
    version = excluded.version, document = excluded.document,
    highest_skill_level = excluded.highest_skill_level, current_employer = excluded.current_employer,
    region = excluded.region, updated_at = excluded.updated_at
WHERE excluded.version > worker_files.version
"""

FORGET_DELETION = "DELETE FROM worker_file_deletions WHERE ssn = :ssn AND version < :version"

REMEMBER_DELETION = """
INSERT INTO worker_file_deletions (ssn, version, deleted_at)
SELECT :ssn, :version, :now
WHERE NOT EXISTS (SELECT 1 FROM worker_files f WHERE f.ssn = :ssn AND f.version > :version)
ON CONFLICT (ssn) DO UPDATE SET version = excluded.version, deleted_at = excluded.deleted_at
WHERE excluded.version > worker_file_deletions.version
"""

DELETE_ROW = "DELETE FROM worker_files WHERE ssn = :ssn AND version < :version"

STORE_OFFSET = """
INSERT INTO sink_offsets (consumer_group, topic, kafka_partition, next_offset, updated_at)
VALUES (:group, :topic, :partition, :offset, :now)
ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE SET
    next_offset = excluded.next_offset, updated_at = excluded.updated_at
WHERE excluded.next_offset > sink_offsets.next_offset
"""

COLUMNS = "ssn, version, document, highest_skill_level, current_employer, region, updated_at"


def connect(path: str, timeout: float = 60.0) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal: readers
    never block the writer. With WAL, synchronous=NORMAL survives a crash of the process
    (kill -9); a power loss may lose the last transactions, rows and offsets together,
    which are then read again."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class SqliteStore(FileStore):
    kind = "sqlite"

    def __init__(self, path: str, timeout: float = 60.0):
        self.path = str(path)
        self.conn = connect(self.path, timeout)

    def ensure_schema(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.conn.execute(statement)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def apply(self, changes: Iterable[FileChange], offsets: Mapping[int, int] | None = None, *,
              group: str = DEFAULT_GROUP, topic: str = TOPIC) -> ApplyResult:
        changes = list(changes)
        latest = latest_per_worker(changes)
        now = utc_now().isoformat(timespec="microseconds")
        files, tombstones = [], []
        for change in latest:
            if change.file is None:
                tombstones.append({"ssn": change.ssn, "version": change.version, "now": now})
                continue
            level, employer, region = indexed_columns(change.file)
            files.append({"ssn": change.ssn, "version": change.version, "now": now,
                          "document": orjson.dumps(change.file).decode(), "highest_skill_level": level,
                          "current_employer": employer, "region": region})
        result = ApplyResult()
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if files:
                result.written = conn.executemany(UPSERT, files).rowcount
                conn.executemany(FORGET_DELETION, files)
            if tombstones:
                conn.executemany(REMEMBER_DELETION, tombstones)
                result.deleted = conn.executemany(DELETE_ROW, tombstones).rowcount
            if offsets:
                conn.executemany(STORE_OFFSET, [{"group": group, "topic": topic, "partition": p, "offset": o,
                                                 "now": now} for p, o in sorted(offsets.items())])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        result.ignored = len(changes) - result.written - result.deleted
        return result

    def offsets(self, group: str = DEFAULT_GROUP, topic: str = TOPIC) -> dict[int, int]:
        rows = self.conn.execute("SELECT kafka_partition, next_offset FROM sink_offsets "
                                 "WHERE consumer_group = ? AND topic = ?", (group, topic)).fetchall()
        return {p: o for p, o in rows}

    @staticmethod
    def _row(values: tuple) -> dict:
        row = dict(zip(COLUMNS.split(", "), values))
        row["document"] = orjson.loads(row["document"])
        return row

    def get_row(self, ssn: str) -> dict | None:
        values = self.conn.execute(f"SELECT {COLUMNS} FROM worker_files WHERE ssn = ?", (ssn,)).fetchone()
        return None if values is None else self._row(values)

    def rows(self) -> list[dict]:
        return [self._row(v) for v in self.conn.execute(f"SELECT {COLUMNS} FROM worker_files ORDER BY ssn")]

    def deletions(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT ssn, version FROM worker_file_deletions").fetchall())

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM worker_files").fetchone()[0]

    def close(self) -> None:
        self.conn.close()
