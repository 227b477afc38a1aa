"""Handling of a generated population's subsidy grants (contract section 9) for tests:
`workerfile generate` makes careers with certificates, hence grants, but no bureau
handles them. `service_events(files)` gives, for the grants of folded files, the claims,
decisions and payments a bureau would send, spread over every status, with some second
claims by another bureau (refused: service_claimed_twice). Deterministic: the same files
give the same events (ids are uuid5 of the grant and the step)."""

from __future__ import annotations

import datetime as dt
import uuid

from processors.derive import add_months
from tests.conftest import BUREAU, BUREAU_2

STEPS = ("offered", "claimed", "approved", "paid", "refused")  # grant n is taken to STEPS[n % 5]
NAMESPACE = uuid.UUID("0f7d1a52-3c7b-4a8e-9d0c-5b2e6f1a4c39")


def _event(kind: str, ssn: str, sid: str, day: str, source: str, payload: dict, step: str) -> dict:
    return {"event_id": str(uuid.uuid5(NAMESPACE, f"{sid}|{step}")), "type": kind, "ssn": ssn,
            "occurred_at": f"{day}T10:00:00+08:00", "source": source, "corrects": None,
            "payload": {"service_id": sid, **payload}}


def service_events(files: list[dict], double_every: int = 7, steps: tuple[str, ...] = STEPS) -> list[dict]:
    """The service events that take the n-th grant of `files` (in their order) to
    steps[n % len(steps)] (a status of STEPS), claimed a month after its certificate's issue by BUREAU in the worker's
    card region (440305 without a card); every `double_every`-th claimed grant is also
    claimed by BUREAU_2 a week later (the second claim loses)."""
    events: list[dict] = []
    n = claimed = 0
    for file in files:
        issued = {c["certificate_no"]: c["issued_on"] for c in file["certificates"]}
        region = (file.get("card") or {}).get("region") or "440305"
        for grant in file["services"]["skill_upgrade_subsidy"]:
            step, n = steps[n % len(steps)], n + 1
            if step == "offered":
                continue
            ssn, sid = file["ssn"], grant["service_id"]
            day = add_months(str(issued[grant["certificate_no"]]), 1)
            events.append(_event("service.claimed", ssn, sid, day, BUREAU, {"claimed_on": day, "region": region},
                                 "claim"))
            claimed += 1
            if claimed % double_every == 0:
                later = (dt.date.fromisoformat(day) + dt.timedelta(days=7)).isoformat()
                events.append(_event("service.claimed", ssn, sid, later, BUREAU_2,
                                     {"claimed_on": later, "region": "310115"}, "claim-2"))
            if step == "claimed":
                continue
            decided = add_months(day, 1)
            events.append(_event("service.decided", ssn, sid, decided, BUREAU,
                                 {"decision": "refused" if step == "refused" else "approved", "decided_on": decided},
                                 "decision"))
            if step == "paid":
                paid = add_months(day, 2)
                events.append(_event("service.paid", ssn, sid, paid, BUREAU,
                                     {"paid_on": paid, "amount_cny": grant["amount_cny"]}, "payment"))
    return events
