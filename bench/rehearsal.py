"""A national rehearsal in miniature (not a test): a population of realistic careers
through Kafka and the stream worker(s) on this machine, every file (or a stated random
sample) checked against the offline fold, and what it cost: time, worker CPU per event,
worker memory, RocksDB and topic bytes.

Default size is the issue's (#10): 100,000 workers x ~100 events = ~10 M events, one
worker process, 8 partitions. On a small shared machine that is hours, not minutes (the
stream worker folds ~1,000-2,000 events/s per core): pass e.g. --workers 5000 to run it
in minutes, and scale the measured per-event figures on paper (README, "Rehearsal").

Steps, against a throw-away single-node Kafka (streams.local_kafka):
  1. topics with --partitions (worker-files with message.timestamp.type=LogAppendTime,
     so its records carry the broker's append time), the changelogs of the app id, the
     organisation registry of the population (the worker runs with it, as in production,
     and the offline fold uses the same one).
  2. the population, generated in chunks of --chunk-workers careers
     (workerfile.population.worker_career, months chosen for --events-per-worker, the
     usual anomalies: re-deliveries, corrections, retractions, bad numbers and lines).
     Each chunk's events are shuffled (a worker's events spread over the chunk, as
     `workerfile generate` does), validated and encoded as the project's producer does
     (EventProducer.checked + codec.encode_event; bad inputs as they are), in a pool of
     one process per core; the offline fold (processors.batch.fold_lines, what
     `workerfile fold` runs) of the checked workers' lines gives their expected files.
     Everything is produced before the worker starts (aiokafka, acks=all, default
     partitioner = the producers' murmur2); producing is not the pipeline and is
     reported apart.
  3. --processes `workerfile worker` processes with one app id (fresh data dirs), until
     the group's committed offsets reach the end of every source partition; their CPU
     (/proc/PID/stat, sampled every 0.1 s) and resident memory (peak VmHWM) are
     recorded; the processing window is from the first worker's "ready" log line to the
     last `worker-files` append. The workers are then stopped (SIGTERM: RocksDB closed).
  4. sizes: the RocksDB data dirs, each topic's log segments on the broker's disk and
     its records; then `worker-files` is read from the beginning and the latest file of
     every checked worker compared with the offline fold's (Avro bytes).

    python bench/rehearsal.py [--workers 100000] [--events-per-worker 100] [--partitions 8]
        [--processes 1] [--sample 10000 | --sample 0 (all)] [--chunk-workers 2000] [--seed 7]

Exit status 0 when every checked file equals the offline fold, 1 otherwise. No full
social-security number is ever printed (schemas.identity.mask_ssn).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import signal
import sys
import time
import uuid
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiokafka import AIOKafkaProducer  # noqa: E402
from aiokafka.partitioner import murmur2  # noqa: E402

from processors.batch import fold_lines  # noqa: E402
from schemas.identity import mask_ssn  # noqa: E402
from processors.organisations import parse_organisations, registry_toml  # noqa: E402
from streams import codec  # noqa: E402
from streams.producer import TOPIC_OF_TYPE, EventProducer, InvalidEvent  # noqa: E402
from streams.runner import WorkerProcess  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402
from workerfile.population import Orgs, add_anomalies, make_worker_ssn, population_registry, worker_career  # noqa: E402

from benchlib import (LocalRun, unversioned, SourceProgress, append_time_specs, dir_bytes, load_text, mib,  # noqa: E402
                      read_worker_files, say, stop_workers, topic_disk_bytes, topic_records)

RETRACTIONS = "certification-events"  # EventProducer's default topic of event.retracted
BAD_LINES_TOPIC = "training-events"


# ------------------------------------------------------------------ population
def months_for(events_per_worker: float, seed: int) -> int:
    """The career length (months) whose careers have about `events_per_worker` events
    (measured on 300 careers of the generator)."""
    rng = random.Random(seed)
    orgs = Orgs.make(rng)
    best = None
    for months in range(6, 600, 2):
        sample_rng = random.Random(seed + months)
        n = sum(len(worker_career(sample_rng, orgs, make_worker_ssn(sample_rng), months)) for _ in range(300)) / 300
        if best is None or abs(n - events_per_worker) < abs(best[1] - events_per_worker):
            best = (months, n)
        if n >= events_per_worker:
            break
    return best[0]


def population_ssns(workers: int, seed: int) -> list[str]:
    """`workers` distinct numbers, drawn as workerfile.population draws them."""
    rng = random.Random(f"{seed}-numbers")
    seen: set[str] = set()
    out = []
    while len(out) < workers:
        ssn = make_worker_ssn(rng)
        if ssn not in seen:
            seen.add(ssn)
            out.append(ssn)
    return out


_POOL: dict = {}


def _pool_init(seed: int, months: int, registry_text: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _POOL["orgs"] = Orgs.make(random.Random(seed))  # as population_registry(seed)
    _POOL["months"] = months
    _POOL["seed"] = seed
    _POOL["organisations"] = parse_organisations(registry_text)


def make_chunk(job: tuple[int, list[str], frozenset]) -> dict:
    """One chunk of careers: the wire records (topic, key, value) in a shuffled order and
    the offline fold's file (Avro bytes) of each checked worker of the chunk."""
    index, ssns, checked = job
    rng = random.Random(f"{_POOL['seed']}-chunk-{index}")
    events: list = []
    for ssn in ssns:
        events.extend(worker_career(rng, _POOL["orgs"], ssn, _POOL["months"]))
    events.extend(add_anomalies(rng, events))
    rng.shuffle(events)
    records, valid = [], 0
    lines = []
    for item in events:
        if isinstance(item, str):  # a bad line: sent as it is, keyed by nothing useful
            records.append((BAD_LINES_TOPIC, b"unknown", item.encode()))
            continue
        try:
            event = EventProducer.checked(item)
        except InvalidEvent:  # e.g. a wrong check character: sent as the source sent it
            records.append(("insurance-events", str(item.get("ssn", "")).encode(), codec.encode("Event", item)))
        else:
            records.append((TOPIC_OF_TYPE.get(event.type, RETRACTIONS), event.ssn.encode(), codec.encode_event(event)))
            valid += 1
        if item.get("ssn") in checked:
            lines.append(orjson.dumps(item))
    expected = {}
    if lines:
        batch = fold_lines(lines, organisations=_POOL["organisations"])
        expected = {f["ssn"]: codec.encode("WorkerFile", f) for f in batch.files()}
    return {"records": records, "expected": expected, "events": len(events), "valid": valid,
            "value_bytes": sum(len(v) for _, _, v in records)}


