"""The first worker of a new application id on a freshly formatted broker (issue #11, item
2): its topics exist before it starts, or it says which and how to make them; and its
access log lists every read on `worker-access-log`, after a restart and under another
application id too."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from kafka import KafkaProducer

from processors.identity import mask_ssn
from streams import codec
from streams.local_kafka import LocalKafka, free_ports
from streams.runner import WorkerProcess, wait_for
from streams.topics import WORKER_ACCESS_LOG
from tests.integration.api_access import Access, _answers, call
from tests.integration.conftest import PARTITIONS, publish
from workerfile.population import generate_population

pytestmark = pytest.mark.timeout(480)

READS = 13  # as in the issue: 13 reads of one worker's file, 9 of which the old table lost
APP_ID = "wf-first"


def workerfile(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workerfile.cli", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def api_worker(kafka: LocalKafka, folder, access: Access, app_id: str) -> WorkerProcess:
    [port] = free_ports(1)
    return WorkerProcess(kafka.bootstrap, app_id, folder, partitions=PARTITIONS, web_port=port, env=access.env)


def wait_until_it_answers(proc: WorkerProcess, access: Access) -> None:
    try:
        wait_for(lambda: _answers(proc, access.tokens["operator"]) or not proc.running, 120, what="the HTTP API")
    except TimeoutError:
        pytest.fail(f"the worker does not answer; its log:\n{proc.log_text()[-4000:]}")
    assert proc.running, proc.log_text()[-4000:]


def reads_listed(proc: WorkerProcess, access: Access, ssn: str) -> list[dict]:
    """The worker's access log, asked for once: no waiting (the view is read up to the
    partition's end offset at the request, and every read was acknowledged before)."""
    status, body = call("GET", f"{proc.base_url}/workers/{ssn}/access-log", token=access.tokens["operator"])
    assert status == 200, body
    assert set(body) == {"ssn", "entries"} and body["ssn"] == ssn
    assert all(e["ssn"] == ssn for e in body["entries"])
    return body["entries"]


def test_the_first_worker_of_a_new_application_id_on_a_fresh_broker_lists_every_read(tmp_path):
    """The broker is this test's own, formatted for it, and nothing but this test has used
    it: no topic, no consumer group, no `__consumer_offsets` yet — what an operator has
    after installing Kafka, and where the first worker of a new application id once lost
    9 of 13 reads (faust created the access log's changelog while the worker joined its
    group; the group's metadata lacked it, so every write to the table failed while the
    offsets of worker-access-log were committed past the reads). The shared fixture
    `kafka` is fresh per test too, but creates the topics itself, in-process; here they are
    made the operator's way, by `workerfile topics --app-id`, after a first start without
    them that must say what is missing.

    Then READS reads of one worker's file through the API, each with its own purpose; the
    access log must list all of them, asked for once, at once. The worker is stopped, one
    more access-log record is written straight to worker-access-log (as a worker that lost
    it from its table would leave it: on the topic, in no table), and the worker started
    again must list that one too; so must the first worker of another application id."""
    kafka = LocalKafka(data_dir=tmp_path / "broker")
    kafka.start()
    proc = None
    try:
        # before `workerfile topics`: the worker waits a bounded time, then says what to run
        early = workerfile("worker", "--broker", kafka.bootstrap, "--app-id", APP_ID, "--data-dir",
                           str(tmp_path / "early"), "--partitions", str(PARTITIONS),
                           env={"WORKERFILE_TOPICS_WAIT": "2"})
        assert early.returncode == 2, early.stderr
        assert "Traceback" not in early.stderr
        assert "waiting up to 2 s for" in early.stderr
        assert f"{APP_ID}-worker-state-changelog" in early.stderr and "training-events" in early.stderr
        assert (f"Create them with `workerfile topics --broker {kafka.bootstrap} --app-id {APP_ID} "
                f"--partitions {PARTITIONS}`") in early.stderr

        done = workerfile("topics", "--broker", kafka.bootstrap, "--app-id", APP_ID, "--partitions", str(PARTITIONS))
        assert done.returncode == 0, done.stderr
        assert f"created {APP_ID}-worker-state-changelog ({PARTITIONS} partitions)" in done.stdout.splitlines()
        assert f"created {WORKER_ACCESS_LOG} ({PARTITIONS} partitions)" in done.stdout.splitlines()

        events = [e for e in generate_population(3, seed=111, months=8, anomalies=False) if isinstance(e, dict)]
        publish(kafka.bootstrap, events)
        ssn, other = sorted({e["ssn"] for e in events})[:2]
        access = Access(tmp_path / "access")
        operator = access.tokens["operator"]

        proc = api_worker(kafka, tmp_path / "worker", access, APP_ID).start()
        wait_until_it_answers(proc, access)
        url = f"{proc.base_url}/workers/{ssn}"
        wait_for(lambda: call("GET", url + "?purpose=first", token=operator)[0] == 200, 120, what="the file")
        purposes = ["first"]  # the read that found the file
        for n in range(1, READS + 1):
            status, body = call("GET", f"{url}?purpose=read-{n}", token=operator)
            assert status == 200 and body["ssn"] == ssn
            purposes.append(f"read-{n}")

        listed = reads_listed(proc, access, ssn)
        assert [(e["action"], e["purpose"], e["caller"]) for e in listed] == [
            ("read_file", p, "operator") for p in purposes]
        status, body = call("GET", f"{proc.base_url}/workers/{other}/access-log", token=operator)
        assert status == 404 or body["entries"] == [], body  # another worker's log: none of these reads
        proc.stop()
        first_log = proc.log_text()
        for line in ("Ignoring missing topic", "PartitionsMismatch", "has 0 partitions",
                     f"{APP_ID}-worker-state-changelog not found in cluster metadata"):
            assert line not in first_log, first_log[-4000:]

        # a record on the topic that no worker folded when it was written
        lost = {"ssn": ssn, "at": "2026-05-01T09:00:00.000+08:00", "caller": "社保局", "audience": "social_insurance",
                "org": "11440300007542610F", "action": "read_file", "purpose": "never folded", "detail": None}
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
        producer.send(WORKER_ACCESS_LOG, key=ssn.encode(), value=codec.encode("AccessLogEntry", lost)).get(30)
        producer.close()

        # the same worker again, then the first worker of another application id
        expected = [("read_file", p) for p in purposes] + [("read_access_log", None), ("read_file", "never folded")]
        proc.start()
        wait_until_it_answers(proc, access)
        assert [(e["action"], e["purpose"]) for e in reads_listed(proc, access, ssn)] == expected
        proc.stop()
        expected.append(("read_access_log", None))

        assert workerfile("topics", "--broker", kafka.bootstrap, "--app-id", "wf-second").returncode == 0
        proc = api_worker(kafka, tmp_path / "second", access, "wf-second").start()
        wait_until_it_answers(proc, access)
        assert [(e["action"], e["purpose"]) for e in reads_listed(proc, access, ssn)] == expected
        proc.stop()
        for log in (first_log, proc.log_text(), early.stderr, done.stdout):
            assert ssn not in log and other not in log, mask_ssn(ssn)
    finally:
        if proc is not None:
            proc.kill()
        kafka.stop()
