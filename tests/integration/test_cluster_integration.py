"""The pipeline on a real 3-broker KRaft cluster, really failing (issue #11, item 5).

The session's cluster (`kafka_cluster` in conftest.py: 3 brokers and a dedicated KRaft
controller from the same Maven jars, replication factor 3, min.insync.replicas 2, unclean
leader election off) gets its topics from `workerfile topics --profile cluster`, and the
stream workers run on it as deploy/cluster/README.md says (WORKERFILE_REPLICATION=3). Then:

- the broker leading every partition of the event, output and state topics is killed
  with SIGKILL in the middle of the stream (events being published and folded) and
  started again later: the files equal the offline fold, no grant is published twice,
  every input is folded or on rejected-events;
- two of the three brokers are killed: `workerfile emit` stops with exit status 3 and
  says what was not acknowledged, POST /events answers 503 with a reason (neither hangs
  nor answers 500); once they are back, everything answered 202, and everything sent
  again, is folded.

4 partitions rather than the cluster profile's 12, so that the file runs in a few minutes
on a small machine; what fails and what must hold does not depend on the number.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import threading

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError

from streams import codec
from streams.producer import EventProducer, InvalidEvent
from streams.reader import decoded, latest_files, read_topic
from streams.runner import wait_for
from streams.topics import EVENT_TOPICS, load_topic_specs
from tests.integration.api_access import Access, api_worker, call, ingest
from tests.integration.conftest import PARTITIONS, expected_files, publish
from tests.integration.test_stream_integration import assert_files_equal, expected_grant_count, grants_published
from workerfile.population import generate_population

pytestmark = pytest.mark.timeout(420)

INGEST_TIMEOUT = 20  # seconds POST /events waits for the acknowledgements (WORKERFILE_INGEST_TIMEOUT)
EMIT_TIMEOUT = 10  # workerfile emit --timeout
SSN_LIKE = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")


def workerfile(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """A `workerfile` command, as an operator or a source runs it."""
    return subprocess.run([sys.executable, "-m", "workerfile.cli", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


@pytest.fixture(scope="module")
def cluster(kafka_cluster):
    """The session's cluster with the pipeline's topics, made as an operator makes them."""
    result = workerfile("topics", "--profile", "cluster", "--partitions", str(PARTITIONS),
                        "--broker", kafka_cluster.bootstrap)
    assert result.returncode == 0, result.stderr
    return kafka_cluster


@pytest.fixture
def kafka(cluster, monkeypatch):
    """What the shared fixtures (`workers`, `api_worker`) run against: the cluster, with the
    workers' environment of deploy/cluster/README.md (faust's own topics, the state
    changelogs, replicated 3 times too)."""
    monkeypatch.setenv("WORKERFILE_REPLICATION", "3")
    monkeypatch.setenv("WORKERFILE_INGEST_TIMEOUT", str(INGEST_TIMEOUT))
    return cluster


# --- what the cluster says about its partitions ------------------------------------------------

def partitions(cluster, topics: list[str] | None = None) -> dict[tuple[str, int], dict]:
    """Leader, replicas and in-sync replicas of every partition of `topics` (default: every
    topic but Kafka's own), as the living brokers tell it."""
    def ask():
        try:
            admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, client_id="cluster-test")
        except KafkaError:
            return None
        try:
            described = admin.describe_topics(topics)
        except KafkaError:  # asked a broker that is down: ask again
            return None
        finally:
            admin.close()
        out = {}
        for topic in described:
            if topic["error_code"] or (topics is None and topic["name"].startswith("__")):
                continue
            for p in topic["partitions"]:
                out[topic["name"], p["partition_index"]] = {"leader": p["leader_id"], "replicas": p["replica_nodes"],
                                                            "isr": sorted(p["isr_nodes"])}
        return out or None
    return wait_for(ask, 60, interval=0.5, what="the cluster's metadata")


def admin_call(cluster, action):
    """`action(admin)` on a fresh admin client, again while it fails (a broker down)."""
    def attempt():
        try:
            admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, client_id="cluster-test")
        except KafkaError:
            return None
        try:
            return [action(admin)]
        except KafkaError:
            return None
        finally:
            admin.close()
    return wait_for(attempt, 60, interval=0.5, what="an admin request")[0]


