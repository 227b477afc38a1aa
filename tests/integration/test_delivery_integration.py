"""Nothing may be lost, on a real broker: bad values of any size amid valid events of the
same partitions and batches are each rejected (an oversized one with a bounded input,
its size and SHA-256) while every valid event is folded; and a worker whose sends fail
commits no offset past the failed batch, stops loudly, and a worker started after the
cause is fixed folds every event."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.structs import TopicPartition

from streams import codec
from streams.handler import INPUT_LIMIT
from streams.reader import read_topic
from streams.runner import wait_for
from streams.topics import EVENT_TOPICS
from tests.integration.conftest import expected_files, publish
from tests.integration.test_stream_integration import assert_files_equal, grants_published
from workerfile.population import generate_population

pytestmark = pytest.mark.timeout(420)

APP_ID = "workerfile-test"  # the workers fixture's default application id: the consumer group
BIG = 1_200_000  # bytes: above the producer's default limit of 1 MB once base64-encoded


def set_topic_config(bootstrap: str, topic: str, **config: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                            configs={k.replace("_", "."): v for k, v in config.items()})])
    finally:
        admin.close()


def committed_offsets(bootstrap: str, group: str = APP_ID) -> dict[TopicPartition, int]:
    """The group's committed offsets on the event topics (kafka-python's admin)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {tp: meta.offset for tp, meta in admin.list_group_offsets(group)[group].items()
                if tp.topic in EVENT_TOPICS and meta.offset >= 0}
    finally:
        admin.close()


def end_offsets(bootstrap: str) -> dict[TopicPartition, int]:
    ends = {}
    for topic in EVENT_TOPICS:
        for record in read_topic(bootstrap, topic):
            tp = TopicPartition(topic, record.partition)
            ends[tp] = max(ends.get(tp, 0), record.offset + 1)
    return ends


def test_bad_values_of_any_size_amid_valid_events_are_rejected_and_every_valid_event_folded(kafka, workers):
    items = generate_population(20, seed=31, months=12)
    expected = expected_files(items)
    set_topic_config(kafka.bootstrap, "training-events", max_message_bytes=str(4 * BIG))
    ssns = sorted(expected)
    good = codec.encode("Event", next(i for i in items if isinstance(i, dict) and i["type"] == "training.enrolled"))
    bad_values = {
        "oversized": os.urandom(BIG),
        "garbage": b"\x00\x01 definitely not avro \xff",
        "truncated": good[: len(good) // 2],
        "header only": good[:10],
    }
    # keyed by workers of the population: in the same partitions as their valid events, all
    # produced before the worker starts, so that they share its batches
    positions: dict[tuple[str, int, int], str] = {}
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", max_request_size=4 * BIG)
    try:
        half = len(items) // 2
        publish(kafka.bootstrap, items[:half])
        for n, (name, value) in enumerate(bad_values.items()):
            meta = producer.send("training-events", key=ssns[n % len(ssns)].encode(), value=value).get(60)
            positions[(meta.topic, meta.partition, meta.offset)] = name
        producer.flush()
    finally:
        producer.close()
    publish(kafka.bootstrap, items[half:])
    worker = workers()
    assert_files_equal(kafka.bootstrap, expected)

    def rejections():
        found = {}
        for record in read_topic(kafka.bootstrap, "rejected-events"):
            _, body = codec.decode(record.value)
            where = (body["topic"], body["partition"], body["offset"])
            if where in positions:
                found[positions[where]] = body
        return found if len(found) == len(positions) else None

    found = wait_for(rejections, 60, what="a rejection of every bad value")
    assert {name: body["reason"] for name, body in found.items()} == {name: "malformed" for name in bad_values}
    big = found["oversized"]
    assert big["input_truncated"] is True and big["input_encoding"] == "base64"
    assert big["input_size"] == BIG
    assert big["input_sha256"] == hashlib.sha256(bad_values["oversized"]).hexdigest()
    assert base64.b64decode(big["input"]) == bad_values["oversized"][:INPUT_LIMIT]
    for name in ("garbage", "truncated", "header only"):
        assert found[name]["input_truncated"] is False
        assert base64.b64decode(found[name]["input"]) == bad_values[name]
    assert worker.running, worker.log_text()[-2000:]


def test_a_failing_send_commits_nothing_past_its_batch_and_stops_the_worker_loudly(kafka, workers):
    items = generate_population(24, seed=32, months=12, anomalies=False)
    expected = expected_files(items)
    half = len(items) // 2
    publish(kafka.bootstrap, items[:half])
    first = workers(name="failing")
    assert_files_equal(kafka.bootstrap, expected_files(items[:half]))
    before = end_offsets(kafka.bootstrap)
    # the first half's offsets are committed (every commit interval)
    wait_for(lambda: committed_offsets(kafka.bootstrap) == before, 60, what="the first half committed")

    set_topic_config(kafka.bootstrap, "worker-files", max_message_bytes="200")  # every file is larger
    publish(kafka.bootstrap, items[half:])
    wait_for(lambda: not first.running, 120, what="the worker stopping")
    assert first.proc.returncode == 70
    log = first.log_text()
    assert "failed 4 times" in log and "Stopping the worker without acking it" in log
    assert "MessageSizeTooLarge" in log or "RecordTooLarge" in log or "TooLarge" in log
    committed = committed_offsets(kafka.bootstrap)
    assert all(committed.get(tp, 0) <= offset for tp, offset in before.items()), "committed past the failed batch"
    assert set(committed) <= set(before)

    set_topic_config(kafka.bootstrap, "worker-files", max_message_bytes="1048588")  # the broker's default
    second = workers(name="after")
    assert_files_equal(kafka.bootstrap, expected)
    grants = grants_published(kafka.bootstrap)
    assert max(grants.values()) == 1, "a grant was published twice"
    assert second.running
