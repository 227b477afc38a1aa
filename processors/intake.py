"""Turning raw input (a JSON line, or a decoded Avro record) into a validated event,
or into a `Rejection` with exactly one contract reason (section 5).

Pure: no I/O. The same functions serve `workerfile fold` and the stream agents.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
import types
import typing
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import orjson
from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic_core import SchemaValidator, core_schema

from schemas.identity import OCCUPATION_RE, IdentityError, normalise_ssn, validate_org_code
from schemas.events import CST, EVENT_TYPES, Envelope

if TYPE_CHECKING:
    from processors.organisations import Organisations

FUTURE_TOLERANCE = dt.timedelta(minutes=5)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MICRO = dt.timedelta(microseconds=1)
_TOLERANCE_US = FUTURE_TOLERANCE // _MICRO
_EPOCH_ORDINAL = _EPOCH.toordinal()
_fromisoformat = dt.datetime.fromisoformat
_date_fromisoformat = dt.date.fromisoformat

# One reason per rejected event: when several problems are found, the first in this
# order is reported (the message lists them all). `unauthorized_source` (section 8) is
# checked on an event that passed every format check (it needs a valid source and
# payload), before the fold's own reasons: an event its source may not say never
# reaches the state, so it is never a duplicate or a conflict.
REASON_ORDER = (
    "malformed", "unknown_type", "schema", "invalid_ssn", "invalid_org_code",
    "invalid_occupation_code", "invalid_date", "future_date", "unauthorized_source",
    "event_id_conflict", "correction_type_mismatch",
)
REASONS = frozenset(REASON_ORDER)
_RANK = {r: i for i, r in enumerate(REASON_ORDER)}
_OWN_REASONS = {"invalid_ssn", "invalid_org_code", "invalid_occupation_code", "invalid_date"}
# Cross-field checks of the models report on the model; this names the field they concern.
_FIELD_OF_CHECK = {
    "dispatch_agency_required": "dispatch_agency", "level_required": "level", "level_not_allowed": "level",
    "self_correction": "corrects", "retraction_corrects": "corrects", "legacy_mismatch": "ssn_legacy",
}


_now_cache: list = [None, 0.0, 0]  # [aware datetime, monotonic time after which to look again, µs]


def _now() -> dt.datetime:
    """The current time, looked up at most every 50 ms (hot path; the tolerance is 5 minutes)."""
    tick = time.monotonic()
    if tick >= _now_cache[1]:
        _now_cache[0] = now = dt.datetime.now(dt.timezone.utc)
        _now_cache[1] = tick + 0.05
        _now_cache[2] = (now - _EPOCH) // _MICRO
    return _now_cache[0]


def now_us(now: dt.datetime | None = None) -> int:
    """`now` (default: the current time, as `_now`) in microseconds since the epoch."""
    if now is not None:
        return (now - _EPOCH) // _MICRO
    if time.monotonic() >= _now_cache[1]:
        _now()
    return _now_cache[2]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input was not folded: a contract `reason`, a message, and the field path."""

    reason: str
    message: str
    field: str | None = None


