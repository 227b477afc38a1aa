"""Small builders shared by the unit tests: valid canonical JSON events, and folding
them the way `workerfile fold` does (no broker, no files)."""

from __future__ import annotations

import copy
import itertools
from typing import Iterable

import orjson
import pytest

from processors.batch import BatchFold, fold_lines
from processors.identity import make_org_code, make_ssn
from processors.intake import Rejection, validate_event
from schemas.events import Envelope
from schemas.outputs import RejectedEvent, WorkerFile

# --- identities -------------------------------------------------------------------------

SSN_A = "11010519491231002X"  # contract vector: born 1949-12-31, 17th digit 2 -> female
SSN_B = make_ssn("44030519850612003")  # born 1985-06-12, male
SSN_C = "130503196704010016"  # upgraded form of the legacy contract vector
SSN_C_LEGACY = "130503670401001"

SOURCE = make_org_code("91440300MA5D1AB3C")  # the default emitting organisation
EMPLOYER_A = make_org_code("91440300708461136")
EMPLOYER_B = make_org_code("91330100716105852")
EMPLOYER_C = make_org_code("9111000010000000X")
AGENCY = make_org_code("91310115MA1K3XY10")
SCHOOL = make_org_code("52440300MJL000001")
SCHOOL_2 = make_org_code("52440300MJL000002")
BUREAU = make_org_code("11440300007542610")
BUREAU_2 = make_org_code("11310000002421420")  # a second social-insurance bureau (another province)
EVALUATOR = make_org_code("12440300455755678")

OCC = "6-18-01-01"
OCC_2 = "6-20-03-01"

DROP = object()  # pass as a value to remove a field from the defaults

DEFAULT_PAYLOADS: dict[str, dict] = {
    "training.enrolled": {"program_id": "P1", "program_name": "数控车工 技能提升", "start_date": "2024-03-01",
                          "planned_hours": 80, "occupation_code": OCC},
    "training.completed": {"program_id": "P1", "end_date": "2024-04-15", "hours": 80, "passed": True},
    "training.withdrawn": {"program_id": "P1", "date": "2024-04-01"},
    "employment.started": {"employer": EMPLOYER_A, "occupation_code": OCC, "contract_type": "open_ended",
                           "written_contract": True, "start_date": "2020-01-01", "region": "440305",
                           "monthly_wage_cny": 8000},
    "employment.ended": {"employer": EMPLOYER_A, "end_date": "2022-06-30", "reason": "resigned"},
    "insurance.enrolled": {"scheme": "pension", "month": "2020-01", "region": "440305"},
    "insurance.contribution": {"scheme": "pension", "month": "2020-01", "region": "440305", "base_cny": 8000,
                               "employer_amount_cny": 1280, "personal_amount_cny": 640},
    "insurance.suspended": {"scheme": "pension", "month": "2022-07"},
    "insurance.transferred": {"scheme": "pension", "month": "2022-08", "from_region": "440305", "to_region": "310115"},
    "card.issued": {"card_no": "C100000001", "issued_on": "2020-01-10", "region": "440305"},
    "certificate.issued": {"certificate_no": "S0001", "kind": "skill_level", "occupation_code": OCC,
                           "level": "junior", "issued_on": "2023-05-01"},
    "certificate.revoked": {"certificate_no": "S0001", "revoked_on": "2024-01-01"},
    "honor.awarded": {"title": "city_craftsman", "awarded_on": "2024-05-01"},
    "event.retracted": {"event_id": "set-me"},
    "service.claimed": {"service_id": "00000000-0000-5000-8000-000000000000", "claimed_on": "2024-06-01",
                        "region": "440305"},
    "service.decided": {"service_id": "00000000-0000-5000-8000-000000000000", "decision": "approved",
                        "decided_on": "2024-06-15"},
    "service.paid": {"service_id": "00000000-0000-5000-8000-000000000000", "paid_on": "2024-07-01",
                     "amount_cny": 1000},
}

_ids = itertools.count(1)


def new_id(prefix: str = "ev") -> str:
    return f"{prefix}-{next(_ids):07d}"


