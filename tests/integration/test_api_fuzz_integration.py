"""No 5xx, no full number, ever: generated requests (bodies, headers, paths, tokens,
methods) against every route of the HTTP API of one real stream worker on a real broker,
started once for the module, with a published population.

For every answer: never a 5xx; every 4xx is JSON with a reason (`{"error": ...,
"message": ...}`); no 18-character number of the population appears whole in any error
body (and no 15-digit legacy form standing alone). At the end, none appears in the
worker's log either. Also, by example: a batch of 1,000 events over 1 MiB is accepted,
an oversized body is a JSON 413, an instant in the year 1 is invalid_date (and the
provenance page keeps answering), and the bearer scheme in any case is accepted.

Bounded: at most ~150 generated requests per route, no deadline per example.
"""

from __future__ import annotations

import http.client
import json
import re
from urllib.parse import quote, urlencode

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.batch import fold_lines
from schemas.identity import make_ssn, mask_ssn
from streams.local_kafka import LocalKafka
from streams.runner import wait_for
from streams.topics import ensure_topics, load_topic_specs
from streams.web import MAX_BATCH, MAX_BODY
from tests.integration.api_access import Access, api_worker, call, ingest
from tests.integration.conftest import PARTITIONS
from workerfile.population import generate_population

pytestmark = pytest.mark.timeout(600)

EXAMPLES = 150
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])


# --- the worker, once for the module -----------------------------------------------------------

class Api:
    """The running worker, its callers, the population and its numbers."""

    def __init__(self, proc, access, events, files):
        self.proc, self.access, self.events, self.files = proc, access, events, files
        self.numbers = sorted({e["ssn"] for e in events})  # 18 characters
        self.legacy = [n[:6] + n[8:17] for n in self.numbers]
        self.host, self.port = "127.0.0.1", proc.web_port
        self.statuses: set[int] = set()  # of the answers since the last reset: the generation reached them

    def send(self, method: str, path: str, headers: dict | None = None, body: bytes | None = None,
             timeout: float = 60) -> tuple[int, dict, bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            raw = response.read()
            return response.status, dict(response.getheaders()), raw
        finally:
            connection.close()

    def check(self, method: str, path: str, headers: dict | None = None, body: bytes | None = None) -> tuple[int, bytes]:
        """Send, and check the invariants of every answer."""
        status, answer_headers, raw = self.send(method, path, headers, body)
        self.statuses.add(status)
        what = f"{method} {path[:200]} -> {status}: {raw[:300]!r}"
        assert status < 500, what
        if status >= 400:
            if method != "HEAD":  # (a HEAD answer has no body)
                assert answer_headers.get("Content-Type", "").startswith("application/json"), what
                error = json.loads(raw)
                assert isinstance(error, dict) and isinstance(error.get("error"), str) and error["error"], what
                assert isinstance(error.get("message"), str), what
            self.assert_no_number(raw.decode("utf-8", "replace"), what)
        return status, raw

    def assert_no_number(self, text: str, what: str) -> None:
        upper = text.upper()
        for number in self.numbers:
            assert number not in upper, f"{mask_ssn(number)} whole in {what.replace(number, mask_ssn(number))}"
        for legacy in self.legacy:
            assert not re.search(rf"(?<![0-9]){legacy}(?![0-9])", text), f"a legacy number whole in {what}"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api-fuzz")
    kafka = LocalKafka(data_dir=folder / "broker")
    kafka.start()
    proc = None
    try:
        ensure_topics(kafka.bootstrap, load_topic_specs("local", partitions=PARTITIONS))
        access = Access(folder / "access")
        events = [i for i in generate_population(4, seed=71, months=14, anomalies=False) if isinstance(i, dict)]
        files = {f["ssn"]: f for f in fold_lines([orjson.dumps(e) for e in events]).files()}
        first = sorted(files)[0]
        school = next(t["source"] for f in files.values() for t in f["trainings"])
        access.add("the worker", "worker", ssn=first)
        access.add("bureau", "social_insurance", org="11440300007542610F")
        access.add("school", "training_institution", org=school)
        access.add("integrator", "integrator")
        access.add_sources(events)
        proc = api_worker(kafka, folder, access, app_id="workerfile-api-fuzz")
        ingest(proc.base_url, access, events)
        for number, file in files.items():
            wait_for(lambda: call("GET", f"{proc.base_url}/workers/{number}", token=access.tokens["operator"])[1] == file,
                     120, what="every file over HTTP")
        api = Api(proc, access, events, files)
        yield api
        proc.stop()
        log = proc.log_text()
        assert log, "the worker wrote no log at all"  # (it always says something at start)
        api.assert_no_number(log, "the worker's log")
    finally:
        if proc is not None:
            proc.kill()
        kafka.stop()


# --- strategies ----------------------------------------------------------------------------------

def population_numbers(api: Api):
    return st.sampled_from(api.numbers)


def number_like(api: Api):
    """The population's numbers as they might be written (and mistyped), and other digits."""
    base = population_numbers(api)
    return st.one_of(
        base, base.map(str.lower), st.sampled_from(api.legacy),
        st.tuples(base, st.integers(0, 17), st.sampled_from("0123456789X")).map(lambda t: t[0][:t[1]] + t[2] + t[0][t[1] + 1:]),
        st.tuples(st.text("0123456789Xx-_ a", max_size=3), base, st.text("0123456789Xx-_ a", max_size=3)).map("".join),
        st.text("0123456789X", min_size=0, max_size=20),
        st.builds(lambda d: make_ssn(f"110105{d.year:04d}{d.month:02d}{d.day:02d}002"), st.dates()),
    )


def tokens(api: Api):
    return st.one_of(st.none(), st.sampled_from(sorted(api.access.tokens.values())),
                     st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=50))