def parse_json_line(line: str | bytes, now: dt.datetime | None = None,
                    organisations: Organisations | None = None) -> Envelope | Rejection:
    """Parse one canonical JSON event; never raises."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        return Rejection("malformed", f"not valid JSON: {err}")
    return validate_event(data, now, organisations)


def validate_event(data: Any, now: dt.datetime | None = None,
                   organisations: Organisations | None = None) -> Envelope | Rejection:
    """Validate a decoded event (dict) against the contract; never raises. With the
    organisation registry, also whether its source may say it (`unauthorized_source`);
    without (None), sources are not checked (development mode)."""
    if not isinstance(data, dict):
        return Rejection("schema", f"an event must be a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if not isinstance(kind, str):
        problem = "missing field" if kind is None else f"must be a string, got {type(kind).__name__}"
        return Rejection("schema", f"type: {problem}", "type")
    model = EVENT_TYPES.get(kind)
    if model is None:
        return Rejection("unknown_type", f"type: unknown event type {kind[:60]!r}", "type")
    try:
        event = model.model_validate(data)
    except ValidationError as err:
        return rejection_from_errors(err.errors(include_input=False, include_url=False))
    if event.occurred_at - (now or _now()) > FUTURE_TOLERANCE:
        return Rejection("future_date", "occurred_at is more than 5 minutes ahead of now", "occurred_at")
    if organisations is not None:
        unauthorized = organisations.check(event)
        if unauthorized is not None:
            return unauthorized
    return event


def rejection_from_errors(errors: list[dict]) -> Rejection:
    """Pick the one contract reason of a pydantic error list, and say every problem."""
    problems = []
    for error in errors:
        loc = [str(p) for p in error["loc"]]
        kind = error["type"]
        if kind in _FIELD_OF_CHECK:
            loc.append(_FIELD_OF_CHECK[kind])
        if kind in _OWN_REASONS:
            reason, path, message = kind, ".".join(loc) or "ssn", error["msg"]
        elif kind == "missing":
            reason, path, message = "schema", ".".join(loc), "missing field"
        elif kind == "extra_forbidden":
            reason, path, message = "schema", ".".join(loc), "unknown field"
        else:
            reason, path, message = "schema", ".".join(loc), error["msg"]
        problems.append((_RANK[reason], reason, path, message))
    problems.sort(key=lambda p: p[0])
    _, reason, path, _ = problems[0]
    message = "; ".join(f"{p[2] or '(event)'}: {p[3]}" for p in problems)
    return Rejection(reason, message, path or None)


# --- the fast path for JSON lines (`workerfile fold`) -----------------------------------
#
# `parse_json_line` parses with orjson, then builds the pydantic models with their Python
# hooks: the reference, and what the stream uses for its (Avro-decoded) dicts. The fast
# path validates a line straight from its bytes in pydantic-core, into plain dicts, with
# schemas derived from the same models in which every Python hook of a field is replaced
# by a pure pydantic-core constraint that accepts *no more* than the hook (month, date and
# occupation code patterns), or is left to a few checks in Python afterwards (SSN, codes
# of organisations, calendar dates, the instant, the models' own "after" validators). It
# only ever *accepts*: whatever it does not accept in full (any error, a number not in its
# normalised form, a legacy number, an event with ssn_legacy, one in the future...) goes
# the reference way, which says why. So both give the same events and the same reasons;
# tests/processors/test_fast_path.py compares them on generated inputs with every kind of
# bad line. An event type whose model has a hook with no fast form has no fast path.

_STRICT = core_schema.CoreConfig(strict=True)  # as the models (events.Strict); on every typed dict
_ENVELOPE_SIZE = 7  # event_id, type, ssn, occurred_at, source, corrects, payload (not ssn_legacy)


class _FastPlan(NamedTuple):
    """How one event type is checked on the fast path, after pydantic-core."""

    type: str  # the event type, interned (the records keep it)
    org_fields: tuple[str, ...]  # payload fields that are organisation codes (None allowed)
    date_fields: tuple[str, ...]  # payload fields that are dates as strings (None allowed)
    payload_checks: tuple  # model validators ("after") of the payload, run on a namespace of its values
    envelope_checks: tuple  # those of the envelope (but the SSN's), on a namespace of the event
    payload_size: int  # how many fields the payload has: more are extra fields (forbidden)


# Built on first use: {"validator": the SchemaValidator, "validate_json": its method, "plans": {type: _FastPlan}}
_fast: dict = {}


def _fast_field(hint, events) -> tuple[dict, str | None] | None:
    """The pydantic-core schema of a field on the fast path and what is left to check in
    Python after it ("org", "date", "instant" or None); None when it has no fast form."""
    substitutes = {
        # the years of every date, month and instant: events.YEAR_PATTERN (1880-9998, as events._in_range)
        events.Month: (core_schema.str_schema(pattern=r"^" + events.YEAR_PATTERN + r"-(0[1-9]|1[0-2])$"), None),  # = events._month
        events.Date: (core_schema.str_schema(pattern=r"^" + events.YEAR_PATTERN + r"-[0-9]{2}-[0-9]{2}$"), "date"),  # + fromisoformat
        events.Timestamp: (core_schema.str_schema(pattern=r"^" + events.YEAR_PATTERN + r"-"), "instant"),
        events.OrgCode: (core_schema.str_schema(), "org"),
        events.OccupationCode: (core_schema.str_schema(pattern=r"^" + OCCUPATION_RE.pattern + r"$"), None),
    }
    if hint in substitutes:
        return substitutes[hint]
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = _fast_field(args[0] if args[1] is type(None) else args[1], events)
        return None if inner is None else (core_schema.nullable_schema(inner[0]), inner[1])
    schema = TypeAdapter(hint, config=ConfigDict(strict=True)).core_schema
    if "function" in repr(schema) or "definitions" in repr(schema):  # a Python hook, or a nested model
        return None
    return schema, None


def _fast_fields(model, events, skip: tuple[str, ...] = ()) -> tuple[dict, dict[str, list[str]]] | None:
    """The typed-dict fields of a model's fields on the fast path, and which fields are
    left to which Python check; None when a field has no fast form."""
    hints = typing.get_type_hints(model, include_extras=True)
    fields, checks = {}, {"org": [], "date": [], "instant": []}
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        fast = _fast_field(hints[name], events)
        if fast is None:
            return None
        schema, check = fast
        if not info.is_required():
            schema = core_schema.with_default_schema(schema, default=info.default)
        fields[name] = core_schema.typed_dict_field(schema, required=info.is_required())
        if check is not None:
            checks[check].append(name)
    return fields, checks


def _fast_model(model, events) -> tuple[dict, _FastPlan] | None:
    """The typed-dict schema of an event type on the fast path and its plan; None when
    it has no fast path."""
    payload_model = model.model_fields["payload"].annotation
    own = {k: v for k, v in model.__pydantic_decorators__.model_validators.items() if k != "_normalise_ssn"}
    payload_validators = payload_model.__pydantic_decorators__.model_validators
    if (payload_model.__pydantic_decorators__.field_validators or model.__pydantic_decorators__.field_validators
            or any(v.info.mode != "after" for v in [*payload_validators.values(), *own.values()])):
        return None
    payload = _fast_fields(payload_model, events)
    # ssn: normalised by Envelope._normalise_ssn, checked in Python; ssn_legacy: left out
    # (an extra field), an event that has one goes the reference way.
    envelope = _fast_fields(model, events, skip=("ssn", "ssn_legacy", "payload"))
    if payload is None or envelope is None or envelope[1] != {"org": ["source"], "date": [], "instant": ["occurred_at"]}:
        return None
    payload_fields, payload_checks = payload
    if payload_checks["instant"]:
        return None
    fields = {**envelope[0], "ssn": core_schema.typed_dict_field(core_schema.str_schema()),
              "payload": core_schema.typed_dict_field(core_schema.typed_dict_schema(
                  payload_fields, extra_behavior="allow", config=_STRICT))}
    if len(fields) != _ENVELOPE_SIZE:
        return None
    kind = sys.intern(model.model_fields["type"].annotation.__args__[0])
    plan = _FastPlan(kind, tuple(payload_checks["org"]), tuple(payload_checks["date"]),
                     tuple(v.func for v in payload_validators.values()), tuple(v.func for v in own.values()),
                     len(payload_fields))
    # Extra fields are kept ("allow") and then counted, which costs less than "forbid".
    return core_schema.typed_dict_schema(fields, extra_behavior="allow", config=_STRICT), plan


def _build_fast() -> dict:
    from schemas import events

    choices, plans = {}, {}
    for kind, model in EVENT_TYPES.items():
        built = _fast_model(model, events)
        if built is not None:
            choices[kind], plans[kind] = built
    # No string cache: most strings of an event are new (ids, instants), and caching costs
    # more than it saves (about a third of the validation).
    validator = SchemaValidator(core_schema.tagged_union_schema(choices, discriminator="type", strict=True),
                                config=core_schema.CoreConfig(strict=True, cache_strings="none"))
    _fast.update(validator=validator, validate_json=validator.validate_json, plans=plans)
    return _fast


_GOOD_ORGS: dict[str, str] = {}  # organisation codes that passed validate_org_code, each to its interned string
_GOOD_SSNS: dict[str, str] = {}  # numbers that normalise_ssn gave back unchanged, each to one string
# object of it (once valid, always: the only rule that depends on the day is a birth date not in the
# future). The fold's states are keyed by that object, so looking a worker up compares identities.
_CACHE_SIZE = 65536


def _org_ok(code: str) -> bool:
    if code in _GOOD_ORGS:
        return True
    try:
        validate_org_code(code)
    except IdentityError:
        return False
    if len(_GOOD_ORGS) >= _CACHE_SIZE:
        _GOOD_ORGS.clear()
    _GOOD_ORGS[code] = sys.intern(code)
    return True


def _ssn_ok(ssn: str) -> bool:
    """Whether `ssn` is a valid number in its normalised form (not a legacy one)."""
    try:
        if normalise_ssn(ssn).number != ssn:
            return False
    except IdentityError:
        return False
    if len(_GOOD_SSNS) >= _CACHE_SIZE:
        _GOOD_SSNS.clear()
    _GOOD_SSNS[ssn] = ssn
    return True


_last_zone: list = [(CST, 8 * 3600 * 10**6)]  # [(the last time zone seen, its offset in µs)]: one
# tuple, replaced whole, so that another thread never sees a zone with another zone's offset


_UTC = dt.timezone.utc
_MINUTE = dt.timedelta(minutes=1)


def instant_us(moment: dt.datetime) -> int:
    """`(moment - epoch) // 1 µs`, a naive moment being in China Standard Time (as
    events._timestamp reads it), without the timedelta objects of that expression."""
    zone = moment.tzinfo
    if zone is None:
        zone = CST
    last_zone, offset = _last_zone[0]
    if zone != last_zone:  # timezone objects are equal when their offsets are
        delta = zone.utcoffset(moment)
        offset = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        _last_zone[0] = (zone, offset)
    return (((moment.toordinal() - _EPOCH_ORDINAL) * 86400 + moment.hour * 3600 + moment.minute * 60
             + moment.second) * 1_000_000 + moment.microsecond - offset)


def _checks_pass(checks: tuple, values: Any) -> bool:
    for check in checks:
        try:
            if check(values) is not values:
                return False
        except Exception:  # noqa: BLE001 - whatever it raises, the reference way says why
            return False
    return True


def fast_json_line(line: str | bytes, now_us: int, organisations: Organisations | None = None) -> tuple | None:
    """The fast path of `parse_json_line`: for a line it accepts in full, the parts of
    the event `processors.fold.make_record` takes, `(event_id, type, ssn, occurred_us,
    source, corrects, payload)` (the payload a dict of every field in the model's order,
    dates as their strings); otherwise None, and the line must go `parse_json_line`.
    `now_us` is now in microseconds since the epoch; `organisations` the registry
    (None: sources not checked), an event its source may not say goes the reference
    way (`unauthorized_source`). Never raises."""
    return fast_json_lines((line,), now_us, organisations)[0]


def fast_json_lines(lines: Sequence[str | bytes], now_us: int,
                    organisations: Organisations | None = None) -> list[tuple | None]:
    """`fast_json_line` of each line, in two passes over the lines (all through
    pydantic-core, then all through the checks in Python), which keeps each pass's code
    and data in the processor's caches: faster on a few hundred lines at a time."""
    fast = _fast or _build_fast()
    validate_json, plans = fast["validate_json"], fast["plans"]
    validated = []
    for line in lines:
        try:
            validated.append(validate_json(line))
        except ValueError:  # ValidationError, or a str that is not UTF-8
            validated.append(None)
    good_ssns, good_orgs, fromisoformat, date_fromisoformat = _GOOD_SSNS, _GOOD_ORGS, _fromisoformat, _date_fromisoformat
    latest_us = now_us + _TOLERANCE_US
    allows = organisations.allows if organisations is not None else None
    results: list[tuple | None] = []
    for data in validated:
        results.append(None)
        if data is None or len(data) != _ENVELOPE_SIZE:
            continue  # extra fields (ssn_legacy too: an event that has one goes the reference way)
        event_id, corrects, source = data["event_id"], data["corrects"], data["source"]
        ssn = good_ssns.get(data["ssn"])
        if ssn is None:
            ssn = data["ssn"]
            if not _ssn_ok(ssn):
                continue
        if corrects == event_id:
            continue
        known = good_orgs.get(source)
        if known is None:
            if not _org_ok(source):
                continue
            known = good_orgs[source]
        source = known  # the interned string: the records keep it
        value = data["occurred_at"]  # read as events._timestamp reads it
        if len(value) < 19 or value[10] not in "Tt ":
            continue
        try:
            occurred_at = fromisoformat(value)
        except ValueError:
            continue
        zone = occurred_at.tzinfo
        if zone is not None and zone is not _UTC and occurred_at.utcoffset() % _MINUTE:
            continue  # an offset with seconds: the reference way refuses it
        occurred = instant_us(occurred_at)
        if occurred > latest_us:
            continue
        payload = data["payload"]
        kind, org_fields, date_fields, payload_checks, envelope_checks, payload_size = plans[data["type"]]
        if len(payload) != payload_size:
            continue  # extra fields
        bad = False
        for name in org_fields:
            code = payload[name]
            if code is not None and code not in good_orgs and not _org_ok(code):
                bad = True
                break
        for name in date_fields:
            day = payload[name]
            if day is not None and not _is_date(day):
                bad = True
                break
        if bad:
            continue
        if payload_checks or envelope_checks:  # the models' own checks, on the values they would see
            values = SimpleNamespace(**payload)
            for name in date_fields:
                if payload[name] is not None:
                    setattr(values, name, date_fromisoformat(payload[name]))
            if not _checks_pass(payload_checks, values):
                continue
            if envelope_checks:
                event = SimpleNamespace(**data)
                event.occurred_at = occurred_at if occurred_at.tzinfo is not None else occurred_at.replace(tzinfo=CST)
                event.payload, event.ssn_legacy = values, None
                if not _checks_pass(envelope_checks, event):
                    continue
        if allows is not None and not allows(kind, source, payload):
            continue  # unauthorized_source: the reference way says why
        results[-1] = (event_id, kind, ssn, occurred, source, corrects, payload)
    return results


def _is_date(day: str) -> bool:
    """A `YYYY-MM-DD` string (the fast schema's pattern) that is a calendar date."""
    try:
        _date_fromisoformat(day)
    except ValueError:
        return False
    return True
