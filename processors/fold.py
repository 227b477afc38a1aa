"""The per-worker fold: `fold_event(state, event)` takes one validated event into a
worker's state and says what became of it (accepted, duplicate, or rejected).

Pure Python, no I/O. The same function runs in `workerfile fold` (offline) and in the
faust agents. The file itself is derived from the state by `processors.derive`.

Design: the state is the *set of distinct accepted events*, each reduced to a compact
record that holds only what the file and the correction/retraction rules need:
- insurance events keep (scheme, month, region, status) and nothing of the amounts;
- other events keep their payload (they are few per worker: trainings, jobs, certificates);
- every event keeps a 64-bit fingerprint of its content, to tell a re-delivery
  (duplicate) from a re-used event_id with other content (`event_id_conflict`).
Corrections, retractions and held `employment.ended` are resolved when the file is
derived, over the whole set. So the file is a pure function of the set of accepted
events, whatever the arrival order or number of re-deliveries, and two states of the
same worker merge by set union (`merge_states`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from processors.identity import normalise_ssn
from processors.intake import Rejection
from schemas.events import Envelope

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MICRO = dt.timedelta(microseconds=1)
_INSURANCE_STATUS = {
    "insurance.enrolled": "active",
    "insurance.contribution": "active",
    "insurance.transferred": "active",
    "insurance.suspended": "suspended",
}


class Record(NamedTuple):
    """What the state keeps of one accepted event (a tuple: cheap to make, hot path)."""

    type: str
    fingerprint: str
    occurred: int  # occurred_at in microseconds since the epoch (orders across offsets)
    corrects: str | None
    source: str
    data: tuple | dict  # insurance: (scheme, month, region|None); others: the payload


@dataclass(slots=True)
class WorkerState:
    """One worker's state: the compact records of its accepted events, by event_id.

    `announced_grants`, `version` and `section_digests` are processing metadata of the
    stream (which service events were already published, how many times the file
    changed, a digest of each section of the last published file); they are not part
    of the file.
    """

    ssn: str
    aliases: set[str] = field(default_factory=set)
    records: dict[str, Record] = field(default_factory=dict)
    announced_grants: set[str] = field(default_factory=set)
    version: int = 0
    section_digests: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one event: `status` is accepted, duplicate or rejected."""

    status: str
    rejection: Rejection | None = None


ACCEPTED_OUTCOME = Outcome(ACCEPTED)
DUPLICATE_OUTCOME = Outcome(DUPLICATE)


def fingerprint(event: Envelope, occurred: int) -> str:
    """A 64-bit digest of the event's content: type, instant, source, corrects and payload
    values (the event_id is the key). Not the ssn: every record of a state is of the
    state's worker anyway, and so the records of a file merged into another number
    (`workerfile admin merge`) still recognise their re-deliveries there."""
    return _fingerprint(event.type, occurred, event.source, event.corrects, event.payload.__dict__)


def _fingerprint(kind: str, occurred: int, source: str, corrects: str | None, fields: dict) -> str:
    # `fields` has every payload field in the model's order (None when absent); a date is
    # a `date` or its `YYYY-MM-DD` string: orjson writes both the same. Stored in states:
    # what is hashed changes only with the state format version (STATE_FORMAT).
    digest = _BLAKE2B_8.copy()
    digest.update(_dumps((kind, occurred, source, corrects, fields)))  # a tuple: the same JSON array
    return digest.hexdigest()


_BLAKE2B_8 = hashlib.blake2b(digest_size=8)  # copied for each digest: cheaper than making one
_dumps = orjson.dumps
_intern = sys.intern
_new_record = tuple.__new__  # Record(...) without the Python-level __new__ of a named tuple
_INSURANCE_DATA: dict[tuple, tuple] = {}  # (scheme, month, region) -> the one tuple of interned strings


def _json_value(value):
    return value.isoformat() if isinstance(value, dt.date) else value


def to_record(event: Envelope) -> Record:
    """Reduce a validated event to what the state keeps of it."""
    return make_record(event.type, event.ssn, (event.occurred_at - _EPOCH) // _MICRO, event.source,
                       event.corrects, event.payload.__dict__)


def make_record(kind: str, ssn: str, occurred: int, source: str, corrects: str | None, fields: dict) -> Record:
    """The record of a validated event from its parts: `occurred` in microseconds since
    the epoch, `fields` the payload's fields in the model's order, None when absent
    (from a model, `payload.__dict__`; from the JSON fast path, dates are still strings).
    `ssn` is the worker's (checked by the caller); the record does not depend on it."""
    if kind in _INSURANCE_STATUS:
        key = (fields["scheme"], fields["month"], fields.get("to_region") or fields.get("region") or None)
        data: tuple | dict = _INSURANCE_DATA.get(key)  # shared: fewer objects to make, keep and free
        if data is None:
            if len(_INSURANCE_DATA) >= 65536:
                _INSURANCE_DATA.clear()
            data = _INSURANCE_DATA[key] = tuple(_intern(x) if x is not None else None for x in key)
    else:  # field names interned: a JSON line's are new strings (its values are not interned: user text)
        data = {_intern(k): _json_value(v) for k, v in fields.items() if v is not None}
    digest = _fingerprint(kind, occurred, source, corrects, fields)
    return _new_record(Record, (_intern(kind), digest, occurred, corrects, _intern(source), data))


