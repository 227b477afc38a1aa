"""Statistics of the industrial workforce, kept live from the worker files (pure, no I/O).

Every figure is a sum over workers. `contribution(file)` is what one worker's file adds
to every aggregate, as a flat counter {key: int}; the running totals are the sum of the
contributions of the current files. When a file changes, `apply_delta(totals, old, new)`
subtracts the old contribution and adds the new one, so the totals stay exact under
corrections, retractions and tombstones (a worker whose level is corrected moves between
buckets, never counted twice): after any sequence of changes the totals equal
`recount(latest files)`. `figures(totals)` turns the totals into the published figures
(the JSON body of GET /stats), wage percentiles with small-cell suppression included.

Keys are tuples whose first element names the aggregate (docs/statistics.md has the
whole list and the definitions):

    ("workers",)                          1 per worker (file)
    ("province", "44")                    the worker's province (region rule below), or "unknown"
    ("level", "senior")                   highest_skill_level, or "none"
    ("major", "6")                        each distinct major category (1-8) of the current
                                          employments' occupations; "none" without one
    ("employed",)                         1 if the worker has a current employment
    ("employments",)                      number of current employments
    ("written",)                          ... of them with a written contract
    ("contract_type", "fixed_term")       ... by contract type
    ("employer", ORG)                     current employments at the unit ORG (its workforce)
    ("dispatched", ORG)                   ... of them dispatched (contract_type dispatched)
    ("insured", "pension")                1 if the scheme's status is active
    ("suspended", "pension")              1 if the scheme's status is suspended
    ("training_hours", "2025-Q3")         hours of completed trainings, by quarter of end_date
    ("training_completions", "2025-Q3")   number of completed trainings, same quarters
    ("craftsman", "city")                 1 if the worker holds the title city_craftsman
                                          (national / provincial / city)
    ("grants",)                           skill-upgrade subsidy grants in the file
    ("grant_level", "junior")             ... by level
    ("granted",)                          1 if the worker has at least one grant
    ("subsidy", stage, province, level)   grants at a stage of the subsidy (contract section 9):
                                          "offered" every grant in the file, "claimed" those
                                          with a winning claim, "paid" those paid in full; the
                                          province is the worker's (region rule below)
    ("subsidy_cny", stage, province, level)
                                          their amount in CNY: amount_cny of the grants
                                          offered and claimed, the sum of the payments of
                                          those paid
    ("subsidy_status", status)            grants by status (the six of section 9)
    ("double_claims", province)           second claims of a grant, refused (the issues
                                          service_claimed_twice), by the worker's province
    ("notice", code, province)            open notices (services.notices) by code and the
                                          province of the employment they are about
    ("notice_employer", employer, code)   ... by employer and code
    ("noticed",)                          1 if the worker has an open notice
    ("wage", occupation, level, province, wage)
                                          current employments with a monthly wage, one
                                          count per employment (a multiset of wages per cell)
    ("wage_workers", scope, *cell)        1 per worker with at least one wage in the cell
                                          of that scope (the small-cell threshold counts
                                          distinct workers)

A "current employment" is one without end_date. The region of a worker is the region of
the card, else of the latest open employment (greatest (start_date, employer)), the same
rule as the `region` column of `workerfile sink`; its province is the first two digits.
A notice's province is that of the open employment it is about (same employer and
start_date = since), else the worker's.

DEFINITIONS is the version of these definitions: a store of contributions counted with
another version no longer sums to `recount(files)` and is rebuilt (sinks.stats).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Mapping

import orjson

Key = tuple
Totals = dict  # {Key: int}, no zero entries

# --- reference data ---------------------------------------------------------------------------

LEVELS = ("apprentice", "junior", "intermediate", "senior", "technician", "senior_technician",
          "principal_technician", "chief_technician")
NONE = "none"  # no skill level; no current employment (major category)
NO_LEVEL = NONE
LEVEL_NAMES = {
    "apprentice": ("学徒工", "Apprentice"),
    "junior": ("初级工", "Junior"),
    "intermediate": ("中级工", "Intermediate"),
    "senior": ("高级工", "Senior"),
    "technician": ("技师", "Technician"),
    "senior_technician": ("高级技师", "Senior technician"),
    "principal_technician": ("特级技师", "Principal technician"),
    "chief_technician": ("首席技师", "Chief technician"),
    NO_LEVEL: ("无等级", "No level"),
}

PROVINCES = {
    "11": ("北京", "Beijing"), "12": ("天津", "Tianjin"), "13": ("河北", "Hebei"), "14": ("山西", "Shanxi"),
    "15": ("内蒙古", "Inner Mongolia"), "21": ("辽宁", "Liaoning"), "22": ("吉林", "Jilin"),
    "23": ("黑龙江", "Heilongjiang"), "31": ("上海", "Shanghai"), "32": ("江苏", "Jiangsu"),
    "33": ("浙江", "Zhejiang"), "34": ("安徽", "Anhui"), "35": ("福建", "Fujian"), "36": ("江西", "Jiangxi"),
    "37": ("山东", "Shandong"), "41": ("河南", "Henan"), "42": ("湖北", "Hubei"), "43": ("湖南", "Hunan"),
    "44": ("广东", "Guangdong"), "45": ("广西", "Guangxi"), "46": ("海南", "Hainan"), "50": ("重庆", "Chongqing"),
    "51": ("四川", "Sichuan"), "52": ("贵州", "Guizhou"), "53": ("云南", "Yunnan"), "54": ("西藏", "Xizang"),
    "61": ("陕西", "Shaanxi"), "62": ("甘肃", "Gansu"), "63": ("青海", "Qinghai"), "64": ("宁夏", "Ningxia"),
    "65": ("新疆", "Xinjiang"), "71": ("台湾", "Taiwan"), "81": ("香港", "Hong Kong"), "82": ("澳门", "Macao"),
}
UNKNOWN = "unknown"
UNKNOWN_NAMES = ("未知", "Unknown")

MAJOR_CATEGORIES = {  # 2022 national occupation classification, major categories (大类)
    "1": ("党的机关、国家机关、群众团体和社会组织、企事业单位负责人", "Heads of organisations and enterprises"),
    "2": ("专业技术人员", "Professional and technical personnel"),
    "3": ("办事人员和有关人员", "Clerical and related workers"),
    "4": ("社会生产服务和生活服务人员", "Social production and life services"),
    "5": ("农、林、牧、渔业生产及辅助人员", "Agriculture, forestry, animal husbandry, fishery"),
    "6": ("生产制造及有关人员", "Production, manufacturing and related"),
    "7": ("军人", "Military personnel"),
    "8": ("不便分类的其他从业人员", "Other workers"),
    NONE: ("无在职岗位", "No current employment"),
}

CONTRACT_TYPES = {
    "open_ended": ("无固定期限", "Open-ended"),
    "fixed_term": ("固定期限", "Fixed-term"),
    "task_based": ("以完成一定任务为期限", "Task-based"),
    "part_time": ("非全日制", "Part-time"),
    "dispatched": ("劳务派遣", "Dispatched"),
    "platform": ("平台用工", "Platform"),
}

SCHEMES = {
    "pension": ("养老保险", "Pension"),
    "medical": ("医疗保险", "Medical"),
    "unemployment": ("失业保险", "Unemployment"),
    "work_injury": ("工伤保险", "Work injury"),
    "maternity": ("生育保险", "Maternity"),
    "occupational_injury": ("职业伤害保障", "Occupational injury (platform)"),
}

SUBSIDY_STAGES = ("offered", "claimed", "paid")
SUBSIDY_STATUSES = ("offered", "over_annual_limit", "claimed", "approved", "refused", "paid")
CLAIMED_STATUSES = frozenset({"claimed", "approved", "refused", "paid"})  # a winning claim exists
STATUS_NAMES = {  # of a subsidy grant, in plain words (contract section 9)
    "offered": ("可申请", "Offered"),
    "over_annual_limit": ("超出年度限额", "Over the annual limit"),
    "claimed": ("已申请", "Claimed"),
    "approved": ("已批准", "Approved"),
    "refused": ("未获批准", "Refused"),
    "paid": ("已发放", "Paid"),
}
STAGE_NAMES = {"offered": ("补贴资格", "Offered"), "claimed": ("已申请", "Claimed"), "paid": ("已发放", "Paid")}
NOTICE_CODES = ("no_written_contract", "platform_without_injury_cover")
NOTICE_NAMES = {
    "no_written_contract": ("未签订书面劳动合同", "No written contract"),
    "platform_without_injury_cover": ("平台用工未参加职业伤害保障", "Platform work without occupational-injury cover"),
}
DEFINITIONS = 2  # 2: subsidy stages, statuses and double claims, notices

CRAFTSMAN_TITLES = {"national_craftsman": "national", "provincial_craftsman": "provincial", "city_craftsman": "city"}
CRAFTSMAN_TARGETS_2035 = {"national": 2_000, "provincial": 10_000, "city": 50_000}
CRAFTSMAN_NAMES = {"national": ("大国工匠", "National craftsmen"), "provincial": ("省级工匠", "Provincial craftsmen"),
                   "city": ("市级工匠", "City-level craftsmen")}

DISPATCH_CAP = 0.10  # dispatched workers may be at most 10% of an employer's workforce
MIN_CELL = 10  # no wage figure for a cell with fewer workers than this
PERCENTILES = (25, 50, 75, 90)

# Wage scopes, finest first: the dimensions of a cell of each scope.
WAGE_SCOPES = {
    "cell": ("occupation_code", "level", "province"),
    "occupation_level": ("occupation_code", "level"),
    "occupation": ("occupation_code",),
    "level": ("level",),
    "all": (),
}
_WAGE_DIMS = WAGE_SCOPES["cell"]


# --- one file's contribution -------------------------------------------------------------------

def _text(value) -> str | None:
    return None if value is None else str(value)  # dates may come as datetime.date


def province_of(region: str | None) -> str:
    """The two-digit province code of a 6-digit region code, or "unknown"."""
    region = _text(region)
    if region and len(region) >= 2 and region[:2].isdigit():
        return region[:2]
    return UNKNOWN


def occupation_of(code: str | None) -> str:
    """The occupation (细类, D-DD-DD-DD) of an occupation code, without its job type (-DD)."""
    return "-".join(str(code).split("-")[:4]) if code else UNKNOWN


def major_of(code: str | None) -> str:
    """The major category (大类, "1"-"8") of an occupation code, or "unknown"."""
    return code[0] if code and code[0].isdigit() else UNKNOWN


def quarter_of(date) -> str:
    """ "2025-Q3" for a date in July-September 2025; "unknown" without a date."""
    text = _text(date)
    if not text or len(text) < 7:
        return UNKNOWN
    return f"{text[:4]}-Q{(int(text[5:7]) - 1) // 3 + 1}"


def current_employments(file: Mapping) -> list[dict]:
    return [e for e in file.get("employments") or [] if e.get("end_date") is None]


def worker_region(file: Mapping) -> str | None:
    """The card's region, else the region of the latest open employment, else None (the
    same rule as the `region` column of `workerfile sink`)."""
    card = file.get("card")
    region = card.get("region") if card else None
    if not region:
        open_ones = current_employments(file)
        if open_ones:
            region = max(open_ones, key=lambda e: (_text(e.get("start_date")) or "", e.get("employer") or "")).get("region")
    return region or None


def contribution(file: Mapping | None) -> dict[Key, int]:
    """What one worker's file adds to every aggregate ({} for no file, e.g. a tombstone)."""
    if not file:
        return {}
    out: Counter = Counter()
    out[("workers",)] = 1
    out[("province", province_of(worker_region(file)))] += 1
    level = file.get("highest_skill_level") or NO_LEVEL
    out[("level", level)] += 1

    current = current_employments(file)
    majors = {major_of(e.get("occupation_code")) for e in current}
    for major in majors or {NONE}:
        out[("major", major)] += 1
    if current:
        out[("employed",)] = 1
    wage_cells: set[tuple] = set()
    for e in current:
        out[("employments",)] += 1
        if e.get("written_contract"):
            out[("written",)] += 1
        contract_type = e.get("contract_type") or UNKNOWN
        out[("contract_type", contract_type)] += 1
        employer = e.get("employer") or UNKNOWN
        out[("employer", employer)] += 1
        if contract_type == "dispatched":
            out[("dispatched", employer)] += 1
        wage = e.get("monthly_wage_cny")
        if wage is not None:
            cell = (occupation_of(e.get("occupation_code")), level, province_of(e.get("region")))
            out[("wage", *cell, int(wage))] += 1
            wage_cells.add(cell)
    for scope, dims in WAGE_SCOPES.items():
        for cell in {_project(c, dims) for c in wage_cells}:
            out[("wage_workers", scope, *cell)] = 1

    for scheme in file.get("insurance") or []:
        if scheme.get("status") == "active":
            out[("insured", scheme.get("scheme"))] = 1
        elif scheme.get("status") == "suspended":
            out[("suspended", scheme.get("scheme"))] = 1

    for training in file.get("trainings") or []:
        if training.get("status") == "completed":
            quarter = quarter_of(training.get("end_date"))
            out[("training_hours", quarter)] += int(training.get("hours") or 0)
            out[("training_completions", quarter)] += 1

    for title in {h.get("title") for h in file.get("honors") or []}:
        if title in CRAFTSMAN_TITLES:
            out[("craftsman", CRAFTSMAN_TITLES[title])] = 1

    services = file.get("services") or {}
    grants = services.get("skill_upgrade_subsidy") or []
    province = province_of(worker_region(file))
    for grant in grants:
        level = grant.get("level")
        out[("grants",)] += 1
        out[("grant_level", level)] += 1
        status = grant.get("status") or "offered"
        out[("subsidy_status", status)] += 1
        amount = int(grant.get("amount_cny") or 0)
        stages = [("offered", amount)]
        if status in CLAIMED_STATUSES:
            stages.append(("claimed", amount))
        if status == "paid":
            stages.append(("paid", sum(int(p.get("amount_cny") or 0) for p in grant.get("payments") or [])))
        for stage, cny in stages:
            out[("subsidy", stage, province, level)] += 1
            out[("subsidy_cny", stage, province, level)] += cny
    if grants:
        out[("granted",)] = 1
    for issue in file.get("issues") or []:
        if issue.get("code") == "service_claimed_twice":
            out[("double_claims", province)] += 1

    notices = services.get("notices") or []
    for notice in notices:
        code, employer = notice.get("code"), notice.get("employer") or UNKNOWN
        out[("notice", code, _notice_province(file, notice, province))] += 1
        out[("notice_employer", employer, code)] += 1
    if notices:
        out[("noticed",)] = 1
    return {k: v for k, v in out.items() if v}


