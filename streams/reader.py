"""Reading a topic from its beginning to its current end (kafka-python): for the demo,
the tests and the benchmarks, and for integrators who want a snapshot of `worker-files`.
"""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition

from streams import codec
from streams.kafka_security import KafkaSecurity, or_env


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0, security: KafkaSecurity | None = None) -> list:
    """Every record of `topic` up to the end offsets seen at the start (read_committed).
    `security`: the login (default: the WORKERFILE_KAFKA_* environment)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             isolation_level="read_committed", consumer_timeout_ms=1000,
                             **or_env(security).kafka_python())
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} did not reach its end in {timeout} s")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(r for r in batch if r.offset < end[TopicPartition(r.topic, r.partition)])
        return records
    finally:
        consumer.close()


def latest_files(bootstrap: str, timeout: float = 30.0, security: KafkaSecurity | None = None, *,
                 versions: bool = True) -> dict[str, dict]:
    """The latest file of every worker on `worker-files` (a tombstone removes one).
    `versions=False`: without the `version` of the change that published each, i.e. the
    files as derived from the events (what `workerfile fold` gives)."""
    files: dict[str, dict] = {}
    for record in read_topic(bootstrap, "worker-files", timeout, security):
        ssn = record.key.decode()
        if record.value is None:
            files.pop(ssn, None)
        else:
            files[ssn] = codec.decode(record.value)[1]
            if not versions:
                files[ssn].pop("version", None)
    return files


def decoded(bootstrap: str, topic: str, timeout: float = 30.0, security: KafkaSecurity | None = None) -> list[dict]:
    """Every value of an output topic, decoded to its JSON form."""
    return [codec.decode(r.value)[1] for r in read_topic(bootstrap, topic, timeout, security) if r.value is not None]
