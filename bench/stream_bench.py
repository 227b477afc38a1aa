"""Benchmark of the stream pipeline end to end (produce -> worker-files) for ONE worker
process, against a raw aiokafka consume of the same topics in the same run (the ceiling),
plus the latency from event produced to file published at a steady rate.

Not a test. Steps, all against a throw-away single-node Kafka (streams.local_kafka):
  1. topics (4 partitions; `worker-files` and `worker-file-changes` with
     message.timestamp.type=LogAppendTime, so their record timestamps are the broker's
     append time = "published"); a clean population (anomalies=False); ALL its events are
     produced before any worker starts (the producer is not measured).
  2. references, best of --rounds: a raw consume of the four event topics from beginning
     to end (plain AIOKafkaConsumer, no group, getmany batches); the same + Avro decode
     (streams.codec.decode_event); and the worker's own per-message code without Kafka
     (streams.handler intake_message + fold_batch + state bytes round trip, batches of
     streams.app.BATCH_MAX), in two message orders: faust's (round robin between topics
     and partitions, as the worker's stream sees them - the CPU floor of the worker) and
     fetch order (whole partition runs). The order matters: each (worker, batch) pair
     costs a state decode, a whole file derived and encoded and a state encode.
  3. end to end: one `workerfile worker` (streams.runner.WorkerProcess, fresh app id and
     data dir) until `worker-files` holds, for every worker, exactly the file the offline
     fold (processors.batch.fold_lines) makes of the same events (Avro bytes compared).
     Reported three ways: wall time from the worker's launch (includes Python start,
     faust start-up, group join and the first batch) to the last final file's append
     time; from the worker's "ready: tables recovered" log line (when it starts to
     consume) to the last file; and from the first file appended to the last (~one batch
     optimistic). The worker's CPU (user+system of the process and all its threads, from
     /proc/PID/stat sampled every 0.1 s, read at the records' append times) from ready to
     the last file, per event, is the figure that does not depend on how busy the shared
     machine was; and the records each output topic and the state changelog got per event.
  4. latency: with the worker caught up, NEW workers' events are produced at --rate
     events/s (2,000) for --duration s; each event's send time (time.time() just before
     send) is matched with the append time of the `worker-file-changes` record whose
     event_ids include it (the file record is sent just before it in the same batch).
     Events that changed no file have no such record and are counted, not timed. The
     producer (kafka-python, values encoded beforehand) runs in this process on the same
     machine: its CPU is printed with the worker's and the broker's.
Targets (issue #10): catch-up >= 10,000 events/s (ready -> last file), <= 100 us of worker
CPU per event, p99 produce -> file < 250 ms at a steady 2,000 events/s; each line says MET
or MISSED. The load average is printed with every phase: the machine is small (2 cores)
and may be shared, so wall-time figures are noisy; the CPU per event much less so.
Every process (worker, broker) is stopped at the end, also on errors or Ctrl-C.

    python bench/stream_bench.py \
        [--workers 300] [--months 36] [--rate 2000] [--duration 15] [--rounds 3] \
        [--profile-worker FILE.prof | --py-spy FILE.txt] [--worker-loglevel warning] [--skip-latency] \
        [--worker-env NAME=VALUE ...]

--profile-worker runs the worker under cProfile (slower: its figures are not the
benchmark's; main thread only - faust runs its Kafka consumer in a thread of its own) and
prints its top functions at the end; --py-spy samples every thread of it instead with
py-spy (pip install py-spy; little overhead, idle time included) during the catch-up, and
prints where the main thread's wall time goes by category and by function.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402

from processors.batch import fold_lines  # noqa: E402
from streams import codec  # noqa: E402
from streams.app import BATCH_MAX  # noqa: E402
from streams.handler import Origin, fold_batch, intake_message, load_state, state_writes  # noqa: E402
from streams.producer import EventProducer  # noqa: E402
from streams.runner import WorkerProcess  # noqa: E402
from streams.topics import EVENT_TOPICS, WORKER_FILE_CHANGES, WORKER_FILES, ensure_topics, provision  # noqa: E402
from workerfile.population import generate_population  # noqa: E402

from benchlib import (LocalRun, unversioned, append_time_specs, broker_pid, load_text, machine_busy, proc_cpu, say,  # noqa: E402
                      stop_workers, topic_records, worker_exited)

PARTITIONS = 4
TIMESTAMPED = (WORKER_FILES, WORKER_FILE_CHANGES)  # LogAppendTime: timestamp = broker append


# ------------------------------------------------------------------ CPU accounting
class CpuWindow:
    """CPU used by the worker, the broker, this script and the whole machine over a window."""

    def __init__(self, worker_pid: int | None, broker_pid: int | None):
        self.pids = {"worker": worker_pid, "broker": broker_pid}
        self.start()

    def snapshot(self) -> dict[str, float]:
        snap = {name: proc_cpu(pid) for name, pid in self.pids.items()}
        snap["bench"] = time.process_time()
        snap["machine"] = machine_busy()
        snap["wall"] = time.monotonic()
        return snap

    def start(self) -> None:
        self.begin = self.snapshot()
        self.end = None

    def stop(self) -> None:
        self.end = self.snapshot()

    def delta(self, name: str) -> float:
        return self.end[name] - self.begin[name]

    def report(self) -> str:
        d = {k: self.end[k] - self.begin[k] for k in self.begin}
        wall = d["wall"] or 1e-9
        other = d["machine"] - d["worker"] - d["broker"] - d["bench"]
        return (f"over {wall:.1f} s: worker {d['worker']:.1f} CPU-s ({d['worker'] / wall:.0%} of a core), "
                f"broker {d['broker']:.1f} ({d['broker'] / wall:.0%}), this script {d['bench']:.1f} "
                f"({d['bench'] / wall:.0%}), other processes {max(other, 0):.1f} ({max(other, 0) / wall:.0%}); "
                f"machine busy {d['machine'] / wall / os.cpu_count():.0%} of {os.cpu_count()} cores")


# ------------------------------------------------------------------ helpers
def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def offline_files(events: list[dict]) -> dict[bytes, bytes]:
    """ssn -> Avro bytes of the file the offline fold makes of `events`."""
    batch = fold_lines([orjson.dumps(e) for e in events])
    if batch.counts.rejected or batch.counts.duplicates:
        raise RuntimeError(f"the clean population is not clean: {batch.counts.summary(len(batch.states))}")
    return {f["ssn"].encode(): codec.encode("WorkerFile", f) for f in batch.files()}


def produce_all(bootstrap: str, events: list[dict]) -> float:
    """Validate and send every event with the project's producer; returns seconds."""
    start = time.perf_counter()
    with EventProducer(bootstrap) as producer:
        for event in events:
            producer.send(event)
    return time.perf_counter() - start


