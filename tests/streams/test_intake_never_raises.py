"""Nothing may be lost at intake: `intake_message` answers every byte string with an event
or exactly one rejection record (never an exception), and a rejection of a value too
large to publish whole keeps a bounded prefix with the whole value's size and SHA-256."""

from __future__ import annotations

import base64
import hashlib
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.identity import make_org_code, make_ssn
from processors.intake import Rejection, validate_event
from streams import codec
from streams.handler import INPUT_LIMIT, Origin, intake_message, rejection_record
from streams.topics import REJECTED_EVENTS, REKEYED_EVENTS

SSN = make_ssn("11010519800101001")
ORG = make_org_code("91440300192203821")
ORIGIN = Origin("training-events", 1, 42)

VALID = [
    {"event_id": "e-1", "type": "insurance.contribution", "ssn": SSN, "occurred_at": "2025-01-15T10:00:00+08:00",
     "source": ORG, "corrects": None, "payload": {"scheme": "pension", "month": "2025-01", "region": "110105",
                                                  "base_cny": 5000, "employer_amount_cny": 800,
                                                  "personal_amount_cny": 400}},
    {"event_id": "e-2", "type": "training.enrolled", "ssn": SSN, "occurred_at": "2025-02-01T09:00:00+08:00",
     "source": ORG, "corrects": None, "payload": {"program_id": "PX-1", "program_name": "焊工", "start_date":
                                                  "2025-02-03", "planned_hours": 120}},
]


def wire(data: dict) -> bytes:
    event = validate_event(data)
    assert not isinstance(event, Rejection), event
    return codec.encode_event(event)


WIRES = [wire(v) for v in VALID]


def check_answer(key: bytes | None, value: bytes | None) -> None:
    """The property: no exception; an event with no record, or one record (a rejection,
    or the event re-keyed) that can be decoded again."""
    intake = intake_message(key, value, ORIGIN)
    if intake.event is not None:
        assert intake.status == "event" and intake.records == []
        return
    [record] = intake.records
    name, body = codec.decode(record.value)
    if intake.status == "rekeyed":
        assert record.topic == REKEYED_EVENTS and name == "Event"
        return
    assert intake.status == "rejected" and record.topic == REJECTED_EVENTS and name == "RejectedEvent"
    assert body["reason"] in ("malformed", "schema", "unknown_type", "invalid_ssn", "invalid_org_code",
                              "invalid_occupation_code", "invalid_date", "future_date")
    assert (body["topic"], body["partition"], body["offset"]) == (ORIGIN.topic, ORIGIN.partition, ORIGIN.offset)
    raw = value or b""
    kept = base64.b64decode(body["input"]) if body["input_encoding"] == "base64" else body["input"].encode()
    assert kept == raw  # small inputs are kept whole


HEADER = WIRES[0][:10]  # marker and fingerprint of the current Event schema


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: HEADER + b)),
       st.one_of(st.none(), st.binary(max_size=20), st.just(SSN.encode())))
def test_generated_bytes_never_raise(value, key):
    check_answer(key, value)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(WIRES), st.data())
def test_truncated_valid_values_never_raise(value, data):
    cut = data.draw(st.integers(min_value=0, max_value=len(value) - 1))
    check_answer(SSN.encode(), value[:cut])


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(WIRES), st.data())
def test_valid_values_with_flipped_bytes_never_raise(value, data):
    flipped = bytearray(value)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        at = data.draw(st.integers(min_value=0, max_value=len(value) - 1))
        flipped[at] ^= data.draw(st.integers(min_value=1, max_value=255))
    check_answer(SSN.encode(), bytes(flipped))


def test_a_valid_value_is_an_event():
    intake = intake_message(SSN.encode(), WIRES[0], ORIGIN)
    assert intake.event is not None and intake.event.event_id == "e-1"


def test_an_oversized_rejection_keeps_a_prefix_the_size_and_the_sha256():
    value = os.urandom(1_200_000)
    intake = intake_message(b"k", value, ORIGIN)
    [record] = intake.records
    assert len(record.value) < 2 * INPUT_LIMIT  # base64 of the prefix, and the rest
    _, body = codec.decode(record.value)
    assert body["reason"] == "malformed" and body["input_truncated"] is True
    assert body["input_size"] == len(value)
    assert body["input_sha256"] == hashlib.sha256(value).hexdigest()
    assert body["input_encoding"] == "base64"
    assert base64.b64decode(body["input"]) == value[:INPUT_LIMIT]
    assert (body["topic"], body["partition"], body["offset"]) == (ORIGIN.topic, ORIGIN.partition, ORIGIN.offset)


def test_a_small_rejection_is_whole_and_says_nothing_of_truncation():
    _, body = codec.decode(rejection_record(Rejection("malformed", "x"), b"k", b"abc", ORIGIN).value)
    assert body["input"] == "abc" and body["input_truncated"] is False
    assert body["input_size"] is None and body["input_sha256"] is None


def test_an_oversized_utf8_value_keeps_a_utf8_prefix_cut_between_characters():
    value = ("焊" * (INPUT_LIMIT // 3 + 10)).encode()  # 3 bytes a character: the limit falls inside one
    assert INPUT_LIMIT % 3 != 0
    _, body = codec.decode(rejection_record(Rejection("malformed", "x"), b"k", value, ORIGIN).value)
    assert body["input_encoding"] == "utf-8" and body["input_truncated"] is True
    kept = body["input"].encode()
    assert value.startswith(kept) and INPUT_LIMIT - 3 < len(kept) <= INPUT_LIMIT
    assert body["input_size"] == len(value) and body["input_sha256"] == hashlib.sha256(value).hexdigest()