def new_state(ssn: str) -> WorkerState:
    """An empty state for a normalised social-security number."""
    return WorkerState(ssn=ssn)


def fold_event(state: WorkerState, event: Envelope) -> Outcome:
    """Take one validated event of this worker into `state` (in place) and say what
    became of it. Never raises for bad content: a conflict or a correction of another
    type is returned as a rejection and leaves the state unchanged.
    """
    if event.ssn != state.ssn:
        raise ValueError("event belongs to another worker's state")  # a routing bug, not bad input
    return fold_record(state, event.event_id, event.ssn_legacy, to_record(event))


def fold_record(state: WorkerState, event_id: str, ssn_legacy: str | None, record: Record) -> Outcome:
    """`fold_event` of an event already reduced to its record (the caller checked that
    it is this worker's)."""
    records = state.records
    seen = records.get(event_id)
    if seen is not None:
        if seen.fingerprint == record.fingerprint:
            if ssn_legacy:  # a copy sent with the legacy number: the alias is still seen
                state.aliases.add(ssn_legacy)
            return DUPLICATE_OUTCOME
        return Outcome(REJECTED, Rejection(
            "event_id_conflict", f"event_id {event_id} was already used for an event with other content",
            "event_id"))
    corrects = record.corrects
    if corrects is not None:
        target = records.get(corrects)
        if target is not None and target.type != record.type:
            return Outcome(REJECTED, Rejection(
                "correction_type_mismatch",
                f"a {record.type} event cannot correct {corrects}, which is a {target.type} event",
                "corrects"))
    records[event_id] = record
    if ssn_legacy:
        state.aliases.add(ssn_legacy)
    return ACCEPTED_OUTCOME


def merge_states(a: WorkerState, b: WorkerState) -> WorkerState:
    """The state of the union of two event sets of the same worker (a new object).

    Where both hold the same event_id with different content (a conflict the two
    halves could not see), the record with the smaller fingerprint is kept, so the
    merge is commutative.
    """
    if a.ssn != b.ssn:
        raise ValueError("cannot merge states of two workers")
    records = dict(a.records)
    for event_id, record in b.records.items():
        mine = records.get(event_id)
        if mine is None or record.fingerprint < mine.fingerprint:
            records[event_id] = record
    return WorkerState(
        ssn=a.ssn,
        aliases=a.aliases | b.aliases,
        records=records,
        announced_grants=a.announced_grants | b.announced_grants,
        version=max(a.version, b.version),
    )


# --- state (de)serialisation, for the faust table and its changelog ---------------------

# 3: fingerprints without the ssn (2: with it).
STATE_FORMAT = 3


def state_to_bytes(state: WorkerState) -> bytes:
    """Serialise a state compactly: JSON, each record an array whose type and source are
    indexes into tables written once."""
    types: dict[str, int] = {}
    sources: dict[str, int] = {}
    records = {}
    for eid, r in state.records.items():
        t = types.setdefault(r.type, len(types))
        s = sources.setdefault(r.source, len(sources))
        data = list(r.data) if isinstance(r.data, tuple) else r.data
        records[eid] = [t, r.fingerprint, r.occurred, r.corrects, s, data]
    return orjson.dumps({
        "v": STATE_FORMAT,
        "ssn": state.ssn,
        "aliases": sorted(state.aliases),
        "announced": sorted(state.announced_grants),
        "version": state.version,
        "sections": state.section_digests,
        "types": list(types),
        "sources": list(sources),
        "records": records,
    })


def state_from_bytes(blob: bytes) -> WorkerState:
    """Inverse of `state_to_bytes`."""
    raw = orjson.loads(blob)
    if raw.get("v") != STATE_FORMAT:
        if raw.get("v") == 2:
            raise ValueError("state format 2 (fingerprints with the ssn, before 2026-11-29) is not read any more: "
                             "run the stream processors under a new application id to rebuild every state")
        raise ValueError(f"unknown state format version {raw.get('v')!r}")
    types = [sys.intern(t) for t in raw["types"]]
    sources = [sys.intern(s) for s in raw["sources"]]
    records = {}
    for eid, (t, fp, occurred, corrects, s, data) in raw["records"].items():
        if isinstance(data, list):
            data = tuple(sys.intern(x) if x is not None else None for x in data)
        records[eid] = Record(types[t], fp, occurred, corrects, sources[s], data)
    normalise_ssn(raw["ssn"])  # a corrupt key must not pass silently
    return WorkerState(
        ssn=raw["ssn"], aliases=set(raw["aliases"]), records=records,
        announced_grants=set(raw["announced"]), version=raw["version"],
        section_digests=raw.get("sections", {}),
    )