class Sender:
    """Produces records with aiokafka's batch API (one batch per topic partition, sent
    when full), partitioned like every producer of the project (murmur2 of the key)."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.loop = asyncio.new_event_loop()

        async def start() -> AIOKafkaProducer:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                        max_batch_size=512 * 1024, max_request_size=4 * 2**20)
            await producer.start()
            return producer

        self.producer = self.loop.run_until_complete(start())
        self.partitions: dict[str, list[int]] = {}
        self.batches: dict[tuple[str, int], object] = {}
        self.pending: list = []

    async def _send(self, records) -> None:
        for topic, key, value in records:
            parts = self.partitions.get(topic)
            if parts is None:
                parts = self.partitions[topic] = sorted(await self.producer.partitions_for(topic))
            p = parts[(murmur2(key) & 0x7FFFFFFF) % len(parts)]
            batch = self.batches.get((topic, p))
            if batch is None:
                batch = self.batches[(topic, p)] = self.producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                await self._flush_batch(topic, p)
                batch = self.batches[(topic, p)] = self.producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        if len(self.pending) > 64:
            await asyncio.gather(*self.pending)
            self.pending.clear()

    async def _flush_batch(self, topic: str, p: int) -> None:
        batch = self.batches.pop((topic, p))
        batch.close()
        self.pending.append(await self.producer.send_batch(batch, topic, partition=p))

    def send(self, records) -> None:
        self.loop.run_until_complete(self._send(records))

    def close(self) -> None:
        async def finish():
            for topic, p in list(self.batches):
                await self._flush_batch(topic, p)
            await asyncio.gather(*self.pending)
            await self.producer.stop()

        self.loop.run_until_complete(finish())
        self.loop.close()


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=100_000, help="people in the population")
    parser.add_argument("--events-per-worker", type=float, default=100.0, help="about this many events a career")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--processes", type=int, default=1, help="worker processes (one app id)")
    parser.add_argument("--sample", type=int, default=10_000,
                        help="workers whose files are checked (random, seeded); 0 or >= --workers: all")
    parser.add_argument("--chunk-workers", type=int, default=2000, help="careers generated and shuffled together")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=None, help="max seconds of processing (default: by size)")
    parser.add_argument("--progress-every", type=float, default=30.0)
    parser.add_argument("--keep-data", action="store_true")
    args = parser.parse_args(argv)

    run = LocalRun("rehearsal-", broker_dir="kafka")
    say(f"rehearsal: {args.workers:,} workers x ~{args.events_per_worker:g} events, {args.partitions} partitions, "
        f"{args.processes} worker process(es); {load_text()} at start")
    work_dir, sampler = run.work_dir, run.sampler
    workers: list[WorkerProcess] = []
    r: dict = {}
    try:
        # 1. broker, topics, registry
        bootstrap = run.start_broker()
        app_id = f"rehearsal-{uuid.uuid4().hex[:8]}"
        ensure_topics(bootstrap, append_time_specs(args.partitions, app_id=app_id))
        registry_path = work_dir / "organisations.toml"
        registry_text = registry_toml(population_registry(args.seed))
        registry_path.write_text(registry_text, encoding="utf-8")

        # 2. population, produced before the workers start
        months = months_for(args.events_per_worker, args.seed)
        ssns = population_ssns(args.workers, args.seed)
        every = args.sample <= 0 or args.sample >= args.workers
        checked = set(ssns) if every else set(random.Random(f"{args.seed}-sample").sample(ssns, args.sample))
        say(f"population: careers of {months} months; checking {'every file' if every else f'a random sample of {len(checked):,} files'}; "
            f"generating, validating and producing in chunks of {args.chunk_workers:,} workers ...")
        jobs = [(i, ssns[a:a + args.chunk_workers], frozenset(s for s in ssns[a:a + args.chunk_workers] if s in checked))
                for i, a in enumerate(range(0, len(ssns), args.chunk_workers))]
        expected: dict[bytes, bytes] = {}
        produced = valid = value_bytes = 0
        t0 = time.monotonic()
        cpu0 = time.process_time()
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(os.cpu_count(), initializer=_pool_init, initargs=(args.seed, months, registry_text)) as pool:
            sender = Sender(bootstrap)  # after the fork: the pool's processes have no Kafka client
            next_say = time.monotonic() + args.progress_every
            for chunk in pool.imap(make_chunk, jobs):
                sender.send(chunk["records"])
                produced += len(chunk["records"])
                valid += chunk["valid"]
                value_bytes += chunk["value_bytes"]
                expected.update((k.encode(), v) for k, v in chunk["expected"].items())
                if time.monotonic() > next_say:
                    say(f"  produced {produced:,} records ({produced / (time.monotonic() - t0):,.0f}/s; {load_text()})")
                    next_say += args.progress_every
            sender.close()
        r["produce_s"] = time.monotonic() - t0
        r["produce_cpu"] = time.process_time() - cpu0
        r["produced"], r["valid"], r["value_bytes"] = produced, valid, value_bytes
        say(f"  produced {produced:,} records ({valid:,} valid events, {produced - valid:,} bad inputs; "
            f"{value_bytes / produced:.0f} B a value) in {r['produce_s']:.0f} s ({produced / r['produce_s']:,.0f}/s, "
            f"generator and producer, not the pipeline); {len(expected):,} expected files; {load_text()}")
        if len(expected) != len(checked):
            raise RuntimeError(f"{len(checked) - len(expected)} checked workers have no file offline")

        # 3. the worker processes
        timeout = args.timeout or max(1800.0, produced / 200)
        env = {"WORKERFILE_ORGANISATIONS": str(registry_path)}
        r["load_start"] = load_text()
        for i in range(args.processes):
            w = WorkerProcess(bootstrap, app_id, work_dir / f"worker{i}", partitions=args.partitions,
                              loglevel="warning", env=env)
            w.start()
            workers.append(w)
            sampler.add(f"worker{i}", w.proc.pid)
            sampler.watch(f"ready{i}", w.log_path, "ready: tables recovered")
        launch = time.time()
        say(f"started {args.processes} worker(s) (app id {app_id}); {r['load_start']}")

        def progress(done: int, total: int) -> str:
            ready = min(sampler.seen.values(), default=launch)
            rss = ", ".join(f"{mib(sampler.memory_peak(f'worker{i}'))}" for i in range(args.processes))
            return (f"  {done:,}/{total:,} messages committed ({done / max(1e-9, time.time() - ready):,.0f}/s since "
                    f"ready); worker peak RSS {rss}; {load_text()}")

        source_progress = SourceProgress(bootstrap, app_id)
        total = source_progress.wait(workers, timeout, poll=2, every=args.progress_every, progress=progress)
        source_progress.close()
        r["load_end"] = load_text()
        r["total_sources"] = total
        caught_up = time.time()
        say(f"  caught up: {total:,} messages committed; {r['load_end']}")
        for i in range(args.processes):
            r[f"rss{i}"] = sampler.memory_peak(f"worker{i}")
        time.sleep(2)  # the producer's last sends and the changelog's appends
        files = asyncio.run(read_worker_files(bootstrap, args.partitions, keys=set(expected)))
        last = max(files["last_ts"].values()) / 1000
        ready = min((sampler.seen[f"ready{i}"] for i in range(args.processes) if f"ready{i}" in sampler.seen),
                    default=launch)
        r["window"] = last - ready
        r["ready_after"] = ready - launch
        r["caught_up_after"] = caught_up - launch
        r["cpu"] = [sampler.cpu_between(f"worker{i}", ready, last) for i in range(args.processes)]
        r["cpu_total"] = [sampler.cpu_between(f"worker{i}", launch, last) for i in range(args.processes)]
        r["broker_cpu"] = sampler.cpu_between("broker", ready, last)
        r["machine"] = sampler.machine_between(ready, last) / max(r["window"], 1e-9) / os.cpu_count()
        r["file_records"] = sum(files["records"].values())
        stop_workers(workers, timeout=120)

        # 4. sizes and the check
        r["rocksdb"] = [dir_bytes(w.data_dir) for w in workers]
        from kafka import KafkaConsumer

        lister = KafkaConsumer(bootstrap_servers=bootstrap)
        topics = sorted(t for t in lister.topics() if not t.startswith("__"))  # also the views made on demand
        lister.close()
        counts = topic_records(bootstrap, topics)
        r["topics"] = {t: (counts.get(t, 0), topic_disk_bytes(run.kafka.data_dir, t)) for t in topics}
        # without `version` (the stream's count of published changes, which the offline fold's files have not)
        files["latest"] = {k: (unversioned(v) if v is not None else None) for k, v in files["latest"].items()}
        mismatched = [k for k, v in expected.items() if files["latest"].get(k) != v]
        missing = [k for k in mismatched if files["latest"].get(k) is None]
        r["checked"], r["mismatched"], r["missing"] = len(expected), len(mismatched), len(missing)
        if mismatched:
            k = mismatched[0]
            have = files["latest"].get(k)
            want = codec.decode(expected[k])[1]
            got = codec.decode(have)[1] if have else {}
            r["first_mismatch"] = (f"{mask_ssn(k.decode())}: " + ("no file" if not have else "sections differ: " +
                                   ", ".join(s for s in want if want[s] != got.get(s))))
    finally:
        stop_workers(workers, timeout=60)
        run.close(kept="data" if args.keep_data else None)

    # ------------------------------------------------------------ report
    n = r["produced"]
    say()
    say(f"== rehearsal: {args.workers:,} workers, {n:,} records ({r['valid']:,} valid events, "
        f"{n / args.workers:.1f} a worker), {args.partitions} partitions, {args.processes} worker process(es) ==")
    say(f"load: {r['load_start']} when the workers started, {r['load_end']} when they had caught up")
    say(f"producing (not the pipeline): {r['produce_s']:.0f} s, {n / r['produce_s']:,.0f} records/s")
    say(f"processing: ready after {r['ready_after']:.1f} s; ready -> last file {r['window']:.0f} s = "
        f"{n / r['window']:,.0f} events/s (all processes); caught up (offsets committed) "
        f"{r['caught_up_after']:.0f} s after launch")
    for i in range(args.processes):
        say(f"  worker {i}: {r['cpu'][i]:,.0f} CPU-s from ready to the last file ({r['cpu'][i] / r['window']:.0%} of "
            f"a core), {r['cpu_total'][i]:,.0f} from launch; peak RSS {mib(r[f'rss{i}'])}; RocksDB {mib(r['rocksdb'][i])}")
    cpu = sum(r["cpu"])
    say(f"worker CPU per event: {cpu / n * 1e6:,.0f} us (from ready; {sum(r['cpu_total']) / n * 1e6:,.0f} us from "
        f"launch); broker {r['broker_cpu'] / n * 1e6:,.0f} us per event; machine busy {r['machine']:.0%} of "
        f"{os.cpu_count()} cores")
    say(f"file records on worker-files: {r['file_records']:,} ({n / max(1, r['file_records']):.2f} events per file "
        f"record)")
    rocks = sum(r["rocksdb"])
    say(f"RocksDB: {mib(rocks)} in all = {rocks / args.workers:,.0f} B a worker, {rocks / n:,.0f} B an event")
    say(f"{'topic':44s} {'records':>12s} {'on disk':>12s} {'B/event':>9s} {'records/event':>14s}")
    for t, (c, b) in sorted(r["topics"].items(), key=lambda kv: -kv[1][1]):
        if c or b:
            say(f"{t:44s} {c:>12,} {mib(b):>12s} {b / n:>9,.0f} {c / n:>14.2f}")
    total_disk = sum(b for _, b in r["topics"].values())
    say(f"{'all topics':44s} {'':>12s} {mib(total_disk):>12s} {total_disk / n:>9,.0f}")
    say(f"check: {r['checked']:,} files {'(every worker)' if r['checked'] == args.workers else '(random sample)'}: "
        f"{r['checked'] - r['mismatched']:,} equal to the offline fold, {r['mismatched']:,} not "
        f"({r['missing']:,} missing){'; first: ' + r['first_mismatch'] if r['mismatched'] else ''}")
    minutes = r["window"] / 60
    say(f"targets: <= 20 min -> {minutes:.1f} min {'MET' if minutes <= 20 else 'MISSED'} at this size"
        f"{'' if args.workers >= 100_000 else ' (not the full size)'}; worker RSS <= 1.5 GB -> "
        f"{mib(max(r[f'rss{i}'] for i in range(args.processes)))} "
        f"{'MET' if max(r[f'rss{i}'] for i in range(args.processes)) <= 1.5e9 else 'MISSED'}; files equal -> "
        f"{'MET' if not r['mismatched'] else 'MISSED'}")
    say(run.end_text())
    return 0 if not r["mismatched"] else 1


if __name__ == "__main__":
    sys.exit(main())
