"""Turning raw input (a JSON line, or a decoded Avro record) into a validated event,
or into a `Rejection` with exactly one contract reason (section 5).

Pure: no I/O. The same functions serve `workerfile fold` and the stream agents.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.events import EVENT_TYPES, Envelope
FUTURE_TOLERANCE = dt.timedelta(minutes=5)

# One reason per rejected event: when several problems are found, the first in this
# order is reported (the message lists them all).
REASON_ORDER = (
    "malformed", "unknown_type", "schema", "invalid_ssn", "invalid_org_code",
    "invalid_occupation_code", "invalid_date", "future_date",
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


_now_cache: list = [None, 0.0]  # [aware datetime, monotonic time after which to look again]


def _now() -> dt.datetime:
    """The current time, looked up at most every 50 ms (hot path; the tolerance is 5 minutes)."""
    tick = time.monotonic()
    if tick >= _now_cache[1]:
        _now_cache[0] = dt.datetime.now(dt.timezone.utc)
        _now_cache[1] = tick + 0.05
    return _now_cache[0]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input was not folded: a contract `reason`, a message, and the field path."""

    reason: str
    message: str
    field: str | None = None


def parse_json_line(line: str | bytes, now: dt.datetime | None = None) -> Envelope | Rejection:
    """Parse one canonical JSON event; never raises."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        return Rejection("malformed", f"not valid JSON: {err}")
    return validate_event(data, now)


def validate_event(data: Any, now: dt.datetime | None = None) -> Envelope | Rejection:
    """Validate a decoded event (dict) against the contract; never raises."""
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
