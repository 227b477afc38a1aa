"""The storage side of `workerfile sink`: `FileStore` materialises the compacted
`worker-files` topic into one relational table, written once for SQLite and PostgreSQL
on a `sinks.datastore.Datastore` (the connection, transactions and dialect of each
database: `sinks.sqlite`, `sinks.postgres`). `Store` is what it shares with the
statistics store (`sinks.stats`): the database, the tables, the consumer's offsets and
`Store.open`. The Kafka loop is in `sinks.runner`.

Tables (the same in both databases):

    worker_files(ssn PRIMARY KEY, version, document, highest_skill_level,
                 current_employer, region, updated_at)
        one row per worker whose latest record on `worker-files` is a file;
        indexes on highest_skill_level, current_employer and region.
    worker_file_deletions(ssn PRIMARY KEY, version, deleted_at)
        the version of the latest tombstone of a worker without a row, so that an older
        file (a re-delivery, a replay with another group) cannot bring the row back.
    sink_offsets(consumer_group, topic, kafka_partition, next_offset, updated_at)
        the consumer's position, written in the same transaction as the rows.

**Version rule.** A tombstone carries nothing, and a file of schema releases 1 and 2 no
version (from release 3 a file carries the version of its change event, kept in
`document`; a replay under a new application id starts those again at 1). A worker's
records always land in the same partition (the key is the SSN), and a later offset in a
partition is a newer file, so `version` = the record's offset in its partition. Every
write is guarded by it:
- a file is written only if its version is greater than the row's and than the
  worker's last tombstone (`ON CONFLICT (ssn) DO UPDATE ... WHERE excluded.version >
  worker_files.version`): applying a record twice, or an older record after a newer
  one, changes nothing;
- a tombstone deletes the row only if the row is older than the tombstone, and is then
  remembered in `worker_file_deletions`;
- offsets only move forward.
Offsets of different partitions cannot be compared: if `worker-files` is ever
repartitioned or recreated, rebuild the table (a fresh database).

**Derived columns.** `highest_skill_level` is the file's; `current_employer` is the first
of `current_employers` (they are sorted), or null; `region` is the region of the card,
else the region of the latest open employment (greatest (start_date, employer) among
the employments without end_date), else null (`processors.stats.worker_region`, the one
rule, which the statistics count by too).
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterable, Mapping, Self

import orjson

from processors.stats import worker_region
from sinks.datastore import KINDS, Datastore, connect

TOPIC = "worker-files"
DEFAULT_GROUP = "workerfile-sink"


@dataclass(frozen=True)
class FileChange:
    """One record of `worker-files` as the table sees it: the worker's file at `version`,
    or its removal (`file` None, a tombstone)."""

    ssn: str
    version: int
    file: dict | None

    @property
    def is_tombstone(self) -> bool:
        return self.file is None


@dataclass
class ApplyResult:
    """What one transaction did: rows written (inserted or replaced), rows deleted, and
    changes that were older than what the table holds (or tombstones of absent rows)."""

    written: int = 0
    deleted: int = 0
    ignored: int = 0

    def add(self, other: "ApplyResult") -> None:
        self.written += other.written
        self.deleted += other.deleted
        self.ignored += other.ignored


def indexed_columns(file: dict) -> tuple[str | None, str | None, str | None]:
    """(highest_skill_level, current_employer, region) of a file (see the module doc)."""
    employers = file.get("current_employers") or []
    current_employer = employers[0] if employers else None
    return file.get("highest_skill_level"), current_employer, worker_region(file)


def latest_per_worker(changes: Iterable[FileChange]) -> list[FileChange]:
    """The newest change of each worker (greatest version). Applying only these gives the
    same table as applying all of them in order, since every write is version-guarded."""
    latest: dict[str, FileChange] = {}
    for change in changes:
        seen = latest.get(change.ssn)
        if seen is None or change.version > seen.version:
            latest[change.ssn] = change
    return list(latest.values())


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# --- the tables, written once for both databases (sinks.datastore: the dialect's fields) ---------

OFFSETS_TABLE = """CREATE TABLE IF NOT EXISTS sink_offsets (
    consumer_group  TEXT NOT NULL,
    topic           TEXT NOT NULL,
    kafka_partition INTEGER NOT NULL,
    next_offset     {big_integer} NOT NULL,
    updated_at      {timestamp_column},
    PRIMARY KEY (consumer_group, topic, kafka_partition)
)"""

FILE_TABLES = (
    """CREATE TABLE IF NOT EXISTS worker_files (
    ssn                 TEXT PRIMARY KEY,
    version             {big_integer} NOT NULL,
    document            {json_column:document},
    highest_skill_level TEXT,
    current_employer    TEXT,
    region              TEXT,
    updated_at          {timestamp_column}
)""",
    "CREATE INDEX IF NOT EXISTS worker_files_highest_skill_level ON worker_files (highest_skill_level)",
    "CREATE INDEX IF NOT EXISTS worker_files_current_employer ON worker_files (current_employer)",
    "CREATE INDEX IF NOT EXISTS worker_files_region ON worker_files (region)",
    """CREATE TABLE IF NOT EXISTS worker_file_deletions (
    ssn        TEXT PRIMARY KEY,
    version    {big_integer} NOT NULL,
    deleted_at {timestamp_column}
)""",
    OFFSETS_TABLE,
)

STORE_OFFSET = """
INSERT INTO sink_offsets (consumer_group, topic, kafka_partition, next_offset, updated_at)
VALUES (:group, :topic, :partition, :offset, {now})
ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE SET
    next_offset = excluded.next_offset, updated_at = excluded.updated_at