def lead_everything(cluster, broker: int) -> list[str]:
    """Make `broker` the leader of every partition of every topic of the pipeline (events,
    outputs, the workers' changelogs): the same replicas with `broker` first (a
    reassignment that moves no data), then a preferred leader election. Returns the topics."""
    parts = partitions(cluster)
    moves = {TopicPartition(t, p): [broker] + [r for r in info["replicas"] if r != broker]
             for (t, p), info in parts.items() if info["replicas"][0] != broker}
    if moves:
        admin_call(cluster, lambda admin: admin.alter_partition_reassignments(moves))
        wait_for(lambda: all(info["replicas"][0] == broker for info in partitions(cluster).values()), 60,
                 interval=0.5, what=f"broker {broker} first in every replica list")
    by_topic = collections.defaultdict(list)
    for topic, partition in parts:
        by_topic[topic].append(partition)
    admin_call(cluster, lambda admin: admin.elect_leaders(0, dict(by_topic)))
    wait_for(lambda: all(info["leader"] == broker for info in partitions(cluster).values()), 60, interval=0.5,
             what=f"broker {broker} leading every partition")
    return sorted(by_topic)


def fully_in_sync(cluster) -> bool:
    everyone = sorted(cluster.broker_ids)
    return all(info["isr"] == everyone for info in partitions(cluster).values())


def events_on_topics(bootstrap: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="cluster-test")
    try:
        tps = [TopicPartition(t, p) for t in EVENT_TOPICS for p in range(PARTITIONS)]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def wire_value(item) -> tuple[bytes, bool]:
    """The bytes `publish` puts on an event topic for an input, and whether it is valid."""
    if isinstance(item, str):
        return item.encode(), False
    try:
        return codec.encode_event(EventProducer.checked(item)), True
    except InvalidEvent:
        return codec.encode("Event", item), False


def assert_nothing_lost(bootstrap: str, items) -> int:
    """Every input is on the event topics, and every copy of a bad one has a rejection at
    its own position (the good ones are in the files, which equal the offline fold).
    Producers retrying through a leader's failure may have written some inputs twice
    (kafka-python's idempotent producer starts a new producer id after such errors): the
    fold takes a second copy as a duplicate. Returns how many copies there are."""
    on_topics = [r for t in EVENT_TOPICS for r in read_topic(bootstrap, t)]
    copies = collections.Counter(r.value for r in on_topics)
    wanted = collections.Counter(wire_value(i)[0] for i in items)
    assert all(copies[value] >= n for value, n in wanted.items()), "an input is not on the event topics"
    assert sum(copies.values()) == len(on_topics) >= len(items)
    bad = {value for value, valid in map(wire_value, items) if not valid}
    assert bad
    rejected = {(r["topic"], r["partition"], r["offset"]) for r in decoded(bootstrap, "rejected-events")}
    assert rejected == {(r.topic, r.partition, r.offset) for r in on_topics if r.value in bad}
    return len(on_topics) - len(items)


# --- the tests ---------------------------------------------------------------------------------

def test_the_topics_are_on_three_brokers_and_need_two_in_sync(cluster):
    specs = load_topic_specs("cluster", partitions=PARTITIONS)
    parts = partitions(cluster, [s.name for s in specs])
    assert {t for t, _ in parts} == {s.name for s in specs}
    assert all(len(info["replicas"]) == 3 and info["isr"] == [1, 2, 3] for info in parts.values())
    configs = admin_call(cluster, lambda admin: admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs], config_filter="all"))
    for name, entries in configs["topic"].items():
        assert entries["min.insync.replicas"]["value"] == "2", name
        assert entries["unclean.leader.election.enable"]["value"] == "false", name
    again = workerfile("topics", "--profile", "cluster", "--partitions", str(PARTITIONS), "--broker", cluster.bootstrap)
    assert again.returncode == 0 and again.stdout.count("verified") == len(specs), again.stderr


def test_kill_9_of_the_leader_mid_stream_loses_nothing_and_publishes_no_grant_twice(kafka, workers):
    items = generate_population(30, seed=31, months=18)
    expected = expected_files(items)
    worker = workers(name="stream")
    quarter = len(items) // 4
    publish(kafka.bootstrap, items[:quarter])
    wait_for(lambda: len(read_topic(kafka.bootstrap, "worker-files")) > 5, 120, what="first files")
    victim = partitions(kafka, ["training-events"])["training-events", 0]["leader"]
    led = lead_everything(kafka, victim)
    assert set(EVENT_TOPICS) | {"worker-files", "worker-services", "worker-state-changelog"} <= {
        t.removeprefix("workerfile-test-") for t in led}

    # mid-stream: a producer is publishing and the worker folding when the leader dies
    publishing = threading.Thread(target=publish, args=(kafka.bootstrap, items[quarter:3 * quarter]))
    publishing.start()
    wait_for(lambda: events_on_topics(kafka.bootstrap) > quarter + 200, 60, interval=0.2,
             what="the producer in the middle of its batch")
    files_before = len(read_topic(kafka.bootstrap, "worker-files"))
    kafka.kill(victim)
    publishing.join(180)
    assert not publishing.is_alive()
    publish(kafka.bootstrap, items[3 * quarter:])  # with the leader still down
    leaders = {info["leader"] for info in partitions(kafka).values()}
    assert victim not in leaders and leaders <= set(kafka.broker_ids)
    wait_for(lambda: len(read_topic(kafka.bootstrap, "worker-files")) > files_before + 5, 180,
             what="files published with the old leader down")

    kafka.start_node(victim)  # later: it comes back and catches up
    assert_files_equal(kafka.bootstrap, expected)
    grants = grants_published(kafka.bootstrap)
    assert sum(grants.values()) == expected_grant_count(expected) > 0
    assert max(grants.values()) == 1, "a grant was published twice"
    assert_nothing_lost(kafka.bootstrap, items)
    wait_for(lambda: fully_in_sync(kafka), 120, what=f"broker {victim} back in every in-sync replica set")
    worker.stop()  # leaves its group cleanly: the next test's worker takes over at once
    assert worker.proc.returncode == 0, worker.log_text()[-3000:]


