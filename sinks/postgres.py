"""PostgreSQL (psycopg 3).

`document` is JSONB (query it with `->`, `->>`, `@>`; add a GIN index on it if you need
containment queries); `updated_at` and `deleted_at` are timestamptz: the time of the
writing transaction. Every write transaction first takes a transaction-level advisory
lock (one key per store), so two writers on the same database take turns (the version
guards make that safe; one writer per database is the normal case).

The connection string is a libpq DSN or URI (`host=... port=... dbname=... user=...`,
`postgresql://user@host:port/db`); an empty one uses the PG* environment variables.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping, Sequence

import orjson
import psycopg
from psycopg.types.json import set_json_loads

from sinks.datastore import POSTGRES, Datastore


class PostgresDatastore(Datastore):
    kind = "postgres"
    dialect = POSTGRES

    def __init__(self, dsn: str = "", *, application_name: str, lock_key: int, connect_timeout: int = 30):
        self.lock_key = lock_key
        self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout,
                                    application_name=application_name)
        set_json_loads(orjson.loads, self.conn)

    @contextlib.contextmanager
    def transaction(self, read_only: bool = False) -> Iterator[None]:
        with self.conn.transaction():  # BEGIN, then COMMIT or ROLLBACK
            if read_only:
                self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            else:
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))
            yield

    def execute(self, statement: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(self.dialect.sql(statement), params or None)
            return cur.fetchall() if cur.description else []

    def executemany(self, statement: str, params: Sequence[Mapping[str, Any]]) -> int:
        with self.conn.cursor() as cur:
            cur.executemany(self.dialect.sql(statement), params)
            return max(cur.rowcount, 0)
