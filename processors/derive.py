"""Deriving a worker's file (contract section 3) from the folded state, and what the
stream publishes about it: changed sections and service events.

Pure Python, no I/O. Corrections, retractions and held `employment.ended` events are
resolved here, over the whole set of accepted events, which is what makes the file
independent of arrival order (contract section 4).
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Collection

import orjson

from processors.fold import Record, SchemeSummary, WorkerState, summarise
from processors.identity import normalise_ssn
from processors.services import (
    DEFAULT_RULES, NOTICE, SERVICE_TYPES, SUBSIDY, SubsidyRules, handle_grants, notice_id, notices, service_id,
)
from schemas.events import SKILL_LADDER
from schemas.outputs import FILE_SECTIONS

RETRACTED = "event.retracted"
INSURANCE_TYPES = frozenset({"insurance.enrolled", "insurance.contribution", "insurance.transferred", "insurance.suspended"})
LEVEL_RANK = {level: i for i, level in enumerate(SKILL_LADDER)}
LADDER_KINDS = frozenset({"vocational_qualification", "skill_level"})




# --- corrections and retractions ---------------------------------------------------------

def effective_events(records: dict[str, Record], check_sources: bool = False) -> tuple[list[tuple[str, Record]], int]:
    """The events whose effect is in the file, and how many retractions took effect.

    Every event belongs to the *slot* of the original it (transitively) corrects. A slot's
    effect is that of its latest correction (occurred_at, then event_id), or of the
    original when it has none. An event is dead when it, or any event it corrects, is
    retracted. Corrections whose type differs from the slot's, or from any event they
    (transitively) correct, are inert.
    """
    by_type, applied_retractions = _effective_by_type(records, check_sources)
    return [member for group in by_type.values() for member in group.items()], applied_retractions


def _effective_by_type(records: dict[str, Record], check_sources: bool = False,
                       issues: list | None = None) -> tuple[dict[str, dict[str, Record]], int]:
    """`effective_events` grouped by type, {type: {event_id: record}} (in no particular
    order). Most events correct nothing and are not retracted: each is alone in its slot
    and takes effect, so only the corrections are resolved slot by slot."""
    retracted: set[str] = set()
    applied_retractions = 0
    by_type: dict[str, dict[str, Record]] = {}
    corrections: list[tuple[str, Record]] = []
    for eid, rec in records.items():
        kind = rec.type
        if check_sources and (kind == RETRACTED or rec.corrects is not None):
            target = records.get(rec.data["event_id"] if kind == RETRACTED else rec.corrects)
            if target is not None and target.source != rec.source:
                # arrived before its target, from another source (contract section 8): no effect
                if issues is not None:
                    issues.append({"code": "unauthorized_change", "event_id": eid})
                continue
        if kind == RETRACTED:
            target = rec.data["event_id"]
            retracted.add(target)
            if target in records:
                applied_retractions += 1
        elif rec.corrects is not None:
            corrections.append((eid, rec))
        else:
            group = by_type.get(kind)
            if group is None:
                by_type[kind] = {eid: rec}
            else:
                group[eid] = rec
    for eid in retracted:  # a retracted original is dead
        rec = records.get(eid)
        if rec is not None and rec.corrects is None and rec.type != RETRACTED:
            del by_type[rec.type][eid]
    if not corrections:
        return by_type, applied_retractions
    slots: dict[str, list[tuple[str, Record]]] = {}
    for eid, rec in corrections:
        path, root = _correction_path(eid, records)
        if root is None or any(p in retracted for p in path):
            continue
        if any(p in records and records[p].type != rec.type for p in path[1:]):
            continue  # it corrects (through) an event of another type: inert, as if rejected
        slots.setdefault(root, []).append((eid, rec))
    for root, members in slots.items():
        original = records.get(root)
        if original is not None and original.corrects is None and root in by_type.get(original.type, ()):
            del by_type[original.type][root]  # the live original is one of the slot's members
            members = [(root, original), *members]
        if original is not None and original.type != RETRACTED:
            kind = original.type
        else:  # the original has not arrived: the latest correction sets the type
            kind = max(members, key=_order)[1].type
        slot_corrections = [m for m in members if m[0] != root and m[1].type == kind]
        if slot_corrections:
            winners = [max(slot_corrections, key=_order)]
        else:
            winners = [m for m in members if m[0] == root]  # the original, when live
        for eid, rec in winners:
            by_type.setdefault(rec.type, {})[eid] = rec
    return by_type, applied_retractions


def _order(member: tuple[str, Record]) -> tuple[int, str]:
    return member[1].occurred, member[0]


def _correction_path(eid: str, records: dict[str, Record]) -> tuple[list[str], str | None]:
    """Follow `corrects` from `eid`: the ids on the way, and the root (None: inert)."""
    path = [eid]
    current = eid
    while True:
        target = records[current].corrects
        if target is None:
            return path, current
        if target in path:  # a cycle of corrections: its smallest id stands as the root
            return path, min(path[path.index(target):])
        path.append(target)
        rec = records.get(target)
        if rec is None:
            return path, target  # the original has not arrived (yet)
        if rec.type == RETRACTED:
            return path, None  # a "correction" of a retraction never has an effect
        current = target


# --- the file ------------------------------------------------------------------------------

def _core_parts(state: WorkerState) -> dict:
    """The sections that come from the core records (see processors.fold), resolved over
    the whole core: kept on the state until its core changes (treat as read-only)."""
    parts = state.derived
    if parts is not None:
        return parts
    issues: list[dict] = []
    effective, applied_retractions = _effective_by_type(state.core, state.check_sources, issues)
    by_type: dict[str, Collection[tuple[str, Record]]] = {
        kind: group.items() if kind in INSURANCE_TYPES else sorted(group.items(), key=_order)
        for kind, group in effective.items()}
    employments = _employments(by_type, issues)
    trainings = _trainings(by_type)
    certificates = _certificates(by_type, issues)
    ladder = [LEVEL_RANK[c["level"]] for c in certificates
              if c["kind"] in LADDER_KINDS and c["revoked_on"] is None and c["level"] is not None]
    cards = by_type.get("card.issued", [])
    card = None
    if cards:
        _, latest = max(cards, key=lambda m: (m[1].data["issued_on"], m[1].occurred, m[0]))
        card = {"card_no": latest.data["card_no"], "issued_on": latest.data["issued_on"], "region": latest.data["region"]}
    honors = sorted(
        ({"title": r.data["title"], "awarded_on": r.data["awarded_on"], "awarded_by": r.source}
         for _, r in by_type.get("honor.awarded", [])),
        key=lambda h: (h["awarded_on"], h["title"], h["awarded_by"]))
    parts = state.derived = {
        "card": card,
        "employments": employments,
        "current_employers": sorted({e["employer"] for e in employments if e["end_date"] is None}),
        "trainings": trainings,
        "training_hours": sum(t["hours"] for t in trainings if t["status"] == "completed"),
        "certificates": certificates,
        "highest_skill_level": SKILL_LADDER[max(ladder)] if ladder else None,
        "honors": honors,
        "issues": sorted(issues, key=lambda i: (i["code"], i["event_id"])),
        "insurance": _scheme_summaries(by_type),
        "services": {kind: list(by_type.get(kind, ())) for kind in SERVICE_TYPES},
        "applied": sum(map(len, effective.values())) + applied_retractions,
    }
    return parts


def derive_file(state: WorkerState, rules: SubsidyRules = DEFAULT_RULES) -> dict:
    """The worker's file as a JSON-ready dict (see schemas.outputs.WorkerFile). Its cost
    is bounded by the core records (cached) and the number of schemes and years, not by
    the plain insurance events."""
    core = _core_parts(state)
    insurance, months_up_to = _insurance_section(state.summaries(), core["insurance"])
    ssn = normalise_ssn(state.ssn)
    issues = list(core["issues"])
    return {
        "ssn": ssn.number,
        "aliases": sorted(state.aliases),
        "birth_date": ssn.birth_date.isoformat(),
        "sex": ssn.sex,
        "card": core["card"],
        "employments": core["employments"],
        "current_employers": core["current_employers"],
        "trainings": core["trainings"],
        "training_hours": core["training_hours"],
        "certificates": core["certificates"],
        "highest_skill_level": core["highest_skill_level"],
        "insurance": insurance,
        "honors": core["honors"],
        "services": {
            SUBSIDY: handle_grants(ssn.number, _eligible(core["certificates"], months_up_to.get(rules.scheme, _no_months),
                                                          rules), core["services"], rules, issues),
            "notices": notices(core["employments"], insurance),
        },
        "issues": sorted(issues, key=lambda i: (i["code"], i["event_id"])) if issues else [],
        "applied_events": state.plain_count + core["applied"],
    }


def _no_months(month: str) -> int:
    return 0


def _employments(by_type: dict, issues: list[dict]) -> list[dict]:
    starts: dict[tuple[str, str], dict] = {}
    for _, rec in by_type.get("employment.started", []):  # sorted: the latest wins a key
        d = rec.data
        starts[(d["employer"], d["start_date"])] = d
    ends: dict[tuple[str, str], dict] = {}
    for eid, rec in by_type.get("employment.ended", []):
        d = rec.data
        candidates = [k for k in starts if k[0] == d["employer"] and k[1] <= d["end_date"]]
        if candidates:
            ends[max(candidates)] = d
        else:  # held until its start arrives
            issues.append({"code": "employment_end_without_start", "event_id": eid})
    result = []
    for key in sorted(starts, key=lambda k: (k[1], k[0])):  # by (start_date, employer)
        d, end = starts[key], ends.get(key)
        result.append({
            "employer": d["employer"],
            "occupation_code": d["occupation_code"],
            "contract_type": d["contract_type"],
            "written_contract": d["written_contract"],
            "dispatch_agency": d.get("dispatch_agency"),
            "region": d["region"],
            "monthly_wage_cny": d.get("monthly_wage_cny"),
            "start_date": d["start_date"],
            "end_date": end["end_date"] if end else None,
            "end_reason": end["reason"] if end else None,
        })
    return result


def _trainings(by_type: dict) -> list[dict]:
    programs: dict[tuple[str, str], dict] = {}

    def entry(rec: Record) -> dict:
        key = (rec.source, rec.data["program_id"])
        if key not in programs:
            programs[key] = {
                "source": rec.source, "program_id": rec.data["program_id"], "program_name": None,
                "occupation_code": None, "status": "enrolled", "planned_hours": None, "hours": 0,
                "passed": None, "start_date": None, "end_date": None,
            }
        return programs[key]

    for _, rec in by_type.get("training.enrolled", []):
        e, d = entry(rec), rec.data
        e.update(program_name=d["program_name"], start_date=d["start_date"], planned_hours=d["planned_hours"],
                 occupation_code=d.get("occupation_code"))
    outcomes = by_type.get("training.completed", []) + by_type.get("training.withdrawn", [])
    for eid, rec in sorted(outcomes, key=_order):  # the latest completion or withdrawal decides
        e, d = entry(rec), rec.data
        if rec.type == "training.completed":
            e.update(status="completed", hours=d["hours"], passed=d["passed"], end_date=d["end_date"])
        else:
            e.update(status="withdrawn", hours=0, passed=None, end_date=d["date"])
    return [programs[key] for key in sorted(programs)]


def _certificates(by_type: dict, issues: list[dict]) -> list[dict]:
    issued: dict[str, dict] = {}
    for _, rec in by_type.get("certificate.issued", []):
        d = rec.data
        issued[d["certificate_no"]] = {
            "certificate_no": d["certificate_no"], "kind": d["kind"], "occupation_code": d["occupation_code"],
            "level": d.get("level"), "issuer": rec.source, "issued_on": d["issued_on"],
            "valid_until": d.get("valid_until"), "revoked_on": None,
        }
    for eid, rec in by_type.get("certificate.revoked", []):
        cert = issued.get(rec.data["certificate_no"])
        if cert is None:
            issues.append({"code": "certificate_revoked_without_issue", "event_id": eid})
        else:
            cert["revoked_on"] = rec.data["revoked_on"]
    return [issued[no] for no in sorted(issued)]


def _scheme_summaries(by_type: dict) -> dict[str, SchemeSummary]:
    """Per scheme, what the given insurance events give (processors.fold.summarise, as
    the state keeps for its plain records)."""
    per_scheme: dict[str, list] = {}
    for kind in INSURANCE_TYPES:
        for member in by_type.get(kind, ()):
            per_scheme.setdefault(member[1].data[0], []).append(member)
    return {scheme: summarise(members) for scheme, members in per_scheme.items()}


def _insurance_section(plain: dict[str, SchemeSummary], core: dict[str, SchemeSummary]):
    """The insurance section from the plain and the core summaries, and per scheme a
    function counting the months with a contribution up to a month."""
    result = []
    counters = {}
    for scheme in sorted(set(plain) | set(core)):
        p, c = plain.get(scheme), core.get(scheme)
        parts = [s for s in (p, c) if s is not None]
        latest = max((s.latest for s in parts if s.latest is not None), key=lambda t: t[:3])
        regions = [s.region for s in parts if s.region is not None]
        if p is not None and c is not None:
            months = SchemeSummary(months=dict(p.months))
            for year, mask in c.months.items():
                months.months[year] = months.months.get(year, 0) | mask
            months.recount()
        else:
            months = parts[0]
        result.append({
            "scheme": scheme,
            "status": latest[3],
            "region": max(regions, key=lambda t: t[:3])[3] if regions else None,
            "months_contributed": months.contributed,
            "last_contribution_month": months.last,
        })
        counters[scheme] = months.months_up_to
    return result, counters


def _insurance(by_type: dict) -> tuple[list[dict], dict[str, list[str]]]:
    """The insurance section of these events alone, and per scheme its sorted months
    with a contribution (the definition that the summaries follow)."""
    summaries = _scheme_summaries(by_type)
    section, _ = _insurance_section({}, summaries)
    months = {scheme: [f"{y:04d}-{m + 1:02d}" for y in sorted(s.months) for m in range(12) if s.months[y] >> m & 1]
              for scheme, s in summaries.items()}
    return section, {k: v for k, v in months.items() if v}


def add_months(day: str, months: int) -> str:
    """`YYYY-MM-DD` plus whole months; the day is clamped to the month's end (31 Jan + 1 = 28/29 Feb)."""
    d = dt.date.fromisoformat(day)
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return dt.date(year, month, min(d.day, calendar.monthrange(year, month)[1])).isoformat()