WHERE excluded.next_offset > sink_offsets.next_offset
"""

UPSERT = """
INSERT INTO worker_files (ssn, version, document, highest_skill_level, current_employer, region, updated_at)
SELECT :ssn, :version, {json_value:document}, :highest_skill_level, :current_employer, :region, {now}
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
SELECT :ssn, :version, {now}
WHERE NOT EXISTS (SELECT 1 FROM worker_files f WHERE f.ssn = :ssn AND f.version > :version)
ON CONFLICT (ssn) DO UPDATE SET version = excluded.version, deleted_at = excluded.deleted_at
WHERE excluded.version > worker_file_deletions.version
"""

DELETE_ROW = "DELETE FROM worker_files WHERE ssn = :ssn AND version < :version"

COLUMNS = ("ssn", "version", "document", "highest_skill_level", "current_employer", "region", "updated_at")


class Store(ABC):
    """What the stores of `sinks/` share: a database (`sinks.datastore`), tables created
    if missing, and the consumer's offsets in `sink_offsets`, written by `apply` in the
    same transaction as the data they advanced. `Store.open` is the one way to open a
    store of either database; `sinks.runner` feeds any store."""

    what = "store"  # in the error of an unknown database kind
    default_group: str
    sqlite_path: str  # the default file of the SQLite database
    application_name: str  # PostgreSQL: the connection's name (pg_stat_activity)
    lock_key: int  # PostgreSQL: the advisory lock that serialises this store's write transactions
    tables: tuple[str, ...]  # the DDL, with the dialect's fields

    def __init__(self, db: Datastore):
        self.db = db

    @classmethod
    def open(cls, kind: str, db: str | None = None) -> Self:
        """A store of `kind` ("sqlite": db is a file path, default `sqlite_path`;
        "postgres": db is a libpq connection string or URI, "" for the PG* environment
        variables), schema ensured."""
        if kind not in KINDS:
            raise ValueError(f"unknown {cls.what} kind {kind!r} (sqlite or postgres)")
        store = cls(connect(kind, db, sqlite_path=cls.sqlite_path, application_name=cls.application_name,
                            lock_key=cls.lock_key))
        try:
            store.ensure_schema()
        except BaseException:
            store.close()
            raise
        return store

    @property
    def kind(self) -> str:
        return self.db.kind

    @property
    def conn(self):
        """The driver's connection (sqlite3 or psycopg), for queries of your own."""
        return self.db.conn

    def ensure_schema(self) -> None:
        """Create the tables and indexes if missing (idempotent)."""
        with self.db.transaction():
            self._create_tables()

    def _create_tables(self) -> None:
        for statement in self.tables:
            self.db.execute(statement)

    @abstractmethod
    def apply(self, changes: Iterable[FileChange], offsets: Mapping[int, int] | None = None, *,
              group: str | None = None, topic: str = TOPIC) -> ApplyResult:
        """In one transaction: every change (version-guarded) and, for each partition in
        `offsets`, the next offset to read (never moved back)."""

    def offsets(self, group: str | None = None, topic: str = TOPIC) -> dict[int, int]:
        """The stored next offset of each partition, {} for a new group."""
        rows = self.db.execute("SELECT kafka_partition, next_offset FROM sink_offsets "
                               "WHERE consumer_group = :group AND topic = :topic",
                               {"group": self.default_group if group is None else group, "topic": topic})
        return {p: o for p, o in rows}

    def _store_offsets(self, offsets: Mapping[int, int], group: str | None, topic: str, now: str) -> None:
        """Within the open transaction: the next offset of each partition, never moved back."""
        group = self.default_group if group is None else group
        self.db.executemany(STORE_OFFSET, [{"group": group, "topic": topic, "partition": p, "offset": o, "now": now}
                                           for p, o in sorted(offsets.items())])

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FileStore(Store):
    """A database that holds the latest file of every worker, and the sink's offsets.

    `apply` is the one write: a batch of changes and the consumer's next offsets, in one
    transaction, so a crash never applies a record twice or skips one. The readers
    (`get_file`, `get_row`, `rows`, `offsets`) see committed data only.
    """

    what = "sink"
    default_group = DEFAULT_GROUP
    sqlite_path = "worker_files.sqlite3"
    application_name = "workerfile-sink"
    lock_key = 0x776F726B66696C65  # "workfile"
    tables = FILE_TABLES

    def apply(self, changes: Iterable[FileChange], offsets: Mapping[int, int] | None = None, *,
              group: str | None = None, topic: str = TOPIC) -> ApplyResult:
        """In one transaction: every change (version-guarded, see the module doc) and, for
        each partition in `offsets`, the next offset to read (never moved back)."""
        changes = list(changes)
        now = utc_now().isoformat(timespec="microseconds")  # SQLite's timestamps; PostgreSQL: now()
        files, tombstones = [], []
        for change in latest_per_worker(changes):
            if change.file is None:
                tombstones.append({"ssn": change.ssn, "version": change.version, "now": now})
                continue
            level, employer, region = indexed_columns(change.file)
            files.append({"ssn": change.ssn, "version": change.version, "now": now,
                          "document": orjson.dumps(change.file).decode(), "highest_skill_level": level,
                          "current_employer": employer, "region": region})
        result = ApplyResult()
        db = self.db
        with db.transaction():
            if files:
                result.written = db.executemany(UPSERT, files)
                db.executemany(FORGET_DELETION, files)
            if tombstones:
                db.executemany(REMEMBER_DELETION, tombstones)
                result.deleted = db.executemany(DELETE_ROW, tombstones)
            if offsets:
                self._store_offsets(offsets, group, topic, now)
        result.ignored = len(changes) - result.written - result.deleted
        return result

    def _row(self, values: tuple) -> dict:
        row = dict(zip(COLUMNS, values))
        row["document"] = self.db.load_json(row["document"])
        return row

    def get_row(self, ssn: str) -> dict | None:
        """The row of a worker: ssn, version, document (dict), highest_skill_level,
        current_employer, region, updated_at; None if there is none."""
        found = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM worker_files WHERE ssn = :ssn", {"ssn": ssn})
        return self._row(found[0]) if found else None

    def rows(self) -> list[dict]:
        """Every row (as `get_row`), sorted by ssn."""
        return [self._row(v) for v in self.db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM worker_files ORDER BY ssn {{bytewise}}")]

    def deletions(self) -> dict[str, int]:
        """The remembered tombstones: ssn -> version."""
        return dict(self.db.execute("SELECT ssn, version FROM worker_file_deletions"))

    def count(self) -> int:
        """Number of rows of worker_files."""
        return self.db.execute("SELECT count(*) FROM worker_files")[0][0]

    def get_file(self, ssn: str) -> dict | None:
        """The latest file of a worker as the table holds it, or None."""
        row = self.get_row(ssn)
        return None if row is None else row["document"]

    def upsert(self, ssn: str, version: int, file: dict) -> bool:
        """Write one file in its own transaction; False when the table holds a newer version."""
        return self.apply([FileChange(ssn, version, file)]).written == 1

    def delete(self, ssn: str, version: int) -> bool:
        """Apply one tombstone in its own transaction; False when there was no older row."""
        return self.apply([FileChange(ssn, version, None)]).deleted == 1


def open_store(kind: str, db: str | None = None) -> FileStore:
    """A store of `kind` ("sqlite": db is a file path; "postgres": db is a libpq
    connection string or URI, "" for the PG* environment variables), schema ensured."""
    return FileStore.open(kind, db)


DEFAULT_SQLITE_PATH = FileStore.sqlite_path
