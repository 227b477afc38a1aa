"""The Confluent wire format of streams/codec.py against a real schema registry (Apicurio,
the session's `schema_registry`): registration of the subjects, the framing written
(00, 4-byte big-endian id, Avro body), both framings read by every process, the errors
(no registry configured, unknown id, bad magic), a writer schema known only to the
registry resolved to the current one, and an independent Confluent reader."""

from __future__ import annotations

import copy
import io
import json
import struct
import uuid

import fastavro
import pytest

from processors.intake import validate_event
from schemas.avro import SCHEMA_DIR, load_schemas
from schemas.events import event_to_json_dict
from streams import codec
from streams.codec import CodecError
from streams.handler import Origin, intake_message
from streams.schema_registry import (
    VALUE_SCHEMAS, RegistryClient, RegistryError, register_value_schemas, schema_text, subject_of, writer_ids,
)
from tests.streams.test_codec import NOW, SAMPLE, SSN


@pytest.fixture
def registered(schema_registry) -> RegistryClient:
    client = RegistryClient(schema_registry.url)
    register_value_schemas(client)
    return client


@pytest.fixture(autouse=True)
def reset_wire():
    """Every test starts and ends with the framing of the environment (single-object)."""
    codec.configure()
    yield
    codec.configure()


def event() -> dict:
    return event_to_json_dict(validate_event(SAMPLE, NOW))


def _error(data: bytes) -> str:
    with pytest.raises(CodecError) as err:
        codec.decode(data)
    message = str(err.value)
    assert SSN not in message  # never the content
    return message


def test_registration_sets_backward_and_is_idempotent(schema_registry):
    client = RegistryClient(schema_registry.url)
    first = register_value_schemas(client)
    assert len(first) == len(VALUE_SCHEMAS)
    again = register_value_schemas(client)
    assert all(line.endswith("(ok, BACKWARD)") for line in again), again
    assert [line.split(" id ")[1].split()[0] for line in first] == [line.split(" id ")[1].split()[0] for line in again]
    for topic, name in VALUE_SCHEMAS.items():
        subject = subject_of(topic)
        assert client.compatibility(subject) == "BACKWARD"
        fetched = client.schema_by_id(client.lookup(subject, schema_text(name))["id"])
        assert json.loads(fetched["schema"]) == load_schemas(SCHEMA_DIR)[name]  # self-contained, as in schemas/avro
        assert not fetched.get("references")
    ids = writer_ids(client)
    assert set(ids) == set(VALUE_SCHEMAS.values())
    assert len(set(ids.values())) == len(ids)  # one id per schema, the same under every subject of it


def test_a_schema_not_backward_compatible_is_refused(schema_registry):
    client = RegistryClient(schema_registry.url)
    topic = f"compat-{uuid.uuid4().hex[:8]}"
    register_value_schemas(client, {topic: "ServiceEvent"})
    newer = copy.deepcopy(load_schemas(SCHEMA_DIR)["ServiceEvent"])
    newer["fields"].append({"name": "required_without_default", "type": "string"})
    with pytest.raises(RegistryError) as err:
        client.register(subject_of(topic), json.dumps(newer))
    assert err.value.status == 409


def test_confluent_framing_written_and_read(registered):
    body_single_object = codec.encode("Event", event())[codec.HEADER_SIZE:]
    codec.configure("confluent", registered.url)
    ids = writer_ids(registered)
    data = codec.encode_event(validate_event(SAMPLE, NOW))
    assert data[:1] == b"\x00"
    assert struct.unpack(">I", data[1:5])[0] == ids["Event"]
    assert data[5:] == body_single_object  # the same Avro body, another framing
    assert codec.decode_event(data) == event()
    rejected = intake_message(b"k", b"{}", Origin("training-events", 0, 1), NOW).records[0].value
    assert struct.unpack(">I", rejected[1:5])[0] == ids["RejectedEvent"]


