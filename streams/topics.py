"""The topics of the contract (section 6), and their provisioning from one config
(`deploy/topics.toml`) plus the changelog topics of the stream processors' tables:
`workerfile topics` creates what is missing and verifies what exists (partitions,
replication factor, `min.insync.replicas`, and the cleanup policy where one is
configured); `workerfile worker` checks that every one of them is there before it starts
(`wait_for_topics`), and stops with the command to run when one is not.

Every topic is keyed by the normalised SSN and has the same number of partitions, so a
worker's events, state and outputs all live in the same partition number.
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from schemas.events import EVENT_TOPICS
from streams.kafka_security import KafkaSecurity, or_env

# the event topics are the event catalogue's (schemas/events.py: TOPIC_OF_TYPE)
TRAINING_EVENTS, EMPLOYMENT_EVENTS, INSURANCE_EVENTS, CERTIFICATION_EVENTS = EVENT_TOPICS
WORKER_FILES = "worker-files"
# The flat row of every file, for relational sinks (Kafka Connect): same key, same tombstones.
WORKER_FILE_ROWS = "worker-file-rows"
WORKER_FILE_CHANGES = "worker-file-changes"
WORKER_SERVICES = "worker-services"
REJECTED_EVENTS = "rejected-events"
WORKER_ACCESS_LOG = "worker-access-log"
# Internal: operator commands (merge, erase), taken in order with the events.
OPERATOR_COMMANDS = "workerfile-operator-commands"
# Internal: the changelog of the processors' table of merged/erased numbers (a fixed name,
# not the application id's, so that a replay under a new id still knows them).
IDENTITY_MARKERS = "workerfile-identity-markers"
# Internal: events whose producer keyed them by anything but the normalised SSN are
# re-published here under the right key, so they reach the partition of their worker.
REKEYED_EVENTS = "workerfile-rekeyed-events"
# The tables of the stream processors whose changelog topic faust names after the
# application id: `<app id>-<table>-changelog`, compacted, with the partitions of the
# event topics (the markers' changelog has the fixed name IDENTITY_MARKERS, in topics.toml).
APP_TABLES = ("worker-state",)

TOPICS_TOML = Path(__file__).resolve().parents[1] / "deploy" / "topics.toml"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)


def changelog_topic(app_id: str, table: str) -> str:
    """The name faust gives the changelog topic of a table of the application `app_id`."""
    return f"{app_id}-{table}-changelog"


def load_topic_specs(profile: str = "local", path: Path = TOPICS_TOML, partitions: int | None = None,
                     app_id: str | None = None) -> list[TopicSpec]:
    """The topics of a profile (`local` or `cluster`) of deploy/topics.toml and, with
    `app_id`, the changelog topics of that application's tables (APP_TABLES). Every topic
    gets the profile's config (`min.insync.replicas`), under its own."""
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    prof = raw["profiles"][profile]
    specs = []
    for name, topic in raw["topics"].items():
        config = {k: str(v) for k, v in {**prof.get("config", {}), **topic.get("config", {})}.items()}
        specs.append(TopicSpec(
            name=name,
            partitions=partitions or topic.get("partitions", prof["partitions"]),
            replication=topic.get("replication", prof["replication"]),
            config=config,
        ))
    if app_id:
        specs += [TopicSpec(name=changelog_topic(app_id, table), partitions=partitions or prof["partitions"],
                            replication=prof["replication"],
                            config={**{k: str(v) for k, v in prof.get("config", {}).items()},
                                    "cleanup.policy": "compact"})
                  for table in APP_TABLES]
    return specs


def on_demand_view_config(path: Path = TOPICS_TOML) -> dict[str, str]:
    """The config of the view topics the stream processors create when first needed (a
    view of deploy/views.toml whose topic has "{org}"): `[on_demand.views]` of topics.toml."""
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    return {k: str(v) for k, v in raw["on_demand"]["views"]["config"].items()}