def new_consumer(bootstrap: str, **config) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                            auto_offset_reset="earliest", **config)


async def end_offsets(bootstrap: str, topics) -> dict[TopicPartition, int]:
    consumer = new_consumer(bootstrap)
    await consumer.start()
    try:
        return await consumer.end_offsets([TopicPartition(t, p) for t in topics for p in range(PARTITIONS)])
    finally:
        await consumer.stop()


# ------------------------------------------------------------------ 2. references
async def raw_consume(bootstrap: str, decode: bool, keep: list | None = None) -> tuple[int, int, float]:
    """Consume the four event topics from their beginning to their end (no group,
    getmany batches). Returns (messages, value bytes, seconds from the first fetch)."""
    consumer = new_consumer(bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in EVENT_TOPICS for p in range(PARTITIONS)]
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        messages = size = 0
        start = time.perf_counter()
        while remaining:
            for tp, batch in (await consumer.getmany(timeout_ms=1000)).items():
                if decode:
                    for m in batch:
                        codec.decode_event(m.value)
                if keep is not None:
                    keep.extend((m.topic, m.partition, m.offset, m.key, m.value) for m in batch)
                messages += len(batch)
                size += sum(len(m.value) for m in batch)
                if batch and batch[-1].offset >= end[tp] - 1:
                    remaining.discard(tp)
        return messages, size, time.perf_counter() - start
    finally:
        await consumer.stop()


def round_robin(messages: list) -> list:
    """`messages` in the order faust's consumer hands one fetch of them to the stream:
    round robin between topics, and within a topic between partitions, one record at a
    time (faust.transport.utils.DefaultSchedulingStrategy)."""
    from faust.transport.utils import DefaultSchedulingStrategy

    by_tp: dict[TopicPartition, list] = defaultdict(list)
    for m in messages:
        by_tp[TopicPartition(m[0], m[1])].append(m)
    return [m for _, m in DefaultSchedulingStrategy().iterate(dict(sorted(by_tp.items())))]


