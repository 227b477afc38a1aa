"""The workforce statistics (processors.stats): what one file contributes to each figure,
the published figures, wage percentiles with small-cell suppression, and exactness of
the running totals under corrections, retractions and tombstones (totals after deltas ==
a recount from the files)."""

from __future__ import annotations

import copy
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from processors import stats as st
from processors.batch import BatchFold, fold_lines
from processors.derive import derive_file
from processors.intake import Rejection, parse_json_line
from processors.identity import make_org_code, make_ssn
from schemas.outputs import WorkerFile
from sinks.base import indexed_columns
from tests.conftest import (AGENCY, EMPLOYER_A, EMPLOYER_B, SSN_A, SSN_B, correction, file_of, make_event,
                            retraction)
from workerfile.population import generate_population

OCC = "6-18-01-01"


# --- synthetic files ------------------------------------------------------------------------

def ssn(n: int) -> str:
    return make_ssn(f"440305198{n % 10}0101{n % 1000:03d}")


def org(n: int) -> str:
    return make_org_code(f"9144030000000{n:04d}")


def job(employer: str, *, occupation: str = OCC, contract: str = "open_ended", written: bool = True,
        region: str = "440305", wage: int | None = 8000, start: str = "2024-01-01", end: str | None = None) -> dict:
    return {"employer": employer, "occupation_code": occupation, "contract_type": contract, "written_contract": written,
            "dispatch_agency": AGENCY if contract == "dispatched" else None, "region": region,
            "monthly_wage_cny": wage, "start_date": start, "end_date": end,
            "end_reason": "resigned" if end else None}


def grant(level: str = "junior", status: str = "offered", paid: tuple[int, ...] = (), n: int = 0) -> dict:
    """A subsidy grant of contract section 9 at `status`, with payments of `paid` CNY."""
    amount = {"junior": 1000, "intermediate": 1500, "senior": 2000}[level]
    claimed = status in ("claimed", "approved", "refused", "paid")
    decided = status in ("approved", "refused", "paid")
    return {"certificate_no": f"G{n}{level}", "occupation_code": OCC, "level": level, "apply_by": "2026-05-01",
            "service_id": f"00000000-0000-5000-8000-{n:012d}", "amount_cny": amount, "status": status,
            "claim": {"source": org(800), "region": "310115", "claimed_on": "2025-06-01", "event_id": f"c{n}"}
            if claimed else None,
            "decision": {"decision": "refused" if status == "refused" else "approved", "decided_on": "2025-06-10",
                         "source": org(800), "event_id": f"d{n}"} if decided else None,
            "payments": [{"paid_on": "2025-07-01", "amount_cny": a, "source": org(800), "event_id": f"p{n}-{i}"}
                         for i, a in enumerate(paid)]}


def worker(n: int, *, level: str | None = None, card_region: str | None = "440305", jobs=(), insurance=(),
           trainings=(), honors=(), grants=(), subsidy=(), notices=(), issues=()) -> dict:
    """A valid WorkerFile dict with just the sections the statistics read (`grants`: levels
    of grants as files before contract section 9 read; `subsidy`: whole grants)."""
    number = ssn(n)
    jobs = sorted(jobs, key=lambda e: (e["start_date"], e["employer"]))
    file = {
        "ssn": number, "aliases": [], "birth_date": f"{number[6:10]}-{number[10:12]}-{number[12:14]}",
        "sex": "male" if int(number[16]) % 2 else "female",
        "card": {"card_no": f"C{n}", "issued_on": "2020-01-01", "region": card_region} if card_region else None,
        "employments": list(jobs), "current_employers": sorted({e["employer"] for e in jobs if e["end_date"] is None}),
        "trainings": [{"source": org(900), "program_id": f"P{i}", "program_name": None, "occupation_code": OCC,
                       "status": status, "planned_hours": hours, "hours": hours if status == "completed" else 0,
                       "passed": True if status == "completed" else None, "start_date": "2024-01-01",
                       "end_date": end} for i, (status, hours, end) in enumerate(trainings)],
        "training_hours": sum(h for s, h, _ in trainings if s == "completed"),
        "certificates": [], "highest_skill_level": level,
        "insurance": [{"scheme": scheme, "status": status, "region": "440305", "months_contributed": 12,
                       "last_contribution_month": "2025-12"} for scheme, status in insurance],
        "honors": [{"title": t, "awarded_on": "2025-05-01", "awarded_by": org(901)} for t in honors],
        "services": {"skill_upgrade_subsidy": [{"certificate_no": f"S{n}{i}", "occupation_code": OCC, "level": lv,
                                                "apply_by": "2026-05-01"} for i, lv in enumerate(grants)]
                     + list(subsidy),
                     "notices": [{"code": code, "employer": employer, "since": since}
                                 for code, employer, since in notices]},
        "issues": [{"code": code, "event_id": f"e{n}-{i}"} for i, code in enumerate(issues)], "applied_events": 1,
    }
    WorkerFile.model_validate(file)
    return file


