"""The worker's own page, GET /me, in a real headless Chromium (Debian's `chromium`, as
the dashboard's test; every host but 127.0.0.1 unresolvable) against a real broker and
stream worker serving the API: a generated worker's career sent with POST /events, its
first subsidy grant claimed, approved and paid by a bureau, and a platform job without a
written contract (two open notices); the worker's token given to
the page as a link's fragment (`/me#token=...`, what a bureau could send the worker), which
the page moves to sessionStorage. The page shows the file in plain words — the number
masked, the skill ladder with the highest level, months per scheme, the grant's status
and amount, who read the file — and without a token only the prompt, no data. A
screenshot is saved to build/test-artifacts/me.png (WORKERFILE_TEST_ARTIFACTS) and the
test's tmp dir."""

from __future__ import annotations

import struct
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest

from processors.identity import mask_ssn
from processors.stats import LEVEL_NAMES, LEVELS, NOTICE_NAMES, SCHEMES, STATUS_NAMES
from streams.runner import wait_for
from tests.conftest import BUREAU, EMPLOYER_A, make_event
from tests.integration.api_access import Access, api_worker, call, ingest
from tests.integration.conftest import expected_files
from tests.services_population import service_events
from tests.sinks.test_stats_dashboard import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS
from workerfile.population import generate_population


@pytest.fixture(scope="module")
def chromium():
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (apt-get install chromium fonts-wqy-microhei; .ci/run does)")
    return CHROMIUM


def run_chromium(binary: str, *args: str, quiet_console: bool = True) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:  # a fresh browser: no session kept
        done = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    if quiet_console:  # no script error, no CSP violation
        console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
        assert not console, "the page logged to the console:\n" + "\n".join(console)
    return done