def in_process(messages: list) -> dict[str, float]:
    """The worker's per-message work without Kafka or faust: intake (decode + validate) and,
    per batch of BATCH_MAX, fold_batch per worker (fold, derive, encode outputs) with the
    state stored as bytes in between (as in the table). Returns seconds per part and the
    number of fold_batch calls (= (worker, batch) pairs; each derives and encodes a file)."""
    states: dict[str, bytes] = {}
    t_intake = t_fold = 0.0
    folds = 0
    for i in range(0, len(messages), BATCH_MAX):
        t0 = time.perf_counter()
        by_worker = defaultdict(list)
        for topic, partition, offset, key, value in messages[i:i + BATCH_MAX]:
            origin = Origin(topic, partition, offset)
            intake = intake_message(key, value, origin)
            if intake.event is None:
                raise RuntimeError(f"unexpected {intake.status} message in a clean population")
            by_worker[intake.event.ssn].append((intake.event, key, value, origin))
        t1 = time.perf_counter()
        for ssn, events in by_worker.items():
            folded = fold_batch(load_state(ssn, states.get), events)
            folds += 1
            states.update(state_writes(folded.state))
        t_intake += t1 - t0
        t_fold += time.perf_counter() - t1
    return {"intake": t_intake, "fold": t_fold, "total": t_intake + t_fold, "folds": folds}


# ------------------------------------------------------------------ 3. end to end
class ProfiledWorker(WorkerProcess):
    """`workerfile worker` under cProfile: WorkerProcess.start's own command, with
    `-m cProfile -o FILE` put after the interpreter (so the two never drift apart)."""

    def __init__(self, *args, profile_path: Path, **kwargs):
        super().__init__(*args, **kwargs)
        self.profile_path = profile_path

    def start(self) -> "ProfiledWorker":
        real_popen = subprocess.Popen

        def popen(cmd, *a, **kw):
            if list(cmd[1:3]) != ["-m", "workerfile.cli"]:
                raise RuntimeError(f"unexpected worker command {cmd[:3]}")
            return real_popen([cmd[0], "-m", "cProfile", "-o", str(self.profile_path), *cmd[1:]], *a, **kw)

        subprocess.Popen = popen  # WorkerProcess.start calls subprocess.Popen
        try:
            return super().start()
        finally:
            subprocess.Popen = real_popen


