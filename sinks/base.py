"""The storage side of `workerfile sink`: a small interface that materialises the compacted
`worker-files` topic into one relational table, implemented for SQLite (`sinks.sqlite`)
and PostgreSQL (`sinks.postgres`). The Kafka loop is in `sinks.runner`.

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
the employments without end_date), else null.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterable, Mapping

from processors.rows import region_of

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
    return file.get("highest_skill_level"), current_employer, region_of(file)


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


class FileStore(ABC):
    """A database that holds the latest file of every worker, and the sink's offsets.

    `apply` is the one write: a batch of changes and the consumer's next offsets, in one
    transaction, so a crash never applies a record twice or skips one. The readers
    (`get_file`, `get_row`, `rows`, `offsets`) see committed data only.
    """

    kind: str = "?"

    @abstractmethod
    def ensure_schema(self) -> None:
        """Create the tables and indexes if missing (idempotent)."""

    @abstractmethod
    def apply(self, changes: Iterable[FileChange], offsets: Mapping[int, int] | None = None, *,
              group: str = DEFAULT_GROUP, topic: str = TOPIC) -> ApplyResult:
        """In one transaction: every change (version-guarded, see the module doc) and, for
        each partition in `offsets`, the next offset to read (never moved back)."""

    @abstractmethod
    def offsets(self, group: str = DEFAULT_GROUP, topic: str = TOPIC) -> dict[int, int]:
        """The stored next offset of each partition, {} for a new group."""

    @abstractmethod
    def get_row(self, ssn: str) -> dict | None:
        """The row of a worker: ssn, version, document (dict), highest_skill_level,
        current_employer, region, updated_at; None if there is none."""

    @abstractmethod
    def rows(self) -> list[dict]:
        """Every row (as `get_row`), sorted by ssn."""

    @abstractmethod
    def deletions(self) -> dict[str, int]:
        """The remembered tombstones: ssn -> version."""

    @abstractmethod
    def count(self) -> int:
        """Number of rows of worker_files."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

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

    def __enter__(self) -> "FileStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_store(kind: str, db: str | None = None) -> FileStore:
    """A store of `kind` ("sqlite": db is a file path; "postgres": db is a libpq
    connection string or URI, "" for the PG* environment variables), schema ensured."""
    if kind == "sqlite":
        from sinks.sqlite import SqliteStore

        store: FileStore = SqliteStore(db or DEFAULT_SQLITE_PATH)
    elif kind == "postgres":
        from sinks.postgres import PostgresStore

        store = PostgresStore(db or "")
    else:
        raise ValueError(f"unknown sink kind {kind!r} (sqlite or postgres)")
    try:
        store.ensure_schema()
    except BaseException:
        store.close()
        raise
    return store


DEFAULT_SQLITE_PATH = "worker_files.sqlite3"
