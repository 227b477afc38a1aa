"""Helpers of the API integration tests: a callers file with a token per caller, a
pseudonym key, HTTP calls with a token, and a stream worker serving the API with them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

import orjson

from streams.access import add_caller, load_views, write_pseudonym_key
from streams.local_kafka import free_ports
from streams.runner import WorkerProcess, wait_for
from streams.topics import provision
from tests.integration.conftest import PARTITIONS, topics_profile

OPERATOR_ORG = "914403001922038216"  # a contract vector


class Access:
    """A callers file and pseudonym key in `folder`; `token(name)` of each caller added."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.callers_file = folder / "callers.toml"
        self.key_file = folder / "pseudonym.key"
        write_pseudonym_key(self.key_file)
        self.views = load_views()
        self.tokens: dict[str, str] = {}
        self.add("operator", "operator", org=OPERATOR_ORG)

    def add(self, name: str, audience: str, org: str | None = None, ssn: str | None = None) -> str:
        self.tokens[name] = add_caller(self.callers_file, self.views, name, audience, org=org, ssn=ssn)
        return self.tokens[name]

    @property
    def key(self) -> bytes:
        return self.key_file.read_bytes().strip()

    @property
    def env(self) -> dict[str, str]:
        return {"WORKERFILE_API_TOKENS": str(self.callers_file), "WORKERFILE_PSEUDONYM_KEY_FILE": str(self.key_file)}

    def add_sources(self, events) -> None:
        """A caller (ingest only) for every organisation that is the source of some event."""
        for org in sorted({e["source"] for e in events if isinstance(e, dict)}):
            if f"src-{org}" not in self.tokens:
                self.add(f"src-{org}", "employer", org=org)


def call(method: str, url: str, body=None, token: str | None = None, timeout: float = 60,
         headers: dict | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _body(response.read())
    except urllib.error.HTTPError as err:
        return err.code, _body(err.read())


def _body(raw: bytes):
    try:
        return json.loads(raw or b"null")
    except ValueError:  # not JSON (aiohttp's own 404 page, say)
        return {"text": raw.decode(errors="replace")}


def ingest(base_url: str, access: Access, events: list[dict]) -> list[str]:
    """POST the events, each source's with its own token (a caller may only send its own)."""
    access.add_sources(events)
    by_source = defaultdict(list)
    for e in events:
        by_source[e["source"]].append(e)
    accepted = []
    for org, group in by_source.items():
        status, body = call("POST", base_url + "/events", group, token=access.tokens[f"src-{org}"])
        assert status == 202, body
        accepted += body["accepted"]
    return accepted


def api_worker(kafka, folder: Path, access: Access, name: str = "api", app_id: str = "workerfile-api") -> WorkerProcess:
    """A stream worker serving the API on a free port, ready to route requests (the
    changelog topics of its application id created first, as `workerfile topics --app-id`)."""
    provision(kafka.bootstrap, app_id, PARTITIONS, profile=topics_profile(kafka))
    [port] = free_ports(1)
    proc = WorkerProcess(kafka.bootstrap, app_id, folder / name, partitions=PARTITIONS, web_port=port,
                         env=access.env).start()
    operator = access.tokens["operator"]
    try:
        wait_for(lambda: _answers(proc, operator), 90, interval=1, what="the HTTP API")
    except BaseException:
        proc.kill()
        raise
    return proc


def _answers(proc: WorkerProcess, token: str) -> bool:
    """Ready when it can route a lookup (404 for nobody), not just when it listens."""
    try:
        return call("GET", proc.base_url + "/workers/11010519491231002X", token=token, timeout=5)[0] == 404
    except OSError:
        return False