def _apply(base: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if value is DROP:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def make_event(type: str, /, ssn: str = SSN_A, payload: dict | None = None, **envelope) -> dict:
    """A valid canonical JSON event of `type` (a dict). `payload` is merged over the
    type's default payload; envelope fields (event_id, occurred_at, source, corrects, or
    any other key) override the defaults. A value of `DROP` removes the field."""
    body = copy.deepcopy(DEFAULT_PAYLOADS.get(type, {}))
    if payload is not DROP:
        _apply(body, payload or {})
    event = {"event_id": new_id(), "type": type, "ssn": ssn, "occurred_at": "2024-06-01T09:00:00+08:00",
             "source": SOURCE, "corrects": None, "payload": body}
    return _apply(event, {"ssn": ssn, "payload": DROP if payload is DROP else body, **envelope})


def correction(target: dict, payload: dict | None = None, **envelope) -> dict:
    """A correction of `target`: same type and ssn, `corrects` = its event_id, the
    target's payload with `payload` merged over it."""
    event = copy.deepcopy(target)
    _apply(event["payload"], payload or {})
    event["event_id"] = new_id("fix")
    event["corrects"] = target["event_id"]
    return _apply(event, envelope)


def retraction(target: dict, **envelope) -> dict:
    """An `event.retracted` of `target` (same ssn)."""
    return make_event("event.retracted", ssn=target["ssn"], payload={"event_id": target["event_id"]}, **envelope)


def line(event: dict | str) -> str:
    """One JSON line as `workerfile fold` reads it."""
    return event if isinstance(event, str) else orjson.dumps(event).decode()


def fold(events: Iterable[dict | str], now=None) -> BatchFold:
    """Fold events (dicts or raw lines) as `workerfile fold` does; every file built is
    checked against the WorkerFile model and every reject against RejectedEvent."""
    batch = fold_lines([line(e) for e in events], now=now)
    for file in batch.files():
        WorkerFile.model_validate(file)
    for reject in batch.rejects:
        RejectedEvent.model_validate(reject)
    c = batch.counts
    assert c.accepted + c.duplicates + c.rejected == c.read
    return batch


def fold_files(events: Iterable[dict | str], now=None) -> list[dict]:
    return fold(events, now).files()


def file_of(*events: dict, ssn: str | None = None) -> dict:
    """The one file that folding `events` gives (no rejects allowed)."""
    batch = fold(events)
    assert batch.rejects == [], batch.rejects
    files = batch.files()
    if ssn is not None:
        files = [f for f in files if f["ssn"] == ssn]
    assert len(files) == 1, [f["ssn"] for f in files]
    return files[0]


def envelope(event: dict) -> Envelope:
    """The validated event (fails the test if it is rejected)."""
    result = validate_event(orjson.loads(orjson.dumps(event)))
    assert not isinstance(result, Rejection), result
    return result


def same_file_in_every_order(*events: dict, ssn: str = SSN_A) -> dict:
    """Fold `events` in every arrival order (or, for more than 6, in reversed and rotated
    orders too) and check that the file is always the same; returns it."""
    events = list(events)
    if len(events) <= 6:
        orders = list(itertools.permutations(events))
    else:
        orders = [events, events[::-1]] + [events[i:] + events[:i] for i in range(1, len(events))]
    first = file_of(*orders[0], ssn=ssn)
    for order in orders[1:]:
        assert file_of(*order, ssn=ssn) == first, [e["event_id"] for e in order]
    return first


@pytest.fixture(scope="session")
def postgres_server():
    """One throw-away PostgreSQL server (Debian's binaries, 127.0.0.1, a free port) for the
    whole session, stopped at its end. Missing binaries fail the tests that need it: install
    Debian's postgresql (.ci/run does)."""
    from sinks.local_postgres import LocalPostgres, PostgresNotInstalled

    try:
        server = LocalPostgres()
    except PostgresNotInstalled as err:
        pytest.fail(f"{err} (apt-get install postgresql)")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def schema_registry():
    """One Apicurio Registry (deploy/registry/, 127.0.0.1, a free port, in-memory storage)
    for the whole session, stopped at its end; `.url` is its Confluent-compatible API.
    Tests share it as producers share a real registry: the same schema under the same
    subject is registered once and keeps its id."""
    from streams.local_registry import LocalRegistry

    registry = LocalRegistry()
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()