class Page(HTMLParser):
    """The DOM as Chromium dumped it: the body's attributes, every element with data-field
    (text) and data-row (attributes and text), and all the text."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, dom: str):
        super().__init__()
        self.body: dict = {}
        self.fields: dict[str, str] = {}
        self.rows: list[dict] = []
        self.hidden: set[str] = set()
        self.text: list[str] = []
        self.open: list[tuple[str, dict, list[str]]] = []
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        if "id" in attrs and "hidden" in attrs:
            self.hidden.add(attrs["id"])
        if tag not in self.VOID:
            self.open.append((tag, attrs, []))

    def handle_endtag(self, tag):
        if tag in self.VOID or not self.open:
            return
        _, attrs, parts = self.open.pop()
        text = " ".join(" ".join(parts).split())
        if self.open:
            self.open[-1][2].append(text)
        if "data-field" in attrs:
            self.fields[attrs["data-field"]] = text
        if "data-row" in attrs:
            self.rows.append({**attrs, "text": text})

    def handle_data(self, data):
        self.text.append(data)
        if self.open:
            self.open[-1][2].append(data)

    def of(self, kind: str) -> list[dict]:
        return [r for r in self.rows if r["data-row"] == kind]


def dump(binary: str, url: str, quiet_console: bool = True) -> tuple[Page, str]:
    done = run_chromium(binary, "--window-size=1200,2400", "--virtual-time-budget=10000", "--dump-dom", url,
                        quiet_console=quiet_console)
    return Page(done.stdout), done.stdout


def test_the_workers_own_page(kafka, tmp_path, chromium):
    items = generate_population(6, seed=11, anomalies=False)
    files = expected_files(items)
    ssn, file = next((n, f) for n, f in sorted(files.items())
                     if f["services"]["skill_upgrade_subsidy"] and f["card"] and f["insurance"] and f["trainings"])
    platform_job = make_event("employment.started", ssn=ssn, source=EMPLOYER_A, occurred_at="2026-05-01T09:00:00+08:00",
                              payload={"employer": EMPLOYER_A, "contract_type": "platform", "written_contract": False,
                                       "start_date": "2026-05-01", "region": "440305"})
    mine = [e for e in items if e["ssn"] == ssn] + [platform_job]  # a job without a contract: two notices
    handling = service_events([file], steps=("paid", "claimed"))  # the first grant paid, a second one claimed
    expected = expected_files(mine + handling)[ssn]
    grant = expected["services"]["skill_upgrade_subsidy"][0]
    assert {n["code"] for n in expected["services"]["notices"]} == {"no_written_contract", "platform_without_injury_cover"}
    assert grant["status"] == "paid" and grant["payments"][0]["amount_cny"] == grant["amount_cny"] > 0

    access = Access(tmp_path / "access")
    worker_token = access.add("本人 worker", "worker", ssn=ssn)
    bureau = access.add("社保局 bureau", "social_insurance", org=BUREAU)
    proc = api_worker(kafka, tmp_path, access, app_id="workerfile-me")
    try:
        ingest(proc.base_url, access, mine)
        status, body = call("POST", proc.base_url + "/events", handling, token=bureau)
        assert status == 202, body
        operator = access.tokens["operator"]
        wait_for(lambda: call("GET", f"{proc.base_url}/workers/{ssn}?purpose=benefit-review", token=operator)[1]
                 == expected, 180, interval=2, what="the worker's file with the grant paid")

        # GET /me/file: the token's own number only; JSON errors without a number in them
        status, body = call("GET", proc.base_url + "/me/file")
        assert status == 401 and body["error"] == "unauthenticated"
        status, body = call("GET", proc.base_url + "/me/file", token=operator)
        assert status == 403 and body["error"] == "forbidden" and "worker" in body["message"]
        assert call("GET", proc.base_url + "/me/file", token=worker_token) == (200, expected)
        status, raw = call("GET", proc.base_url + "/me")  # the page itself is public and holds no data
        assert status == 200 and ssn not in raw["text"] and "sessionStorage" in raw["text"]

        # with the token: the file in plain words
        page, dom = dump(chromium, f"{proc.base_url}/me#token={worker_token}")
        assert page.body.get("data-state") == "ready", page.body
        assert ssn not in dom and worker_token not in dom  # the number masked, the token not echoed
        assert page.fields["ssn"] == page.fields["ssn_masked"] == mask_ssn(ssn)
        assert page.fields["birth_date"] == expected["birth_date"]
        assert page.fields["card_no"] == expected["card"]["card_no"]
        assert page.fields["training_hours_total"].startswith(f"{expected['training_hours']:,}")
        assert sorted((r["data-program"], int(r["data-hours"])) for r in page.of("training")) == sorted(
            (t["program_id"], t["hours"]) for t in expected["trainings"])
        # the eight-level ladder, the highest level marked
        steps = page.of("ladder")
        assert [r["data-level"] for r in steps] == list(LEVELS)
        highest = expected["highest_skill_level"]
        marked = [r for r in steps if r["data-highest"] == "true"]
        assert [r["data-level"] for r in marked] == [highest] and LEVEL_NAMES[highest][0] in marked[0]["text"]
        assert marked[0]["data-held"] == "true"
        assert page.fields["highest_skill_level"].startswith(LEVEL_NAMES[highest][0])
        assert {r["data-no"]: r["data-level"] for r in page.of("certificate")} == {
            c["certificate_no"]: c["level"] or "" for c in expected["certificates"]}
        # insurance: months per scheme
        assert {r["data-scheme"]: int(r["data-months"]) for r in page.of("insurance")} == {
            s["scheme"]: s["months_contributed"] for s in expected["insurance"]}
        for r in page.of("insurance"):
            assert SCHEMES[r["data-scheme"]][0] in r["text"]
        # each grant with its status in plain words, amount and deadline
        grants = {r["data-service-id"]: r for r in page.of("grant")}
        assert set(grants) == {g["service_id"] for g in expected["services"]["skill_upgrade_subsidy"]}
        for g in expected["services"]["skill_upgrade_subsidy"]:
            row = grants[g["service_id"]]
            assert (row["data-status"], int(row["data-amount"]), row["data-apply-by"]) == (
                g["status"], g["amount_cny"], g["apply_by"])
            assert STATUS_NAMES[g["status"]][0] in row["text"] and f"¥{g['amount_cny']:,}" in row["text"]
            assert g["apply_by"] in row["text"]
        assert "已发放" in grants[grant["service_id"]]["text"] and "Paid" in grants[grant["service_id"]]["text"]
        notices = page.of("notice")
        assert {(r["data-code"], r["data-employer"]) for r in notices} == {
            (n["code"], n["employer"]) for n in expected["services"]["notices"]}
        assert all(NOTICE_NAMES[r["data-code"]][0] in r["text"] and "2026-05-01" in r["text"] for r in notices)
        assert [r["data-employer"] for r in page.of("employment")] == [
            e["employer"] for e in reversed(expected["employments"])]
        # who read the file: the operator (why: benefit-review) and the worker's own reads
        log = page.of("access")
        assert any(r["data-audience"] == "operator" and "benefit-review" in r["text"] for r in log)
        own = [r for r in log if r["data-audience"] == "worker"]
        assert own and all(r["data-caller"] == "本人 worker" for r in own)
        assert any(r["data-action"] == "read_file" and "本人查阅" in r["text"] for r in own)  # the page's own read

        # without a token: the prompt, and nothing of the file
        page, dom = dump(chromium, f"{proc.base_url}/me")
        assert page.body.get("data-state") == "prompt", page.body
        assert "prompt" not in page.hidden and "file" in page.hidden
        assert page.rows == [] and page.fields.get("ssn", "") == ""
        assert ssn not in dom and mask_ssn(ssn) not in dom and expected["card"]["card_no"] not in dom
        # a token that is no caller's: the prompt again, saying so (the browser logs the 401)
        page, dom = dump(chromium, f"{proc.base_url}/me#token=not-a-token", quiet_console=False)
        assert page.body.get("data-state") == "prompt" and "prompt-error" not in page.hidden
        assert "The token was not accepted" in dom and page.rows == []

        # a screenshot, as a test artifact
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for target in (ARTIFACTS / "me.png", tmp_path / "me.png"):
            target.unlink(missing_ok=True)
            run_chromium(chromium, "--window-size=1200,3000", "--virtual-time-budget=10000",
                         f"--screenshot={target}", f"{proc.base_url}/me#token={worker_token}")
            data = target.read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == (1200, 3000)
            assert len(data) > 100_000  # text and tables, not a blank page
    finally:
        proc.kill()
