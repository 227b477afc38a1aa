"""`workerfile stats` as real subprocesses (no broker): the table shows the figures, the
same from the live store as from a recount of the files, `--json` is the body of GET
/stats, `serve` answers and stops on SIGTERM, and bad options fail clearly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from processors import stats as st
from processors.batch import fold_lines
from sinks.base import FileChange
from sinks.stats import open_stats_store
from streams.local_kafka import free_ports
from workerfile.population import generate_population

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "workerfile.cli"]


def env() -> dict:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), out.get("PYTHONPATH")) if p)
    out.pop("WORKERFILE_STATS_MIN_CELL", None)
    out.pop("WORKERFILE_STATS_DB", None)
    return out


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], input=stdin, capture_output=True, timeout=120, env=env(), cwd=ROOT)


@pytest.fixture(scope="module")
def files() -> list[dict]:
    items = generate_population(60, seed=13)
    return fold_lines([i.encode() if isinstance(i, str) else orjson.dumps(i) for i in items]).files()


@pytest.fixture(scope="module")
def files_jsonl(tmp_path_factory, files) -> Path:
    path = tmp_path_factory.mktemp("stats") / "files.jsonl"
    path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in files))
    return path


@pytest.fixture(scope="module")
def db(tmp_path_factory, files) -> str:
    path = str(tmp_path_factory.mktemp("stats") / "stats.sqlite3")
    with open_stats_store("sqlite", path) as store:
        for i in range(0, len(files), 25):
            store.apply([FileChange(f["ssn"], n, f) for n, f in enumerate(files[i:i + 25], i)], {0: i + 25})
    return path


def rows_of(table: str, title: str) -> list[list[str]]:
    """The rows of one titled table of the output, split on runs of two or more spaces."""
    block = table.split(title, 1)[1].split("\n\n", 1)[0].splitlines()
    body = block[4:]  # rule, headers, rule
    return [re.split(r"\s{2,}", line.strip()) for line in body if line.strip() and not line.startswith("─")]


def test_the_table_shows_every_figure(db, files):
    done = run("stats", "--db", db)
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    fig = st.figures(st.recount(files))
    overview = {r[0]: r[1:] for r in rows_of(out, "概况 Overview")}
    assert overview["在册职工 Workers on file"] == [str(fig["workers"])]
    assert overview["书面劳动合同 Written contract"] == [f"{fig['contracts']['written']:,}",
                                                    f"{fig['contracts']['written_share'] * 100:.1f}%"]
    assert overview["技能提升补贴 Subsidy grants"][0] == f"{fig['subsidy']['grants']:,}"
    assert overview["完成培训学时 Training hours"][0] == f"{fig['training']['total_hours']:,}"
    levels = {r[0]: int(r[1]) for r in rows_of(out, "技能等级 Workers by highest skill level")}
    assert levels == {f"{r['name_zh']} {r['name_en']}": r["workers"] for r in fig["skill_levels"]}
    provinces = {r[1]: int(r[2]) for r in rows_of(out, "地区 Workers by province")}
    assert provinces == {r["province"]: r["workers"] for r in fig["regions"]}
    insurance = {r[0]: r[3] for r in rows_of(out, "社会保险 Insured share by scheme (active)")}
    assert insurance["养老保险 Pension"] == f"{fig['insurance'][0]['share'] * 100:.1f}%"
    craftsmen = {r[0]: (r[1], r[2]) for r in rows_of(out, "工匠 Craftsmen against the 2035 targets")}
    assert craftsmen["市级工匠 City-level craftsmen"] == (str(fig["craftsmen"][2]["count"]), "50,000")
    quarters = {r[0]: r[1] for r in rows_of(out, "培训 Training hours completed per quarter")[:-1]}
    assert quarters == {q["quarter"]: f"{q['hours']:,}" for q in fig["training"]["by_quarter"]}
    above = [r[0] for r in rows_of(out, "Employers above the dispatch cap")]
    assert above == [e["employer"] for e in fig["dispatch"]["above_cap"]] or above == ["(无 none)"]
    wages = rows_of(out, "月工资价位 Monthly wage, 技能等级 skill level")
    published = fig["wages"]["scopes"]["level"]["published"]
    assert published and [r[2:] for r in wages[:len(published)]] == [
        [f"¥{row[p]:,}" for p in ("p25", "p50", "p75", "p90")] for row in published]
    assert f"{fig['wages']['scopes']['cell']['suppressed_cells']} cells suppressed (fewer than 10 workers)" in out


@pytest.fixture(scope="module")
def handled(tmp_path_factory) -> tuple[str, list[dict]]:
    """A store of 60 generated workers whose grants bureaus claimed, decided and paid
    (some claimed twice), and their files."""
    from tests.services_population import service_events

    lines = [i.encode() if isinstance(i, str) else orjson.dumps(i) for i in generate_population(60, seed=13)]
    events = service_events(fold_lines(lines).files(), double_every=3)
    files = fold_lines(lines + [orjson.dumps(e) for e in events]).files()
    path = str(tmp_path_factory.mktemp("stats") / "handled.sqlite3")
    with open_stats_store("sqlite", path) as store:
        store.apply([FileChange(f["ssn"], n, f) for n, f in enumerate(files)], {0: len(files)})
    return path, files


def test_the_table_shows_the_subsidy_from_grant_to_payment_and_the_notices(handled):
    db, files = handled
    done = run("stats", "show", "--db", db)
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    fig = st.figures(st.recount(files))
    s, notices = fig["subsidy"], fig["notices"]
    assert all(r["grants"] for r in s["stages"]) and s["double_claims_refused"] > 0 and notices["open"] > 0
    stages = {r[0]: r[1:] for r in rows_of(out, "Subsidy from grant to payment")[:-1]}
    assert stages == {f"{r['name_zh']} {r['name_en']}": [f"{r['grants']:,}", f"¥{r['amount_cny']:,}"]
                      for r in s["stages"]}
    assert f"重复申请已驳回 double claims refused: {s['double_claims_refused']}" in out
    assert {r[0]: int(r[1]) for r in rows_of(out, "Subsidy grants by status")} == {
        f"{r['name_zh']} {r['name_en']}": r["grants"] for r in s["by_status"]}
    provinces = {r[1]: r[2:] for r in rows_of(out, "Subsidy by province (the worker's)")}
    assert provinces == {r["province"]: [f"{r['offered']:,}", f"¥{r['offered_cny']:,}", f"{r['claimed']:,}",
                                         f"¥{r['claimed_cny']:,}", f"{r['paid']:,}", f"¥{r['paid_cny']:,}",
                                         f"{r['double_claims_refused']:,}"] for r in s["by_province"]}
    cells = rows_of(out, "Subsidy by province and level")
    assert [(c[0], c[2], c[6]) for c in cells] == [(r["province_name_zh"], f"{r['offered']:,}", f"{r['paid']:,}")
                                                   for r in s["by_province_level"]]
    assert {r[1]: int(r[2]) for r in rows_of(out, "Open notices by province (of the job)")} == {
        r["province"]: r["open"] for r in notices["by_province"]}
    assert [(r[0], int(r[1])) for r in rows_of(out, "Open notices by employer")] == [
        (r["employer"], r["open"]) for r in notices["by_employer"][:30]]
    assert f"合计 total: {notices['open']} open notices of {notices['workers']} workers" in out
    body = orjson.loads(run("stats", "show", "--db", db, "--json").stdout)
    assert (body["subsidy"], body["notices"]) == (s, notices)
    assert (body["meta"]["definitions"], body["meta"]["definitions_current"]) == (st.DEFINITIONS, st.DEFINITIONS)


def test_the_live_store_and_the_recount_print_the_same(db, files_jsonl):
    live, recount = run("stats", "show", "--db", db), run("stats", "recount", str(files_jsonl))
    assert live.returncode == 0 and recount.returncode == 0, (live.stderr, recount.stderr)
    body = lambda out: out.decode().split("\n\n", 1)[1]  # noqa: E731 - all but the source line
    assert body(live.stdout) == body(recount.stdout)
    piped = run("stats", "recount", "-", "--json", stdin=files_jsonl.read_bytes())
    assert orjson.loads(piped.stdout)["workers"] == 60


def test_json_is_the_body_of_get_stats(db, files):
    done = run("stats", "--db", db, "--json")
    assert done.returncode == 0, done.stderr
    body = orjson.loads(done.stdout)
    meta = body.pop("meta")
    assert body == st.figures(st.recount(files))
    assert meta["offsets"] == {"0": 75} and meta["group"] == "workerfile-stats"
    lower = orjson.loads(run("stats", "--db", db, "--json", "--min-cell", "3").stdout)
    assert lower["wages"] == st.figures(st.recount(files), min_cell=3)["wages"]
    published = lambda fig: sum(len(s["published"]) for s in fig["wages"]["scopes"].values())  # noqa: E731
    assert published(lower) > published(body)


def test_a_store_of_older_definitions_is_not_followed(tmp_path, files):
    path = str(tmp_path / "old.sqlite3")
    with open_stats_store("sqlite", path) as store:
        store.apply([FileChange(f["ssn"], n, f) for n, f in enumerate(files[:5])], {0: 5})
        store._begin()  # as a database of before the definitions version was left
        store._execute("DELETE FROM stats_meta")
        store._commit()
    for command in (["follow", "--once"], ["serve", "--follow", "--port", "0"]):
        done = run("stats", *command, "--db", path, "--broker", "127.0.0.1:1")  # checked before any broker
        assert done.returncode == 1 and b"definitions version 1" in done.stderr and b"rebuild" in done.stderr, done
    shown = run("stats", "show", "--db", path)
    assert shown.returncode == 0 and b"counted with definitions 1" in shown.stdout


def test_bad_options_fail_clearly(tmp_path):
    done = run("stats", "--min-cell", "0")
    assert done.returncode == 2 and b"must be at least 1" in done.stderr
    done = run("stats", "show", "--db", str(tmp_path / "no" / "such" / "dir.sqlite3"))
    assert done.returncode == 1 and b"cannot open the sqlite database" in done.stderr
    done = run("stats", "recount", str(tmp_path / "missing.jsonl"))
    assert done.returncode == 1 and b"no such file" in done.stderr


def test_serve_answers_and_stops_on_sigterm(db, files):
    port = free_ports(1)[0]
    proc = subprocess.Popen([*COMMAND, "stats", "serve", "--db", db, "--port", str(port)], env=env(), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        deadline, body = time.monotonic() + 60, None
        while body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as response:
                    body = orjson.loads(response.read())
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
                time.sleep(0.3)
        body.pop("meta")
        assert body == st.figures(st.recount(files))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard", timeout=5) as response:
            assert b"/dashboard/dashboard.js" in response.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert f"dashboard at http://127.0.0.1:{port}/dashboard".encode() in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