def figures_of(*files, **options) -> dict:
    return st.figures(st.recount(files), **options)


# --- each figure ---------------------------------------------------------------------------------

def test_region_is_the_card_else_the_latest_open_employment():
    with_card = worker(1, card_region="310115", jobs=[job(EMPLOYER_A, region="440305")])
    no_card = worker(2, card_region=None, jobs=[job(EMPLOYER_A, region="440305", start="2020-01-01"),
                                               job(EMPLOYER_B, region="510107", start="2023-01-01"),
                                               job(org(3), region="110105", start="2024-01-01", end="2024-06-01")])
    nothing = worker(3, card_region=None)
    assert [st.province_of(st.worker_region(f)) for f in (with_card, no_card, nothing)] == ["31", "51", "unknown"]
    regions = {r["province"]: r for r in figures_of(with_card, no_card, nothing)["regions"]}
    assert {p: r["workers"] for p, r in regions.items()} == {"31": 1, "51": 1, "unknown": 1}
    assert regions["31"]["name_zh"] == "上海" and regions["51"]["name_en"] == "Sichuan"
    assert regions["31"]["share"] == pytest.approx(1 / 3, abs=1e-4)


def test_region_rule_is_the_sinks_region_column():
    lines = [e.encode() if isinstance(e, str) else orjson.dumps(e) for e in generate_population(30, seed=5)]
    for file in fold_lines(lines).files():
        assert st.worker_region(file) == indexed_columns(file)[2]


def test_workers_by_highest_skill_level_include_none():
    got = figures_of(worker(1, level="senior"), worker(2, level="senior"), worker(3, level="junior"), worker(4))
    levels = {r["level"]: r["workers"] for r in got["skill_levels"]}
    assert levels == {"apprentice": 0, "junior": 1, "intermediate": 0, "senior": 2, "technician": 0,
                      "senior_technician": 0, "principal_technician": 0, "chief_technician": 0, "none": 1}
    assert [r["level"] for r in got["skill_levels"]] == [*st.LEVELS, "none"]  # the ladder, lowest first
    assert got["skill_levels"][3]["name_zh"] == "高级工"


def test_occupation_major_category_of_current_employments():
    two_majors = worker(1, jobs=[job(EMPLOYER_A, occupation="6-18-01-01"), job(EMPLOYER_B, occupation="4-02-01-01"),
                                 job(org(5), occupation="2-02-01-01", end="2024-03-01")])
    same_major_twice = worker(2, jobs=[job(EMPLOYER_A, occupation="6-18-01-01"),
                                       job(EMPLOYER_B, occupation="6-20-03-01-02")])
    unemployed = worker(3, jobs=[job(EMPLOYER_A, end="2024-05-01")])
    majors = {r["major"]: r["workers"] for r in figures_of(two_majors, same_major_twice, unemployed)["occupation_major"]}
    assert majors == {"4": 1, "6": 2, "none": 1}  # a worker once per distinct category; ended jobs do not count


