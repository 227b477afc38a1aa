"""`workerfile sink sqlite|postgres` against a real Apache Kafka broker and real databases
(a SQLite file; a throw-away PostgreSQL server), run as real subprocesses: the table
equals the latest file of every worker on `worker-files` (no row after a tombstone), a
second run changes nothing, `kill -9` at any point followed by a re-run is still exact,
and the follow mode picks up new records and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from processors.batch import BatchFold, fold_lines
from processors.derive import derive_file
from processors.intake import Rejection, parse_json_line
from sinks.base import open_store
from streams import codec
from streams.reader import latest_files, read_topic
from workerfile.population import generate_population

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "worker-files"
KILLS = 5  # kill -9 runs of each sink before the last run


# --- what is published -------------------------------------------------------------------

def file_versions(workers: int = 20, seed: int = 7) -> list[dict]:
    """Realistic successive files, as the stream worker publishes them: the population's
    lines folded one by one, the worker's new file after every accepted event."""
    lines = [e.encode() if isinstance(e, str) else orjson.dumps(e) for e in generate_population(workers, seed=seed)]
    batch, versions = BatchFold(), []
    for number, line in enumerate(lines, 1):
        event = parse_json_line(line)
        if batch.take_line(line, number) == "accepted" and not isinstance(event, Rejection):
            versions.append(derive_file(batch.states[event.ssn]))
    final = {f["ssn"]: f for f in fold_lines(lines).files()}
    assert {v["ssn"]: v for v in versions} == final  # the last version of each is the offline fold's file
    return versions


def publish(bootstrap: str, records: list[tuple[str, dict | None]]) -> None:
    """(ssn, file or None for a tombstone), in order, keyed by the SSN."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    try:
        for ssn, file in records:
            producer.send(TOPIC, key=ssn.encode(), value=None if file is None else codec.encode("WorkerFile", file))
        producer.flush(60)
    finally:
        producer.close()


def topic_records(bootstrap: str) -> list:
    return read_topic(bootstrap, TOPIC, timeout=60)


def expected_table(records, below: dict[int, int] | None = None) -> dict[str, tuple[int, dict]]:
    """The table after applying the records (only those below `below[partition]` when
    given): ssn -> (version = offset, file) of each worker's latest record, if a file."""
    latest: dict[str, tuple[int, dict | None]] = {}
    for r in records:
        if below is not None and r.offset >= below.get(r.partition, 0):
            continue
        latest[r.key.decode()] = (r.offset, None if r.value is None else codec.decode(r.value)[1])
    return {ssn: (v, f) for ssn, (v, f) in latest.items() if f is not None}


def end_offsets(records) -> dict[int, int]:
    ends: dict[int, int] = {}
    for r in records:
        ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
    return ends


# --- running the sink -------------------------------------------------------------------

def sink_command(kind: str, db: str, bootstrap: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "workerfile.cli", "sink", kind, "--broker", bootstrap, "--db", db, *extra]


