"""Contract section 8: who may say what. The organisation registry (its loader and its
rules), every row of the role table accepted and refused, an unknown source, the place
of `unauthorized_source` in the reason order, and development mode (no registry)."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from processors.batch import fold_lines
from processors.identity import make_org_code
from processors.intake import REASON_ORDER, Rejection, parse_json_line, validate_event
from processors.organisations import (
    ROLES, Organisations, OrganisationsError, load_organisations, parse_organisations, registry_toml, roles_for,
)
from schemas.events import EVENT_TYPES
from tests.conftest import (
    AGENCY, BUREAU, EMPLOYER_A, EMPLOYER_B, EVALUATOR, SCHOOL, correction, make_event,
)

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
HONOURS = make_org_code("11440300MB1H00009")
# one organisation per role, and one with every role but the one asked for in each test
HOLDERS = {"training_provider": SCHOOL, "employer": EMPLOYER_A, "social_insurance": BUREAU,
           "skill_evaluator": EVALUATOR, "honor_authority": HONOURS}
NAMES = {SCHOOL: "职业培训学校", EMPLOYER_A: "用人单位 A", BUREAU: "社会保险经办机构", EVALUATOR: "技能等级认定机构",
         HONOURS: "人社局"}


def registry(extra: dict | None = None) -> Organisations:
    orgs = {code: (NAMES[code], [role]) for role, code in HOLDERS.items()}
    orgs[AGENCY] = ("劳务派遣公司", ["employer"])
    return parse_organisations(registry_toml({**orgs, **(extra or {})}))


def event_for(kind: str, source: str, **payload) -> dict:
    """An event of `kind` from `source`; employment events of EMPLOYER_A unless said."""
    if kind == "event.retracted":
        return make_event(kind, source=source, payload={"event_id": "some-event"})
    if not kind.startswith("employment."):
        payload = {}
    if kind == "employment.started" and "dispatch_agency" in payload:
        payload.setdefault("contract_type", "dispatched")
    return make_event(kind, source=source, payload=payload or None)


def verdict(event: dict, organisations: Organisations | None) -> Rejection | None:
    """The rejection of both intake paths (line and dict), which must agree; None if accepted."""
    by_line = parse_json_line(orjson.dumps(event), NOW, organisations)
    by_dict = validate_event(event, NOW, organisations)
    folded = fold_lines([orjson.dumps(event)], now=NOW, organisations=organisations)  # the fast path
    if isinstance(by_line, Rejection):
        assert by_dict == by_line
        assert [(r["reason"], r["message"], r["field"]) for r in folded.rejects] == [
            (by_line.reason, by_line.message, by_line.field)]
        return by_line
    assert not isinstance(by_dict, Rejection)
    assert (folded.counts.accepted, folded.rejects) == (1, [])
    return None


# --- the role table, row by row ----------------------------------------------------------------

TABLE = {  # the contract's table: role -> the event types it may be the source of
    "training_provider": {"training.enrolled", "training.completed", "training.withdrawn"},
    "employer": {"employment.started", "employment.ended"},  # as payload.employer / dispatch_agency
    "social_insurance": {"insurance.enrolled", "insurance.contribution", "insurance.suspended",
                         "insurance.transferred", "card.issued", "employment.started", "employment.ended",
                         "service.claimed", "service.decided", "service.paid"},  # section 9
    "skill_evaluator": {"certificate.issued", "certificate.revoked"},
    "honor_authority": {"honor.awarded"},
}
CHECKED_TYPES = sorted(set(EVENT_TYPES) - {"event.retracted"})


def test_the_table_covers_every_event_type_but_the_retraction():
    assert set().union(*TABLE.values()) == set(CHECKED_TYPES)
    assert set(ROLES) == set(TABLE)
    for kind in CHECKED_TYPES:
        assert set(roles_for(kind)) == {role for role, kinds in TABLE.items() if kind in kinds}, kind
    assert roles_for("service.announced") == ("social_insurance",)  # section 9: service.*


@pytest.mark.parametrize("role", sorted(TABLE))
@pytest.mark.parametrize("kind", CHECKED_TYPES)
def test_each_role_may_say_its_types_and_nothing_else(role, kind):
    event = event_for(kind, HOLDERS[role])
    rejection = verdict(event, registry())
    if kind in TABLE[role]:
        assert rejection is None, rejection
    else:
        assert rejection is not None and rejection.reason == "unauthorized_source" and rejection.field == "source"
        assert HOLDERS[role] in rejection.message and NAMES[HOLDERS[role]] in rejection.message
        assert f"lacks the role {roles_for(kind)[0]}" in rejection.message, rejection.message


def test_a_training_institution_cannot_issue_a_certificate():
    rejection = verdict(event_for("certificate.issued", SCHOOL), registry())
    assert rejection.reason == "unauthorized_source"
    assert rejection.message == (f"source {SCHOOL} (职业培训学校) lacks the role skill_evaluator that "
                                 "certificate.issued needs (its roles: training_provider)")


@pytest.mark.parametrize("kind", ["employment.started", "employment.ended"])
def test_an_employer_says_only_its_own_employment(kind):
    organisations = registry({EMPLOYER_B: ("用人单位 B", ["employer"])})
    assert verdict(event_for(kind, EMPLOYER_A, employer=EMPLOYER_A), organisations) is None
    assert verdict(event_for(kind, EMPLOYER_B, employer=EMPLOYER_B), organisations) is None
    other = verdict(event_for(kind, EMPLOYER_B, employer=EMPLOYER_A), organisations)
    assert other.reason == "unauthorized_source" and other.field == "source"
    assert EMPLOYER_B in other.message and "neither payload.employer nor payload.dispatch_agency" in other.message
    assert "social_insurance" in other.message  # the role it lacks to say it on the employer's behalf


def test_a_dispatch_agency_says_the_employment_it_dispatches():
    organisations = registry({EMPLOYER_B: ("用人单位 B", ["employer"])})
    dispatched = event_for("employment.started", AGENCY, employer=EMPLOYER_A, dispatch_agency=AGENCY)
    assert verdict(dispatched, organisations) is None
    by_the_employer = event_for("employment.started", EMPLOYER_A, employer=EMPLOYER_A, dispatch_agency=AGENCY)
    assert verdict(by_the_employer, organisations) is None
    not_its_own = event_for("employment.started", EMPLOYER_B, employer=EMPLOYER_A, dispatch_agency=AGENCY)
    assert verdict(not_its_own, organisations).reason == "unauthorized_source"
    ended_by_agency = event_for("employment.ended", AGENCY, employer=EMPLOYER_A)  # (no dispatch_agency field)
    assert verdict(ended_by_agency, organisations).reason == "unauthorized_source"


@pytest.mark.parametrize("kind", ["employment.started", "employment.ended"])
def test_social_insurance_registers_employment_for_any_employer(kind):
    for employer in (EMPLOYER_A, EMPLOYER_B, AGENCY):
        assert verdict(event_for(kind, BUREAU, employer=employer), registry()) is None


def test_an_employer_with_the_social_insurance_role_too_says_any_employment():
    organisations = registry({EMPLOYER_B: ("集团", ["employer", "social_insurance"])})
    assert verdict(event_for("employment.started", EMPLOYER_B, employer=EMPLOYER_A), organisations) is None


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES))
def test_a_source_not_in_the_registry_is_unauthorized_for_every_type(kind):
    rejection = verdict(event_for(kind, EMPLOYER_B, employer=EMPLOYER_B), registry())
    assert rejection.reason == "unauthorized_source" and rejection.field == "source"
    assert rejection.message.startswith(f"source {EMPLOYER_B} is not in the organisation registry")
    if kind != "event.retracted":
        assert f"needs the role {roles_for(kind)[0]}" in rejection.message


def test_a_retraction_from_any_registered_source_passes_intake():
    """Its rule (the source of its target) is the fold's; intake only knows the source."""
    for source in HOLDERS.values():
        assert verdict(event_for("event.retracted", source), registry()) is None