LATIN1 = st.characters(min_codepoint=0x20, max_codepoint=0xff, blacklist_characters="\x7f")


def headers(api: Api):
    """Authorization in any form, X-Purpose (also not percent-encoded, not UTF-8), Content-Type."""
    authorization = st.one_of(
        st.none(),
        st.tuples(st.sampled_from(["Bearer", "bearer", "BEARER", "bEaReR", "Basic", "Token", ""]),
                  st.sampled_from([" ", "  ", "", "\t"]), tokens(api).map(lambda t: t or "")).map("".join),
        st.text(LATIN1, max_size=80),
    )
    purpose = st.one_of(st.none(), st.text(max_size=300).map(lambda t: quote(t)), st.text(LATIN1, max_size=100),
                        number_like(api))
    content_type = st.sampled_from([None, "application/json", "text/plain", "application/json; charset=gbk", ""])

    def build(auth, why, ctype):
        out = {}
        if auth is not None:
            out["Authorization"] = auth.strip(" \t")
        if why is not None:
            out["X-Purpose"] = why.strip(" \t")
        if ctype is not None:
            out["Content-Type"] = ctype
        return out
    return st.builds(build, authorization, purpose, content_type)


def json_values(api: Api):
    keys = st.one_of(st.text(max_size=12), number_like(api), st.sampled_from(
        ["type", "ssn", "payload", "occurred_at", "source", "event_id", "corrects", "ssn_legacy", "month", "hours"]))
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
                       st.text(max_size=30), number_like(api))
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                        max_leaves=12)


DATES = ["0001-01-01", "1879-12-31", "1880-01-01", "9998-12-31", "9999-12-31", "2024-02-30", "0000-01-01"]
INSTANTS = ["0001-01-01T00:00:00+08:00", "0001-01-01T00:00:00-08:00", "9999-12-31T23:59:59-08:00",
            "1879-12-31T23:59:59+08:00", "1880-01-01T00:00:00+08:00", "2024-06-01T09:00:00+08:00:30"]


def mutated_events(api: Api):
    """A population event with one thing changed: a field replaced by any value (an SSN
    as its value, its name, the type), extreme dates and instants, extra fields."""

    def mutate(event, where, key, value):
        event = json.loads(json.dumps(event))
        target = event if where == "envelope" or not isinstance(event.get("payload"), dict) else event["payload"]
        target[key] = value
        return event
    return st.builds(
        mutate, st.sampled_from(api.events),
        st.sampled_from(["envelope", "payload"]),
        st.one_of(st.sampled_from(["type", "ssn", "occurred_at", "event_id", "corrects", "source", "ssn_legacy",
                                   "start_date", "end_date", "issued_on", "month", "valid_until", "hours"]),
                  number_like(api), st.text(max_size=10)),
        st.one_of(number_like(api), st.sampled_from(DATES + INSTANTS), st.sampled_from(DATES).map(lambda d: d[:7]),
                  json_values(api)),
    )