def subsidy_grants(certificates: list[dict], contribution_months: list[str], rules: SubsidyRules = DEFAULT_RULES) -> list[dict]:
    """Skill-upgrade subsidy grants (contract section 3): one per (occupation_code, level),
    the earliest issued eligible certificate winning (tie: smaller certificate_no).
    `contribution_months` counts the months with a contribution to `rules.scheme` up to
    and including a month (or is their sorted list). Eligibility only: what was done
    with each grant is `processors.services.handle_grants`."""
    return [{k: v for k, v in g.items() if k != "issued_on"} for g in _eligible(certificates, contribution_months, rules)]


def _eligible(certificates: list[dict], contribution_months, rules: SubsidyRules) -> list[dict]:
    """`subsidy_grants` with the certificate's issued_on in each grant."""
    if isinstance(contribution_months, list):
        sorted_months = contribution_months
        contribution_months = lambda month: bisect.bisect_right(sorted_months, month)  # noqa: E731
    best: dict[tuple[str, str], dict] = {}
    for cert in certificates:
        if cert["revoked_on"] is not None or cert["kind"] not in rules.kinds or cert["level"] not in rules.levels:
            continue
        months_until = contribution_months(cert["issued_on"][:7])
        if months_until < rules.min_months:
            continue
        key = (cert["occupation_code"], cert["level"])
        mine = (cert["issued_on"], cert["certificate_no"])
        if key not in best or mine < (best[key]["issued_on"], best[key]["certificate_no"]):
            best[key] = cert
    return [
        {"certificate_no": c["certificate_no"], "occupation_code": c["occupation_code"], "level": c["level"],
         "apply_by": add_months(c["issued_on"], rules.apply_within_months), "issued_on": c["issued_on"]}
        for key, c in sorted(best.items(), key=lambda kv: (kv[0][0], LEVEL_RANK[kv[0][1]]))
    ]