def test_both_framings_are_read_whatever_the_process_writes(registered):
    single = codec.encode("Event", event())
    assert single[:2] == codec.MARKER
    codec.configure("confluent", registered.url)
    confluent = codec.encode("Event", event())
    assert codec.decode(single) == codec.decode(confluent) == ("Event", event())
    # A process writing single-object encoding with the registry URL set reads both too.
    codec.configure("single-object", registered.url)
    assert codec.encode("Event", event())[:2] == codec.MARKER
    assert codec.decode(single) == codec.decode(confluent) == ("Event", event())


def test_the_producer_asks_the_registry_once_not_per_record(registered, monkeypatch):
    wire = codec.configure("confluent", registered.url).prepare()
    expected = struct.pack(">I", writer_ids(registered)["Event"])
    calls = []
    monkeypatch.setattr(RegistryClient, "_call", lambda *a, **k: calls.append(a) or {})
    values = [codec.encode("Event", event()) for _ in range(50)]
    assert calls == []
    assert {v[1:5] for v in values} == {expected}
    assert wire.header(codec.CURRENT["Event"]) == b"\x00" + expected


def test_confluent_value_without_registry_names_the_variable(registered):
    codec.configure("confluent", registered.url)
    data = codec.encode("Event", event())
    codec.configure("single-object", None)
    message = _error(data)
    assert "WORKERFILE_SCHEMA_REGISTRY_URL" in message and "Confluent wire format" in message


def test_the_worker_rejects_a_confluent_value_it_cannot_read_with_the_reason(registered):
    codec.configure("confluent", registered.url)
    data = codec.encode("Event", event())
    codec.configure("single-object", None)
    result = intake_message(SSN.encode(), data, Origin("employment-events", 1, 7), NOW)
    assert result.status == "rejected"
    (record,) = result.records
    assert record.topic == "rejected-events"
    _, rejected = codec.decode(record.value)
    assert rejected["reason"] == "malformed"
    assert "WORKERFILE_SCHEMA_REGISTRY_URL" in rejected["message"]
    assert (rejected["topic"], rejected["partition"], rejected["offset"]) == ("employment-events", 1, 7)
    assert rejected["input_encoding"] == "base64"  # the original bytes kept for a replay
    import base64
    assert base64.b64decode(rejected["input"]) == data


def test_unknown_schema_id(registered):
    codec.configure("single-object", registered.url)
    message = _error(b"\x00" + struct.pack(">I", 987654) + b"\x02")
    assert "unknown schema id 987654" in message
    # Asked again: the same answer (from the cache of unknown ids).
    assert "unknown schema id 987654" in _error(b"\x00" + struct.pack(">I", 987654) + b"\x02")


def test_bad_magic_and_truncated_headers(registered):
    codec.configure("confluent", registered.url)
    data = codec.encode("Event", event())
    message = _error(b"\x01" + data[1:])
    assert "starts with 01" in message and "C3 01" in message and "magic byte 00" in message
    assert "truncated header: 3 bytes" in _error(data[:3]) and "4-byte schema id" in _error(data[:3])
    for cut in range(5, len(data), 7):
        assert "corrupt or truncated Avro body of Event" in _error(data[:cut])


def test_a_writer_schema_only_the_registry_knows_resolves_to_the_current_one(registered):
    """A producer with a newer schema (one more field, with a default): its values carry the
    registry's id, and this version reads them as its current schema."""
    newer = copy.deepcopy(load_schemas(SCHEMA_DIR)["Event"])
    newer["fields"].append({"name": "channel", "type": "string", "default": "web"})
    subject = f"newer-{uuid.uuid4().hex[:8]}-value"
    schema_id = registered.register(subject, json.dumps(newer))
    record = codec.avro_record("Event", event())
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(newer), {**record, "channel": "app"})
    codec.configure("single-object", registered.url)
    assert codec.decode(b"\x00" + struct.pack(">I", schema_id) + body.getvalue()) == ("Event", event())


