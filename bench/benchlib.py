"""Helpers shared by the benchmark scripts (not a test): CPU time and memory of
processes from /proc (Linux), the machine's load, sizes of topics and directories, and
the parts of a run against a local broker and `workerfile worker` processes that the
scripts share (the run's broker, work directory and signals; its topics; waiting for the
workers, stopping them; reading `worker-files`).

The machine the figures are taken on is small and shared, so every script prints the
load average next to each figure, and counts work in CPU seconds of the process that
did it (user + system, all its threads, from /proc/PID/stat) rather than wall time.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

from streams.local_kafka import LocalKafka
from streams.topics import EVENT_TOPICS, OPERATOR_COMMANDS, REKEYED_EVENTS, WORKER_FILES, TopicSpec, load_topic_specs

SOURCES = (*EVENT_TOPICS, REKEYED_EVENTS, OPERATOR_COMMANDS)  # what a worker consumes
_TICK = os.sysconf("SC_CLK_TCK")


def say(text: str = "") -> None:
    print(text, flush=True)


def load_text() -> str:
    """The load averages as `uptime` prints them, and the number of cores."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def proc_cpu(pid: int | None) -> float:
    """user+system CPU seconds of a process and all its threads (0 if it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def proc_memory(pid: int | None) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in bytes: its resident set now, and the peak the kernel
    recorded since it started ((0, 0) if it is gone)."""
    rss = hwm = 0
    if pid is None:
        return rss, hwm
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, hwm


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores) since boot."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(parts) - parts[3] - parts[4]) / _TICK  # minus idle and iowait


