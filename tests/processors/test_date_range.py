"""Every date, month and instant of an event lies in the years 1880-9998
(schemas.events.EARLIEST_YEAR..LATEST_YEAR): outside, `invalid_date` on both intake
paths (reference and JSON fast path), so that no conversion to UTC or China time and no
derived date (apply_by) can overflow later — and a page showing an older state's
instant does not fail either (streams.web.instant_text)."""

from __future__ import annotations

import datetime as dt
import re

import orjson
import pytest

from processors.fold import make_record, new_state
from processors.intake import Rejection, fast_json_line, instant_us, now_us, parse_json_line, validate_event
from schemas.events import CST, EARLIEST_YEAR, LATEST_YEAR, YEAR_PATTERN
from streams.web import instant_text, provenance
from tests.conftest import make_event

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


def test_the_fast_paths_year_pattern_is_exactly_the_range():
    pattern = re.compile(YEAR_PATTERN + r"\Z")
    assert (EARLIEST_YEAR, LATEST_YEAR) == (1880, 9998)
    assert [y for y in range(10000) if pattern.match(f"{y:04d}")] == list(range(EARLIEST_YEAR, LATEST_YEAR + 1))


def both_paths(event: dict):
    """The reference verdict, after checking that the fast path agrees with it."""
    line = orjson.dumps(event)
    reference = parse_json_line(line, NOW)
    fast = fast_json_line(line, now_us(NOW))
    if fast is not None:  # the fast path only ever accepts what the reference accepts
        assert not isinstance(reference, Rejection) and fast[3] == instant_us(reference.occurred_at), reference
    return reference, fast


@pytest.mark.parametrize("occurred_at, ok", [
    ("0001-01-01T00:00:00+08:00", False), ("0001-01-01T00:00:00-14:00", False), ("0000-01-01T00:00:00Z", False),
    ("1879-12-31T23:59:59.999999+08:00", False), ("1879-12-31T23:59:59-23:59", False),
    ("1880-01-01T00:00:00+08:00", True), ("1880-01-01T00:00:00+23:59", True), ("1880-01-01 00:00:00", True),
    ("2024-06-01T09:00:00+08:00", True),
])
def test_an_instant_outside_the_years_is_invalid_date(occurred_at, ok):
    reference, fast = both_paths(make_event("training.enrolled", occurred_at=occurred_at))
    if ok:
        assert not isinstance(reference, Rejection) and fast is not None
        instant_text(instant_us(reference.occurred_at))  # shown without overflow
    else:
        assert (reference.reason, reference.field) == ("invalid_date", "occurred_at") and fast is None
        assert occurred_at.startswith("0000") or reference.message == "occurred_at: must lie in the years 1880-9998"


def test_far_future_instants_are_invalid_date_before_future_date():
    for occurred_at in ("9999-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00"):
        reference, fast = both_paths(make_event("training.enrolled", occurred_at=occurred_at))
        assert reference.reason == "invalid_date" and fast is None
    reference, _ = both_paths(make_event("training.enrolled", occurred_at="9998-12-31T23:59:59-23:59"))
    assert reference.reason == "future_date"


@pytest.mark.parametrize("kind, field, value, ok", [
    ("training.enrolled", "start_date", "1880-01-01", True), ("training.enrolled", "start_date", "1879-12-31", False),
    ("training.enrolled", "start_date", "0001-01-01", False), ("training.completed", "end_date", "9998-12-31", True),
    ("training.completed", "end_date", "9999-01-01", False), ("training.completed", "end_date", "9999-12-31", False),
    ("certificate.issued", "issued_on", "9998-12-31", True), ("certificate.issued", "issued_on", "9999-06-01", False),
    ("certificate.issued", "valid_until", "9999-12-31", False), ("certificate.issued", "valid_until", "9998-12-31", True),
    ("insurance.contribution", "month", "1880-01", True), ("insurance.contribution", "month", "1879-12", False),
    ("insurance.contribution", "month", "0000-01", False), ("insurance.contribution", "month", "9998-12", True),
    ("insurance.contribution", "month", "9999-12", False),
])
def test_a_payload_date_or_month_outside_the_years_is_invalid_date(kind, field, value, ok):
    event = make_event(kind)
    event["payload"][field] = value
    reference, fast = both_paths(event)
    if ok:
        assert not isinstance(reference, Rejection), reference
    else:
        assert isinstance(reference, Rejection) and fast is None
        assert (reference.reason, reference.field) == ("invalid_date", f"payload.{field}")
        assert "1880-9998" in reference.message


def test_decoded_dates_and_instants_are_held_to_the_same_years():
    """The stream validates Avro-decoded dicts, whose dates are already date objects."""
    event = make_event("training.enrolled")
    event["payload"]["start_date"] = dt.date(1, 1, 1)
    assert validate_event(event, NOW).reason == "invalid_date"
    event = make_event("training.enrolled", occurred_at=dt.datetime(1, 1, 1, tzinfo=CST))
    assert validate_event(event, NOW).reason == "invalid_date"
    event = make_event("training.enrolled", occurred_at=dt.datetime(2024, 1, 1, tzinfo=CST))
    assert not isinstance(validate_event(event, NOW), Rejection)


def test_provenance_of_a_state_with_an_instant_python_cannot_convert():
    """A state folded before the rule: the page shows the instant (clamped) instead of failing."""
    state = new_state("11010519491231002X")
    source = "91440300MA5D1AB3CQ"
    fields = {"program_id": "P1", "program_name": "x", "start_date": "2024-03-01", "planned_hours": 80,
              "occupation_code": "6-18-01-01"}
    for eid, moment in (("old", dt.datetime(1, 1, 1, tzinfo=CST)), ("late", dt.datetime(9999, 12, 31, 20, tzinfo=dt.timezone(-dt.timedelta(hours=8)))),
                        ("now", dt.datetime(2024, 1, 1, tzinfo=CST))):
        state.add(eid, make_record("training.enrolled", state.ssn, instant_us(moment), source, None, fields))
    shown = {e["event_id"]: e["occurred_at"] for e in provenance(state)}
    assert shown["now"] == "2024-01-01T00:00:00+08:00"
    assert shown["old"] == "0001-01-01T00:00:00+00:00"
    assert shown["late"] == "9999-12-31T23:59:59.999999+00:00"
    assert instant_text(-10**22) == "0001-01-01T00:00:00+00:00" and instant_text(10**22).startswith("9999-12-31")
