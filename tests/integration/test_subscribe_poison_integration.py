"""`workerfile subscribe` and poison: against a real broker, records that are not
messages of the topic (garbage, truncated Avro, an unknown schema fingerprint, a record
of another schema, a tombstone) amid valid grants are written to the rejects file and
counted, every valid grant is handed on in order; a forward target that fails (5xx,
timeout, redirect) gets nothing committed past the failed message, and once it answers
every grant arrives, after a kill -9 too."""

from __future__ import annotations

import base64
import http.server
import json
import subprocess
import sys
import threading
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams import codec
from streams.subscribe import http_forwarder, subscribe
from tests.conftest import OCC, SSN_A, SSN_B

pytestmark = pytest.mark.timeout(300)

TOPIC = "worker-services"


def grant(n: int, ssn: str = SSN_A) -> dict:
    return {"service_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"grant-{n}")), "ssn": ssn,
            "service": "skill_upgrade_subsidy",
            "grant": {"certificate_no": f"S{n:04d}", "occupation_code": OCC, "level": "senior",
                      "apply_by": "2027-01-31", "service_id": "", "amount_cny": 2000, "status": "offered",
                      "claim": None, "decision": None, "payments": []},
            "notice": None, "status": "offered", "status_before": None, "version": n + 1}


def poison_values() -> dict[str, bytes | None]:
    good = codec.encode("ServiceEvent", grant(999))
    other = codec.encode("WorkerFileChange", {"ssn": SSN_A, "version": 1, "changed_sections": ["x"], "event_ids": []})
    return {"garbage": b"\x00\xffnot avro at all", "truncated": good[:-5],
            "fingerprint": codec.MARKER + b"\x01" * 8 + good[codec.HEADER_SIZE:],
            "schema": other, "tombstone": None}


def publish(bootstrap: str, items: list[tuple[int, bytes | None]]) -> list:
    """(partition, value) in order; returns the record metadata."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    try:
        futures = [producer.send(TOPIC, key=SSN_A.encode(), value=v, partition=p) for p, v in items]
        producer.flush(60)
        return [f.get(30) for f in futures]
    finally:
        producer.close()


def committed(bootstrap: str, group: str) -> dict[int, int]:
    """The group's committed offsets (read without joining the group)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        found = {p: consumer.committed(TopicPartition(TOPIC, p)) for p in consumer.partitions_for_topic(TOPIC)}
    finally:
        consumer.close(autocommit=False)
    return {p: o for p, o in found.items() if o is not None}


def mixed(bootstrap: str):
    """Valid grants on partitions 0 and 1, the poison amid them on partition 0."""
    poison = poison_values()
    items, expected, is_poison = [], [], []
    n = 0
    for name, value in poison.items():
        for _ in range(2):
            items.append((0, codec.encode("ServiceEvent", grant(n))))
            is_poison.append(False)
            expected.append(grant(n))
            n += 1
        items.append((0, value))
        is_poison.append(True)
    for _ in range(3):
        items.append((1, codec.encode("ServiceEvent", grant(n, SSN_B))))
        is_poison.append(False)
        expected.append(grant(n, SSN_B))
        n += 1
    metadata = publish(bootstrap, items)
    poison_at = [(m.partition, m.offset) for m, bad in zip(metadata, is_poison) if bad]
    return items, expected, poison_at, list(poison)


