"""The Java consumer example (examples/java/) against a real broker and worker: a
generated population, its subsidy grants taken through claims, decisions and payments
(contract section 9), folded by `workerfile worker`; then, with the worker stopped,
values of older schema releases and records that are not messages of the topics added to
worker-services, worker-file-changes and worker-files. The Java consumer (`--once`: up to
the end offsets) prints, line for line, what `workerfile subscribe services|changes
--once` prints for the same topics (the human line with the number masked, and --json),
and for worker-files the JSON line of each file as the Python codec decodes it; both
count the same records as unreadable."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import fastavro
import pytest
from kafka import KafkaProducer

from schemas.avro import released_versions
from streams import codec
from streams.local_kafka import LocalKafka
from streams.reader import latest_files, read_topic
from streams.runner import WorkerProcess, wait_for
from streams.topics import ensure_topics, load_topic_specs, provision
from tests.integration.conftest import PARTITIONS, expected_files, publish
from tests.services_population import service_events
from workerfile.population import generate_population

pytestmark = pytest.mark.timeout(1500)  # the first test builds the jar (Maven online), the module's broker folds

ROOT = Path(__file__).resolve().parents[2]
FULL_SSN = re.compile(r"\d{17}[\dX]")
PY_SUMMARY = re.compile(r"read (\d+) records of \S+: (\d+) \w+ handed on, (\d+) already handed on, (\d+) unreadable")
TOPIC = {"services": "worker-services", "changes": "worker-file-changes", "files": "worker-files"}
RECORD = {"services": "ServiceEvent", "changes": "WorkerFileChange", "files": "WorkerFile"}


def frame(name: str, schema: dict, record: dict) -> bytes:
    """A record written with an older release's schema (single-object encoding)."""
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), codec.avro_record(name, record))
    return codec.MARKER + codec.schema_fingerprint(schema) + body.getvalue()


def older_releases(name: str) -> list[dict]:
    """The schemas of `name` of the older releases, one per fingerprint."""
    found: dict[bytes, dict] = {}
    for schemas in released_versions().values():
        if name in schemas and codec.schema_fingerprint(schemas[name]) != codec.CURRENT[name].fingerprint:
            found.setdefault(codec.schema_fingerprint(schemas[name]), schemas[name])
    return list(found.values())


class Pipeline:
    """The module's broker after the worker folded the population and stopped."""

    def __init__(self, bootstrap: str, expected: dict[str, dict]):
        self.bootstrap = bootstrap
        self.expected = expected


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("java-pipeline")
    broker = LocalKafka()
    broker.start()
    worker = None
    try:
        ensure_topics(broker.bootstrap, load_topic_specs("local", partitions=PARTITIONS))
        provision(broker.bootstrap, "java-consumer-test", PARTITIONS)
        items = generate_population(40, seed=61, months=24)
        handling = service_events(list(expected_files(items).values()))
        assert handling
        expected = expected_files(items + handling)
        worker = WorkerProcess(broker.bootstrap, "java-consumer-test", root / "worker", partitions=PARTITIONS,
                               env={"PYTHONPATH": str(ROOT)}).start()
        publish(broker.bootstrap, items + handling)
        wait_for(lambda: latest_files(broker.bootstrap, versions=False) == expected, 600, interval=2,
                 what="every file on worker-files")
        worker.stop()
        assert not worker.running
        add_odd_records(broker.bootstrap)
        yield Pipeline(broker.bootstrap, expected)
    finally:
        if worker is not None:
            worker.kill()
        broker.stop()