def test_written_contract_share_among_current_employments():
    a = worker(1, jobs=[job(EMPLOYER_A, written=True), job(EMPLOYER_B, written=False),
                        job(org(7), written=False, end="2024-02-01")])
    b = worker(2, jobs=[job(EMPLOYER_A, written=True, contract="fixed_term")])
    contracts = figures_of(a, b, worker(3))["contracts"]
    assert (contracts["current_employments"], contracts["written"]) == (3, 2)
    assert contracts["written_share"] == pytest.approx(2 / 3, abs=1e-4)
    assert {t["contract_type"]: t["employments"] for t in contracts["by_type"]} == {"open_ended": 2, "fixed_term": 1}


def test_dispatched_share_per_employer_lists_employers_above_the_cap():
    big, small, exact = org(10), org(11), org(12)
    files = []
    # big: 10 workers, 2 dispatched (20%); small: 4 workers, 1 dispatched (25%); exact: 10 workers, 1 (10%, allowed)
    for n in range(10):
        files.append(worker(100 + n, jobs=[job(big, contract="dispatched" if n < 2 else "open_ended")]))
    for n in range(4):
        files.append(worker(200 + n, jobs=[job(small, contract="dispatched" if n == 0 else "fixed_term")]))
    for n in range(10):
        files.append(worker(300 + n, jobs=[job(exact, contract="dispatched" if n == 0 else "open_ended"),
                                           job(big, contract="dispatched", end="2023-12-31", start="2023-01-01")]))
    dispatch = figures_of(*files)["dispatch"]
    assert [(e["employer"], e["workforce"], e["dispatched"], e["share"]) for e in dispatch["above_cap"]] == [
        (small, 4, 1, 0.25), (big, 10, 2, 0.2)]  # highest share first; exactly 10% is within the cap
    assert (dispatch["employers"], dispatch["dispatched"], dispatch["cap"]) == (3, 4, 0.10)
    assert figures_of(*files, dispatch_cap=0.3)["dispatch"]["above_cap"] == []


def test_insured_share_per_scheme_counts_active_schemes():
    files = [worker(1, insurance=[("pension", "active"), ("unemployment", "suspended")]),
             worker(2, insurance=[("pension", "active"), ("medical", "active")]),
             worker(3), worker(4, insurance=[("pension", "suspended")])]
    insurance = {r["scheme"]: r for r in figures_of(*files)["insurance"]}
    assert [r for r in insurance] == list(st.SCHEMES)
    assert (insurance["pension"]["insured"], insurance["pension"]["suspended"], insurance["pension"]["share"]) == (2, 1, 0.5)
    assert (insurance["medical"]["insured"], insurance["medical"]["share"]) == (1, 0.25)
    assert (insurance["unemployment"]["insured"], insurance["unemployment"]["suspended"]) == (0, 1)
    assert insurance["maternity"]["share"] == 0.0


def test_training_hours_completed_per_quarter_of_end_date():
    files = [worker(1, trainings=[("completed", 80, "2025-03-31"), ("completed", 40, "2025-04-01"),
                                  ("withdrawn", 0, "2025-02-01"), ("enrolled", 0, None)]),
             worker(2, trainings=[("completed", 120, "2025-01-15")])]
    training = figures_of(*files)["training"]
    assert training["by_quarter"] == [{"quarter": "2025-Q1", "hours": 200, "completions": 2},
                                      {"quarter": "2025-Q2", "hours": 40, "completions": 1}]
    assert (training["total_hours"], training["completions"]) == (240, 3)
    assert st.quarter_of("2024-12-31") == "2024-Q4" and st.quarter_of(None) == "unknown"


def test_craftsmen_by_title_against_the_2035_targets():
    files = [worker(1, honors=["city_craftsman", "provincial_craftsman"]),
             worker(2, honors=["city_craftsman", "city_craftsman"]),  # twice: one craftsman
             worker(3, honors=["national_craftsman"]), worker(4, honors=["model_worker", "competition_award"])]
    craftsmen = {c["level"]: c for c in figures_of(*files)["craftsmen"]}
    assert {k: (c["count"], c["target_2035"]) for k, c in craftsmen.items()} == {
        "national": (1, 2000), "provincial": (1, 10000), "city": (2, 50000)}
    assert craftsmen["city"]["progress"] == pytest.approx(2 / 50000)
    assert craftsmen["national"]["name_zh"] == "大国工匠"


