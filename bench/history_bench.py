"""How the cost of ONE more event grows with a worker's history (not a test).

A career of H events (mostly `insurance.contribution`, month by month in 5 schemes, plus
a card, 5 enrolments, 2 jobs, 2 trainings and their 2 certificates; valid canonical
events, the last month a year before today) is folded into a worker's state, then one
more month-end contribution (a new month) is folded into it:

  in-process: the history is folded batch by batch (one batch per month, as a live
    stream sees it) through streams.handler.fold_batch, its state_writes applied to a
    dict acting as the state table. Then, best of --repeat, each repetition starting
    from the same stored history:
      cold:   load_state(ssn, table.get) + fold_batch + state_writes (timed parts too);
      cached: fold_batch + state_writes on the decoded state the shell keeps in its
              cache (the WorkerState object of the last batch, deep-copied untimed
              together with the table so that every repetition starts alike);
    CPU time of this process (time.process_time), and the state bytes written for the
    event: sum of len(key) + len(value) over state_writes.
  through Kafka (--kafka, default): a local broker (127.0.0.1, free ports), the topics, one
    `workerfile worker`; --workers careers of each history length produced (each
    worker's events in order, worker after worker), the worker started and awaited
    until every worker's file on `worker-files` has all its events (catch-up, events/s
    by wall and by the worker's CPU). Then, --kafka-repeat times per history length: one
    month-end contribution per worker of that length, and the worker's CPU time
    (/proc/PID/stat utime+stime) from before producing until every one of those files is
    updated, per event (also minus the worker's idle CPU rate, measured before), and the
    bytes of the records the window added to `<app_id>-worker-state-changelog` (key +
    value), per event. The worker and the broker are always stopped. After the catch-up
    the worker's cache holds every decoded state, so this is the shell's cached path plus
    intake and publishing; /proc counts CPU in ticks of 10 ms, hence the several hundred
    events per window (--workers) and the best of --kafka-repeat. With the current state
    format the catch-up runs at ~3,000 events/s: --workers 60 (the default) takes ~3 min,
    200 about 10.

Targets: the CPU per event at the longest history within 2x of the shortest's, and at most
4 KiB of state written per event at any history length.

    cd /work/main && python bench/history_bench.py [--histories 100,1000,2400] [--kafka|--no-kafka]
        [--workers 60] [--repeat 30] [--kafka-repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import calendar
import copy
import gc
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from schemas.identity import mask_ssn  # noqa: E402
from processors.intake import Rejection, validate_event  # noqa: E402
from streams import codec  # noqa: E402
from streams.handler import Origin, fold_batch, intake_message, load_state, state_writes  # noqa: E402
from streams.topics import INSURANCE_EVENTS, WORKER_FILES  # noqa: E402
from workerfile.population import OCCUPATIONS, REGIONS, Orgs, make_worker_ssn  # noqa: E402

from benchlib import proc_cpu, stop_on_signals, stop_workers, worker_exited  # noqa: E402

SCHEMES = ("pension", "medical", "unemployment", "work_injury", "maternity")
EXTRAS = 15  # non-contribution events of a career: card, 5 enrolments, 3 job events, 4 training events, 2 certificates
PARTITIONS = 4
CPU_TARGET = 2.0  # longest history / shortest, CPU per event
BYTES_TARGET = 4096  # state bytes written per event


def say(text: str = "", quiet: bool = False) -> None:
    if not quiet:
        print(text, file=sys.stderr if quiet is None else sys.stdout, flush=True)


# ------------------------------------------------------------------ careers
def month_add(ym: tuple[int, int], n: int) -> tuple[int, int]:
    i = ym[0] * 12 + ym[1] - 1 + n
    return i // 12, i % 12 + 1


def history_end() -> tuple[int, int]:
    """The last month of every history: a year before this month (the new month-end
    contributions of the measurements are the months after it, all in the past)."""
    today = time.gmtime()
    return month_add((today.tm_year, today.tm_mon), -12)


class Career:
    """One worker's history: its events (canonical dicts, in time order) and what to
    fold next."""

    def __init__(self, rng: random.Random, orgs: Orgs, length: int, last: tuple[int, int]):
        if length < EXTRAS + len(SCHEMES):
            raise ValueError(f"a history has at least {EXTRAS + len(SCHEMES)} events")
        self.rng, self.orgs, self.last = rng, orgs, last
        self.ssn = make_worker_ssn(rng, (1960, 1968))
        self.region = rng.choice(REGIONS)
        self.bureau = rng.choice(orgs.bureaus)
        self.employer = rng.choice(orgs.employers)
        self.base = rng.randrange(4000, 20000, 100)
        contributions = length - EXTRAS
        months = -(-contributions // len(SCHEMES))
        first = month_add(last, -(months - 1))
        self.events: list[dict] = []
        span = [month_add(first, i) for i in range(months)]
        at = lambda frac: span[min(len(span) - 1, int(frac * len(span)))]  # noqa: E731
        self._extra(span[0], 1, "card.issued", self.bureau, {
            "card_no": f"C{rng.randint(10**8, 10**9 - 1)}", "issued_on": self.day(span[0], 1), "region": self.region})
        for scheme in SCHEMES:
            self._extra(span[0], 1, "insurance.enrolled", self.bureau, {
                "scheme": scheme, "month": f"{span[0][0]:04d}-{span[0][1]:02d}", "region": self.region,
                "employer": self.employer})
        first_job = self.employer
        self._job(span[0], first_job)
        end = at(0.4)
        self._extra(end, 20, "employment.ended", first_job, {
            "employer": first_job, "end_date": self.day(end, 20), "reason": "resigned"})
        self.employer = rng.choice([e for e in orgs.employers if e != first_job])
        self._job(month_add(end, 1) if month_add(end, 1) <= last else end, self.employer, day=2)
        level = iter(("intermediate", "senior"))
        for frac in (0.3, 0.7):
            m = at(frac)
            school, pid, occupation = rng.choice(orgs.schools), f"P{rng.randint(1000, 9999)}", rng.choice(OCCUPATIONS)
            self._extra(m, 3, "training.enrolled", school, {
                "program_id": pid, "program_name": f"技能提升培训 {pid}", "start_date": self.day(m, 3),
                "planned_hours": 80, "occupation_code": occupation})
            self._extra(m, 25, "training.completed", school, {
                "program_id": pid, "end_date": self.day(m, 25), "hours": 80, "passed": True})
            self._extra(m, 26, "certificate.issued", rng.choice(orgs.evaluators), {
                "certificate_no": f"S{rng.randint(10**9, 10**10 - 1)}", "kind": "skill_level",
                "occupation_code": occupation, "level": next(level), "issued_on": self.day(m, 26)})
        # contributions, month by month; the first month is partial when length - EXTRAS is
        # not a multiple of 5 (so the history has exactly `length` events)
        skip = months * len(SCHEMES) - contributions
        for m in span:
            for scheme in SCHEMES:
                if skip:
                    skip -= 1
                    continue
                self.events.append(self.contribution(m, scheme, day=15))
        self.events.sort(key=lambda e: e["occurred_at"])
        assert len(self.events) == length, (len(self.events), length)

    @staticmethod
    def day(ym: tuple[int, int], d: int) -> str:
        return f"{ym[0]:04d}-{ym[1]:02d}-{min(d, calendar.monthrange(*ym)[1]):02d}"

    def _event(self, kind: str, occurred_at: str, source: str, payload: dict) -> dict:
        return {"event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)), "type": kind, "ssn": self.ssn,
                "occurred_at": occurred_at, "source": source, "corrects": None, "payload": payload}

    def _extra(self, ym, d, kind, source, payload) -> None:
        self.events.append(self._event(kind, f"{self.day(ym, d)}T09:30:00+08:00", source, payload))

    def _job(self, ym, employer, day: int = 1) -> None:
        self._extra(ym, day, "employment.started", employer, {
            "employer": employer, "occupation_code": self.rng.choice(OCCUPATIONS), "contract_type": "open_ended",
            "written_contract": True, "start_date": self.day(ym, day), "region": self.region,
            "monthly_wage_cny": self.rng.randrange(3500, 16000, 100)})

    def contribution(self, ym: tuple[int, int], scheme: str, day: int | None = None) -> dict:
        """A contribution of month `ym` (on the 15th, or at the month's end)."""
        d = day or calendar.monthrange(*ym)[1]
        time_of_day = "10:00:00" if day else "18:00:00"
        return self._event("insurance.contribution", f"{self.day(ym, d)}T{time_of_day}+08:00", self.bureau, {
            "scheme": scheme, "month": f"{ym[0]:04d}-{ym[1]:02d}", "region": self.region, "base_cny": self.base,
            "employer_amount_cny": self.base * 16 // 100, "personal_amount_cny": self.base * 8 // 100,
            "employer": self.employer})

    def next_event(self, k: int = 1) -> dict:
        """The month-end pension contribution of the k-th month after the history."""
        return self.contribution(month_add(self.last, k), "pension")


def wire(event: dict) -> tuple[str, bytes, bytes]:
    """(topic, key, Avro value) of a valid event, as the project's producer sends it."""
    from schemas.events import TOPIC_OF_TYPE

    env = validate_event(event)
    if isinstance(env, Rejection):
        raise RuntimeError(f"the generated event is invalid: {env.reason}: {env.message}")
    return TOPIC_OF_TYPE[env.type], env.ssn.encode(), codec.encode_event(env)


def as_message(event: dict, offset: int):
    """The (Envelope, key, value, origin) that fold_batch takes, through the stream's intake."""
    topic, key, value = wire(event)
    origin = Origin(topic, 0, offset)
    intake = intake_message(key, value, origin)
    if intake.event is None:
        raise RuntimeError(f"intake of a generated event: {intake.status}")
    return intake.event, key, value, origin


def applied_events(folded) -> int | None:
    for record in folded.records:
        if record.topic == WORKER_FILES and record.value is not None:
            return codec.decode(record.value)[1]["applied_events"]
    return None


# ------------------------------------------------------------------ in-process
def write_bytes(writes) -> int:
    return sum(len(k) + len(v or b"") for k, v in writes)


def apply_writes(table: dict, writes) -> None:
    for key, value in writes:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value


def fold_history(career: Career):
    """Fold a career month by month as the stream would: returns the table (dict), the
    state object of the last batch (the shell's cached state) and the CPU seconds."""
    table: dict[bytes, bytes] = {}
    by_month: dict[str, list] = {}
    for i, event in enumerate(career.events):
        by_month.setdefault(event["occurred_at"][:7], []).append(as_message(event, i))
    start = time.process_time()
    state = load_state(career.ssn, table.get)
    accepted = applied = 0
    for batch in by_month.values():
        folded = fold_batch(state, batch)
        if folded.rejected or folded.duplicates:
            raise RuntimeError(f"history batch: {folded.rejected} rejected, {folded.duplicates} duplicates")
        accepted += folded.accepted
        apply_writes(table, state_writes(folded.state))
        state = folded.state
        applied = applied_events(folded) or applied
    elapsed = time.process_time() - start
    if accepted != len(career.events):
        raise RuntimeError(f"history: {accepted} of {len(career.events)} events accepted")
    return table, state, elapsed, applied


def in_process(length: int, repeat: int, seed: int) -> dict:
    rng = random.Random(seed + length)
    career = Career(rng, Orgs.make(rng), length, history_end())
    table, cached, history_cpu, applied = fold_history(career)
    new = as_message(career.next_event(), len(career.events))
    best = {"cold": float("inf"), "cached": float("inf"), "load": float("inf"), "fold": float("inf"),
            "writes": float("inf")}
    written = keys = None
    deep_copy_ok = True
    gc_was = gc.isenabled()
    for _ in range(repeat):
        # cold: decode from the table
        t = dict(table)
        gc.collect()
        t0 = time.process_time()
        state = load_state(career.ssn, t.get)
        t1 = time.process_time()
        folded = fold_batch(state, [new])
        t2 = time.process_time()
        writes = state_writes(folded.state)
        t3 = time.process_time()
        if folded.accepted != 1:
            raise RuntimeError(f"the new event was not accepted ({folded.accepted}, {folded.duplicates} dup)")
        best["cold"] = min(best["cold"], t3 - t0)
        best["load"] = min(best["load"], t1 - t0)
        best["fold"] = min(best["fold"], t2 - t1)
        best["writes"] = min(best["writes"], t3 - t2)
        b = write_bytes(writes)
        if written is not None and b != written:
            raise RuntimeError(f"state bytes written differ between repetitions: {b} != {written}")
        written, keys = b, len(writes)
        # cached: the decoded state object the shell keeps (copied untimed with its table)
        try:
            t, state = copy.deepcopy((table, cached)) if deep_copy_ok else (None, None)
        except Exception:  # noqa: BLE001 (a state that cannot be deep-copied: decode it instead)
            deep_copy_ok = False
        if not deep_copy_ok:
            t = dict(table)
            state = load_state(career.ssn, t.get)
        gc.collect()
        t0 = time.process_time()
        folded = fold_batch(state, [new])
        writes = state_writes(folded.state)
        t1 = time.process_time()
        if folded.accepted != 1:
            raise RuntimeError("the new event was not accepted (cached)")
        best["cached"] = min(best["cached"], t1 - t0)
        if write_bytes(writes) != written:
            raise RuntimeError("state bytes written differ between the cached and the cold state")
    if gc_was:
        gc.enable()
    return {
        "history": length, "ssn_masked": mask_ssn(career.ssn), "applied_events": applied,
        "history_fold_cpu_s": history_cpu, "history_batches": len({e["occurred_at"][:7] for e in career.events}),
        "cold_us": best["cold"] * 1e6, "cached_us": best["cached"] * 1e6, "load_us": best["load"] * 1e6,
        "fold_us": best["fold"] * 1e6, "writes_us": best["writes"] * 1e6,
        "state_bytes_written": written, "state_keys_written": keys,
        "table_bytes": sum(len(k) + len(v) for k, v in table.items()), "table_keys": len(table),
        "cached_by_deepcopy": deep_copy_ok, "repeat": repeat,
    }


# ------------------------------------------------------------------ through Kafka
def _consumer(bootstrap: str):
    from kafka import KafkaConsumer

    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", consumer_timeout_ms=-1, fetch_max_wait_ms=200,
                         max_partition_fetch_bytes=8 * 1024 * 1024)