def test_a_correction_needs_the_role_of_its_type():
    target = event_for("certificate.issued", EVALUATOR)
    assert verdict(correction(target, {"level": "senior"}), registry()) is None
    assert verdict(correction(target, {"level": "senior"}, source=SCHOOL), registry()).reason == "unauthorized_source"


def test_development_mode_checks_no_source():
    for kind in EVENT_TYPES:
        assert verdict(event_for(kind, EMPLOYER_B, employer=EMPLOYER_A), None) is None


def test_an_empty_registry_refuses_every_source():
    empty = parse_organisations("[organisations]\n")
    assert len(empty) == 0
    assert verdict(make_event("card.issued", source=BUREAU), empty).reason == "unauthorized_source"


# --- the reason order ----------------------------------------------------------------------------

def test_unauthorized_source_comes_after_the_format_checks_and_before_the_fold():
    order = list(REASON_ORDER)
    assert order.index("future_date") + 1 == order.index("unauthorized_source") < order.index("event_id_conflict")
    organisations = registry()
    bad_date = make_event("certificate.issued", source=SCHOOL, payload={"issued_on": "2023-02-30"})
    assert verdict(bad_date, organisations).reason == "invalid_date"
    future = make_event("certificate.issued", source=SCHOOL, occurred_at="2030-01-01T00:00:00+08:00")
    assert verdict(future, organisations).reason == "future_date"
    bad_employer = make_event("employment.started", source=EMPLOYER_B, payload={"employer": EMPLOYER_A[:-1] + "0"})
    assert verdict(bad_employer, organisations).reason == "invalid_org_code"