# --- what the stream publishes about a change ----------------------------------------------

def changed_sections(before: dict | None, after: dict) -> list[str]:
    """The sections of the file that differ (all of them for a new file)."""
    if before is None:
        return list(FILE_SECTIONS)
    return [s for s in FILE_SECTIONS if before.get(s) != after.get(s)]


def section_digests(file: dict) -> dict[str, str]:
    """A short digest of each section of a file, so that a state can remember what it
    last published without keeping the file itself."""
    return {s: hashlib.blake2b(orjson.dumps(file[s]), digest_size=6).hexdigest() for s in FILE_SECTIONS}


def record_change(state: WorkerState, file: dict) -> list[str]:
    """Compare `file` with what `state` last published; if anything changed, remember the
    new digests, bump `state.version` and return the changed sections (else [])."""
    digests = section_digests(file)
    changed = [s for s in FILE_SECTIONS if state.section_digests.get(s) != digests[s]]
    if changed:
        state.section_digests = digests
        state.version += 1
    return changed


def grant_key(grant: dict) -> str:
    return f"{grant['occupation_code']}|{grant['level']}"


def new_service_events(state: WorkerState, file: dict) -> list[dict]:
    """The service events of this file (contract section 9): a grant that appears for the
    first time or whose status changed, a notice that appears or is resolved; each is
    marked in `state.announced` (so that a change is published once, and a grant that
    disappears and comes back with the same status is not published again). The ids are
    stable: uuid5 of the worker and the grant key (the notice)."""
    events = []
    announced = state.announced
    for grant in file["services"][SUBSIDY]:
        key = grant_key(grant)
        before = announced.get(key)
        if before == grant["status"]:
            continue
        announced[key] = grant["status"]
        events.append({"service_id": grant["service_id"], "ssn": state.ssn, "service": SUBSIDY, "grant": grant,
                       "notice": None, "status": grant["status"], "status_before": before, "version": state.version})
    current = {f"{NOTICE}|{n['code']}|{n['employer']}|{n['since']}": n for n in file["services"]["notices"]}
    for key in sorted(set(current) | {k for k, v in announced.items() if k.startswith(NOTICE + "|") and v == "open"}):
        status = "open" if key in current else "resolved"
        before = announced.get(key)
        if before == status:
            continue
        announced[key] = status
        _, code, employer, since = key.split("|")
        notice = {"code": code, "employer": employer, "since": since}
        events.append({"service_id": notice_id(state.ssn, notice), "ssn": state.ssn, "service": NOTICE, "grant": None,
                       "notice": notice, "status": status, "status_before": before, "version": state.version})
    return events