def test_two_brokers_down_producers_get_clear_errors_and_nothing_accepted_is_lost(kafka, tmp_path):
    access = Access(tmp_path / "access")
    events = [i for i in generate_population(6, seed=32, months=24, anomalies=False) if isinstance(i, dict)]
    org = events[0]["source"]
    by_org = [e for e in events if e["source"] == org]  # a POST carries one organisation's events
    others = [e for e in events if e["source"] != org]
    during, before = by_org[: len(by_org) // 2], by_org[len(by_org) // 2:]
    emitted, accepted_before = others[: len(others) // 2], others[len(others) // 2:]
    assert during and emitted and accepted_before
    access.add_sources(events)
    proc = api_worker(kafka, tmp_path, access, app_id="workerfile-test")
    try:
        import os as _os, signal as _sig
        _wd = threading.Timer(15, lambda: _os.kill(proc.proc.pid, _sig.SIGRTMIN + 2)); _wd.start()
        ingest(proc.base_url, access, before + accepted_before)  # 202: on the cluster, acks=all
        _wd.cancel()
        wait_for(lambda: fully_in_sync(kafka), 60, what="every partition fully in sync")

        survivor, *down = kafka.broker_ids
        kafka.kill(*down)
        wait_for(lambda: all(info["isr"] == [survivor] for info in partitions(kafka).values()), 120, interval=0.5,
                 what="the controller noticing two brokers gone")

        # POST /events: a 503 with a reason, in bounded time
        status, body = call("POST", proc.base_url + "/events", during, token=access.tokens[f"src-{org}"],
                            timeout=INGEST_TIMEOUT + 50)
        assert status == 503, body
        assert body["error"] == "unavailable" and "min.insync.replicas" in body["message"]
        assert "send the same batch again" in body["message"]

        # workerfile emit: exit status 3, every event named as not confirmed
        upload = tmp_path / "upload.jsonl"
        upload.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in emitted))
        failed = workerfile("emit", str(upload), "--broker", kafka.bootstrap, "--timeout", str(EMIT_TIMEOUT))
        assert failed.returncode == 3, failed.stderr[-2000:]
        assert f"{len(emitted)} of {len(emitted)} events NOT confirmed" in failed.stderr
        assert "upload the same file again" in failed.stderr
        assert not SSN_LIKE.search(failed.stderr + failed.stdout)

        kafka.start_node(*down)  # they come back: sources send again, as they were told
        wait_for(lambda: call("POST", proc.base_url + "/events", during, token=access.tokens[f"src-{org}"],
                              timeout=INGEST_TIMEOUT + 50)[0] == 202, 120, interval=1, what="POST /events 202 again")
        wait_for(lambda: workerfile("emit", str(upload), "--broker", kafka.bootstrap,
                                    "--timeout", str(EMIT_TIMEOUT)).returncode == 0, 120, interval=1,
                 what="the upload confirmed")

        want = expected_files(events)
        try:
            wait_for(lambda: {s: f for s, f in latest_files(kafka.bootstrap).items() if s in want} == want, 180,
                     interval=2, what="the files of everything accepted")
        except TimeoutError:
            import os as _os, signal as _sig, time as _t
            _os.kill(proc.proc.pid, _sig.SIGUSR1); _t.sleep(3)
            got = latest_files(kafka.bootstrap)
            pytest.fail(f"{sum(got.get(s) != f for s, f in want.items())} of {len(want)} files differ from the "
                        "offline fold of everything accepted")
        grants = [s["service_id"] for s in decoded(kafka.bootstrap, "worker-services") if s["ssn"] in want]
        assert len(grants) == len(set(grants)) == expected_grant_count(want) > 0, "a grant missing or published twice"
    finally:
        proc.kill()