def test_an_unauthorized_event_never_reaches_the_state():
    """So the same event_id from the rightful source later is accepted, not a conflict."""
    good = make_event("certificate.issued", source=EVALUATOR, event_id="cert-1")
    forged = {**good, "source": SCHOOL, "payload": {**good["payload"], "level": "senior_technician"}}
    batch = fold_lines([orjson.dumps(forged), orjson.dumps(good)], now=NOW, organisations=registry())
    assert [r["reason"] for r in batch.rejects] == ["unauthorized_source"]
    assert batch.counts.accepted == 1
    [file] = batch.files()
    assert [c["level"] for c in file["certificates"]] == ["junior"]


def test_a_forged_certificate_grants_no_subsidy():
    training = [make_event("training.enrolled", source=SCHOOL), make_event("training.completed", source=SCHOOL)]
    forged = make_event("certificate.issued", source=SCHOOL)
    lines = [orjson.dumps(e) for e in [*training, forged]]
    checked = fold_lines(lines, now=NOW, organisations=registry()).files()[0]
    unchecked = fold_lines(lines, now=NOW).files()[0]
    assert checked["certificates"] == [] and unchecked["certificates"]
    assert checked["services"]["skill_upgrade_subsidy"] == []


# --- the registry file ---------------------------------------------------------------------------

def test_registry_toml_round_trip_and_loading_a_file(tmp_path):
    orgs = {SCHOOL: ('学校 "一"\\', ["training_provider"]), BUREAU: ("社保局", ["social_insurance", "employer"])}
    path = tmp_path / "organisations.toml"
    path.write_text(registry_toml(orgs), encoding="utf-8")
    loaded = load_organisations(path)
    assert set(loaded.by_code) == {SCHOOL, BUREAU}
    assert loaded.by_code[SCHOOL].name == '学校 "一"\\'
    assert loaded.by_code[BUREAU].roles == {"social_insurance", "employer"}
    assert SCHOOL in loaded and EMPLOYER_B not in loaded
    assert load_organisations(None) is None and load_organisations("") is None


