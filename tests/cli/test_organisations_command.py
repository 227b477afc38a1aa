"""Contract section 8 on the command line: `workerfile generate --organisations-out FILE`
writes the registry of the population's sources, `workerfile fold --organisations FILE`
rejects events whose source lacks the role (`unauthorized_source`), and without a
registry `workerfile fold` says on stderr that sources are not checked."""

from __future__ import annotations

import orjson
import pytest

from processors.organisations import load_organisations
from tests.cli.test_fold_command import SSN_LIKE, SUMMARY, run
from tests.conftest import SCHOOL, line, make_event
from workerfile.population import HONOR_AUTHORITIES

DEVELOPMENT = "no organisation registry configured: the sources of events are not checked (development mode"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("orgs")
    registry = folder / "organisations.toml"
    done = run("generate", "--workers", "12", "--months", "14", "--seed", "4", "--organisations-out", str(registry))
    assert done.returncode == 0, done.stderr
    events = folder / "events.jsonl"
    events.write_bytes(done.stdout)
    return folder, events, registry


def events_in(path) -> list[dict]:
    """The events of a generated file (its bad lines left out)."""
    out = []
    for raw in path.read_bytes().splitlines():
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def rejects_of(path) -> list[dict]:
    return [orjson.loads(raw) for raw in path.read_bytes().splitlines()]


def test_generate_writes_a_registry_of_every_source(generated):
    _, events, registry = generated
    organisations = load_organisations(registry)
    sources = {e.get("source") for e in events_in(events)} - {None}
    assert len(sources) > 10 and sources <= set(organisations.by_code)
    assert set(HONOR_AUTHORITIES) <= set(organisations.by_code)


def test_fold_with_the_registry_accepts_the_population_and_says_nothing_of_development_mode(generated):
    folder, events, registry = generated
    open_run = run("fold", str(events), "--rejects", str(folder / "open.rejects.jsonl"))
    checked = run("fold", str(events), "--organisations", str(registry), "--rejects", str(folder / "r.jsonl"))
    assert checked.returncode == 0, checked.stderr.decode()
    assert DEVELOPMENT not in checked.stderr.decode()
    assert DEVELOPMENT in open_run.stderr.decode() and "--organisations FILE" in open_run.stderr.decode()
    assert checked.stdout == open_run.stdout  # the generated sources all have their roles
    assert SUMMARY.search(checked.stderr.decode()).groups() == SUMMARY.search(open_run.stderr.decode()).groups()
    assert "unauthorized_source" not in {r["reason"] for r in rejects_of(folder / "r.jsonl")}


def test_fold_with_the_registry_rejects_a_forged_certificate(generated, tmp_path):
    _, events, registry = generated
    forged = make_event("certificate.issued", source=SCHOOL, event_id="forged-1")  # SCHOOL: not in the registry
    own_school = next(e for e in events_in(events) if e.get("type") == "training.enrolled")
    by_a_school = make_event("certificate.issued", ssn=own_school["ssn"], source=own_school["source"],
                             event_id="forged-2")
    path = tmp_path / "forged.jsonl"
    path.write_bytes(events.read_bytes() + f"{line(forged)}\n{line(by_a_school)}\n".encode())
    rejects = tmp_path / "rejects.jsonl"
    done = run("fold", str(path), "--organisations", str(registry), "--rejects", str(rejects))
    assert done.returncode == 0, done.stderr.decode()
    unauthorized = {r["event_id"]: r for r in rejects_of(rejects) if r["reason"] == "unauthorized_source"}
    assert set(unauthorized) == {"forged-1", "forged-2"}
    assert "not in the organisation registry" in unauthorized["forged-1"]["message"]
    assert f"{own_school['source']} (职业培训学校" in unauthorized["forged-2"]["message"]
    assert "lacks the role skill_evaluator" in unauthorized["forged-2"]["message"]
    assert unauthorized["forged-2"]["field"] == "source"
    assert not SSN_LIKE.search(done.stderr.decode())
    files = {f["ssn"]: f for f in map(orjson.loads, done.stdout.splitlines())}
    assert not [c for c in files[own_school["ssn"]]["certificates"] if c["certificate_no"] == "S0001"]


def test_a_bad_registry_stops_the_fold_naming_the_code_and_field(generated, tmp_path):
    _, events, _ = generated
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[organisations."{SCHOOL}"]\nname = "学校"\nroles = ["teacher"]\n', encoding="utf-8")
    done = run("fold", str(events), "--organisations", str(bad), "--rejects", str(tmp_path / "r.jsonl"))
    assert done.returncode == 2 and done.stdout == b""
    assert f'organisations."{SCHOOL}".roles: unknown role \'teacher\'' in done.stderr.decode()
    missing = run("fold", str(events), "--organisations", str(tmp_path / "none.toml"))
    assert missing.returncode == 2 and "cannot read the organisation registry" in missing.stderr.decode()
