"""GET /stats and the dashboard in a real headless Chromium (Debian's `chromium`): the page
loads from the project's server alone (every other host unresolvable), its charts carry
the live numbers of /stats, follow a change of the store, and a screenshot is saved to
build/test-artifacts/dashboard.png. No broker: the store is filled from the demo's
population (200 workers, seed 7) folded offline, its grants claimed, decided and paid by
bureaus (tests/services_population.py)."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest

from processors import stats as st
from processors.batch import fold_lines
from sinks.base import FileChange
from sinks.stats import open_stats_store
from sinks.stats_web import STATIC_DIR, make_server, serve_in_thread
from tests.services_population import service_events
from workerfile.population import generate_population

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("WORKERFILE_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]  # nothing but our server


@pytest.fixture(scope="module")
def chromium():
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (apt-get install chromium fonts-wqy-microhei; .ci/run does)")
    return CHROMIUM


def run_chromium(binary: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, "the page logged to the console:\n" + "\n".join(console)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def demo_files() -> list[dict]:
    items = generate_population(200, seed=7)
    lines = [i.encode() if isinstance(i, str) else orjson.dumps(i) for i in items]
    handling = service_events(fold_lines(lines).files())
    return fold_lines(lines + [orjson.dumps(e) for e in handling]).files()


@pytest.fixture(scope="module")
def served(tmp_path_factory, demo_files):
    path = str(tmp_path_factory.mktemp("dashboard") / "stats.sqlite3")
    with open_stats_store("sqlite", path) as filler:
        filler.apply([FileChange(f["ssn"], i, f) for i, f in enumerate(demo_files)], {0: len(demo_files)})
    store = open_stats_store("sqlite", path)
    server = make_server(store, "127.0.0.1", 0)
    serve_in_thread(server)
    try:
        yield server, path
    finally:
        server.shutdown()
        server.server_close()
        store.close()


def get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


class Charts(HTMLParser):
    """Every element with data-key inside an element with data-chart: {chart: {key: attrs}}."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__()
        self.stack: list[str | None] = []
        self.charts: dict[str, dict[str, dict]] = {}
        self.body: dict = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        chart = attrs.get("data-chart")
        current = next((c for c in reversed(self.stack) if c), None)
        if "data-key" in attrs and current:
            self.charts.setdefault(current, {})[attrs["data-key"]] = attrs
        if tag not in self.VOID:
            self.stack.append(chart)

    def handle_startendtag(self, tag, attrs):
        attrs = dict(attrs)
        current = next((c for c in reversed(self.stack) if c), None)
        if "data-key" in attrs and current:
            self.charts.setdefault(current, {})[attrs["data-key"]] = attrs

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()


def dump(binary: str, url: str) -> Charts:
    done = run_chromium(binary, "--window-size=1400,1800", "--virtual-time-budget=5000", "--dump-dom", url)
    parser = Charts()
    parser.feed(done.stdout)
    assert parser.body.get("data-ready") == "true", parser.body.get("data-error") or done.stdout[:2000]
    return parser


def values(chart: dict[str, dict], attr: str = "data-value", cast=int) -> dict[str, object]:
    return {k: cast(a[attr]) if a[attr] != "" else None for k, a in chart.items()}


# --- the server ----------------------------------------------------------------------------------

def test_stats_endpoint_answers_the_figures_as_json(served, demo_files):
    server, _ = served
    status, headers, body = get(server.url + "/stats")
    assert status == 200 and headers["Content-Type"] == "application/json"
    data = orjson.loads(body)
    meta = data.pop("meta")
    assert data == st.figures(st.recount(demo_files))
    assert meta["min_cell"] == 10 and meta["offsets"] == {"0": len(demo_files)}
    assert get(server.url + "/stats?min_cell=1")[2] and orjson.loads(get(server.url + "/stats?min_cell=1")[2])[
        "meta"]["min_cell"] == 10  # the threshold is not a request parameter
    assert get(server.url + "/nothing")[0] == 404
    assert get(server.url + "/healthz")[0] == 200


