"""The API's error answers without a broker: the middleware `streams.web.json_errors` on
an aiohttp application of its own (every 4xx/5xx JSON with a reason, no whole number in
it), the bounded body reader (413), and the case-insensitive bearer scheme."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp import web as aioweb
from aiohttp.test_utils import TestClient, TestServer

from schemas.identity import mask_ssn
from streams import web
from streams.access import Callers, add_caller, load_views
from tests.conftest import SOURCE, SSN_A

LEGACY = SSN_A[:6] + SSN_A[8:17]


async def _boom(request):
    raise ValueError(f"the number {SSN_A} broke it")


async def _echo_error(request):  # a view echoing input in its error, as pydantic does
    return aioweb.json_response({"error": "invalid_events", "errors": [
        {"index": 0, "reason": "schema", "field": f"payload.{SSN_A}", "message": f"payload.{SSN_A}: unknown field"},
        {"index": 1, "reason": "unknown_type", "field": "type", "message": f"unknown event type '{LEGACY}'"}],
        "message": "nothing was sent", SSN_A: [f"\n{SSN_A}"]}, status=422)


async def _plain_error(request):
    return aioweb.Response(status=409, text=f"conflict over {SSN_A}")


async def _file(request):  # a success: the number is the data asked for
    return aioweb.json_response({"ssn": SSN_A})


async def _body(request):
    try:
        data = await web.read_body(request, limit=1000)
    except web.TooLarge:
        return web.too_large(1000)
    return aioweb.json_response({"size": len(data)})


async def _answers(requests):
    app = aioweb.Application(middlewares=[web.json_errors])
    for path, handler in (("/boom", _boom), ("/echo", _echo_error), ("/plain", _plain_error), ("/file", _file)):
        app.router.add_get(path, handler)
    app.router.add_post("/body", _body)
    app.router.add_get("/workers/{ssn}", _file)
    out = []
    async with TestClient(TestServer(app)) as client:
        for method, path, kwargs in requests:
            response = await client.request(method, path, **kwargs)
            out.append((response.status, response.headers, await response.read()))
    return out


def answer(method, path, **kwargs):
    [(status, headers, raw)] = asyncio.run(_answers([(method, path, kwargs)]))
    return status, headers, raw


def error_of(raw: bytes) -> dict:
    body = orjson.loads(raw)
    assert isinstance(body["error"], str) and body["error"] and isinstance(body["message"], str)
    return body


@pytest.mark.parametrize("path", ["/nowhere", "/workers/", f"/workers/{SSN_A}/", "/file/", "/", f"/{SSN_A}"])
def test_an_unknown_path_or_a_trailing_slash_is_a_json_404(path):
    status, headers, raw = answer("GET", path)
    assert status == 404 and headers["Content-Type"].startswith("application/json")
    assert error_of(raw)["error"] == "not_found" and SSN_A not in raw.decode()


def test_a_wrong_method_is_a_json_405_that_says_the_allowed_ones():
    status, headers, raw = answer("DELETE", "/file")
    assert status == 405 and error_of(raw)["error"] == "method_not_allowed" and "GET" in headers["Allow"]


def test_an_unforeseen_exception_is_a_json_500_without_the_number():
    status, _, raw = answer("GET", "/boom")
    assert status == 500 and error_of(raw) == {"error": "internal", "message": "the request failed: ValueError"}


def test_every_number_echoed_in_an_error_body_is_masked_keys_too():
    status, _, raw = answer("GET", "/echo")
    text = raw.decode()
    assert status == 422 and SSN_A not in text and LEGACY not in text
    body = error_of(raw)
    assert body["errors"][0]["field"] == f"payload.{mask_ssn(SSN_A)}"
    assert body[mask_ssn(SSN_A)] == [f"\n{mask_ssn(SSN_A)}"]
    status, _, raw = answer("GET", "/plain")
    assert status == 409 and error_of(raw) == {"error": "http_409", "message": f"conflict over {mask_ssn(SSN_A)}"}


def test_a_success_is_left_as_it_is():
    status, _, raw = answer("GET", "/file")
    assert status == 200 and orjson.loads(raw) == {"ssn": SSN_A}


def test_a_body_over_the_limit_is_a_json_413_with_or_without_a_length():
    assert answer("POST", "/body", data=b"x" * 1000)[0] == 200
    status, _, raw = answer("POST", "/body", data=b"x" * 1001)
    assert status == 413 and error_of(raw)["error"] == "too_large"

    async def chunks():  # no Content-Length: chunked
        for _ in range(5):
            yield b"y" * 300
    status, headers, raw = answer("POST", "/body", data=chunks())
    assert status == 413 and error_of(raw)["error"] == "too_large"


def test_the_api_body_limit_takes_a_thousand_large_events():
    """1000 events of 16 KiB each: more than any realistic event (a typical one is < 1 KiB)."""
    assert web.MAX_BODY >= web.MAX_BATCH * 16 * 1024


def test_the_bearer_scheme_is_case_insensitive_and_tokens_are_ascii(tmp_path):
    views = load_views()
    path = tmp_path / "callers.toml"
    token = add_caller(path, views, "ops", "operator", org=SOURCE)
    callers = Callers.load(path, views)
    for header in (f"Bearer {token}", f"bearer {token}", f"BEARER {token}", f"bEaReR  {token} ", f" Bearer {token}"):
        assert callers.authenticate(header).name == "ops", header
    for header in (f"Bearer{token}", f"Basic {token}", "bearer ", f"Bearer {token}\udcff", "Bearer \udcff",
                   f"Bearer {token[:-1]}é", f"Token {token}"):
        assert callers.authenticate(header) is None, header


def test_a_purpose_without_a_utf8_form_is_kept_readable():
    from streams.access import Caller
    entry = web.access_entry(SSN_A, Caller("ops", "operator", SOURCE), "read_file", "review \udcff")
    assert entry["purpose"] == "review ?"
    orjson.dumps(entry)
