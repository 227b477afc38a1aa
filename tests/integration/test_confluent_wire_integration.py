"""The Confluent wire format end to end, against a real broker and a real schema registry
(Apicurio, the session's `schema_registry`): `workerfile topics` registers the subjects,
`workerfile emit` and POST /events write events as 00 + schema id + Avro, the worker
publishes worker-files / worker-file-changes / worker-services the same way, and
`workerfile subscribe` and `workerfile sink` read them; the files are those of the offline
fold, and confluent-kafka's own deserializer reads them. Also: a worker reads a topic where
both framings are mixed, and a worker without a registry rejects a Confluent value with a
reason naming the variable, and goes on."""

from __future__ import annotations

import base64
import collections
import datetime as dt
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from sinks.base import open_store
from streams import codec
from streams.producer import EventProducer
from streams.reader import decoded, latest_files, read_topic
from streams.runner import WorkerProcess, wait_for
from streams.schema_registry import RegistryClient, register_value_schemas, schema_text, subject_of
from streams.topics import provision
from tests.integration.api_access import Access, api_worker, ingest
from tests.integration.conftest import PARTITIONS, expected_files
from workerfile.population import generate_population
from schemas.events import EVENT_TOPICS

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]
CONVERGE = 240
OUTPUTS = ("worker-files", "worker-file-changes", "worker-services")


@pytest.fixture(autouse=True)
def reader_with_registry(schema_registry):
    """This test process writes single-object encoding (unless a test says otherwise) and
    reads both framings through the registry, like any reader with the URL set."""
    codec.configure("single-object", schema_registry.url)
    yield
    codec.configure()


def confluent_env(registry) -> dict[str, str]:
    return {"WORKERFILE_WIRE_FORMAT": "confluent", "WORKERFILE_SCHEMA_REGISTRY_URL": registry.url}


def cli(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    full = {**os.environ, **(env or {}),
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-m", "workerfile.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=full, stdin=subprocess.DEVNULL)


class ConfluentAccess(Access):
    """The API's callers, and the wire format of the worker that serves it."""

    def __init__(self, folder: Path, registry):
        super().__init__(folder)
        self.registry = registry

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, **confluent_env(self.registry)}


def schema_id(registry, topic: str, name: str) -> int:
    return RegistryClient(registry.url).lookup(subject_of(topic), schema_text(name))["id"]


def framing_of(bootstrap: str, topic: str) -> set[bytes]:
    """The distinct 5-byte headers of the values on `topic` (00 + id), or C3 01 prefixes."""
    return {r.value[:5] if r.value[:1] == b"\x00" else r.value[:2] for r in read_topic(bootstrap, topic)
            if r.value is not None}