def test_dashboard_is_served_and_needs_nothing_from_outside(served):
    server, _ = served
    status, headers, page = get(server.url + "/dashboard")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    for path in re.findall(rb'(?:src|href)="([^"]+)"', page):
        if path == b"data:,":  # the empty favicon: no request at all
            continue
        assert path.startswith(b"/dashboard/"), path
        assert get(server.url + path.decode())[0] == 200
    for name in ("index.html", "dashboard.js", "dashboard.css"):
        text = (STATIC_DIR / name).read_text()
        assert not [u for u in re.findall(r"https?://[^\s\"')]+", text) if u != "http://www.w3.org/2000/svg"], name
        assert "@import" not in text and "url(" not in text


# --- in Chromium ---------------------------------------------------------------------------------

def test_charts_render_the_live_numbers(chromium, served, demo_files):
    server, path = served
    page = dump(chromium, server.url + "/dashboard")
    data = orjson.loads(get(server.url + "/stats")[2])
    charts = page.charts
    assert page.body["data-workers"] == str(data["workers"]) == "200"

    assert values(charts["skill_levels"]) == {r["level"]: r["workers"] for r in data["skill_levels"]}
    assert values(charts["regions"]) == {r["province"]: r["workers"] for r in data["regions"]}
    assert values(charts["occupation_major"]) == {r["major"]: r["workers"] for r in data["occupation_major"]}
    assert values(charts["craftsmen"]) == {r["level"]: r["count"] for r in data["craftsmen"]}
    assert values(charts["craftsmen"], "data-target") == {"national": 2000, "provincial": 10000, "city": 50000}
    assert values(charts["insurance"], cast=float) == {r["scheme"]: r["share"] for r in data["insurance"]}
    assert values(charts["insurance"], "data-count") == {r["scheme"]: r["insured"] for r in data["insurance"]}
    assert values(charts["training"]) == {q["quarter"]: q["hours"] for q in data["training"]["by_quarter"][-16:]}
    assert values(charts["dispatch"], cast=float) == {e["employer"]: e["share"] for e in data["dispatch"]["above_cap"]}
    assert float(charts["contracts"]["written_share"]["data-value"]) == data["contracts"]["written_share"]
    assert {k: int(v["data-value"]) for k, v in charts["contracts"].items() if k.startswith("type:")} == {
        "type:" + t["contract_type"]: t["employments"] for t in data["contracts"]["by_type"]}
    assert int(charts["subsidy"]["grants"]["data-value"]) == data["subsidy"]["grants"] == 160
    assert values(charts["subsidy_levels"]) == {r["level"]: r["grants"] for r in data["subsidy"]["by_level"]}
    kpis = values(charts["kpis"], cast=float)
    assert kpis["workers"] == 200 and kpis["grants"] == 160
    assert kpis["training_hours"] == data["training"]["total_hours"]
    assert kpis["dispatch_above_cap"] == len(data["dispatch"]["above_cap"])

    # the subsidy from grant to payment, and the open notices (contract section 9)
    subsidy, notices = data["subsidy"], data["notices"]
    assert values(charts["subsidy_stages"]) == {r["stage"]: r["grants"] for r in subsidy["stages"]}
    assert values(charts["subsidy_stages"], "data-amount") == {r["stage"]: r["amount_cny"] for r in subsidy["stages"]}
    assert [r["grants"] for r in subsidy["stages"]] == [160, 128, 32]
    status = values(charts["subsidy_status"])
    assert status.pop("double_claims_refused") == subsidy["double_claims_refused"] > 0
    assert status == {r["status"]: r["grants"] for r in subsidy["by_status"]}
    provinces = charts["subsidy_provinces"]
    assert list(provinces) == [r["province"] for r in subsidy["by_province"]] and len(provinces) >= 5
    for r in subsidy["by_province"]:
        row = provinces[r["province"]]
        assert [int(row[a]) for a in ("data-offered", "data-offered-cny", "data-claimed", "data-claimed-cny",
                                      "data-paid", "data-paid-cny", "data-double")] == [
            r["offered"], r["offered_cny"], r["claimed"], r["claimed_cny"], r["paid"], r["paid_cny"],
            r["double_claims_refused"]]
    assert values(charts["subsidy_cells"], "data-paid") == {
        f"{r['province']}|{r['level']}": r["paid"] for r in subsidy["by_province_level"]}
    codes = values(charts["notices_codes"])
    assert codes.pop("open") == notices["open"] > 0
    assert codes == {r["code"]: r["open"] for r in notices["by_code"]}
    assert values(charts["notices_provinces"]) == {r["province"]: r["open"] for r in notices["by_province"]}
    assert values(charts["notices_provinces"], "data-no-written-contract") == {
        r["province"]: r["no_written_contract"] for r in notices["by_province"]}
    assert list(charts["notices_employers"]) == [r["employer"] for r in notices["by_employer"][:15]]
    assert values(charts["notices_employers"], "data-platform-without-injury-cover") == {
        r["employer"]: r["platform_without_injury_cover"] for r in notices["by_employer"][:15]}

    # wage bands: the published cells only, each with its four percentiles
    scopes = data["wages"]["scopes"]
    by_level = {r["level"]: r for r in scopes["level"]["published"]}
    shown = charts["wages_level"]
    assert set(shown) == set(by_level) | {"all"} and len(by_level) >= 5
    for level, row in by_level.items():
        assert [int(shown[level][a]) for a in ("data-p25", "data-value", "data-p75", "data-p90", "data-workers")] == [
            row["p25"], row["p50"], row["p75"], row["p90"], row["workers"]]
        assert row["workers"] >= 10
    assert int(shown["all"]["data-value"]) == scopes["all"]["published"][0]["p50"]
    assert values(charts["wages_occupation"]) == {r["occupation_code"]: r["p50"] for r in scopes["occupation"]["published"]}
    cells = {f"{r['occupation_code']}|{r['level']}|{r['province']}": r["p50"] for r in scopes["cell"]["published"]}
    cells.update({f"{r['occupation_code']}|{r['level']}|all": r["p50"] for r in scopes["occupation_level"]["published"]})
    assert values(charts.get("wages_cells", {})) == cells


