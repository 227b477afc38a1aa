"""Issue #6, item 1: no full social-security number in logs, errors, metrics or traces.

A population with the usual anomalies (invalid numbers among them) goes through the
stream worker (logging at DEBUG, its libraries included), the HTTP API (every error
answer) and the command line (emit, fold, sink, stats, subscribe, admin: everything they
print besides the data they are asked for); then all that output is scanned for any
number of the population, whole, in its 18-character and legacy 15-digit forms."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from processors.batch import fold_lines
from processors.identity import make_ssn
from streams.reader import latest_files
from streams.runner import WorkerProcess, wait_for
from streams.topics import provision
from streams.local_kafka import free_ports
from tests.integration.api_access import Access, call
from tests.integration.conftest import PARTITIONS, publish
from workerfile.population import generate_population

pytestmark = pytest.mark.timeout(600)


def numbers_of(items) -> set[str]:
    """Every number of the population, valid or not, in each form it could be shown in."""
    found = set()
    for item in items:
        ssn = item.get("ssn") if isinstance(item, dict) else None
        if isinstance(ssn, str) and len(ssn) == 18:
            found |= {ssn, ssn.lower(), ssn[:6] + ssn[8:17]}
    return found


def workerfile(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workerfile.cli", *args], capture_output=True, timeout=300,
                          input=stdin)


def test_no_full_number_is_printed_anywhere(kafka, tmp_path):
    items = generate_population(20, seed=81, months=14)
    valid = [i for i in items if isinstance(i, dict)]
    numbers = numbers_of(items)
    assert len(numbers) >= 40  # 20 workers, two forms each, and the bad numbers
    captured: list[str] = []  # everything to scan, with where it came from

    access = Access(tmp_path / "access")
    [port] = free_ports(1)
    provision(kafka.bootstrap, "workerfile-scan", PARTITIONS)
    proc = WorkerProcess(kafka.bootstrap, "workerfile-scan", tmp_path / "worker", partitions=PARTITIONS,
                         loglevel="debug", web_port=port, env=access.env).start()
    try:
        # the CLI: emit (valid and invalid lines), fold with its summary and rejects messages
        events_file = tmp_path / "events.jsonl"
        events_file.write_bytes(b"\n".join(orjson.dumps(i) if isinstance(i, dict) else i.encode() for i in items))
        done = workerfile("emit", str(events_file), "--partial", "--broker", kafka.bootstrap)
        captured.append(done.stdout.decode() + done.stderr.decode())
        publish(kafka.bootstrap, [i for i in items if not isinstance(i, dict) or i not in valid])  # the bad ones
        done = workerfile("fold", str(events_file), "--rejects", str(tmp_path / "rejects.jsonl"))
        assert done.returncode == 0
        captured.append(done.stderr.decode())
        captured += [orjson.loads(line)["message"] for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]

        expected = {f["ssn"]: f for f in fold_lines([orjson.dumps(i) for i in valid]).files()}
        wait_for(lambda: latest_files(kafka.bootstrap, versions=False) == expected, 180, what="the files on worker-files")
        wait_for(lambda: call("GET", f"{proc.base_url}/workers/{next(iter(expected))}",
                              token=access.tokens["operator"])[0] == 200, 90, what="the API")

        # the API: every kind of error answer, for every number
        some = sorted(expected)[0]
        access.add("the worker", "worker", ssn=some)
        access.add_sources(valid)
        for ssn in sorted(expected):
            bad = ssn[:17] + ("0" if ssn[17] != "0" else "1")
            for token, number in ((None, ssn), ("wrong", ssn), (access.tokens["operator"], bad),
                                  (access.tokens["the worker"], ssn if ssn != some else bad)):
                status, body = call("GET", f"{proc.base_url}/workers/{number}", token=token)
                assert status in (400, 401, 403), status
                captured.append(orjson.dumps(body).decode())
            unknown = make_ssn(ssn[:14] + "999")
            status, body = call("GET", f"{proc.base_url}/workers/{unknown}", token=access.tokens["operator"])
            captured.append(orjson.dumps(body).decode())
            mine = [e for e in valid if e["ssn"] == ssn][:3]
            org = mine[0]["source"]
            status, body = call("POST", f"{proc.base_url}/events", [e | {"source": org, "ssn": bad} for e in mine],
                                token=access.tokens[f"src-{org}"])
            assert status == 422
            captured.append(orjson.dumps(body).decode())

        # the CLI readers and the operator
        db = str(tmp_path / "files.sqlite3")
        for args in (("sink", "sqlite", "--db", db, "--once", "--broker", kafka.bootstrap),
                     ("stats", "recount", "--broker", kafka.bootstrap),
                     ("subscribe", "services", "--once", "--broker", kafka.bootstrap),
                     ("subscribe", "changes", "--once", "--broker", kafka.bootstrap),
                     ("admin", "erase", some, "--reason", "test", "--operator", "ops", "--broker", kafka.bootstrap),
                     ("admin", "merge", some, some[:17] + ("0" if some[17] != "0" else "1"), "--reason", "t",
                      "--operator", "ops", "--broker", kafka.bootstrap)):
            done = workerfile(*args)
            captured.append(done.stdout.decode() + done.stderr.decode())
    finally:
        proc.stop()
    log = proc.log_text()
    assert "DEBUG" in log and len(log) > 10_000  # it did log, and a lot
    captured.append(log)

    everything = "\n".join(captured)
    leaked = sorted(n for n in numbers if n in everything)
    assert not leaked, f"{len(leaked)} numbers printed whole, e.g. at: " + ", ".join(
        everything[max(0, everything.find(n) - 80):everything.find(n) + 20].replace(n, "<SSN>") for n in leaked[:3])
    assert "********" in everything  # they were there, masked
