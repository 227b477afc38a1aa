"""`workerfile demo`: the whole pipeline on this machine, from nothing.

Starts a local Apache Kafka (KRaft, jars fetched by Maven), creates the topics, starts a
stream worker, publishes a generated population (careers across the four sources, with
late, duplicated, corrected, retracted and bad events), shows progress, and ends with
one worker's whole file and a summary. Every file is checked against the offline fold.
The worker checks the sources against the population's organisation registry
(`organisations.toml` in the data directory, contract section 8), and so does the
offline fold it is compared with.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import orjson

from processors.batch import fold_lines
from processors.identity import mask_ssn
from processors.organisations import parse_organisations, registry_toml
from streams import codec
from streams.local_kafka import LocalKafka
from streams.producer import EventProducer, InvalidEvent
from streams.reader import latest_files, read_topic
from streams.runner import WorkerProcess
from streams.topics import provision
from workerfile.population import generate_population, population_registry

PARTITIONS = 4
APP_ID = "workerfile-demo"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def publish_population(bootstrap: str, items: list) -> dict[str, int]:
    """Publish as the sources would; bad inputs go out as they are (the stream rejects them)."""
    counts = {"events": 0, "bad": 0}
    with EventProducer(bootstrap) as producer:
        for n, item in enumerate(items, start=1):
            if isinstance(item, str):
                producer.send_raw("training-events", b"unknown", item.encode())
                counts["bad"] += 1
            else:
                try:
                    producer.send(item)
                    counts["events"] += 1
                except InvalidEvent:
                    producer.send_raw("insurance-events", str(item.get("ssn", "")).encode(), codec.encode("Event", item))
                    counts["bad"] += 1
            if n % 2000 == 0 or n == len(items):
                say(f"  published {n}/{len(items)} events")
    return counts


def run_demo(workers: int = 200, seed: int = 7, keep: bool = False, data_dir: str | None = None,
             timeout: float = 300) -> int:
    base = Path(data_dir or tempfile.mkdtemp(prefix="workerfile-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    say(f"workerfile demo: data in {base}")
    say("1/5 starting Apache Kafka (KRaft, single node) ...")
    kafka = LocalKafka(data_dir=base / "kafka")
    kafka.start()
    worker = None
    try:
        say(f"    broker at {kafka.bootstrap}")
        say("2/5 creating topics from deploy/topics.toml and the worker's changelog topics ...")
        for line in provision(kafka.bootstrap, APP_ID, PARTITIONS):
            say(f"    {line}")
        wire = codec.wire()
        if wire.wire_format == codec.CONFLUENT:  # WORKERFILE_WIRE_FORMAT=confluent: a registry of yours
            from streams.schema_registry import RegistryError, register_value_schemas

            say(f"    the Confluent wire format: registering the value schemas in {wire.registry_url}")
            try:
                for line in register_value_schemas(wire.client()):
                    say(f"    {line}")
                wire.prepare()
            except (RegistryError, codec.CodecError) as err:
                say(f"workerfile demo: schema registry: {err}")
                return 2
        registry_path = base / "organisations.toml"
        registry_text = registry_toml(population_registry(seed))
        registry_path.write_text(registry_text, encoding="utf-8")
        organisations = parse_organisations(registry_text, str(registry_path))
        say(f"3/5 starting a stream worker (sources checked against {len(organisations)} organisations "
            f"of {registry_path.name}) ...")
        worker = WorkerProcess(kafka.bootstrap, APP_ID, base / "worker", partitions=PARTITIONS,
                               loglevel="warning", env={"WORKERFILE_ORGANISATIONS": str(registry_path)}).start()
        items = generate_population(workers, seed=seed)
        say(f"4/5 publishing {len(items)} events for {workers} workers ...")
        counts = publish_population(kafka.bootstrap, items)
        expected = {f["ssn"]: f for f in fold_lines([i.encode() if isinstance(i, str) else orjson.dumps(i)
                                                     for i in items], organisations=organisations).files()}
        say("5/5 waiting for every file (checked against the offline fold) ...")
        deadline = time.monotonic() + timeout
        while True:
            files = latest_files(kafka.bootstrap, versions=False)
            done = sum(1 for ssn, f in expected.items() if files.get(ssn) == f)
            say(f"    {done}/{len(expected)} files up to date")
            if done == len(expected):
                break
            if time.monotonic() > deadline or not worker.running:
                say("workerfile demo: the files did not converge; worker log:\n" + worker.log_text()[-3000:])
                return 1
            time.sleep(2)
        rejected = len(read_topic(kafka.bootstrap, "rejected-events"))
        grants = len(read_topic(kafka.bootstrap, "worker-services"))
        sample = max(files.values(), key=lambda f: (len(f["services"]["skill_upgrade_subsidy"]), len(f["certificates"])))
        shown = {**sample, "ssn": mask_ssn(sample["ssn"]), "aliases": [mask_ssn(a) for a in sample["aliases"]]}
        print(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
        say("one worker's whole file above (the number masked, as everywhere on screen).")
        say(f"summary: workers {len(files)}, events published {counts['events']}, bad inputs {counts['bad']}, "
            f"rejected-events {rejected}, subsidy grants published {grants}")
        if keep:
            say(f"kept running: broker {kafka.bootstrap}, worker pid {worker.proc.pid}; stop with "
                f"KAFKA_DATA_DIR={base / 'kafka'} bash deploy/kafka/kafka.sh stop and kill {worker.proc.pid}")
        return 0
    finally:
        if not keep:
            if worker is not None:
                worker.stop()
            kafka.stop()