def end_offsets(consumer, topic: str) -> dict:
    from kafka import TopicPartition

    return consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])


class FileWatch:
    """Reads `worker-files` from given offsets; `wait(targets)` returns once each ssn's
    latest file has at least the given applied_events."""

    def __init__(self, bootstrap: str, worker, start: dict | None = None):
        from kafka import TopicPartition

        self.worker = worker
        self.consumer = _consumer(bootstrap)
        tps = [TopicPartition(WORKER_FILES, p) for p in range(PARTITIONS)]
        self.consumer.assign(tps)
        if start is None:
            self.consumer.seek_to_beginning(*tps)
        else:
            for tp in tps:
                self.consumer.seek(tp, start[tp])
        self.applied: dict[bytes, int] = {}
        self.records = 0

    def wait(self, targets: dict[bytes, int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        missing = {k for k, n in targets.items() if self.applied.get(k, -1) < n}
        while missing:
            if not self.worker.running:
                raise worker_exited(self.worker)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(missing)} of {len(targets)} files not up to date after {timeout:.0f} s")
            for records in self.consumer.poll(timeout_ms=200, max_records=5000).values():
                for m in records:
                    self.records += 1
                    if m.value is None or m.key not in targets:
                        continue
                    n = codec.decode(m.value)[1]["applied_events"]
                    self.applied[m.key] = max(self.applied.get(m.key, -1), n)
                    if n >= targets[m.key]:
                        missing.discard(m.key)

    def close(self) -> None:
        self.consumer.close()


def changelog_settled(consumer, topic: str, start: dict, at_least: int, settle: float = 1.5,
                      timeout: float = 60) -> None:
    """Wait until `topic` has at least `at_least` records after `start` and its end
    offsets did not move for `settle` seconds."""
    deadline = time.monotonic() + timeout
    end, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = end_offsets(consumer, topic)
        if now != end:
            end, since = now, time.monotonic()
        elif sum(end[tp] - start.get(tp, 0) for tp in end) >= at_least and time.monotonic() - since >= settle:
            return
        time.sleep(0.1)
    raise TimeoutError(f"the changelog {topic} did not get {at_least} records in {timeout:.0f} s")


def changelog_bytes(bootstrap: str, topic: str, start: dict, settle: float = 1.0, timeout: float = 30) -> tuple[int, int]:
    """(records, key+value bytes) the changelog got after `start`, once its end offsets
    stopped moving for `settle` seconds."""
    consumer = _consumer(bootstrap)
    try:
        end, since = end_offsets(consumer, topic), time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() - since < settle and time.monotonic() < deadline:
            time.sleep(0.2)
            now = end_offsets(consumer, topic)
            if now != end:
                end, since = now, time.monotonic()
        tps = [tp for tp in end if end[tp] > start.get(tp, 0)]
        if not tps:
            return 0, 0
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start.get(tp, 0))
        count = size = 0
        left = set(tps)
        while left and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                for m in records:
                    if m.offset < end[tp]:
                        count += 1
                        size += len(m.key or b"") + len(m.value or b"")
                if consumer.position(tp) >= end[tp]:
                    left.discard(tp)
        return count, size
    finally:
        consumer.close()


