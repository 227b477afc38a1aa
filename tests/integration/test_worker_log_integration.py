"""The worker's log on a real broker: after an operator's erase it does not repeat faust's
"Stream has not started processing TP(topic='workerfile-identity-markers', ...)" (the
markers table's changelog must be a changelog to faust, not a stream it waits on); and
the markers are still recovered from that changelog by a worker of another application id."""

from __future__ import annotations

import time

import pytest

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from streams.admin import send_command
from streams.reader import latest_files, read_topic
from streams.runner import WorkerProcess, wait_for
from streams.topics import EVENT_TOPICS, IDENTITY_MARKERS, provision
from tests.integration.conftest import PARTITIONS, expected_files, publish
from workerfile.population import generate_population

pytestmark = pytest.mark.timeout(300)

IDLE_TIMEOUT = 3  # seconds: faust's stream_processing_timeout in this test (default 300)
LIVELOCK_CHECKS = 4  # faust checks every partition every 2.5 s (2.5 x the commit interval)


def committed_and_ends(bootstrap: str, group: str) -> dict[str, tuple[int | None, int]]:
    """{topic-partition: (offset committed by the consumer group `group`, end offset)} of
    the event topics."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(t, p) for t in EVENT_TOPICS for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(tps)
        committed = admin.list_group_offsets(group).get(group, {})
        return {f"{tp.topic}-{tp.partition}": (committed[tp].offset if tp in committed else None, ends[tp])
                for tp in tps}
    finally:
        consumer.close()
        admin.close()


def committed_to_the_end(bootstrap: str, group: str) -> bool:
    """Whether the consumer group `group` has committed every event topic to its end."""
    return all(end == 0 or (done is not None and done >= end)
               for done, end in committed_and_ends(bootstrap, group).values())


def test_no_stream_idle_error_on_the_markers_after_an_erase(kafka, tmp_path):
    """faust logs "Stream has not started processing TP" for an assigned partition of a
    topic with acks whose highwater is past the consumer's position while no stream took
    an event of it — which after an erase is always true of the markers' changelog when it
    is declared as an ordinary topic. faust only checks once the worker has run
    stream_processing_timeout seconds (5 minutes by default): this worker gets 3 s
    (faust's STREAM_PROCESSING_TIMEOUT variable), and the log is read after a few checks
    have run with the marker on the topic (a bounded wait, not a timed assertion)."""
    events = [e for e in generate_population(2, seed=81, months=6, anomalies=False) if isinstance(e, dict)]
    expected = expected_files(events)
    erased = sorted(expected)[0]
    provision(kafka.bootstrap, "workerfile-logs", PARTITIONS)
    proc = WorkerProcess(kafka.bootstrap, "workerfile-logs", tmp_path / "w", partitions=PARTITIONS,
                         env={"STREAM_PROCESSING_TIMEOUT": str(IDLE_TIMEOUT)}).start()
    try:
        publish(kafka.bootstrap, events)
        wait_for(lambda: latest_files(kafka.bootstrap, versions=False) == expected, 120, what="the files")
        send_command(kafka.bootstrap, "erase", erased, operator="ops", reason="test")
        wait_for(lambda: erased not in latest_files(kafka.bootstrap), 60, what="the erasure")
        wait_for(lambda: any(r.key == erased.encode() for r in read_topic(kafka.bootstrap, IDENTITY_MARKERS)),
                 60, what="the marker on its changelog")
        time.sleep(2.5 * LIVELOCK_CHECKS + IDLE_TIMEOUT)  # let faust's livelock check run a few times
        assert proc.running
    finally:
        proc.stop()
    log = proc.log_text()
    assert "ready: tables recovered" in log
    assert "Stream has not started processing" not in log, log[-3000:]
    assert erased not in log

    # a replay under another application id still knows the erasure (the markers' changelog
    # has a fixed name): every event folded again, the erased file not published again
    provision(kafka.bootstrap, "workerfile-logs-replay", PARTITIONS)
    replay = WorkerProcess(kafka.bootstrap, "workerfile-logs-replay", tmp_path / "replay", partitions=PARTITIONS).start()
    try:
        try:
            wait_for(lambda: committed_to_the_end(kafka.bootstrap, "workerfile-logs-replay"), 120,
                     what="the replay through every event")
        except TimeoutError as err:  # say where it stands: the worker's log
            behind = {tp: c for tp, c in committed_and_ends(kafka.bootstrap, "workerfile-logs-replay").items()
                      if c[1] and (c[0] is None or c[0] < c[1])}
            raise AssertionError(f"{err}; (committed, end) behind: {behind}; the replay's log ends:\n"
                                 f"{replay.log_text()[-8000:]}") from None
        files = latest_files(kafka.bootstrap, versions=False)
        assert erased not in files and files == {s: f for s, f in expected.items() if s != erased}
    finally:
        replay.stop()
    assert erased not in replay.log_text()
