"""The project's own Kafka clients on the secured broker (deploy/security/): each command
logs in as its party (streams/kafka_security.py) and can do what parties.toml allows.

One secured broker (conftest.secured_kafka: SASL/SCRAM-SHA-512, ACLs per party), one
stream worker, a handful of workers' careers:
- `workerfile topics` as admin creates the topics, the worker's changelog too (a party may not);
- `workerfile emit` as each source party sends its own events; the training party's
  employment events are refused with a clear error, a non-zero exit and nothing written;
- `workerfile worker` as user "workerfile" folds them and publishes the files and grants;
- `workerfile subscribe` as "insurance" reads worker-services (in its own group prefix);
- `workerfile sink sqlite` and `workerfile stats follow` as "files" (the operators' sinks) read worker-files.
Every login path is used: WORKERFILE_KAFKA_USER/_PASSWORD_FILE, --kafka-user/
--kafka-password-file, WORKERFILE_KAFKA_CONFIG and --kafka-config (the Java client
properties that acls.py --secrets writes)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from schemas.events import TOPIC_OF_TYPE
from streams.reader import decoded, latest_files
from streams.runner import WorkerProcess, wait_for
from tests.integration.conftest import expected_files
from workerfile.population import generate_population

ROOT = Path(__file__).resolve().parents[2]
APP_ID = "workerfile-login"  # within the processors' prefix "workerfile" (parties.toml)
PARTY_OF_TOPIC = {"training-events": "training", "employment-events": "employer",
                  "insurance-events": "insurance", "certification-events": "evaluation"}
CONVERGE = 240  # seconds for the worker to start and fold everything on a slow machine


def workerfile(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `workerfile ARGS` with no login of this shell's environment, only `env`'s."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("WORKERFILE_KAFKA_")}
    return subprocess.run([sys.executable, "-m", "workerfile.cli", *args], env={**base, **(env or {})},
                          cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def end_offsets(kafka, topic: str) -> int:
    """How many records `topic` holds (read as admin)."""
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, **kafka.kafka_python("admin"))
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    """A few workers' careers with at least one subsidy grant, split into one JSONL file
    per source party, plus a file mixing training and employment events."""
    for seed in range(1, 20):
        items = list(generate_population(4, seed=seed, months=24, anomalies=False))
        files = expected_files(items)
        grants = sum(len(f["services"]["skill_upgrade_subsidy"]) for f in files.values())
        if grants:
            break
    else:
        pytest.fail("no generated population with a subsidy grant")
    directory = tmp_path_factory.mktemp("uploads")
    by_topic: dict[str, list[dict]] = {}
    for item in items:
        by_topic.setdefault(TOPIC_OF_TYPE.get(item["type"], "certification-events"), []).append(item)
    paths = {}
    for topic, events in by_topic.items():
        paths[topic] = directory / f"{PARTY_OF_TOPIC[topic]}.jsonl"
        paths[topic].write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    paths["mixed"] = directory / "training-and-employment.jsonl"
    paths["mixed"].write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in
                                        by_topic["training-events"][:3] + by_topic["employment-events"][:3]))
    return {"items": items, "files": files, "grants": grants, "paths": paths,
            "counts": {t: len(e) for t, e in by_topic.items()}}


@pytest.fixture(scope="module")
def topics(secured_kafka):
    """`workerfile topics` as admin (the Java client properties of acls.py --secrets)."""
    result = workerfile("topics", "--broker", secured_kafka.bootstrap, "--partitions", "1", "--app-id", APP_ID,
                        "--kafka-config", str(secured_kafka.properties_file("admin")))
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def emitted(secured_kafka, topics, population):
    """Every source party uploads its own events, each through another login path."""
    kafka, paths = secured_kafka, population["paths"]
    logins = {
        "training": dict(env=kafka.env("training")),
        "employer": dict(args=["--kafka-user", "employer", "--kafka-password-file", str(kafka.password_file("employer"))]),
        "insurance": dict(env={"WORKERFILE_KAFKA_CONFIG": str(kafka.properties_file("insurance"))}),
        "evaluation": dict(args=["--kafka-config", str(kafka.properties_file("evaluation"))]),
    }
    results = {}
    for topic, party in PARTY_OF_TOPIC.items():
        login = logins[party]
        results[party] = workerfile("emit", str(paths[topic]), "--broker", kafka.bootstrap, *login.get("args", []),
                                    env=login.get("env"))
    return results


@pytest.fixture(scope="module")
def worker(secured_kafka, emitted, tmp_path_factory):
    """`workerfile worker` logged in as "workerfile" (WORKERFILE_KAFKA_* in its environment)."""
    import inspect

    import streams.app

    if "broker_credentials" not in inspect.getsource(streams.app.create_app):
        pytest.fail("streams/app.py create_app does not log in yet: it needs "
                    "broker_credentials=settings.kafka_credentials() (and the ServiceLedger's consumer "
                    "**settings.aiokafka_kwargs())")
    with pytest.MonkeyPatch.context() as env:  # the worker process inherits these, this process forgets them
        for name in [k for k in os.environ if k.startswith("WORKERFILE_KAFKA_")]:
            env.delenv(name)
        for name, value in secured_kafka.env("workerfile").items():
            env.setenv(name, value)
        proc = WorkerProcess(secured_kafka.bootstrap, APP_ID, tmp_path_factory.mktemp("worker"), partitions=1,
                             loglevel="info").start()
    try:
        yield proc
    finally:
        proc.stop()


def as_admin(kafka):
    return kafka.security("admin")


@pytest.fixture(scope="module")
def published(secured_kafka, worker, population):
    """Waits until the worker has published every file and every grant (read as admin)."""
    admin = as_admin(secured_kafka)
    try:
        wait_for(lambda: latest_files(secured_kafka.bootstrap, security=admin, versions=False) == population["files"], CONVERGE,
                 interval=2, what="every worker's file on worker-files")
        wait_for(lambda: len(decoded(secured_kafka.bootstrap, "worker-services", security=admin))
                 >= population["grants"], 60, what="the grants on worker-services")
    except TimeoutError as err:
        pytest.fail(f"{err}; the worker's log:\n{worker.log_text()[-6000:]}")
    return worker


# --- topics --------------------------------------------------------------------------------

def test_topics_are_created_by_admin_and_not_by_a_party(secured_kafka, topics):
    with open(ROOT / "deploy" / "topics.toml", "rb") as f:
        names = list(tomllib.load(f)["topics"]) + [f"{APP_ID}-worker-state-changelog"]  # and the worker's table's
    assert topics.stdout.splitlines() == [f"created {name} (1 partitions)" for name in names]
    again = workerfile("topics", "--broker", secured_kafka.bootstrap, "--partitions", "1", "--app-id", APP_ID,
                       env={"WORKERFILE_KAFKA_CONFIG": str(secured_kafka.properties_file("admin"))})
    assert again.returncode == 0 and again.stdout.splitlines() == [f"verified {n} (1 partitions)" for n in names]
    # a party sees only its own topics: it would have to create the others, and may not
    party = workerfile("topics", "--broker", secured_kafka.bootstrap, "--partitions", "1", env=secured_kafka.env("training"))
    assert party.returncode == 1
    assert "TopicAuthorizationFailedError" in party.stderr and "as user 'training'" in party.stderr


# --- emit ----------------------------------------------------------------------------------

def test_each_source_party_uploads_its_own_events(secured_kafka, emitted, population):
    for topic, party in PARTY_OF_TOPIC.items():
        result = emitted[party]
        count = population["counts"][topic]
        assert result.returncode == 0, result.stderr
        assert f"sent {count}, confirmed {count}," in result.stderr
        assert end_offsets(secured_kafka, topic) == count


def test_training_party_may_not_upload_employment_events(secured_kafka, emitted, population):
    kafka, paths = secured_kafka, population["paths"]
    before = {t: end_offsets(kafka, t) for t in ("training-events", "employment-events")}
    for path in (paths["employment-events"], paths["mixed"]):
        result = workerfile("emit", str(path), "--broker", kafka.bootstrap, env=kafka.env("training"))
        assert result.returncode == 4, result.stderr
        assert ("not allowed to write to employment-events (SASL_PLAINTEXT SCRAM-SHA-512 as user 'training'); "
                "nothing was sent") in result.stderr
        assert "NOTHING SENT: this login may not write to employment-events" in result.stderr
        assert "Traceback" not in result.stderr
    # nothing written: not the employment events, nor the training events of the mixed file
    assert {t: end_offsets(kafka, t) for t in before} == before


def test_a_login_setting_that_is_wrong_is_named(secured_kafka, population):
    result = workerfile("emit", str(population["paths"]["training-events"]), "--broker", secured_kafka.bootstrap,
                        env={"WORKERFILE_KAFKA_USER": "training"})
    assert result.returncode == 2
    assert "WORKERFILE_KAFKA_PASSWORD_FILE" in result.stderr and "Traceback" not in result.stderr


# --- the stream worker ---------------------------------------------------------------------

def test_worker_logs_in_as_workerfile_and_publishes_files_and_grants(secured_kafka, published, population):
    worker = published
    assert worker.running
    services = decoded(secured_kafka.bootstrap, "worker-services", security=as_admin(secured_kafka))
    assert len(services) == population["grants"] == len({s["service_id"] for s in services})
    log = worker.log_text()
    assert "Authenticated as workerfile via SCRAM-SHA-512" in log
    assert "Not authorized" not in log and "AuthorizationFailed" not in log


# --- subscribe -----------------------------------------------------------------------------

def test_insurance_subscribes_to_worker_services(secured_kafka, published, tmp_path):
    kafka = secured_kafka
    result = workerfile("subscribe", "services", "--broker", kafka.bootstrap, "--group", "insurance-bureau-1",
                        "--once", "--json", env=kafka.env("insurance"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    grants = [json.loads(line) for line in result.stdout.splitlines()]
    published = decoded(kafka.bootstrap, "worker-services", security=as_admin(kafka))
    assert sorted(g["service_id"] for g in grants) == sorted(s["service_id"] for s in published)
    assert f"{len(grants)} services handed on" in result.stderr
    # a consumer group outside the party's prefix ("insurance") is refused, clearly
    other = workerfile("subscribe", "services", "--broker", kafka.bootstrap, "--once",
                       "--kafka-config", str(kafka.properties_file("insurance")), cwd=tmp_path)
    assert other.returncode == 1
    assert "GroupAuthorizationFailedError" in other.stderr and "as user 'insurance'" in other.stderr


# --- sink and statistics -------------------------------------------------------------------

def test_the_operators_sinks_read_worker_files(secured_kafka, published, population, tmp_path):
    kafka, expected = secured_kafka, population["files"]
    db = tmp_path / "files.sqlite3"
    result = workerfile("sink", "sqlite", "--db", str(db), "--once", "--broker", kafka.bootstrap,
                        "--kafka-config", str(kafka.properties_file("files")))
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as conn:
        rows = {ssn: json.loads(document) for ssn, document in conn.execute("select ssn, document from worker_files")}
    assert all(isinstance(row.pop("version"), int) for row in rows.values())  # the published file's change version
    assert rows == expected
    stats_db = tmp_path / "stats.sqlite3"
    follow = workerfile("stats", "follow", "--once", "--db", str(stats_db), "--broker", kafka.bootstrap,
                        env=kafka.env("files"))
    assert follow.returncode == 0, follow.stderr
    assert f"{len(expected)} workers in the totals" in follow.stderr
