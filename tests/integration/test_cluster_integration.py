"""The pipeline on a real 3-broker KRaft cluster, really failing (issue #11, item 5).

The module's cluster (`cluster` below: 3 brokers and a dedicated KRaft controller from the
same Maven jars, replication factor 3, min.insync.replicas 2, unclean leader election off,
started once for the module) gets its topics from `workerfile topics --profile cluster
--app-id`, and the stream workers run on it as deploy/cluster/README.md says
(WORKERFILE_REPLICATION=3). Then:

- the broker leading every partition of the event, output and state topics is killed
  with SIGKILL in the middle of the stream (events being published and folded) and
  started again later: the files equal the offline fold, no grant is published twice,
  every input is folded or on rejected-events;
- two of the three brokers are killed while the worker has acknowledged events to fold:
  `workerfile emit` stops with exit status 3 and says what was not acknowledged, POST
  /events answers 503 with a reason (neither hangs nor answers 500), the worker keeps
  trying its batch instead of stopping; once they are back the sources are served again.
  That everything answered 202, everything sent again and the backlog are then folded
  does NOT hold in every run (an open bug, README "Delivery guarantees" item 8): that
  check is in `cluster_outage_repro.py`, run by hand until it is fixed.

4 partitions rather than the cluster profile's 12, so that the file runs in a few minutes
on a small machine; what fails and what must hold does not depend on the number.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import threading

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError

from streams import codec
from streams.local_cluster import LocalCluster
from schemas.identity import mask_ssn
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
APP_ID = "workerfile-test"  # the stream workers' application id (that of the shared fixtures)
SSN_LIKE = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")


def workerfile(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """A `workerfile` command, as an operator or a source runs it."""
    return subprocess.run([sys.executable, "-m", "workerfile.cli", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


class PipelineCluster(LocalCluster):
    """The local cluster whose topics follow the `cluster` profile of deploy/topics.toml
    (replication factor 3, min.insync.replicas 2): what the shared fixtures (`workers`,
    `api_worker`) provision the workers' changelogs with (conftest.topics_profile)."""

    topics_profile = "cluster"


@pytest.fixture(scope="module")
def cluster():
    """One 3-broker KRaft cluster for the module (a dedicated controller, replication factor
    3, min.insync.replicas 2, small heaps), with the pipeline's topics and the changelogs of
    APP_ID, made as an operator makes them. At the end every node is killed, whatever the
    tests did (a killed broker is already gone), and none may be left running."""
    nodes = PipelineCluster(brokers=3, controllers=1)
    try:
        nodes.start()
        result = workerfile("topics", "--profile", "cluster", "--partitions", str(PARTITIONS),
                            "--app-id", APP_ID, "--broker", nodes.bootstrap)
        assert result.returncode == 0, result.stderr
        yield nodes
    finally:
        nodes.kill(*nodes.nodes)  # a throw-away cluster: no controlled shutdown to wait for
        nodes.stop()
        assert not any(nodes.is_running(i) for i in nodes.nodes), "a node of the cluster is still running"


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
    reassignment that moves no data), then a preferred leader election; again for a topic
    created meanwhile (faust creates a training institution's view when first needed).
    Returns the topics."""
    for rounds in range(6):
        parts = partitions(cluster)
        others = {tp: info for tp, info in parts.items() if info["leader"] != broker}
        if not others:
            return sorted({t for t, _ in parts})
        if rounds == 5:
            raise AssertionError(f"broker {broker} does not lead every partition: {sorted(others)}")
        moves = {TopicPartition(t, p): [broker] + [r for r in info["replicas"] if r != broker]
                 for (t, p), info in others.items() if info["replicas"][0] != broker}
        if moves:
            admin_call(cluster, lambda admin: admin.alter_partition_reassignments(moves))
            wait_for(lambda: all(partitions(cluster, sorted({t for t, _ in others}))[tp]["replicas"][0] == broker
                                 for tp in others), 60, interval=0.5, what=f"broker {broker} first in the replica lists")
        by_topic = collections.defaultdict(list)
        for topic, partition in others:
            by_topic[topic].append(partition)
        admin_call(cluster, lambda admin: admin.elect_leaders(0, dict(by_topic)))
        wait_for(lambda: all(partitions(cluster, sorted(by_topic))[tp]["leader"] == broker for tp in others), 60,
                 interval=0.5, what=f"broker {broker} leading the partitions")


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
    (they are not idempotent: streams.producer.delivery_within): the fold takes a second
    copy as a duplicate. Returns how many copies there are."""
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
    specs = load_topic_specs("cluster", partitions=PARTITIONS, app_id=APP_ID)  # the state changelog too
    parts = partitions(cluster, [s.name for s in specs])
    assert {t for t, _ in parts} == {s.name for s in specs}
    assert all(len(info["replicas"]) == 3 and info["isr"] == [1, 2, 3] for info in parts.values())
    configs = admin_call(cluster, lambda admin: admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs], config_filter="all"))
    for name, entries in configs["topic"].items():
        assert entries["min.insync.replicas"]["value"] == "2", name
        assert entries["unclean.leader.election.enable"]["value"] == "false", name
    again = workerfile("topics", "--profile", "cluster", "--partitions", str(PARTITIONS), "--app-id", APP_ID,
                       "--broker", cluster.bootstrap)
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


