"""`workerfile stats` against a real Apache Kafka broker and a real stream worker: a
generated population (re-deliveries, corrections, retractions, bad lines) is folded by
the stream processors; the stats consumer (`stats follow --once`, then `stats serve
--follow` resuming from its stored offsets) keeps totals that always equal a recount of
the latest files on `worker-files` — also after a corrected skill level, a retracted
employment and a tombstone, which move workers between buckets or out of them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from processors import stats as st
from sinks.stats import open_stats_store
from streams.local_kafka import free_ports
from streams.reader import latest_files
from streams.runner import wait_for
from tests.conftest import correction, retraction
from tests.integration.conftest import expected_files, publish
from workerfile.population import generate_population

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]
CONVERGE = 240  # seconds to wait for the stream worker / the stats to catch up


def env() -> dict:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), out.get("PYTHONPATH")) if p)
    return out


def stats_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "workerfile.cli", "stats", *args]


def wait_files(bootstrap: str, expected: dict[str, dict]) -> dict[str, dict]:
    def check():
        got = latest_files(bootstrap, versions=False)
        return got if got == expected else None
    try:
        return wait_for(check, CONVERGE, interval=2, what="worker-files == offline fold")
    except TimeoutError:
        got = latest_files(bootstrap, versions=False)
        pytest.fail(f"worker-files did not converge: {len(set(expected) - set(got))} missing, "
                    f"{sum(1 for s in expected if s in got and got[s] != expected[s])} differing")


def recount_figures(bootstrap: str) -> dict:
    return st.figures(st.recount(latest_files(bootstrap).values()))


def get_stats(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as response:
            body = orjson.loads(response.read())
    except OSError:
        return None
    body.pop("meta")
    return body


def the_changes(items: list, files: dict[str, dict]) -> tuple[list[dict], dict[str, str]]:
    """A level correction, a retracted open employment: events that move workers between
    buckets. Returns the events and {what: ssn}."""
    events = [i for i in items if isinstance(i, dict) and i.get("ssn") in files]
    certified = next(f for f in files.values() if f["highest_skill_level"] and f["employments"]
                     and any(e["end_date"] is None for e in f["employments"]))
    top = next(c for c in certified["certificates"]
               if c["level"] == certified["highest_skill_level"] and c["revoked_on"] is None)
    issued = next(e for e in events if e["type"] == "certificate.issued" and e["ssn"] == certified["ssn"]
                  and e["payload"]["certificate_no"] == top["certificate_no"] and e.get("corrects") is None)
    fix = correction(issued, {"level": "chief_technician"}, occurred_at="2026-05-30T10:00:00+08:00")

    employed = next(f for f in files.values() if f["ssn"] != certified["ssn"] and f["current_employers"])
    open_job = next(e for e in employed["employments"] if e["end_date"] is None)
    started = next(e for e in events if e["type"] == "employment.started" and e["ssn"] == employed["ssn"]
                   and e["payload"]["employer"] == open_job["employer"]
                   and e["payload"]["start_date"] == open_job["start_date"] and e.get("corrects") is None)
    return [fix, retraction(started)], {"corrected": certified["ssn"], "retracted": employed["ssn"]}


def test_stats_equal_a_recount_of_worker_files_through_corrections_and_tombstones(kafka, workers, tmp_path):
    bootstrap = kafka.bootstrap
    items = generate_population(25, seed=17, months=12)
    expected = expected_files(items)
    workers()
    publish(bootstrap, items)
    files = wait_files(bootstrap, expected)

    # 1. the consumer reads the topic to its end, once (a subprocess, as an operator runs it)
    db = str(tmp_path / "stats.sqlite3")
    done = subprocess.run(stats_command("follow", "--once", "--broker", bootstrap, "--db", db), capture_output=True,
                          text=True, timeout=300, env=env(), stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "25 workers in the totals" in done.stderr
    with open_stats_store("sqlite", db) as store:
        assert store.totals() == st.recount(files.values())
        first_offsets = store.offsets()
        body = store.stats_json()
    body.pop("meta")
    assert body == recount_figures(bootstrap)

    # 2. corrections, a retraction and a tombstone while `stats serve --follow` runs
    changes, who = the_changes(items, files)
    expected_after = expected_files(items + changes)
    assert expected_after[who["corrected"]]["highest_skill_level"] == "chief_technician"
    assert len(expected_after[who["retracted"]]["employments"]) == len(files[who["retracted"]]["employments"]) - 1
    port = free_ports(1)[0]
    serve = subprocess.Popen(stats_command("serve", "--follow", "--broker", bootstrap, "--db", db, "--port", str(port)),
                             env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        publish(bootstrap, changes)
        files_after = wait_files(bootstrap, expected_after)
        before_levels = {r["level"]: r["workers"] for r in st.figures(st.recount(files.values()))["skill_levels"]}
        old_level = files[who["corrected"]]["highest_skill_level"]

        def caught_up():
            got = get_stats(port)
            return got if got is not None and got == st.figures(st.recount(files_after.values())) else None
        body = wait_for(caught_up, CONVERGE, interval=1, what="GET /stats == recount after the corrections")
        levels = {r["level"]: r["workers"] for r in body["skill_levels"]}
        assert levels["chief_technician"] == before_levels["chief_technician"] + 1  # moved, not counted twice
        assert levels[old_level] == before_levels[old_level] - 1 and body["workers"] == 25

        gone = who["retracted"]
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        producer.send("worker-files", key=gone.encode(), value=None)
        producer.flush(60)
        producer.close()

        def removed():
            got = get_stats(port)
            return got if got is not None and got["workers"] == 24 else None
        body = wait_for(removed, CONVERGE, interval=1, what="GET /stats after a tombstone")
        latest = latest_files(bootstrap)
        assert gone not in latest and body == st.figures(st.recount(latest.values()))

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0, serve.stderr.read().decode()[-3000:]
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()

    with open_stats_store("sqlite", db) as store:
        assert store.totals() == st.recount(latest_files(bootstrap).values())
        resumed = store.offsets()
        assert set(resumed) == set(first_offsets) and all(resumed[p] >= first_offsets[p] for p in resumed)
        assert sum(resumed.values()) > sum(first_offsets.values())  # only the new records were read after the restart
        assert set(store.contributions()) == set(latest_files(bootstrap))