def dumps(value) -> bytes:
    """As JSON (big integers, NaN and infinities too: the last two are not JSON, a 400)."""
    return json.dumps(value, ensure_ascii=bool(len(repr(value)) % 2)).encode("utf-8", "surrogatepass")


def bodies(api: Api):
    event_or_batch = st.one_of(mutated_events(api), st.lists(mutated_events(api), min_size=0, max_size=5))
    return st.one_of(
        event_or_batch.map(dumps),
        json_values(api).map(dumps),
        st.binary(max_size=200),
        st.sampled_from([b"", b"null", b"[]", b"{", b"\xff\xfe", b'"' + b"1" * 18 + b'"', b"[" + b"{}," * 1000 + b"{}]"]),
    )


def path_segments(api: Api):
    """An SSN path segment: as written, percent-encoded, or anything."""
    return st.one_of(population_numbers(api), st.sampled_from(api.legacy), number_like(api).map(lambda s: quote(s, safe="")),
                     st.text(max_size=30).map(lambda s: quote(s, safe="")))


def query(api: Api):
    return st.one_of(st.just(""), st.dictionaries(st.sampled_from(["purpose", "x", "ssn"]),
                                                  st.one_of(st.text(max_size=40), number_like(api)), max_size=2)
                     .map(lambda q: ("?" + urlencode(q)) if q else ""))


def source_headers(api: Api, event_or_events) -> dict:
    """The token of the source of (the first of) the events, when it has one."""
    first = event_or_events[0] if isinstance(event_or_events, list) and event_or_events else event_or_events
    source = first.get("source") if isinstance(first, dict) else None
    token = api.access.tokens.get(f"src-{source}") if isinstance(source, str) else None
    return {"Authorization": f"Bearer {token}"} if token else {}


# --- the routes ------------------------------------------------------------------------------------

def test_post_events(api):
    @FUZZ
    @given(data=st.data())
    def run(data):
        body = data.draw(bodies(api))
        chosen = data.draw(headers(api))
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            decoded = None
        if data.draw(st.booleans()):  # often as the events' own source, to get past 401/403 to the 422s
            chosen = {**chosen, **source_headers(api, decoded)}
        api.check("POST", "/events", chosen, body)
    api.statuses.clear()
    run()
    # a body that is not JSON from a known caller: the generated cases reach it only by
    # chance (a 401 comes first without a valid token), so once for certain as well
    api.check("POST", "/events", source_headers(api, api.events[0]), b"{not json")
    assert {400, 401, 403, 422} <= api.statuses, api.statuses


@pytest.mark.parametrize("route", ["", "/events", "/access-log"])
def test_get_a_workers_pages(api, route):
    readers = st.sampled_from([api.access.tokens[n] for n in ("operator", "the worker", "bureau", "school", "integrator")])

    @FUZZ
    @given(segment=path_segments(api), chosen=headers(api), q=query(api), token=tokens(api) | readers)
    def run(segment, chosen, q, token):
        if token is not None:
            chosen = {**chosen, "Authorization": f"Bearer {token}"}
        api.check("GET", f"/workers/{segment}{route}{q}", chosen)
    api.statuses.clear()
    run()
    # a malformed number from a caller who may read it: the generated cases reach it only
    # by chance (the tokens, and so their order, are new each run), so once for certain too
    status, _ = api.check("GET", f"/workers/{quote(api.numbers[0][:17], safe='')}{route}",
                          {"Authorization": f"Bearer {api.access.tokens['operator']}"})
    assert status == 400
    assert {200, 400, 401, 403} <= api.statuses, api.statuses