def add_odd_records(bootstrap: str) -> None:
    """On each topic: its first messages again written with every older release's schema
    (where there is one), a value that is no Avro, one of another record, and one with
    bytes after the record; on worker-files also a tombstone."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for what, topic in TOPIC.items():
            records = [r for r in read_topic(bootstrap, topic) if r.value is not None]
            assert records, topic
            name = RECORD[what]
            messages = [(r.key, codec.decode(r.value)[1]) for r in records]
            # releases 1-3 of ServiceEvent knew grants only, no notices
            messages = [(k, m) for k, m in messages if m.get("service", "skill_upgrade_subsidy") != "notice"]
            for schema in older_releases(name):
                for key, message in messages[:3]:
                    producer.send(topic, key=key, value=frame(name, schema, message))
            other = read_topic(bootstrap, TOPIC["changes" if what != "changes" else "files"])[0].value
            producer.send(topic, key=records[0].key, value=b"not avro at all")
            producer.send(topic, key=records[0].key, value=other)
            producer.send(topic, key=records[-1].key, value=records[-1].value + b"\x00")
            if what == "files":
                producer.send(topic, key=records[1].key, value=None)
        producer.flush(60)
    finally:
        producer.close()


def python_subscribe(pipeline: Pipeline, what: str, as_json: bool, tmp_path) -> tuple[list[str], dict[str, int]]:
    """`workerfile subscribe WHAT --once` of this worktree: its lines and its counts."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([sys.executable, "-m", "workerfile.cli", "subscribe", what, "--broker", pipeline.bootstrap,
                           "--once", "--group", f"py-{uuid.uuid4().hex}", "--rejects", str(tmp_path / "rejects.jsonl"),
                           *(["--json"] if as_json else [])],
                          capture_output=True, timeout=300, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, stderr[-3000:]
    (read, handed, repeated, unreadable), = PY_SUMMARY.findall(stderr)
    return done.stdout.decode("utf-8").split("\n")[:-1], {
        "read": int(read), "printed": int(handed), "repeated": int(repeated), "unreadable": int(unreadable)}


def java(java_consumer, pipeline: Pipeline, what: str, as_json: bool):
    run = java_consumer.run(what, "--broker", pipeline.bootstrap, "--once", "--group", f"java-{uuid.uuid4().hex}",
                            *(["--json"] if as_json else []))
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def by_ssn(lines: list[str]) -> dict[str, list[str]]:
    """The JSON lines of each worker in the order printed (one worker's records are on one
    partition, in order; records of several partitions may interleave otherwise)."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        grouped[json.loads(line)["ssn"]].append(line)
    return dict(grouped)


@pytest.mark.parametrize("what", ["services", "changes"])
def test_the_human_lines_are_those_of_workerfile_subscribe(java_consumer, pipeline, what, tmp_path):
    expected, counts = python_subscribe(pipeline, what, False, tmp_path)
    run = java(java_consumer, pipeline, what, False)
    assert Counter(run.lines) == Counter(expected)
    assert run.counts() == counts and counts["unreadable"] == 3 and counts["read"] > counts["printed"] > 0
    assert not any(FULL_SSN.search(line) for line in run.lines) and not FULL_SSN.search(run.stderr)
    if what == "services":  # grants in every status, and their older-release copies (no status: "offered")
        assert {"offered", "claimed", "approved", "paid", "refused"} <= {
            line.rsplit(", ", 1)[1].split(" ")[-3] for line in run.lines if line.startswith("grant ")}


@pytest.mark.parametrize("what", ["services", "changes"])
def test_the_json_lines_are_those_of_workerfile_subscribe(java_consumer, pipeline, what, tmp_path):
    expected, counts = python_subscribe(pipeline, what, True, tmp_path)
    run = java(java_consumer, pipeline, what, True)
    assert by_ssn(run.lines) == by_ssn(expected)
    assert Counter(run.lines) == Counter(expected)
    assert run.counts() == counts
    if what == "services":  # the copies written with releases 1-3 (no status, no version; one per service_id)
        assert any(json.loads(line)["status"] is None for line in run.lines)


def test_files_are_the_python_decode_of_worker_files(java_consumer, pipeline):
    lines, unreadable, tombstones = [], 0, 0
    for record in read_topic(pipeline.bootstrap, "worker-files"):
        if record.value is None:
            tombstones += 1
            continue
        try:
            name, message = codec.decode(record.value)
        except codec.CodecError:
            unreadable += 1
            continue
        if name != "WorkerFile":
            unreadable += 1
            continue
        lines.append(json.dumps(message, ensure_ascii=False))
    assert unreadable == 3 and tombstones == 1
    assert len(lines) > len(pipeline.expected)
    run = java(java_consumer, pipeline, "files", True)
    assert by_ssn(run.lines) == by_ssn(lines)
    assert run.counts() == {"read": len(lines) + unreadable + tombstones, "printed": len(lines), "repeated": 0,
                            "unreadable": unreadable, "tombstones": tombstones}
    assert sum('"version"' not in line for line in run.lines) == 3  # the copies of releases 1 and 2 (no version)
    assert len(older_releases("WorkerFile")) == 2  # and of release 3
    latest = {}
    for line in run.lines:
        file = json.loads(line)
        file.pop("version", None)
        latest[file["ssn"]] = file
    assert set(latest) == set(pipeline.expected)
