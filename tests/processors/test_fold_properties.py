"""Contract section 4 as properties (hypothesis): the files are a pure function of the
set of distinct accepted events, whatever the arrival order, the re-deliveries, or the
way the input is split and merged; and the counts always add up."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.derive import derive_file
from processors.fold import merge_states, new_state, state_from_bytes, state_to_bytes
from processors.services import service_id
from tests.conftest import (
    BUREAU, BUREAU_2, EMPLOYER_A, EMPLOYER_B, EVALUATOR, OCC, OCC_2, SCHOOL, SCHOOL_2, SSN_A, SSN_B, SSN_C, SSN_C_LEGACY,
    fold, line,
)

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Small domains, so that events collide: same employer and dates, same programs, same
# certificate numbers, same months, same instants (ties broken by event_id).
DAYS = ["2019-01-01", "2020-06-01", "2021-03-01", "2021-12-31", "2022-06-30", "2023-05-20", "2024-02-29"]
MONTHS = [f"2022-{m:02d}" for m in range(1, 13)] + ["2023-01", "2023-02", "2023-05"]
INSTANTS = [
    "2024-01-01T08:00:00+08:00", "2024-01-01T00:00:00Z", "2024-01-01T05:30:00+05:30",  # the same instant
    "2024-01-01T09:00:00", "2024-01-02T09:00:00+08:00", "2024-01-02T00:30:00+00:00", "2023-12-31T23:00:00-02:00",
]
REGIONS = ["440305", "310115"]

WORKERS = {
    SSN_A: st.sampled_from([SSN_A, SSN_A.lower(), " " + SSN_A]),
    SSN_B: st.just(SSN_B),
    SSN_C: st.sampled_from([SSN_C, SSN_C_LEGACY]),
}


def payloads(kind: str) -> st.SearchStrategy[tuple[str, dict]]:
    """(source, payload) of an event of `kind`."""
    day, month, region = st.sampled_from(DAYS), st.sampled_from(MONTHS), st.sampled_from(REGIONS)
    employer = st.sampled_from([EMPLOYER_A, EMPLOYER_B])
    scheme = st.sampled_from(["pension", "unemployment"])
    amount = st.integers(0, 3)
    school, program = st.sampled_from([SCHOOL, SCHOOL_2]), st.sampled_from(["P1", "P2"])
    cert_no = st.sampled_from(["S1", "S2", "S3"])
    issued_on = st.sampled_from(["2021-12-31", "2022-12-01", "2023-01-31", "2023-05-20", "2024-02-29"])
    if kind == "employment.started":
        return st.tuples(employer, st.fixed_dictionaries({
            "employer": employer, "occupation_code": st.sampled_from([OCC, OCC_2]),
            "contract_type": st.sampled_from(["open_ended", "fixed_term"]), "written_contract": st.booleans(),
            "start_date": day, "region": region, "monthly_wage_cny": st.sampled_from([5000, 6000])}))
    if kind == "employment.ended":
        return st.tuples(employer, st.fixed_dictionaries({
            "employer": employer, "end_date": day, "reason": st.sampled_from(["resigned", "dismissed"])}))
    if kind == "training.enrolled":
        return st.tuples(school, st.fixed_dictionaries({
            "program_id": program, "program_name": st.sampled_from(["焊工", "电工"]), "start_date": day,
            "planned_hours": st.sampled_from([40, 80])}))
    if kind == "training.completed":
        return st.tuples(school, st.fixed_dictionaries({
            "program_id": program, "end_date": day, "hours": st.sampled_from([40, 72]), "passed": st.booleans()}))
    if kind == "training.withdrawn":
        return st.tuples(school, st.fixed_dictionaries({"program_id": program, "date": day}))
    if kind == "insurance.enrolled":
        return st.tuples(st.just(BUREAU), st.fixed_dictionaries({"scheme": scheme, "month": month, "region": region}))
    if kind == "insurance.contribution":
        return st.tuples(st.just(BUREAU), st.fixed_dictionaries({
            "scheme": scheme, "month": month, "region": region, "base_cny": amount,
            "employer_amount_cny": amount, "personal_amount_cny": amount}))
    if kind == "insurance.suspended":
        return st.tuples(st.just(BUREAU), st.fixed_dictionaries({"scheme": scheme, "month": month}))
    if kind == "insurance.transferred":
        return st.tuples(st.just(BUREAU), st.fixed_dictionaries({
            "scheme": scheme, "month": month, "from_region": region, "to_region": region}))
    if kind == "card.issued":
        return st.tuples(st.just(BUREAU), st.fixed_dictionaries({
            "card_no": st.sampled_from(["C1", "C2"]), "issued_on": day, "region": region}))
    if kind == "certificate.issued":
        ladder = st.fixed_dictionaries({
            "certificate_no": cert_no, "kind": st.sampled_from(["skill_level", "vocational_qualification"]),
            "occupation_code": st.sampled_from([OCC, OCC_2]),
            "level": st.sampled_from(["junior", "intermediate", "senior", "technician"]), "issued_on": issued_on})
        special = st.fixed_dictionaries({
            "certificate_no": cert_no, "kind": st.just("special_competency"), "occupation_code": st.just(OCC),
            "level": st.none(), "issued_on": issued_on})
        return st.tuples(st.just(EVALUATOR), ladder | special)
    if kind == "certificate.revoked":
        return st.tuples(st.just(EVALUATOR), st.fixed_dictionaries({"certificate_no": cert_no, "revoked_on": day}))
    if kind.startswith("service."):  # (corrections of service events: another date, the same grant)
        return st.tuples(st.sampled_from([BUREAU, BUREAU_2]), st.just(None))
    if kind == "honor.awarded":
        return st.tuples(st.just(EVALUATOR), st.fixed_dictionaries({
            "title": st.sampled_from(["model_worker", "city_craftsman"]), "awarded_on": day}))
    raise AssertionError(kind)


WEIGHTED_KINDS = (
    ["employment.started"] * 3 + ["employment.ended"] * 3 + ["insurance.contribution"] * 4
    + ["insurance.enrolled", "insurance.suspended", "insurance.transferred", "card.issued", "honor.awarded",
       "training.enrolled", "training.completed", "training.withdrawn", "certificate.revoked"]
    + ["certificate.issued"] * 3
)


@st.composite
def careers(draw, max_base: int = 14) -> list[dict]:
    """Distinct valid events of a few workers, with corrections (also of corrections,
    also of events that come later or never), retractions (also of corrections, of
    retractions, of unknown events), ends before starts, same-instant ties."""
    events: list[dict] = []
    workers = draw(st.lists(st.sampled_from(sorted(WORKERS)), min_size=1, max_size=3, unique=True))

    def new(kind, worker, source, payload, corrects=None):
        event = {"event_id": f"e{len(events):03d}", "type": kind, "ssn": draw(WORKERS[worker]),
                 "occurred_at": draw(st.sampled_from(INSTANTS)), "source": source, "corrects": corrects,
                 "payload": payload}
        events.append(event)
        return event

    owner: dict[str, str] = {}
    for _ in range(draw(st.integers(1, max_base))):
        worker = draw(st.sampled_from(workers))
        kind = draw(st.sampled_from(WEIGHTED_KINDS + ["run", "run", "burst", "service", "service"]))
        if kind == "run":  # consecutive unemployment contributions: enough for a subsidy grant
            first = draw(st.integers(0, 3))
            for month in MONTHS[first:first + draw(st.integers(11, 13))]:
                payload = {"scheme": "unemployment", "month": month, "region": "440305", "base_cny": 1,
                           "employer_amount_cny": 1, "personal_amount_cny": 1}
                owner[new("insurance.contribution", worker, BUREAU, payload)["event_id"]] = worker
            if draw(st.booleans()):  # and a certificate that is a grant (unless corrected or revoked)
                payload = {
                    "certificate_no": draw(st.sampled_from(["S1", "S2", "S3"])),
                    "kind": draw(st.sampled_from(["skill_level", "vocational_qualification"])),
                    "occupation_code": draw(st.sampled_from([OCC, OCC_2])),
                    "level": draw(st.sampled_from(["junior", "intermediate", "senior"])),
                    "issued_on": draw(st.sampled_from(["2023-05-20", "2024-02-29"]))}
                owner[new("certificate.issued", worker, EVALUATOR, payload)["event_id"]] = worker
        elif kind == "service":  # section 9: claims, decisions, payments of a grant, by two bureaus racing
            certificates = [e["payload"] for e in events if e["type"] == "certificate.issued"
                            and worker_of(e) == worker and e["payload"]["level"] in ("junior", "intermediate", "senior")]
            if certificates and draw(st.integers(0, 3)):  # mostly of a certificate the worker has: a grant
                grant = draw(st.sampled_from(certificates))
            else:
                grant = {"occupation_code": draw(st.sampled_from([OCC, OCC_2])),
                         "level": draw(st.sampled_from(["junior", "intermediate", "senior"]))}
            sid = service_id(worker, grant) if draw(st.integers(0, 5)) else "00000000-0000-5000-8000-00000000000f"
            for sub in draw(st.lists(st.sampled_from(["service.claimed", "service.decided", "service.paid"]),
                                     min_size=1, max_size=4)):
                day = draw(st.sampled_from(["2023-06-01", "2024-02-29", "2024-06-01", "2025-03-01"]))
                payload = {"service_id": sid}
                if sub == "service.claimed":
                    payload |= {"claimed_on": day, "region": draw(st.sampled_from(REGIONS))}
                elif sub == "service.decided":
                    payload |= {"decision": draw(st.sampled_from(["approved", "refused"])), "decided_on": day}
                else:
                    payload |= {"paid_on": day, "amount_cny": draw(st.sampled_from([500, 1000, 2000]))}
                owner[new(sub, worker, draw(st.sampled_from([BUREAU, BUREAU_2])), payload)["event_id"]] = worker
        elif kind == "burst":  # insurance events of one scheme and month at one instant: ties
            instant = draw(st.sampled_from(INSTANTS))
            scheme, month = draw(st.sampled_from(["pension", "unemployment"])), draw(st.sampled_from(MONTHS))
            for sub in draw(st.lists(st.sampled_from(["insurance.contribution", "insurance.suspended",
                                                      "insurance.transferred", "insurance.enrolled"]),
                                     min_size=2, max_size=3)):
                source, payload = draw(payloads(sub))
                event = new(sub, worker, source, {**payload, "scheme": scheme, "month": month})
                event["occurred_at"] = instant
                owner[event["event_id"]] = worker
        else:
            source, payload = draw(payloads(kind))
            owner[new(kind, worker, source, payload)["event_id"]] = worker
    # corrections: of any event of the same worker and type (earlier or later, so chains,
    # cycles and corrections arriving before their target all happen), or of nothing known
    for _ in range(draw(st.integers(0, 5))):
        target = draw(st.sampled_from(events))
        if target["type"] == "event.retracted":
            continue
        source, payload = draw(payloads(target["type"]))
        if payload is None:  # a service event: the target's, on another day
            key = next(k for k in ("claimed_on", "decided_on", "paid_on") if k in target["payload"])
            payload = {**target["payload"], key: draw(st.sampled_from(["2023-06-01", "2024-06-01", "2025-03-01"]))}
        if draw(st.integers(0, 5)) == 0:
            corrects = "missing-" + target["event_id"]
        elif draw(st.booleans()):
            corrects = target["event_id"]
        else:  # forward reference: to an id that a later correction will get
            corrects = f"e{len(events) + draw(st.integers(1, 3)):03d}"
        owner[new(target["type"], owner[target["event_id"]], source, payload, corrects)["event_id"]] = \
            owner[target["event_id"]]
    # retractions: of any event (possibly of another worker, of a retraction, or unknown)
    for _ in range(draw(st.integers(0, 3))):
        target = draw(st.sampled_from(events))
        worker = draw(st.sampled_from(workers))
        target_id = target["event_id"] if draw(st.integers(0, 4)) else "unknown-" + target["event_id"]
        owner[new("event.retracted", worker, target["source"], {"event_id": target_id})["event_id"]] = worker
    return _drop_type_mismatches(events)


def _drop_type_mismatches(events: list[dict]) -> list[dict]:
    """Keep only corrections whose target (when present) is of the same type and worker:
    a correction of another type is order-dependent by design (rejected when its target
    is known, inert otherwise) and has its own property below."""
    by_id = {e["event_id"]: e for e in events}
    keep = []
    for e in events:
        target = by_id.get(e["corrects"]) if e["corrects"] else None
        if target is not None and (target["type"] != e["type"] or worker_of(target) != worker_of(e)):
            continue
        keep.append(e)
    return keep


def worker_of(event: dict) -> str:
    ssn = event["ssn"].strip().upper()
    return SSN_C if ssn == SSN_C_LEGACY else ssn


def files_of(events) -> list[dict]:
    batch = fold(events)
    assert batch.rejects == [], batch.rejects[:2]
    return batch.files()


def _mismatch_free_after_drop(events):
    """After dropping, a kept correction may point at a dropped id: that is fine (its
    target never arrives). Check there is no mismatch left."""
    by_id = {e["event_id"]: e for e in events}
    for e in events:
        t = by_id.get(e["corrects"]) if e["corrects"] else None
        assert t is None or (t["type"] == e["type"] and worker_of(t) == worker_of(e))


# --- properties ------------------------------------------------------------------------------

@SETTINGS
@given(careers(), st.data())
def test_any_permutation_and_any_re_delivery_gives_the_same_files(events, data):
    _mismatch_free_after_drop(events)
    reference = fold(events)
    assert reference.rejects == []
    assert reference.counts.accepted == len(events)
    redelivered = data.draw(st.lists(st.sampled_from(events), max_size=10))
    shuffled = data.draw(st.permutations(events + redelivered))
    batch = fold(shuffled)
    assert batch.rejects == []
    assert batch.files() == reference.files()
    assert (batch.counts.read, batch.counts.accepted, batch.counts.duplicates) == (
        len(shuffled), len(events), len(redelivered))


@SETTINGS
@given(careers(), st.data())
def test_re_delivery_in_another_json_layout_is_a_duplicate(events, data):
    again = data.draw(st.lists(st.sampled_from(events), min_size=1, max_size=5))
    relaid = [orjson.dumps(e, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode().replace("\n", "  ")
              for e in again]
    batch = fold(events + relaid)
    assert batch.counts.duplicates == len(again) and batch.rejects == []
    assert batch.files() == files_of(events)


@SETTINGS
@given(careers(), st.data())
def test_folding_two_halves_and_merging_equals_folding_once(events, data):
    in_first = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    in_both = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    first = [e for e, a, b in zip(events, in_first, in_both) if a or b]
    second = [e for e, a, b in zip(events, in_first, in_both) if not a or b]
    whole = fold(events)
    left, right = fold(first), fold(second)
    assert left.rejects == [] and right.rejects == []
    for ssn, state in whole.states.items():
        a = left.states.get(ssn) or new_state(ssn)
        b = right.states.get(ssn) or new_state(ssn)
        expected = derive_file(state)
        assert derive_file(merge_states(a, b)) == expected
        assert derive_file(merge_states(b, a)) == expected
        assert merge_states(a, b).records == state.records
    assert set(left.states) | set(right.states) == set(whole.states)


@SETTINGS
@given(careers())
def test_state_round_trip_gives_the_same_file(events):
    for state in fold(events).states.values():
        restored = state_from_bytes(state_to_bytes(state))
        assert derive_file(restored) == derive_file(state)


BAD_LINES = st.sampled_from([
    "not json", "[1]", '{"type": "card.issued"}', '{"event_id": "x", "type": "nope"}',
    line({"event_id": "bad-ssn", "type": "card.issued", "ssn": "110105194912310021",
          "occurred_at": "2024-01-01T08:00:00+08:00", "source": BUREAU, "corrects": None,
          "payload": {"card_no": "C9", "issued_on": "2020-01-01", "region": "440305"}}),
    line({"event_id": "bad-date", "type": "card.issued", "ssn": SSN_A,
          "occurred_at": "2024-01-01T08:00:00+08:00", "source": BUREAU, "corrects": None,
          "payload": {"card_no": "C9", "issued_on": "2020-02-30", "region": "440305"}}),
])


@SETTINGS
@given(careers(), st.data())
def test_counts_add_up_and_bad_lines_change_nothing(events, data):
    bad = data.draw(st.lists(BAD_LINES, max_size=6))
    dup = data.draw(st.lists(st.sampled_from(events), max_size=4))
    conflicting = [{**e, "occurred_at": "2020-01-01T00:00:00Z"} for e in data.draw(  # no INSTANT is this one
        st.lists(st.sampled_from(events), max_size=2, unique_by=lambda e: e["event_id"]))]
    tail = data.draw(st.permutations(bad + dup + conflicting))
    batch = fold(events + tail)
    c = batch.counts
    assert c.read == len(events) + len(tail)
    assert c.accepted + c.duplicates + c.rejected == c.read
    assert c.accepted == len(events)
    reasons = [r["reason"] for r in batch.rejects]
    assert len(reasons) == c.rejected
    assert c.duplicates == len(dup)
    assert reasons.count("event_id_conflict") == len(conflicting)
    assert len(reasons) == len(bad) + len(conflicting)
    assert batch.files() == files_of(events)
    assert sorted(r["line"] for r in batch.rejects) == [r["line"] for r in batch.rejects]


@st.composite
def careers_with_mismatched_corrections(draw) -> tuple[list[dict], list[dict]]:
    """Careers plus corrections of another type than their target, that no other event
    refers to (so whether each is rejected or inert depends only on its own arrival)."""
    events = draw(careers(max_base=8))
    retracted = {e["payload"]["event_id"] for e in events if e["type"] == "event.retracted"}
    targets = [e for e in events if e["type"] != "event.retracted"]
    mismatched = []
    for i in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(targets))
        kind = draw(st.sampled_from(sorted({k for k in WEIGHTED_KINDS if k != target["type"]})))
        source, payload = draw(payloads(kind))
        event_id = f"m{i:03d}"
        assert event_id not in retracted
        mismatched.append({"event_id": event_id, "type": kind, "ssn": target["ssn"],
                           "occurred_at": draw(st.sampled_from(INSTANTS)), "source": source,
                           "corrects": target["event_id"], "payload": payload})
    return events, mismatched


@SETTINGS
@given(careers_with_mismatched_corrections(), st.data())
def test_correction_of_another_type_never_changes_the_file_in_any_order(case, data):
    events, mismatched = case
    expected = files_of(events)
    shuffled = data.draw(st.permutations(events + mismatched))
    batch = fold(shuffled)
    assert batch.files() == expected
    assert {r["reason"] for r in batch.rejects} <= {"correction_type_mismatch"}
    assert batch.counts.accepted + batch.counts.rejected == len(shuffled)