async def wait_for_files(bootstrap: str, expected: dict[bytes, bytes], worker: WorkerProcess, timeout: float,
                         start_offsets: dict[TopicPartition, int] | None = None, cpu: CpuWindow | None = None,
                         progress_every: float = 5.0) -> dict:
    """Read `worker-files` as it grows until every key of `expected` has its expected
    value. Returns the append time (ms) of each worker's final file, the first record's
    append time and the number of records read. Large, slow fetches (the times come from
    the records, not from when they are read), to take little CPU from the worker."""
    consumer = new_consumer(bootstrap, fetch_min_bytes=512 * 1024, fetch_max_wait_ms=1000)
    await consumer.start()
    try:
        tps = [TopicPartition(WORKER_FILES, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        for tp in tps:
            if start_offsets:
                consumer.seek(tp, start_offsets[tp])
        if not start_offsets:
            await consumer.seek_to_beginning(*tps)
        final: dict[bytes, int] = {}
        first_ts = None
        records = unexpected = size = 0
        ts_types = set()
        deadline = time.monotonic() + timeout
        next_progress = time.monotonic() + progress_every
        while len(final) < len(expected):
            if not worker.running:
                raise worker_exited(worker)
            if time.monotonic() > deadline:
                raise TimeoutError(describe_mismatch(bootstrap, expected, final, timeout))
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for m in batch:
                    records += 1
                    size += len(m.value or b"")
                    ts_types.add(m.timestamp_type)
                    if first_ts is None:
                        first_ts = m.timestamp
                        if cpu is not None:
                            cpu.start()  # CPU accounting from the first file seen
                    first_ts = min(first_ts, m.timestamp)
                    want = expected.get(m.key)
                    if want is None:
                        unexpected += 1
                    elif m.value is not None and unversioned(m.value) == want:
                        final.setdefault(m.key, m.timestamp)
                    else:
                        final.pop(m.key, None)  # not (or no longer) the final file
            if time.monotonic() > next_progress:
                say(f"    {len(final)}/{len(expected)} files final, {records} file records read")
                next_progress += progress_every
        if cpu is not None:
            cpu.stop()
        if 1 not in ts_types or len(ts_types) != 1:
            say(f"    warning: worker-files timestamp types {ts_types} (1 = LogAppendTime expected)")
        return {"final": final, "first_ts": first_ts, "records": records, "unexpected": unexpected, "bytes": size}
    finally:
        await consumer.stop()


def describe_mismatch(bootstrap: str, expected: dict[bytes, bytes], final: dict, timeout: float) -> str:
    from streams.reader import latest_files

    got = latest_files(bootstrap, versions=False)
    missing = [k for k in expected if k.decode() not in got]
    differing = [k for k in expected if k.decode() in got and k not in final]
    text = (f"worker-files did not converge in {timeout:.0f} s: {len(final)}/{len(expected)} final, "
            f"{len(missing)} missing, {len(differing)} differing")
    if differing:
        k = differing[0]
        want = codec.decode(expected[k])[1]
        have = got[k.decode()]
        text += "; first differing sections: " + ", ".join(s for s in want if want[s] != have.get(s))
    return text


# ------------------------------------------------------------------ 4. latency
def latency_events(args, taken: set[str], count: int) -> list[dict]:
    """`count` events of NEW workers (no SSN of the first population), shuffled."""
    per_worker = max(1, args.events_per_worker_estimate)
    workers = math.ceil(count / per_worker * 1.3) + 2
    events = [e for e in generate_population(workers, seed=args.seed + 1000, months=args.months, anomalies=False)
              if e["ssn"] not in taken]
    if len(events) < count:
        raise RuntimeError(f"only {len(events)} new events for {count} wanted")
    return events[:count]


def produce_steadily(bootstrap: str, events: list[dict], rate: float) -> tuple[dict[str, float], float, float]:
    """Send events at `rate`/s (validated and encoded beforehand); returns event_id ->
    time.time() just before its send, the achieved rate and the largest lag behind schedule."""
    sent: dict[str, float] = {}
    lag = 0.0
    with EventProducer(bootstrap) as producer:
        prepared = []
        for e in events:
            ev = producer.checked(e)
            prepared.append((ev.event_id, producer.topic_for(ev), ev.ssn.encode(), codec.encode_event(ev)))
        for topic in EVENT_TOPICS:  # fetch metadata now, not in the first timed send
            producer._producer.partitions_for(topic)
        start = time.monotonic() + 0.05
        for i, (event_id, topic, key, value) in enumerate(prepared):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                lag = max(lag, -delay)
            sent[event_id] = time.time()
            producer.send_raw(topic, key, value)
        elapsed = time.monotonic() - start
    return sent, len(prepared) / elapsed, lag


async def read_change_times(bootstrap: str, start_offsets: dict[TopicPartition, int], sent: dict[str, float],
                            worker: WorkerProcess, timeout: float, settle: float = 10.0) -> dict[str, float]:
    """event_id -> append time (s) of the first worker-file-changes record listing it.
    Stops when every sent event is found, or nothing new came for `settle` s."""
    consumer = new_consumer(bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(WORKER_FILE_CHANGES, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start_offsets[tp])
        published: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        last_news = time.monotonic()
        while len(published) < len(sent):
            if not worker.running:
                raise worker_exited(worker)
            now = time.monotonic()
            if now > deadline or now - last_news > settle:
                break
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for m in batch:
                    last_news = time.monotonic()
                    for event_id in codec.decode(m.value)[1]["event_ids"]:
                        if event_id in sent and event_id not in published:
                            published[event_id] = m.timestamp / 1000
        return published
    finally:
        await consumer.stop()


# ------------------------------------------------------------------ profile
def print_profile(path: Path, top: int) -> None:
    import pstats

    if not path.exists():
        say(f"no profile written at {path}")
        return
    stats = pstats.Stats(str(path))
    stats.strip_dirs()
    for key in ("tottime", "cumulative"):
        say(f"\n== worker profile, top {top} by {key} ({path}) ==")
        stats.sort_stats(key).print_stats(top)


def start_py_spy(pid: int, out: Path) -> subprocess.Popen:
    """py-spy (PyPI) sampling the worker, idle samples included, collapsed-stack output."""
    exe = shutil.which("py-spy")
    if exe is None:
        raise RuntimeError("--py-spy needs py-spy on the PATH (pip install py-spy)")
    time.sleep(1.0)  # let the interpreter come up before attaching
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", "100", "--idle", "--nonblocking",
                             "--format", "raw", "-o", str(out)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_py_spy(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


# frames that enclose everything: left out of the inclusive lists
_WRAPPERS = ("_run_code (", "_run_module_as_main (", "<module> (", "main (workerfile", "cmd_worker (",
             "Worker.execute_from_commandline (", "BaseEventLoop.", "Handle._run (", "Thread._bootstrap",
             "WorkerThread.run (", "ServiceThread._start_thread (", "EpollSelector.select (")


# where a sample's wall time goes: the first category whose pattern is in its stack
_CATEGORIES = (
    ("waiting in the event loop's select", ("EpollSelector.select (",)),
    ("logging (records built although not emitted)", ("logging/__init__.py",)),
    ("handler: intake (Avro decode + validate)", ("intake_message (streams/handler.py",)),
    ("handler: load state (head and core from the table)", ("load_state (streams/handler.py",
                                                            "BatchProcessor.state_of (")),
    ("handler: fold + derive + encode outputs", ("fold_batch (streams/handler.py",)),
    ("handler: state writes encoded (state_writes)", ("state_writes (streams/handler.py",)),
    ("table writes: faust Table set/del -> RocksDB + changelog enqueued", ("ManagedUserDict.__setitem__",
                                                                          "ManagedUserDict.__delitem__")),
    ("table reads: markers, key in table (RocksDB)", ("BatchProcessor.marker_of", "ManagedUserDict.__contains__",
                                                      "SerializedStore.__contains__")),
    ("outputs handed to the producer (FaustPublisher.send -> faust Topic.send -> aiokafka send)",
     ("FaustPublisher.send (",)),
    ("changelog sent from faust's ProducerBuffer task (one record per task wake-up)",
     ("ProducerBuffer._handle_pending (",)),
    ("commit: producer and buffer flush, offsets", ("Consumer.commit (", "Consumer._commit_handler (",
                                                    "Producer.flush (", "ProducerBuffer.flush")),
    ("aiokafka sender: batches to the broker, socket writes, responses", ("Sender._sender_routine (",
                                                                         "SendProduceReqHandler.", "Sender.")),
    ("delivery callbacks (faust _on_published, changelog sent, futures)", ("Topic._on_published (",
                                                                          "MessageBatch.done (",
                                                                          "Collection._on_changelog_sent (")),
    ("consume: faust fetcher/conductor/stream/take_events, aiokafka fetcher",
     ("faust/transport/consumer.py", "faust/transport/conductor.py", "faust/streams.py", "aiokafka/consumer/",
      "Fetcher.", "faust/channels.py")),
    ("batch shell: the rest of BatchProcessor._process (gather, place, cache)", ("BatchProcessor._process (",)),
    ("sending, in a resumed coroutine (faust Topic.publish_message, Producer.send, aiokafka accumulator)",
     ("Topic.publish_message (", "Producer.send (faust", "AIOKafkaProducer.send (", "MessageAccumulator.",
      "ProducerBuffer.")),
    ("the event loop itself: Handle._run, _run_once, call_soon, futures, wait_for", ("Handle._run (asyncio",
                                                                                     "BaseEventLoop.", "tasks.py)")),
)


def _category(frames: list[str]) -> str:
    stack = ";".join(frames)
    for name, patterns in _CATEGORIES:
        if frames[-1].startswith(patterns[0]) if name.startswith("waiting") else any(p in stack for p in patterns):
            return name
    return "other: asyncio loop and handles, mode, faust agent glue"


def print_py_spy(path: Path, top: int) -> None:
    """Per thread (faust runs the Kafka consumer in a thread of its own): the share of wall
    time waiting in the event loop's select, and the top frames by self and inclusive
    share of that thread's samples (py-spy --format raw, idle samples included)."""
    if not path.exists():
        say(f"no py-spy output at {path}")
        return
    root = str(Path(__file__).resolve().parents[1]) + "/"
    threads: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f.split(":")[0] + ")" if "(" in f else f for f in stack.split(";")]  # drop line numbers
        frames = [f.replace(root, "") for f in frames]
        name = "consumer thread (mode WorkerThread)" if any(f.startswith("WorkerThread.run") for f in frames) \
            else "main thread (agent, producer, tables)"
        t = threads.setdefault(name, {"total": 0, "idle": 0, "self": defaultdict(int), "incl": defaultdict(int),
                                      "cat": defaultdict(int)})
        t["total"] += n
        t["cat"][_category(frames)] += n
        if frames[-1].startswith(("EpollSelector.select", "select (selectors")):
            t["idle"] += n
        t["self"][frames[-1]] += n
        for f in set(frames):
            t["incl"][f] += n
    for name, t in sorted(threads.items(), key=lambda kv: -kv[1]["total"]):
        total, idle = t["total"], t["idle"]
        say(f"\n== py-spy, {name} ({path}): {total} samples at 100/s, {idle / total:.0%} waiting in the "
            f"event loop's select, {1 - idle / total:.0%} running (or waiting for the GIL) ==")
        say("-- by category (first match in the stack) --")
        for cat, n in sorted(t["cat"].items(), key=lambda kv: -kv[1]):
            say(f"  {n / total:6.1%}  {cat}")
        for title in ("self", "incl"):
            say(f"-- top {top} by {'inclusive' if title == 'incl' else 'self'} share of this thread's samples --")
            shown = [(f, n) for f, n in t[title].items() if title == "self" or not f.startswith(_WRAPPERS)]
            for frame, n in sorted(shown, key=lambda kv: -kv[1])[:top]:
                say(f"  {n / total:6.1%}  {frame}")


# ------------------------------------------------------------------ main
TARGET_RATE = 10_000  # events/s of one worker catching up (issue #10)
TARGET_CPU_US = 100  # worker CPU per event, catching up
TARGET_P99_MS = 250  # produce -> file, at a steady --rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=300, help="population for the throughput phase")
    parser.add_argument("--months", type=int, default=36, help="career length (about 2.6 events a month)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="best of N for the reference consumes")
    parser.add_argument("--rate", type=float, default=2000.0, help="latency phase: events/s")
    parser.add_argument("--duration", type=float, default=15.0, help="latency phase: seconds of producing")
    parser.add_argument("--timeout", type=float, default=900.0, help="max seconds for the worker to catch up")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--profile-worker", metavar="FILE.prof",
                        help="run the worker under cProfile, print its top functions (perturbs the figures)")
    parser.add_argument("--profile-top", type=int, default=30)
    parser.add_argument("--py-spy", metavar="FILE.txt",
                        help="sample the worker with py-spy during the catch-up (needs py-spy on the PATH)")
    parser.add_argument("--worker-loglevel", default="warning",
                        help="the worker's --loglevel (default warning, as WorkerProcess and the demo)")
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment of the worker (e.g. to compare a setting), repeatable")
    parser.add_argument("--keep-data", action="store_true", help="keep the worker's data dir and log")
    args = parser.parse_args(argv)

    run = LocalRun("stream-bench-")  # SIGTERM/SIGHUP -> SystemExit: the finally below stops the worker and broker
    say(f"stream benchmark: {load_text()} at start (the machine is shared: figures are noisy)")
    kafka, sampler = run.kafka, run.sampler
    worker: WorkerProcess | None = None
    spy: subprocess.Popen | None = None
    results: dict = {}
    try:
        say("starting Kafka ...")
        bootstrap = run.start_broker()
        ensure_topics(bootstrap, append_time_specs(PARTITIONS, TIMESTAMPED))

        # 1. population, expected files, everything produced before the worker starts
        events = generate_population(args.workers, seed=args.seed, months=args.months, anomalies=False)
        n = len(events)
        args.events_per_worker_estimate = n / args.workers
        expected = offline_files(events)
        say(f"population: {args.workers} workers, {n} events ({n / args.workers:.0f} per worker); producing ...")
        produce_s = produce_all(bootstrap, events)
        say(f"  produced in {produce_s:.1f} s ({n / produce_s:,.0f} events/s, validating producer; not measured)")

        # 2. references
        results["load_ref"] = load_text()
        best: dict[str, tuple] = {}
        kept: list = []
        for r in range(args.rounds):
            for name, decode in (("raw", False), ("raw+decode", True)):
                got = asyncio.run(raw_consume(bootstrap, decode, keep=kept if (r == 0 and not decode) else None))
                if got[0] != n:
                    raise RuntimeError(f"raw consume read {got[0]} messages, {n} produced")
                if name not in best or got[2] < best[name][2]:
                    best[name] = got
        inproc = {}
        for order, msgs in (("round-robin", round_robin(kept)), ("fetch", kept)):
            inproc[order] = min((in_process(msgs) for _ in range(max(1, args.rounds - 1))), key=lambda t: t["total"])
        results["raw"] = n / best["raw"][2]
        results["raw+decode"] = n / best["raw+decode"][2]
        say(f"  raw consume {results['raw']:,.0f} msg/s ({best['raw'][1] / best['raw'][2] / 1e6:.1f} MB/s, "
            f"{best['raw'][1] / n:.0f} B/msg); + decode {results['raw+decode']:,.0f} msg/s ({results['load_ref']})")
        for order, t in inproc.items():
            say(f"  in-process handler, {order} order: {n / t['total']:,.0f} ev/s (intake {n / t['intake']:,.0f}/s, "
                f"fold+derive+encode {n / t['fold']:,.0f}/s; {t['folds']} fold_batch calls = "
                f"{n / t['folds']:.1f} events per worker per batch, {t['fold'] / t['folds'] * 1000:.2f} ms each)")
        del kept

        # 3. end to end with one worker
        app_id = f"bench-{uuid.uuid4().hex[:8]}"
        provision(bootstrap, app_id, PARTITIONS)  # its table's changelog (workerfile topics --app-id)
        cls_kwargs = {}
        cls = WorkerProcess
        if args.profile_worker:
            cls, cls_kwargs = ProfiledWorker, {"profile_path": Path(args.profile_worker).resolve()}
        extra_env = dict(item.split("=", 1) for item in args.worker_env)
        worker = cls(bootstrap, app_id, run.work_dir / "worker", partitions=PARTITIONS, loglevel=args.worker_loglevel,
                     env=extra_env or None, **cls_kwargs)
        cpu = CpuWindow(None, broker_pid(kafka))
        say(f"starting one worker (app id {app_id}{', under cProfile' if args.profile_worker else ''}"
            f"{', env ' + ' '.join(args.worker_env) if args.worker_env else ''}) ... ({load_text()})")
        launch = time.time()
        worker.start()
        cpu.pids["worker"] = worker.proc.pid
        sampler.add("worker", worker.proc.pid)
        sampler.watch("ready", worker.log_path, "ready: tables recovered")
        if args.py_spy:
            spy = start_py_spy(worker.proc.pid, Path(args.py_spy).resolve())
        seen = asyncio.run(wait_for_files(bootstrap, expected, worker, args.timeout, cpu=cpu))
        stop_py_spy(spy)
        last = max(seen["final"].values()) / 1000
        first = seen["first_ts"] / 1000
        ready = sampler.seen.get("ready", first)
        results.update(wall=last - launch, period=last - first, startup=first - launch, ready_s=ready - launch,
                       from_ready=last - ready, file_records=seen["records"], file_bytes=seen["bytes"],
                       unexpected=seen["unexpected"], cpu=cpu.report(), load_e2e=load_text(),
                       cpu_total=sampler.cpu_between("worker", launch, last),
                       cpu_ready=sampler.cpu_between("worker", ready, last),
                       cpu_startup=sampler.cpu_between("worker", launch, ready),
                       machine_e2e=sampler.machine_between(ready, last) / max(last - ready, 1e-9) / os.cpu_count(),
                       broker_e2e=sampler.cpu_between("broker", ready, last))
        say(f"  every file equals the offline fold; {seen['records']} file records for {len(expected)} workers "
            f"({results['load_e2e']})")
        counts = topic_records(bootstrap, [*TIMESTAMPED, f"{app_id}-worker-state-changelog",
                                           "worker-view-social-insurance"])
        results["records"] = counts
        say("  records on the output topics per event: " + ", ".join(f"{t} {c / n:.2f}" for t, c in counts.items()))

        # 4. latency at a steady rate, worker caught up
        if not args.skip_latency:
            count = int(args.rate * args.duration)
            new = latency_events(args, {k.decode() for k in expected}, count)
            expected2 = offline_files(new)
            offsets = asyncio.run(end_offsets(bootstrap, (WORKER_FILE_CHANGES, WORKER_FILES)))
            say(f"latency: {count} events of {len(expected2)} new workers at {args.rate:g}/s ... ({load_text()})")
            results["load_lat_start"] = load_text()
            cpu2 = CpuWindow(worker.proc.pid, broker_pid(kafka))
            sent, achieved, lag = produce_steadily(bootstrap, new, args.rate)
            cpu2.stop()
            drain_timeout = 120 + count / 200  # a worker slower than the rate drains a backlog afterwards
            published = asyncio.run(read_change_times(bootstrap, offsets, sent, worker, timeout=drain_timeout))
            files_offsets = {tp: o for tp, o in offsets.items() if tp.topic == WORKER_FILES}
            seen2 = asyncio.run(wait_for_files(bootstrap, expected2, worker, drain_timeout,
                                               start_offsets=files_offsets))
            last2 = max(seen2["final"].values()) / 1000
            first_sent = min(sent.values())
            order = sorted(sent, key=sent.get)
            lat = [published[e] - sent[e] for e in order if e in published]
            quarter = max(1, len(lat) // 4)
            results.update(lat=sorted(lat), lat_first=sorted(lat[:quarter]), lat_last=sorted(lat[-quarter:]),
                           unmatched=len(sent) - len(published), achieved=achieved, lag=lag,
                           latency_count=count, cpu2=cpu2.report(), load_lat=load_text(),
                           lat_cpu=sampler.cpu_between("worker", first_sent, last2),
                           lat_span=last2 - first_sent, lat_files=seen2["records"])
            say(f"  every new worker's file equals the offline fold ({results['load_lat']})")
    finally:
        stop_py_spy(spy)
        if worker is not None:
            results["rss_peak"] = sampler.memory_peak("worker")
            stop_workers([worker], timeout=30)
        run.close(kept="worker data and log" if args.keep_data else None)

    # ------------------------------------------------------------ table
    e2e_wall = n / results["wall"]
    e2e_period = n / results["period"]
    e2e_ready = n / results["from_ready"]
    raw = results["raw"]
    say()
    say(f"== results: {args.workers} workers, {n} events, {PARTITIONS} partitions, one worker process "
        f"(--loglevel {args.worker_loglevel})"
        f"{' (under cProfile: not representative)' if args.profile_worker else ''} ==")
    rows = [
        ("raw consume, aiokafka getmany (ceiling)", raw, f"{best['raw'][2]:.2f} s, best of {args.rounds}"),
        ("raw consume + Avro decode_event", results["raw+decode"], f"{best['raw+decode'][2]:.2f} s"),
        ("handler in-process, faust's order", n / inproc["round-robin"]["total"],
         f"{inproc['round-robin']['total']:.2f} s, {inproc['round-robin']['folds']} folds: the worker's CPU floor"),
        ("handler in-process, partition order", n / inproc["fetch"]["total"],
         f"{inproc['fetch']['total']:.2f} s, {inproc['fetch']['folds']} folds"),
        ("end to end, wall from worker launch", e2e_wall,
         f"{results['wall']:.1f} s (ready after {results['ready_s']:.1f} s, first file after "
         f"{results['startup']:.1f} s)"),
        ("end to end, worker ready -> last file", e2e_ready, f"{results['from_ready']:.1f} s"),
        ("end to end, first file -> last file", e2e_period, f"{results['period']:.1f} s"),
    ]
    say(f"{'':42s} {'events/s':>10s}  {'/raw':>6s}  time")
    for name, rate, note in rows:
        say(f"{name:42s} {rate:>10,.0f}  {rate / raw:>6.1%}  {note}")
    say(f"references taken at {results['load_ref']}; catch-up ended at {results['load_e2e']}")
    cpu_us = results["cpu_ready"] / n * 1e6
    say(f"worker CPU, catching up: {results['cpu_ready']:.1f} CPU-s from ready to the last file = "
        f"{cpu_us:,.0f} us per event ({results['cpu_ready'] / max(results['from_ready'], 1e-9):.0%} of a core; "
        f"start-up before ready {results['cpu_startup']:.1f} CPU-s; from launch {results['cpu_total'] / n * 1e6:,.0f} "
        f"us per event); broker {results['broker_e2e'] / n * 1e6:,.0f} us per event; machine busy "
        f"{results['machine_e2e']:.0%} of {os.cpu_count()} cores")
    say(f"  at a full core this is {1e6 / cpu_us:,.0f} events/s")
    say(f"worker during processing (from the first file seen): {results['cpu']}")
    say(f"worker peak RSS {results.get('rss_peak', 0) / 2**20:,.0f} MiB")
    if results["unexpected"]:
        say(f"warning: {results['unexpected']} file records for workers not in the population")
    say(f"file records published: {results['file_records']} (= the worker's fold_batch calls that changed a file; "
        f"{n / max(1, results['file_records']):.1f} events per worker per batch; "
        f"{results['file_bytes'] / max(1, results['file_records']) / 1024:.1f} KiB each)")

    def verdict(ok: bool, text: str) -> str:
        return f"{text} -> {'MET' if ok else 'MISSED'}"

    say(verdict(e2e_ready >= TARGET_RATE, f"target catch-up >= {TARGET_RATE:,} events/s: {e2e_ready:,.0f} "
                                          f"(ready -> last file)"))
    say(verdict(cpu_us <= TARGET_CPU_US, f"target worker CPU <= {TARGET_CPU_US} us per event: {cpu_us:,.0f} us"))
    if "lat" in results:
        lat = results["lat"]
        ms = lambda v: f"{v * 1000:,.0f} ms"  # noqa: E731
        p99 = percentile(lat, 99)
        say(f"latency produce -> file published, {results['latency_count']} events at {args.rate:g}/s "
            f"(achieved {results['achieved']:.1f}/s, max send lag {results['lag'] * 1000:.0f} ms): "
            f"p50 {ms(percentile(lat, 50))}, p90 {ms(percentile(lat, 90))}, p99 {ms(p99)}, "
            f"max {ms(lat[-1])}, min {ms(lat[0])}; timed {len(lat)}, changed no file {results['unmatched']}")
        say(f"  p50 first quarter {ms(percentile(results['lat_first'], 50))}, last quarter "
            f"{ms(percentile(results['lat_last'], 50))} (a growing backlog would show here)")
        say(f"  worker CPU from the first send to the last file: {results['lat_cpu']:.1f} CPU-s over "
            f"{results['lat_span']:.1f} s = {results['lat_cpu'] / results['latency_count'] * 1e6:,.0f} us per event "
            f"({results['latency_count'] / max(1, results['lat_files']):.1f} events per file record)")
        say(f"  while producing: {results['cpu2']}")
        say(f"  taken from {results['load_lat_start']} to {results['load_lat']}")
        say(verdict(p99 < TARGET_P99_MS / 1000, f"target p99 < {TARGET_P99_MS} ms at a steady {args.rate:g}/s: "
                                                f"{ms(p99)}"))
    say(run.end_text())
    if args.profile_worker:
        print_profile(Path(args.profile_worker).resolve(), args.profile_top)
    if args.py_spy:
        print_py_spy(Path(args.py_spy).resolve(), args.profile_top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
