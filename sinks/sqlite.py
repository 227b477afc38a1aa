"""SQLite (stdlib sqlite3), the embedded default of `workerfile sink` and `workerfile stats`.

`document` is the file as compact JSON text (`CHECK (json_valid(document))`): query it
with SQLite's JSON functions, e.g. `json_extract(document, '$.training_hours')`.
Timestamps (`updated_at`, `deleted_at`) are RFC 3339 UTC text. The database is in WAL
mode, so readers (the dashboard, a BI tool) are never blocked by a writer; every write
transaction is `BEGIN IMMEDIATE`, so two writers on the same file take turns.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any, Iterator, Mapping, Sequence

import orjson

from sinks.datastore import SQLITE, Datastore


def connect(path: str, timeout: float = 60.0) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal: readers
    never block the writer. With WAL, synchronous=NORMAL survives a crash of the process
    (kill -9); a power loss may lose the last transactions, rows and offsets together,
    which are then read again."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class SqliteDatastore(Datastore):
    kind = "sqlite"
    dialect = SQLITE

    def __init__(self, path: str, timeout: float = 60.0):
        self.path = str(path)
        self.conn = connect(self.path, timeout)

    @contextlib.contextmanager
    def transaction(self, read_only: bool = False) -> Iterator[None]:
        self.conn.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def execute(self, statement: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        return self.conn.execute(self.dialect.sql(statement), params or ()).fetchall()

    def executemany(self, statement: str, params: Sequence[Mapping[str, Any]]) -> int:
        return self.conn.executemany(self.dialect.sql(statement), params).rowcount

    def load_json(self, value: Any) -> Any:
        return orjson.loads(value)