def test_openapi_unknown_paths_and_wrong_methods(api):
    routes = ["/events", "/workers/{ssn}", "/workers/{ssn}/events", "/workers/{ssn}/access-log", "/openapi.json",
              "/me", "/me/file"]
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]

    @FUZZ
    @given(route=st.sampled_from(routes), method=st.sampled_from(methods), segment=path_segments(api),
           extra=st.one_of(st.just(""), st.just("/"), st.just("//"),
                           st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=15)
                           .map(lambda s: "/" + quote(s, safe="/"))),
           chosen=headers(api), body=st.one_of(st.none(), st.binary(max_size=50)))
    def run(route, method, segment, extra, chosen, body):
        api.check(method, route.replace("{ssn}", segment) + extra, chosen, body)
    api.statuses.clear()
    run()
    assert {401, 404, 405} <= api.statuses, api.statuses


# --- by example --------------------------------------------------------------------------------------

def test_a_thousand_events_over_a_mebibyte_are_accepted_and_an_oversized_body_is_a_json_413(api):
    template = next(e for e in api.events if e["type"] == "training.enrolled")
    org = template["source"]
    batch = [{**template, "event_id": f"big-{i:04d}-" + "x" * 100,
              "payload": {**template["payload"]}} for i in range(MAX_BATCH)]
    for event in batch:  # realistic names: Chinese text, as long as sources write them
        for field in ("program_name", "title"):
            if field in event["payload"]:
                event["payload"][field] = "高级数控车床操作与维护技能提升培训班" * 20
    body = orjson.dumps(batch)
    assert len(body) > 1024 * 1024
    token = {"Authorization": f"bearer {api.access.tokens[f'src-{org}']}"}  # the scheme in lower case, too
    status, raw = api.check("POST", "/events", token, body)
    assert status == 202, raw[:300]
    assert len(orjson.loads(raw)["accepted"]) == MAX_BATCH
    status, raw = api.check("POST", "/events", token, b"[" + b" " * MAX_BODY + b"]")
    assert status == 413 and json.loads(raw)["error"] == "too_large"


def test_an_instant_in_the_year_one_is_invalid_date_and_the_pages_keep_answering(api):
    number = api.numbers[0]
    event = next(e for e in api.events if e["ssn"] == number)
    token = api.access.tokens[f"src-{event['source']}"]
    for occurred_at in ("0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00"):
        status, raw = api.check("POST", "/events", {"Authorization": f"Bearer {token}"},
                                orjson.dumps({**event, "event_id": "year-one", "occurred_at": occurred_at}))
        assert status == 422 and [e["reason"] for e in json.loads(raw)["errors"]] == ["invalid_date"]
    operator = {"Authorization": f"Bearer {api.access.tokens['operator']}"}
    for page in ("", "/events", "/access-log"):
        assert api.check("GET", f"/workers/{number}{page}", operator)[0] == 200


def test_a_number_used_as_a_field_name_or_a_type_is_masked_in_the_422(api):
    number = api.numbers[0]
    event = next(e for e in api.events if e["ssn"] == number)
    source = event["source"]
    token = {"Authorization": f"Bearer {api.access.tokens['src-' + source]}"}
    for bad in ({**event, number: 1}, {**event, "payload": {**event["payload"], number: 1}}, {**event, "type": number},
                {**event, "ssn": number[:-1] + "0" if number[-1] != "0" else number[:-1] + "1"}):
        status, raw = api.check("POST", "/events", token, orjson.dumps([bad]))
        assert status == 422 and mask_ssn(number)[:6] in raw.decode()


def test_trailing_slashes_and_unknown_paths_are_json_404s(api):
    operator = {"Authorization": f"Bearer {api.access.tokens['operator']}"}
    for path in (f"/workers/{api.numbers[0]}/", "/events/", "/openapi.json/", "/nowhere", "/workers/", "/workers",
                 f"/workers/{api.numbers[0]}/events/", f"/{api.numbers[0]}"):  # ("/" is faust's index: 200 {"status": "OK"})
        status, raw = api.check("GET", path, operator)
        assert status == 404 and json.loads(raw)["error"] == "not_found"
    status, raw = api.check("DELETE", "/events", operator)
    assert status == 405 and json.loads(raw)["error"] == "method_not_allowed"
