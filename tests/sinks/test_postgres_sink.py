"""The PostgreSQL store (psycopg 3) against a real server (started once per session by
tests/sinks/conftest.py): the store contract, plus what is PostgreSQL's own (JSONB,
timestamptz, index definitions, concurrent writers, the CLI's errors)."""

from __future__ import annotations

import datetime as dt
import threading

import psycopg
import pytest

from sinks.base import FileChange, open_store
from tests.sinks.store_contract import StoreContract
from workerfile.cli import main


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, postgres_store):
        return postgres_store

    def indexed(self, store) -> set[str]:
        rows = store.conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = 'worker_files'::regclass AND NOT i.indisprimary").fetchall()
        return {name for (name,) in rows}


def test_document_is_jsonb_and_updated_at_timestamptz(postgres_store, population_files):
    file = population_files[0]
    postgres_store.upsert(file["ssn"], 1, file)
    kind, hours, level = postgres_store.conn.execute(
        "SELECT jsonb_typeof(document), (document->>'training_hours')::int, document->>'highest_skill_level' "
        "FROM worker_files").fetchone()
    assert (kind, hours, level) == ("object", file["training_hours"], file["highest_skill_level"])
    updated_at = postgres_store.get_row(file["ssn"])["updated_at"]
    assert isinstance(updated_at, dt.datetime) and updated_at.utcoffset() is not None
    types = dict(postgres_store.conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'worker_files'").fetchall())
    assert types["document"] == "jsonb" and types["version"] == "bigint"


def test_data_and_offsets_persist_across_connections(postgres_dsn, population_files):
    with open_store("postgres", postgres_dsn) as store:
        store.apply([FileChange(f["ssn"], i, f) for i, f in enumerate(population_files)], {0: 5, 1: 9}, group="g")
    with open_store("postgres", postgres_dsn) as store:
        assert [r["document"] for r in store.rows()] == population_files
        assert store.offsets("g") == {0: 5, 1: 9}


def test_concurrent_writers_keep_the_newest(postgres_dsn, population_files):
    """Two stores on the same database applying interleaved versions at the same time:
    every worker ends at its greatest version."""
    workers = population_files[:6]
    errors = []

    def writer(versions):
        try:
            with open_store("postgres", postgres_dsn) as store:
                for v in versions:
                    store.apply([FileChange(f["ssn"], v, {**f, "applied_events": v}) for f in workers], {0: v + 1})
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(range(start, 60, 2),)) for start in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with open_store("postgres", postgres_dsn) as store:
        assert {r["ssn"]: (r["version"], r["document"]["applied_events"]) for r in store.rows()} == {
            f["ssn"]: (59, 59) for f in workers}
        assert store.offsets() == {0: 60}


def test_cli_reports_a_server_it_cannot_reach(capsys):
    code = main(["sink", "postgres", "--db", "host=127.0.0.1 port=1 user=postgres connect_timeout=3", "--once"])
    assert code == 1
    assert "cannot open the postgres database" in capsys.readouterr().err


def test_psycopg_is_version_3():
    assert int(psycopg.__version__.split(".")[0]) == 3
