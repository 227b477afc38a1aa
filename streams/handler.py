"""What the stream does with a batch of Kafka messages, without any I/O: decode, validate,
re-key, fold, derive, and the records to publish. The faust agents (`streams.app`) are a
thin shell around `intake_message` and `fold_batch`, so this is tested without a broker.

Uses the same `validate_event`, `fold_event`, `derive_file` as `workerfile fold`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass, field

import orjson

from processors.derive import derive_file, new_service_events, record_change
from processors.services import DEFAULT_RULES, SubsidyRules
from processors.fold import (
    ACCEPTED, WorkerState, emptied, fold_event, from_table, merge_states, state_from_bytes, state_to_bytes,
    table_writes, tally,
)
from schemas.identity import mask_ssn
from processors.intake import Rejection, validate_event
from processors.organisations import Organisations
from processors.rows import file_row
from processors.views import View, view_records
from schemas.events import Envelope
from streams import codec
from streams.topics import (
    OPERATOR_COMMANDS, REJECTED_EVENTS, REKEYED_EVENTS, WORKER_ACCESS_LOG, WORKER_FILE_CHANGES, WORKER_FILE_ROWS,
    WORKER_FILES, WORKER_SERVICES,
)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message came from."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Output:
    """One record to publish: topic, key, value (None: a tombstone). Not a
    processors.fold.Record, which is what a state keeps of an event."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()  # only on worker-file-rows (streams.codec.row_headers)


@dataclass
class Intake:
    """The result of looking at one message: an event to fold, or records to publish
    instead (a rejection, or the event re-keyed by its normalised SSN)."""

    event: Envelope | None = None
    records: list[Output] = field(default_factory=list)
    status: str = "event"  # event / rejected / rekeyed


INPUT_LIMIT = 256 * 1024  # bytes of an original value kept whole on `rejected-events`


def rejection_record(rejection: Rejection, key: bytes | None, value: bytes | None, origin: Origin,
                     event_id: str | None = None) -> Output:
    """The `rejected-events` record of a bad message: original bytes, reason, message, origin.
    A value above INPUT_LIMIT bytes would make a record larger than the producer (or the
    topic) takes: its first INPUT_LIMIT bytes are kept, with the whole value's size and
    SHA-256 and `input_truncated`, so that the rejection is always published."""
    raw = value or b""
    envelope = {
        "reason": rejection.reason, "message": rejection.message, "field": rejection.field,
        "event_id": event_id, "topic": origin.topic, "partition": origin.partition, "offset": origin.offset,
        "file": None, "line": None,
    }
    if len(raw) > INPUT_LIMIT:
        envelope.update(input_size=len(raw), input_sha256=hashlib.sha256(raw).hexdigest(), input_truncated=True)
        raw = raw[:INPUT_LIMIT]
        try:  # a cut through the last UTF-8 character: the prefix ends before it
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            if err.end == len(raw) and err.start >= len(raw) - 3:
                raw = raw[:err.start]
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    envelope.update(input=text, input_encoding=encoding)
    try:
        return Output(REJECTED_EVENTS, key, codec.encode("RejectedEvent", envelope))
    except codec.CodecError:  # e.g. a message or field that Avro cannot carry: the reason and origin stay
        envelope.update(message=f"{rejection.reason} (the message could not be encoded)", field=None,
                        event_id=None)
        return Output(REJECTED_EVENTS, key, codec.encode("RejectedEvent", envelope))


def intake_message(key: bytes | None, value: bytes | None, origin: Origin, now: dt.datetime | None = None,
                   organisations: Organisations | None = None) -> Intake:
    """Decode and validate one message. A bad message becomes a rejection record; an
    event keyed by anything but its normalised SSN is re-published under that key.
    `organisations`: the registry whose roles sources must have (None: not checked)."""
    if value is None:
        return Intake(status="rejected", records=[rejection_record(
            Rejection("malformed", "empty message (no value)"), key, value, origin)])
    try:
        data = codec.decode_event(value)
    except codec.RegistryUnavailable:
        raise  # the value may be fine: the batch fails and is tried again (nothing acked, nothing rejected)
    except Exception as err:  # CodecError, and anything a garbage body makes fastavro raise
        detail = err if isinstance(err, codec.CodecError) else f"undecodable body ({type(err).__name__})"
        return Intake(status="rejected", records=[rejection_record(
            Rejection("malformed", f"not an Avro event: {detail}"), key, value, origin)])
    try:
        event = validate_event(data, now, organisations)
    except Exception as err:  # validation must answer, never raise: the event is rejected, never lost
        event = Rejection("schema", f"the event could not be validated ({type(err).__name__})")
    if isinstance(event, Rejection):
        event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
        return Intake(status="rejected", records=[rejection_record(event, key, value, origin, event_id)])
    if key != event.ssn.encode():
        try:
            rekeyed = codec.encode_event(event)
        except Exception as err:  # a valid event Avro cannot carry: rejected, not lost
            return Intake(status="rejected", records=[rejection_record(
                Rejection("schema", f"the event cannot be re-encoded ({type(err).__name__})"), key, value, origin,
                event.event_id)])
        return Intake(status="rekeyed", records=[Output(REKEYED_EVENTS, event.ssn.encode(), rekeyed)])
    return Intake(event=event)


