"""The per-worker fold: `fold_event(state, event)` takes one validated event into a
worker's state and says what became of it (accepted, duplicate, or rejected).

Pure Python, no I/O. The same function runs in `workerfile fold` (offline) and in the
faust agents. The file itself is derived from the state by `processors.derive`.

Design: the state is the *set of distinct accepted events*, each reduced to a compact
record (insurance events keep (scheme, month, region); other events their payload; every
event a 64-bit fingerprint of its content, to tell a re-delivery from a re-used event_id).
The set is kept in two parts, so that the cost of one event is bounded by what it
touches, not by the worker's history:

- **plain** records: insurance events that correct nothing and that no retraction or
  correction refers to (almost every event of a long career). They sit in buckets per
  (scheme, year of month); per scheme a summary is kept incrementally: the months with
  a contribution (a 12-bit mask per year), the latest status event and the latest event
  carrying a region, by (month, occurred_at, event_id). A plain record is always in the
  file, alone in its correction slot, so it needs no resolution.
- **core** records: every other event (jobs, trainings, certificates, cards, honours,
  retractions, corrections, and any insurance event that is referred to). They are few;
  corrections, retractions and held `employment.ended` are resolved over them when the
  file is derived, exactly as over the whole set (a plain record takes no part in any of
  these rules, which is what makes the split exact).

Invariants:
1. every accepted event_id is in exactly one of `core` and the plain buckets;
2. a record is plain iff it is an insurance event, has no `corrects`, and its id is not
   in `refs` (the ids that core records correct or retract); so the placement depends
   only on the set, not on the order of arrival (a plain record that becomes referred to
   moves to the core);
3. each scheme's summary is exactly what the plain records of that scheme give.

In the stream the state lives in a table under several keys (`state_writes`, `load_state`
in `streams.handler` via `table_writes`/`from_table`): a head per worker (summaries and
bookkeeping, about 1-2 KiB for a 40-year career), the core in buckets per (family,
year), the plain buckets, and one small key per plain event_id (where its record is) for
duplicate and conflict lookups. Folding one month-end contribution reads and writes the
head, one bucket and one id key (and a small write intent). A process killed among the
writes of a batch leaves no half state: until the head is written the writes are undone
when read (see "Crash safety" below), and the batch, delivered again, is folded whole.
Offline (`get` is None) everything stays in memory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import orjson

from schemas.identity import normalise_ssn
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


INSURANCE_TYPES = frozenset(_INSURANCE_STATUS)
_MONTH_PARTS: dict[str, tuple[int, int]] = {}  # "YYYY-MM" -> (year, the month's bit)
RETRACTED = "event.retracted"
_CONTRIBUTION = "insurance.contribution"


@dataclass(slots=True)
class SchemeSummary:
    """What the plain records of one scheme give (invariant 3): `months` {year: 12-bit
    mask of months with a contribution} for every year that has a bucket (0: a bucket
    without contributions); `latest` (month, occurred, event_id, status) and `region`
    (month, occurred, event_id, region) of the latest event, and of the latest carrying a
    region; `contributed` the number of months with a contribution, `last` the latest."""

    months: dict[int, int] = field(default_factory=dict)
    latest: tuple | None = None
    region: tuple | None = None
    contributed: int = 0
    last: str | None = None
    encoded: dict | None = None  # `months` as the head writes it, until they change

    def recount(self) -> None:
        self.contributed = sum(m.bit_count() for m in self.months.values())
        years = [y for y, m in self.months.items() if m]
        if years:
            y = max(years)
            self.last = f"{y:04d}-{self.months[y].bit_length():02d}"
        else:
            self.last = None

    def months_up_to(self, month: str) -> int:
        """Months with a contribution up to and including `month` (YYYY-MM)."""
        year, m = int(month[:4]), int(month[5:7])
        below = sum(mask.bit_count() for y, mask in self.months.items() if y < year)
        return below + (self.months.get(year, 0) & ((1 << m) - 1)).bit_count()

    def has_month(self, month: str) -> bool:
        return bool(self.months.get(int(month[:4]), 0) >> (int(month[5:7]) - 1) & 1)


def summarise(records) -> SchemeSummary:
    """The summary of one scheme's insurance events, (event_id, record) pairs in any order."""
    s = SchemeSummary()
    months = s.months
    for eid, rec in records:
        _, month, region = rec.data
        year = int(month[:4])
        mask = months.get(year, 0)
        if rec.type == _CONTRIBUTION:
            mask |= 1 << (int(month[5:7]) - 1)
        months[year] = mask
        key = (month, rec.occurred, eid)
        if s.latest is None or key > s.latest[:3]:
            s.latest = (*key, _INSURANCE_STATUS[rec.type])
        if region is not None and (s.region is None or key > s.region[:3]):
            s.region = (*key, region)
    s.recount()
    return s