def through_kafka(lengths: list[int], workers: int, repeat: int, seed: int, quiet: bool, idle_s: float = 3.0,
                  timeout: float = 900.0) -> dict:
    from kafka import KafkaProducer

    from streams.local_kafka import LocalKafka
    from streams.runner import WorkerProcess
    from streams.topics import ensure_topics, load_topic_specs, provision

    if repeat > 11:
        raise ValueError("--kafka-repeat: at most 11 (the new months must stay in the past)")
    out: dict = {"workers": workers, "repeat": repeat, "by_history": {}}
    rng = random.Random(seed)
    orgs = Orgs.make(rng)
    last = history_end()
    careers: dict[int, list[Career]] = {}
    seen: set[str] = set()
    for length in lengths:
        group = careers[length] = []
        while len(group) < workers:
            c = Career(rng, orgs, length, last)
            if c.ssn not in seen:
                seen.add(c.ssn)
                group.append(c)
    work_dir = Path(tempfile.mkdtemp(prefix="history-bench-"))
    kafka = LocalKafka()
    worker = None
    watch = None
    started = time.monotonic()
    try:
        say("kafka: starting a local broker ...", quiet)
        kafka.start()
        bootstrap = kafka.bootstrap
        ensure_topics(bootstrap, load_topic_specs("local", partitions=PARTITIONS))
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
        try:
            total = 0
            t0 = time.monotonic()
            for length in lengths:
                for c in careers[length]:
                    for event in c.events:
                        topic, key, value = wire(event)
                        producer.send(topic, key=key, value=value)
                        total += 1
            producer.flush()
            say(f"kafka: produced {total:,} history events ({workers} workers x {lengths}) in "
                f"{time.monotonic() - t0:.0f} s (not measured)", quiet)
            app_id = f"history-{uuid.uuid4().hex[:8]}"
            changelog = f"{app_id}-worker-state-changelog"
            provision(bootstrap, app_id, PARTITIONS)  # that changelog (workerfile topics --app-id)
            worker = WorkerProcess(bootstrap, app_id, work_dir / "worker", partitions=PARTITIONS)
            launch = time.monotonic()
            worker.start()
            pid = worker.proc.pid
            watch = FileWatch(bootstrap, worker)
            watch.wait({c.ssn.encode(): len(c.events) for g in careers.values() for c in g}, timeout)
            catchup_wall = time.monotonic() - launch
            catchup_cpu = proc_cpu(pid)
            out["catchup"] = {"events": total, "wall_s": catchup_wall, "worker_cpu_s": catchup_cpu,
                              "events_per_s_wall": total / catchup_wall,
                              "events_per_worker_cpu_s": total / catchup_cpu,
                              "file_records": watch.records}
            say(f"kafka: caught up in {catchup_wall:.0f} s from the worker's launch (start-up included): "
                f"{total / catchup_wall:,.0f} events/s, {total / catchup_cpu:,.0f} per worker CPU-s", quiet)
            # the worker's idle CPU rate (faust timers, heartbeats, commits)
            time.sleep(1.0)
            c0, w0 = proc_cpu(pid), time.monotonic()
            time.sleep(idle_s)
            idle_rate = (proc_cpu(pid) - c0) / (time.monotonic() - w0)
            out["idle_cpu_share"] = idle_rate
            offsets_consumer = _consumer(bootstrap)
            try:
                for length in lengths:
                    best: dict = {}
                    for k in range(1, repeat + 1):
                        files_at = end_offsets(offsets_consumer, WORKER_FILES)
                        log_at = end_offsets(offsets_consumer, changelog)
                        batch = [(c, c.next_event(k)) for c in careers[length]]
                        wired = [wire(e) for _, e in batch]  # validated and encoded before the window
                        cpu0, wall0 = proc_cpu(pid), time.monotonic()
                        for topic, key, value in wired:
                            producer.send(topic, key=key, value=value)
                        producer.flush()
                        watch.wait({c.ssn.encode(): len(c.events) + k for c, _ in batch}, 120)
                        # the table is written after the outputs are published, and its
                        # changelog flushed later: the window ends once the changelog has a
                        # record per worker and stopped growing
                        changelog_settled(offsets_consumer, changelog, log_at, workers)
                        cpu = proc_cpu(pid) - cpu0
                        wall = time.monotonic() - wall0
                        records, size = changelog_bytes(bootstrap, changelog, log_at, settle=0.0)
                        r = {"cpu_us": cpu / workers * 1e6, "cpu_us_minus_idle": max(0.0, cpu - idle_rate * wall) / workers * 1e6,
                             "wall_s": wall, "changelog_records": records, "changelog_bytes_per_event": size / workers,
                             "files_offsets": sum(files_at.values())}
                        say(f"kafka: history {length}, new month {k}: worker {cpu * 1000:.0f} CPU-ms over {wall:.1f} s "
                            f"for {workers} events = {r['cpu_us']:,.0f} us/event ({r['cpu_us_minus_idle']:,.0f} minus idle); "
                            f"changelog {records} records, {size / workers:,.0f} B/event", quiet)
                        if not best or r["cpu_us"] < best["cpu_us"]:
                            best = r
                    out["by_history"][length] = best
            finally:
                offsets_consumer.close()
        finally:
            producer.close()
    finally:
        if watch is not None:
            watch.close()
        if worker is not None:
            stop_workers([worker], timeout=30)
        kafka.stop()
        shutil.rmtree(work_dir, ignore_errors=True)
    out["run_s"] = time.monotonic() - started
    return out


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--histories", default="100,1000,2400", help="history lengths, comma-separated")
    parser.add_argument("--kafka", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure through a local broker and one worker (default on)")
    parser.add_argument("--workers", type=int, default=60,
                        help="Kafka: workers per history length (200 takes ~10 min with the current state format)")
    parser.add_argument("--repeat", type=int, default=30, help="in-process: best of R")
    parser.add_argument("--kafka-repeat", type=int, default=3, help="Kafka: best of R new months (at most 11)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", action="store_true", help="print one JSON object (progress on stderr)")
    args = parser.parse_args(argv)
    lengths = sorted({int(x) for x in args.histories.split(",") if x.strip()})
    quiet = None if args.json else False  # None: progress to stderr
    stop_on_signals()

    result: dict = {"histories": lengths, "cpu_target_ratio": CPU_TARGET, "bytes_target": BYTES_TARGET,
                    "load_average": os.getloadavg()[0], "cores": os.cpu_count(), "in_process": {}}
    say(f"history benchmark: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (shared machine: "
        f"CPU time, best of {args.repeat})", quiet)
    for length in lengths:
        r = in_process(length, args.repeat, args.seed)
        result["in_process"][length] = r
        say(f"in-process, history {length} ({r['ssn_masked']}, {r['history_batches']} monthly batches folded in "
            f"{r['history_fold_cpu_s']:.2f} CPU-s): cold {r['cold_us']:,.0f} us (load {r['load_us']:,.0f}, fold "
            f"{r['fold_us']:,.0f}, writes {r['writes_us']:,.0f}), cached {r['cached_us']:,.0f} us; "
            f"{r['state_bytes_written']:,} B written in {r['state_keys_written']} key(s); table {r['table_bytes']:,} B "
            f"in {r['table_keys']} key(s)", quiet)
    if args.kafka:
        result["kafka"] = through_kafka(lengths, args.workers, args.kafka_repeat, args.seed, quiet)

    # ------------------------------------------------------------ table and targets
    ip, kf = result["in_process"], result.get("kafka", {}).get("by_history", {})
    rows = []
    for length in lengths:
        k = kf.get(length, {})
        rows.append((length, ip[length]["cached_us"], ip[length]["cold_us"], k.get("cpu_us"), k.get("cpu_us_minus_idle"),
                     ip[length]["state_bytes_written"], k.get("changelog_bytes_per_event")))
    lo, hi = lengths[0], lengths[-1]
    verdicts = {}
    for name, col in (("in-process cached", 1), ("in-process cold", 2), ("through Kafka", 3)):
        a, b = rows[0][col], rows[-1][col]
        if a and b:
            ratio = b / a
            verdicts[name] = {"ratio": ratio, "met": ratio <= CPU_TARGET}
    worst = max(max(r[5] for r in rows), max((r[6] or 0) for r in rows))
    verdicts["state bytes"] = {"max_bytes_per_event": worst, "met": worst <= BYTES_TARGET}
    result["verdicts"] = verdicts
    if args.json:
        print(json.dumps(result, indent=1, default=str))
        return 0
    say()
    say("== CPU per event and state written per event, by history length ==")
    fmt = lambda v, spec=",.0f": "-" if v is None else format(v, spec)  # noqa: E731
    say(f"{'history':>8} {'cached us':>10} {'cold us':>10} {'kafka us':>10} {'(-idle)':>9} {'state B':>9} {'changelog B':>12}")
    for length, cached, cold, kus, kidle, sb, cb in rows:
        say(f"{length:>8,} {fmt(cached):>10} {fmt(cold):>10} {fmt(kus):>10} {fmt(kidle):>9} {sb:>9,} {fmt(cb):>12}")
    if "kafka" in result:
        c = result["kafka"]["catchup"]
        say(f"kafka catch-up: {c['events']:,} events, {c['events_per_s_wall']:,.0f} events/s from the worker's launch, "
            f"{c['events_per_worker_cpu_s']:,.0f} per worker CPU-s; worker idle {result['kafka']['idle_cpu_share']:.1%} "
            f"of a core; Kafka part {result['kafka']['run_s']:.0f} s")
    for name, v in verdicts.items():
        if "ratio" in v:
            say(f"target CPU at {hi:,} within {CPU_TARGET:g}x of {lo:,} ({name}): {v['ratio']:.1f}x -> "
                f"{'MET' if v['met'] else 'MISSED'}")
    v = verdicts["state bytes"]
    say(f"target <= {BYTES_TARGET // 1024} KiB of state written per event: max {v['max_bytes_per_event']:,.0f} B -> "
        f"{'MET' if v['met'] else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
