"""`workerfile sink` and `workerfile stats follow` against poison and database failures,
on a real broker and real SQLite / PostgreSQL: a record that is not a file of its key
(garbage, truncated Avro, an unknown fingerprint, another schema, a file under another
key) stops the consumer with exit 2 naming its partition and offset, after applying and
committing everything before it and nothing at or after it; skipping it on purpose
(moving the stored offset, as documented) lets the rest be applied exactly. A database
error mid-run (a constraint that refuses a row) exits 1 with the offsets not moved past
the failed batch; once it is lifted, a re-run gives the exact table."""

from __future__ import annotations

import subprocess

import pytest

from sinks.base import open_store
from sinks.stats import open_stats_store
from processors import stats as st
from streams import codec
from tests.conftest import SSN_A
from tests.integration.test_sink_integration import (TOPIC, end_offsets, expected_table, publish, sink_command,
                                                     sink_env, stored_offsets, topic_records, assert_table_is,
                                                     file_versions)
from kafka import KafkaProducer

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def databases(postgres_server, tmp_path, request):
    name = "sink_poison_" + "".join(c for c in request.node.name.lower() if c.isalnum())[:36]
    return {"sqlite": str(tmp_path / "worker_files.sqlite3"), "postgres": postgres_server.create_database(name)}


def poison_values(file: dict) -> dict[str, bytes]:
    good = codec.encode("WorkerFile", file)
    return {"garbage": b"\x00\xffnot avro", "truncated": good[:-7],
            "fingerprint": codec.MARKER + b"\x02" * 8 + good[codec.HEADER_SIZE:],
            "schema": codec.encode("WorkerFileChange", {"ssn": file["ssn"], "version": 1, "changed_sections": ["x"],
                                                        "event_ids": []}),
            "other ssn": codec.encode("WorkerFile", {**file, "ssn": SSN_A})}


def send_raw(bootstrap: str, items: list[tuple[str, bytes]]) -> list:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    try:
        futures = [producer.send(TOPIC, key=k.encode(), value=v) for k, v in items]
        producer.flush(60)
        return [f.get(30) for f in futures]
    finally:
        producer.close()


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=sink_env(),
                          stdin=subprocess.DEVNULL)


def skip_record(kind: str, db: str, group: str, partition: int, offset: int) -> None:
    """What sinks/README.md tells the operator to do to skip a record on purpose."""
    with open_store(kind, db) as store:
        sql = "UPDATE sink_offsets SET next_offset = {o} WHERE consumer_group = '{g}' AND kafka_partition = {p}"
        store.conn.execute(sql.format(o=offset + 1, g=group, p=partition))


