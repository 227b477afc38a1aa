"""Scale-out (not a test): two `workerfile worker` processes with one application id on 8
partitions share the work; the throughput and CPU of each, and every file identical to
the offline fold (`workerfile fold`). Then, as the reference, one worker alone on the
same events under a fresh application id (--no-single to skip it).

Steps, against a throw-away single-node Kafka (streams.local_kafka) whose
group.initial.rebalance.delay.ms is 3 s (kafka.sh sets 0 for the tests), so that two
workers started together join the group in one generation and each keeps its half of the
partitions from the start:
  1. topics with --partitions (`worker-files` with message.timestamp.type=LogAppendTime:
     its records carry the broker's append time); a generated population WITH the usual
     anomalies (re-deliveries, corrections, retractions, bad numbers and lines) published
     as the integration tests publish it (tests/integration/conftest.py `publish`), all
     before any worker starts; its expected files from the offline fold
     (conftest.expected_files: processors.batch.fold_lines, what `workerfile fold` runs).
  2. --processes workers (default 2) started together, until the group's committed
     offsets reach the end of every source partition. Each worker's partitions are those
     of its last "ready: ... processing event partitions ..." log line (a later rebalance
     is reported); its events are the source messages of those partitions; its window
     runs from its ready line to the last append on `worker-files` in its partitions; its
     CPU is user+system of its process (/proc, sampled every 0.1 s) over that window.
  3. the latest file of every worker on `worker-files` since the phase began
     (streams.reader-style read from the phase's start offsets) compared with the
     offline fold's, section by section: equal or not.
The load average is printed with every figure: the machine is small (2 cores) and shared,
and two workers plus the broker on 2 cores compete for them, so the pair's wall-clock
throughput is bounded by the cores, not by the partitions; CPU per event is the figure to
compare with one worker.

    python bench/scaleout_bench.py [--workers 600] [--months 36] [--partitions 8] [--processes 2] [--no-single]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from schemas.identity import mask_ssn  # noqa: E402
from streams import codec  # noqa: E402
from streams.runner import WorkerProcess  # noqa: E402
from streams.topics import WORKER_FILES, ensure_topics, provision  # noqa: E402
from tests.integration.conftest import expected_files, publish  # noqa: E402
from workerfile.population import generate_population  # noqa: E402

from benchlib import (LocalRun, SourceProgress, append_time_specs, load_text, mib, read_worker_files, say,  # noqa: E402
                      stop_workers)

READY = re.compile(r"ready: tables recovered, processing event partitions (\S+) of app")


def file_end_offsets(bootstrap: str, partitions: int) -> dict[int, int]:
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        end = consumer.end_offsets([KTP(WORKER_FILES, p) for p in range(partitions)])
        return {tp.partition: o for tp, o in end.items()}
    finally:
        consumer.close()


def run_phase(name: str, run: LocalRun, args, processes: int, expected: dict[str, dict]) -> dict:
    """`processes` workers of a fresh app id over every source message; their figures."""
    bootstrap, sampler = run.kafka.bootstrap, run.sampler
    app_id = f"scaleout-{name}-{uuid.uuid4().hex[:6]}"
    provision(bootstrap, app_id, args.partitions)
    start_offsets = file_end_offsets(bootstrap, args.partitions)
    workers = [WorkerProcess(bootstrap, app_id, run.work_dir / f"{name}-w{i}", partitions=args.partitions,
                             loglevel="warning") for i in range(processes)]
    say(f"[{name}] starting {processes} worker(s), app id {app_id}; {load_text()}")
    load_start = load_text()
    launch = time.time()
    try:
        for i, w in enumerate(workers):
            w.start()
            sampler.add(f"{name}{i}", w.proc.pid)
            sampler.watch(f"{name}-ready{i}", w.log_path, "ready: tables recovered")
        progress = SourceProgress(bootstrap, app_id)
        total = progress.wait(workers, args.timeout, poll=1, every=15,
                              progress=lambda done, total: f"  [{name}] {done:,}/{total:,} committed; {load_text()}")
        per_partition = {}
        for tp, end in progress.end_offsets().items():
            per_partition[tp.partition] = per_partition.get(tp.partition, 0) + end - progress.begin[tp]
        progress.close()
        load_end = load_text()
        time.sleep(2)
        files = asyncio.run(read_worker_files(bootstrap, args.partitions, start=start_offsets))
        last_ts = {p: ts / 1000 for p, ts in files["last_ts"].items()}
        # without `version` (the stream's count of published changes, which the offline fold's files have not)
        latest = {k.decode(): ({f: x for f, x in codec.decode(v)[1].items() if f != "version"} if v is not None else None)
                  for k, v in files["latest"].items()}
        out = {"app_id": app_id, "load_start": load_start, "load_end": load_end, "total": total, "workers": []}
        for i, w in enumerate(workers):
            lines = READY.findall(w.log_text())
            parts = sorted(int(p) for p in lines[-1].split(",") if p.isdigit()) if lines else []
            ready = sampler.seen.get(f"{name}-ready{i}", launch)
            last = max((last_ts[p] for p in parts), default=ready)
            events = sum(per_partition.get(p, 0) for p in parts)
            out["workers"].append({
                "partitions": parts, "rebalances": len(lines), "events": events, "ready_after": ready - launch,
                "window": last - ready, "cpu": sampler.cpu_between(f"{name}{i}", ready, last),
                "cpu_launch": sampler.cpu_between(f"{name}{i}", launch, last),
                "rss": sampler.memory_peak(f"{name}{i}"), "file_records": sum(files["records"][p] for p in parts)})
        first_ready = min(launch + w["ready_after"] for w in out["workers"])
        last_file = max(last_ts.values())
        out["window"] = last_file - first_ready
        out["machine"] = sampler.machine_between(first_ready, last_file) / max(out["window"], 1e-9) / os.cpu_count()
        out["broker_cpu"] = sampler.cpu_between("broker", first_ready, last_file)
        differing = [ssn for ssn, f in expected.items() if latest.get(ssn) != f]
        extra = [ssn for ssn in latest if ssn not in expected]
        out["checked"], out["differing"], out["extra"] = len(expected), len(differing), len(extra)
        if differing:
            ssn = differing[0]
            have = latest.get(ssn) or {}
            out["first_difference"] = f"{mask_ssn(ssn)}: " + (", ".join(
                s for s in expected[ssn] if expected[ssn][s] != have.get(s)) if have else "no file")
        return out
    finally:
        stop_workers(workers, timeout=60)


def report(name: str, out: dict, processes: int) -> None:
    total = out["total"]
    say(f"-- {name}: {processes} worker process(es), app id {out['app_id']} --")
    say(f"  load: {out['load_start']} at the start, {out['load_end']} when caught up; machine busy "
        f"{out['machine']:.0%} of {os.cpu_count()} cores")
    for i, w in enumerate(out["workers"]):
        say(f"  worker {i}: partitions {','.join(map(str, w['partitions'])) or '-'} ({w['rebalances']} ready "
            f"line(s)), {w['events']:,} events; ready after {w['ready_after']:.1f} s, ready -> its last file "
            f"{w['window']:.1f} s = {w['events'] / max(w['window'], 1e-9):,.0f} events/s; CPU {w['cpu']:.1f} s "
            f"({w['cpu'] / max(w['window'], 1e-9):.0%} of a core) = {w['cpu'] / max(1, w['events']) * 1e6:,.0f} us "
            f"per event ({w['cpu_launch']:.1f} CPU-s from launch); peak RSS {mib(w['rss'])}; "
            f"{w['file_records']:,} file records")
    cpu = sum(w["cpu"] for w in out["workers"])
    say(f"  together: {total:,} messages, first ready -> last file {out['window']:.1f} s = "
        f"{total / max(out['window'], 1e-9):,.0f} events/s; worker CPU {cpu / total * 1e6:,.0f} us per event; "
        f"broker {out['broker_cpu'] / total * 1e6:,.0f} us per event")
    verdict = "IDENTICAL" if not out["differing"] and not out["extra"] else "DIFFERENT"
    say(f"  files: {out['checked'] - out['differing']:,}/{out['checked']:,} equal to the offline fold, "
        f"{out['extra']} not expected -> {verdict}{'; first: ' + out['first_difference'] if out['differing'] else ''}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=600, help="people in the population")
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--no-single", action="store_true", help="skip the one-worker reference")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)

    run = LocalRun("scaleout-bench-", extra_config="group.initial.rebalance.delay.ms=3000")
    say(f"scale-out benchmark: {args.processes} workers, one app id, {args.partitions} partitions; "
        f"{load_text()} at start")
    results = {}
    try:
        bootstrap = run.start_broker()
        ensure_topics(bootstrap, append_time_specs(args.partitions))
        items = generate_population(args.workers, seed=args.seed, months=args.months)
        expected = expected_files(items)
        say(f"population: {args.workers} workers, {len(items):,} inputs with anomalies; publishing ...")
        counts = publish(bootstrap, items)
        say(f"  published {counts}; {len(expected):,} expected files (offline fold); {load_text()}")
        results["scale-out"] = run_phase("pair", run, args, args.processes, expected)
        if not args.no_single:
            results["one worker"] = run_phase("single", run, args, 1, expected)
    finally:
        run.close()
    say()
    say(f"== scale-out: {args.workers} workers, {len(items):,} inputs, {args.partitions} partitions ==")
    ok = True
    for name, out in results.items():
        report(name, out, args.processes if name == "scale-out" else 1)
        ok &= not out["differing"] and not out["extra"]
    if "one worker" in results:
        pair, one = results["scale-out"], results["one worker"]
        say(f"pair / one worker: throughput {one['window'] / pair['window']:.2f} x, CPU per event "
            f"{sum(w['cpu'] for w in pair['workers']) / max(1e-9, sum(w['cpu'] for w in one['workers'])):.2f} x")
    say(run.end_text())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
