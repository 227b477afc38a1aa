"""Fixtures of the integration tests: a real Apache Kafka broker (KRaft, from the jars
Maven fetched), the project's topics, and helpers to publish a population and to
compute what `workerfile fold` makes of the same events."""

from __future__ import annotations

import uuid

import orjson
import pytest

from processors.batch import fold_lines
from streams import codec
from streams.local_kafka import LocalKafka
from streams.producer import EventProducer, InvalidEvent
from streams.runner import WorkerProcess
from streams.topics import ensure_topics, load_topic_specs

PARTITIONS = 4


@pytest.fixture
def kafka():
    """A fresh single-node broker per test: topics start empty."""
    broker = LocalKafka()
    broker.start()
    try:
        ensure_topics(broker.bootstrap, load_topic_specs("local", partitions=PARTITIONS))
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def workers(kafka, tmp_path):
    """Start `workerfile worker` processes; every one is stopped at the end."""
    started: list[WorkerProcess] = []

    def start(app_id: str = "workerfile-test", name: str | None = None) -> WorkerProcess:
        name = name or f"w{len(started)}"
        proc = WorkerProcess(kafka.bootstrap, app_id, tmp_path / name, partitions=PARTITIONS).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def as_line(item) -> bytes:
    return item.encode() if isinstance(item, str) else orjson.dumps(item)


def expected_files(items) -> dict[str, dict]:
    """What the offline fold (`workerfile fold`) makes of the same inputs, by ssn."""
    batch = fold_lines([as_line(i) for i in items])
    return {f["ssn"]: f for f in batch.files()}


def publish(bootstrap: str, items, topic_for_bad: str = "training-events") -> dict[str, int]:
    """Publish inputs as producers would: valid events through the validating producer
    (keyed by normalised SSN); invalid events Avro-encoded as they are, keyed by the
    raw ssn; strings as raw bytes. Returns counts by kind."""
    counts = {"valid": 0, "invalid": 0, "raw": 0}
    with EventProducer(bootstrap) as producer:
        for item in items:
            if isinstance(item, str):
                producer.send_raw(topic_for_bad, uuid.uuid4().hex.encode(), item.encode())
                counts["raw"] += 1
                continue
            try:
                event = producer.checked(item)
            except InvalidEvent:
                value = codec.encode("Event", item)
                producer.send_raw(topic_for_bad, str(item.get("ssn")).encode(), value)
                counts["invalid"] += 1
                continue
            key = item["ssn"].encode()  # as the producer wrote it: legacy keys get re-keyed
            producer.send_raw(producer.topic_for(event), key, codec.encode_event(event))
            counts["valid"] += 1
    return counts
