"""What the stream does with a batch of Kafka messages, without any I/O: decode, validate,
re-key, fold, derive, and the records to publish. The faust agents (`streams.app`) are a
thin shell around `intake_message` and `fold_batch`, so this is tested without a broker.

Uses the same `validate_event`, `fold_event`, `derive_file` as `workerfile fold`.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field

import orjson

from processors.derive import derive_file, new_service_events, record_change
from processors.fold import ACCEPTED, DUPLICATE, WorkerState, fold_event, new_state, state_from_bytes, state_to_bytes
from processors.intake import Rejection, validate_event
from processors.views import View, view_records
from schemas.events import Envelope
from streams import codec
from streams.topics import REJECTED_EVENTS, REKEYED_EVENTS, WORKER_FILE_CHANGES, WORKER_FILES, WORKER_SERVICES


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message came from."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Record:
    """One record to publish."""

    topic: str
    key: bytes | None
    value: bytes | None


@dataclass
class Intake:
    """The result of looking at one message: an event to fold, or records to publish
    instead (a rejection, or the event re-keyed by its normalised SSN)."""

    event: Envelope | None = None
    records: list[Record] = field(default_factory=list)
    status: str = "event"  # event / rejected / rekeyed


def rejection_record(rejection: Rejection, key: bytes | None, value: bytes | None, origin: Origin,
                     event_id: str | None = None) -> Record:
    """The `rejected-events` record of a bad message: original bytes, reason, message, origin."""
    raw = value or b""
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    envelope = {
        "reason": rejection.reason, "message": rejection.message, "field": rejection.field,
        "event_id": event_id, "input": text, "input_encoding": encoding,
        "topic": origin.topic, "partition": origin.partition, "offset": origin.offset,
        "file": None, "line": None,
    }
    return Record(REJECTED_EVENTS, key, codec.encode("RejectedEvent", envelope))


def intake_message(key: bytes | None, value: bytes | None, origin: Origin, now: dt.datetime | None = None) -> Intake:
    """Decode and validate one message. A bad message becomes a rejection record; an
    event keyed by anything but its normalised SSN is re-published under that key."""
    if value is None:
        return Intake(status="rejected", records=[rejection_record(
            Rejection("malformed", "empty message (no value)"), key, value, origin)])
    try:
        data = codec.decode_event(value)
    except codec.CodecError as err:
        return Intake(status="rejected", records=[rejection_record(
            Rejection("malformed", f"not an Avro event: {err}"), key, value, origin)])
    event = validate_event(data, now)
    if isinstance(event, Rejection):
        event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
        return Intake(status="rejected", records=[rejection_record(event, key, value, origin, event_id)])
    if key != event.ssn.encode():
        return Intake(status="rekeyed", records=[Record(REKEYED_EVENTS, event.ssn.encode(), codec.encode_event(event))])
    return Intake(event=event)


@dataclass
class Folded:
    """What one worker's batch produced: the new state and the records to publish.
    `grants` are service-event records, to be published only if not already on the
    topic (the shell checks its ledger); `rejected` counts rejected events."""

    state: WorkerState
    records: list[Record] = field(default_factory=list)
    grants: list[tuple[str, Record]] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0


def load_state(ssn: str, blob: bytes | None) -> WorkerState:
    return state_from_bytes(blob) if blob else new_state(ssn)


@dataclass(frozen=True)
class Audiences:
    """The audience views to publish (deploy/views.toml) and the pseudonym key."""

    views: dict[str, View]
    pseudonym_key: bytes | None = None

    @property
    def published(self) -> dict[str, View]:
        """The views published on topics: those keyed by a pseudonym only with the key."""
        return {name: v for name, v in self.views.items()
                if v.topic and v.fields and (v.key != "pseudonym" or self.pseudonym_key is not None)}


def view_output(ssn: str, file: dict | None, changed, state: WorkerState, audiences: Audiences | None) -> list[Record]:
    """The records of every published view the change touches (JSON values; None: tombstone)."""
    if audiences is None:
        return []
    return [Record(topic, key, None if value is None else orjson.dumps(value))
            for topic, key, value in view_records(ssn, file, changed, state.records, audiences.published,
                                                  audiences.pseudonym_key)]


def fold_batch(state: WorkerState, events: list[tuple[Envelope, bytes | None, bytes, Origin]],
               audiences: Audiences | None = None) -> Folded:
    """Fold one worker's events (in arrival order) into `state`, then derive the file once
    and say what to publish: the file, a change event if it changed, the audience views
    it changed, new grants, and a rejection record for each event the fold rejected."""
    out = Folded(state=state)
    applied: list[str] = []
    aliases_before = len(state.aliases)
    for event, key, value, origin in events:
        outcome = fold_event(state, event)
        if outcome.status == ACCEPTED:
            out.accepted += 1
            applied.append(event.event_id)
        elif outcome.status == DUPLICATE:
            out.duplicates += 1
        else:
            out.rejected += 1
            out.records.append(rejection_record(outcome.rejection, key, value, origin, event.event_id))
    if not applied and len(state.aliases) == aliases_before:
        return out
    file = derive_file(state)
    changed = record_change(state, file)
    key = state.ssn.encode()
    if changed:
        out.records.append(Record(WORKER_FILES, key, codec.encode("WorkerFile", file)))
        change = {"ssn": state.ssn, "version": state.version, "changed_sections": changed, "event_ids": applied}
        out.records.append(Record(WORKER_FILE_CHANGES, key, codec.encode("WorkerFileChange", change)))
        out.records.extend(view_output(state.ssn, file, changed, state, audiences))
    for service in new_service_events(state, file):
        out.grants.append((service["service_id"], Record(WORKER_SERVICES, key, codec.encode("ServiceEvent", service))))
    return out


def dump_state(state: WorkerState) -> bytes:
    return state_to_bytes(state)