def test_subsidy_grants_issued():
    subsidy = figures_of(worker(1, grants=["junior", "senior"]), worker(2, grants=["junior"]), worker(3))["subsidy"]
    assert (subsidy["grants"], subsidy["workers"]) == (3, 2)
    assert [(r["level"], r["grants"]) for r in subsidy["by_level"]] == [("junior", 2), ("senior", 1)]


def test_subsidy_offered_claimed_paid_by_province_and_level():
    files = [
        worker(1, subsidy=[grant("junior", "offered", n=1), grant("senior", "paid", (1200, 800), n=2)]),
        worker(2, subsidy=[grant("junior", "claimed", n=3), grant("junior", "refused", n=4)]),
        worker(3, card_region="310115", subsidy=[grant("intermediate", "approved", (500,), n=5),
                                                 grant("junior", "over_annual_limit", n=6)]),
        worker(4, card_region=None, subsidy=[grant("junior", "paid", (1000,), n=7)]),  # no region: unknown
        worker(5),
    ]
    subsidy = figures_of(*files)["subsidy"]
    assert subsidy["grants"] == 7 and subsidy["workers"] == 4  # as before section 9
    assert {s["stage"]: (s["grants"], s["amount_cny"]) for s in subsidy["stages"]} == {
        "offered": (7, 1000 * 5 + 2000 + 1500), "claimed": (5, 2000 + 1000 + 1000 + 1500 + 1000),
        "paid": (2, 2000 + 1000)}  # paid: what was paid on the grants paid in full (a part payment is not)
    assert [(s["stage"], s["name_zh"]) for s in subsidy["stages"]] == [
        ("offered", "补贴资格"), ("claimed", "已申请"), ("paid", "已发放")]
    assert {s["status"]: s["grants"] for s in subsidy["by_status"]} == {
        "offered": 1, "over_annual_limit": 1, "claimed": 1, "approved": 1, "refused": 1, "paid": 2}
    provinces = {r["province"]: r for r in subsidy["by_province"]}
    assert list(provinces) == ["31", "44", "unknown"]  # the worker's province (not the claim's: 310115)
    assert {k: provinces["44"][k] for k in ("offered", "offered_cny", "claimed", "claimed_cny", "paid", "paid_cny")} == {
        "offered": 4, "offered_cny": 5000, "claimed": 3, "claimed_cny": 4000, "paid": 1, "paid_cny": 2000}
    assert provinces["44"]["name_zh"] == "广东" and provinces["unknown"]["name_en"] == "Unknown"
    assert (provinces["31"]["offered"], provinces["31"]["claimed"], provinces["31"]["paid"]) == (2, 1, 0)
    cells = {(r["province"], r["level"]): r for r in subsidy["by_province_level"]}
    assert list(cells) == [("31", "junior"), ("31", "intermediate"), ("44", "junior"), ("44", "senior"),
                           ("unknown", "junior")]
    assert (cells[("44", "junior")]["offered"], cells[("44", "junior")]["claimed"], cells[("44", "junior")]["paid"]) == (
        3, 2, 0)
    assert (cells[("44", "senior")]["paid"], cells[("44", "senior")]["paid_cny"]) == (1, 2000)
    assert cells[("44", "senior")]["level_name_zh"] == "高级工" and cells[("31", "junior")]["province_name_zh"] == "上海"
    assert subsidy["double_claims_refused"] == 0


def test_double_claims_refused_by_province():
    files = [worker(1, subsidy=[grant("junior", "claimed", n=1)], issues=["service_claimed_twice"] * 2),
             worker(2, card_region="310115", subsidy=[grant("junior", "paid", (1000,), n=2)],
                    issues=["service_claimed_twice", "service_paid_twice", "claimed_after_deadline"])]
    subsidy = figures_of(*files)["subsidy"]
    assert subsidy["double_claims_refused"] == 3
    assert {r["province"]: r["double_claims_refused"] for r in subsidy["by_province"]} == {"31": 1, "44": 2}


