"""The AsyncAPI document (docs/asyncapi.json) against what a running worker really writes
(issue #12, item 5): a population with bad inputs, a read through the API and an erasure
go through a real broker and a worker; then every topic that carries records must be a
channel of the document (the views created on demand match its parameterised address),
every record's key and value must decode with the schemas the document names for that
channel (the Avro ones decoded with the schema embedded in the document, not the codec),
tombstones may occur only where the document lists them, every keyed record must be in
the partition the documented partitioner gives, and the live topics' partitions,
replication and configs must be those of the document's local profile."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import fastavro
import orjson
import pytest
from jsonschema import Draft7Validator, FormatChecker
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.partitioner.default import murmur2
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from schemas.avro import schema_fingerprint
from streams import asyncapi, codec
from streams.producer import EventProducer
from streams.reader import latest_files, read_topic
from streams.runner import wait_for
from tests.integration.api_access import Access, api_worker, call
from tests.integration.conftest import expected_files, publish
from workerfile.population import generate_population

pytestmark = pytest.mark.timeout(600)
DOC_URI = "urn:workerfile:asyncapi"
PARAMETER_PATTERNS = {"org": "[0-9A-Z]{18}", "appId": "[A-Za-z0-9._-]+"}


class Document:
    """The committed document, as a reader of it would use it."""

    def __init__(self):
        self.doc = json.loads(asyncapi.ASYNCAPI_PATH.read_text())
        self.registry = Registry().with_resource(DOC_URI, Resource(contents=self.doc, specification=DRAFT7))
        self.channels = []
        for channel in self.doc["channels"].values():
            pattern = re.escape(channel["address"])
            for name, regex in PARAMETER_PATTERNS.items():
                pattern = pattern.replace(re.escape("{" + name + "}"), regex)
            messages = [self.doc["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
                        for ref in channel["messages"].values()]
            self.channels.append((re.compile(pattern + r"\Z"), channel, messages))

    def channel_of(self, topic: str):
        found = [(c, m) for pattern, c, m in self.channels if pattern.match(topic)]
        assert len(found) == 1, f"{topic}: {len(found)} channels of the document match it"
        return found[0]

    def validator(self, pointer: str) -> Draft7Validator:
        return Draft7Validator({"$ref": f"{DOC_URI}#{pointer}"}, registry=self.registry,
                               format_checker=FormatChecker())


def workerfile(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workerfile.cli", *args], capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)


def decode_avro(message: dict, value: bytes) -> dict:
    """A value decoded with the Avro schema of the document's message: the single-object
    header must carry that schema's fingerprint (a row of worker-file-rows: the plain body,
    its schema named in the record headers)."""
    schema = message["payload"]["schema"]
    if message.get("x-framing") == "apicurio-headers":
        body = io.BytesIO(value)
    else:
        assert value[:2] == b"\xc3\x01", "not Avro single-object encoding"
        assert value[2:10] == schema_fingerprint(schema), f"written with another schema than {message['name']}'s"
        body = io.BytesIO(value[10:])
    record = fastavro.schemaless_reader(body, fastavro.parse_schema(json.loads(json.dumps(schema))))
    assert body.read() == b"", "bytes left after the record"
    return record


def live_topics(bootstrap: str) -> dict[str, dict]:
    """Every topic on the broker (but Kafka's own): partitions, replicas, configs."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="asyncapi-truth")
    try:
        names = [t for t in admin.list_topics() if not t.startswith("__")]
        described = {t["name"]: t for t in admin.describe_topics(names)}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        out = {}
        for name in names:
            partitions = described[name]["partitions"]
            out[name] = {"partitions": len(partitions), "replicas": {len(p["replica_nodes"]) for p in partitions},
                         "config": {k: v["value"] for k, v in configs["topic"][name].items()}}
        return out
    finally:
        admin.close()


def test_the_document_tells_the_truth_about_what_a_worker_writes(kafka, tmp_path):
    doc = Document()
    access = Access(tmp_path / "access")  # with a pseudonym key: the integrators' view is published
    items = generate_population(14, seed=23, months=14)  # with bad lines, legacy keys, re-deliveries
    assert any(isinstance(i, str) for i in items)
    expected = expected_files(items)
    erased = sorted(expected)[0]
    proc = api_worker(kafka, tmp_path, access)
    try:
        publish(kafka.bootstrap, items)
        with EventProducer(kafka.bootstrap) as producer:  # an event keyed otherwise is re-keyed (a duplicate here)
            event = producer.checked(next(i for i in items if isinstance(i, dict) and i["type"] == "card.issued"))
            producer.send_raw(producer.topic_for(event), b"not-the-ssn", codec.encode_event(event))
        wait_for(lambda: latest_files(kafka.bootstrap, versions=False) == expected, 180, what="the files")
        status, _ = call("GET", f"{proc.base_url}/workers/{sorted(expected)[1]}?purpose=asyncapi-check",
                         token=access.tokens["operator"])
        assert status == 200
        done = workerfile("admin", "erase", erased, "--reason", "asyncapi truth test", "--operator", "ops",
                          "--broker", kafka.bootstrap)
        assert done.returncode == 0, done.stderr

        def erased_everywhere():
            views = {r.key: r.value for r in read_topic(kafka.bootstrap, "worker-view-social-insurance")}
            return erased not in latest_files(kafka.bootstrap) and views.get(erased.encode(), b"") is None
        wait_for(erased_everywhere, 120, what="the erasure's tombstones")
    finally:
        proc.stop()

    topics = live_topics(kafka.bootstrap)
    records = {name: read_topic(kafka.bootstrap, name) for name in sorted(topics)}
    written = {name for name, rs in records.items() if rs}
    # what this run makes the pipeline write: every kind of channel
    assert {"training-events", "worker-files", "worker-file-rows", "worker-file-changes", "rejected-events", "worker-access-log",
            "workerfile-operator-commands", "workerfile-identity-markers", "workerfile-rekeyed-events",
            "worker-view-social-insurance", "worker-view-pseudonymised",
            "workerfile-api-worker-state-changelog"} <= written
    assert any(t.startswith("worker-view-training.") for t in written)

    profile = "local"
    rejected_origins = set()
    for r in records.get("rejected-events", []):
        origin = decode_avro(doc.channel_of("rejected-events")[1][0], r.value)
        rejected_origins.add((origin["topic"], origin["partition"], origin["offset"]))
        original = next(o for o in records[origin["topic"]]
                        if o.partition == origin["partition"] and o.offset == origin["offset"])
        assert r.key == original.key  # the key of a rejection: the original key, as documented
    tombstones_seen = set()
    undecodable = 0  # inputs that are no Event: each one on rejected-events
    for topic in sorted(topics):
        channel, messages = doc.channel_of(topic)  # every topic on the broker is in the document
        binding = channel["bindings"]["kafka"]
        live = topics[topic]
        assert live["partitions"] == binding["x-profiles"][profile]["partitions"], topic
        assert live["replicas"] == {binding["x-profiles"][profile]["replicas"]}, topic
        for k, v in binding["topicConfiguration"].items():
            assert (live["config"][k].split(",") if k == "cleanup.policy" else int(live["config"][k])) == v, (topic, k)
        values = [m for m in messages if m["payload"] != {"type": "null"}]
        tombstone = [m for m in messages if m["payload"] == {"type": "null"}]
        [message] = values
        key_check = doc.validator(f"/components/messages/{message['name']}/bindings/kafka/key")
        value_check = (doc.validator(f"/components/messages/{message['name']}/payload")
                       if message["contentType"] == "application/json" else None)
        for r in records[topic]:
            where = f"{topic}/{r.partition}/{r.offset}"
            if r.value is None:
                assert tombstone, f"{where}: a tombstone, but the document lists none on this channel"
                tombstones_seen.add(topic)
            elif message["contentType"] == "application/json":
                errors = [e.message for e in value_check.iter_errors(orjson.loads(r.value))]
                assert errors == [], (where, errors[:3])
            elif asyncapi.AVRO_FORMAT == message["payload"].get("schemaFormat"):
                try:
                    decode_avro(message, r.value)
                except Exception:  # noqa: BLE001 - only an input the pipeline rejected may be no Event
                    assert message["title"] == "Event" and (topic, r.partition, r.offset) in rejected_origins, where
                    undecodable += 1
            key_kind = message["bindings"]["kafka"]["key"]
            if r.key is not None and "type" in key_kind:
                assert key_check.is_valid(r.key.decode("utf-8")), f"{where}: key not as documented"
            if r.key is not None:
                # the documented partitioner: murmur2 of the key (of the SSN before "|" on the state changelog)
                hashed = r.key.split(b"|")[0] if key_kind.get("pattern") == asyncapi.KEYS["state"]["pattern"] else r.key
                assert (murmur2(hashed) & 0x7FFFFFFF) % live["partitions"] == r.partition, f"{where}: partition"
    assert undecodable > 0 and len(rejected_origins) > undecodable  # also events that decode but are invalid
    # the erasure's tombstones, and nothing but tombstones where the document allows them
    assert {"worker-files", "worker-view-social-insurance", "worker-view-pseudonymised"} <= tombstones_seen
    assert any(t.startswith("worker-view-training.") for t in tombstones_seen)
