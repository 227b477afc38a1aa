"""The JSON fast path of `workerfile fold` (`processors.intake.fast_json_line`, bytes
validated in pydantic-core) against the reference path (`parse_json_line`: orjson, then
`validate_event` of the dict, as the stream validates its Avro-decoded dicts).

The fast path may only ever *accept*, and only what the reference accepts, reduced to
the same record; everything else goes the reference way, which gives the reason. So:
on a generated population with every kind of bad, odd or non-canonical input, each line
the fast path accepts is accepted by the reference with the same record (and the same
fingerprint), and folding with or without the fast path gives the same files, counts
and rejects (reasons, fields, messages).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random

import orjson
import pytest

import processors.batch
from processors.batch import BatchFold, fold_lines
from processors.fold import (
    ACCEPTED, fold_event, make_record, new_state, state_from_bytes, state_to_bytes, to_record,
)
from schemas.identity import make_ssn
from processors.intake import (
    Rejection, fast_json_line, fast_json_lines, instant_us, now_us, parse_json_line, validate_event,
)
from processors.organisations import Organisations, parse_organisations, registry_toml
from schemas.events import CST, EVENT_TYPES
from tests.conftest import (
    AGENCY, BUREAU, DEFAULT_PAYLOADS, EMPLOYER_A, OCC, SOURCE, SSN_A, SSN_B, SSN_C, SSN_C_LEGACY, make_event,
)
from workerfile.population import generate_population, population_registry

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.timezone.utc)

# Replacements for one field, good and bad, by the kind of value the field holds.
TIMESTAMPS = [
    "2024-06-01T09:00:00+08:00", "2024-06-01T09:00:00Z", "2024-06-01t09:00:00z", "2024-06-01 09:00:00+08:00",
    "2024-06-01T09:00:00", "2024-06-01T09:00:00.123456+08:00", "2024-06-01T09:00:00.5-05:30",
    "2024-06-01T09:00:00,5+08:00", "2024-06-01T09:00+08:00", "2024-06-01T09+08:00", "2024-06-01",
    "2024-06-01T24:00:00+08:00", "2024-06-01T23:59:60+08:00", "2024-02-30T09:00:00+08:00",
    "2024-06-01T09:00:00+24:00", "2024-06-01T09:00:00+08:00:30", "2024-W22-6T09:00:00+08:00",
    "20240601T090000+0800", "２０２４-06-01T09:00:00+08:00", "0001-01-01T00:00:00+08:00",
    "9999-12-31T23:59:59-08:00", "1969-12-31T23:59:59.999999+00:00", " 2024-06-01T09:00:00+08:00",
    "2025-06-01T20:04:00+08:00", "2025-06-01T20:06:00+08:00", "2025-06-01T12:05:00Z",  # about now + 5 min
    "2025-06-01T12:05:00.000001Z", "2030-01-01T00:00:00+08:00", "", "now", 1717200000, None,
    "2024-06-01x09:00:00+08:00", "2024-06-01_09:00:00", "2024-06-01T09:00:00+08", "2024-06-01T09:00:00+0800",
    "2024-06-01T09:00:00.1234567+08:00", "2024-06-01T0900xx+08:00",
    # the years 1880-9998 (schemas.events.YEAR_PATTERN): the bounds, either side, in other offsets
    "1880-01-01T00:00:00+08:00", "1880-01-01T00:00:00+14:00", "1879-12-31T23:59:59.999999-12:00",
    "1879-12-31T23:59:59+08:00", "0001-01-01T00:00:00-08:00", "0000-01-01T00:00:00Z", "9998-12-31T23:59:59-23:59",
    "9999-01-01T00:00:00+08:00", "1899-12-31T12:00:00+08:00", "1900-01-01 00:00:00",
]
DATES = ["2024-02-29", "2023-02-29", "2024-13-01", "2024-1-5", "20240105", "2024-01-05T00:00:00",
         "２０２４-01-05", "0000-01-01", "9999-12-31", " 2024-01-05", "2024-01-05\n", 20240105, None,
         "1880-01-01", "1879-12-31", "0001-01-01", "9998-12-31", "9999-01-01", "1899-02-29", "9996-02-29"]
MONTHS = ["2024-01", "2024-12", "2024-00", "2024-13", "2024-1", "202401", "2024-01-01", "２０２４-01", "2024-01\n",
          None, 202401, "1880-01", "1879-12", "0001-01", "0000-12", "9998-12", "9999-01", "9999-12"]
ORGS = [EMPLOYER_A, AGENCY, EMPLOYER_A.lower(), EMPLOYER_A[:-1] + ("0" if EMPLOYER_A[-1] != "0" else "1"),
        EMPLOYER_A[:17], EMPLOYER_A + "0", "91440300708461I36", " " + EMPLOYER_A, None, 91440300]
OCCUPATIONS = [OCC, "6-18-01-01-02", "9-18-01-01", "6-18-01", "6-18-01-01-", "6-18-01-01\n", "６-18-01-01", None, 6]
SSNS = [SSN_A, SSN_A.lower(), " " + SSN_A, SSN_A + " ", "１１０１０５１９４９１２３１００２Ｘ", SSN_C_LEGACY, SSN_C,
        SSN_A[:-1] + "1", make_ssn("11010520991231002"), make_ssn("11010518791231002"), make_ssn("11010519491331002"),
        "11010519491231002", "1101051949123100", SSN_C_LEGACY[:-1] + "A", None, 11010519491231002]
IDS = ["e-1", "", "x" * 128, "x" * 129, "é", None, 7]
TEXTS = ["a", "", "文" * 500, "文" * 501, None, 5]
INTS = [0, 1, 80, 100_000, 100_001, 10**12, 10**12 + 1, -1, 80.0, 8e1, True, "80", None, 10**30]
BOOLS = [True, False, 1, 0, "true", None]


def _field_values(model_field: str, kind: str) -> list:
    if model_field in ("employer", "dispatch_agency"):
        return ORGS
    if model_field == "occupation_code":
        return OCCUPATIONS
    if model_field == "month":
        return MONTHS
    if model_field in ("start_date", "end_date", "date", "issued_on", "valid_until", "revoked_on", "awarded_on"):
        return DATES
    if model_field in ("planned_hours", "hours", "base_cny", "employer_amount_cny", "personal_amount_cny",
                       "monthly_wage_cny"):
        return INTS
    if model_field in ("passed", "written_contract"):
        return BOOLS
    if model_field in ("program_name", "reason"):
        return TEXTS + ["resigned", "other"]
    if model_field in ("region", "from_region", "to_region"):
        return ["440305", "44030", "4403055", "４40305", None, 440305]
    if model_field == "level":
        return ["junior", "master", None, 3]
    if model_field == "kind":
        return ["special_competency", "skill_level", "diploma", None]
    if model_field == "contract_type":
        return ["dispatched", "open_ended", "zero_hours", None]
    return IDS + ["pension", "work_injury", "housing_fund", "city_craftsman"]


def variants(event: dict, rng: random.Random) -> list[dict]:
    """Copies of `event` with one change each (a field replaced, removed or added)."""
    out = []
    for name, values in (("occurred_at", TIMESTAMPS), ("ssn", SSNS), ("event_id", IDS), ("source", ORGS),
                         ("corrects", [None, "some-other-event", event["event_id"], "", 5])):
        for value in values if name in ("occurred_at", "ssn") else rng.sample(values, min(4, len(values))):
            out.append({**event, name: value})
    kind = event["type"]
    payload = event["payload"]
    for name in EVENT_TYPES[kind].model_fields["payload"].annotation.model_fields:
        values = _field_values(name, kind)
        for value in rng.sample(values, min(4, len(values))):
            out.append({**event, "payload": {**payload, name: value}})
        out.append({**event, "payload": {k: v for k, v in payload.items() if k != name}})
    for name in ("event_id", "type", "ssn", "occurred_at", "source", "corrects", "payload"):
        out.append({k: v for k, v in event.items() if k != name})
    out += [
        {**event, "ssn_legacy": None}, {**event, "ssn_legacy": SSN_C_LEGACY}, {**event, "colour": "blue"},
        {**event, "payload": {**payload, "colour": "blue"}}, {**event, "payload": None}, {**event, "payload": []},
        {**event, "type": rng.choice(list(EVENT_TYPES))}, {**event, "type": "training.unknown"}, {**event, "type": 5},
    ]
    if event["ssn"] == SSN_C:
        out.append({**event, "ssn": SSN_C_LEGACY, "ssn_legacy": SSN_C_LEGACY})
    return out


def encodings(event: dict, rng: random.Random) -> list[bytes | str]:
    """The same event written in other ways: key order, spacing, escapes, str."""
    canonical = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    items = list(event.items())
    rng.shuffle(items)
    shuffled = json.dumps(dict(items), indent=2).encode()  # and non-ASCII as \\u escapes
    escaped = canonical.replace(b'"type"', b'"t\\u0079pe"').replace(b"-", b"\\u002d", 1)
    return [canonical, shuffled, escaped, canonical.decode(), b"  " + canonical + b" \r\n"]


BAD_LINES = [
    b"this is not json", b'{"event_id": "bad-1", "type": "training.enrolled"', b"{'event_id': 'x'}", b'{"a": 1} {"b": 2}',
    b"NaN", b"[1]", b'"an event"', b"42", b"null", b"true", b"{}", b'{"event_id": "x\xff\xfe"}', b"\xef\xbb\xbf{}",
    b'{"type": "card.issued", "payload": {"card_no": "\\ud800"}}', b'{"type": "card.issued"}',
    b'{"type": "card.issued", "type": "honor.awarded"}', b"\x00", "{\"type\": \"card.issued\", \"x\": \"\ud800\"}",
]


def population(seed: int) -> list[bytes | str]:
    """A generated population with its anomalies, plus every event type with every
    kind of changed field, written in several ways; duplicates and conflicts included."""
    rng = random.Random(seed)
    lines: list[bytes | str] = [i.encode() if isinstance(i, str) else orjson.dumps(i)
                                for i in generate_population(12, seed=seed, months=14)]
    for kind in EVENT_TYPES:
        for ssn in (SSN_A, SSN_B, SSN_C):
            payload = copy.deepcopy(DEFAULT_PAYLOADS[kind])
            if kind == "employment.started" and rng.random() < 0.5:
                payload.update(contract_type="dispatched", dispatch_agency=AGENCY)
            if kind == "certificate.issued" and rng.random() < 0.5:
                payload.update(kind="special_competency", level=None, valid_until="2030-01-01")
            event = make_event(kind, ssn=ssn, payload=payload,
                               occurred_at=rng.choice(TIMESTAMPS[:8]), corrects=rng.choice([None, None, "e-0"]))
            if kind == "event.retracted":
                event["corrects"] = None
            for changed in [event, *variants(event, rng)]:
                written = encodings(changed, rng)
                lines += rng.sample(written, 2)
                lines.append(written[0])  # a re-delivery
    lines += BAD_LINES
    conflict = make_event("card.issued", payload={"card_no": "C1"})
    lines += [orjson.dumps(conflict), orjson.dumps({**conflict, "payload": {**conflict["payload"], "card_no": "C2"}})]
    rng.shuffle(lines)
    return lines


@pytest.fixture(scope="module", params=[1, 2, 3])
def lines(request) -> list[bytes | str]:
    return population(request.param)


def registry_of(seed: int) -> Organisations:
    """A registry that lets some of `population(seed)`'s sources say what they say and not
    others: the generated population's organisations but one employer and one bureau
    (not in the registry), the test events' default source as an employer and training
    provider only (so its insurance, certificate, honour... events, and its employment
    events of another employer, are unauthorized_source), EMPLOYER_A and AGENCY as
    employers, BUREAU as the social-insurance bureau."""
    orgs = population_registry(seed)
    employers = [c for c, (_, roles) in orgs.items() if roles == ["employer"]]
    bureaus = [c for c, (_, roles) in orgs.items() if roles == ["social_insurance"]]
    for code in (employers[0], bureaus[0]):
        del orgs[code]
    orgs.update({SOURCE: ("默认机构", ["employer", "training_provider"]), EMPLOYER_A: ("用人单位 A", ["employer"]),
                 AGENCY: ("劳务派遣 A", ["employer"]), BUREAU: ("社保局", ["social_insurance"])})
    return parse_organisations(registry_toml(orgs))


@pytest.fixture(scope="module", params=[1, 2])
def with_registry(request) -> tuple[list[bytes | str], Organisations]:
    return population(request.param), registry_of(request.param)


def test_the_fast_path_accepts_only_what_the_reference_accepts_with_the_same_record(lines):
    now = now_us(NOW)
    fast_count = 0
    for line in lines:
        fast = fast_json_line(line, now)
        if fast is None:
            continue
        fast_count += 1
        event = parse_json_line(line, NOW)
        assert not isinstance(event, Rejection), (line, event)
        event_id, kind, ssn, occurred, source, corrects, payload = fast
        assert (event_id, ssn, event.ssn_legacy) == (event.event_id, event.ssn, None), line
        assert make_record(kind, ssn, occurred, source, corrects, payload) == to_record(event), line
    assert fast_count > len(lines) / 8  # the fast path is taken (most lines here are bad)


def test_every_canonical_valid_line_takes_the_fast_path(lines):
    """What the fast path leaves to the reference is rejected, or not in canonical form
    (a legacy or unnormalised number, a line with ssn_legacy)."""
    now = now_us(NOW)
    for line in lines:
        event = parse_json_line(line, NOW)
        if isinstance(event, Rejection) or event.ssn_legacy is not None:
            continue
        data = orjson.loads(line)
        if data["ssn"] != event.ssn or "ssn_legacy" in data:
            continue
        assert fast_json_line(line, now) is not None, line


def test_the_dict_path_gives_the_same_results_as_the_json_line(lines):
    """validate_event of the decoded dict (the stream's way) = parse_json_line of the line."""
    for line in lines:
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        by_line, by_dict = parse_json_line(line, NOW), validate_event(data, NOW)
        if isinstance(by_line, Rejection):
            assert by_dict == by_line
        else:
            assert to_record(by_dict) == to_record(by_line)


def test_folding_with_and_without_the_fast_path_gives_the_same_everything(lines, monkeypatch):
    fast = fold_lines(lines, file="in.jsonl", now=NOW)
    assert fast_json_lines(lines, now_us(NOW)) == [fast_json_line(line, now_us(NOW)) for line in lines]
    with monkeypatch.context() as m:
        m.setattr(processors.batch, "fast_json_line", lambda line, now, organisations=None: None)
        m.setattr(processors.batch, "fast_json_lines", lambda lines, now, organisations=None: [None] * len(lines))
        reference = fold_lines(lines, file="in.jsonl", now=NOW)
    assert fast.counts == reference.counts
    assert fast.rejects == reference.rejects
    assert fast.files() == reference.files()
    assert {r["reason"] for r in fast.rejects} >= {
        "malformed", "schema", "unknown_type", "invalid_ssn", "invalid_org_code", "invalid_occupation_code",
        "invalid_date", "future_date", "event_id_conflict"}


def test_with_a_registry_both_paths_give_the_same_everything(with_registry, monkeypatch):
    """The organisation registry (section 8) checked on the fast path and on the
    reference path: same records, same rejects (unauthorized_source among them), same
    files; and the stream's way (validate_event of the dict) agrees line by line."""
    lines, registry = with_registry
    now = now_us(NOW)
    fast = fold_lines(lines, file="in.jsonl", now=NOW, organisations=registry)
    assert fast_json_lines(lines, now, registry) == [fast_json_line(line, now, registry) for line in lines]
    with monkeypatch.context() as m:
        m.setattr(processors.batch, "fast_json_line", lambda line, now, organisations=None: None)
        m.setattr(processors.batch, "fast_json_lines", lambda lines, now, organisations=None: [None] * len(lines))
        reference = fold_lines(lines, file="in.jsonl", now=NOW, organisations=registry)
    assert fast.counts == reference.counts
    assert fast.rejects == reference.rejects
    assert fast.files() == reference.files()
    unauthorized = [r for r in fast.rejects if r["reason"] == "unauthorized_source"]
    messages = " ".join(r["message"] for r in unauthorized)
    assert len(unauthorized) > 50 and "not in the organisation registry" in messages
    assert "lacks the role" in messages and "neither payload.employer nor payload.dispatch_agency" in messages
    open_fold = fold_lines(lines, file="in.jsonl", now=NOW)
    assert open_fold.counts.accepted > fast.counts.accepted  # without the registry they were accepted
    taken = 0
    for line in lines:
        by_fast = fast_json_line(line, now, registry)
        by_line = parse_json_line(line, NOW, registry)
        if by_fast is not None:
            taken += 1
            assert not isinstance(by_line, Rejection) and make_record(*by_fast[1:]) == to_record(by_line)
        elif not isinstance(by_line, Rejection) and by_line.ssn_legacy is None and "ssn_legacy" not in str(line):
            assert orjson.loads(line)["ssn"] != by_line.ssn, line  # only an unnormalised number goes the slow way
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        by_dict = validate_event(data, NOW, registry)
        if isinstance(by_line, Rejection):
            assert by_dict == by_line
        else:
            assert to_record(by_dict) == to_record(by_line)
    assert taken > len(lines) / 20  # the fast path is still taken (most lines here are bad or unauthorized)


def test_take_line_one_line_at_a_time_is_fold_lines(lines):
    one_by_one = BatchFold(now=NOW)
    for number, line in enumerate(lines, start=1):
        if line.strip():
            one_by_one.take_line(line, number, "in.jsonl")
    folded = fold_lines(lines, file="in.jsonl", now=NOW)
    assert one_by_one.counts == folded.counts
    assert one_by_one.rejects == folded.rejects
    assert one_by_one.states == folded.states


def test_a_redelivery_in_another_key_order_and_spacing_is_a_duplicate():
    event = make_event("insurance.contribution")
    items = list(event.items())[::-1]
    again = orjson.dumps({k: (dict(list(v.items())[::-1]) if isinstance(v, dict) else v) for k, v in items},
                         option=orjson.OPT_INDENT_2)
    batch = fold_lines([orjson.dumps(event), again, orjson.dumps(event).decode()], now=NOW)
    assert (batch.counts.accepted, batch.counts.duplicates, batch.counts.rejected) == (1, 2, 0)


def test_the_avro_decoded_event_has_the_fingerprint_of_the_json_line():
    """The stream folds Avro-decoded dicts: same records as the offline fold's lines."""
    from schemas.events import event_to_json_dict
    from streams import codec

    now = now_us(NOW)
    for line in population(4):
        fast = fast_json_line(line, now)
        if fast is None:
            continue
        event = validate_event(orjson.loads(line), NOW)
        if event.occurred_at.utcoffset().seconds % 60:
            continue  # not RFC 3339 (offset +08:00:30): serialised without its seconds, a known limit
        decoded = codec.decode_event(codec.encode("Event", event_to_json_dict(event)))
        assert to_record(validate_event(decoded, NOW)) == make_record(*fast[1:])


def test_instant_us_is_the_timedelta_arithmetic():
    epoch, micro = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc), dt.timedelta(microseconds=1)
    rng = random.Random(7)
    zones = [None, dt.timezone.utc, CST, dt.timezone(dt.timedelta(hours=-5)),
             dt.timezone(dt.timedelta(hours=5, minutes=45)),
             dt.timezone(dt.timedelta(hours=23, minutes=59, seconds=59, microseconds=999999)),
             dt.timezone(-dt.timedelta(hours=23, minutes=59, seconds=59, microseconds=1))]
    for _ in range(20000):
        moment = dt.datetime(rng.randint(2, 9998), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                             rng.randint(0, 59), rng.randint(0, 59), rng.choice([0, rng.randint(0, 999999)]),
                             tzinfo=rng.choice(zones))
        expected = ((moment if moment.tzinfo else moment.replace(tzinfo=CST)) - epoch) // micro
        assert instant_us(moment) == expected, moment