def test_open_notices_by_province_of_the_job_and_by_employer():
    files = [
        worker(1, jobs=[job(EMPLOYER_A, written=False, region="320505", start="2024-03-01"),
                        job(EMPLOYER_B, contract="platform", region="440305", start="2024-05-01")],
               notices=[("no_written_contract", EMPLOYER_A, "2024-03-01"),
                        ("platform_without_injury_cover", EMPLOYER_B, "2024-05-01")]),
        worker(2, jobs=[job(EMPLOYER_A, written=False, region="320505", start="2025-01-01")],
               notices=[("no_written_contract", EMPLOYER_A, "2025-01-01")]),
        worker(3, card_region="110105", notices=[("no_written_contract", EMPLOYER_B, "2020-01-01")]),  # no such job
        worker(4),
    ]
    notices = figures_of(*files)["notices"]
    assert (notices["open"], notices["workers"]) == (4, 3)
    assert {r["code"]: (r["open"], r["name_zh"]) for r in notices["by_code"]} == {
        "no_written_contract": (3, "未签订书面劳动合同"), "platform_without_injury_cover": (1, "平台用工未参加职业伤害保障")}
    assert [(r["province"], r["open"], r["no_written_contract"], r["platform_without_injury_cover"])
            for r in notices["by_province"]] == [("32", 2, 2, 0), ("11", 1, 1, 0), ("44", 1, 0, 1)]
    assert notices["by_province"][0]["name_en"] == "Jiangsu"
    assert [(r["employer"], r["open"], r["no_written_contract"], r["platform_without_injury_cover"])
            for r in notices["by_employer"]] == sorted([(EMPLOYER_A, 2, 2, 0), (EMPLOYER_B, 2, 1, 1)])


def test_subsidy_and_notices_of_a_folded_file():
    from tests.conftest import BUREAU_2
    from tests.processors.test_fold_rules import cert
    from tests.processors.test_services import ELIGIBLE, claim, decide, pay

    events = [make_event("card.issued"), *ELIGIBLE, cert(issued_on="2023-05-20"), claim(),
              claim("2023-06-05", source=BUREAU_2), decide(), pay(),
              make_event("employment.started", payload={"employer": EMPLOYER_B, "occupation_code": OCC,
                                                        "contract_type": "platform", "written_contract": False,
                                                        "start_date": "2024-01-01", "region": "320505"})]
    file = file_of(*events)
    assert file["services"]["skill_upgrade_subsidy"][0]["status"] == "paid" and len(file["services"]["notices"]) == 2
    got = st.contribution(file)
    assert got[("subsidy", "paid", "44", "junior")] == 1 and got[("subsidy_cny", "paid", "44", "junior")] == 1000
    assert got[("subsidy", "claimed", "44", "junior")] == got[("subsidy", "offered", "44", "junior")] == 1
    assert got[("subsidy_status", "paid")] == 1 and got[("double_claims", "44")] == 1
    assert got[("notice", "no_written_contract", "32")] == got[("notice", "platform_without_injury_cover", "32")] == 1
    assert got[("notice_employer", EMPLOYER_B, "no_written_contract")] == 1 and got[("noticed",)] == 1


def test_a_payment_and_a_resolved_notice_move_the_totals():
    before = worker(1, jobs=[job(EMPLOYER_A, written=False)], subsidy=[grant("junior", "approved", n=1)],
                    notices=[("no_written_contract", EMPLOYER_A, "2024-01-01")])
    after = worker(1, jobs=[job(EMPLOYER_A, written=True)], subsidy=[grant("junior", "paid", (1000,), n=1)])
    totals, _ = replay([(before["ssn"], before), (after["ssn"], after)])
    assert totals == st.recount([after])
    fig = st.figures(totals)
    assert {s["stage"]: s["grants"] for s in fig["subsidy"]["stages"]} == {"offered": 1, "claimed": 1, "paid": 1}
    assert fig["notices"]["open"] == 0 and fig["notices"]["by_province"] == [] and fig["notices"]["by_employer"] == []


