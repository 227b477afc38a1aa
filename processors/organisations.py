"""Who may say what (contract section 8): the organisation registry and its roles.

An event is only as trustworthy as the organisation that says it: a training
institution must not be able to issue a certificate (and so a subsidy). The registry
is a TOML file,

    [organisations."91440300708461136X"]
    name = "深圳市某某精密制造有限公司"
    roles = ["employer"]

read from `WORKERFILE_ORGANISATIONS` (worker, API) or `workerfile fold --organisations
FILE`. `Organisations.check(event)` says whether the event's `source` may be the source
of its type:

| role | may be the source of |
|---|---|
| training_provider | training.enrolled, training.completed, training.withdrawn |
| employer | employment.started, employment.ended where it is payload.employer or payload.dispatch_agency |
| social_insurance | insurance.*, card.issued, service.*; employment.* for any employer (on its behalf) |
| skill_evaluator | certificate.issued, certificate.revoked |
| honor_authority | honor.awarded |

An `event.retracted` (and a correction) must come from the source of its target: that
rule needs the worker's state and is the fold's; here a retraction's source only has to
be in the registry. Without a registry, sources are not checked (development mode).

Pure: no I/O but `load_organisations`, which reads the file.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from schemas.identity import IdentityError, validate_org_code
from processors.intake import Rejection  # (intake needs this module only for its type hints)

UNAUTHORIZED = "unauthorized_source"
RETRACTED = "event.retracted"
EMPLOYMENT = frozenset({"employment.started", "employment.ended"})

# role -> the event types (or families, "insurance.*") it may be the source of
ROLE_TYPES: dict[str, tuple[str, ...]] = {
    "training_provider": ("training.enrolled", "training.completed", "training.withdrawn"),
    "employer": ("employment.started", "employment.ended"),  # only as payload.employer or payload.dispatch_agency
    "social_insurance": ("insurance.*", "card.issued", "service.*", "employment.*"),
    "skill_evaluator": ("certificate.issued", "certificate.revoked"),
    "honor_authority": ("honor.awarded",),
}
ROLES = tuple(ROLE_TYPES)

DEVELOPMENT_MODE = ("no organisation registry configured: the sources of events are not checked "
                    "(development mode; contract section 8)")


class OrganisationsError(ValueError):
    """The registry file cannot be read, or breaks a rule; the message names the
    organisation code and the field."""


def _role_covers(role: str, kind: str) -> bool:
    for pattern in ROLE_TYPES[role]:
        if pattern == kind or (pattern.endswith(".*") and kind.startswith(pattern[:-1])):
            return True
    return False


def roles_for(kind: str) -> tuple[str, ...]:
    """The roles that may be the source of events of type `kind` (the employer role
    only as payload.employer or payload.dispatch_agency)."""
    return tuple(role for role in ROLES if _role_covers(role, kind))


@dataclass(frozen=True, slots=True)
class Organisation:
    code: str
    name: str
    roles: frozenset[str]


@dataclass(frozen=True)
class Organisations:
    """The registry: organisation code -> Organisation."""

    by_code: Mapping[str, Organisation]
    _allowed: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # (code, type) -> answer

    def __len__(self) -> int:
        return len(self.by_code)

    def __contains__(self, code: object) -> bool:
        return code in self.by_code

    def _rule(self, source: str, kind: str) -> str | bool:
        """True: `source` may say `kind`; "employer": only as payload.employer or
        payload.dispatch_agency; False: not at all (or not in the registry)."""
        key = (source, kind)
        answer = self._allowed.get(key)
        if answer is None:
            org = self.by_code.get(source)
            if org is None:
                answer = False
            elif kind == RETRACTED:
                answer = True  # the source of its target, checked by the fold
            elif any(_role_covers(role, kind) for role in org.roles if role != "employer"):
                answer = True
            elif "employer" in org.roles and kind in EMPLOYMENT:
                answer = "employer"
            else:
                answer = False
            if len(self._allowed) >= 65536:
                self._allowed.clear()
            self._allowed[key] = answer
        return answer

    def allows(self, kind: str, source: str, payload: Mapping[str, Any]) -> bool:
        """Whether `source` may be the source of an event of type `kind` with this
        payload (a dict): the JSON fast path's form of `check`."""
        rule = self._rule(source, kind)
        if rule is True:
            return True
        return rule == "employer" and (payload.get("employer") == source or payload.get("dispatch_agency") == source)

    def check(self, event) -> Rejection | None:
        """None when the event's source may say it; else the `unauthorized_source`
        rejection naming the organisation and the role it lacks."""
        kind, source, payload = event.type, event.source, event.payload
        rule = self._rule(source, kind)
        if rule is True:
            return None
        employer, agency = getattr(payload, "employer", None), getattr(payload, "dispatch_agency", None)
        if rule == "employer" and source in (employer, agency):
            return None
        org = self.by_code.get(source)
        if org is None:
            return Rejection(UNAUTHORIZED, f"source {source} is not in the organisation registry: it may not be "
                                           f"the source of {kind} (which needs the role {_needed(kind)})", "source")
        who = f"source {source} ({org.name})"
        if rule == "employer":
            return Rejection(UNAUTHORIZED, f"{who} has the role employer but is neither payload.employer nor "
                                           f"payload.dispatch_agency of this {kind}; registering employment on "
                                           "another employer's behalf needs the role social_insurance", "source")
        return Rejection(UNAUTHORIZED, f"{who} lacks the role {_needed(kind)} that {kind} needs "
                                       f"(its roles: {', '.join(sorted(org.roles)) or 'none'})", "source")


