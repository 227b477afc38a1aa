"""Issue #6 against a real broker and a real stream worker: authentication (401),
authorisation (403, nothing written), each caller's view over HTTP and on its own
topic (pseudonyms keyed by HMAC, never the SSN), and the access log the worker reads."""

from __future__ import annotations

from urllib.parse import quote

import orjson
import pytest

from processors.batch import fold_lines
from schemas.identity import make_org_code
from processors.views import pseudonym, view_of
from streams.reader import read_topic
from streams.runner import wait_for
from tests.integration.api_access import Access, api_worker, call, ingest
from tests.integration.conftest import PARTITIONS  # noqa: F401  (the broker fixture's partitions)
from workerfile.population import generate_population
from schemas.events import EVENT_TOPICS

pytestmark = pytest.mark.timeout(480)
BUREAU = make_org_code("11440300007542610")


def population(seed: int = 61, workers: int = 4) -> list[dict]:
    return [i for i in generate_population(workers, seed=seed, months=14, anomalies=False) if isinstance(i, dict)]


def on_event_topics(bootstrap: str) -> int:
    return sum(len(read_topic(bootstrap, t)) for t in EVENT_TOPICS)


@pytest.fixture
def setup(kafka, tmp_path):
    """A worker serving the API, a published population, and its expected files."""
    access = Access(tmp_path / "access")
    events = population()
    files = {f["ssn"]: f for f in fold_lines([orjson.dumps(e) for e in events]).files()}
    ssn, other = sorted(files)[:2]
    school = next(t["source"] for f in files.values() for t in f["trainings"])
    access.add("the worker", "worker", ssn=ssn)
    access.add("Social insurance bureau", "social_insurance", org=BUREAU)
    access.add("Vocational school", "training_institution", org=school)
    access.add("Research integrator", "integrator")
    proc = api_worker(kafka, tmp_path, access)
    try:
        ingest(proc.base_url, access, events)
        for number, file in files.items():
            wait_for(lambda: call("GET", f"{proc.base_url}/workers/{number}", token=access.tokens["operator"])[1] == file,
                     120, what="every file over HTTP")
        yield proc, access, files, ssn, other, school
    finally:
        proc.kill()