def test_contribution_of_a_folded_file():
    file = file_of(make_event("card.issued"), make_event("employment.started"), make_event("certificate.issued"),
                   make_event("honor.awarded"), make_event("insurance.contribution"),
                   make_event("training.enrolled"), make_event("training.completed"))
    got = st.contribution(file)
    assert got[("workers",)] == 1 and got[("province", "44")] == 1 and got[("level", "junior")] == 1
    assert got[("major", "6")] == 1 and got[("employments",)] == 1 and got[("written",)] == 1
    assert got[("employer", EMPLOYER_A)] == 1 and ("dispatched", EMPLOYER_A) not in got
    assert got[("insured", "pension")] == 1 and got[("craftsman", "city")] == 1
    assert got[("training_hours", "2024-Q2")] == 80 and got[("training_completions", "2024-Q2")] == 1
    assert got[("wage", "6-18-01-01", "junior", "44", 8000)] == 1
    assert st.contribution(None) == {} and st.contribution({}) == {}
    assert st.contribution_of_text(st.contribution_text(got)) == got


# --- wage percentiles and small-cell suppression -------------------------------------------------

def test_wage_percentiles_interpolate_between_ranks():
    values = [w * 1000 for w in range(10, 0, -1)]  # 1000 .. 10000, any order
    assert st.wage_percentiles(values) == {"p25": 3250, "p50": 5500, "p75": 7750, "p90": 9100}
    assert st.wage_percentiles([5000] * 12) == {"p25": 5000, "p50": 5000, "p75": 5000, "p90": 5000}


def test_no_figure_below_the_minimum_cell():
    assert st.wage_percentiles([6000] * 9) is None
    assert st.wage_percentiles([6000] * 9, min_cell=9) is not None
    assert st.wage_percentiles([6000] * 10, workers=9) is None  # ten jobs of nine workers: still suppressed
    assert st.wage_percentiles([], min_cell=1) is None


def cell_workers(start: int, count: int, *, province_region="440305", level="senior", base=6000,
                 occupation=OCC) -> list[dict]:
    return [worker(start + i, level=level, jobs=[job(org(50 + i % 3), occupation=occupation, region=province_region,
                                                     wage=base + 100 * i)]) for i in range(count)]


def published(fig: dict, scope: str) -> dict[tuple, dict]:
    dims = st.WAGE_SCOPES[scope]
    return {tuple(r[d] for d in dims): r for r in fig["wages"]["scopes"][scope]["published"]}


def test_wage_cells_below_ten_workers_are_suppressed():
    nine = cell_workers(1, 9)
    fig = figures_of(*nine)
    for scope in st.WAGE_SCOPES:
        assert published(fig, scope) == {}
    assert fig["wages"]["scopes"]["cell"]["suppressed_cells"] == 1
    assert "6000" not in orjson.dumps(fig["wages"]).decode()  # no wage anywhere
    ten = cell_workers(1, 10)
    cell = published(figures_of(*ten), "cell")[(OCC, "senior", "44")]
    assert (cell["workers"], cell["p50"], cell["p90"]) == (10, 6450, 6810)
    assert cell["province_name_zh"] == "广东" and cell["level_name_en"] == "Senior"
    assert published(figures_of(*nine, min_cell=5), "cell")[(OCC, "senior", "44")]["workers"] == 9  # configurable


def test_the_wage_cell_is_occupation_level_province_of_current_jobs():
    files = cell_workers(1, 10, level=None) + [
        worker(50, level=None, jobs=[job(EMPLOYER_A, region="440305", wage=99000, end="2024-05-01"),  # ended
                                     job(EMPLOYER_B, region="440305", wage=None)])]  # no wage
    fig = figures_of(*files)
    assert list(published(fig, "cell")) == [(OCC, "none", "44")]
    assert published(fig, "cell")[(OCC, "none", "44")]["employments"] == 10
    job_type = cell_workers(100, 10, occupation="6-18-01-01-03")  # a job type counts under its occupation
    assert list(published(figures_of(*job_type), "cell")) == [(OCC, "senior", "44")]


