"""One relational database as the stores of `sinks/` use it: a connection, a transaction
context, `execute`/`executemany`, and the dialect — everything that differs between
SQLite (`sinks.sqlite`) and PostgreSQL (`sinks.postgres`) is here or in those two
modules, nowhere else. The file sink's store (`sinks.base.FileStore`) and the statistics
store (`sinks.stats.StatsStore`) are each written once on top of it.

Statements are written once, with `:name` placeholders (SQLite's own; rewritten to
`%(name)s` for psycopg) and, in braces, the fields of the dialect (`DIALECT_FIELDS`
below) where the databases differ: `{now}`, `{json_column:document}`. Pass literal
values with `%` or `:word` in them as parameters, not in the statement's text.

The upserts are the same in both (`INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE`,
the existing row named by its table, the new one `excluded`).

A transaction (`with db.transaction():`) is all or nothing: a write transaction is
`BEGIN IMMEDIATE` in SQLite (two writers on one file take turns) and `BEGIN` plus a
transaction-level advisory lock (the store's `lock_key`) in PostgreSQL; a read-only one
(`transaction(read_only=True)`) is one consistent snapshot that takes no write lock.
Outside a transaction every statement commits on its own (autocommit).
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ContextManager, Mapping, Sequence

KINDS = ("sqlite", "postgres")


@dataclass(frozen=True)
class Dialect:
    """Where the SQL of the two databases differs (`DIALECT_FIELDS`). A statement names
    these fields in braces, `{now}`, or with an argument, `{json_column:document}`."""

    name: str
    big_integer: str
    json_column: str
    json_value: str
    timestamp_column: str
    now: str
    bytewise: str
    named_placeholders: bool

    def sql(self, statement: str) -> str:
        """The statement for this database: the dialect's fields filled in, the `:name`
        placeholders in its parameter style."""
        return _render(self, statement)

    def _field(self, match: re.Match) -> str:
        value = getattr(self, match.group(1))
        return value.format(match.group(2)) if match.group(2) else value


DIALECT_FIELDS = {  # field: (SQLite, PostgreSQL); "{}" is the argument ({json_column:document})
    # DDL: a 64-bit integer column
    "big_integer": ("INTEGER", "bigint"),
    # DDL: a column holding a JSON document
    "json_column": ("TEXT NOT NULL CHECK (json_valid({}))", "jsonb NOT NULL"),
    # a parameter (its name) as the value of such a column
    "json_value": (":{}", ":{}::jsonb"),
    # DDL: when the row was written (SQLite: RFC 3339 UTC text)
    "timestamp_column": ("TEXT NOT NULL", "timestamptz NOT NULL DEFAULT now()"),
    # the value of such a column: the text the store passes as :now, or the transaction's time
    "now": (":now", "now()"),
    # the collation that sorts strings by their bytes (ORDER BY ssn {bytewise})
    "bytewise": ("COLLATE BINARY", 'COLLATE "C"'),
    # placeholders: `:name` as is (sqlite3), or rewritten to `%(name)s` (psycopg)
    "named_placeholders": (True, False),
}
SQLITE = Dialect("sqlite", **{field: values[0] for field, values in DIALECT_FIELDS.items()})
POSTGRES = Dialect("postgres", **{field: values[1] for field, values in DIALECT_FIELDS.items()})

_FIELD = re.compile(r"\{(%s)(?::([A-Za-z_]+))?\}" % "|".join(f for f in DIALECT_FIELDS if f != "named_placeholders"))
_NAMED = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")


@functools.lru_cache(maxsize=1024)
def _render(dialect: Dialect, statement: str) -> str:
    statement = _FIELD.sub(dialect._field, statement)
    return statement if dialect.named_placeholders else _NAMED.sub(r"%(\1)s", statement)


class Datastore(ABC):
    """A connection to one database, in autocommit mode (transactions are explicit)."""

    kind: str = "?"
    dialect: Dialect
    conn: Any  # the driver's connection (sqlite3.Connection, psycopg.Connection)

    @abstractmethod
    def transaction(self, read_only: bool = False) -> ContextManager[None]:
        """One transaction around a `with` block: committed when the block ends, rolled
        back when it raises (and the error raised again). A write transaction waits for
        the other writers of the database; a `read_only` one is one consistent snapshot
        and blocks no writer."""

    @abstractmethod
    def execute(self, statement: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        """Run one statement (`:name` placeholders); its rows (none for a write)."""

    @abstractmethod
    def executemany(self, statement: str, params: Sequence[Mapping[str, Any]]) -> int:
        """Run a statement once per parameter set; the number of rows it changed."""

    def load_json(self, value: Any) -> Any:
        """A value read from a `json_column` as Python (a dict for a document)."""
        return value

    def close(self) -> None:
        self.conn.close()


def connect(kind: str, db: str | None, *, sqlite_path: str, application_name: str, lock_key: int) -> Datastore:
    """A datastore of `kind`: "sqlite" (db: a file path, default `sqlite_path`) or
    "postgres" (db: a libpq connection string or URI, "" or None for the PG* environment
    variables; `application_name` as the server shows it, `lock_key` the advisory lock of
    its write transactions)."""
    if kind == "sqlite":
        from sinks.sqlite import SqliteDatastore

        return SqliteDatastore(db or sqlite_path)
    if kind == "postgres":
        from sinks.postgres import PostgresDatastore

        return PostgresDatastore(db or "", application_name=application_name, lock_key=lock_key)
    raise ValueError(f"unknown database kind {kind!r} (sqlite or postgres)")
