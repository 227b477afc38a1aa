"""The datastores (sinks.datastore: one per database) against a real SQLite file and a real
PostgreSQL server: a transaction is all or nothing, a read-only one is one snapshot, the
dialect's statements run in both; and the stores written on them create exactly the
tables the stores of the previous release created (users have those databases), and use
such a database as it is."""

from __future__ import annotations

import itertools
import os
import sqlite3

import psycopg
import pytest

from sinks.base import FileChange, open_store
from sinks.datastore import connect
from sinks.stats import open_stats_store

# What the stores of the release before sinks/datastore.py created, verbatim: the sink's
# tables (sinks/sqlite.py, sinks/postgres.py) and the statistics' (sinks/stats.py, the
# same text in both databases).
PREVIOUS_SQLITE = """
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

PREVIOUS_POSTGRES = """
CREATE TABLE IF NOT EXISTS worker_files (
    ssn                 text PRIMARY KEY,
    version             bigint NOT NULL,
    document            jsonb NOT NULL,
    highest_skill_level text,
    current_employer    text,
    region              text,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS worker_files_highest_skill_level ON worker_files (highest_skill_level);
CREATE INDEX IF NOT EXISTS worker_files_current_employer ON worker_files (current_employer);
CREATE INDEX IF NOT EXISTS worker_files_region ON worker_files (region);
CREATE TABLE IF NOT EXISTS worker_file_deletions (
    ssn        text PRIMARY KEY,
    version    bigint NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS sink_offsets (
    consumer_group  text NOT NULL,
    topic           text NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset     bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);
"""

PREVIOUS_STATS = """
CREATE TABLE IF NOT EXISTS stats_workers (
    ssn          TEXT PRIMARY KEY,
    version      BIGINT NOT NULL,
    contribution TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stats_totals (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS stats_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


_databases = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgres"])
def kind(request) -> str:
    return request.param


def new_db(request, kind: str, tmp_path, name: str) -> str:
    if kind == "sqlite":
        return str(tmp_path / f"{name}.sqlite3")
    return request.getfixturevalue("postgres_server").create_database(f"{name}_{os.getpid()}_{next(_databases)}")


def datastore(kind: str, db: str):
    return connect(kind, db, sqlite_path="unused.sqlite3", application_name="workerfile-test", lock_key=42)


def schema(kind: str, db: str) -> dict:
    """Everything of the database's tables a user could see: SQLite's schema text; in
    PostgreSQL every column's type, nullability and default, the indexes and constraints."""
    if kind == "sqlite":
        with sqlite3.connect(db) as conn:
            return {"sqlite_master": sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"),
                                            key=repr)}
    with psycopg.connect(db) as conn:
        return {
            "columns": conn.execute(
                "SELECT table_name, column_name, ordinal_position, data_type, is_nullable, column_default "
                "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 3").fetchall(),
            "indexes": conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                                    "ORDER BY 1").fetchall(),
            "constraints": conn.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2").fetchall(),
        }


def create_previous(kind: str, db: str) -> None:
    if kind == "sqlite":
        with sqlite3.connect(db) as conn:
            conn.executescript(PREVIOUS_SQLITE + PREVIOUS_STATS)
    else:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(PREVIOUS_POSTGRES + PREVIOUS_STATS)


def test_a_new_database_gets_the_tables_of_the_previous_release(request, kind, tmp_path):
    previous, new = new_db(request, kind, tmp_path, "previous"), new_db(request, kind, tmp_path, "new")
    create_previous(kind, previous)
    open_store(kind, new).close()
    open_stats_store(kind, new).close()
    assert schema(kind, new) == schema(kind, previous)
    both_orders = new_db(request, kind, tmp_path, "stats_first")  # the statistics store first
    open_stats_store(kind, both_orders).close()
    open_store(kind, both_orders).close()
    assert schema(kind, both_orders) == schema(kind, previous)


def test_a_database_of_the_previous_release_is_used_as_it_is(request, kind, tmp_path, population_files):
    db = new_db(request, kind, tmp_path, "previous")
    create_previous(kind, db)
    before = schema(kind, db)
    a, b = population_files[:2]
    with open_store(kind, db) as files, open_stats_store(kind, db) as stats:
        files.apply([FileChange(a["ssn"], 3, a), FileChange(b["ssn"], 4, b)], {0: 5})
        stats.apply([FileChange(a["ssn"], 3, a), FileChange(b["ssn"], 4, None)], {0: 5})
        assert [r["document"] for r in files.rows()] == sorted([a, b], key=lambda f: f["ssn"])
        assert files.offsets() == stats.offsets() == {0: 5}
        assert set(stats.contributions()) == {a["ssn"]}
    assert schema(kind, db) == before


def test_a_transaction_commits_at_its_end_and_rolls_back_on_an_error(request, kind, tmp_path):
    db = datastore(kind, new_db(request, kind, tmp_path, "tx"))
    try:
        db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v {big_integer} NOT NULL)")
        with db.transaction():
            assert db.executemany("INSERT INTO t (k, v) VALUES (:k, :v)", [{"k": "a", "v": 1}, {"k": "b", "v": 2}]) == 2
        with pytest.raises(ZeroDivisionError):
            with db.transaction():
                db.execute("UPDATE t SET v = v + 10")
                db.execute("INSERT INTO t (k, v) VALUES (:k, :v)", {"k": "c", "v": 3})
                1 / 0
        assert db.execute("SELECT k, v FROM t ORDER BY k {bytewise}") == [("a", 1), ("b", 2)]
        with pytest.raises(Exception):  # the database refuses a statement: nothing of the block stays
            with db.transaction():
                db.execute("INSERT INTO t (k, v) VALUES (:k, :v)", {"k": "d", "v": 4})
                db.execute("INSERT INTO t (k, v) VALUES (:k, :v)", {"k": "a", "v": 5})  # the primary key
        assert db.execute("SELECT k, v FROM t ORDER BY k {bytewise}") == [("a", 1), ("b", 2)]
        with db.transaction():  # still usable
            db.execute("INSERT INTO t (k, v) VALUES (:k, :v)", {"k": "d", "v": 4})
        assert db.execute("SELECT count(*) FROM t") == [(3,)]
    finally:
        db.close()


def test_a_read_only_transaction_sees_one_snapshot(request, kind, tmp_path):
    path = new_db(request, kind, tmp_path, "snap")
    reader, writer = datastore(kind, path), datastore(kind, path)
    try:
        writer.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
        writer.execute("INSERT INTO t (k) VALUES (:k)", {"k": "a"})
        with reader.transaction(read_only=True):
            assert reader.execute("SELECT count(*) FROM t") == [(1,)]
            with writer.transaction():  # a writer is not blocked by the reader
                writer.execute("INSERT INTO t (k) VALUES (:k)", {"k": "b"})
            assert reader.execute("SELECT count(*) FROM t") == [(1,)]
        assert reader.execute("SELECT count(*) FROM t") == [(2,)]
    finally:
        reader.close()
        writer.close()


def test_json_values_and_timestamps_in_the_dialect(request, kind, tmp_path):
    db = datastore(kind, new_db(request, kind, tmp_path, "json"))
    try:
        db.execute("CREATE TABLE j (k TEXT PRIMARY KEY, document {json_column:document}, at {timestamp_column})")
        with db.transaction():
            db.execute("INSERT INTO j (k, document, at) VALUES (:k, {json_value:document}, {now})",
                       {"k": "a", "document": '{"hours": 120, "name": "焊工"}', "now": "2026-01-02T03:04:05+00:00"})
        (document, at), = db.execute("SELECT document, at FROM j WHERE k = :k", {"k": "a"})
        assert db.load_json(document) == {"hours": 120, "name": "焊工"}
        assert at is not None
        with pytest.raises(Exception):  # not JSON: refused by the column
            db.execute("INSERT INTO j (k, document, at) VALUES (:k, {json_value:document}, {now})",
                       {"k": "b", "document": "not json", "now": "2026-01-02T03:04:05+00:00"})
    finally:
        db.close()


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown sink kind 'mysql'"):
        open_store("mysql", "x")
    with pytest.raises(ValueError, match="unknown database kind 'mysql'"):
        open_stats_store("mysql", "x")
