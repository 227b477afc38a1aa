"""The PostgreSQL store (psycopg 3).

`document` is JSONB (query it with `->`, `->>`, `@>`; add a GIN index on it if you need
containment queries), `updated_at` is a timestamptz: the time of the sink's transaction.
Every batch is one transaction that first takes a transaction-level advisory lock, so two
sinks writing the same database take turns (the version guards make that safe; one sink
per database is the normal case).

The connection string is a libpq DSN or URI (`host=... port=... dbname=... user=...`,
`postgresql://user@host:port/db`); an empty one uses the PG* environment variables.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import orjson
import psycopg
from psycopg.types.json import set_json_loads

from sinks.base import (DEFAULT_GROUP, TOPIC, ApplyResult, FileChange, FileStore, indexed_columns,
                        latest_per_worker)

LOCK_KEY = 0x776F726B66696C65  # "workfile": the advisory lock that serialises sink transactions

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS worker_files (
        ssn                 text PRIMARY KEY,
        version             bigint NOT NULL,
        document            jsonb NOT NULL,
        highest_skill_level text,
        current_employer    text,
        region              text,
        updated_at          timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX IF NOT EXISTS worker_files_highest_skill_level ON worker_files (highest_skill_level)",
    "CREATE INDEX IF NOT EXISTS worker_files_current_employer ON worker_files (current_employer)",
    "CREATE INDEX IF NOT EXISTS worker_files_region ON worker_files (region)",
    """CREATE TABLE IF NOT EXISTS worker_file_deletions (
        ssn        text PRIMARY KEY,
        version    bigint NOT NULL,
        deleted_at timestamptz NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS sink_offsets (
        consumer_group  text NOT NULL,
        topic           text NOT NULL,
        kafka_partition integer NOT NULL,
        next_offset     bigint NOT NULL,
        updated_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer_group, topic, kafka_partition)
    )""",
]

UPSERT = """
INSERT INTO worker_files AS f (ssn, version, document, highest_skill_level, current_employer, region, updated_at)
SELECT %(ssn)s, %(version)s, %(document)s::jsonb, %(highest_skill_level)s, %(current_employer)s, %(region)s, now()
WHERE NOT EXISTS (SELECT 1 FROM worker_file_deletions d WHERE d.ssn = %(ssn)s AND d.version >= %(version)s)
ON CONFLICT (ssn) DO UPDATE SET
    version = excluded.version, document = excluded.document,
    highest_skill_level = excluded.highest_skill_level, current_employer = excluded.current_employer,
    region = excluded.region, updated_at = excluded.updated_at
WHERE excluded.version > f.version
"""

FORGET_DELETION = "DELETE FROM worker_file_deletions WHERE ssn = %(ssn)s AND version < %(version)s"

REMEMBER_DELETION = """
INSERT INTO worker_file_deletions AS d (ssn, version, deleted_at)
SELECT %(ssn)s, %(version)s, now()
WHERE NOT EXISTS (SELECT 1 FROM worker_files f WHERE f.ssn = %(ssn)s AND f.version > %(version)s)
ON CONFLICT (ssn) DO UPDATE SET version = excluded.version, deleted_at = excluded.deleted_at
WHERE excluded.version > d.version
"""

DELETE_ROW = "DELETE FROM worker_files WHERE ssn = %(ssn)s AND version < %(version)s"

STORE_OFFSET = """
INSERT INTO sink_offsets AS o (consumer_group, topic, kafka_partition, next_offset, updated_at)
VALUES (%(group)s, %(topic)s, %(partition)s, %(offset)s, now())
ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE SET
    next_offset = excluded.next_offset, updated_at = excluded.updated_at
WHERE excluded.next_offset > o.next_offset
"""

COLUMNS = "ssn, version, document, highest_skill_level, current_employer, region, updated_at"


class PostgresStore(FileStore):
    kind = "postgres"

    def __init__(self, dsn: str = "", connect_timeout: int = 30):
        self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout,
                                    application_name="workerfile-sink")
        set_json_loads(orjson.loads, self.conn)

    def ensure_schema(self) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            for statement in SCHEMA:
                cur.execute(statement)

    def apply(self, changes: Iterable[FileChange], offsets: Mapping[int, int] | None = None, *,
              group: str = DEFAULT_GROUP, topic: str = TOPIC) -> ApplyResult:
        changes = list(changes)
        files, tombstones = [], []
        for change in latest_per_worker(changes):
            if change.file is None:
                tombstones.append({"ssn": change.ssn, "version": change.version})
                continue
            level, employer, region = indexed_columns(change.file)
            files.append({"ssn": change.ssn, "version": change.version,
                          "document": orjson.dumps(change.file).decode(), "highest_skill_level": level,
                          "current_employer": employer, "region": region})
        result = ApplyResult()
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            if files:
                result.written = self._each(cur, UPSERT, files)
                cur.executemany(FORGET_DELETION, files)
            if tombstones:
                cur.executemany(REMEMBER_DELETION, tombstones)
                result.deleted = self._each(cur, DELETE_ROW, tombstones)
            if offsets:
                cur.executemany(STORE_OFFSET, [{"group": group, "topic": topic, "partition": p, "offset": o}
                                               for p, o in sorted(offsets.items())])
        result.ignored = len(changes) - result.written - result.deleted
        return result

    @staticmethod
    def _each(cur: psycopg.Cursor, statement: str, params: list[dict]) -> int:
        """executemany (pipelined), answering the number of rows it changed."""
        cur.executemany(statement, params)
        return max(cur.rowcount, 0)

    def offsets(self, group: str = DEFAULT_GROUP, topic: str = TOPIC) -> dict[int, int]:
        rows = self.conn.execute("SELECT kafka_partition, next_offset FROM sink_offsets "
                                 "WHERE consumer_group = %s AND topic = %s", (group, topic)).fetchall()
        return {p: o for p, o in rows}

    @staticmethod
    def _row(values: tuple) -> dict:
        return dict(zip(COLUMNS.split(", "), values))

    def get_row(self, ssn: str) -> dict | None:
        values = self.conn.execute(f"SELECT {COLUMNS} FROM worker_files WHERE ssn = %s", (ssn,)).fetchone()
        return None if values is None else self._row(values)

    def rows(self) -> list[dict]:
        return [self._row(v) for v in self.conn.execute(f"SELECT {COLUMNS} FROM worker_files ORDER BY ssn COLLATE \"C\"")]

    def deletions(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT ssn, version FROM worker_file_deletions").fetchall())

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM worker_files").fetchone()[0]

    def close(self) -> None:
        self.conn.close()
