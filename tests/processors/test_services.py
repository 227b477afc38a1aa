"""Contract section 9 through the fold that `workerfile fold` runs: a subsidy grant
handled from claim to payment, once in the whole country; the annual limit; notices;
and the operators' configuration (deploy/services.toml)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from processors.derive import derive_file, new_service_events
from processors.services import (
    DEFAULT_RULES, SERVICES_TOML, ServiceRulesError, load_service_rules, rules_from_mapping, service_id,
)
from tests.conftest import (
    BUREAU, BUREAU_2, EMPLOYER_A, EVALUATOR, OCC, OCC_2, SSN_A, envelope, file_of, fold, make_event, retraction,
)
from tests.processors.test_fold_rules import cert, months, unemployment

GRANT = {"occupation_code": OCC, "level": "junior"}
SID = service_id(SSN_A, GRANT)
ELIGIBLE = unemployment(months("2022-06", 12))  # 12 months up to the certificate's month


def claim(day="2023-06-01", source=BUREAU, region="440305", sid=SID, **envelope_fields):
    return make_event("service.claimed", source=source,
                      payload={"service_id": sid, "claimed_on": day, "region": region}, **envelope_fields)


def decide(decision="approved", day="2023-06-15", source=BUREAU, sid=SID):
    return make_event("service.decided", source=source,
                      payload={"service_id": sid, "decision": decision, "decided_on": day})


def pay(amount=1000, day="2023-07-01", source=BUREAU, sid=SID):
    return make_event("service.paid", source=source, payload={"service_id": sid, "paid_on": day, "amount_cny": amount})


def grant_of(*events) -> tuple[dict, list[dict]]:
    f = file_of(*ELIGIBLE, cert(issued_on="2023-05-20"), *events)
    [g] = f["services"]["skill_upgrade_subsidy"]
    return g, f["issues"]


def codes(issues) -> list[tuple[str, str]]:
    return [(i["code"], i["event_id"]) for i in issues]


def test_a_grant_is_offered_with_its_id_and_the_amount_of_its_level():
    g, issues = grant_of()
    assert (g["service_id"], g["amount_cny"], g["status"], g["claim"], g["decision"], g["payments"]) == (
        SID, 1000, "offered", None, None, [])
    assert issues == []


def test_from_claim_to_payment():
    c, d, p = claim(), decide(), pay()
    g, issues = grant_of(c)
    assert g["status"] == "claimed"
    assert g["claim"] == {"source": BUREAU, "region": "440305", "claimed_on": "2023-06-01", "event_id": c["event_id"]}
    g, _ = grant_of(c, d)
    assert g["status"] == "approved"
    assert g["decision"] == {"decision": "approved", "decided_on": "2023-06-15", "source": BUREAU,
                             "event_id": d["event_id"]}
    g, issues = grant_of(c, d, p)
    assert g["status"] == "paid" and issues == []
    assert g["payments"] == [{"paid_on": "2023-07-01", "amount_cny": 1000, "source": BUREAU, "event_id": p["event_id"]}]


def test_paid_needs_the_whole_amount_and_an_approval():
    g, _ = grant_of(claim(), decide(), pay(600))
    assert g["status"] == "approved"
    g, issues = grant_of(claim(), decide(), p1 := pay(600, "2023-07-01"), p2 := pay(400, "2023-08-01"))
    assert g["status"] == "paid" and [p["amount_cny"] for p in g["payments"]] == [600, 400]
    assert codes(issues) == [("service_paid_twice", p2["event_id"])]  # the second payment (p1 first by date)
    g, _ = grant_of(claim(), decide("refused"), pay())
    assert g["status"] == "refused"


def test_one_claim_in_the_whole_country_the_earliest_wins():
    late = claim("2023-07-01", source=BUREAU)
    early = claim("2023-06-01", source=BUREAU_2, region="310115")
    for order in itertools.permutations([late, early]):
        g, issues = grant_of(*order)
        assert g["claim"]["source"] == BUREAU_2 and g["claim"]["region"] == "310115"
        assert codes(issues) == [("service_claimed_twice", late["event_id"])]


def test_same_day_claims_are_ordered_by_occurred_at_then_event_id():
    a = claim(source=BUREAU, event_id="claim-b", occurred_at="2023-06-01T09:00:00+08:00")
    b = claim(source=BUREAU_2, event_id="claim-a", occurred_at="2023-06-01T10:00:00+08:00")
    assert grant_of(a, b)[0]["claim"]["event_id"] == "claim-b"
    c = claim(source=BUREAU_2, event_id="claim-a", occurred_at="2023-06-01T09:00:00+08:00")
    assert grant_of(a, c)[0]["claim"]["event_id"] == "claim-a"


def test_only_the_winning_claims_organisation_decides_and_pays():
    other_decision, other_payment = decide(source=BUREAU_2), pay(source=BUREAU_2)
    g, issues = grant_of(claim(), other_decision, other_payment)
    assert g["status"] == "claimed" and g["decision"] is None and g["payments"] == []
    assert sorted(codes(issues)) == sorted([("service_handled_by_other", other_decision["event_id"]),
                                            ("service_handled_by_other", other_payment["event_id"])])
    unclaimed = decide()
    g, issues = grant_of(unclaimed)  # nobody claimed it: nobody may decide
    assert g["status"] == "offered" and codes(issues) == [("service_handled_by_other", unclaimed["event_id"])]


def test_the_latest_decision_counts():
    refused, approved = decide("refused", "2023-06-10"), decide("approved", "2023-06-20")
    for order in itertools.permutations([refused, approved]):
        assert grant_of(claim(), *order)[0]["decision"]["event_id"] == approved["event_id"]


def test_a_claim_of_no_grant_is_an_issue_until_the_grant_appears():
    c = claim()
    f = file_of(*ELIGIBLE, c)  # no certificate yet
    assert f["services"]["skill_upgrade_subsidy"] == [] and codes(f["issues"]) == [("claim_without_grant", c["event_id"])]
    g, issues = grant_of(c)
    assert g["status"] == "claimed" and issues == []


def test_a_claim_after_the_deadline_counts_with_an_issue():
    late = claim("2024-05-21")  # apply_by is 2024-05-20
    g, issues = grant_of(late)
    assert g["status"] == "claimed" and codes(issues) == [("claimed_after_deadline", late["event_id"])]
    assert grant_of(claim("2024-05-20"))[1] == []


def test_a_retracted_claim_no_longer_counts():
    c = claim()
    g, issues = grant_of(c, retraction(c, source=BUREAU))
    assert g["status"] == "offered" and g["claim"] is None


def test_only_social_insurance_bureaus_may_handle_services(tmp_path):
    from processors.batch import fold_lines
    from processors.organisations import load_organisations
    from tests.conftest import line
    registry = tmp_path / "organisations.toml"
    registry.write_text(f'[organisations."{BUREAU}"]\nname = "社保局"\nroles = ["social_insurance"]\n'
                        f'[organisations."{EVALUATOR}"]\nname = "鉴定中心"\nroles = ["skill_evaluator"]\n',
                        encoding="utf-8")
    batch = fold_lines([line(claim(source=BUREAU)), line(claim(source=EVALUATOR))],
                       organisations=load_organisations(registry))
    assert batch.counts.accepted == 1 and [r["reason"] for r in batch.rejects] == ["unauthorized_source"]


def annual(n: int, year: str = "2023") -> list[dict]:
    """n grants of certificates issued in one year (different occupations and levels)."""
    combos = [(OCC, "junior"), (OCC, "intermediate"), (OCC, "senior"), (OCC_2, "junior"), (OCC_2, "intermediate")]
    return [cert(no=f"S{i}", issued_on=f"{year}-05-{20 + i:02d}", occupation_code=occ, level=level)
            for i, (occ, level) in enumerate(combos[:n])]


def test_at_most_three_grants_a_year_are_offered_the_earliest_first():
    f = file_of(*ELIGIBLE, *annual(5))
    by_cert = {g["certificate_no"]: g["status"] for g in f["services"]["skill_upgrade_subsidy"]}
    assert by_cert == {"S0": "offered", "S1": "offered", "S2": "offered", "S3": "over_annual_limit",
                       "S4": "over_annual_limit"}
    beyond = service_id(SSN_A, {"occupation_code": OCC_2, "level": "intermediate"})
    f = file_of(*ELIGIBLE, *annual(5), claim(sid=beyond))  # a claim of one beyond the limit still counts
    by_cert = {g["certificate_no"]: g["status"] for g in f["services"]["skill_upgrade_subsidy"]}
    assert by_cert["S4"] == "claimed" and by_cert["S3"] == "over_annual_limit"


def test_the_limit_and_the_amounts_come_from_the_configuration(tmp_path):
    from processors.batch import fold_lines
    from tests.conftest import line
    config = tmp_path / "services.toml"
    config.write_text("[skill_upgrade_subsidy]\nannual_limit = 1\n"
                      "amounts = { junior = 800, intermediate = 1200, senior = 1600 }\n", encoding="utf-8")
    rules = load_service_rules(config)
    batch = fold_lines([line(e) for e in ELIGIBLE + annual(2)], rules=rules)
    [f] = batch.files()
    assert [(g["status"], g["amount_cny"]) for g in f["services"]["skill_upgrade_subsidy"]] == [
        ("offered", 800), ("over_annual_limit", 1200)]


def test_the_operators_file_holds_the_contracts_defaults():
    assert SERVICES_TOML.exists()
    assert load_service_rules(SERVICES_TOML) == DEFAULT_RULES
    assert load_service_rules() == DEFAULT_RULES


@pytest.mark.parametrize("text, field", [
    ("annual_limit = 0", "annual_limit"),
    ("annual_limit = 'three'", "annual_limit"),
    ("amounts = { junior = 1000, intermediate = 1500 }", "amounts.senior"),
    ("amounts = { junior = -5, intermediate = 1500, senior = 2000 }", "amounts.junior"),
    ("levels = ['master']", "levels"),
    ("scheme = 'lottery'", "scheme"),
    ("subsidy_per_month = 3", "subsidy_per_month"),
])
def test_a_bad_configuration_is_refused_naming_the_field(tmp_path, text, field):
    config = tmp_path / "services.toml"
    config.write_text(f"[skill_upgrade_subsidy]\n{text}\n", encoding="utf-8")
    with pytest.raises(ServiceRulesError) as err:
        load_service_rules(config)
    assert f"skill_upgrade_subsidy.{field}:" in str(err.value) and str(config) in str(err.value)


def test_the_cli_fold_takes_the_configuration_and_refuses_a_bad_one(tmp_path):
    import subprocess
    import sys
    from tests.conftest import line
    events = tmp_path / "events.jsonl"
    events.write_text("".join(line(e) + "\n" for e in ELIGIBLE + [cert()]), encoding="utf-8")
    config = tmp_path / "services.toml"
    config.write_text("[skill_upgrade_subsidy]\namounts = { junior = 900, intermediate = 1, senior = 2 }\n",
                      encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "workerfile.cli", "fold", str(events), "--services", str(config)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"amount_cny":900' in done.stdout
    config.write_text("[skill_upgrade_subsidy]\nannual_limit = -1\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "workerfile.cli", "fold", str(events), "--services", str(config)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "annual_limit" in done.stderr


# --- notices ---------------------------------------------------------------------------------

def job(written=True, contract="open_ended", start="2023-01-01", employer=EMPLOYER_A):
    return make_event("employment.started", source=employer, payload={
        "employer": employer, "occupation_code": OCC, "contract_type": contract, "written_contract": written,
        "start_date": start, "region": "440305"})


def test_notices_of_an_open_job_without_contract_and_of_a_platform_job_without_injury_cover():
    f = file_of(job(written=False))
    assert f["services"]["notices"] == [{"code": "no_written_contract", "employer": EMPLOYER_A, "since": "2023-01-01"}]
    ended = make_event("employment.ended", source=EMPLOYER_A,
                       payload={"employer": EMPLOYER_A, "end_date": "2023-06-30", "reason": "resigned"})
    assert file_of(job(written=False), ended)["services"]["notices"] == []
    f = file_of(job(contract="platform"))
    assert f["services"]["notices"] == [
        {"code": "platform_without_injury_cover", "employer": EMPLOYER_A, "since": "2023-01-01"}]
    cover = make_event("insurance.enrolled", source=BUREAU,
                       payload={"scheme": "occupational_injury", "month": "2023-01", "region": "440305"})
    assert file_of(job(contract="platform"), cover)["services"]["notices"] == []


# --- service events ----------------------------------------------------------------------------

def test_a_service_event_for_each_status_change_once():
    batch = fold(ELIGIBLE + [cert()])
    state = batch.states[SSN_A]
    [offered] = new_service_events(state, derive_file(state))
    assert (offered["status_before"], offered["status"], offered["service_id"]) == (None, "offered", SID)
    assert new_service_events(state, derive_file(state)) == []
    from processors.fold import fold_event
    for event in (claim(), decide(), pay()):
        fold_event(state, envelope(event))
    [paid] = new_service_events(state, derive_file(state))  # one change: what the batch made of it
    assert (paid["status_before"], paid["status"]) == ("offered", "paid")
    assert new_service_events(state, derive_file(state)) == []


def test_a_notice_is_published_when_it_appears_and_when_it_is_resolved():
    from processors.fold import fold_event
    state = fold([job(written=False)]).states[SSN_A]
    [opened] = new_service_events(state, derive_file(state))
    assert (opened["service"], opened["status"], opened["notice"]["code"]) == ("notice", "open", "no_written_contract")
    assert new_service_events(state, derive_file(state)) == []
    fold_event(state, envelope(make_event("employment.ended", source=EMPLOYER_A, payload={
        "employer": EMPLOYER_A, "end_date": "2023-06-30", "reason": "resigned"})))
    [resolved] = new_service_events(state, derive_file(state))
    assert (resolved["service_id"], resolved["status_before"], resolved["status"]) == (
        opened["service_id"], "open", "resolved")
    assert resolved["notice"] == opened["notice"]


def test_rules_from_a_mapping_keep_the_ladder_order():
    rules = rules_from_mapping({"levels": ["senior", "junior"], "amounts": {"junior": 1, "senior": 2}})
    assert list(rules.amounts) == ["junior", "senior"]


def test_the_deploy_file_is_in_the_repository_not_generated():
    assert SERVICES_TOML == Path(__file__).resolve().parents[2] / "deploy" / "services.toml"
