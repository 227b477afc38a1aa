"""The flat row of a file (processors.rows.file_row, issue #12): each column from a file
made by hand, so that a wrong rule shows as a wrong number."""

from __future__ import annotations

import json

from processors.rows import file_row, province_of
from processors.stats import worker_region as region_of
from schemas.outputs import WorkerFileRow

SSN = "11010519491231002X"
EMPLOYER_A = "91440300708461136X"
EMPLOYER_B = "914403001922038216"


def employment(employer: str, start: str, region: str, end: str | None = None) -> dict:
    return {"employer": employer, "occupation_code": "6-18-02-04", "contract_type": "fixed_term",
            "written_contract": True, "dispatch_agency": None, "region": region, "monthly_wage_cny": 8000,
            "start_date": start, "end_date": end, "end_reason": None if end is None else "resigned"}


def grant(status: str, payments: list[int]) -> dict:
    return {"certificate_no": "C1", "occupation_code": "6-18-02-04", "level": "senior", "apply_by": "2026-05-31",
            "service_id": "4c8f4f1e-0000-5000-8000-000000000001", "amount_cny": 2000, "status": status,
            "claim": None, "decision": None,
            "payments": [{"paid_on": "2026-01-10", "amount_cny": a, "source": "11440300007542610F",
                          "event_id": f"p{i}"} for i, a in enumerate(payments)]}


def a_file(**changes) -> dict:
    file = {
        "ssn": SSN, "aliases": [], "birth_date": "1949-12-31", "sex": "female", "card": None,
        "employments": [employment(EMPLOYER_A, "2010-03-01", "310115", end="2015-01-31"),
                        employment(EMPLOYER_B, "2016-05-01", "440305"),
                        employment(EMPLOYER_A, "2018-01-01", "440106")],
        "current_employers": [EMPLOYER_A, EMPLOYER_B],
        "trainings": [
            {"source": EMPLOYER_A, "program_id": "P1", "program_name": None, "occupation_code": None,
             "status": "completed", "planned_hours": 80, "hours": 80, "passed": True, "start_date": None,
             "end_date": None},
            {"source": EMPLOYER_A, "program_id": "P2", "program_name": None, "occupation_code": None,
             "status": "withdrawn", "planned_hours": 40, "hours": 0, "passed": None, "start_date": None,
             "end_date": None}],
        "training_hours": 80,
        "certificates": [
            {"certificate_no": "C1", "kind": "skill_level", "occupation_code": "6-18-02-04", "level": "senior",
             "issuer": EMPLOYER_B, "issued_on": "2025-05-31", "valid_until": None, "revoked_on": None},
            {"certificate_no": "C0", "kind": "skill_level", "occupation_code": "6-18-02-04", "level": "junior",
             "issuer": EMPLOYER_B, "issued_on": "2020-05-31", "valid_until": None, "revoked_on": "2021-01-01"}],
        "highest_skill_level": "senior",
        "insurance": [
            {"scheme": "pension", "status": "active", "region": "440305", "months_contributed": 120,
             "last_contribution_month": "2025-12"},
            {"scheme": "medical", "status": "suspended", "region": "440305", "months_contributed": 30,
             "last_contribution_month": "2019-12"},
            {"scheme": "unemployment", "status": "active", "region": "440305", "months_contributed": 7,
             "last_contribution_month": "2025-12"}],
        "honors": [],
        "services": {"skill_upgrade_subsidy": [grant("paid", [2000, 500]), grant("offered", [])],
                     "notices": [{"code": "no_written_contract", "employer": EMPLOYER_B, "since": "2016-06-01"}]},
        "issues": [{"code": "service_paid_twice", "event_id": "p1"}],
        "applied_events": 321,
        "version": 7,
    }
    file.update(changes)
    return file


def test_every_column_of_a_file_made_by_hand():
    file = a_file()
    row = file_row(file)
    WorkerFileRow.model_validate(row)
    assert {k: v for k, v in row.items() if k != "file_json"} == {
        "ssn": SSN, "version": 7, "birth_date": "1949-12-31", "sex": "female",
        "region": "440106",  # no card: the latest open employment (2018-01-01), not the larger code of 2016
        "province": "440000", "highest_skill_level": "senior", "current_employer": EMPLOYER_A,
        "current_employers": 2, "employments": 3, "training_hours": 80, "trainings_completed": 1,
        "certificates": 1,  # the revoked one does not count
        "insurance_active_schemes": 2, "pension_months": 120, "subsidy_grants": 2, "subsidy_paid_cny": 2500,
        "open_notices": 1, "issues": 1, "applied_events": 321,
    }
    assert json.loads(row["file_json"]) == file


def test_the_card_decides_the_region_and_a_worker_without_either_has_none():
    card = {"card_no": "C-1", "issued_on": "2020-01-01", "region": "110105"}
    assert region_of(a_file(card=card)) == "110105"
    assert province_of(region_of(a_file(card=card))) == "110000"
    bare = a_file(employments=[employment(EMPLOYER_A, "2010-03-01", "310115", end="2015-01-31")],
                  current_employers=[], services={"skill_upgrade_subsidy": [], "notices": []}, insurance=[])
    row = file_row(bare)
    assert (row["region"], row["province"], row["current_employer"], row["current_employers"]) == (None, None, None, 0)
    assert (row["subsidy_grants"], row["subsidy_paid_cny"], row["pension_months"]) == (0, 0, 0)


def test_the_sink_region_column_is_the_same_rule():
    from sinks.base import indexed_columns

    assert indexed_columns(a_file()) == ("senior", EMPLOYER_A, "440106")
