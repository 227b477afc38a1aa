"""Kafka Connect into PostgreSQL, the operators' way (issue #12, deploy/connect/): a real
broker, a real stream worker, a real Apicurio Registry, a real Kafka Connect worker
(standalone, from the jars Maven fetched) running Debezium's JDBC sink with Apicurio's
AvroConverter, and a real PostgreSQL server. The table `worker_file_rows` ends with one row
per worker equal to the offline fold's file, and `workerfile admin erase` deletes the row.

Connect starts once for the module (its start-up and plugin scan take most of a minute on
the project's 2 cores), on a broker of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import psycopg
import pytest

from processors.rows import file_row
from sinks.connect import TABLE_SQL, LocalConnect, register_row_schemas, registry_api
from streams import codec
from streams.local_kafka import LocalKafka
from streams.reader import read_topic
from streams.runner import WorkerProcess, wait_for
from streams.topics import WORKER_FILE_ROWS, ensure_topics, load_topic_specs, provision
from tests.integration.conftest import PARTITIONS, expected_files, publish
from workerfile.population import generate_population

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ("ssn", "version", "birth_date", "sex", "region", "province", "highest_skill_level", "current_employer",
           "current_employers", "employments", "training_hours", "trainings_completed", "certificates",
           "insurance_active_schemes", "pension_months", "subsidy_grants", "subsidy_paid_cny", "open_notices",
           "issues", "applied_events", "file_json")


@pytest.fixture(scope="module")
def broker():
    kafka = LocalKafka()
    kafka.start()
    try:
        ensure_topics(kafka.bootstrap, load_topic_specs("local", partitions=PARTITIONS))
        yield kafka
    finally:
        kafka.stop()
    assert not kafka.is_running()


@pytest.fixture(scope="module")
def rows_db(postgres_server):
    """A fresh database with the table made by deploy/connect/worker_file_rows.sql (jsonb)."""
    dsn = postgres_server.create_database("connect_rows")
    with psycopg.connect(dsn) as conn:
        conn.execute(TABLE_SQL.read_text(encoding="utf-8"))
    return dsn


@pytest.fixture(scope="module")
def connect(broker, schema_registry, postgres_server, rows_db):
    """The row schemas registered (`workerfile connect register`), then Connect standalone
    with deploy/connect/worker-file-rows-sink.properties as it is, configured only through
    its environment; stopped at the end of the module (and checked gone)."""
    done = workerfile("connect", "register", "--registry", schema_registry.base_url)
    assert done.returncode == 0, done.stderr
    env = {"WORKERFILE_CONNECT_JDBC_URL": f"jdbc:postgresql://127.0.0.1:{postgres_server.port}/connect_rows",
           "WORKERFILE_CONNECT_DB_USER": "postgres",
           "WORKERFILE_CONNECT_REGISTRY_URL": registry_api(schema_registry.base_url)}
    worker = LocalConnect(broker.bootstrap, env, heap="-Xmx384m")
    worker.start()
    try:
        worker.rest.wait_running(timeout=180)
        yield worker
    finally:
        worker.stop()
    assert not worker.is_running()


def workerfile(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-m", "workerfile.cli", *args], capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)


def table(dsn: str) -> dict[str, dict]:
    with psycopg.connect(dsn) as conn:
        cursor = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM worker_file_rows")
        return {row[0]: dict(zip(COLUMNS, row)) for row in cursor.fetchall()}


def as_row(expected: dict, version: int) -> dict:
    """The row of the offline fold's file, published at `version`, as PostgreSQL gives it."""
    row = file_row({**expected, "version": version})
    import datetime as dt

    return {**row, "birth_date": dt.date.fromisoformat(row["birth_date"]),
            "file_json": {**expected, "version": version}}