def _notice_province(file: Mapping, notice: Mapping, fallback: str) -> str:
    """The province of the open employment a notice is about (employer, start_date =
    since), else `fallback` (the worker's)."""
    since = _text(notice.get("since"))
    for e in current_employments(file):
        if e.get("employer") == notice.get("employer") and _text(e.get("start_date")) == since:
            return province_of(e.get("region"))
    return fallback


def _project(cell: tuple, dims: tuple[str, ...]) -> tuple:
    return tuple(cell[_WAGE_DIMS.index(d)] for d in dims)


# --- totals ---------------------------------------------------------------------------------------

def delta(old: Mapping[Key, int] | None, new: Mapping[Key, int] | None) -> dict[Key, int]:
    """new - old, without zero entries."""
    out: dict[Key, int] = dict(new or {})
    for key, value in (old or {}).items():
        out[key] = out.get(key, 0) - value
    return {k: v for k, v in out.items() if v}


def add_into(totals: Totals, changes: Mapping[Key, int]) -> Totals:
    """totals += changes (in place), dropping entries that become zero."""
    for key, value in changes.items():
        total = totals.get(key, 0) + value
        if total:
            totals[key] = total
        else:
            totals.pop(key, None)
    return totals


def apply_delta(totals: Totals, old: Mapping[Key, int] | None, new: Mapping[Key, int] | None) -> Totals:
    """Replace a worker's old contribution by the new one in `totals` (in place; returned).
    Either may be None/{} (a new worker; a tombstone)."""
    return add_into(totals, delta(old, new))


