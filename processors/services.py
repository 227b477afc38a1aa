"""Services handled in one network (contract section 9): the skill-upgrade subsidy from
grant to claim, decision and payment, once in the whole country; and the notices the
file gives to labour inspection.

Pure Python, no I/O but `load_service_rules`, which reads the operators' configuration
(`deploy/services.toml`). Everything here is a function of the file's effective events,
so it is independent of the order they arrive in (contract section 4):

- a grant's `service_id` is uuid5 of the worker and the grant's (occupation_code, level);
- the winning claim of a grant is the earliest by (claimed_on, occurred_at, event_id);
  every other claim adds the issue `service_claimed_twice`;
- only the winning claim's organisation decides and pays: a decision or payment from any
  other (or of a grant nobody claimed) has no effect and adds `service_handled_by_other`;
  the latest decision by (decided_on, occurred_at, event_id) counts; more than one
  payment adds `service_paid_twice` (for each payment after the first);
- status: `paid` once the payments sum to at least amount_cny and the decision is
  `approved`; else the decision; else `claimed`; else `offered`, or `over_annual_limit`
  for a grant beyond the first `annual_limit` of its certificate's calendar year
  (earliest issued first, tie: certificate_no);
- a claim, decision or payment whose service_id is no grant of the file adds
  `claim_without_grant`; a claim filed after the grant's apply_by adds
  `claimed_after_deadline`.
"""

from __future__ import annotations

import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

SERVICE_NAMESPACE = uuid.UUID("6f1c1f3e-5b7e-4f53-9a43-6d2f8c1b9a10")
SUBSIDY = "skill_upgrade_subsidy"
SERVICE_TYPES = ("service.claimed", "service.decided", "service.paid")
STATUSES = ("offered", "over_annual_limit", "claimed", "approved", "refused", "paid")
NOTICE_CODES = ("no_written_contract", "platform_without_injury_cover")
NOTICE = "notice"
SERVICES_TOML = Path(__file__).resolve().parents[1] / "deploy" / "services.toml"  # the operators' file


def _ladder() -> tuple[str, ...]:
    from schemas.events import SKILL_LADDER  # (schemas is the lower layer; imported lazily for the CLI's start)
    return SKILL_LADDER


@dataclass(frozen=True)
class SubsidyRules:
    """Parameters of the skill-upgrade subsidy (技能提升补贴); defaults from the contract
    (sections 3 and 9). `deploy/services.toml` documents and overrides them."""

    levels: frozenset[str] = frozenset({"junior", "intermediate", "senior"})
    kinds: frozenset[str] = frozenset({"vocational_qualification", "skill_level"})
    scheme: str = "unemployment"
    min_months: int = 12
    apply_within_months: int = 12
    amounts: dict[str, int] = field(default_factory=lambda: {"junior": 1000, "intermediate": 1500, "senior": 2000})
    annual_limit: int = 3

    def amount(self, level: str) -> int:
        return self.amounts[level]


DEFAULT_RULES = SubsidyRules()


class ServiceRulesError(ValueError):
    """A configuration that cannot be used; the message names the file and the field."""


_KNOWN = {"levels", "kinds", "scheme", "min_months", "apply_within_months", "annual_limit", "amounts"}


def load_service_rules(path: str | Path | None = None) -> SubsidyRules:
    """The rules from a TOML file's `[skill_upgrade_subsidy]` table (None:
    `deploy/services.toml` when it is there, else the contract's defaults). Every field
    is checked; an error names the file, the field and the reason."""
    if path is None:
        if not SERVICES_TOML.exists():
            return DEFAULT_RULES
        path = SERVICES_TOML
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ServiceRulesError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as err:
        raise ServiceRulesError(f"{path}: not TOML: {err}") from None
    unknown_tables = set(raw) - {SUBSIDY}
    if unknown_tables:
        raise ServiceRulesError(f"{path}: unknown table {sorted(unknown_tables)[0]!r} (known: {SUBSIDY})")
    table = raw.get(SUBSIDY, {})
    return rules_from_mapping(table, where=f"{path}: {SUBSIDY}")