def test_callers_are_authenticated_authorised_and_shown_their_view_only(kafka, setup):
    proc, access, files, ssn, other, school = setup
    url = f"{proc.base_url}/workers/{ssn}"
    before = on_event_topics(kafka.bootstrap)

    # faust's own pages (table values, routing, stats) are not served at all
    for page in ("/table/", "/table/worker-state/", f"/table/worker-state/{ssn}/", "/router/", "/graph/", "/stats/"):
        assert call("GET", proc.base_url + page, token=access.tokens["operator"])[0] == 404, page

    # 401: no token, an unknown token; nothing written
    for token in (None, "not-a-token"):
        assert call("GET", url, token=token)[0] == 401
        status, body = call("POST", proc.base_url + "/events", population(seed=62, workers=1)[:3], token=token)
        assert status == 401 and body["error"] == "unauthenticated"

    # 403: an organisation sending another's events; a worker reading another file;
    # an employer (ingest only) reading files; provenance and access log beyond one's audience
    foreign = [e for e in population(seed=63, workers=1) if e["source"] != school][:3]
    status, body = call("POST", proc.base_url + "/events", foreign, token=access.tokens["Vocational school"])
    assert status == 403 and body["indexes"] == [0, 1, 2]
    assert call("GET", f"{proc.base_url}/workers/{other}", token=access.tokens["the worker"])[0] == 403
    employer = next(name for name in access.tokens if name.startswith("src-"))
    assert call("GET", url, token=access.tokens[employer])[0] == 403
    assert call("POST", proc.base_url + "/events", foreign, token=access.tokens["Research integrator"])[0] == 403
    for name in ("Social insurance bureau", "Vocational school", "Research integrator"):
        assert call("GET", url + "/access-log", token=access.tokens[name])[0] == 403
        assert call("GET", url + "/events", token=access.tokens[name])[0] == 403
    assert on_event_topics(kafka.bootstrap) == before  # nothing refused was written

    # each caller sees its audience's view (deploy/views.toml)
    views, key = access.views, access.key
    assert call("GET", url, token=access.tokens["the worker"]) == (200, files[ssn])
    status, seen = call("GET", url, token=access.tokens["Social insurance bureau"], headers={"X-Purpose": quote("待遇核定")})
    assert status == 200 and seen == view_of(files[ssn], views["social_insurance"])
    status, seen = call("GET", url, token=access.tokens["Research integrator"])
    assert status == 200 and seen == view_of(files[ssn], views["integrator"], key=key)
    assert seen["pseudonym"] == pseudonym(ssn, key) and ssn not in orjson.dumps(seen).decode()
    trained = [n for n, f in files.items() if any(t["source"] == school for t in f["trainings"])]
    for number in files:
        status, seen = call("GET", f"{proc.base_url}/workers/{number}", token=access.tokens["Vocational school"])
        if number in trained:
            assert status == 200 and seen == view_of(files[number], views["training_institution"], org=school)
            assert {t["source"] for t in seen["trainings"]} == {school}
        else:  # a worker the school never trained: nothing of it
            assert status == 404

    # the worker sees who read the file, which view, why
    def logged():
        status, body = call("GET", url + "/access-log", token=access.tokens["the worker"])
        assert status == 200
        return body if {"Social insurance bureau", "Research integrator"} <= {e["caller"] for e in body["entries"]} else None
    log = wait_for(logged, 60, what="the reads in the access log")["entries"]
    bureau = [e for e in log if e["caller"] == "Social insurance bureau"]
    assert [(e["audience"], e["action"], e["purpose"], e["org"]) for e in bureau] == [
        ("social_insurance", "read_file", "待遇核定", BUREAU)]
    assert {"the worker", "operator"} <= {e["caller"] for e in log}
    assert all(e["ssn"] == ssn and e["at"] for e in log)
    assert "Vocational school" not in {e["caller"] for e in log} or ssn in trained
    # a refused read (403) is not a read: the worker reading another's file left no trace there
    status, body = call("GET", f"{proc.base_url}/workers/{other}/access-log", token=access.tokens["operator"])
    assert status == 200 and "the worker" not in {e["caller"] for e in body["entries"]}


def test_each_view_is_published_on_its_own_topic(kafka, setup):
    proc, access, files, ssn, other, school = setup
    views, key = access.views, access.key

    def latest(topic: str) -> dict[bytes, bytes | None]:
        return {r.key: r.value for r in read_topic(kafka.bootstrap, topic)}

    expected_social = {n.encode(): view_of(f, views["social_insurance"]) for n, f in files.items()}
    wait_for(lambda: {k: orjson.loads(v) for k, v in latest("worker-view-social-insurance").items()} == expected_social,
             60, what="the social-insurance view topic")
    pseudonymised = latest("worker-view-pseudonymised")
    assert {k: orjson.loads(v) for k, v in pseudonymised.items()} == {
        pseudonym(n, key).encode(): view_of(f, views["integrator"], key=key) for n, f in files.items()}
    raw = b"".join(k + (v or b"") for k, v in pseudonymised.items()).decode()
    for number, file in files.items():  # no number, legacy form or card number of anyone
        assert number not in raw and all(a not in raw for a in file["aliases"])
        assert number[:6] + number[8:17] not in raw
    school_topic = latest(f"worker-view-training.{school}")
    assert {k: orjson.loads(v) for k, v in school_topic.items() if v is not None} == {
        n.encode(): view_of(f, views["training_institution"], org=school)
        for n, f in files.items() if view_of(f, views["training_institution"], org=school)}
