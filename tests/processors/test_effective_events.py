"""The derivation's shortcuts against the plain definitions they replace, on random
inputs: `effective_events` resolves only the corrections slot by slot (most events
correct nothing and stand alone), checked on sets of events full of corrections, chains,
cycles, corrections of another type, of missing events and of retractions, and
retractions of all of these; `_insurance` skips the comparisons of events older than the
latest found so far, checked on insurance events in every order."""

from __future__ import annotations

import random

import pytest

from processors.derive import RETRACTED, _correction_path, _insurance, _order, derive_file, effective_events
from processors.fold import Record, state_of_records
from tests.conftest import SSN_A


def reference_effective_events(records: dict[str, Record]) -> tuple[list[tuple[str, Record]], int]:
    """The definition (the implementation before the fast common case)."""
    retracted = {r.data["event_id"] for r in records.values() if r.type == RETRACTED}
    slots: dict[str, list[tuple[str, Record]]] = {}
    for eid, rec in records.items():
        if rec.type == RETRACTED:
            continue
        path, root = _correction_path(eid, records)
        if root is None or any(p in retracted for p in path):
            continue
        if any(p in records and records[p].type != rec.type for p in path[1:]):
            continue
        slots.setdefault(root, []).append((eid, rec))
    winners = []
    for root, members in slots.items():
        original = records.get(root)
        if original is not None and original.type != RETRACTED:
            kind = original.type
        else:
            kind = max(members, key=_order)[1].type
        corrections = [m for m in members if m[0] != root and m[1].type == kind]
        if corrections:
            winners.append(max(corrections, key=_order))
        else:
            winners.extend(m for m in members if m[0] == root)
    applied = sum(1 for r in records.values() if r.type == RETRACTED and r.data["event_id"] in records)
    return winners, applied


TYPES = ["card.issued", "honor.awarded", "insurance.contribution"]


def random_records(rng: random.Random) -> dict[str, Record]:
    ids = [f"e{i:02d}" for i in range(rng.randint(1, 24))]
    records = {}
    for i, eid in enumerate(ids):
        roll = rng.random()
        occurred = rng.randint(0, 5)  # ties, broken by event_id
        if roll < 0.2:
            records[eid] = Record(RETRACTED, f"{i:016x}", occurred, None, "S", {"event_id": rng.choice(ids + ["gone"])})
            continue
        kind = rng.choice(TYPES)
        corrects = None if roll < 0.55 else rng.choice(ids + ["missing-1", "missing-2"])
        if kind == "insurance.contribution":
            data = ("pension", f"2024-0{rng.randint(1, 3)}", "440305")
        elif kind == "card.issued":
            data = {"card_no": f"C{i}", "issued_on": "2024-01-0" + str(rng.randint(1, 3)), "region": "440305"}
        else:
            data = {"title": "city_craftsman", "awarded_on": "2024-05-01"}
        records[eid] = Record(kind, f"{i:016x}", occurred, corrects, "S", data)
    return records


@pytest.mark.parametrize("seed", range(40))
def test_effective_events_is_the_definition(seed):
    rng = random.Random(seed)
    for _ in range(100):
        records = random_records(rng)
        winners, applied = effective_events(records)
        expected, expected_applied = reference_effective_events(records)
        assert sorted(winners) == sorted(expected)
        assert len(winners) == len(expected)
        assert applied == expected_applied
        file = derive_file(state_of_records(SSN_A, records))
        assert file["applied_events"] == len(expected) + expected_applied


def reference_insurance(by_type: dict) -> tuple[list[dict], dict[str, list[str]]]:
    """The definition of the insurance section (the implementation before the shortcut)."""
    latest: dict[str, tuple] = {}
    latest_region: dict[str, tuple] = {}
    months: dict[str, set[str]] = {}
    for kind in ("insurance.enrolled", "insurance.contribution", "insurance.transferred", "insurance.suspended"):
        for eid, rec in by_type.get(kind, []):
            scheme, month, region = rec.data
            key = (month, rec.occurred, eid)
            if scheme not in latest or key > latest[scheme][0]:
                latest[scheme] = (key, "suspended" if kind == "insurance.suspended" else "active")
            if region is not None and (scheme not in latest_region or key > latest_region[scheme][0]):
                latest_region[scheme] = (key, region)
            if kind == "insurance.contribution":
                months.setdefault(scheme, set()).add(month)
    sorted_months = {scheme: sorted(ms) for scheme, ms in months.items()}
    result = [{
        "scheme": scheme, "status": latest[scheme][1],
        "region": latest_region[scheme][1] if scheme in latest_region else None,
        "months_contributed": len(sorted_months.get(scheme, [])),
        "last_contribution_month": sorted_months[scheme][-1] if sorted_months.get(scheme) else None,
    } for scheme in sorted(latest)]
    return result, sorted_months


@pytest.mark.parametrize("seed", range(20))
def test_insurance_is_the_definition(seed):
    rng = random.Random(seed)
    kinds = ["insurance.enrolled", "insurance.contribution", "insurance.transferred", "insurance.suspended"]
    for _ in range(200):
        by_type: dict[str, list] = {}
        for i in range(rng.randint(0, 30)):
            kind = rng.choice(kinds)
            region = None if kind == "insurance.suspended" else rng.choice(["440305", "310115"])
            data = (rng.choice(["pension", "medical"]), f"2024-0{rng.randint(1, 4)}", region)
            by_type.setdefault(kind, []).append((f"e{rng.randint(0, 99):02d}-{i}", Record(
                kind, "f", rng.randint(0, 3), None, "S", data)))
        for members in by_type.values():
            rng.shuffle(members)
        assert _insurance(by_type) == reference_insurance(by_type)