@dataclass
class Folded:
    """What one worker's batch produced: the new state and the records to publish.
    `grants` are the service events (contract section 9) as (service_id, status, event),
    to be published only if the topic's last event of that service_id has another status
    (the shell checks its ledger, and sets status_before); `rejected` counts rejected events."""

    state: WorkerState
    records: list[Output] = field(default_factory=list)
    grants: list[tuple[str, str, dict]] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0


def load_state(ssn: str, get, check_sources: bool = False) -> WorkerState:
    """The state of `ssn` from the state table, read through `get(key) -> bytes | None`
    (the faust table's `get`, or a dict's): a new state when it has none. The state is
    kept under several keys (processors.fold, "the state in a table"); what is read now
    is its head and core, the rest when an event touches it."""
    return from_table(ssn, get, check_sources)


def state_writes(state: WorkerState) -> list[tuple[bytes, bytes | None]]:
    """The writes to make to the state table after folding `state`: (key, value), a
    None value deletes the key. Only what the folded events touched."""
    return table_writes(state)


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


def view_output(ssn: str, file: dict | None, changed, state: WorkerState, audiences: Audiences | None) -> list[Output]:
    """The records of every published view the change touches (JSON values; None: tombstone)."""
    if audiences is None:
        return []
    return [Output(topic, key, None if value is None else orjson.dumps(value))
            for topic, key, value in view_records(ssn, file, changed, state.core, audiences.published,
                                                  audiences.pseudonym_key)]


def fold_batch(state: WorkerState, events: list[tuple[Envelope, bytes | None, bytes, Origin]],
               audiences: Audiences | None = None, erased: set[str] | frozenset = frozenset(),
               rules: SubsidyRules = DEFAULT_RULES) -> Folded:
    """Fold one worker's events (in arrival order) into `state`, then derive the file once
    and say what to publish: the file, a change event if it changed, the audience views
    it changed, new grants, and a rejection record for each event the fold rejected.
    Events of an erased file (`erased` ids) count as duplicates: they never come back."""
    out = Folded(state=state)
    applied: list[str] = []
    aliases_before = len(state.aliases)
    for event, key, value, origin in events:
        if event.event_id in erased:
            out.duplicates += 1
            continue
        outcome = fold_event(state, event)
        rejection = tally(out, outcome)
        if rejection is not None:
            out.rejected += 1
            out.records.append(rejection_record(rejection, key, value, origin, event.event_id))
        elif outcome.status == ACCEPTED:
            applied.append(event.event_id)
    if not applied and len(state.aliases) == aliases_before:
        return out
    publish_file(out, applied, audiences, rules)
    return out


def publish_file(out: Folded, applied: list[str], audiences: Audiences | None,
                 rules: SubsidyRules = DEFAULT_RULES) -> None:
    """Derive the file of `out.state` and add what to publish: the file, a change event
    if it changed, the views it changed, the service events of what changed. The file
    published carries the version of its change event (the derived file, as the offline
    fold's, has none)."""
    state = out.state
    file = derive_file(state, rules)
    changed = record_change(state, file)
    key = state.ssn.encode()
    if changed:
        published = {**file, "version": state.version}
        out.records.append(Output(WORKER_FILES, key, codec.encode("WorkerFile", published)))
        out.records.append(row_record(key, published))
        change = {"ssn": state.ssn, "version": state.version, "changed_sections": changed, "event_ids": applied}
        out.records.append(Output(WORKER_FILE_CHANGES, key, codec.encode("WorkerFileChange", change)))
        out.records.extend(view_output(state.ssn, file, changed, state, audiences))
    for service in new_service_events(state, file):
        out.grants.append((service["service_id"], service["status"], service))


def row_record(key: bytes, published: dict) -> Output:
    """The `worker-file-rows` record of a published file: its flat row (processors.rows)."""
    value, headers = codec.encode_row(file_row(published))
    return Output(WORKER_FILE_ROWS, key, value, headers)


def service_record(service: dict, status_before: str | None) -> Output:
    """The `worker-services` record of a service event, with the status the topic had."""
    return Output(WORKER_SERVICES, service["ssn"].encode(),
                  codec.encode("ServiceEvent", {**service, "status_before": status_before}))