def test_a_rollup_that_would_reveal_a_small_difference_is_suppressed():
    guangdong = cell_workers(1, 10, province_region="440305")
    one_in_beijing = cell_workers(100, 1, province_region="110105", base=20000)
    fig = figures_of(*guangdong, *one_in_beijing)
    assert list(published(fig, "cell")) == [(OCC, "senior", "44")]
    # the national (occupation, level) cell has 11 workers, 10 of them in a published cell:
    # publishing it would let the one Beijing wage be inferred
    for scope in ("occupation_level", "occupation", "level", "all"):
        assert published(fig, scope) == {}, scope
    ten_in_beijing = cell_workers(100, 10, province_region="110105", base=20000)
    fig = figures_of(*guangdong, *ten_in_beijing)
    assert set(published(fig, "cell")) == {(OCC, "senior", "44"), (OCC, "senior", "11")}
    assert published(fig, "occupation_level")[(OCC, "senior")]["workers"] == 20
    assert published(fig, "all")[()]["workers"] == 20


def test_rollups_publish_what_the_cells_cannot():
    files = []
    for n, region in enumerate(["440305", "110105", "310115", "510107"] * 3):  # 12 workers, 3 per province
        files += cell_workers(10 * n, 1, province_region=region, base=5000 + 300 * n)
    fig = figures_of(*files)
    assert published(fig, "cell") == {}
    national = published(fig, "occupation_level")[(OCC, "senior")]
    assert national["workers"] == 12 and national["p25"] < national["p50"] < national["p75"] < national["p90"]


# --- exact under corrections, retractions and tombstones -----------------------------------------

def replay(versions: list[tuple[str, dict | None]]) -> tuple[dict, dict]:
    """Apply successive files (ssn, file or None) with deltas; returns (totals, latest files)."""
    totals: dict = {}
    current: dict[str, dict] = {}
    contributions: dict[str, dict] = {}
    for number, file in versions:
        new = st.contribution(file)
        st.apply_delta(totals, contributions.get(number), new)
        contributions[number] = new
        if file is None:
            current.pop(number, None)
        else:
            current[number] = file
    return totals, current


def test_a_corrected_level_moves_the_worker_between_buckets():
    issued = make_event("certificate.issued", payload={"level": "junior"})
    card = make_event("card.issued")
    job_event = make_event("employment.started")
    before = file_of(card, job_event, issued)
    fixed = correction(issued, {"level": "senior"}, occurred_at="2024-07-01T09:00:00+08:00")
    after = file_of(card, job_event, issued, fixed)
    assert (before["highest_skill_level"], after["highest_skill_level"]) == ("junior", "senior")
    other = file_of(make_event("card.issued", ssn=SSN_B), make_event("certificate.issued", ssn=SSN_B,
                                                                      payload={"certificate_no": "S9"}))
    totals, latest = replay([(SSN_A, before), (SSN_B, other), (SSN_A, after)])
    assert totals == st.recount(latest.values())
    levels = {r["level"]: r["workers"] for r in st.figures(totals)["skill_levels"]}
    assert (levels["junior"], levels["senior"]) == (1, 1)  # worker B junior, worker A moved: counted once
    assert st.figures(totals)["workers"] == 2
    assert ("wage", OCC, "junior", "44", 8000) not in totals and totals[("wage", OCC, "senior", "44", 8000)] == 1


def test_a_retracted_employment_leaves_every_aggregate():
    started = make_event("employment.started", payload={"contract_type": "dispatched", "dispatch_agency": AGENCY})
    card = make_event("card.issued")
    before, after = file_of(card, started), file_of(card, started, retraction(started))
    assert after["employments"] == []
    totals, latest = replay([(SSN_A, before), (SSN_A, after)])
    assert totals == st.recount(latest.values())
    fig = st.figures(totals)
    assert fig["contracts"]["current_employments"] == 0 and fig["dispatch"]["dispatched"] == 0
    assert not any(k[0] in ("wage", "wage_workers", "employer", "dispatched", "employments") for k in totals)
    assert {r["major"]: r["workers"] for r in fig["occupation_major"]} == {"none": 1}