class ProcSampler:
    """Samples, every `interval` s in a thread of its own, the CPU seconds and memory of
    named processes and the machine's busy CPU, each with its wall time (time.time()),
    so that a process's CPU can be read at any instant of the run (`cpu_at`, linear
    between samples) - e.g. at a record's broker append time. Optionally watches a log
    file per process for a line (`watch`) and records when it first appeared."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.pids: dict[str, int] = {}
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self.peak_rss: dict[str, int] = {}
        self.hwm: dict[str, int] = {}
        self.machine: list[tuple[float, float]] = []
        self.watches: dict[str, tuple[Path, str]] = {}
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="proc-sampler", daemon=True)
        self._thread.start()

    def add(self, name: str, pid: int) -> None:
        with self._lock:
            self.pids[name] = pid
            self.samples[name] = [(time.time(), proc_cpu(pid))]
            self.peak_rss.setdefault(name, 0)

    def watch(self, name: str, path: Path, text: str) -> None:
        """Record the time (time.time()) when `text` first appears in the file `path`."""
        with self._lock:
            self.watches[name] = (Path(path), text)

    def _sample(self) -> None:
        now = time.time()
        with self._lock:
            for name, pid in self.pids.items():
                cpu = proc_cpu(pid)
                if cpu or not self.samples[name]:
                    self.samples[name].append((now, cpu))
                rss, hwm = proc_memory(pid)
                self.peak_rss[name] = max(self.peak_rss[name], rss)
                if hwm:
                    self.hwm[name] = max(self.hwm.get(name, 0), hwm)
            self.machine.append((now, machine_busy()))
            for name, (path, text) in list(self.watches.items()):
                try:
                    if text in path.read_text(errors="replace"):
                        self.seen[name] = now
                        del self.watches[name]
                except OSError:
                    pass

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._sample()
        self._stop.set()
        self._thread.join(5)

    @staticmethod
    def _at(samples: list[tuple[float, float]], t: float) -> float:
        if not samples:
            return 0.0
        if t <= samples[0][0]:
            return samples[0][1]
        for (t0, c0), (t1, c1) in zip(samples, samples[1:]):
            if t0 <= t <= t1:
                return c0 + (c1 - c0) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)
        return samples[-1][1]

    def cpu_at(self, name: str, t: float) -> float:
        """CPU seconds of process `name` at wall time `t` (linear between samples)."""
        with self._lock:
            return self._at(list(self.samples.get(name, ())), t)

    def cpu_between(self, name: str, t0: float, t1: float) -> float:
        return self.cpu_at(name, t1) - self.cpu_at(name, t0)

    def machine_between(self, t0: float, t1: float) -> float:
        """CPU seconds the whole machine was busy between t0 and t1 (all cores)."""
        with self._lock:
            samples = list(self.machine)
        return self._at(samples, t1) - self._at(samples, t0)

    def memory_peak(self, name: str) -> int:
        """The largest resident set of process `name`: the kernel's VmHWM when it was read
        while the process lived, else the largest VmRSS sampled."""
        with self._lock:
            return max(self.hwm.get(name, 0), self.peak_rss.get(name, 0))


def dir_bytes(path: Path | str) -> int:
    """Bytes of every regular file under `path` (0 if it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def topic_disk_bytes(broker_data_dir: Path | str, topic: str) -> int:
    """Bytes of the log segments (.log files) of every partition of `topic` on a local
    broker (streams.local_kafka.LocalKafka: its data dir has logs/<topic>-<partition>/)."""
    logs = Path(broker_data_dir) / "logs"
    total = 0
    for part in logs.glob(f"{topic}-*"):
        if part.is_dir() and part.name.rsplit("-", 1)[0] == topic:
            total += sum(f.stat().st_size for f in part.glob("*.log"))
    return total


def topic_records(bootstrap: str, topics) -> dict[str, int]:
    """Records in each topic (end offset minus beginning offset over its partitions; a
    compacted topic's count before the cleaner ran)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        out = {}
        for topic in topics:
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not tps:
                out[topic] = 0
                continue
            end, begin = consumer.end_offsets(tps), consumer.beginning_offsets(tps)
            out[topic] = sum(end[tp] - begin[tp] for tp in tps)
        return out
    finally:
        consumer.close()


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def broker_pid(kafka) -> int | None:
    """The pid of a LocalKafka broker's JVM."""
    try:
        return int((Path(kafka.data_dir) / "kafka.pid").read_text().strip())
    except (OSError, ValueError):
        return None


class SourceProgress:
    """How far the group has committed on the source topics: a consumer of the group's id
    that never joins it (no subscribe, no poll), asking only for its committed offsets."""

    def __init__(self, bootstrap: str, group: str, topics=SOURCES):
        from kafka import KafkaConsumer
        from kafka import TopicPartition as KTP

        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        self.tps = [KTP(t, p) for t in topics for p in sorted(self.consumer.partitions_for_topic(t) or ())]
        self.begin = self.consumer.beginning_offsets(self.tps)

    def end_offsets(self) -> dict:
        return self.consumer.end_offsets(self.tps)

    def __call__(self) -> tuple[int, int]:
        """(messages the group has committed, messages in the source topics)."""
        end = self.consumer.end_offsets(self.tps)
        done = 0
        for tp in self.tps:
            committed = self.consumer.committed(tp) if end[tp] > self.begin[tp] else None
            done += max(0, (committed if committed is not None else self.begin[tp]) - self.begin[tp])
        return done, sum(end[tp] - self.begin[tp] for tp in self.tps)

    def wait(self, workers, timeout: float, poll: float, every: float, progress) -> int:
        """Ask every `poll` s until the group has committed every message of the source
        topics, and return how many there are; every `every` s say `progress(done, total)`.
        Raises if one of `workers` exits, or after `timeout` s."""
        deadline = time.monotonic() + timeout
        next_say = time.monotonic() + every
        while True:
            for worker in workers:
                if not worker.running:
                    raise worker_exited(worker)
            done, total = self()
            if done >= total:
                return total
            if time.monotonic() > deadline:
                raise TimeoutError(f"the workers did not catch up in {timeout:.0f} s ({done:,}/{total:,})")
            if time.monotonic() > next_say:
                say(progress(done, total))
                next_say += every
            time.sleep(poll)

    def close(self) -> None:
        self.consumer.close()


# ------------------------------------------------------------------ a run against a local broker
def stop_on_signals() -> None:
    """SIGTERM and SIGHUP raise SystemExit (128 + the signal), as Ctrl-C raises
    KeyboardInterrupt, so that the script's `finally` stops its workers and its broker."""

    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit)


