"""The faust application: one agent folds the four event topics (and re-keyed events)
into a RocksDB-backed table of worker states, and publishes files, changes, service
events and rejections. The agent is a thin shell around
`streams.batch_processor.BatchProcessor` (the batch's ordering rules, tested with fakes)
and `streams.handler` (decode, validate, fold, derive).

Delivery guarantees (at-least-once processing, made safe by ordering and idempotence):
1. for a batch, every output record is handed to the producer without waiting, and the
   delivery futures are gathered once *before* the new states are written to the table
   (whose changelog is flushed before offsets commit);
2. after a crash, the uncommitted events are processed again: the fold recognises
   events already in the state as duplicates; outputs whose state was lost are
   published again with identical content (same file, same change version);
3. a service event (subsidy grant) is published only if its stable `service_id` is not
   already on `worker-services` (a per-partition ledger read from the topic), so each
   grant is published exactly once, even across kill -9;
4. a batch that fails (a send or a delivery) is processed again a few times, then the
   worker exits without acking it (`stop_without_acking`): nothing is ever skipped. While
   the failure is one the cluster recovers from by itself (brokers down, too few in-sync
   replicas), it is tried again for up to WORKERFILE_OUTAGE_WINDOW seconds first (`retry_delay`).

Each worker's access log (`worker-access-log`, written by the HTTP API for every read and
by the processors for every operator action) is not a table: `GET
/workers/{ssn}/access-log` answers from a view of the topic itself
(`streams.access_log.AccessLogView`), so nothing on the topic can be missing from it.

Every topic the worker uses and every changelog of its tables must exist before it starts
(`workerfile topics --app-id ID` creates them; `workerfile worker` checks, see
`streams.topics.wait_for_topics`): faust would otherwise create a changelog while the
first worker of a new application id joins its group, and a table whose changelog the
group's metadata did not have yet fails every write (PartitionsMismatch, issue #11).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
import weakref

import faust
import faust.streams as faust_streams
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.identity import mask_text
from processors.organisations import DEVELOPMENT_MODE, load_organisations
from processors.services import load_service_rules
from streams import codec
from streams.access import Callers, load_pseudonym_key, load_views
from streams.access_log import AccessLogView
from streams.batch_processor import BatchProcessor, PendingWrite
from streams.handler import Audiences
from streams.settings import StreamSettings
from streams.topics import (
    EVENT_TOPICS, IDENTITY_MARKERS, OPERATOR_COMMANDS, REKEYED_EVENTS, WORKER_SERVICES, changelog_topic,
    on_demand_view_config,
)
from streams.web import register_web

log = logging.getLogger("workerfile.stream")
BATCH_MAX = 4000
PRODUCER_BUFFER = 2 * BATCH_MAX  # faust's own table writes (the markers) queued before the stream waits
BATCH_WITHIN = 0.3  # seconds
STATE_CACHE_SIZE = 20_000  # decoded worker states kept in memory (the table stays the truth)
BATCH_ATTEMPTS = 4  # a batch whose sends fail is processed again this many times in all...
BATCH_BACKOFF = 0.5  # ...after 0.5, 1, 2 s; then the worker stops (exit status EXIT_BATCH_FAILED)
EXIT_BATCH_FAILED = 70
# A failure the cluster recovers from by itself is tried again for this long (seconds), every
# BATCH_BACKOFF_MAX s at most, before the worker stops: two of three brokers down leave too few
# in-sync replicas until one is back, and the worker (and its HTTP API answering 503) stays.
OUTAGE_WINDOW = 300.0  # seconds (WORKERFILE_OUTAGE_WINDOW, StreamSettings.outage_window)
BATCH_BACKOFF_MAX = 10.0


def transient(err: BaseException) -> bool:
    """A failure that ends when brokers come back: a broker or leader unreachable, fewer
    in-sync replicas than min.insync.replicas, a request or delivery timeout (aiokafka's
    retriable errors, its KafkaTimeoutError, a waiter it cancelled when a leader went away),
    or a topic (a per-organisation view) that cannot be created with its replication
    factor while brokers are missing; a schema registry that cannot be reached."""
    from aiokafka.errors import InvalidReplicationFactorError, KafkaTimeoutError

    return (isinstance(err, (asyncio.TimeoutError, asyncio.CancelledError, KafkaTimeoutError,
                             InvalidReplicationFactorError, codec.RegistryUnavailable))
            or getattr(err, "retriable", False) is True)


def retry_delay(err: BaseException, attempt: int, failing_for: float, window: float = OUTAGE_WINDOW) -> float | None:
    """Seconds to wait before processing a failed batch again, or None to stop the worker.
    `attempt`: how many times it failed so far; `failing_for`: seconds since its first
    failure. Any failure: BATCH_ATTEMPTS tries in all (after 0.5, 1, 2 s); a transient one:
    tries after 0.5, 1, 2, 4, 8, then every 10 s, for up to `window` seconds."""
    delay = min(BATCH_BACKOFF * 2 ** (attempt - 1), BATCH_BACKOFF_MAX)
    if transient(err):
        return delay if failing_for < window else None
    return delay if attempt < BATCH_ATTEMPTS else None


# The RocksDB memory of each table partition's database. faust's defaults are 64 MiB write
# buffers x 3 and a block cache of 2 GiB for EACH partition's database, so a worker's
# memory grows with the state it holds (bench/rehearsal.py: 823 MiB of RSS after 5,000
# workers on 8 partitions, ~600 MiB of it memtables) and is bounded only by 8 x 2.2 GiB;
# with these, by 8 x (2 x 16 + 32) MiB on 8 partitions.
ROCKSDB_OPTIONS = {"write_buffer_size": 16 * 2**20, "max_write_buffer_number": 2, "block_cache_size": 32 * 2**20}


def stop_without_acking(status: int) -> None:
    """End the process at once, without acking the batch being processed.

    faust's `Stream.take_events` acks every event of a batch in the `finally` around its
    `yield`, whatever the agent body did with it: when the body raises, the generator is
    closed and acks the batch, faust's agent error handler commits (`on_task_error`), and
    the supervisor restarts the agent on the next batch — the failed batch's events would
    be neither folded nor rejected. Cancelling the agent runs the same `finally`. So a
    batch that cannot be completed is never left to faust: the process exits here, inside
    the agent body, before that `finally` can run (`os._exit` runs no finally blocks, no
    atexit, commits nothing). The offsets stay at the last completed batch, whose outputs
    and states were delivered and written (offsets commit only after the producer and the
    table's changelog are flushed); a restarted worker processes the batch again, exactly as
    after kill -9 (duplicates recognised, grants checked against worker-services)."""
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def in_partition_of(event: faust.EventT) -> None:
    """Make `event` the current event of this task only: faust's table reads and writes
    (and its changelog) use the current event's partition. (Stream._set_current_event
    would also change the stream's attribute that the take_events buffer reads from
    another task, and lose events.)"""
    faust_streams._current_event.set(weakref.ref(event))


class ServiceLedger:
    """The status of the last event of each service_id on `worker-services`, per
    partition, read from the topic itself when first needed after each rebalance (an
    event written before contract section 9 has no status: its grant was offered)."""

    def __init__(self, bootstrap: str, client_kwargs: dict | None = None):
        self.bootstrap = bootstrap
        self.client_kwargs = client_kwargs or {}  # the login (settings.aiokafka_kwargs())
        self.by_partition: dict[int, dict[str, str]] = {}

    def forget(self) -> None:
        self.by_partition.clear()

    async def published(self, partition: int) -> dict[str, str]:
        if partition not in self.by_partition:
            self.by_partition[partition] = await self._read(partition)
        return self.by_partition[partition]

    async def _read(self, partition: int) -> dict[str, str]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    isolation_level="read_committed", **self.client_kwargs)
        await consumer.start()
        try:
            tp = TopicPartition(WORKER_SERVICES, partition)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            last: dict[str, str] = {}
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for message in batch.get(tp, []):
                    _, service = codec.decode(message.value)
                    last[service["service_id"]] = service.get("status") or "offered"
            return last
        finally:
            await consumer.stop()


def create_app(settings: StreamSettings | None = None) -> faust.App:
    """Build the faust app for these settings (a fresh app id replays every file)."""
    settings = settings or StreamSettings.from_env()
    coordinator_log = logging.getLogger("aiokafka.consumer.group_coordinator")
    if not any(isinstance(f, TransientCoordinatorErrors) for f in coordinator_log.filters):
        coordinator_log.addFilter(TransientCoordinatorErrors())
    audiences = load_audiences(settings)
    organisations = load_organisations(settings.organisations)  # raises OrganisationsError if invalid
    rules = load_service_rules(settings.services)  # raises ServiceRulesError if invalid
    if organisations is None:
        log.warning("%s; set WORKERFILE_ORGANISATIONS to the registry file", DEVELOPMENT_MODE)
    else:
        log.info("organisation registry %s: %d organisations", settings.organisations, len(organisations))
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.broker}",
        broker_credentials=settings.kafka_credentials(),
        store="rocksdb://",
        datadir=settings.data_dir,
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval,
        producer_acks=-1,
        producer_linger=0.02,  # seconds: fewer, larger produce requests (nothing waits on one send)
        producer_max_batch_size=256 * 1024,  # bytes per partition and request (aiokafka's default: 16 KiB)
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        canonical_url=f"http://127.0.0.1:{settings.web_port or 6066}",
        # faust's own pages (/table/NAME/KEY/ shows table values, /router/, /graph/,
        # /stats/) would serve states and assignments to anyone: only our pages are served
        web_tables_enabled=False, web_router_enabled=False, web_graph_enabled=False,
        web_stats_enabled=False, web_metrics_enabled=False,
        table_standby_replicas=0,
        # no `<app id>-__assignor-__leader` topic: nothing here runs on the leader only, and
        # every topic the worker subscribes to is provisioned beforehand (workerfile topics)
        topic_disable_leader=True,
        key_serializer="raw",
        value_serializer="raw",
    )
    # faust's ProducerBuffer (the table changelog's writes) makes the stream wait and warns
    # "producer buffer full" above 100 messages: a batch writes up to one state per worker
    app.producer.buffer.max_messages = PRODUCER_BUFFER
    sources = app.topic(*EVENT_TOPICS, REKEYED_EVENTS, OPERATOR_COMMANDS, key_type=bytes, value_type=bytes,
                        partitions=settings.partitions)
    # bytes keys (raw, not JSON): the changelog and faust's web router then hash the SSN
    # exactly as the producers of the event topics do, so a key's table partition is its
    # event partition
    states = app.Table("worker-state", default=None, key_type=bytes, value_type=bytes,
                       partitions=settings.partitions, options=rocksdb_options())
    # The markers of numbers merged or erased by an operator: a fixed changelog topic name
    # (not derived from the application id), so a replay under a new id still has them.
    markers = app.Table("identity-markers", default=None, key_type=bytes, value_type=bytes,
                        partitions=settings.partitions, changelog_topic=markers_changelog(app, settings.partitions),
                        options=rocksdb_options())
    access_log = AccessLogView(settings.broker, settings.partitions, settings.aiokafka_kwargs())
    ledger = ServiceLedger(settings.broker, settings.aiokafka_kwargs())
    out_topics: dict[str, faust.TopicT] = {}
    per_org_views = tuple(v.topic.split("{org}")[0] for v in audiences.published.values() if v.per_org)
    view_config = on_demand_view_config()

    async def topic(name: str) -> faust.TopicT:
        if name not in out_topics:
            if per_org_views and name.startswith(per_org_views):
                # a per-organisation view (e.g. a training institution's): created when first needed
                new = app.topic(name, key_type=bytes, value_type=bytes, partitions=settings.partitions,
                                compacting="compact" in view_config.get("cleanup.policy", ""),
                                deleting="delete" in view_config.get("cleanup.policy", ""),
                                config={k: v for k, v in view_config.items() if k != "cleanup.policy"})
                await new.maybe_declare()
                # its metadata (partitions and leaders) before the first send, so that the
                # batch does not wait on a topic the producer does not know yet
                await app.producer._ensure_producer().partitions_for(name)
                out_topics[name] = new
            else:
                out_topics[name] = app.topic(name, key_type=bytes, value_type=bytes, partitions=settings.partitions)
        return out_topics[name]

    state_table = StateTable(states, app.producer, changelog_topic(settings.app_id, "worker-state"))
    processor = BatchProcessor(state_table, markers, FaustPublisher(app.producer, topic), ledger, audiences, organisations,
                               place=in_partition_of, cache_size=STATE_CACHE_SIZE, rules=rules)

    rebalances = [0]  # partitions revoked so far: a batch being retried may belong to another worker now

    @app.on_partitions_revoked.connect
    async def _revoked(sender, revoked, **kwargs) -> None:
        rebalances[0] += 1
        ledger.forget()
        processor.forget()
        state_table.forget()

    @app.on_partitions_assigned.connect
    async def _assigned(sender, assigned, **kwargs) -> None:
        ledger.forget()
        processor.forget()
        state_table.forget()
        access_log.keep_only({tp.partition for tp in assigned if tp.topic in EVENT_TOPICS[:1]})

    @app.on_before_shutdown.connect
    async def _shutdown(sender, **kwargs) -> None:
        await access_log.stop()

    @app.on_rebalance_complete.connect
    async def _ready(sender, **kwargs) -> None:
        # sent by faust's recovery once the tables are recovered, before the streams resume.
        # (Seeking the partitions to their committed offsets here, before faust resumes them,
        # was tried for README "Delivery guarantees" 8: a replay worker then left two of four
        # partitions unprocessed in every run of tests/integration/test_worker_log_integration.py.)
        # at WARNING so that it shows at the worker's default log level
        assigned = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic in EVENT_TOPICS[:1])
        log.warning("ready: tables recovered, processing event partitions %s of app %s",
                    ",".join(map(str, assigned)) or "(none)", settings.app_id)

    @app.agent(sources)
    async def fold_events(stream):
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            await process_or_stop(batch)

    async def process_or_stop(batch) -> None:
        """Process a batch completely, or end the process without acking it (see
        stop_without_acking): a failed send is tried again with the whole batch (nothing of
        it was written to the tables, states are read from the table again), as long as
        `retry_delay` says so and no partition was revoked meanwhile; when the batch still
        fails, or the agent is cancelled in the middle of it, the worker stops."""
        first_failure, rebalances_before = None, rebalances[0]
        for attempt in itertools.count(1):
            try:
                await processor.process(batch)
                return
            except asyncio.CancelledError as cancelled:
                task = asyncio.current_task()
                if app.should_stop or task is None or task.cancelling():
                    cancelled_in_batch(batch)
                # not this agent cancelled, but a future it awaited inside the Kafka client (aiokafka
                # cancels its waiters when a leader goes away): a failure like any other
                failure: BaseException = cancelled
            except Exception as err:  # noqa: BLE001 - every failure of a batch is handled here
                failure = err
            reason = mask_text(f"{type(failure).__name__}: {failure}")
            loop = asyncio.get_running_loop()
            first_failure = loop.time() if first_failure is None else first_failure
            delay = retry_delay(failure, attempt, loop.time() - first_failure, settings.outage_window)
            if delay is None or rebalances[0] != rebalances_before:
                why = ("its partitions were revoked meanwhile" if delay is not None else
                       f"the cluster did not recover in {settings.outage_window:g} s" if transient(failure) else "")
                log.critical("a batch of %d messages (%s) failed %d times, last: %s%s. Stopping the worker "
                             "without acking it: nothing of it is lost, it is processed again at the next "
                             "start once the cause is fixed", len(batch), batch_span(batch), attempt, reason,
                             f"; {why}" if why else "")
                stop_without_acking(EXIT_BATCH_FAILED)
            log.error("a batch of %d messages (%s) failed (attempt %d%s): %s; again in %.1f s", len(batch),
                      batch_span(batch), attempt,
                      f" of {BATCH_ATTEMPTS}" if not transient(failure) else
                      f", brokers unavailable: trying for up to {settings.outage_window:g} s", reason, delay)
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                cancelled_in_batch(batch)

    def cancelled_in_batch(batch) -> None:
        """The agent cancelled in the middle of a batch: end without acking it."""
        if app.should_stop:  # a stop asked for (SIGTERM): the batch is done again by the next worker
            log.warning("stopping in the middle of a batch of %d messages: not acked, processed again "
                        "at the next start", len(batch))
            stop_without_acking(0)
        log.critical("the stream was cancelled in the middle of a batch of %d messages: stopping the "
                     "worker without acking it (it is processed again at the next start)", len(batch))
        stop_without_acking(EXIT_BATCH_FAILED)

    if settings.web_port > 0:
        register_web(app, states, access_log, audiences, Callers.load(settings.api_tokens, audiences.views),
                     organisations=organisations, rules=rules, ingest_timeout=settings.ingest_timeout)
    return app


def rocksdb_options() -> dict:
    """A fresh dict of ROCKSDB_OPTIONS for one table (faust's Store pops keys from it)."""
    return dict(ROCKSDB_OPTIONS)


def markers_changelog(app: faust.App, partitions: int) -> faust.TopicT:
    """The changelog topic of the markers table, under its fixed name, declared as faust
    declares a table's own changelog (`Collection._new_changelog_topic`): without acks and
    internal. An ordinary topic (acks on) is one faust expects a stream to take events
    from: once an erase or merge had written a marker, its livelock check logged "Stream
    has not started processing TP(topic='workerfile-identity-markers', ...)" every 2.5 s
    for as long as the worker ran (the changelog's highwater stays past the position of a
    partition whose table is active, and no stream ever reads it)."""
    return app.topic(IDENTITY_MARKERS, key_type=bytes, value_type=bytes, partitions=partitions, compacting=True,
                     acks=False, internal=True, maxsize=131_072, allow_empty=True)


class FaustPublisher:
    """The BatchProcessor's publisher on faust: hands a record to the producer (faust's
    Producer.send: aiokafka's, which returns once the record is in its accumulator) and
    returns the delivery future, not awaited here. Not faust's Topic.send: that one wraps
    every record in a FutureMessage with callbacks and sensors, ~3 x the CPU of the send
    itself; the partition is the key's (murmur2), as Topic.send gives it. `topic_of` is
    awaited first: it declares a topic made on demand (a per-organisation view)."""

    def __init__(self, producer, topic_of):
        self.producer = producer  # faust's Producer (app.producer)
        self.topic_of = topic_of  # async: topic name -> faust topic

    async def send(self, record):
        await self.topic_of(record.topic)
        headers = list(record.headers) if record.headers else None
        return await self.producer.send(record.topic, record.key, record.value, None, None, headers)


class StateTable:
    """The BatchProcessor's state table on faust: reads through the faust Table (its
    RocksDB store, the partition of the current event); a batch's writes go first to the
    table's changelog topic through the producer (`send`: one record per key, in the key's
    event partition, not awaited), and only once the BatchProcessor has gathered every
    one of their deliveries to the store (`apply`).

    So the local store is never ahead of its changelog: a changelog record that fails
    fails the batch with nothing written to the store, and the batch is folded again from
    the state as it was (faust's commit flushes the producer but does not raise on a failed
    delivery: a store written first would keep a state the changelog never got, lost to
    the next worker that recovers the partition from the changelog).

    Not faust's `table[key] = value`: that path sends each changelog record through
    faust's ProducerBuffer task with a FutureMessage and, when delivered, writes the
    changelog offset to RocksDB again (`Store.set_persisted_offset`), per record. Here the
    persisted offset (what faust's recovery reads the changelog from at the next start) is
    written once per partition and batch (`persist`), after every record of the batch is
    in the store, never backwards. The
    records are those faust would write: raw key and value, None for a deleted key."""

    def __init__(self, table: faust.Table, producer, changelog: str):
        self.table = table
        self.producer = producer
        self.changelog = changelog
        self._persisted: dict[int, int] = {}
        self._applied: dict[int, int] = {}  # partition -> the last changelog offset applied in this batch
        self._generation = 0  # a rebalance starts a new one: deliveries from before it apply nothing

    # The store's own byte-level methods (`_get`, `_contains`, `_set`, `_del`: what every
    # faust store implements, the current event's partition choosing the database): keys
    # and values are bytes already, and a missing key is None, not a KeyError raised
    # through three layers of mappings (most id-key lookups of new events miss).
    def get(self, key: bytes) -> bytes | None:
        return self.table.data._get(key)

    def __contains__(self, key: bytes) -> bool:
        return self.table.data._contains(key)

    async def send(self, partition: int, writes: list[tuple[bytes, bytes | None]]) -> PendingWrite:
        """Hand one worker's writes to the changelog (a deletion only of a key the store
        has) without waiting; the store is not written yet."""
        store = self.table.data
        kept, futures = [], []
        for key, value in writes:
            if value is None and not store._contains(key):
                continue
            kept.append((key, value))
            futures.append(await self.producer.send(self.changelog, key, value, partition, None, None))
        return PendingWrite(partition, kept, futures, self._generation)

    def apply(self, pending: PendingWrite) -> None:
        """Write to the store what `send` handed to the changelog, once every future of it
        is delivered (the caller gathered them); nothing after a rebalance since `send`
        (the partition may be another worker's now: its changelog has the records)."""
        if pending.generation != self._generation:
            return
        store = self.table.data
        for key, value in pending.writes:
            if value is None:
                store._del(key)
            else:
                store._set(key, value)
        if pending.futures:
            offset = max(fut.result().offset for fut in pending.futures)
            self._applied[pending.partition] = max(offset, self._applied.get(pending.partition, -1))

    def persist(self) -> None:
        """After the batch's `apply`s: the persisted offset of each partition written to, once,
        when every record of the batch up to it is in the store."""
        store = self.table.data
        for partition, offset in self._applied.items():
            if offset > self._persisted.get(partition, -1):
                self._persisted[partition] = offset
                store.set_persisted_offset(TopicPartition(self.changelog, partition), offset)
        self._applied.clear()

    def forget(self) -> None:
        """On a rebalance: writes sent before it apply nothing."""
        self._persisted.clear()
        self._applied.clear()
        self._generation += 1


class TransientCoordinatorErrors(logging.Filter):
    """aiokafka logs ERROR "Group Coordinator Request failed: [Error 15]
    CoordinatorNotAvailableError" at every start on a fresh broker (the group coordinator
    is elected while `__consumer_offsets` is created) and then retries: a retriable error of
    that request is logged at INFO; any other stays an ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and record.msg == "Group Coordinator Request failed: %s":
            err = record.args[0] if isinstance(record.args, tuple) and record.args else None
            if getattr(err, "retriable", False):
                record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def batch_span(batch) -> str:
    """Where a batch's messages are: topic/partition first-last offsets."""
    spans: dict[tuple[str, int], list[int]] = {}
    for ev in batch:
        span = spans.setdefault((ev.message.topic, ev.message.partition), [ev.message.offset, ev.message.offset])
        span[0], span[1] = min(span[0], ev.message.offset), max(span[1], ev.message.offset)
    return ", ".join(f"{t}/{p} {a}-{b}" for (t, p), (a, b) in sorted(spans.items()))


def load_audiences(settings: StreamSettings) -> Audiences:
    """The audience views and the pseudonym key. Without the key, views keyed by a
    pseudonym are not published (said once in the log) and answer 503 over HTTP —
    never an unkeyed pseudonym."""
    audiences = Audiences(views=load_views(settings.views), pseudonym_key=load_pseudonym_key(settings.pseudonym_key_file))
    skipped = sorted(name for name, v in audiences.views.items()
                     if v.topic and v.fields and name not in audiences.published)
    if skipped:
        log.warning("no WORKERFILE_PSEUDONYM_KEY_FILE: the view(s) %s are not published", ", ".join(skipped))
    return audiences