def test_a_registered_schema_of_a_record_this_version_does_not_read(registered):
    other = {"type": "record", "name": "Elsewhere", "namespace": "test.other", "fields": [{"name": "x", "type": "int"}]}
    schema_id = registered.register(f"other-{uuid.uuid4().hex[:8]}-value", json.dumps(other))
    codec.configure("single-object", registered.url)
    assert "is a Elsewhere schema, not a record this version reads" in _error(
        b"\x00" + struct.pack(">I", schema_id) + b"\x02")


def test_settings_errors_name_the_variables(schema_registry):
    with pytest.raises(CodecError, match="WORKERFILE_SCHEMA_REGISTRY_URL"):
        codec.configure("confluent", None)
    with pytest.raises(CodecError, match="WORKERFILE_WIRE_FORMAT must be one of single-object, confluent"):
        codec.configure("avro-json", None)
    # Confluent mode against a registry where the subjects are missing: stops at start,
    # naming the subject and the command that registers it.
    empty = RegistryClient(schema_registry.url)
    with pytest.raises(RegistryError, match="run `workerfile topics`"):
        writer_ids(empty, {f"missing-{uuid.uuid4().hex[:8]}": "Event"})


def test_records_of_the_topics_round_trip_in_both_framings(registered):
    from processors.batch import fold_lines
    from tests.integration.conftest import as_line

    rejected = intake_message(b"not-the-key", b"{}", Origin("training-events", 0, 1), NOW).records[0].value
    samples = {
        "Event": event(),
        "RejectedEvent": codec.decode(rejected)[1],
        "WorkerFile": {**fold_lines([as_line(SAMPLE)], now=NOW).files()[0], "version": 1},
    }
    for name, record in samples.items():
        codec.configure()
        single = codec.encode(name, record)
        codec.configure("confluent", registered.url)
        confluent = codec.encode(name, record)
        assert confluent[:1] == b"\x00" and single[:2] == codec.MARKER
        assert codec.decode(single) == codec.decode(confluent) == (name, record)


def test_an_independent_confluent_deserializer_reads_what_the_codec_writes(registered):
    """confluent-kafka's AvroDeserializer (its own registry client, against Apicurio's
    ccompat API) reads the Confluent framing: the wire format is Confluent's, not ours."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    codec.configure("confluent", registered.url)
    data = codec.encode("Event", event())
    read = AvroDeserializer(SchemaRegistryClient({"url": registered.url}))(
        data, SerializationContext("employment-events", MessageField.VALUE))
    expected = event()
    assert read["event_id"] == expected["event_id"] and read["ssn"] == expected["ssn"]
    assert read["payload"]["end_date"].isoformat() == expected["payload"]["end_date"]
    assert read["payload"]["reason"] == expected["payload"]["reason"]


def test_a_registry_that_cannot_be_reached_is_not_a_bad_value(registered):
    """Not reachable: RegistryUnavailable (a reader that can wait tries again, the
    subscriber does), not the CodecError of a bad value that it would set aside."""
    from collections import namedtuple

    from streams.local_kafka import free_ports
    from streams.subscribe import read_message

    codec.configure("confluent", registered.url)
    from tests.streams.test_subscribe_messages import service

    data = codec.encode("ServiceEvent", service())
    [closed] = free_ports(1)
    codec.configure("single-object", f"http://127.0.0.1:{closed}/apis/ccompat/v7")
    with pytest.raises(codec.RegistryUnavailable, match="not reachable"):
        codec.decode(data)
    record = namedtuple("Record", "topic partition offset key value")("worker-services", 0, 5, b"k", data)
    with pytest.raises(codec.RegistryUnavailable):
        read_message("services", record)
    codec.configure("single-object", registered.url)  # back: the same value reads
    assert read_message("services", record) == service()