def ensure_topics(bootstrap: str, specs: list[TopicSpec], security: KafkaSecurity | None = None) -> list[str]:
    """Create missing topics and verify existing ones. Returns one line per topic;
    raises RuntimeError when an existing topic disagrees with its spec. `security`: the
    login (default: the WORKERFILE_KAFKA_* environment); on a secured broker, as admin."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="workerfile-topics", **or_env(security).kafka_python())
    try:
        existing = set(admin.list_topics())
        lines, problems = [], []
        missing = [s for s in specs if s.name not in existing]
        if missing:
            try:
                admin.create_topics([NewTopic(s.name, s.partitions, s.replication, topic_configs=s.config) for s in missing])
            except TopicAlreadyExistsError:
                pass  # created concurrently
            lines += [f"created {s.name} ({s.partitions} partitions)" for s in missing]
        present = [s for s in specs if s.name in existing]
        if present:
            described = {t["name"]: t for t in admin.describe_topics([s.name for s in present])}
            configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, s.name) for s in present],
                                             config_filter="all")  # the effective values, defaults too
            actual_configs = {name: {k: v["value"] for k, v in entries.items()}
                              for name, entries in configs.get("topic", {}).items()}
            for s in present:
                n = len(described[s.name]["partitions"])
                if n != s.partitions:
                    problems.append(f"{s.name}: has {n} partitions, config says {s.partitions}")
                replicas = {len(p["replica_nodes"]) for p in described[s.name]["partitions"]}
                if replicas and replicas != {s.replication}:
                    problems.append(f"{s.name}: replication factor {'/'.join(map(str, sorted(replicas)))}, "
                                    f"config says {s.replication}")
                for k, v in s.config.items():
                    if k in ("cleanup.policy", "min.insync.replicas") and actual_configs.get(s.name, {}).get(k) != v:
                        problems.append(f"{s.name}: {k}={actual_configs.get(s.name, {}).get(k)}, config says {v}")
                lines.append(f"verified {s.name} ({n} partitions)")
        if problems:
            raise RuntimeError("topics disagree with deploy/topics.toml: " + "; ".join(problems))
        _wait_for_leaders(admin, [s.name for s in specs])
        return lines
    finally:
        admin.close()


def _wait_for_leaders(admin, names: list[str], timeout: float = 30.0) -> None:
    """New topics take a moment to elect partition leaders; producing before that fails."""
    deadline = time.monotonic() + timeout
    while True:
        described = admin.describe_topics(names)
        if all(t["error_code"] == 0 and t["partitions"] and all(p["leader_id"] >= 0 for p in t["partitions"])
               for t in described):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics have no partition leaders after {timeout} s")
        time.sleep(0.2)


class TopicsNotReady(RuntimeError):
    """Topics the stream processors need are missing or differ from their spec; `missing`:
    the names of those missing (waiting may help), `problems`: every problem, one line each."""

    def __init__(self, problems: list[str], missing: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems
        self.missing = missing


def topic_problems(admin, specs: list[TopicSpec]) -> tuple[list[str], list[str]]:
    """What is wrong with the topics of `specs` on the cluster of `admin` (a kafka-python
    KafkaAdminClient): (problems, names of the missing or leaderless topics). A metadata
    request only: nothing is created (no auto-creation either)."""
    from kafka.errors import for_code

    described = {t["name"]: t for t in admin.describe_topics([s.name for s in specs])}
    problems, pending = [], []
    for s in specs:
        topic = described.get(s.name)
        error = for_code(topic["error_code"]).__name__ if topic and topic["error_code"] else None
        if topic is None or error == "UnknownTopicOrPartitionError":
            problems.append(f"{s.name} is missing")
            pending.append(s.name)
        elif error == "TopicAuthorizationFailedError":
            problems.append(f"{s.name}: not authorized to describe it (the login's ACLs: deploy/security/parties.toml)")
        elif error:
            problems.append(f"{s.name}: {error}")
            pending.append(s.name)
        elif len(topic["partitions"]) != s.partitions:
            problems.append(f"{s.name} has {len(topic['partitions'])} partitions, expected {s.partitions}")
        elif not all(p["leader_id"] >= 0 for p in topic["partitions"]):
            problems.append(f"{s.name} has partitions without a leader")
            pending.append(s.name)
    return problems, pending


def wait_for_topics(bootstrap: str, specs: list[TopicSpec], security: KafkaSecurity | None = None,
                    timeout: float = 60.0, interval: float = 1.0, on_wait=None) -> None:
    """Return once every topic of `specs` exists with its partitions, each with a leader;
    wait up to `timeout` seconds for missing ones (another process may be creating them:
    `on_wait(missing names)` is called once when waiting starts). Raises TopicsNotReady at
    once when a topic has other partitions or may not be described (waiting does not help),
    and after `timeout` when topics are still missing."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="workerfile-worker-topics",
                             **or_env(security).kafka_python())
    try:
        deadline = time.monotonic() + timeout
        waited = False
        while True:
            problems, pending = topic_problems(admin, specs)
            if not problems:
                return
            if len(pending) < len(problems) or time.monotonic() >= deadline:
                raise TopicsNotReady(problems, pending)
            if not waited and on_wait is not None:
                on_wait(pending)
            waited = True
            time.sleep(interval)
    finally:
        admin.close()


def provision(bootstrap: str, app_id: str | None = None, partitions: int | None = None,
              security: KafkaSecurity | None = None, profile: str = "local") -> list[str]:
    """What `workerfile topics --app-id APP_ID` does: every topic of deploy/topics.toml and
    the changelog topics of the application's tables, created or verified."""
    return ensure_topics(bootstrap, load_topic_specs(profile, partitions=partitions, app_id=app_id), security)
