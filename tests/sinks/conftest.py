"""Fixtures of the sink tests: realistic worker files, and real databases — a SQLite file
per test, and one throw-away PostgreSQL server per test session (sinks.local_postgres:
initdb + pg_ctl on a free 127.0.0.1 port, as the `postgres` user when run as root) with a
fresh database per test."""

from __future__ import annotations

import itertools
import os

import orjson
import pytest

from processors.batch import fold_lines
from sinks.base import open_store
from workerfile.population import generate_population

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def population_files() -> list[dict]:
    """The files of a generated population of 20 workers (sorted by ssn)."""
    lines = [e.encode() if isinstance(e, str) else orjson.dumps(e) for e in generate_population(20)]
    return fold_lines(lines).files()


@pytest.fixture
def postgres_dsn(postgres_server) -> str:
    """A fresh, empty database on the session's server."""
    return postgres_server.create_database(f"sink_test_{os.getpid()}_{next(_databases)}")


@pytest.fixture
def sqlite_path(tmp_path) -> str:
    return str(tmp_path / "worker_files.sqlite3")


@pytest.fixture
def sqlite_store(sqlite_path):
    with open_store("sqlite", sqlite_path) as store:
        yield store


@pytest.fixture
def postgres_store(postgres_dsn):
    with open_store("postgres", postgres_dsn) as store:
        yield store
