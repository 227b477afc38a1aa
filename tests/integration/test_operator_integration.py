"""Operator merge and erasure against a real broker, a real stream worker and the SQLite
sink (issue #6, item 6): tombstones on every record topic, rows deleted by the sink,
the alias kept, the worker's access log, and nothing erased coming back."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from processors.batch import fold_lines
from sinks.base import open_store
from streams import codec
from streams.reader import read_topic
from streams.runner import wait_for
from tests.integration.api_access import Access, api_worker, call
from tests.integration.conftest import publish
from workerfile.population import generate_population

pytestmark = pytest.mark.timeout(480)


def workerfile(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workerfile.cli", *args], capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)


def latest(bootstrap: str, topic: str) -> dict[str, bytes | None]:
    return {r.key.decode(): r.value for r in read_topic(bootstrap, topic)}


def files_on_topic(bootstrap: str) -> dict[str, dict | None]:
    """The latest record of each key on worker-files: None for a tombstone, else the file
    as the offline fold derives it (without the version of the change that published it)."""
    files = {k: (codec.decode(v)[1] if v is not None else None) for k, v in latest(bootstrap, "worker-files").items()}
    return {k: f and {n: v for n, v in f.items() if n != "version"} for k, f in files.items()}


def sink_rows(bootstrap: str, db: str) -> dict[str, dict]:
    done = workerfile("sink", "sqlite", "--db", db, "--once", "--broker", bootstrap)
    assert done.returncode == 0, done.stderr[-2000:]
    with open_store("sqlite", db) as store:
        return {r["ssn"]: r["document"] for r in store.rows()}


def test_an_operator_merges_two_numbers_and_erases_a_file(kafka, tmp_path):
    access = Access(tmp_path / "access")
    events = [e for e in generate_population(3, seed=71, months=14, anomalies=False) if isinstance(e, dict)]
    expected = {f["ssn"]: f for f in fold_lines([orjson.dumps(e) for e in events]).files()}
    erased, merged, keeper = sorted(expected)
    proc = api_worker(kafka, tmp_path, access)
    try:
        publish(kafka.bootstrap, events)
        wait_for(lambda: files_on_topic(kafka.bootstrap) == expected, 120, what="the files")
        db = str(tmp_path / "files.sqlite3")
        assert set(sink_rows(kafka.bootstrap, db)) == set(expected)

        done = workerfile("admin", "erase", erased, "--reason", "申请注销 (PIPL art. 47)", "--operator", "ops-li",
                          "--broker", kafka.bootstrap)
        assert done.returncode == 0, done.stderr
        assert erased not in done.stdout + done.stderr  # masked
        done = workerfile("admin", "merge", merged, keeper, "--reason", "one person, two numbers",
                          "--operator", "ops-li", "--broker", kafka.bootstrap)
        assert done.returncode == 0, done.stderr

        # the merged file: both careers under the number kept, the other number an alias
        both = [e | {"ssn": keeper} if e["ssn"] == merged else e for e in events if e["ssn"] in (merged, keeper)]
        joined = fold_lines([orjson.dumps(e) for e in both]).files()[0] | {"aliases": sorted({merged})}

        def settled():
            files = files_on_topic(kafka.bootstrap)
            return files.get(erased, 0) is None and files.get(merged, 0) is None and files.get(keeper) == joined
        wait_for(settled, 120, what="tombstones and the merged file on worker-files")
        views = latest(kafka.bootstrap, "worker-view-social-insurance")
        assert views[erased] is None and views[merged] is None and orjson.loads(views[keeper])["aliases"] == [merged]

        rows = sink_rows(kafka.bootstrap, db)
        assert set(rows) == {keeper} and rows[keeper]["aliases"] == [merged]

        operator = access.tokens["operator"]
        assert call("GET", f"{proc.base_url}/workers/{erased}", token=operator)[0] == 404
        assert call("GET", f"{proc.base_url}/workers/{merged}", token=operator)[0] == 404
        status, log = call("GET", f"{proc.base_url}/workers/{erased}/access-log", token=operator)
        assert status == 200
        assert [(e["action"], e["caller"], e["purpose"]) for e in log["entries"]] == [
            ("erase", "ops-li", "申请注销 (PIPL art. 47)")]
        log = wait_for(lambda: (r := call("GET", f"{proc.base_url}/workers/{keeper}/access-log", token=operator)[1])
                       and any(e["action"] == "merge" for e in r["entries"]) and r, 60, what="the merge in the log")
        [merge] = [e for e in log["entries"] if e["action"] == "merge"]
        assert merge["caller"] == "ops-li" and merged not in merge["detail"]

        # re-delivered events of the erased file never bring it back; a later event of the
        # merged number joins the file kept
        publish(kafka.bootstrap, [e for e in events if e["ssn"] == erased])
        late = next(e for e in events if e["ssn"] == merged and e["type"] == "insurance.contribution")
        late = late | {"event_id": "late-after-merge", "payload": {**late["payload"], "month": "2026-05"}}
        publish(kafka.bootstrap, [late])
        wait_for(lambda: (f := files_on_topic(kafka.bootstrap).get(keeper)) and f["applied_events"] == joined["applied_events"] + 1,
                 120, what="the late event in the file kept")
        files = files_on_topic(kafka.bootstrap)
        assert files[erased] is None and files[merged] is None
    finally:
        proc.kill()
    assert erased not in proc.log_text() and merged not in proc.log_text() and keeper not in proc.log_text()