def test_the_page_follows_the_store(chromium, served, demo_files):
    server, path = served
    gone = demo_files[0]
    with open_stats_store("sqlite", path) as writer:  # another connection, as the consumer has
        writer.apply([FileChange(gone["ssn"], 10_000, None)], {0: 10_001})
    try:
        page = dump(chromium, server.url + "/dashboard")
        assert page.body["data-workers"] == "199"
        level = gone["highest_skill_level"] or "none"
        expected = {r["level"]: r["workers"] for r in st.figures(st.recount(demo_files[1:]))["skill_levels"]}
        assert values(page.charts["skill_levels"]) == expected
        assert values(page.charts["skill_levels"])[level] == {r["level"]: r["workers"] for r in st.figures(
            st.recount(demo_files))["skill_levels"]}[level] - 1
    finally:
        with open_stats_store("sqlite", path) as writer:
            writer.apply([FileChange(gone["ssn"], 10_002, gone)], {0: 10_003})


def test_screenshot_of_the_dashboard(chromium, served):
    server, _ = served
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / "dashboard.png"
    target.unlink(missing_ok=True)
    run_chromium(chromium, "--window-size=1400,3800", "--virtual-time-budget=5000", f"--screenshot={target}",
                 server.url + "/dashboard")
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 3800)  # the whole page, down to the subsidy and notice tables
    assert len(data) > 100_000  # charts and text, not a blank page