def test_poison_is_written_to_the_rejects_file_and_every_grant_is_handed_on(kafka, tmp_path):
    items, expected, poison_at, reasons = mixed(kafka.bootstrap)
    assert len(poison_at) == 5
    got: list[dict] = []
    rejects = tmp_path / "rejects.jsonl"
    stats = subscribe(kafka.bootstrap, "services", got.append, group="bureau", once=True, rejects=str(rejects))
    assert sorted(got, key=lambda m: m["grant"]["certificate_no"]) == expected
    assert [m for m in got if m["ssn"] == SSN_A] == [m for m in expected if m["ssn"] == SSN_A]  # in order
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["partition"], r["offset"]) for r in lines] == poison_at
    assert all(r["topic"] == TOPIC for r in lines)
    assert "undecodable" in lines[0]["reason"] and "undecodable" in lines[1]["reason"]
    assert "fingerprint" in lines[2]["reason"] and "WorkerFileChange instead" in lines[3]["reason"]
    assert "tombstone" in lines[4]["reason"] and lines[4]["value_base64"] is None
    assert base64.b64decode(lines[0]["value_base64"]) == items[2][1]
    assert (stats.handed, stats.rejected, stats.repeated, stats.read) == (len(expected), 5, 0, len(items))
    assert committed(kafka.bootstrap, "bureau") == {0: len(items) - 3, 1: 3}

    # the command line: the same counts in its summary, nothing left to read
    done = subprocess.run([sys.executable, "-m", "workerfile.cli", "subscribe", "services", "--broker",
                           kafka.bootstrap, "--once", "--group", "bureau-2", "--rejects", str(tmp_path / "r2")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (f"read {len(items)} records of {TOPIC}: {len(expected)} services handed on, 0 already handed on, "
            f"5 unreadable") in done.stderr
    assert f"{TOPIC} partition 0 offset {poison_at[0][1]}" in done.stderr
    assert SSN_A not in done.stderr and SSN_B not in done.stderr
    assert len((tmp_path / "r2").read_text().splitlines()) == 5


class Receiver(http.server.BaseHTTPRequestHandler):
    """Fails the grant `fail_id` `fail_times` times (500, then a slow answer, then a
    redirect to a page that answers GET), then accepts every POST."""

    def do_POST(self):  # noqa: N802
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            failing = body["service_id"] == server.fail_id and server.failures < server.fail_times
            if failing:
                server.failures += 1
                server.committed_at_failure.append(committed(server.bootstrap, server.group))
                kind = server.failures % 3
        if failing:
            if kind == 1:
                self.send_response(500)
                self.end_headers()
            elif kind == 2:
                server.slow.wait(3)  # longer than the forwarder's timeout
                self.send_response(503)
                self.end_headers()
            else:
                self.send_response(302)
                self.send_header("Location", "/elsewhere")
                self.end_headers()
            return
        with server.lock:
            server.accepted.append(body)
        self.send_response(204)
        self.end_headers()

    def do_GET(self):  # noqa: N802 - where the redirect points: a GET "succeeds"
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_failing_forward_target_commits_nothing_past_the_failed_grant(kafka, tmp_path):
    grants = [grant(n) for n in range(8)]
    publish(kafka.bootstrap, [(0, codec.encode("ServiceEvent", g)) for g in grants])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.daemon_threads = True
    server.lock = threading.Lock()
    server.slow = threading.Event()
    server.fail_id, server.fail_times, server.failures = grants[3]["service_id"], 4, 0
    server.accepted, server.committed_at_failure = [], []
    server.bootstrap, server.group = kafka.bootstrap, "bureau"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/grants"
        stats = subscribe(kafka.bootstrap, "services", http_forwarder(url, timeout=1), group="bureau", once=True,
                          retry_every=0.05, rejects=str(tmp_path / "rejects"), state=str(tmp_path / "state"))
        assert server.failures == 4 and stats.failures == 4
        # every try of grant 3 saw the offsets committed up to it and never past it
        assert server.committed_at_failure == [{0: 3}] * 4
        assert server.accepted == grants  # each once, in order (the redirect did not count as delivered)
        assert (stats.handed, stats.rejected) == (8, 0)
        assert committed(kafka.bootstrap, "bureau") == {0: 8}
        assert not (tmp_path / "rejects").exists()
    finally:
        server.slow.set()
        server.shutdown()


def test_kill_9_while_the_target_fails_then_everything_arrives_once(kafka, tmp_path):
    grants = [grant(n) for n in range(6)]
    publish(kafka.bootstrap, [(0, codec.encode("ServiceEvent", g)) for g in grants])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.daemon_threads = True
    server.lock = threading.Lock()
    server.slow = threading.Event()
    server.fail_id, server.fail_times, server.failures = grants[2]["service_id"], 10 ** 6, 0
    server.accepted, server.committed_at_failure = [], []
    server.bootstrap, server.group = kafka.bootstrap, "bureau"
    server.slow.set()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/grants"
    command = [sys.executable, "-m", "workerfile.cli", "subscribe", "services", "--broker", kafka.bootstrap,
               "--group", "bureau", "--forward", url, "--state", str(tmp_path / "state"),
               "--rejects", str(tmp_path / "rejects")]
    try:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            line = b""
            while b"failed" not in line:  # the first failed hand-on is reported
                line = proc.stderr.readline()
                assert line, "the subscriber ended without reporting the failure"
            assert b"worker-services partition 0 offset 2" in line
            proc.kill()
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
        assert server.accepted == grants[:2]
        assert committed(kafka.bootstrap, "bureau") == {0: 2}
        with server.lock:
            server.fail_times = 0  # the receiving system is back
        done = subprocess.run(command + ["--once"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert server.accepted == grants
        assert "4 services handed on" in done.stderr
        assert committed(kafka.bootstrap, "bureau") == {0: 6}
    finally:
        server.shutdown()
