"""The consumer loop of `workerfile sink` and `workerfile stats follow` (kafka-python):
reads `worker-files` and applies it to a store (`sinks.base.Store`: the file sink's
`FileStore` or the `StatsStore`), one database transaction per polled batch, rows and
offsets together.

- The sink assigns itself every partition of the topic (no Kafka consumer-group
  membership, nothing committed to Kafka): its offsets live in the database, in
  `sink_offsets` under the `--group` name, and are written in the same transaction as the
  rows. After a crash (even `kill -9`) it resumes exactly after the last committed batch:
  no record is applied twice or skipped. A partition without a stored offset is read from
  its beginning; new partitions of the topic are picked up while following.
- `once=True` reads up to the end offsets seen at the start, then returns; otherwise it
  follows the topic until SIGTERM/SIGINT (it finishes the current batch first).
- A record that is not a WorkerFile of its key (no key, a value that does not decode, a
  file of another SSN) stops the sink with an error naming its partition and offset, after
  committing what came before it: it is never skipped silently. To skip it on purpose,
  move the stored offset past it (`UPDATE sink_offsets SET next_offset = ...`).
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition

from schemas.identity import mask_ssn
from sinks.base import DEFAULT_GROUP, TOPIC, ApplyResult, FileChange, Store
from streams import codec
from streams.kafka_security import KafkaSecurity, or_env

log = logging.getLogger("workerfile.sink")

PARTITION_CHECK_INTERVAL = 30.0  # seconds between looks for new partitions while following
BOOTSTRAP_TIMEOUT_MS = 30_000  # how long to try the bootstrap servers before giving up


class SinkError(RuntimeError):
    """The sink cannot go on (a record it will not skip, a missing topic)."""


@dataclass
class SinkStats:
    records: int = 0
    files: int = 0
    tombstones: int = 0
    transactions: int = 0
    result: ApplyResult = field(default_factory=ApplyResult)
    offsets: dict[int, int] = field(default_factory=dict)

    def summary(self, topic: str = TOPIC) -> str:
        return (f"read {self.records} records of {topic} ({self.files} files, {self.tombstones} tombstones) in "
                f"{self.transactions} transactions: {self.result.written} rows written, {self.result.deleted} "
                f"deleted, {self.result.ignored} superseded or stale")


def file_change_of(record) -> FileChange:
    """The change a `worker-files` record makes; raises SinkError when it is not one."""
    where = f"{record.topic} partition {record.partition} offset {record.offset}"
    if record.key is None:
        raise SinkError(f"record without a key at {where}")
    try:
        ssn = bytes(record.key).decode("utf-8")
    except UnicodeDecodeError:
        raise SinkError(f"record whose key is not UTF-8 at {where}") from None
    if record.value is None:
        return FileChange(ssn, record.offset, None)
    try:
        name, file = codec.decode(record.value)
    except codec.CodecError as err:
        raise SinkError(f"undecodable value at {where} (key {mask_ssn(ssn)}): {err}") from None
    if name != "WorkerFile":
        raise SinkError(f"a {name} instead of a WorkerFile at {where}")
    if file.get("ssn") != ssn:
        raise SinkError(f"the file of {mask_ssn(file.get('ssn'))} under key {mask_ssn(ssn)} at {where}")
    return FileChange(ssn, record.offset, file)


class Sink:
    """Materialises `topic` into `store`. `run()` returns the stats; raises SinkError.
    `security`: the login (default: the WORKERFILE_KAFKA_* environment)."""

    def __init__(self, store: Store, bootstrap: str, group: str = DEFAULT_GROUP, topic: str = TOPIC,
                 batch_size: int = 500, poll_timeout_ms: int = 500, topic_timeout: float = 30.0,
                 security: KafkaSecurity | None = None):
        self.store = store
        self.bootstrap = bootstrap
        self.security = or_env(security)
        self.group = group
        self.topic = topic
        self.batch_size = batch_size
        self.poll_timeout_ms = poll_timeout_ms
        self.topic_timeout = topic_timeout
        self.stats = SinkStats()
        self._stopping = False

    def stop(self, *_args) -> None:
        """Ask the loop to stop after the current batch (a signal handler)."""
        self._stopping = True

    def _consumer(self) -> KafkaConsumer:
        return KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", isolation_level="read_committed",
                             max_poll_records=self.batch_size, metadata_max_age_ms=int(PARTITION_CHECK_INTERVAL * 1000),
                             bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS, client_id=f"workerfile-sink-{self.group}",
                             **self.security.kafka_python())

    def _partitions(self, consumer: KafkaConsumer, wait: float) -> set[int]:
        deadline = time.monotonic() + wait
        while True:
            partitions = consumer.partitions_for_topic(self.topic)
            if partitions:
                return set(partitions)
            if time.monotonic() >= deadline or self._stopping:
                where = "" if not self.security.sasl else f", or {self.security.describe()} may not read it"
                raise SinkError(f"topic {self.topic} not found on {self.bootstrap} (create it: workerfile topics{where})")
            time.sleep(0.5)

    def _assign(self, consumer: KafkaConsumer, partitions: set[int]) -> list[TopicPartition]:
        """Assign `partitions` and position each new one at its stored offset (else the beginning)."""
        before = {tp.partition for tp in consumer.assignment()}
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        stored = self.store.offsets(self.group, self.topic)
        for tp in tps:
            if tp.partition in before:
                continue
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])
            else:
                consumer.seek_to_beginning(tp)
        return tps

    def run(self, once: bool = False) -> SinkStats:
        consumer = self._consumer()
        try:
            tps = self._assign(consumer, self._partitions(consumer, self.topic_timeout))
            end = consumer.end_offsets(tps) if once else None
            next_check = time.monotonic() + PARTITION_CHECK_INTERVAL
            while not self._stopping:
                if once and all(consumer.position(tp) >= end[tp] for tp in tps):
                    break
                polled = consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.batch_size)
                if polled:
                    self._apply(polled)
                if not once and time.monotonic() >= next_check:
                    next_check = time.monotonic() + PARTITION_CHECK_INTERVAL
                    partitions = set(consumer.partitions_for_topic(self.topic) or ())
                    if partitions - {tp.partition for tp in tps}:
                        tps = self._assign(consumer, partitions | {tp.partition for tp in tps})
                        log.info("now reading %d partitions of %s", len(tps), self.topic)
            return self.stats
        finally:
            consumer.close(autocommit=False)

    def _apply(self, polled: dict) -> None:
        changes: list[FileChange] = []
        offsets: dict[int, int] = {}
        error: SinkError | None = None
        for tp, records in polled.items():
            for record in records:
                try:
                    change = file_change_of(record)
                except SinkError as err:
                    error = error or err  # commit what came before it, in every partition
                    break
                changes.append(change)
                offsets[tp.partition] = record.offset + 1
        if changes:
            result = self.store.apply(changes, offsets, group=self.group, topic=self.topic)
            self.stats.transactions += 1
            self.stats.records += len(changes)
            self.stats.tombstones += sum(1 for c in changes if c.file is None)
            self.stats.files += sum(1 for c in changes if c.file is not None)
            self.stats.result.add(result)
            self.stats.offsets.update(offsets)
        if error is not None:
            raise SinkError(f"{error} (before it: {self.stats.summary(self.topic)}; nothing at or after it "
                            f"in that partition applied or committed)")


def run_sink(store: Store, bootstrap: str, group: str = DEFAULT_GROUP, once: bool = False,
             batch_size: int = 500, topic: str = TOPIC, handle_signals: bool = True,
             security: KafkaSecurity | None = None) -> SinkStats:
    """Run a sink until the end of the topic (`once`) or until SIGTERM/SIGINT."""
    sink = Sink(store, bootstrap, group=group, topic=topic, batch_size=batch_size, security=security)
    previous = {}
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, sink.stop)
    try:
        return sink.run(once=once)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
