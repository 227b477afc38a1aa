"""Contract section 8, second rule: a retraction, or an event with `corrects`, must come
from the source of its target. Known target, other source: `unauthorized_source`; arrived
first, other source: no effect and the issue `unauthorized_change`. Without a registry
(development mode) nothing of this is checked. Through the offline fold and the state
table alike."""

from __future__ import annotations

import orjson

from processors.batch import fold_lines
from processors.derive import derive_file
from processors.fold import fold_event, from_table, table_writes
from schemas.identity import make_org_code
from tests.conftest import BUREAU, EVALUATOR, SSN_A, correction, envelope, make_event, retraction
from tests.processors.test_organisations import NOW, registry

def second_bureau() -> str:
    """A second social-insurance bureau."""
    return make_org_code("11440300007542619")


def fold(events, organisations):
    batch = fold_lines([orjson.dumps(e) for e in events], now=NOW, organisations=organisations)
    return batch, {f["ssn"]: f for f in batch.files()}


def scenario():
    other = second_bureau()
    orgs = registry({other: ("另一社保局", ["social_insurance"])})
    card = make_event("card.issued", source=BUREAU, payload={"card_no": "C1"})
    by_other = correction(card, {"card_no": "C2"}, source=other)
    taken_back = retraction(card, source=other)
    return orgs, card, by_other, taken_back


def test_a_change_of_a_known_event_from_another_source_is_rejected():
    orgs, card, by_other, taken_back = scenario()
    batch, files = fold([card, by_other, taken_back], orgs)
    assert [r["reason"] for r in batch.rejects] == ["unauthorized_source", "unauthorized_source"]
    assert all(r["field"] == "source" for r in batch.rejects)
    assert files[SSN_A]["card"]["card_no"] == "C1" and files[SSN_A]["issues"] == []


def test_a_change_that_came_first_from_another_source_has_no_effect_and_is_an_issue():
    orgs, card, by_other, taken_back = scenario()
    batch, files = fold([by_other, taken_back, card], orgs)
    assert batch.rejects == [] and batch.counts.accepted == 3
    f = files[SSN_A]
    assert f["card"]["card_no"] == "C1"
    assert f["issues"] == sorted([{"code": "unauthorized_change", "event_id": by_other["event_id"]},
                                  {"code": "unauthorized_change", "event_id": taken_back["event_id"]}],
                                 key=lambda i: i["event_id"])
    assert f["applied_events"] == 1
    # the file does not depend on the order but for that issue
    _, in_order = fold([card, by_other, taken_back], orgs)
    assert {**f, "issues": []} == in_order[SSN_A]


def test_the_target_source_may_change_its_own_events_in_any_order():
    orgs, card, _, _ = scenario()
    fixed = correction(card, {"card_no": "C3"}, source=BUREAU)
    for order in ([card, fixed], [fixed, card]):
        batch, files = fold(order, orgs)
        assert batch.rejects == [] and files[SSN_A]["card"]["card_no"] == "C3" and files[SSN_A]["issues"] == []


def test_without_a_registry_sources_of_changes_are_not_checked():
    _, card, by_other, _ = scenario()
    batch, files = fold([card, by_other], None)
    assert batch.rejects == [] and files[SSN_A]["card"]["card_no"] == "C2"


def test_the_rule_holds_through_the_state_table():
    orgs, card, by_other, taken_back = scenario()
    table: dict[bytes, bytes] = {}
    outcomes = []
    for event in (by_other, card, taken_back):
        state = from_table(SSN_A, table.get, check_sources=True)
        outcomes.append(fold_event(state, envelope(event)).status)
        for key, value in table_writes(state):
            table[key] = value
    assert outcomes == ["accepted", "accepted", "rejected"]
    f = derive_file(from_table(SSN_A, table.get, check_sources=True))
    assert f["card"]["card_no"] == "C1"
    assert f["issues"] == [{"code": "unauthorized_change", "event_id": by_other["event_id"]}]
    # an insurance event of the plain buckets, retracted by another source once it is known
    contribution = make_event("insurance.contribution", source=BUREAU)
    state = from_table(SSN_A, table.get, check_sources=True)
    assert fold_event(state, envelope(contribution)).status == "accepted"
    table.update(table_writes(state))
    state = from_table(SSN_A, table.get, check_sources=True)
    outcome = fold_event(state, envelope(retraction(contribution, source=EVALUATOR)))
    assert outcome.rejection.reason == "unauthorized_source"