def rules_from_mapping(table: dict[str, Any], where: str = SUBSIDY) -> SubsidyRules:
    """`load_service_rules` of an already parsed table."""
    from schemas.events import Scheme, CertificateKind
    unknown = set(table) - _KNOWN
    if unknown:
        raise ServiceRulesError(f"{where}.{sorted(unknown)[0]}: unknown field (known: {', '.join(sorted(_KNOWN))})")
    d = DEFAULT_RULES
    ladder = _ladder()

    def integer(name: str, default: int, low: int) -> int:
        value = table.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ServiceRulesError(f"{where}.{name}: must be a whole number >= {low}, not {value!r}")
        return value

    def names(name: str, default: frozenset[str], allowed: Iterable[str]) -> frozenset[str]:
        value = table.get(name, sorted(default))
        allowed = tuple(allowed)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ServiceRulesError(f"{where}.{name}: must be a non-empty list of names")
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ServiceRulesError(f"{where}.{name}: {bad[0]!r} is not one of {', '.join(allowed)}")
        return frozenset(value)

    levels = names("levels", d.levels, ladder)
    kinds = names("kinds", d.kinds, CertificateKind.__args__)
    scheme = table.get("scheme", d.scheme)
    if scheme not in Scheme.__args__:
        raise ServiceRulesError(f"{where}.scheme: {scheme!r} is not one of {', '.join(Scheme.__args__)}")
    amounts = table.get("amounts", {level: d.amounts[level] for level in levels if level in d.amounts})
    if not isinstance(amounts, dict):
        raise ServiceRulesError(f"{where}.amounts: must be a table of level = amount in CNY")
    for level, amount in amounts.items():
        if level not in ladder:
            raise ServiceRulesError(f"{where}.amounts.{level}: not a level of the skill ladder")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
            raise ServiceRulesError(f"{where}.amounts.{level}: must be a whole number of CNY >= 1, not {amount!r}")
    missing = sorted(levels - set(amounts), key=ladder.index)
    if missing:
        raise ServiceRulesError(f"{where}.amounts.{missing[0]}: missing (every level in `levels` needs an amount)")
    return SubsidyRules(
        levels=levels, kinds=kinds, scheme=scheme,
        min_months=integer("min_months", d.min_months, 0),
        apply_within_months=integer("apply_within_months", d.apply_within_months, 1),
        amounts={level: amounts[level] for level in sorted(levels, key=ladder.index)},
        annual_limit=integer("annual_limit", d.annual_limit, 1),
    )


def service_id(ssn: str, grant: dict) -> str:
    """The stable id of a grant: uuid5 of the worker and (occupation_code, level)."""
    return str(uuid.uuid5(SERVICE_NAMESPACE, f"{ssn}|{SUBSIDY}|{grant['occupation_code']}|{grant['level']}"))


def notice_id(ssn: str, notice: dict) -> str:
    """The stable id of a notice: uuid5 of the worker, its code, employer and since."""
    return str(uuid.uuid5(SERVICE_NAMESPACE, f"{ssn}|{NOTICE}|{notice['code']}|{notice['employer']}|{notice['since']}"))


def _key(member) -> tuple:
    """(date, occurred_at, event_id) ordering of a service event."""
    eid, rec = member
    day = rec.data.get("claimed_on") or rec.data.get("decided_on") or rec.data.get("paid_on")
    return day, rec.occurred, eid


