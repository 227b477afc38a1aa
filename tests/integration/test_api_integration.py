"""The HTTP API of the stream workers against a real broker: ingestion (202 / 400 / 422 /
503), the file and its provenance (200 / 400 / 404), routing between two workers, and no
loss while the broker is briefly unavailable."""

from __future__ import annotations

import json
import threading
import time

import orjson
import pytest

from processors.batch import fold_lines
from processors.identity import make_ssn
from streams.local_kafka import LocalKafka
from streams.reader import read_topic
from streams.runner import wait_for
from streams.topics import ensure_topics, load_topic_specs
from streams.web import provenance
from tests.integration.api_access import Access, api_worker, call as call_as, ingest
from tests.integration.conftest import PARTITIONS
from workerfile.population import generate_population

pytestmark = pytest.mark.timeout(420)


def one_worker_events(seed: int = 21) -> list[dict]:
    items = generate_population(3, seed=seed, months=14, anomalies=False, shuffle=False)
    return [i for i in items if isinstance(i, dict)]


@pytest.fixture
def access(tmp_path):
    """Callers: an operator (reads any file) and a caller per source organisation."""
    return Access(tmp_path / "access")


@pytest.fixture
def running(kafka, tmp_path, access):
    proc = api_worker(kafka, tmp_path, access)
    yield proc
    proc.kill()


@pytest.fixture
def call(access):
    """HTTP calls as the operator."""
    return lambda method, url, body=None, **kw: call_as(method, url, body, token=access.tokens["operator"], **kw)


def test_ingest_then_read_the_file_and_its_provenance(kafka, running, access, call):
    events = one_worker_events()
    assert sorted(ingest(running.base_url, access, events)) == sorted(e["event_id"] for e in events)
    batch = fold_lines([orjson.dumps(e) for e in events])
    for file in batch.files():
        url = f"{running.base_url}/workers/{file['ssn']}"
        got = wait_for(lambda: (r := call("GET", url)) and r[0] == 200 and r[1] == file and r[1], 90,
                       what="the file over HTTP")
        assert got == file
        status, prov = call("GET", url + "/events")
        assert status == 200
        expected = provenance(batch.states[file["ssn"]])
        assert [e["event_id"] for e in prov["events"]] == [e["event_id"] for e in expected]
        assert all(e["source"] and e["type"] for e in prov["events"])
        assert len(prov["events"]) == file["applied_events"]
    # the same events again: accepted (202) and harmless
    assert len(ingest(running.base_url, access, events)) == len(events)


def test_a_batch_with_one_invalid_event_is_refused_whole_with_the_exact_error(kafka, running, access):
    events = one_worker_events(seed=22)[:5]
    org = events[0]["source"]
    events = [e | {"source": org} for e in events]  # one organisation's batch
    access.add_sources(events)
    bad = {**events[3], "payload": {**events[3]["payload"]}}
    bad["payload"].pop(next(iter(bad["payload"])))  # a required payload field is missing
    status, body = call_as("POST", running.base_url + "/events", events[:3] + [bad] + events[4:],
                           token=access.tokens[f"src-{org}"])
    assert status == 422
    [error] = body["errors"]
    assert error["index"] == 3 and error["reason"] == "schema"
    assert error["field"].startswith("payload.")
    assert sum(len(read_topic(kafka.bootstrap, t)) for t in
               ("training-events", "employment-events", "insurance-events", "certification-events")) == 0


def test_bad_requests_get_clear_errors(kafka, running, call):
    assert call("POST", running.base_url + "/events", b"{not json")[0] == 400
    status, body = call("GET", running.base_url + "/workers/11010519491231002Y")
    assert status == 400 and body["error"] == "invalid_ssn"
    assert "11010519491231002Y" not in json.dumps(body)
    status, body = call("GET", running.base_url + "/workers/11010519491231002X")
    assert status == 404 and body["error"] == "not_found"
    assert "11010519491231002X" not in json.dumps(body)


def test_the_legacy_number_finds_the_same_file(kafka, running, access, call):
    legacy_holder = make_ssn("13050319670401001")
    population = one_worker_events(seed=23)
    events = [e | {"ssn": legacy_holder} for e in population if e["ssn"] == population[0]["ssn"]]
    ingest(running.base_url, access, events)
    legacy = legacy_holder[:6] + legacy_holder[8:17]
    wait_for(lambda: call("GET", f"{running.base_url}/workers/{legacy_holder}")[0] == 200, 90, what="file")
    assert call("GET", f"{running.base_url}/workers/{legacy}") == call("GET", f"{running.base_url}/workers/{legacy_holder}")


def test_any_of_two_workers_answers_for_any_worker(kafka, tmp_path, request, access, call):
    first = api_worker(kafka, tmp_path, access, "one")
    request.addfinalizer(first.kill)
    second = api_worker(kafka, tmp_path, access, "two")
    request.addfinalizer(second.kill)
    items = [i for i in generate_population(12, seed=24, months=6, anomalies=False) if isinstance(i, dict)]
    ingest(first.base_url, access, items)
    expected = {f["ssn"]: f for f in fold_lines([orjson.dumps(i) for i in items]).files()}
    for ssn, file in expected.items():
        for proc in (first, second):
            wait_for(lambda: call("GET", f"{proc.base_url}/workers/{ssn}")[1] == file, 240,  # two workers rebalancing
                     what="the file from either worker")
    # the access log too, asked once of each (no waiting): every read on worker-access-log
    # up to the request, so the second answer is the first plus the first's own read
    for ssn in expected:
        status, one = call("GET", f"{first.base_url}/workers/{ssn}/access-log")
        assert status == 200 and sum(e["action"] == "read_file" for e in one["entries"]) >= 2
        status, two = call("GET", f"{second.base_url}/workers/{ssn}/access-log")
        assert status == 200 and two["entries"][:-1] == one["entries"]
        assert two["entries"][-1]["action"] == "read_access_log"


def test_nothing_answered_202_is_lost_when_the_broker_is_briefly_down(tmp_path, request, access, call):
    kafka = LocalKafka(data_dir=tmp_path / "broker")
    kafka.start()
    try:
        ensure_topics(kafka.bootstrap, load_topic_specs("local", partitions=PARTITIONS))
        proc = api_worker(kafka, tmp_path, access)
        request.addfinalizer(proc.kill)
        org = one_worker_events(seed=25)[0]["source"]
        events = [e | {"source": org} for e in one_worker_events(seed=25)]  # one organisation's events
        access.add_sources(events)
        source_call = lambda *a, **kw: call_as(*a, token=access.tokens[f"src-{org}"], **kw)  # noqa: E731
        kafka.stop()
        restarted = threading.Timer(8, kafka.start)
        restarted.start()
        started = time.monotonic()
        status, body = source_call("POST", proc.base_url + "/events", events, timeout=120)
        restarted.join()
        if status == 202:
            assert time.monotonic() - started > 5  # it waited for the broker instead of failing
            on_topics = {r.value for t in ("training-events", "employment-events", "insurance-events",
                                           "certification-events") for r in read_topic(kafka.bootstrap, t)}
            assert len(on_topics) >= len(events)
        else:  # a 503 tells the source to send again: nothing was accepted
            assert status == 503 and body["error"] == "unavailable"
            assert source_call("POST", proc.base_url + "/events", events)[0] == 202
        expected = fold_lines([orjson.dumps(e) for e in events]).files()
        for file in expected:
            wait_for(lambda: call("GET", f"{proc.base_url}/workers/{file['ssn']}")[1] == file, 120,
                     what="the file after the outage")
    finally:
        kafka.stop()