def test_the_fast_path_never_raises():
    for line in [*BAD_LINES, b"", "", b"{" * 10000, "\ud800", b'{"type": "card.issued", "payload": {}}']:
        fast_json_line(line, now_us(NOW))


def test_every_event_type_has_a_fast_path():
    """A hook without a fast form in a model would silently send its type the slow way."""
    from processors.intake import _build_fast

    assert set(_build_fast()["plans"]) == set(EVENT_TYPES)


def test_the_fast_path_writes_the_states_of_the_reference_path_and_redeliveries_stay_duplicates():
    """States are kept: the fast path must give the same records, fingerprints included,
    as the reference path (a pydantic model per event, then fold_event)."""
    events = [
        make_event("insurance.contribution", event_id="c-1"),
        make_event("insurance.transferred", event_id="t-1"),
        make_event("employment.started", event_id="s-1",
                   payload={"contract_type": "dispatched", "dispatch_agency": AGENCY}),
        make_event("certificate.issued", event_id="k-1", occurred_at="2024-06-01T09:00:00.5Z"),
        make_event("training.enrolled", event_id="p-1", occurred_at="2024-06-01T09:00:00"),
        make_event("card.issued", event_id="d-1", corrects="d-0"),
    ]
    lines = [orjson.dumps(e) for e in events]
    assert all(fast_json_line(line, now_us(NOW)) is not None for line in lines)
    reference = new_state(SSN_A)
    for line in lines:
        assert fold_event(reference, parse_json_line(line, NOW)).status == ACCEPTED
    batch = fold_lines(lines, now=NOW)
    assert state_to_bytes(batch.states[SSN_A]) == state_to_bytes(reference)
    again = BatchFold(now=NOW, states={SSN_A: state_from_bytes(state_to_bytes(reference))})
    again.take_lines(lines)
    assert (again.counts.duplicates, again.counts.read) == (len(lines), len(lines))


def test_states_of_the_old_format_are_refused_with_what_to_do():
    old = orjson.loads(state_to_bytes(new_state(SSN_A))) | {"v": 2}
    with pytest.raises(ValueError, match="new application id"):
        state_from_bytes(orjson.dumps(old))