def recount(files: Iterable[Mapping]) -> Totals:
    """The totals of a set of files, from scratch."""
    totals: Totals = {}
    for file in files:
        add_into(totals, contribution(file))
    return totals


# --- wage percentiles ---------------------------------------------------------------------------

def percentile(sorted_values: list[int], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation between closest ranks
    (Hyndman-Fan type 7, numpy's default): rank h = (n - 1) p / 100."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("no values")
    h = (n - 1) * p / 100
    lo = int(h)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def wage_percentiles(values: Iterable[int], min_cell: int = MIN_CELL, workers: int | None = None,
                     percentiles: tuple[int, ...] = PERCENTILES) -> dict | None:
    """{"p25": ..., "p50": ..., "p75": ..., "p90": ...} in whole yuan, or None when the
    cell has fewer than `min_cell` workers (`workers`: distinct workers, default the
    number of values)."""
    ordered = sorted(int(v) for v in values)
    count = len(ordered) if workers is None else workers
    if not ordered or count < max(1, min_cell):
        return None
    return {f"p{p}": math.floor(percentile(ordered, p) + 0.5) for p in percentiles}


# --- the published figures ---------------------------------------------------------------------

def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _named(names: Mapping[str, tuple[str, str]], code: str) -> dict:
    zh, en = names.get(code, (code, code))
    return {"name_zh": zh, "name_en": en}


def _by(totals: Mapping[Key, int], name: str) -> dict[str, int]:
    return {k[1]: v for k, v in totals.items() if k[0] == name and len(k) == 2}


def wage_tables(totals: Mapping[Key, int], min_cell: int = MIN_CELL) -> dict:
    """Percentiles of the monthly wage of current employments at every scope, with
    small-cell suppression (fewer than `min_cell` distinct workers: no figure) and a
    differencing guard: a coarser cell is not published when it differs from a published
    finer cell inside it by 1 to min_cell - 1 wages (the difference would be a small cell)."""
    cells: dict[tuple, Counter] = {}
    for key, count in totals.items():
        if key[0] == "wage" and count > 0:
            cells.setdefault(key[1:4], Counter())[key[4]] += count
    workers = {(k[1], tuple(k[2:])): v for k, v in totals.items() if k[0] == "wage_workers"}
    published: dict[str, dict[tuple, int]] = {}  # scope -> {cell: number of wages}
    out: dict = {"min_cell": min_cell, "percentiles": list(PERCENTILES), "scopes": {}}
    suppressed: dict[str, int] = {}
    for scope, dims in WAGE_SCOPES.items():
        grouped: dict[tuple, Counter] = {}
        for cell, wages in cells.items():
            grouped.setdefault(_project(cell, dims), Counter()).update(wages)
        rows, published[scope], suppressed[scope] = [], {}, 0
        for cell in sorted(grouped, key=lambda c: _cell_order(c, dims)):
            wages = grouped[cell]
            n_values = sum(wages.values())
            n_workers = workers.get((scope, cell), 0)
            figures = wage_percentiles(wages.elements(), min_cell, workers=n_workers)
            if figures is not None and not _differencing_safe(scope, cell, n_values, published, min_cell):
                figures = None
            if figures is None:
                suppressed[scope] += 1
                continue
            published[scope][cell] = n_values
            row = dict(zip(dims, cell))
            if "level" in row:
                row.update({"level_" + k: v for k, v in _named(LEVEL_NAMES, row["level"]).items()})
            if "province" in row:
                row.update({"province_" + k: v for k, v in _named(PROVINCES, row["province"]).items()})
            row.update({"workers": n_workers, "employments": n_values, **figures})
            rows.append(row)
        out["scopes"][scope] = {"dimensions": list(dims), "published": rows, "suppressed_cells": suppressed[scope]}
    return out


def _cell_order(cell: tuple, dims: tuple[str, ...]) -> tuple:
    """Cells in reading order: occupation code, then the level ladder, then province."""
    return tuple((LEVELS + (NONE,)).index(v) if d == "level" and v in LEVELS + (NONE,) else v
                 for d, v in zip(dims, cell))


def _differencing_safe(scope: str, cell: tuple, n_values: int, published: dict, min_cell: int) -> bool:
    dims = WAGE_SCOPES[scope]
    for finer_scope, finer_cells in published.items():
        finer_dims = WAGE_SCOPES[finer_scope]
        if finer_scope == scope or not set(dims) < set(finer_dims):
            continue
        for finer_cell, finer_values in finer_cells.items():
            if _project_from(finer_cell, finer_dims, dims) == cell and 0 < n_values - finer_values < min_cell:
                return False
    return True


def _project_from(cell: tuple, dims: tuple[str, ...], onto: tuple[str, ...]) -> tuple:
    return tuple(cell[dims.index(d)] for d in onto)


def figures(totals: Mapping[Key, int], min_cell: int = MIN_CELL, dispatch_cap: float = DISPATCH_CAP) -> dict:
    """The published figures (the body of GET /stats, the table of `workerfile stats`)."""
    workers = totals.get(("workers",), 0)
    employments = totals.get(("employments",), 0)

    provinces = _by(totals, "province")
    by_province = [{"province": code, **_named({**PROVINCES, UNKNOWN: UNKNOWN_NAMES}, code), "workers": n,
                    "share": _share(n, workers)}
                   for code, n in sorted(provinces.items(), key=lambda kv: (kv[0] == UNKNOWN, -kv[1], kv[0]))]

    levels = _by(totals, "level")
    by_level = [{"level": level, **_named(LEVEL_NAMES, level), "workers": levels.get(level, 0),
                 "share": _share(levels.get(level, 0), workers)} for level in (*LEVELS, NO_LEVEL)]

    majors = _by(totals, "major")
    by_major = [{"major": code, **_named(MAJOR_CATEGORIES, code), "workers": n, "share": _share(n, workers)}
                for code, n in sorted(majors.items(), key=lambda kv: (kv[0] in (NONE, UNKNOWN), kv[0]))]

    types = _by(totals, "contract_type")
    written = totals.get(("written",), 0)
    contracts = {"current_employments": employments, "written": written, "written_share": _share(written, employments),
                 "by_type": [{"contract_type": t, **_named(CONTRACT_TYPES, t), "employments": n,
                              "share": _share(n, employments)}
                             for t, n in sorted(types.items(), key=lambda kv: (-kv[1], kv[0]))]}

    workforce = _by(totals, "employer")
    dispatched = _by(totals, "dispatched")
    employers = [{"employer": org, "workforce": n, "dispatched": dispatched.get(org, 0),
                  "share": _share(dispatched.get(org, 0), n)} for org, n in workforce.items()]
    above = sorted((e for e in employers if e["dispatched"] > dispatch_cap * e["workforce"]),
                   key=lambda e: (-e["dispatched"] / e["workforce"], -e["dispatched"], e["employer"]))
    dispatch = {"cap": dispatch_cap, "employers": len(employers),
                "employers_with_dispatched": sum(1 for e in employers if e["dispatched"]),
                "dispatched": sum(dispatched.values()), "dispatched_share": _share(sum(dispatched.values()), employments),
                "above_cap": above}

    insured, suspended = _by(totals, "insured"), _by(totals, "suspended")
    insurance = [{"scheme": s, **_named(SCHEMES, s), "insured": insured.get(s, 0), "suspended": suspended.get(s, 0),
                  "share": _share(insured.get(s, 0), workers)}
                 for s in (*SCHEMES, *sorted((set(insured) | set(suspended)) - set(SCHEMES)))]

    hours, completions = _by(totals, "training_hours"), _by(totals, "training_completions")
    quarters = sorted(set(hours) | set(completions), key=lambda q: (q == UNKNOWN, q))
    training = {"total_hours": sum(hours.values()), "completions": sum(completions.values()),
                "by_quarter": [{"quarter": q, "hours": hours.get(q, 0), "completions": completions.get(q, 0)}
                               for q in quarters]}

    crafts = _by(totals, "craftsman")
    craftsmen = [{"level": level, **_named(CRAFTSMAN_NAMES, level), "count": crafts.get(level, 0),
                  "target_2035": target, "progress": round(crafts.get(level, 0) / target, 6)}
                 for level, target in CRAFTSMAN_TARGETS_2035.items()]

    grant_levels = _by(totals, "grant_level")
    subsidy = {"grants": totals.get(("grants",), 0), "workers": totals.get(("granted",), 0),
               "by_level": [{"level": level, **_named(LEVEL_NAMES, level), "grants": grant_levels.get(level, 0)}
                            for level in sorted(grant_levels, key=lambda x: LEVELS.index(x) if x in LEVELS else 99)]}

    subsidy.update(subsidy_figures(totals))

    return {
        "workers": workers,
        "employed": totals.get(("employed",), 0),
        "regions": by_province,
        "skill_levels": by_level,
        "occupation_major": by_major,
        "contracts": contracts,
        "dispatch": dispatch,
        "insurance": insurance,
        "training": training,
        "craftsmen": craftsmen,
        "subsidy": subsidy,
        "notices": notice_figures(totals),
        "wages": wage_tables(totals, min_cell),
    }


_PROVINCE_NAMES = {**PROVINCES, UNKNOWN: UNKNOWN_NAMES}


def _province_order(code: str) -> tuple:
    return code == UNKNOWN, code


def _level_order(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)


def subsidy_figures(totals: Mapping[Key, int]) -> dict:
    """The skill-upgrade subsidy from grant to payment: grants offered / claimed / paid
    (count and CNY) in all, by province and by (province, level); grants by status; the
    double claims refused."""
    cells: dict[tuple[str, str], dict[str, int]] = {}
    for key, value in totals.items():
        if key[0] in ("subsidy", "subsidy_cny") and len(key) == 4:
            _, stage, province, level = key
            row = cells.setdefault((province, level), {})
            row[stage + ("_cny" if key[0] == "subsidy_cny" else "")] = value
    doubles = _by(totals, "double_claims")

    def counts(rows: Iterable[Mapping[str, int]]) -> dict[str, int]:
        rows = list(rows)
        return {f"{stage}{suffix}": sum(r.get(stage + suffix, 0) for r in rows)
                for stage in SUBSIDY_STAGES for suffix in ("", "_cny")}

    by_province_level = [
        {"province": p, **{"province_" + k: v for k, v in _named(_PROVINCE_NAMES, p).items()},
         "level": lv, **{"level_" + k: v for k, v in _named(LEVEL_NAMES, lv).items()}, **counts([cells[(p, lv)]])}
        for p, lv in sorted(cells, key=lambda c: (_province_order(c[0]), _level_order(c[1])))]
    provinces = sorted({p for p, _ in cells} | set(doubles), key=_province_order)
    by_province = [{"province": p, **_named(_PROVINCE_NAMES, p),
                    **counts(row for (q, _), row in cells.items() if q == p),
                    "double_claims_refused": doubles.get(p, 0)} for p in provinces]
    whole = counts(cells.values())
    statuses = _by(totals, "subsidy_status")
    return {
        "stages": [{"stage": stage, **_named(STAGE_NAMES, stage), "grants": whole[stage],
                    "amount_cny": whole[stage + "_cny"]} for stage in SUBSIDY_STAGES],
        "by_status": [{"status": s, **_named(STATUS_NAMES, s), "grants": statuses.get(s, 0)}
                      for s in (*SUBSIDY_STATUSES, *sorted(set(statuses) - set(SUBSIDY_STATUSES)))],
        "double_claims_refused": sum(doubles.values()),
        "by_province": by_province,
        "by_province_level": by_province_level,
    }


def notice_figures(totals: Mapping[Key, int]) -> dict:
    """Open notices (contract section 9) by code, by province of the employment and by
    employer, each with its count per code."""
    by_province: dict[str, Counter] = {}
    by_employer: dict[str, Counter] = {}
    for key, value in totals.items():
        if key[0] == "notice" and len(key) == 3:
            by_province.setdefault(key[2], Counter())[key[1]] += value
        elif key[0] == "notice_employer" and len(key) == 3:
            by_employer.setdefault(key[1], Counter())[key[2]] += value
    codes = (*NOTICE_CODES, *sorted({c for counts in by_province.values() for c in counts} - set(NOTICE_CODES)))

    def row(counts: Counter) -> dict:
        return {"open": sum(counts.values()), **{code: counts.get(code, 0) for code in codes}}

    whole = Counter()
    for counts in by_province.values():
        whole.update(counts)
    return {
        "open": sum(whole.values()),
        "workers": totals.get(("noticed",), 0),
        "by_code": [{"code": code, **_named(NOTICE_NAMES, code), "open": whole.get(code, 0)} for code in codes],
        "by_province": [{"province": p, **_named(_PROVINCE_NAMES, p), **row(by_province[p])}
                        for p in sorted(by_province, key=lambda p: (p == UNKNOWN, -sum(by_province[p].values()), p))],
        "by_employer": [{"employer": e, **row(by_employer[e])}
                        for e in sorted(by_employer, key=lambda e: (-sum(by_employer[e].values()), e))],
    }


# --- storage form ------------------------------------------------------------------------------

def key_text(key: Key) -> str:
    """A key as compact JSON text (its form in the database): ["level","senior"]."""
    return orjson.dumps(list(key)).decode()


def key_of(text: str | bytes) -> Key:
    return tuple(orjson.loads(text))


def contribution_text(contrib: Mapping[Key, int]) -> str:
    """A contribution as JSON text, [[key, count], ...] in a stable order (its form in the database)."""
    return orjson.dumps(sorted(([list(k), v] for k, v in contrib.items()), key=lambda kv: key_text(kv[0]))).decode()


def contribution_of_text(text: str | bytes | None) -> dict[Key, int]:
    return {} if not text else {tuple(k): v for k, v in orjson.loads(text)}