@pytest.mark.parametrize("text, message", [
    ('[organisations."{bad}"]\nname = "x"\nroles = ["employer"]\n',
     r'organisations\."{bad}": not a unified social credit code: check character'),
    ('[organisations."{short}"]\nname = "x"\nroles = ["employer"]\n',
     r'organisations\."{short}": not a unified social credit code: must have 18 characters'),
    ('[organisations."{code}"]\nname = "x"\nroles = ["employer", "school"]\n',
     r"organisations\.\"{code}\"\.roles: unknown role 'school' \(roles: training_provider, employer, "),
    ('[organisations."{code}"]\nname = "x"\nroles = []\n', r'organisations\."{code}"\.roles: must be a non-empty list'),
    ('[organisations."{code}"]\nname = "x"\nroles = "employer"\n', r'organisations\."{code}"\.roles: must be a non-empty'),
    ('[organisations."{code}"]\nname = "x"\n', r'organisations\."{code}"\.roles: missing'),
    ('[organisations."{code}"]\nroles = ["employer"]\n', r'organisations\."{code}"\.name: missing'),
    ('[organisations."{code}"]\nname = " "\nroles = ["employer"]\n', r'organisations\."{code}"\.name: must be a non-empty'),
    ('[organisations."{code}"]\nname = "x"\nrole = ["employer"]\nroles = ["employer"]\n',
     r'organisations\."{code}"\.role: unknown field'),
    ('[organisations]\n"{code}" = "employer"\n', r'organisations\."{code}": must be a table'),
    ('organisations = 5\n', r"organisations must be a table"),
    ('[organization."{code}"]\nname = "x"\nroles = ["employer"]\n', r"unknown table or key 'organization'"),
    ('[organisations."{code}"\n', r"not valid TOML"),
])
def test_a_bad_registry_is_refused_naming_the_code_and_field(text, message):
    values = {"code": SCHOOL, "bad": SCHOOL[:-1] + ("0" if SCHOOL[-1] != "0" else "1"), "short": SCHOOL[:17]}
    with pytest.raises(OrganisationsError, match=r"^reg\.toml: " + message.format(**values)):
        parse_organisations(text.format(**values), "reg.toml")


def test_an_unreadable_registry_is_refused(tmp_path):
    with pytest.raises(OrganisationsError, match="cannot read the organisation registry"):
        load_organisations(tmp_path / "missing.toml")
    (tmp_path / "gbk.toml").write_bytes("[organisations]\n# 注释\n".encode("gbk"))
    with pytest.raises(OrganisationsError, match="cannot read the organisation registry"):
        load_organisations(tmp_path / "gbk.toml")


def test_the_generated_population_fits_its_registry():
    from workerfile.population import generate_population, population_registry

    for seed in (3, 7):
        organisations = parse_organisations(registry_toml(population_registry(seed)))
        items = generate_population(60, seed=seed, months=24)
        events = [i for i in items if isinstance(i, dict)]
        assert {e["type"] for e in events} >= {"honor.awarded", "certificate.issued", "employment.started"}
        lines = [i.encode() if isinstance(i, str) else orjson.dumps(i) for i in items]
        checked = fold_lines(lines, now=NOW, organisations=organisations)
        assert not [r for r in checked.rejects if r["reason"] == "unauthorized_source"]
        assert checked.files() == fold_lines(lines, now=NOW).files()
        assert {"employer", "training_provider", "social_insurance", "skill_evaluator", "honor_authority"} == {
            role for org in organisations.by_code.values() for role in org.roles}


def test_the_registry_of_a_seed_is_the_organisations_of_its_population():
    from workerfile.population import HONOR_AUTHORITIES, generate_population, population_registry

    orgs = population_registry(7)
    assert [code for code, (_, roles) in orgs.items() if roles == ["honor_authority"]] == list(HONOR_AUTHORITIES)
    assert len(orgs) == 12 + 2 + 4 + 2 + 2 + 2
    sources = {e["source"] for e in generate_population(80, seed=7) if isinstance(e, dict)}
    assert sources <= set(orgs)
    assert population_registry(8).keys() - set(HONOR_AUTHORITIES) != orgs.keys() - set(HONOR_AUTHORITIES)