def sink_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def run_sink_once(kind: str, db: str, bootstrap: str, *extra: str) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(sink_command(kind, db, bootstrap, "--once", *extra), capture_output=True, text=True,
                          timeout=300, env=sink_env(), stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    return time.monotonic() - started, done.stderr


def table(kind: str, db: str) -> dict[str, tuple[int, dict]]:
    with open_store(kind, db) as store:
        return {r["ssn"]: (r["version"], r["document"]) for r in store.rows()}


def full_rows(kind: str, db: str) -> list[dict]:
    with open_store(kind, db) as store:
        return store.rows()


def stored_offsets(kind: str, db: str) -> dict[int, int]:
    with open_store(kind, db) as store:
        return store.offsets()


def assert_table_is(kind: str, db: str, expected: dict[str, tuple[int, dict]]) -> None:
    got = table(kind, db)
    if got != expected:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        stale = [s for s in expected if s in got and got[s][0] != expected[s][0]]
        wrong = [s for s in expected if s in got and got[s][0] == expected[s][0] and got[s][1] != expected[s][1]]
        pytest.fail(f"{kind} table differs: {len(missing)} missing, {len(extra)} unexpected, "
                    f"{len(stale)} at another version, {len(wrong)} with other content")


def check_indexed_columns(kind: str, db: str) -> None:
    for row in full_rows(kind, db):
        file = row["document"]
        employers = file["current_employers"]
        assert row["highest_skill_level"] == file["highest_skill_level"]
        assert row["current_employer"] == (employers[0] if employers else None)
        open_regions = {e["region"] for e in file["employments"] if e["end_date"] is None}
        if file["card"]:
            assert row["region"] == file["card"]["region"]
        else:
            assert row["region"] in open_regions if open_regions else row["region"] is None


# --- fixtures ------------------------------------------------------------------------

@pytest.fixture
def databases(postgres_server, tmp_path, request):
    """kind -> a fresh database of that kind."""
    name = "sink_it_" + "".join(c for c in request.node.name.lower() if c.isalnum())[:40]
    return {"sqlite": str(tmp_path / "worker_files.sqlite3"), "postgres": postgres_server.create_database(name)}


@pytest.fixture(scope="module")
def versions() -> list[dict]:
    return file_versions(20)


def history(versions: list[dict]) -> tuple[list[tuple[str, dict | None]], list[tuple[str, dict | None]]]:
    """Two phases of records. Phase 1: every version of every file, a tombstone for one
    worker, and for another a tombstone followed by its file again. Phase 2: newer
    versions of a few files, a tombstone, and a worker that comes back."""
    ssns = sorted({v["ssn"] for v in versions})
    last = {v["ssn"]: v for v in versions}
    gone, back, gone_later, again = ssns[0], ssns[1], ssns[2], ssns[0]
    phase1 = [(v["ssn"], v) for v in versions]
    phase1 += [(gone, None), (back, None), (back, {**last[back], "training_hours": last[back]["training_hours"] + 8})]
    phase2 = [(s, {**last[s], "applied_events": last[s]["applied_events"] + 1}) for s in ssns[3:8]]
    phase2 += [(gone_later, None), (again, last[again])]
    return phase1, phase2


# --- the tests -------------------------------------------------------------------------

def test_once_materialises_the_latest_file_per_worker_and_is_idempotent(kafka, databases, versions):
    phase1, phase2 = history(versions)
    publish(kafka.bootstrap, phase1)
    records = topic_records(kafka.bootstrap)
    assert len(records) == len(phase1)
    expected = expected_table(records)
    ssns = sorted({v["ssn"] for v in versions})
    assert ssns[0] not in expected and ssns[1] in expected  # deleted; deleted and back
    assert {s: f for s, (_, f) in expected.items()} == latest_files(kafka.bootstrap)

    timings = {}
    for kind, db in databases.items():
        timings[kind], err = run_sink_once(kind, db, kafka.bootstrap)
        assert f"read {len(records)} records" in err, err
        assert_table_is(kind, db, expected)
        check_indexed_columns(kind, db)
        assert stored_offsets(kind, db) == end_offsets(records)
        with open_store(kind, db) as store:
            assert store.get_file(ssns[0]) is None
            assert store.get_file(ssns[5]) == expected[ssns[5]][1]

        before = full_rows(kind, db)  # a second run: nothing to read, nothing changes
        _, err = run_sink_once(kind, db, kafka.bootstrap)
        assert "read 0 records" in err, err
        assert full_rows(kind, db) == before

        # a fresh group replays the whole topic into the same table: the version guards
        # keep every row as it is (same version: not rewritten, updated_at unchanged)
        _, err = run_sink_once(kind, db, kafka.bootstrap, "--group", "replay", "--batch-size", "37")
        assert f"read {len(records)} records" in err and "0 rows written, 0 deleted" in err, err
        assert full_rows(kind, db) == before

    publish(kafka.bootstrap, phase2)  # newer versions, a tombstone, a worker back: resumes where it stopped
    records = topic_records(kafka.bootstrap)
    expected = expected_table(records)
    assert ssns[2] not in expected and ssns[0] in expected
    for kind, db in databases.items():
        _, err = run_sink_once(kind, db, kafka.bootstrap)
        assert f"read {len(phase2)} records" in err, err
        assert_table_is(kind, db, expected)
        assert stored_offsets(kind, db) == end_offsets(records)
    print(f"\nsink --once over {len(phase1)} records: " + ", ".join(f"{k} {t:.1f} s" for k, t in timings.items()))


def test_kill_9_at_any_point_then_rerun_is_exact(kafka, databases, versions):
    phase1, phase2 = history(versions)
    publish(kafka.bootstrap, phase1)
    records = topic_records(kafka.bootstrap)
    ends = end_offsets(records)
    rng = random.Random(5)
    for kind, db in databases.items():
        open_store(kind, db).close()  # create the tables, so that progress can be watched
        mid_run_kills = 0
        for attempt in range(KILLS):
            before = stored_offsets(kind, db)
            proc = subprocess.Popen(sink_command(kind, db, kafka.bootstrap, "--once", "--batch-size", "20"),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=sink_env(),
                                    stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while proc.poll() is None and stored_offsets(kind, db) == before and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.choice([0, 0.01, 0.05, 0.1]))  # kill at the first commit seen, or a little later
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            err = proc.stderr.read().decode(errors="replace")
            proc.stderr.close()
            at_kill = stored_offsets(kind, db)
            # whatever the moment of the crash: the rows are exactly those of the records
            # below the stored offsets, no more, no less
            assert_table_is(kind, db, expected_table(records, at_kill))
            if proc.returncode == 0:
                break
            assert proc.returncode == -signal.SIGKILL, err[-3000:]
            if at_kill != ends:
                mid_run_kills += 1
        assert mid_run_kills >= 1, f"{kind}: the sink was never killed mid-run"
        _, err = run_sink_once(kind, db, kafka.bootstrap)  # a last run, then exact
        assert_table_is(kind, db, expected_table(records))
        assert stored_offsets(kind, db) == ends
        print(f"\n{kind}: killed -9 mid-run {mid_run_kills} times, then exact")

    # following: picks up new records while running, stops cleanly on SIGTERM
    for kind, db in databases.items():
        proc = subprocess.Popen(sink_command(kind, db, kafka.bootstrap), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=sink_env(), stdin=subprocess.DEVNULL)
        try:
            if kind == "sqlite":
                publish(kafka.bootstrap, phase2)
                records = topic_records(kafka.bootstrap)
            expected = expected_table(records)
            deadline = time.monotonic() + 60
            while table(kind, db) != expected and time.monotonic() < deadline:
                assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-3000:]
                time.sleep(0.2)
            assert_table_is(kind, db, expected)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
            err = proc.stderr.read().decode(errors="replace")
            assert "workerfile sink: read" in err, err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
        assert stored_offsets(kind, db) == end_offsets(records)
