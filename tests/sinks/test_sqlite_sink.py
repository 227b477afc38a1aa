"""The SQLite store (stdlib sqlite3) against a real database file: the store contract,
plus what is SQLite's own (JSON text, indexes used, persistence, the CLI's errors)."""

from __future__ import annotations

import sqlite3

import pytest

from sinks.base import FileChange, open_store
from tests.sinks.store_contract import StoreContract
from workerfile.cli import main


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def store(self, sqlite_store):
        return sqlite_store

    def indexed(self, store) -> set[str]:
        columns = set()
        for (name,) in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                          "AND tbl_name = 'worker_files' AND sql IS NOT NULL"):
            columns |= {row[2] for row in store.conn.execute(f"PRAGMA index_info('{name}')")}
        return columns


def test_queries_on_indexed_columns_use_the_indexes(sqlite_store):
    for column in ("highest_skill_level", "current_employer", "region"):
        plan = " ".join(str(r) for r in sqlite_store.conn.execute(
            f"EXPLAIN QUERY PLAN SELECT ssn FROM worker_files WHERE {column} = ?", ("x",)))
        assert f"worker_files_{column}" in plan, plan


def test_document_is_json_text_queryable_with_json_functions(sqlite_store, population_files):
    file = population_files[0]
    sqlite_store.upsert(file["ssn"], 1, file)
    hours, typ = sqlite_store.conn.execute(
        "SELECT json_extract(document, '$.training_hours'), typeof(document) FROM worker_files").fetchone()
    assert (hours, typ) == (file["training_hours"], "text")
    with pytest.raises(sqlite3.IntegrityError):
        sqlite_store.conn.execute("UPDATE worker_files SET document = 'not json'")


def test_data_and_offsets_persist_across_reopening(sqlite_path, population_files):
    with open_store("sqlite", sqlite_path) as store:
        store.apply([FileChange(f["ssn"], i, f) for i, f in enumerate(population_files)], {0: 5, 1: 9}, group="g")
    with open_store("sqlite", sqlite_path) as store:  # ensure_schema again: idempotent
        assert [r["document"] for r in store.rows()] == population_files
        assert store.offsets("g") == {0: 5, 1: 9}


def test_updated_at_is_utc_rfc3339(sqlite_store, population_files):
    file = population_files[0]
    sqlite_store.upsert(file["ssn"], 1, file)
    updated_at = sqlite_store.get_row(file["ssn"])["updated_at"]
    assert updated_at.endswith("+00:00") and "T" in updated_at


def test_cli_reports_an_unreachable_broker(sqlite_path, capsys, monkeypatch):
    monkeypatch.setattr("sinks.runner.BOOTSTRAP_TIMEOUT_MS", 1500)
    code = main(["sink", "sqlite", "--db", sqlite_path, "--broker", "127.0.0.1:1", "--once"])
    assert code == 1
    assert "workerfile sink: failed" in capsys.readouterr().err


def test_cli_reports_a_database_it_cannot_open(tmp_path, capsys):
    code = main(["sink", "sqlite", "--db", str(tmp_path / "missing-dir" / "x.db"), "--once"])
    assert code == 1
    assert "cannot open the sqlite database" in capsys.readouterr().err