def test_rows_equal_the_offline_fold_and_an_erase_deletes_the_row(broker, connect, rows_db, schema_registry, tmp_path):
    items = list(generate_population(12, seed=1207, months=14))
    expected = expected_files(items)
    provision(broker.bootstrap, "workerfile-connect", PARTITIONS)
    worker = WorkerProcess(broker.bootstrap, "workerfile-connect", tmp_path / "worker", partitions=PARTITIONS).start()
    try:
        publish(broker.bootstrap, items)

        def settled():
            rows = table(rows_db)
            if set(rows) != set(expected):
                return False
            return all({k: v for k, v in row["file_json"].items() if k != "version"} == expected[ssn]
                       for ssn, row in rows.items()) and rows
        rows = wait_for(settled, 240, interval=2, what="one row per worker in worker_file_rows, as the offline fold")
        for ssn, row in rows.items():
            version = row["file_json"]["version"]
            assert version >= 1 and row["version"] == version
            assert row == as_row(expected[ssn], version), ssn
        # the columns a BI tool reads, checked against the files themselves
        assert sum(r["training_hours"] for r in rows.values()) == sum(f["training_hours"] for f in expected.values())
        assert {r["highest_skill_level"] for r in rows.values()} == {f["highest_skill_level"] for f in expected.values()}

        # the same rows are what the topic holds, in the framing the converter read
        latest = {r.key.decode(): r for r in read_topic(broker.bootstrap, WORKER_FILE_ROWS, timeout=60)}
        assert set(latest) == set(expected)
        for ssn, record in latest.items():
            decoded = codec.decode_row(record.value, record.headers)
            assert orjson.loads(decoded["file_json"]) == rows[ssn]["file_json"]

        erased = sorted(expected)[0]
        done = workerfile("admin", "erase", erased, "--reason", "申请注销 (PIPL art. 47)", "--operator", "ops-li",
                          "--broker", broker.bootstrap)
        assert done.returncode == 0, done.stderr
        wait_for(lambda: erased not in table(rows_db), 120, interval=2, what="the erased worker's row deleted")
        after = table(rows_db)
        assert set(after) == set(expected) - {erased}
        assert all(after[ssn] == rows[ssn] for ssn in after)  # the others untouched
        status = connect.rest.status()
        assert status["connector"]["state"] == "RUNNING" and [t["state"] for t in status["tasks"]] == ["RUNNING"]
    finally:
        worker.stop()
    assert erased not in worker.log_text()


def test_a_distributed_worker_takes_the_connector_over_rest_and_makes_the_table(kafka, schema_registry,
                                                                               postgres_server, tmp_path):
    """connect-distributed.properties on a broker of its own (internal topics of replication
    1), the connector created with `workerfile connect deploy` from worker-file-rows-sink.json,
    and no table made beforehand: the sink makes it from the row schema (file_json as text)."""
    from kafka import KafkaAdminClient

    done = workerfile("connect", "register", "--registry", registry_api(schema_registry.base_url))
    assert done.returncode == 0 and "WorkerFileRow version" in done.stdout, done.stderr
    postgres_server.create_database("connect_rows_distributed")
    env = {"WORKERFILE_CONNECT_JDBC_URL": f"jdbc:postgresql://127.0.0.1:{postgres_server.port}/connect_rows_distributed",
           "WORKERFILE_CONNECT_DB_USER": "postgres",
           "WORKERFILE_CONNECT_REGISTRY_URL": registry_api(schema_registry.base_url)}
    connect = LocalConnect(kafka.bootstrap, env, heap="-Xmx384m", mode="distributed")
    connect.start()
    worker = None
    try:
        assert connect.rest.connectors() == []
        done = workerfile("connect", "deploy", "--connect", connect.url, "--timeout", "180")
        assert done.returncode == 0, done.stderr
        assert "RUNNING, 1 task(s) RUNNING" in done.stdout
        admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        try:
            assert {"workerfile-connect-configs", "workerfile-connect-offsets",
                    "workerfile-connect-status"} <= set(admin.list_topics())
        finally:
            admin.close()

        items = list(generate_population(4, seed=1208, months=8))
        expected = expected_files(items)
        provision(kafka.bootstrap, "workerfile-connect-d", PARTITIONS)
        worker = WorkerProcess(kafka.bootstrap, "workerfile-connect-d", tmp_path / "worker", partitions=PARTITIONS).start()
        publish(kafka.bootstrap, items)
        dsn = postgres_server.dsn("connect_rows_distributed")

        def settled():
            try:
                rows = table(dsn)
            except psycopg.errors.UndefinedTable:  # made by the sink with its first record
                return False
            files = {ssn: orjson.loads(row["file_json"]) for ssn, row in rows.items()}
            return rows if {s: {k: v for k, v in f.items() if k != "version"} for s, f in files.items()} == expected \
                else False
        rows = wait_for(settled, 240, interval=2, what="the rows of the distributed worker's sink")
        for ssn, row in rows.items():
            file = orjson.loads(row["file_json"])
            assert row == {**as_row(expected[ssn], file["version"]), "file_json": row["file_json"]}
        with psycopg.connect(dsn) as conn:
            kinds = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                                      "WHERE table_name = 'worker_file_rows'").fetchall())
        assert (kinds["birth_date"], kinds["training_hours"], kinds["file_json"]) == ("date", "bigint", "text")
    finally:
        if worker is not None:
            worker.stop()
        connect.stop()
    assert not connect.is_running()
