"""Each worker's access log, a view of the topic `worker-access-log` (issue #11).

Every read of a file through the API (`streams.web`) and every operator action on it
(`streams.handler.audit_record`) is one record on `worker-access-log`, keyed by the
SSN, and that topic is the only place where it is written. `GET
/workers/{ssn}/access-log` answers from `AccessLogView`: the records of the SSN's
partition, read from the topic itself by a consumer of its own (assigned, no consumer
group, no committed offsets, no table and no changelog) — from the beginning the first
time a partition is asked for after the worker started (or after a rebalance took the
partition away), then from where it stopped; and before answering, always up to the
partition's end offset *at the time of the request*. So:

- the answer lists every record on the topic for that SSN, and nothing else: a read
  that reached the topic cannot be missing from it, whatever happened to a worker (the
  table this replaces could lose a write that the consumer group's committed offset had
  already passed, and never read it again: issue #11);
- a read acknowledged before the request (the API answers a read only once its record is
  acknowledged) is in the answer: no waiting for an agent to catch up;
- the cost: the first request for a partition after a start reads the whole partition
  (the topic keeps 3 years by default), and the worker keeps the records of the
  partitions it was asked for in memory, as their Avro bytes (about 150-250 bytes a read),
  decoded only when asked for.

A worker that does not own the SSN's partition forwards the request (faust's router, by
the worker-state table: all topics are co-partitioned), so one worker holds a partition's
view; the view is correct on any worker all the same, since it depends on nothing but
the topic.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from streams import codec
from streams.topics import WORKER_ACCESS_LOG
from workerfile.logmask import mask_text

log = logging.getLogger("workerfile.access_log")
READ_TIMEOUT = 30.0  # seconds a request waits for its partition to be read up to its end


class AccessLogUnavailable(Exception):
    """The partition could not be read up to its end in time (the request answers 503)."""


def partition_of(key: bytes, partitions: int) -> int:
    """The partition of `key` as every producer of the topic chooses it (the Java client's
    and aiokafka's default partitioner: murmur2 of the key bytes)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass
class PartitionView:
    """The records of one partition read so far: Avro values by key, in offset order, and
    the offset of the next record to read (None: not read at all yet)."""

    position: int | None = None
    by_key: dict[bytes, list[bytes]] = field(default_factory=dict)
    skipped: int = 0  # records without a key or value (never written by the project)

    def add(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        if self.position is not None and offset < self.position:
            return  # read already (a fetch that overlaps the last one)
        if key is None or value is None:
            self.skipped += 1
        else:
            self.by_key.setdefault(key, []).append(value)
        self.position = offset + 1


def decode_entries(values: list[bytes], where: str) -> list[dict]:
    """The access-log entries of Avro values; one that does not decode is left out, and
    said in the log (masked), rather than failing the page."""
    entries = []
    for value in values:
        try:
            entries.append(codec.decode(value)[1])
        except Exception as err:  # noqa: BLE001 - one bad record must not hide the others
            log.warning("an undecodable record on %s left out of an access log: %s", where,
                        mask_text(f"{type(err).__name__}: {err}"))
    return entries


class AccessLogView:
    """The access logs of `topic`'s partitions, read from the topic on demand (see the
    module's docstring). One consumer, used by one request at a time."""

    def __init__(self, bootstrap: str, partitions: int, client_kwargs: dict | None = None,
                 topic: str = WORKER_ACCESS_LOG, timeout: float = READ_TIMEOUT):
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.client_kwargs = client_kwargs or {}  # the login (settings.aiokafka_kwargs())
        self.topic = topic
        self.timeout = timeout
        self.views: dict[int, PartitionView] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    def keep_only(self, partitions: set[int]) -> None:
        """Drop what was read of other partitions (their requests go to other workers now);
        only memory is freed: a partition asked for again is read again from the beginning."""
        for p in set(self.views) - set(partitions):
            del self.views[p]

    async def entries(self, key: bytes) -> list[dict]:
        """Every entry of `key` on the topic, oldest first, up to the end offset of its
        partition at the time of the call. Raises AccessLogUnavailable when the partition
        could not be read that far within the timeout (a later call goes on from there)."""
        partition = partition_of(key, self.partitions)
        try:
            view = await asyncio.wait_for(self._read_to_end(partition), self.timeout)
        except asyncio.TimeoutError:
            raise AccessLogUnavailable(f"{self.topic} partition {partition} was not read up to its end in "
                                       f"{self.timeout:.0f} s") from None
        except KafkaError as err:
            raise AccessLogUnavailable(f"{self.topic} partition {partition} could not be read: "
                                       f"{type(err).__name__}") from err
        return decode_entries(list(view.by_key.get(key, ())), f"{self.topic}/{partition}")

    async def _read_to_end(self, partition: int) -> PartitionView:
        async with self._lock:
            consumer = await self._ensure_consumer()
            tp = TopicPartition(self.topic, partition)
            view = self.views.setdefault(partition, PartitionView())
            end = (await consumer.end_offsets([tp]))[tp]
            if view.position is not None and view.position >= end:
                return view
            consumer.assign([tp])
            if view.position is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, view.position)
            while (await consumer.position(tp)) < end:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    view.add(record.offset, record.key, record.value)
            # past what the log no longer holds (retention) or holds no record at (markers)
            view.position = max(view.position or 0, await consumer.position(tp))
            return view

    async def _ensure_consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                        isolation_level="read_committed", **self.client_kwargs)
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