def test_a_tombstone_removes_the_worker_from_every_figure():
    a = file_of(make_event("card.issued"), make_event("employment.started"), make_event("honor.awarded"))
    b = file_of(make_event("card.issued", ssn=SSN_B), make_event("employment.started", ssn=SSN_B))
    totals, latest = replay([(SSN_A, a), (SSN_B, b), (SSN_A, None)])
    assert totals == st.recount(latest.values()) == st.recount([b])
    assert st.figures(totals)["craftsmen"][2]["count"] == 0
    totals, _ = replay([(SSN_A, a), (SSN_A, None)])
    assert totals == {}  # nothing left over, not even zero entries


def test_totals_are_a_recount_after_any_sequence_of_population_files():
    lines = [e.encode() if isinstance(e, str) else orjson.dumps(e) for e in generate_population(12, seed=3)]
    batch, versions = BatchFold(), []
    for number, line in enumerate(lines, 1):
        event = parse_json_line(line)
        if batch.take_line(line, number) == "accepted" and not isinstance(event, Rejection):
            versions.append((event.ssn, derive_file(batch.states[event.ssn])))
    totals, latest = replay(versions)
    assert totals == st.recount(latest.values()) == st.recount(fold_lines(lines).files())
    assert st.figures(totals) == st.figures(st.recount(latest.values()))


@pytest.fixture(scope="module")
def pool() -> list[dict]:
    lines = [e.encode() if isinstance(e, str) else orjson.dumps(e) for e in generate_population(16, seed=21)]
    files = fold_lines(lines).files()
    variants = []
    rng = random.Random(1)
    for file in files:  # the same workers with other levels, jobs, insurance: corrected versions
        other = copy.deepcopy(file)
        other["highest_skill_level"] = rng.choice([None, *st.LEVELS])
        other["employments"] = other["employments"][:-1]
        other["insurance"] = [dict(s, status="suspended") for s in other["insurance"]]
        for g in other["services"]["skill_upgrade_subsidy"]:  # handled since: claimed, decided, paid
            g["status"] = rng.choice(st.SUBSIDY_STATUSES)
            g["payments"] = [{"paid_on": "2025-07-01", "amount_cny": g["amount_cny"], "source": org(800),
                              "event_id": "p"}] if g["status"] == "paid" else []
        other["services"]["notices"] = other["services"]["notices"][1:]
        other["issues"] = other["issues"] + [{"code": "service_claimed_twice", "event_id": "c2"}]
        variants.append(other)
    return files + variants


@settings(max_examples=60, deadline=None)
@given(hs.lists(hs.tuples(hs.integers(0, 31), hs.booleans()), max_size=60))
def test_totals_after_deltas_equal_a_recount(pool, steps):
    versions = []
    for index, tombstone in steps:
        file = pool[index]
        versions.append((file["ssn"], None if tombstone else file))
    totals, latest = replay(versions)
    assert totals == st.recount(latest.values())
    assert all(v != 0 for v in totals.values())


def test_figures_of_no_files():
    fig = st.figures({})
    assert fig["workers"] == 0 and fig["regions"] == [] and fig["contracts"]["written_share"] is None
    assert all(r["workers"] == 0 and r["share"] is None for r in fig["skill_levels"])
    assert fig["wages"]["scopes"]["all"]["published"] == []
    assert fig["subsidy"]["double_claims_refused"] == 0 and fig["subsidy"]["by_province"] == []
    assert [s["grants"] for s in fig["subsidy"]["stages"]] == [0, 0, 0]
    assert fig["notices"] == {"open": 0, "workers": 0, "by_province": [], "by_employer": [], "by_code": [
        {"code": c, **dict(zip(("name_zh", "name_en"), st.NOTICE_NAMES[c])), "open": 0} for c in st.NOTICE_CODES]}