class LocalRun:
    """What a benchmark run against a throw-away broker starts and must stop: a work
    directory (`prefix`...), a local broker (streams.local_kafka.LocalKafka with
    `broker_options`; its data in the work directory's `broker_dir` when given, else in
    a temporary directory of its own) and a ProcSampler. Makes SIGTERM and SIGHUP raise
    SystemExit (stop_on_signals), so that `close()` in the script's `finally` runs."""

    def __init__(self, prefix: str, broker_dir: str | None = None, **broker_options):
        stop_on_signals()
        self.started = time.monotonic()
        self.work_dir = Path(tempfile.mkdtemp(prefix=prefix))
        if broker_dir is not None:
            broker_options["data_dir"] = self.work_dir / broker_dir
        self.kafka = LocalKafka(**broker_options)
        self.sampler = ProcSampler()

    def start_broker(self) -> str:
        """Start the broker, sample its process; returns its bootstrap address."""
        self.kafka.start()
        self.sampler.add("broker", broker_pid(self.kafka))
        return self.kafka.bootstrap

    def close(self, kept: str | None = None) -> None:
        """Stop the sampler and the broker; remove the work directory, or, with `kept`
        (what it holds), say where it is."""
        self.sampler.stop()
        self.kafka.stop()
        if kept:
            say(f"{kept} kept in {self.work_dir}")
        else:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def end_text(self) -> str:
        """The last line of a run: how long it took and the load at the end."""
        return f"run time {time.monotonic() - self.started:.0f} s; {load_text()} at the end"


def append_time_specs(partitions: int, timestamped=(WORKER_FILES,), app_id: str | None = None) -> list[TopicSpec]:
    """The local profile's topics (streams.topics.load_topic_specs), those named in
    `timestamped` with message.timestamp.type=LogAppendTime: their records carry the
    broker's append time, the "published" time of the figures."""
    specs = []
    for s in load_topic_specs("local", partitions=partitions, app_id=app_id):
        if s.name in timestamped:
            s = TopicSpec(s.name, s.partitions, s.replication, {**s.config, "message.timestamp.type": "LogAppendTime"})
        specs.append(s)
    return specs


def worker_exited(worker) -> RuntimeError:
    """The error to raise when a streams.runner.WorkerProcess stopped before its time."""
    return RuntimeError(f"a worker exited ({worker.proc.returncode}); log tail:\n{worker.log_text()[-3000:]}")


def stop_workers(workers, timeout: float) -> None:
    """SIGTERM each worker (RocksDB closed), waiting up to `timeout` s; SIGKILL if it lives on."""
    for worker in workers:
        worker.stop(timeout=timeout)
        if worker.running:
            worker.kill()


async def read_worker_files(bootstrap: str, partitions: int, start: dict[int, int] | None = None,
                            keys: set[bytes] | None = None) -> dict:
    """`worker-files` from the offsets `start` (partition -> offset; its beginning when
    None) to its end as it is now: "latest", the latest value (Avro bytes, None for a
    tombstone) of each key in `keys` (every key when None); and per partition "records",
    the records read, and "last_ts", the latest record timestamp (ms)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 2**20,
                                fetch_max_bytes=32 * 2**20)
    await consumer.start()
    try:
        tps = [TopicPartition(WORKER_FILES, p) for p in range(partitions)]
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        first = {tp: (start or {}).get(tp.partition, 0) for tp in tps}
        if start is None:
            await consumer.seek_to_beginning(*tps)
        else:
            for tp in tps:
                consumer.seek(tp, first[tp])
        remaining = {tp for tp in tps if end[tp] > first[tp]}
        latest: dict[bytes, bytes | None] = {}
        records = {p: 0 for p in range(partitions)}
        last_ts = {p: 0 for p in range(partitions)}
        while remaining:
            for tp, batch in (await consumer.getmany(timeout_ms=1000, max_records=20_000)).items():
                for m in batch:
                    if m.offset >= end[tp]:
                        break
                    records[tp.partition] += 1
                    last_ts[tp.partition] = max(last_ts[tp.partition], m.timestamp)
                    if keys is None or m.key in keys:
                        latest[m.key] = m.value
                if batch and batch[-1].offset >= end[tp] - 1:
                    remaining.discard(tp)
        return {"latest": latest, "records": records, "last_ts": last_ts}
    finally:
        await consumer.stop()


def unversioned(value: bytes) -> bytes:
    """A published file's Avro bytes without its `version` (the stream's, which the
    offline fold has not), to compare with the offline fold's files."""
    from streams import codec

    name, file = codec.decode(value)
    file.pop("version", None)
    return codec.encode(name, file)