def test_two_brokers_down_producers_get_clear_errors_and_the_worker_keeps_trying(kafka, tmp_path):
    """What holds with two of three brokers down, every run: clear errors for the sources
    (503 with its reason, emit's exit status 3), the worker keeps trying instead of
    stopping, and the sources are served again once the brokers are back. NOT asserted
    here: that every event acknowledged just before the brokers died is folded. In about
    half of the runs some are skipped (an open bug: README "Delivery guarantees", item 8);
    `python -m pytest tests/integration/cluster_outage_repro.py` runs this scenario with
    that check and, when it fails, names the events each state lacks and the group's
    committed offsets."""
    two_brokers_down(kafka, tmp_path, check_files=False)


def two_brokers_down(kafka, tmp_path, check_files: bool) -> None:
    """The scenario above; with `check_files`, also every file equal to the offline fold
    of everything accepted and each grant published once."""
    access = Access(tmp_path / "access")
    events = [i for i in generate_population(10, seed=32, months=24, anomalies=False) if isinstance(i, dict)]
    org = collections.Counter(e["source"] for e in events).most_common(1)[0][0]
    by_org = [e for e in events if e["source"] == org]  # a POST carries one organisation's events
    others = [e for e in events if e["source"] != org]
    third = len(others) // 3
    during = by_org[: len(by_org) // 2]  # POST /events while two brokers are down
    emitted = others[:third]  # workerfile emit while two brokers are down
    backlog = others[third:2 * third]  # acknowledged, not yet folded when the brokers die
    before = by_org[len(by_org) // 2:] + others[2 * third:]  # POST /events with every broker up
    assert during and emitted and backlog and before
    access.add_sources(events)
    proc = api_worker(kafka, tmp_path, access, app_id=APP_ID)
    try:
        ingest(proc.base_url, access, before)  # 202: on the cluster, acks=all
        wait_for(lambda: fully_in_sync(kafka), 60, what="every partition fully in sync")

        # The worker has events to fold when the brokers die: paused (SIGSTOP, a few seconds,
        # well inside its group session) while they are published, acknowledged by all three
        # brokers, and two brokers are killed; then it goes on, and its outputs cannot be written.
        survivor, *down = kafka.broker_ids
        os.kill(proc.proc.pid, signal.SIGSTOP)
        try:
            assert publish(kafka.bootstrap, backlog)["valid"] == len(backlog)
            kafka.kill(*down)
        finally:
            os.kill(proc.proc.pid, signal.SIGCONT)
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
        # the worker rides the outage out (its batch tried again), it does not stop
        assert proc.running, proc.log_text()[-3000:]

        kafka.start_node(*down)  # they come back: sources send again, as they were told
        wait_for(lambda: call("POST", proc.base_url + "/events", during, token=access.tokens[f"src-{org}"],
                              timeout=INGEST_TIMEOUT + 50)[0] == 202, 120, interval=1, what="POST /events 202 again")
        wait_for(lambda: workerfile("emit", str(upload), "--broker", kafka.bootstrap,
                                    "--timeout", str(EMIT_TIMEOUT)).returncode == 0, 120, interval=1,
                 what="the upload confirmed")

        assert proc.running, proc.log_text()[-3000:]
        assert not SSN_LIKE.search(proc.log_text())
        if not check_files:
            return
        want = expected_files(events)

        def theirs():
            return {s: f for s, f in latest_files(kafka.bootstrap, versions=False).items() if s in want}
        try:
            wait_for(lambda: theirs() == want, 180, interval=2, what="the files of everything accepted")
        except TimeoutError:
            got = theirs()
            why = missing_from_states(kafka, proc, access, {"before": before, "backlog": backlog, "during": during,
                                                            "emitted": emitted}, want)
            pytest.fail(f"{sum(got.get(s) != f for s, f in want.items())} of {len(want)} files differ from the "
                        f"offline fold of everything accepted:\n{why}")
        grants = collections.Counter(s["service_id"] for s in decoded(kafka.bootstrap, "worker-services")
                                     if s["ssn"] in want and s["service"] == "skill_upgrade_subsidy"
                                     and s["status_before"] is None)
        assert sum(grants.values()) == expected_grant_count(want) > 0, "a grant is missing"
        assert max(grants.values()) == 1, "a grant was published twice"
        # it folded the backlog although its outputs could not be written for a while: its batch
        # waited for the deliveries, or failed and was tried again ("brokers unavailable: trying
        # for up to 300 s" in its log; which one depends on what aiokafka knew of the leaders)
        assert proc.running, proc.log_text()[-3000:]
        assert not SSN_LIKE.search(proc.log_text())
    finally:
        proc.kill()



def missing_from_states(kafka, proc, access, sets: dict[str, list[dict]], want: dict[str, dict]) -> str:
    """Why files differ, for the failure message: for each differing file, the accepted
    events its worker's state lacks (GET /workers/{ssn}/events), with the set they came in
    and where they are on the event topics; the group's committed offsets against the end
    offsets (committed past an event not in the state = the event was skipped). Also asks
    the worker (SIGUSR1, mode's task dump) to write its asyncio tasks to its log."""
    os.kill(proc.proc.pid, signal.SIGUSR1)
    where = collections.defaultdict(list)
    for t in EVENT_TOPICS:
        for r in read_topic(kafka.bootstrap, t):
            try:
                where[codec.decode(r.value)[1]["event_id"]].append(f"{t}/{r.partition}@{r.offset}")
            except Exception:  # noqa: BLE001 - a bad record: not one of ours
                pass
    got = latest_files(kafka.bootstrap, versions=False)
    lines = []
    for ssn in [s for s, f in want.items() if got.get(s) != f]:
        status, body = call("GET", proc.base_url + f"/workers/{ssn}/events", token=access.tokens["operator"],
                            timeout=60)
        in_state = {e["event_id"] for e in body.get("events", [])} if status == 200 else set()
        lacking = [f"{name}: {e['type']} {where.get(e['event_id'])}" for name, events in sets.items()
                   for e in events if e["ssn"] == ssn and e["event_id"] not in in_state]
        lines.append(f"{mask_ssn(ssn)} (GET events {status}) lacks {len(lacking)}: {'; '.join(lacking[:12])}")
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=APP_ID, enable_auto_commit=False)
    try:
        tps = [TopicPartition(t, p) for t in EVENT_TOPICS for p in range(PARTITIONS)]
        ends = consumer.end_offsets(tps)
        lines.append("committed/end: " + ", ".join(f"{tp.topic}/{tp.partition} {consumer.committed(tp)}/{ends[tp]}"
                                                  for tp in tps))
    finally:
        consumer.close()
    return "\n".join(lines)