# --- operator commands: merge two files, erase a file (issue #6) -------------------------------

@dataclass
class Marker:
    """What the processors keep of a number after an operator's merge or erasure (table
    `identity-markers`, whose changelog topic has a fixed name so that a replay under a
    new application id still knows it): the number its events now go to, and the ids of
    erased events, which are never folded again."""

    merged_into: str | None = None
    erased_ids: set[str] = field(default_factory=set)

    def to_bytes(self) -> bytes:
        return orjson.dumps({"merged_into": self.merged_into, "erased_ids": sorted(self.erased_ids)})

    @classmethod
    def from_bytes(cls, blob: bytes | None) -> "Marker | None":
        if not blob:
            return None
        raw = orjson.loads(blob)
        return cls(merged_into=raw.get("merged_into"), erased_ids=set(raw.get("erased_ids", ())))


def redirected(event: Envelope, into: str) -> Output:
    """An event of a number merged into `into`, sent on under that number."""
    moved = event.model_copy(update={"ssn": into})
    return Output(REKEYED_EVENTS, into.encode(), codec.encode_event(moved))


def audit_record(ssn: str, command: dict, detail: str) -> Output:
    """The access-log line of an operator's action on a file."""
    entry = {"ssn": ssn, "at": command["at"], "caller": command["operator"], "audience": "operator", "org": None,
             "action": "merge" if command["action"] == "merge_in" else command["action"],
             "purpose": command["reason"], "detail": detail}
    return Output(WORKER_ACCESS_LOG, ssn.encode(), codec.encode("AccessLogEntry", entry))


def file_gone(state: WorkerState, section: str, audiences: Audiences | None) -> list[Output]:
    """Tombstones of a file that is gone (erased, or merged into another), on every
    record topic: worker-files, worker-file-rows and every view; and a change event saying why."""
    key = state.ssn.encode()
    change = {"ssn": state.ssn, "version": state.version + 1, "changed_sections": [section], "event_ids": []}
    return [Output(WORKER_FILES, key, None), Output(WORKER_FILE_ROWS, key, None),
            *view_output(state.ssn, None, [], state, audiences),
            Output(WORKER_FILE_CHANGES, key, codec.encode("WorkerFileChange", change))]


def apply_command(state: WorkerState, marker: Marker | None, command: dict,
                  audiences: Audiences | None = None, rules: SubsidyRules = DEFAULT_RULES) -> tuple[Folded, Marker | None]:
    """Carry out one operator command on the file of `command["ssn"]` (whose state is
    `state`): what to publish, the new state and the number's new marker.

    - erase: tombstones everywhere, an empty state (the version goes on), and the ids of
      the erased events kept so that re-deliveries never bring them back;
    - merge (into other_ssn): the same tombstones, the state sent on to the other number
      as a `merge_in` command, and this number's later events sent there too;
    - merge_in: the merged state joins this file (set union of events), the old number
      becomes an alias, and the file is published as after any fold.
    Each is written to the worker's access log."""
    action, ssn, other = command["action"], command["ssn"], command.get("other_ssn")
    marker = marker or Marker()
    if action == "erase":
        out = Folded(state=emptied(state))
        out.state.version = state.version + 1
        out.records = file_gone(state, "erased", audiences) + [audit_record(ssn, command, "file erased")]
        marker.erased_ids |= set(state.records)
        return out, marker
    if action == "merge":
        out = Folded(state=emptied(state))
        out.state.version = state.version + 1
        onward = {**command, "action": "merge_in", "ssn": other, "other_ssn": ssn, "state": state_to_bytes(state)}
        out.records = file_gone(state, "merged", audiences) + [
            audit_record(ssn, command, f"merged into {mask_ssn(other)}"),
            Output(OPERATOR_COMMANDS, other.encode(), codec.encode("OperatorCommand", onward))]
        marker.merged_into = other
        return out, marker
    if action == "merge_in":
        if marker.merged_into:  # this number was itself merged on: pass the merge on
            onward = {**command, "ssn": marker.merged_into}
            return Folded(state=state, records=[
                Output(OPERATOR_COMMANDS, marker.merged_into.encode(), codec.encode("OperatorCommand", onward))]), marker
        merged = state_from_bytes(command["state"])
        merged.ssn = ssn
        joined = merge_states(state, merged)
        joined.aliases |= {other} | merged.aliases
        joined.section_digests = dict(state.section_digests)
        out = Folded(state=joined, records=[audit_record(ssn, command, f"merged from {mask_ssn(other)}")])
        publish_file(out, sorted(set(merged.records) - set(state.records)), audiences, rules)
        return out, marker
    raise ValueError(f"unknown operator command {action!r}")