def handle_grants(ssn: str, grants: list[dict], service_events: dict[str, Iterable], rules: SubsidyRules,
                  issues: list[dict]) -> list[dict]:
    """The grants of a file with what was done with them (contract section 9), and the
    issues that handling gives (appended to `issues`). `grants` carry `issued_on` of
    their certificate (dropped here); `service_events` maps each of SERVICE_TYPES to the
    effective (event_id, record) pairs of that type."""
    by_id: dict[str, dict[str, list]] = {}
    known = {service_id(ssn, g) for g in grants}
    for kind in SERVICE_TYPES:
        for member in service_events.get(kind, ()):
            sid = member[1].data["service_id"]
            if sid not in known:
                issues.append({"code": "claim_without_grant", "event_id": member[0]})
                continue
            by_id.setdefault(sid, {}).setdefault(kind, []).append(member)
    per_year: dict[str, list[tuple]] = {}
    for g in grants:
        per_year.setdefault(g["issued_on"][:4], []).append((g["issued_on"], g["certificate_no"], id(g)))
    within = set()
    for ranked in per_year.values():
        within |= {entry[2] for entry in sorted(ranked)[:rules.annual_limit]}
    out = []
    for g in grants:
        sid = service_id(ssn, g)
        mine = by_id.get(sid, {})
        claims = sorted(mine.get("service.claimed", ()), key=_key)
        claim = decision = None
        payments: list[dict] = []
        if claims:
            eid, rec = claims[0]
            claim = {"source": rec.source, "region": rec.data["region"], "claimed_on": rec.data["claimed_on"],
                     "event_id": eid}
            issues.extend({"code": "service_claimed_twice", "event_id": other} for other, _ in claims[1:])
        for eid, rec in claims:
            if rec.data["claimed_on"] > g["apply_by"]:
                issues.append({"code": "claimed_after_deadline", "event_id": eid})
        winner = claim["source"] if claim else None
        decisions = []
        for kind, effective in (("service.decided", decisions), ("service.paid", payments)):
            for member in mine.get(kind, ()):
                if member[1].source != winner:
                    issues.append({"code": "service_handled_by_other", "event_id": member[0]})
                else:
                    effective.append(member)
        if decisions:
            eid, rec = max(decisions, key=_key)
            decision = {"decision": rec.data["decision"], "decided_on": rec.data["decided_on"], "source": rec.source,
                        "event_id": eid}
        payments.sort(key=_key)
        issues.extend({"code": "service_paid_twice", "event_id": eid} for eid, _ in payments[1:])
        paid = [{"paid_on": r.data["paid_on"], "amount_cny": r.data["amount_cny"], "source": r.source, "event_id": eid}
                for eid, r in payments]
        amount = rules.amount(g["level"])
        if decision and decision["decision"] == "approved" and sum(p["amount_cny"] for p in paid) >= amount:
            status = "paid"
        elif decision:
            status = decision["decision"]
        elif claim:
            status = "claimed"
        else:
            status = "offered" if id(g) in within else "over_annual_limit"
        out.append({
            "certificate_no": g["certificate_no"], "occupation_code": g["occupation_code"], "level": g["level"],
            "apply_by": g["apply_by"], "service_id": sid, "amount_cny": amount, "status": status,
            "claim": claim, "decision": decision, "payments": paid,
        })
    return out


def notices(employments: list[dict], insurance: list[dict]) -> list[dict]:
    """The notices of contract section 9 from a file's employments and insurance:
    `no_written_contract` for an open employment without a written contract,
    `platform_without_injury_cover` for an open platform employment while
    occupational_injury insurance is not active; each {code, employer, since}, sorted."""
    injury_active = any(i["scheme"] == "occupational_injury" and i["status"] == "active" for i in insurance)
    out = set()
    for e in employments:
        if e["end_date"] is not None:
            continue
        if e.get("written_contract") is False:
            out.add(("no_written_contract", e["employer"], e["start_date"]))
        if e["contract_type"] == "platform" and not injury_active:
            out.add(("platform_without_injury_cover", e["employer"], e["start_date"]))
    return [{"code": c, "employer": emp, "since": since} for c, emp, since in sorted(out)]