def _needed(kind: str) -> str:
    roles = roles_for(kind)
    names = [f"{r} (as payload.employer or payload.dispatch_agency)" if r == "employer" else r for r in roles]
    return " or ".join(names) or "(none: no role may say it)"


def parse_organisations(text: str, where: str = "the registry") -> Organisations:
    """The registry of a TOML text; raises OrganisationsError naming the code and field."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise OrganisationsError(f"{where}: not valid TOML: {err}") from None
    extra = sorted(set(raw) - {"organisations"})
    if extra:
        raise OrganisationsError(f"{where}: unknown table or key {extra[0]!r} (only [organisations.\"<code>\"])")
    table = raw.get("organisations", {})
    if not isinstance(table, dict):
        raise OrganisationsError(f"{where}: organisations must be a table of [organisations.\"<code>\"]")
    by_code: dict[str, Organisation] = {}
    for code, entry in table.items():
        at = f'{where}: organisations."{code}"'
        try:
            validate_org_code(code)
        except IdentityError as err:
            raise OrganisationsError(f"{at}: not a unified social credit code: {err.message}") from None
        if not isinstance(entry, dict):
            raise OrganisationsError(f"{at}: must be a table with name and roles")
        unknown = sorted(set(entry) - {"name", "roles"})
        if unknown:
            raise OrganisationsError(f"{at}.{unknown[0]}: unknown field (fields: name, roles)")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise OrganisationsError(f"{at}.name: " + ("missing" if name is None else "must be a non-empty string"))
        roles = entry.get("roles")
        if roles is None:
            raise OrganisationsError(f"{at}.roles: missing")
        if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
            raise OrganisationsError(f"{at}.roles: must be a non-empty list of roles ({', '.join(ROLES)})")
        for role in roles:
            if role not in ROLE_TYPES:
                raise OrganisationsError(f"{at}.roles: unknown role {role!r} (roles: {', '.join(ROLES)})")
        by_code[code] = Organisation(code, name.strip(), frozenset(roles))
    return Organisations(by_code)


def load_organisations(path: str | Path | None) -> Organisations | None:
    """The registry of the file at `path`; None without a path (development mode).
    Raises OrganisationsError when the file cannot be read or is not a valid registry."""
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise OrganisationsError(f"cannot read the organisation registry {path}: {err}") from None
    return parse_organisations(text, str(path))


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string


def registry_toml(organisations: Mapping[str, tuple[str, list[str] | tuple[str, ...]]]) -> str:
    """A registry file of {code: (name, roles)} (what `workerfile generate --organisations-out` writes)."""
    lines = ["# The organisation registry (contract section 8): who may be the source of what.", ""]
    for code, (name, roles) in organisations.items():
        lines += [f"[organisations.{_toml_string(code)}]", f"name = {_toml_string(name)}",
                  "roles = [" + ", ".join(_toml_string(r) for r in roles) + "]", ""]
    return "\n".join(lines)
