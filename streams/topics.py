"""The topics of the contract (section 6), and their provisioning from one config
(`deploy/topics.toml`): `workerfile topics` creates what is missing and verifies what
exists (partitions, replication factor, `min.insync.replicas`, and compaction on
`worker-files`).

Every topic is keyed by the normalised SSN and has the same number of partitions, so a
worker's events, state and outputs all live in the same partition number.
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from streams.kafka_security import KafkaSecurity, or_env

TRAINING_EVENTS = "training-events"
EMPLOYMENT_EVENTS = "employment-events"
INSURANCE_EVENTS = "insurance-events"
CERTIFICATION_EVENTS = "certification-events"
EVENT_TOPICS = (TRAINING_EVENTS, EMPLOYMENT_EVENTS, INSURANCE_EVENTS, CERTIFICATION_EVENTS)
WORKER_FILES = "worker-files"
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

TOPICS_TOML = Path(__file__).resolve().parents[1] / "deploy" / "topics.toml"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)


def load_topic_specs(profile: str = "local", path: Path = TOPICS_TOML, partitions: int | None = None) -> list[TopicSpec]:
    """The topics of a profile (`local` or `cluster`) of deploy/topics.toml. Every topic
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
    return specs


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
