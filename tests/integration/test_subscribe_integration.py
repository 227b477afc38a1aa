"""A social-insurance system subscribing to subsidy grants (`workerfile subscribe`)
against a real broker: each grant reaches it exactly once, across a kill -9 of the stream
worker and across a restart of the subscriber itself; forwarding over HTTP."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading

import pytest

from streams.reader import latest_files, read_topic
from streams.runner import wait_for
from tests.integration.conftest import expected_files, publish
from workerfile.population import generate_population

pytestmark = pytest.mark.timeout(420)


def start_subscriber(kafka, out_path, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workerfile.cli", "subscribe", "services", "--broker",
                             kafka.bootstrap, "--json", *extra], stdout=out_path.open("ab"),
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def lines(path) -> list[dict]:
    """The grants the subscriber printed (notices of section 9 are on the same topic)."""
    return [m for m in (json.loads(line) for line in path.read_text().splitlines() if line.strip())
            if m["service"] == "skill_upgrade_subsidy"] if path.exists() else []


def test_each_grant_reaches_the_subscriber_once_across_restarts(kafka, workers, tmp_path):
    items = generate_population(50, seed=31, months=24)
    expected = expected_files(items)
    grants = {(ssn, g["occupation_code"], g["level"]) for ssn, f in expected.items()
              for g in f["services"]["skill_upgrade_subsidy"]}
    assert grants
    out = tmp_path / "grants.jsonl"
    state = tmp_path / "seen.txt"
    subscriber = start_subscriber(kafka, out, "--group", "bureau-1", "--state", str(state))
    try:
        worker = workers(name="w")
        half = len(items) // 2
        publish(kafka.bootstrap, items[:half])
        wait_for(lambda: len(read_topic(kafka.bootstrap, "worker-files")) > 20, 180, what="the first files")
        worker.kill()  # the stream worker crashes mid-stream
        subscriber.kill()  # and the subscriber restarts too
        subscriber.wait()
        subscriber = start_subscriber(kafka, out, "--group", "bureau-1", "--state", str(state))
        publish(kafka.bootstrap, items[half:])
        workers(name="w")
        wait_for(lambda: latest_files(kafka.bootstrap, versions=False) == expected, 240, interval=2, what="every file")
        wait_for(lambda: len(lines(out)) >= len(grants), 120, what="every grant at the subscriber")
        received = lines(out)
        assert len(received) == len(grants)
        assert {(m["ssn"], m["grant"]["occupation_code"], m["grant"]["level"]) for m in received} == grants
        assert len({m["service_id"] for m in received}) == len(received)
    finally:
        subscriber.kill()


def test_forwarding_posts_each_grant_to_the_receiving_system(kafka, workers, tmp_path):
    items = generate_population(30, seed=32, months=24, anomalies=False)
    expected = expected_files(items)
    n_grants = sum(len(f["services"]["skill_upgrade_subsidy"]) for f in expected.values())
    assert n_grants
    received: list[dict] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        workers()
        publish(kafka.bootstrap, items)
        wait_for(lambda: latest_files(kafka.bootstrap, versions=False) == expected, 240, interval=2, what="every file")
        done = subprocess.run([sys.executable, "-m", "workerfile.cli", "subscribe", "services", "--broker",
                               kafka.bootstrap, "--once", "--forward", f"http://127.0.0.1:{server.server_port}/grants"],
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        grants = [m for m in received if m["service"] == "skill_upgrade_subsidy"]
        assert len(grants) == n_grants
        assert all(m["grant"]["apply_by"] and m["status"] == "offered" for m in grants)
        assert all(m["service"] == "notice" for m in received if m not in grants)
        assert f"{len(received)} services handed on" in done.stderr
    finally:
        server.shutdown()