@dataclass(slots=True)
class WorkerState:
    """One worker's state: the compact records of its accepted events (see the module's
    design), and the stream's processing metadata.

    `announced`, `version` and `section_digests` are processing metadata of the
    stream (the last published status of each grant and notice, how many times the file
    changed, a digest of each section of the last published file); they are not part
    of the file. `get` reads the state table (None: everything is in memory).
    """

    ssn: str
    aliases: set[str] = field(default_factory=set)
    announced: dict[str, str] = field(default_factory=dict)  # grant key / notice id -> last status published
    version: int = 0
    section_digests: dict[str, str] = field(default_factory=dict)
    core: dict[str, Record] = field(default_factory=dict)
    refs: set[str] = field(default_factory=set)
    schemes: dict[str, SchemeSummary] = field(default_factory=dict)
    plain_count: int = 0
    buckets: dict[tuple[str, int], dict[str, Record]] = field(default_factory=dict)  # loaded plain buckets
    plain_ids: dict[str, tuple[str, int]] = field(default_factory=dict)  # known plain ids -> bucket
    get: Callable[[bytes], bytes | None] | None = None
    # what changed since the last `table_writes`
    dirty_core: set[tuple[str, int]] = field(default_factory=set)
    dirty_buckets: set[tuple[str, int]] = field(default_factory=set)
    new_ids: dict[str, tuple[str, int]] = field(default_factory=dict)
    replaced_keys: set[bytes] = field(default_factory=set)  # keys of a state this one replaces
    whole: bool = False  # not written under the table layout yet: the next writes are of everything
    stale: set[str] = field(default_factory=set)  # offline: schemes whose summary is to be made again
    # crash safety in the table (see "the state in a table"): the token of the last
    # complete write, what each bucket held then, and a torn write found when loading
    token: int = 0
    base_plain: dict[tuple[str, int], dict[str, Record]] = field(default_factory=dict)
    base_core: dict[tuple[str, int], dict[str, Record]] = field(default_factory=dict)
    torn: "_Torn | None" = None
    scrub: bool = False  # the intent key still holds undo copies of a write that completed
    # with an organisation registry (contract section 8): corrections and retractions
    # only by their target's source (a setting of the process, not stored)
    check_sources: bool = False
    derived: object = None  # processors.derive's cache of the core's sections (not persisted)

    # --- reading ---------------------------------------------------------------------------

    def lookup(self, event_id: str) -> Record | None:
        """The record of an accepted event_id, or None (a point lookup)."""
        record = self.core.get(event_id)
        if record is not None:
            return record
        where = self.plain_ids.get(event_id)
        if where is None and self.get is not None:
            blob = self.get(_id_key(self.ssn, event_id))
            if blob:
                scheme, year = blob.decode().split("|")
                where = self.plain_ids[event_id] = (sys.intern(scheme), int(year))
        if where is None:
            return None
        return self._bucket(where).get(event_id)

    @property
    def records(self) -> dict[str, Record]:
        """Every record by event_id (reads every bucket: for rare paths, not per event)."""
        out = dict(self.core)
        for scheme, summary in self.summaries().items():
            for year in summary.months:
                out.update(self._bucket((scheme, year)))
        return out

    def _bucket(self, where: tuple[str, int]) -> dict[str, Record]:
        bucket = self.buckets.get(where)
        if bucket is None:
            bucket = {}
            if self.get is not None:
                raw = _committed(self, _bucket_key(self.ssn, where))
                if raw:
                    bucket = _plain_bucket_from_json(raw, where[0])
                self.base_plain[where] = dict(bucket)
            self.buckets[where] = bucket
        return bucket

    def summaries(self) -> dict[str, SchemeSummary]:
        """Each scheme's summary (invariant 3); offline, made again for the schemes that
        gained records since it was last asked for."""
        if self.stale:
            for scheme in self.stale:
                self.schemes[scheme] = summarise(
                    r for (sch, _), bucket in self.buckets.items() if sch == scheme for r in bucket.items())
            self.stale.clear()
        return self.schemes

    # --- adding ----------------------------------------------------------------------------

    def add(self, event_id: str, record: Record) -> None:
        """Take a new record in (its id is not in the state), where invariant 2 puts it."""
        if record.type in INSURANCE_TYPES and record.corrects is None and event_id not in self.refs:
            self._add_plain(event_id, record)
        else:
            self._add_core(event_id, record)

    def _add_plain(self, event_id: str, record: Record) -> None:
        scheme, month, region = record.data
        if self.get is None:  # offline: summaries made when asked for (`summaries`), in one pass
            year = _MONTH_PARTS.get(month)
            where = (scheme, int(month[:4]) if year is None else year[0])
            bucket = self.buckets.get(where)
            if bucket is None:
                bucket = self.buckets[where] = {}
            bucket[event_id] = record
            self.plain_ids[event_id] = where
            self.plain_count += 1
            self.stale.add(scheme)
            return
        parts = _MONTH_PARTS.get(month)
        if parts is None:
            parts = _MONTH_PARTS[month] = (int(month[:4]), 1 << (int(month[5:7]) - 1))
        year, bit = parts
        where = (scheme, year)
        bucket = self.buckets.get(where)
        if bucket is None:
            bucket = self._bucket(where)
        bucket[event_id] = record
        self.plain_ids[event_id] = where
        self.dirty_buckets.add(where)
        self.new_ids[event_id] = where
        self.plain_count += 1
        summary = self.schemes.get(scheme)
        if summary is None:
            summary = self.schemes[scheme] = SchemeSummary()
        months = summary.months
        mask = months.get(year, 0)
        if record.type == _CONTRIBUTION and not mask & bit:
            mask |= bit
            summary.contributed += 1
            if summary.last is None or month > summary.last:
                summary.last = month
        months[year] = mask
        summary.encoded = None
        key = (month, record.occurred, event_id)
        latest = summary.latest
        if latest is None or key > latest[:3]:
            summary.latest = (*key, _INSURANCE_STATUS[record.type])
        if region is not None:
            latest = summary.region
            if latest is None or key > latest[:3]:
                summary.region = (*key, region)

    def _add_core(self, event_id: str, record: Record) -> None:
        self.core[event_id] = record
        self.dirty_core.add(_core_bucket(record))
        self.derived = None
        if record.corrects is not None:
            ref = record.corrects
        elif record.type == RETRACTED:
            ref = record.data.get("event_id")
        else:
            return
        if ref is None or ref in self.refs:
            return
        self.refs.add(ref)
        if ref not in self.core:
            target = self.lookup(ref)
            if target is not None:  # a plain record now referred to: it joins the core
                self._remove_plain(ref, target)
                self.core[ref] = target
                self.dirty_core.add(_core_bucket(target))

    def _remove_plain(self, event_id: str, record: Record) -> None:
        scheme, month, _ = record.data
        summary = self.summaries()[scheme]
        where = self.plain_ids.pop(event_id)
        bucket = self._bucket(where)
        del bucket[event_id]
        self.dirty_buckets.add(where)
        self.new_ids.pop(event_id, None)  # an id key written before stays: a hint, the core is looked in first
        self.plain_count -= 1
        if bucket:
            mask = 0
            for r in bucket.values():
                if r.type == _CONTRIBUTION:
                    mask |= 1 << (int(r.data[1][5:7]) - 1)
            summary.months[where[1]] = mask
        else:
            del summary.months[where[1]]
        summary.recount()
        summary.encoded = None
        if summary.latest is not None and summary.latest[2] == event_id:
            summary.latest = self._latest_plain(scheme, with_region=False)
        if summary.region is not None and summary.region[2] == event_id:
            summary.region = self._latest_plain(scheme, with_region=True)
        if not summary.months:
            del self.schemes[scheme]

    def _latest_plain(self, scheme: str, with_region: bool) -> tuple | None:
        """The latest plain event of a scheme (with a region), from its latest buckets down."""
        for year in sorted(self.schemes[scheme].months, reverse=True):
            best = None
            for eid, r in self._bucket((scheme, year)).items():
                _, month, region = r.data
                if with_region and region is None:
                    continue
                key = (month, r.occurred, eid)
                if best is None or key > best[:3]:
                    best = (*key, region if with_region else _INSURANCE_STATUS[r.type])
            if best is not None:
                return best
        return None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one event: `status` is accepted, duplicate or rejected."""

    status: str
    rejection: Rejection | None = None


ACCEPTED_OUTCOME = Outcome(ACCEPTED)
DUPLICATE_OUTCOME = Outcome(DUPLICATE)


def tally(counts, outcome: Outcome) -> Rejection | None:
    """Count an accepted or duplicate `outcome` on `counts` (anything with `accepted` and
    `duplicates`: the offline fold's counts, a worker's batch); for a rejected one, its
    rejection, which the caller records and counts. The one place outcomes are counted."""
    if outcome.status == ACCEPTED:
        counts.accepted += 1
        return None
    if outcome.status == DUPLICATE:
        counts.duplicates += 1
        return None
    return outcome.rejection


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


def new_state(ssn: str, get: Callable[[bytes], bytes | None] | None = None,
              check_sources: bool = False) -> WorkerState:
    """An empty state for a normalised social-security number (`get`: its state table;
    `check_sources`: an organisation registry is configured, contract section 8)."""
    return WorkerState(ssn=ssn, get=get, check_sources=check_sources)


def state_of_records(ssn: str, records: dict[str, Record]) -> WorkerState:
    """A state holding exactly these records (each put where invariant 2 says)."""
    state = new_state(ssn)
    for event_id, record in records.items():
        state.add(event_id, record)
    return state


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
    seen = state.core.get(event_id)
    if seen is None and (state.get is not None or event_id in state.plain_ids):
        seen = state.lookup(event_id)
    if seen is not None:
        if seen.fingerprint == record.fingerprint:
            if ssn_legacy:  # a copy sent with the legacy number: the alias is still seen
                state.aliases.add(ssn_legacy)
            return DUPLICATE_OUTCOME
        return Outcome(REJECTED, Rejection(
            "event_id_conflict", f"event_id {event_id} was already used for an event with other content",
            "event_id"))
    if state.check_sources:
        ref = record.corrects if record.type != RETRACTED else record.data.get("event_id")
        target = state.lookup(ref) if ref is not None else None
        if target is not None and target.source != record.source:
            return Outcome(REJECTED, Rejection(
                "unauthorized_source",
                f"organisation {record.source} may not {'retract' if record.type == RETRACTED else 'correct'} "
                f"event {ref}: only its source {target.source} may", "source"))
    corrects = record.corrects
    if corrects is not None:
        target = state.lookup(corrects)
        if target is not None and target.type != record.type:
            return Outcome(REJECTED, Rejection(
                "correction_type_mismatch",
                f"a {record.type} event cannot correct {corrects}, which is a {target.type} event",
                "corrects"))
    state.add(event_id, record)
    if ssn_legacy:
        state.aliases.add(ssn_legacy)
    return ACCEPTED_OUTCOME


def merge_states(a: WorkerState, b: WorkerState) -> WorkerState:
    """The state of the union of two event sets of the same worker (a new object, which
    replaces `a` in the table).

    Where both hold the same event_id with different content (a conflict the two
    halves could not see), the record with the smaller fingerprint is kept, so the
    merge is commutative.
    """
    if a.ssn != b.ssn:
        raise ValueError("cannot merge states of two workers")
    records = a.records
    for event_id, record in b.records.items():
        mine = records.get(event_id)
        if mine is None or record.fingerprint < mine.fingerprint:
            records[event_id] = record
    merged = state_of_records(a.ssn, records)
    merged.aliases = a.aliases | b.aliases
    merged.announced = {**b.announced, **a.announced}
    merged.version = max(a.version, b.version)
    merged.get = a.get
    merged.check_sources = a.check_sources
    merged.whole = True
    _replaces(merged, a)
    return merged


def _replaces(new: WorkerState, old: WorkerState) -> None:
    """`new` is written over `old` in the table: every key of `old` not written again
    is deleted (those of a torn write of `old` too), undoably (what `old` held is its
    content before), and the tokens go on."""
    new.token = old.token
    new.scrub = old.scrub
    if old.get is None:
        return
    new.replaced_keys = table_keys(old)
    new.replaced_keys |= {_core_key(old.ssn, where) for where in old.dirty_core}
    new.replaced_keys |= {_bucket_key(old.ssn, where) for where in old.dirty_buckets}
    new.base_core = old.base_core
    new.base_plain = old.base_plain


def emptied(state: WorkerState) -> WorkerState:
    """An empty state that replaces `state` in the table (an erased or merged-away file):
    the version goes on, and every key of the old state is deleted when written."""
    empty = new_state(state.ssn, state.get, state.check_sources)
    empty.version = state.version
    _replaces(empty, state)
    return empty


# --- the whole state as one value (operator merge commands, tests) -------------------------

# 4: the state split into keys in the table (3: one value; fingerprints the same, so a
# format-3 state is converted when read); 2: fingerprints with the ssn.
STATE_FORMAT = 4
_FORMAT_2 = ("state format 2 (fingerprints with the ssn, before 2026-11-29) is not read any more: "
             "run the stream processors under a new application id to rebuild every state")


def _records_to_json(records) -> tuple[list, list, dict]:
    types: dict[str, int] = {}
    sources: dict[str, int] = {}
    out = {}
    for eid, r in records:
        t = types.setdefault(r.type, len(types))
        s = sources.setdefault(r.source, len(sources))
        data = list(r.data) if isinstance(r.data, tuple) else r.data
        out[eid] = [t, r.fingerprint, r.occurred, r.corrects, s, data]
    return list(types), list(sources), out


def _records_from_json(raw: dict) -> dict[str, Record]:
    types = [sys.intern(t) for t in raw["types"]]
    sources = [sys.intern(s) for s in raw["sources"]]
    records = {}
    for eid, (t, fp, occurred, corrects, s, data) in raw["records"].items():
        if isinstance(data, list):
            data = tuple(sys.intern(x) if x is not None else None for x in data)
        records[eid] = _new_record(Record, (types[t], fp, occurred, corrects, sources[s], data))
    return records


def _announced(raw: list | dict) -> dict[str, str]:
    """The announced statuses; before contract section 9 a list of the grants announced
    (then offered)."""
    return dict(raw) if isinstance(raw, dict) else {key: "offered" for key in raw}


def state_to_bytes(state: WorkerState) -> bytes:
    """The whole state as one compact JSON value: each record an array whose type and
    source are indexes into tables written once."""
    types, sources, records = _records_to_json(sorted(state.records.items()))
    return orjson.dumps({
        "v": STATE_FORMAT, "ssn": state.ssn, "aliases": sorted(state.aliases),
        "announced": dict(sorted(state.announced.items())), "version": state.version,
        "sections": state.section_digests, "types": types, "sources": sources, "records": records,
    })


def state_from_bytes(blob: bytes) -> WorkerState:
    """Inverse of `state_to_bytes` (also reads format 3)."""
    raw = orjson.loads(blob)
    if raw.get("v") not in (3, STATE_FORMAT) or "records" not in raw:
        if raw.get("v") == 2:
            raise ValueError(_FORMAT_2)
        raise ValueError(f"unknown state format version {raw.get('v')!r}")
    normalise_ssn(raw["ssn"])  # a corrupt key must not pass silently
    state = state_of_records(raw["ssn"], _records_from_json(raw))
    state.aliases = set(raw["aliases"])
    state.announced = _announced(raw["announced"])
    state.version = raw["version"]
    state.section_digests = raw.get("sections", {})
    return state


# --- the state in a table, under several keys ----------------------------------------------
#
# Keys: the head `ssn`, core buckets `ssn|c|family|year`, plain buckets `ssn|p|scheme|year`,
# id keys `ssn|i|event_id` -> "scheme|year" (hints: an event_id's plain bucket; a hint left
# after its record moved to the core is harmless, the core is looked in first) and the write
# intent `ssn|w`.
#
# Crash safety. A worker's writes of one batch are several table writes; a process killed
# among them leaves a prefix of them in the table (they go, in order, to one changelog
# partition), and its events are delivered again because their offsets were not committed.
# So a write must be undoable until it is complete:
# 1. every write of a state has a token T (the head's token + 1) and goes in this order:
#    the intent {"t": T, "k": [bucket keys written], "d": {bucket key deleted: its content
#    before}}, the buckets (each stamped "t": T, with "a" the ids it gained and "x" the
#    records it lost, so that its content before is its content - a + x), the id keys,
#    and last the head, stamped "t": T: the head is the commit;
# 2. reading, an intent whose token is not the head's is a torn write: a bucket it names
#    that carries its token is read as it was before, a bucket it deleted is read from "d",
#    and every bucket it names is written again at the next write (so its keys are in the
#    next intent: a torn bucket is never left unnamed);
# 3. so what `from_table` gives is always the state of the last complete write, and a
#    reader of the table never sees half a batch.
# After a write that deleted buckets (an erase, a merge) the intent is written once more
# without its undo copies, so erased records do not stay in the table.


def _id_key(ssn: str, event_id: str) -> bytes:
    return f"{ssn}|i|{event_id}".encode()


def _bucket_key(ssn: str, where: tuple[str, int]) -> bytes:
    return f"{ssn}|p|{where[0]}|{where[1]}".encode()


def _core_key(ssn: str, where: tuple[str, int]) -> bytes:
    return f"{ssn}|c|{where[0]}|{where[1]}".encode()


def _intent_key(ssn: str) -> bytes:
    return f"{ssn}|w".encode()


_YEAR_US = 31_556_952_000_000  # microseconds in an average Gregorian year


def _core_bucket(record: Record) -> tuple[str, int]:
    """A core record's bucket: its type's family and the (average Gregorian) year of its
    instant since 1970, by arithmetic (no calendar: any instant has a bucket)."""
    return record.type.split(".", 1)[0], 1970 + record.occurred // _YEAR_US


@dataclass(slots=True)
class _Torn:
    """A write that did not complete (rule 2): its token, the buckets it wrote, and the
    content before of those it deleted."""

    token: int
    written: set[str]
    deleted: dict[str, dict | None]


def _committed(state: WorkerState, key: bytes) -> dict | None:
    """The value of a bucket key as of the last complete write (rule 2), as JSON."""
    torn = state.torn
    if torn is not None:
        name = key.decode()
        if name in torn.deleted:
            return torn.deleted[name]
        blob = state.get(key)
        raw = orjson.loads(blob) if blob else None
        if raw is not None and name in torn.written and raw.get("t") == torn.token:
            return _undone(raw)
        return raw
    blob = state.get(key)
    return orjson.loads(blob) if blob else None


def _undone(raw: dict) -> dict | None:
    """A stamped bucket value as it was before its write (its records - "a" + "x")."""
    rows_key = "r" if "r" in raw else "records"
    added = set(raw.get("a", ()))
    rows = {eid: row for eid, row in raw[rows_key].items() if eid not in added}
    rows.update(raw.get("x", {}))
    if not rows:
        return None
    return {k: v for k, v in raw.items() if k not in ("t", "a", "x")} | {rows_key: rows}


def _changes(new: dict[str, Record], base: dict[str, Record]) -> tuple[list[str], dict[str, Record]]:
    """What a bucket gains and loses from `base` to `new`: the ids whose record is new or
    other, and the records of `base` that are gone or other."""
    added = [eid for eid, r in new.items() if base.get(eid) != r]
    lost = {eid: r for eid, r in base.items() if new.get(eid) != r}
    return sorted(added), lost


def _plain_bucket_json(bucket: dict[str, Record], token: int | None = None,
                       base: dict[str, Record] | None = None) -> dict:
    sources: dict[str, int] = {}

    def row(r: Record) -> list:
        return [_PLAIN_TYPES.index(r.type), r.fingerprint, r.occurred, sources.setdefault(r.source, len(sources)),
                r.data[1], r.data[2]]

    out: dict = {"r": {eid: row(r) for eid, r in sorted(bucket.items())}}
    if token is not None:
        added, lost = _changes(bucket, base or {})
        out["t"] = token
        out["a"] = added
        if lost:
            out["x"] = {eid: row(r) for eid, r in sorted(lost.items())}
    out["s"] = list(sources)
    return out


def _plain_bucket_from_json(raw: dict, scheme: str) -> dict[str, Record]:
    sources = [sys.intern(s) for s in raw["s"]]
    out = {}
    for eid, (t, fp, occurred, s, month, region) in raw["r"].items():
        key = (scheme, month, region)
        data = _INSURANCE_DATA.get(key)
        if data is None:
            data = tuple(_intern(x) if x is not None else None for x in key)
        out[eid] = _new_record(Record, (_PLAIN_TYPES[t], fp, occurred, None, sources[s], data))
    return out


def _core_bucket_json(members: dict[str, Record], token: int | None = None,
                      base: dict[str, Record] | None = None) -> dict:
    out: dict = {}
    lost: dict[str, Record] = {}
    if token is not None:
        added, lost = _changes(members, base or {})
        out["t"] = token
        out["a"] = added
    types, sources, records = _records_to_json(sorted(members.items()) + sorted(lost.items()))
    out |= {"types": types, "sources": sources, "records": {eid: records[eid] for eid in sorted(members)}}
    if lost:
        out["x"] = {eid: records[eid] for eid in sorted(lost)}
    return out


_PLAIN_TYPES = tuple(sorted(INSURANCE_TYPES))


def _months_to_json(months: dict[int, int]) -> dict:
    """{year: mask} as a first year and one number per year after it (-1: no bucket)."""
    first = min(months)
    return {"y0": first, "m": [months.get(y, -1) for y in range(first, max(months) + 1)]}


def _encoded_months(summary: SchemeSummary) -> dict:
    if summary.encoded is None:
        summary.encoded = _months_to_json(summary.months)
    return summary.encoded


def _months_from_json(raw: dict) -> dict[int, int]:
    return {raw["y0"] + i: mask for i, mask in enumerate(raw["m"]) if mask >= 0}


def _head(state: WorkerState, token: int) -> dict:
    return {
        "v": STATE_FORMAT, "layout": "keys", "t": token, "ssn": state.ssn, "aliases": sorted(state.aliases),
        "announced": dict(sorted(state.announced.items())), "version": state.version, "sections": state.section_digests,
        "refs": sorted(state.refs), "plain": state.plain_count,
        "core": sorted({_core_bucket(r) for r in state.core.values()}),
        "schemes": {scheme: {**_encoded_months(s), "latest": s.latest, "region": s.region}
                    for scheme, s in sorted(state.summaries().items())},
    }


def table_keys(state: WorkerState) -> set[bytes]:
    """Every key the state has in the table (reads every plain bucket)."""
    ssn = state.ssn
    keys = {ssn.encode(), _intent_key(ssn)}
    keys |= {_core_key(ssn, where) for where in {_core_bucket(r) for r in state.core.values()}}
    keys |= {_id_key(ssn, eid) for eid, r in state.core.items() if r.type in INSURANCE_TYPES}  # hints left
    for scheme, summary in state.summaries().items():
        for year in summary.months:
            keys.add(_bucket_key(ssn, (scheme, year)))
            keys |= {_id_key(ssn, eid) for eid in state._bucket((scheme, year))}
    return keys


def _where(key: bytes) -> tuple[str, tuple[str, int]] | None:
    """("c" or "p", (family or scheme, year)) of a bucket key, None for other keys."""
    parts = key.decode().split("|")
    if len(parts) == 4 and parts[1] in ("c", "p"):
        return parts[1], (parts[2], int(parts[3]))
    return None


def table_writes(state: WorkerState) -> list[tuple[bytes, bytes | None]]:
    """The writes that bring the table up to `state`, in the order to make them (a None
    value deletes the key): only what changed since the state was loaded or last written,
    undoable until the head, written last, commits them (see above). Afterwards the plain
    buckets and ids are let go when the table can give them back."""
    ssn = state.ssn
    token = state.token + 1
    if state.get is None or state.whole:  # everything is in memory: all of it
        state.dirty_core |= {_core_bucket(r) for r in state.core.values()}
        state.dirty_buckets |= set(state.buckets)
        state.new_ids.update(state.plain_ids)
        state.whole = False
    buckets: dict[bytes, bytes | None] = {}
    written: list[str] = []
    deleted: dict[str, dict | None] = {}

    def put(key: bytes, value: dict | None, base: dict[str, Record], encode) -> None:
        if value is None:
            deleted[key.decode()] = encode(base) if base else None
        else:
            written.append(key.decode())
        buckets[key] = None if value is None else orjson.dumps(value)

    if state.dirty_core:
        by_bucket: dict[tuple[str, int], dict[str, Record]] = {where: {} for where in state.dirty_core}
        for eid, r in state.core.items():
            where = _core_bucket(r)
            if where in by_bucket:
                by_bucket[where][eid] = r
        for where, members in sorted(by_bucket.items()):
            base = state.base_core.get(where, {})
            put(_core_key(ssn, where), _core_bucket_json(members, token, base) if members else None, base,
                _core_bucket_json)
            if members:
                state.base_core[where] = members
            else:
                state.base_core.pop(where, None)
    for where in sorted(state.dirty_buckets):
        bucket = state.buckets.get(where)
        base = state.base_plain.get(where, {})
        put(_bucket_key(ssn, where), _plain_bucket_json(bucket, token, base) if bucket else None, base,
            _plain_bucket_json)
    ids: dict[bytes, bytes | None] = {}
    for key in sorted(state.replaced_keys - set(buckets) - {ssn.encode(), _intent_key(ssn)}):
        place = _where(key)
        if place is None:  # an id key
            ids[key] = None
        else:
            kind, where = place
            base = (state.base_core if kind == "c" else state.base_plain).get(where, {})
            put(key, None, base, _core_bucket_json if kind == "c" else _plain_bucket_json)
    for eid, (scheme, year) in state.new_ids.items():
        ids[_id_key(ssn, eid)] = f"{scheme}|{year}".encode()
    intent = {"t": token, "k": written}
    if deleted:
        intent["d"] = deleted
    writes = [(_intent_key(ssn), orjson.dumps(intent)), *buckets.items(), *ids.items(),
              (ssn.encode(), orjson.dumps(_head(state, token)))]
    if deleted or state.scrub:  # the undo copies are not needed any more: not kept either
        writes.append((_intent_key(ssn), orjson.dumps({"t": token, "k": []})))
    state.token = token
    state.torn = None
    state.scrub = False
    state.dirty_core.clear()
    state.dirty_buckets.clear()
    state.new_ids.clear()
    state.replaced_keys = set()
    if state.get is not None:
        state.buckets.clear()
        state.plain_ids.clear()
        state.base_plain.clear()
    else:  # in memory still: what was written is the content before of the next write
        state.base_plain = {where: dict(bucket) for where, bucket in state.buckets.items()}
    return writes


def from_table(ssn: str, get: Callable[[bytes], bytes | None], check_sources: bool = False) -> WorkerState:
    """The state of `ssn` as of its last complete write to a table read through `get`
    (a new state if it has none). A format-3 state (one value) is converted: written
    whole under the new layout at the next `table_writes`, its old value overwritten by
    the head."""
    blob = get(ssn.encode())
    raw = orjson.loads(blob) if blob else None
    if raw is not None and (raw.get("v") == 3 or (raw.get("v") == STATE_FORMAT and raw.get("layout") != "keys")):
        state = state_from_bytes(blob)
        state.get = get
        state.whole = True
        state.check_sources = check_sources
        return state
    if raw is not None and raw.get("v") != STATE_FORMAT:
        if raw.get("v") == 2:
            raise ValueError(_FORMAT_2)
        raise ValueError(f"unknown state format version {raw.get('v')!r}")
    if raw is not None and raw["ssn"] != ssn:
        raise ValueError("the state table holds another worker's state under this key")
    state = new_state(ssn, get, check_sources)
    state.token = raw.get("t", 0) if raw is not None else 0
    intent = get(_intent_key(ssn))
    if intent:
        intent = orjson.loads(intent)
        if intent["t"] != state.token:  # a write that did not complete: read as before it
            state.torn = _Torn(intent["t"], set(intent["k"]), intent.get("d", {}))
        elif intent.get("d"):
            state.scrub = True
    if raw is not None:
        state.aliases = set(raw["aliases"])
        state.announced = _announced(raw["announced"])
        state.version = raw["version"]
        state.section_digests = raw["sections"]
        state.refs = set(raw["refs"])
        state.plain_count = raw["plain"]
        for family, year in raw["core"]:
            part = _committed(state, _core_key(ssn, (family, year)))
            if part:
                members = _records_from_json(part)
                state.core.update(members)
                state.base_core[(family, year)] = members
        for scheme, s in raw["schemes"].items():
            summary = SchemeSummary(months=_months_from_json(s),
                                    latest=tuple(s["latest"]) if s["latest"] else None,
                                    region=tuple(s["region"]) if s["region"] else None)
            summary.recount()
            state.schemes[sys.intern(scheme)] = summary
    if state.torn is not None:  # rule 2: what the torn write touched is written again
        for name in state.torn.written | set(state.torn.deleted):
            kind, where = _where(name.encode())
            where = (sys.intern(where[0]), where[1])
            if kind == "c":
                state.dirty_core.add(where)
            else:
                state._bucket(where)
                state.dirty_buckets.add(where)
    return state
