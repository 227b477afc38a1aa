"""Contract section 5: every reject reason, fed as bad input through `fold_lines`.

For each bad line: the reject record carries the reason, the field path, the 1-based line
number and the original input; nothing else changes (the files are those of folding the
input without the bad line); and accepted + duplicates + rejected == read.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt

import orjson
import pytest

from processors.batch import fold_lines
from processors.intake import REASONS, Rejection, parse_json_line
from tests.conftest import (
    AGENCY, BUREAU, DROP, EMPLOYER_A, EMPLOYER_B, EVALUATOR, SCHOOL, SSN_A, SSN_B,
    correction, fold, line, make_event, retraction,
)

CONTRACT_REASONS = {
    "malformed", "schema", "unknown_type", "invalid_ssn", "invalid_org_code", "invalid_occupation_code",
    "invalid_date", "future_date", "event_id_conflict", "correction_type_mismatch",
}


def good_career() -> list[dict]:
    """A small valid input for two workers; bad lines are inserted into it."""
    start = make_event("employment.started", event_id="g-start", source=EMPLOYER_A)
    return [
        make_event("card.issued", event_id="g-card", source=BUREAU),
        start,
        make_event("insurance.enrolled", event_id="g-ins", source=BUREAU),
        make_event("insurance.contribution", event_id="g-con", source=BUREAU),
        make_event("training.enrolled", event_id="g-train", source=SCHOOL),
        make_event("certificate.issued", event_id="g-cert", source=EVALUATOR),
        make_event("employment.started", ssn=SSN_B, event_id="g-b-start",
                   payload={"employer": EMPLOYER_B, "start_date": "2021-03-01"}),
        correction(start, {"monthly_wage_cny": 8500}, event_id="g-start-fix",
                   occurred_at="2024-07-01T09:00:00+08:00"),
    ]


def check_single_reject(bad, reason: str, field: str | None, at: int = 3, base=None, now=None) -> dict:
    """Insert `bad` (a dict or a raw line) after `at` good events, fold, and check."""
    good = good_career() if base is None else base
    events = good[:at] + [bad] + good[at:]
    batch = fold(events, now=now)
    assert len(batch.rejects) == 1, batch.rejects
    reject = batch.rejects[0]
    assert reject["reason"] == reason, reject
    assert reject["field"] == field, reject
    assert reject["line"] == at + 1
    assert reject["input"] == line(bad)
    assert reject["message"]
    assert reject["reason"] in CONTRACT_REASONS
    # nothing else changed
    clean = fold(good, now=now)
    assert batch.files() == clean.files()
    assert batch.counts.read == len(events)
    assert batch.counts.rejected == 1
    assert batch.counts.accepted == clean.counts.accepted
    assert batch.counts.duplicates == clean.counts.duplicates
    assert batch.counts.accepted + batch.counts.duplicates + batch.counts.rejected == batch.counts.read
    return reject


def test_the_good_career_is_clean():
    batch = fold(good_career())
    assert batch.rejects == []
    assert batch.counts.accepted == batch.counts.read == 8
    assert [f["ssn"] for f in batch.files()] == sorted([SSN_A, SSN_B])


def test_reasons_cover_the_contract():
    assert CONTRACT_REASONS <= REASONS


# --- malformed -----------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    "this is not json",
    '{"event_id": "bad-1", "type": "training.enrolled"',
    "{'event_id': 'single-quoted'}",
    '{"a": 1} {"b": 2}',
    "NaN",
])
def test_malformed(bad):
    reject = check_single_reject(bad, "malformed", None)
    assert reject["event_id"] is None


def test_malformed_bytes_that_are_not_utf8_keep_the_original_bytes():
    good = [line(e).encode() for e in good_career()]
    bad = b'{"event_id": "x\xff\xfe"}'
    batch = fold_lines(good[:2] + [bad + b"\n"] + good[2:])
    assert [(r["reason"], r["line"]) for r in batch.rejects] == [("malformed", 3)]
    reject = batch.rejects[0]
    assert reject["input_encoding"] == "base64"
    assert base64.b64decode(reject["input"]) == bad
    assert batch.files() == fold_lines(good).files()


def test_reject_input_is_the_line_without_its_line_break():
    batch = fold_lines(["not json\r\n"])
    assert batch.rejects[0]["input"] == "not json"
    assert batch.rejects[0]["input_encoding"] == "utf-8"


# --- schema --------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["[1]", '"an event"', "42", "null", "true"])
def test_json_that_is_not_an_object_is_schema(bad):
    check_single_reject(bad, "schema", None)


def test_missing_type_is_schema():
    check_single_reject(make_event("card.issued", type=DROP), "schema", "type")


@pytest.mark.parametrize("type_, payload, envelope, field", [
    ("training.enrolled", {"program_name": DROP}, {}, "payload.program_name"),
    ("employment.started", {"written_contract": DROP}, {}, "payload.written_contract"),
    ("employment.ended", {"reason": DROP}, {}, "payload.reason"),
    ("insurance.contribution", {"personal_amount_cny": DROP}, {}, "payload.personal_amount_cny"),
    ("insurance.transferred", {"to_region": DROP}, {}, "payload.to_region"),
    ("card.issued", {"card_no": DROP}, {}, "payload.card_no"),
    ("certificate.issued", {"issued_on": DROP}, {}, "payload.issued_on"),
    ("honor.awarded", {"awarded_on": DROP}, {}, "payload.awarded_on"),
    ("event.retracted", {"event_id": DROP}, {}, "payload.event_id"),
    ("training.completed", None, {"occurred_at": DROP}, "occurred_at"),
    ("training.completed", None, {"event_id": DROP}, "event_id"),
    ("training.completed", None, {"source": DROP}, "source"),
    ("training.completed", None, {"ssn": DROP}, "ssn"),
    ("training.completed", DROP, {}, "payload"),
])
def test_missing_field_is_schema_with_its_path(type_, payload, envelope, field):
    bad = make_event(type_, payload=payload, **envelope)
    reject = check_single_reject(bad, "schema", field)
    assert "missing" in reject["message"]


@pytest.mark.parametrize("extra, field", [
    ({"payload": {"colour": "blue"}}, "payload.colour"),
    ({"ssn_hash": "abc"}, "ssn_hash"),
])
def test_extra_field_is_schema_with_its_path(extra, field):
    bad = make_event("training.enrolled", payload=extra.get("payload"),
                     **{k: v for k, v in extra.items() if k != "payload"})
    check_single_reject(bad, "schema", field)


@pytest.mark.parametrize("type_, changes, field", [
    ("training.enrolled", {"payload": {"planned_hours": "80"}}, "payload.planned_hours"),
    ("training.enrolled", {"payload": {"planned_hours": 80.5}}, "payload.planned_hours"),
    ("training.completed", {"payload": {"hours": -1}}, "payload.hours"),
    ("training.completed", {"payload": {"passed": "yes"}}, "payload.passed"),
    ("training.completed", {"payload": {"passed": 1}}, "payload.passed"),
    ("employment.started", {"payload": {"written_contract": "true"}}, "payload.written_contract"),
    ("employment.started", {"payload": {"contract_type": "zero_hours"}}, "payload.contract_type"),
    ("employment.started", {"payload": {"region": "44030"}}, "payload.region"),
    ("employment.started", {"payload": {"monthly_wage_cny": "8000"}}, "payload.monthly_wage_cny"),
    ("employment.ended", {"payload": {"reason": "fired"}}, "payload.reason"),
    ("insurance.enrolled", {"payload": {"scheme": "housing_fund"}}, "payload.scheme"),
    ("certificate.issued", {"payload": {"kind": "diploma"}}, "payload.kind"),
    ("certificate.issued", {"payload": {"level": "master"}}, "payload.level"),
    ("honor.awarded", {"payload": {"title": "hero"}}, "payload.title"),
    ("card.issued", {"event_id": 123}, "event_id"),
    ("card.issued", {"event_id": ""}, "event_id"),
    ("card.issued", {"ssn": 11010519491231002}, "ssn"),
    ("card.issued", {"payload": "C1"}, "payload"),
    ("card.issued", {"corrects": 5}, "corrects"),
    ("card.issued", {"occurred_at": 1717200000}, "occurred_at"),
])
def test_ill_typed_field_is_schema_with_its_path(type_, changes, field):
    payload = changes.get("payload")
    envelope = {k: v for k, v in changes.items() if k != "payload"}
    if isinstance(payload, dict):
        bad = make_event(type_, payload=payload, **envelope)
    else:
        bad = make_event(type_, **envelope)
        if payload is not None:
            bad["payload"] = payload
    check_single_reject(bad, "schema", field)


def test_dispatched_without_dispatch_agency_is_schema():
    bad = make_event("employment.started", payload={"contract_type": "dispatched"})
    check_single_reject(bad, "schema", "payload.dispatch_agency")


def test_dispatched_with_dispatch_agency_is_accepted():
    ok = make_event("employment.started", payload={"contract_type": "dispatched", "dispatch_agency": AGENCY,
                                                   "employer": EMPLOYER_B, "start_date": "2023-01-01"})
    batch = fold(good_career() + [ok])
    assert batch.rejects == []


def test_special_competency_with_a_level_is_schema():
    bad = make_event("certificate.issued", payload={"kind": "special_competency", "level": "junior"})
    check_single_reject(bad, "schema", "payload.level")


def test_special_competency_without_level_is_accepted():
    ok = make_event("certificate.issued", payload={"certificate_no": "SC1", "kind": "special_competency",
                                                   "level": None})
    assert fold(good_career() + [ok]).rejects == []


@pytest.mark.parametrize("kind", ["skill_level", "vocational_qualification"])
@pytest.mark.parametrize("level", [DROP, None])
def test_level_missing_for_a_ladder_certificate_is_schema(kind, level):
    bad = make_event("certificate.issued", payload={"kind": kind, "level": level})
    check_single_reject(bad, "schema", "payload.level")


def test_retraction_that_carries_corrects_is_schema():
    base = good_career()
    bad = retraction(base[1], corrects="g-con")
    check_single_reject(bad, "schema", "corrects")


def test_event_that_corrects_itself_is_schema():
    bad = make_event("card.issued", event_id="self", corrects="self")
    check_single_reject(bad, "schema", "corrects")


def test_one_reason_per_event_but_the_message_lists_every_problem():
    bad = make_event("training.enrolled", payload={"program_name": DROP, "start_date": "2024-02-30"})
    reject = check_single_reject(bad, "schema", "payload.program_name")
    assert "program_name" in reject["message"] and "start_date" in reject["message"]


# --- unknown_type --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["training.paused", "Training.Enrolled", "", "employment"])
def test_unknown_type(kind):
    check_single_reject(make_event("card.issued", type=kind), "unknown_type", "type")


# --- identities ----------------------------------------------------------------------------

@pytest.mark.parametrize("ssn", [
    "110105194912310021",  # wrong check character
    "1101051949123100",  # too short
    "130503671301001",  # legacy number, month 13
    "11010518790101001" + "0",
])
def test_invalid_ssn(ssn):
    reject = check_single_reject(make_event("card.issued", ssn=ssn), "invalid_ssn", "ssn")
    assert ssn not in reject["message"]  # the message masks the number


@pytest.mark.parametrize("changes, field", [
    ({"source": "91440300708461136A"}, "source"),
    ({"source": "91440300708461I36T"}, "source"),
    ({"payload": {"employer": "914403007084611360"}}, "payload.employer"),
    ({"payload": {"contract_type": "dispatched", "dispatch_agency": "91310115MA1K3XYZ07"}}, "payload.dispatch_agency"),
])
def test_invalid_org_code(changes, field):
    bad = make_event("employment.started", payload=changes.get("payload"),
                     **{k: v for k, v in changes.items() if k != "payload"})
    check_single_reject(bad, "invalid_org_code", field)


@pytest.mark.parametrize("type_, code", [
    ("employment.started", "9-01-01-01"),
    ("certificate.issued", "6-18-01"),
    ("training.enrolled", "6-18-01-01-2"),
])
def test_invalid_occupation_code(type_, code):
    bad = make_event(type_, payload={"occupation_code": code})
    check_single_reject(bad, "invalid_occupation_code", "payload.occupation_code")


# --- dates ---------------------------------------------------------------------------------

@pytest.mark.parametrize("type_, changes, field", [
    ("employment.started", {"payload": {"start_date": "2024-02-30"}}, "payload.start_date"),
    ("employment.ended", {"payload": {"end_date": "2024/06/30"}}, "payload.end_date"),
    ("training.withdrawn", {"payload": {"date": "30-06-2024"}}, "payload.date"),
    ("insurance.contribution", {"payload": {"month": "2024-13"}}, "payload.month"),
    ("insurance.enrolled", {"payload": {"month": "2024-1"}}, "payload.month"),
    ("card.issued", {"payload": {"issued_on": "2023-02-29"}}, "payload.issued_on"),
    ("certificate.issued", {"payload": {"valid_until": "2028-13-01"}}, "payload.valid_until"),
    ("card.issued", {"occurred_at": "yesterday"}, "occurred_at"),
    ("card.issued", {"occurred_at": "2024-06-01"}, "occurred_at"),
    ("card.issued", {"occurred_at": "2024-06-31T09:00:00+08:00"}, "occurred_at"),
    ("card.issued", {"occurred_at": "2024-06-01T09:00:00+08:00:30"}, "occurred_at"),  # offset with seconds
    ("card.issued", {"occurred_at": "2024-06-01T09:00:00.250+08:00:30.5"}, "occurred_at"),
])
def test_invalid_date(type_, changes, field):
    bad = make_event(type_, payload=changes.get("payload"), **{k: v for k, v in changes.items() if k != "payload"})
    check_single_reject(bad, "invalid_date", field)


NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


def test_future_date_more_than_five_minutes_ahead():
    ahead = (NOW + dt.timedelta(minutes=6)).isoformat()
    check_single_reject(make_event("card.issued", occurred_at=ahead), "future_date", "occurred_at", now=NOW)


def test_future_date_compares_instants_and_treats_no_offset_as_cst():
    # 20:06 without offset is 12:06 UTC: six minutes ahead of NOW
    check_single_reject(make_event("card.issued", occurred_at="2026-06-01T20:06:00"), "future_date",
                        "occurred_at", now=NOW)


@pytest.mark.parametrize("occurred_at", [
    (NOW + dt.timedelta(minutes=4)).isoformat(),
    "2026-06-01T20:04:00+08:00",
    "2026-06-01T20:04:00",  # China Standard Time
])
def test_within_five_minutes_ahead_is_accepted(occurred_at):
    batch = fold(good_career() + [make_event("card.issued", occurred_at=occurred_at)], now=NOW)
    assert batch.rejects == []


def test_future_date_with_the_real_clock():
    ahead = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
    check_single_reject(make_event("card.issued", occurred_at=ahead), "future_date", "occurred_at")


# --- conflicts and corrections -------------------------------------------------------------

def test_event_id_conflict():
    base = good_career()
    bad = copy.deepcopy(base[2])
    bad["payload"]["region"] = "310115"
    reject = check_single_reject(bad, "event_id_conflict", "event_id", at=5)
    assert reject["event_id"] == "g-ins"


@pytest.mark.parametrize("change", [
    {"occurred_at": "2024-06-01T09:00:01+08:00"},
    {"source": EMPLOYER_B},
    {"corrects": "g-card"},
    {"type": "insurance.enrolled", "payload": {"scheme": "pension", "month": "2020-01", "region": "440305"}},
])
def test_event_id_conflict_on_any_content_change(change):
    base = good_career()
    bad = {**copy.deepcopy(base[2]), **change}
    if change.get("type"):
        bad["event_id"] = "g-con"  # an insurance.enrolled under the contribution's id
    check_single_reject(bad, "event_id_conflict", "event_id", at=4)


def test_conflict_detection_is_per_worker():
    base = good_career()
    other = {**copy.deepcopy(base[2]), "ssn": SSN_B}  # same event_id, another worker
    batch = fold(base + [other])
    assert batch.rejects == []
    assert batch.counts.accepted == len(base) + 1
    b_file = next(f for f in batch.files() if f["ssn"] == SSN_B)
    assert [i["scheme"] for i in b_file["insurance"]] == ["pension"]


def test_same_event_re_encoded_is_a_duplicate_not_a_conflict():
    base = good_career()
    same = copy.deepcopy(base[2])
    same["occurred_at"] = "2024-06-01T01:00:00Z"  # the same instant
    same["ssn"] = " " + SSN_A.lower() + " "
    text = orjson.dumps(same, option=orjson.OPT_INDENT_2).decode().replace("\n", " ")
    batch = fold(base + [text])
    assert batch.rejects == []
    assert batch.counts.duplicates == 1
    assert batch.files() == fold(base).files()


def test_correction_type_mismatch():
    bad = make_event("card.issued", corrects="g-ins", payload={"card_no": "C999"})
    reject = check_single_reject(bad, "correction_type_mismatch", "corrects", at=4)
    assert reject["event_id"] == bad["event_id"]


def test_correction_of_a_retraction_is_a_type_mismatch():
    base = good_career()
    ret = retraction(base[3], event_id="g-ret")
    base.append(ret)
    bad = make_event("card.issued", corrects="g-ret")
    check_single_reject(bad, "correction_type_mismatch", "corrects", at=len(base), base=base)


# --- blank lines, counts, reject records ---------------------------------------------------

def test_blank_lines_are_skipped_and_not_counted_but_keep_line_numbers():
    events = [line(e) for e in good_career()]
    lines = ["", events[0], "   ", "\n", events[1], "\t\r\n", "not json"] + events[2:]
    batch = fold_lines(lines)
    assert batch.counts.read == len(events) + 1
    assert batch.counts.rejected == 1
    assert batch.rejects[0]["line"] == 7
    assert batch.files() == fold_lines(events).files()


def test_counts_add_up_with_duplicates_and_every_kind_of_reject():
    base = good_career()
    events = base + [base[0], base[3], "junk", "[1]", make_event("x.y"), make_event("card.issued", ssn="1")]
    batch = fold(events)
    c = batch.counts
    assert (c.read, c.accepted, c.duplicates, c.rejected) == (len(events), len(base), 2, 4)
    assert [r["line"] for r in batch.rejects] == [11, 12, 13, 14]


def test_reject_record_names_the_file():
    batch = fold_lines(["junk"], file="events.jsonl")
    assert batch.rejects[0]["file"] == "events.jsonl"


def test_parse_json_line_never_raises():
    for bad in ["", "{", "[]", '{"type": null}', '{"type": ["a"]}', '{"type": "card.issued", "payload": null}']:
        assert isinstance(parse_json_line(bad), Rejection)


# --- only ASCII digits, nothing after a value ------------------------------------------------

@pytest.mark.parametrize("region", ["４４０３０５", "440305\n", "٤٤٠٣٠٥"])
def test_region_must_be_six_ascii_digits(region):
    check_single_reject(make_event("card.issued", payload={"region": region}), "schema", "payload.region")


@pytest.mark.parametrize("code", ["6-18-01-01\n", "6-１８-01-01"])
def test_occupation_code_must_be_ascii_and_whole(code):
    bad = make_event("certificate.issued", payload={"occupation_code": code})
    check_single_reject(bad, "invalid_occupation_code", "payload.occupation_code")


@pytest.mark.parametrize("month", ["2022-01\n", "２０２２-01"])
def test_month_must_be_ascii_and_whole(month):
    check_single_reject(make_event("insurance.contribution", payload={"month": month}), "invalid_date",
                        "payload.month")


@pytest.mark.parametrize("date", ["2022-01-01\n", "２０２２-01-01", "20220101"])
def test_date_must_be_ascii_yyyy_mm_dd(date):
    check_single_reject(make_event("card.issued", payload={"issued_on": date}), "invalid_date",
                        "payload.issued_on")