def plain(value):
    """confluent-kafka's Python form (dates as datetime.date) -> our JSON form."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def wait_files(bootstrap: str, expected: dict[str, dict]) -> None:
    try:
        wait_for(lambda: latest_files(bootstrap, versions=False) == expected, CONVERGE, interval=2,
                 what="worker-files == offline fold")
    except TimeoutError:
        got = latest_files(bootstrap, versions=False)
        pytest.fail(f"worker-files differs from the offline fold: {len(set(expected) - set(got))} missing, "
                    f"{sum(1 for s in expected if s in got and got[s] != expected[s])} differing")


def test_the_whole_pipeline_in_the_confluent_wire_format(kafka, schema_registry, java_consumer, tmp_path):
    registry = schema_registry
    app_id = "workerfile-confluent"
    done = cli("topics", "--broker", kafka.bootstrap, "--app-id", app_id, "--partitions", str(PARTITIONS),
               "--schema-registry", registry.url)
    assert done.returncode == 0, done.stderr
    assert "subject worker-files-value: WorkerFile id" in done.stdout
    assert all(f"subject {t}-value" in done.stdout for t in OUTPUTS + EVENT_TOPICS)

    items = generate_population(24, seed=41, months=18, anomalies=False)
    expected = expected_files(items)
    grants = sum(len(f["services"]["skill_upgrade_subsidy"]) for f in expected.values())
    assert grants > 0
    half = len(items) // 2
    uploads = tmp_path / "uploads.jsonl"
    uploads.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in items[:half]))

    access = ConfluentAccess(tmp_path / "access", registry)
    worker = api_worker(kafka, tmp_path, access, app_id=app_id)
    try:
        sent = cli("emit", str(uploads), "--broker", kafka.bootstrap, env=confluent_env(registry))
        assert sent.returncode == 0, sent.stderr
        assert len(ingest(worker.base_url, access, items[half:])) == len(items) - half  # POST /events
        wait_files(kafka.bootstrap, expected)
        wait_for(lambda: sum(1 for s in decoded(kafka.bootstrap, "worker-services")
                             if s["service"] == "skill_upgrade_subsidy") >= grants, 60, what="every grant")
    finally:
        worker.kill()

    # Every value on the event and output topics is 00 + the id of its subject's schema.
    event_id = schema_id(registry, "training-events", "Event")
    for topic in EVENT_TOPICS:
        assert framing_of(kafka.bootstrap, topic) == {b"\x00" + struct.pack(">I", event_id)}, topic
    for topic, name in zip(OUTPUTS, ("WorkerFile", "WorkerFileChange", "ServiceEvent")):
        assert framing_of(kafka.bootstrap, topic) == {b"\x00" + struct.pack(">I", schema_id(registry, topic, name))}

    # An independent reader: confluent-kafka's AvroDeserializer and its own registry client.
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry.url}))
    theirs = {}
    for record in read_topic(kafka.bootstrap, "worker-files"):
        if record.value is not None:
            file = plain(deserialize(record.value, SerializationContext("worker-files", MessageField.VALUE)))
            theirs[file["ssn"]] = file
    ours = latest_files(kafka.bootstrap)
    assert theirs.keys() == ours.keys()
    for ssn, file in ours.items():  # the same record; Avro's nulls for absent optional fields aside
        assert {k: v for k, v in theirs[ssn].items() if v is not None or k in file} == file, "file differs"

    # The subscriber and the sink read the Confluent framing (the registry URL is all they need).
    reader_env = {"WORKERFILE_SCHEMA_REGISTRY_URL": registry.url}
    subscribed = cli("subscribe", "services", "--broker", kafka.bootstrap, "--once", "--json", env=reader_env)
    assert subscribed.returncode == 0, subscribed.stderr
    printed = [json.loads(line) for line in subscribed.stdout.splitlines() if line.strip()]
    assert sum(1 for m in printed if m["service"] == "skill_upgrade_subsidy" and m["status"] == "offered") == grants
    # The Java consumer example (examples/java/) with the registry prints the same lines.
    for what in ("services", "changes"):
        python = cli("subscribe", what, "--broker", kafka.bootstrap, "--once", "--json", "--group",
                     f"py-{what}", env=reader_env)
        assert python.returncode == 0, python.stderr
        java = java_consumer.run(what, "--broker", kafka.bootstrap, "--once", "--json", "--group", f"java-{what}",
                                 "--registry", registry.url)
        assert java.returncode == 0, java.stderr[-3000:]
        assert java.lines and collections.Counter(java.lines) == collections.Counter(python.stdout.splitlines())
    db = str(tmp_path / "files.sqlite3")
    sunk = cli("sink", "sqlite", "--broker", kafka.bootstrap, "--db", db, "--once", env=reader_env)
    assert sunk.returncode == 0, sunk.stderr
    with open_store("sqlite", db) as store:
        assert {r["ssn"]: r["document"] for r in store.rows()} == ours

    # Without the URL the sink cannot read them: it stops, naming the variable.
    unset = {k: v for k, v in os.environ.items() if k != "WORKERFILE_SCHEMA_REGISTRY_URL"}
    blind = subprocess.run([sys.executable, "-m", "workerfile.cli", "sink", "sqlite", "--broker", kafka.bootstrap,
                            "--db", str(tmp_path / "blind.sqlite3"), "--once"], capture_output=True, text=True,
                           timeout=240, cwd=ROOT, env={**unset, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL)
    assert blind.returncode != 0 and "WORKERFILE_SCHEMA_REGISTRY_URL" in blind.stderr, blind.stderr


def test_the_worker_reads_both_framings_mixed_on_one_topic(kafka, schema_registry, tmp_path):
    register_value_schemas(RegistryClient(schema_registry.url))
    items = generate_population(20, seed=43, months=18, anomalies=False)
    expected = expected_files(items)
    app_id = "workerfile-mixed"
    provision(kafka.bootstrap, app_id, PARTITIONS)
    # A single-object worker that knows the registry: it writes C3 01, reads both.
    worker = WorkerProcess(kafka.bootstrap, app_id, tmp_path / "w", partitions=PARTITIONS,
                           env={"WORKERFILE_SCHEMA_REGISTRY_URL": schema_registry.url}).start()
    try:
        with EventProducer(kafka.bootstrap) as producer:
            for n, item in enumerate(items):
                codec.configure("confluent" if n % 2 else "single-object", schema_registry.url)
                event = producer.checked(item)
                producer.send_raw(producer.topic_for(event), event.ssn.encode(), codec.encode_event(event))
        codec.configure("single-object", schema_registry.url)
        heads = set().union(*(framing_of(kafka.bootstrap, t) for t in EVENT_TOPICS))
        assert codec.MARKER in heads and any(h[:1] == b"\x00" for h in heads)  # both on the topics
        wait_files(kafka.bootstrap, expected)
        assert framing_of(kafka.bootstrap, "worker-files") == {codec.MARKER}
        assert read_topic(kafka.bootstrap, "rejected-events") == []
    finally:
        worker.kill()


def test_a_worker_without_registry_rejects_a_confluent_value_and_goes_on(kafka, schema_registry, tmp_path):
    register_value_schemas(RegistryClient(schema_registry.url))
    items = generate_population(3, seed=44, months=6, anomalies=False)
    app_id = "workerfile-blind"
    provision(kafka.bootstrap, app_id, PARTITIONS)
    assert "WORKERFILE_SCHEMA_REGISTRY_URL" not in os.environ  # the worker inherits no registry
    worker = WorkerProcess(kafka.bootstrap, app_id, tmp_path / "w", partitions=PARTITIONS).start()
    try:
        confluent_one = items[0]
        with EventProducer(kafka.bootstrap) as producer:
            codec.configure("confluent", schema_registry.url)
            event = producer.checked(confluent_one)
            producer.send_raw(producer.topic_for(event), event.ssn.encode(), codec.encode_event(event))
            codec.configure("single-object", schema_registry.url)
            for item in items[1:]:
                event = producer.checked(item)
                producer.send_raw(producer.topic_for(event), event.ssn.encode(), codec.encode_event(event))
        expected = expected_files(items[1:])
        wait_for(lambda: len(read_topic(kafka.bootstrap, "rejected-events")) >= 1, CONVERGE, what="the rejection")
        (rejected,) = decoded(kafka.bootstrap, "rejected-events")
        assert rejected["reason"] == "malformed"
        assert "WORKERFILE_SCHEMA_REGISTRY_URL" in rejected["message"]
        original = (base64.b64decode(rejected["input"]) if rejected["input_encoding"] == "base64"
                    else rejected["input"].encode())
        assert original[:1] == b"\x00" and codec.decode_event(original)["event_id"] == confluent_one["event_id"]
        # and the stream went on: the other events are folded (the first one's worker may
        # have more events among the others, so compare with the fold of those)
        wait_for(lambda: latest_files(kafka.bootstrap, versions=False) == expected, CONVERGE, interval=2,
                 what="the other files")
        assert worker.running
    finally:
        worker.kill()