def test_poison_stops_the_sink_after_everything_before_it_then_skipping_applies_the_rest(kafka, databases):
    versions = file_versions(8, seed=3)
    publish(kafka.bootstrap, [(v["ssn"], v) for v in versions[: len(versions) // 2]])
    victim = versions[0]
    poison = poison_values(victim)
    metadata = send_raw(kafka.bootstrap, [(victim["ssn"], v) for v in poison.values()])
    publish(kafka.bootstrap, [(v["ssn"], v) for v in versions[len(versions) // 2:]])
    records = topic_records(kafka.bootstrap)
    poison_at = [(m.partition, m.offset) for m in metadata]
    assert len({p for p, _ in poison_at}) == 1
    for kind, db in databases.items():
        for p, offset in poison_at:
            done = run(sink_command(kind, db, kafka.bootstrap, "--once", "--batch-size", "7"))
            assert done.returncode == 2, done.stderr[-3000:]
            assert f"{TOPIC} partition {p} offset {offset}" in done.stderr, done.stderr[-3000:]
            assert victim["ssn"] not in done.stderr and SSN_A not in done.stderr
            stored = stored_offsets(kind, db)
            assert stored.get(p, 0) == offset  # never past the poison
            # exactly the records below the stored offsets are applied (other partitions: as far as read)
            assert_table_is(kind, db, expected_table([r for r in records if (r.partition, r.offset) not in
                                                      poison_at], stored))
            skip_record(kind, db, "workerfile-sink", p, offset)  # the operator skips it on purpose
        done = run(sink_command(kind, db, kafka.bootstrap, "--once"))
        assert done.returncode == 0, done.stderr[-3000:]
        assert stored_offsets(kind, db) == end_offsets(records)
        assert_table_is(kind, db, expected_table([r for r in records if (r.partition, r.offset) not in poison_at]))


def test_stats_follow_stops_on_poison_without_counting_past_it(kafka, tmp_path):
    versions = file_versions(6, seed=4)
    publish(kafka.bootstrap, [(v["ssn"], v) for v in versions])
    (meta,) = send_raw(kafka.bootstrap, [(versions[0]["ssn"], b"garbage")])
    publish(kafka.bootstrap, [(versions[0]["ssn"], None)])  # after the poison: a tombstone of that worker
    records = topic_records(kafka.bootstrap)
    db = str(tmp_path / "stats.sqlite3")
    command = [*sink_command("sqlite", db, kafka.bootstrap)[:3], "stats", "follow", "--once", "--broker",
               kafka.bootstrap, "--db", db]
    done = run(command)
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"{TOPIC} partition {meta.partition} offset {meta.offset}" in done.stderr
    good = [r for r in records if r.offset != meta.offset or r.partition != meta.partition]
    with open_stats_store("sqlite", db) as store:
        assert store.offsets()[meta.partition] == meta.offset
        below = store.offsets()  # other partitions: as far as they were read before the stop
        assert store.totals() == st.recount(f for _, f in expected_table(good, below).values())
        store.conn.execute("UPDATE sink_offsets SET next_offset = ? WHERE kafka_partition = ?",
                           (meta.offset + 1, meta.partition))
    done = run(command)
    assert done.returncode == 0, done.stderr[-3000:]
    with open_stats_store("sqlite", db) as store:
        assert store.totals() == st.recount(f for _, f in expected_table(good).values())
        assert store.offsets() == end_offsets(records)


def test_a_database_error_mid_run_commits_nothing_past_it_and_a_rerun_is_exact(kafka, databases):
    versions = file_versions(10, seed=5)
    publish(kafka.bootstrap, [(v["ssn"], v) for v in versions])
    records = topic_records(kafka.bootstrap)
    refused = records[len(records) // 2].key.decode()  # a worker whose rows the database will refuse
    for kind, db in databases.items():
        with open_store(kind, db) as store:
            if kind == "sqlite":
                store.conn.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON worker_files WHEN NEW.ssn = '{refused}' "
                                   f"BEGIN SELECT RAISE(ABORT, 'refused by a test constraint'); END")
            else:
                store.conn.execute(f"ALTER TABLE worker_files ADD CONSTRAINT refuse CHECK (ssn <> '{refused}')")
        done = run(sink_command(kind, db, kafka.bootstrap, "--once", "--batch-size", "5"))
        assert done.returncode == 1, done.stderr[-3000:]
        assert "workerfile sink: failed" in done.stderr
        stored = stored_offsets(kind, db)
        first_refused = {}
        for r in records:
            if r.key.decode() == refused:
                first_refused.setdefault(r.partition, r.offset)
        (p, offset), = first_refused.items()
        assert stored.get(p, 0) <= offset  # the batch holding the refused row was not committed
        assert_table_is(kind, db, expected_table(records, stored))  # exactly the committed batches
        with open_store(kind, db) as store:
            store.conn.execute("DROP TRIGGER refuse" if kind == "sqlite"
                               else "ALTER TABLE worker_files DROP CONSTRAINT refuse")
        done = run(sink_command(kind, db, kafka.bootstrap, "--once", "--batch-size", "5"))
        assert done.returncode == 0, done.stderr[-3000:]
        assert_table_is(kind, db, expected_table(records))
        assert stored_offsets(kind, db) == end_offsets(records)


def test_stats_serve_follow_stops_with_exit_2_on_poison(kafka, tmp_path):
    from streams.local_kafka import free_ports

    versions = file_versions(4, seed=6)
    publish(kafka.bootstrap, [(v["ssn"], v) for v in versions])
    (meta,) = send_raw(kafka.bootstrap, [(versions[-1]["ssn"], codec.MARKER + b"\x03" * 8 + b"\x00")])
    records = topic_records(kafka.bootstrap)
    db = str(tmp_path / "stats.sqlite3")
    command = [*sink_command("sqlite", db, kafka.bootstrap)[:3], "stats", "serve", "--follow", "--broker",
               kafka.bootstrap, "--db", db, "--port", str(free_ports(1)[0])]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=sink_env(),
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.wait(240) == 2  # it stops by itself, loudly
        err = proc.stderr.read().decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert f"{TOPIC} partition {meta.partition} offset {meta.offset}" in err and "unknown writer schema" in err, err
    good = [r for r in records if (r.partition, r.offset) != (meta.partition, meta.offset)]
    with open_stats_store("sqlite", db) as store:
        stored = store.offsets()
        assert stored[meta.partition] == meta.offset
        assert store.totals() == st.recount(f for _, f in expected_table(good, stored).values())
