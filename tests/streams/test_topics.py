"""Provisioning (issue #11): `workerfile topics --app-id` knows every changelog topic of the
stream processors' tables and every topic the worker reads, and the worker's check at
start tells a missing topic (wait for it) from one that cannot become right by waiting."""

from __future__ import annotations

import pytest

from streams import topics as topics_module
from streams.topics import (
    APP_TABLES, EVENT_TOPICS, IDENTITY_MARKERS, OPERATOR_COMMANDS, REKEYED_EVENTS, WORKER_ACCESS_LOG, WORKER_SERVICES,
    TopicsNotReady, changelog_topic, load_topic_specs, topic_problems, wait_for_topics,
)


@pytest.fixture
def app(tmp_path):
    from streams.app import create_app
    from streams.settings import StreamSettings

    return create_app(StreamSettings(app_id="wf-new", data_dir=str(tmp_path), partitions=6))


def test_the_changelogs_of_an_application_id_are_in_the_specs():
    specs = {s.name: s for s in load_topic_specs("local", partitions=6, app_id="wf-new")}
    changelog = specs["wf-new-worker-state-changelog"]
    assert (changelog.partitions, changelog.config) == (6, {"cleanup.policy": "compact", "min.insync.replicas": "1"})
    assert changelog.replication == 1
    on_cluster = load_topic_specs("cluster", app_id="wf-new")[-1]
    # the changelog is the state: on the cluster it needs two in-sync replicas like every topic
    assert (on_cluster.replication, on_cluster.config["min.insync.replicas"]) == (3, "2")
    assert set(specs) - {s.name for s in load_topic_specs("local")} == {"wf-new-worker-state-changelog"}
    assert all(s.partitions == 6 for s in specs.values())  # co-partitioned, changelogs too
    assert changelog_topic("a", "t") == "a-t-changelog"


def test_every_table_of_the_app_has_its_changelog_in_the_specs(app):
    """A table added to streams/app.py without its changelog in APP_TABLES (or topics.toml)
    would again be created by faust while the first worker joins its group."""
    specs = {s.name: s for s in load_topic_specs("local", partitions=6, app_id="wf-new")}
    changelogs = {t.changelog_topic.get_topic_name(): t for t in app.tables.values()}
    assert set(changelogs) == {changelog_topic("wf-new", t) for t in APP_TABLES} | {IDENTITY_MARKERS}
    for name, table in changelogs.items():
        assert specs[name].partitions == table.partitions == 6
        assert specs[name].config["cleanup.policy"] == "compact"


def test_every_topic_the_worker_reads_is_in_the_specs(app):
    specs = {s.name for s in load_topic_specs("local", app_id="wf-new")}
    read_by_agents = {name for agent in app.agents.values() for name in agent.channel.topics}
    assert read_by_agents == {*EVENT_TOPICS, REKEYED_EVENTS, OPERATOR_COMMANDS}
    # and the ledger of grants (worker-services) and the access-log view read their topics
    assert read_by_agents | {WORKER_SERVICES, WORKER_ACCESS_LOG} <= specs
    assert app.conf.topic_disable_leader  # no <app id>-__assignor-__leader topic to provision


def test_the_markers_changelog_is_a_changelog_to_faust(app):
    """Declared as an ordinary topic (acks on), faust's livelock check took it for a stream
    that never started, and said so every 2.5 s after the first erase."""
    markers = app.tables["identity-markers"].changelog_topic
    assert markers.get_topic_name() == IDENTITY_MARKERS
    assert (markers.acks, markers.internal) == (False, True)
    assert not app.topics.acks_enabled_for(IDENTITY_MARKERS)


class FakeAdmin:
    """describe_topics as kafka-python's KafkaAdminClient answers it."""

    def __init__(self, topics: dict[str, dict]):
        self.topics = topics
        self.calls = 0
        self.closed = False

    def describe_topics(self, names):
        self.calls += 1
        return [self.topics.get(n, {"name": n, "error_code": 3, "partitions": []}) for n in names]

    def close(self):
        self.closed = True


def described(name: str, partitions: int = 4, leader: int = 1, error: int = 0) -> dict:
    return {"name": name, "error_code": error,
            "partitions": [{"partition": p, "leader_id": leader} for p in range(partitions)]}


def specs_of(*names: str, partitions: int = 4):
    return [s for s in load_topic_specs("local", partitions=partitions, app_id="wf-new") if s.name in names]


def test_topic_problems_tell_missing_from_wrong():
    specs = specs_of("training-events", "worker-files", "worker-services", "rejected-events",
                     "wf-new-worker-state-changelog")
    admin = FakeAdmin({"training-events": described("training-events"),
                       "worker-files": described("worker-files", partitions=12),
                       "worker-services": described("worker-services", error=29),
                       "rejected-events": described("rejected-events", leader=-1)})
    problems, pending = topic_problems(admin, specs)
    assert problems == [
        "worker-files has 12 partitions, expected 4",
        "worker-services: not authorized to describe it (the login's ACLs: deploy/security/parties.toml)",
        "rejected-events has partitions without a leader",
        "wf-new-worker-state-changelog is missing",
    ]
    assert pending == ["rejected-events", "wf-new-worker-state-changelog"]
    assert topic_problems(FakeAdmin({"training-events": described("training-events")}),
                          specs_of("training-events")) == ([], [])


def test_the_worker_waits_for_a_missing_topic_and_not_for_a_wrong_one(monkeypatch):
    admins: list[FakeAdmin] = []

    def admin_client(topics):
        def make(**kwargs):
            admins.append(FakeAdmin(topics))
            return admins[-1]
        monkeypatch.setattr("kafka.KafkaAdminClient", make)

    monkeypatch.setattr(topics_module.time, "sleep", lambda s: None)
    clock = iter(range(1000))
    monkeypatch.setattr(topics_module.time, "monotonic", lambda: next(clock))
    specs = specs_of("training-events", "wf-new-worker-state-changelog")

    admin_client({"training-events": described("training-events")})  # the changelog never comes
    waiting = []
    with pytest.raises(TopicsNotReady) as err:
        wait_for_topics("b:9092", specs, timeout=5, on_wait=waiting.append)
    assert err.value.missing == ["wf-new-worker-state-changelog"] and admins[-1].calls > 2
    assert waiting == [["wf-new-worker-state-changelog"]]  # said once
    assert admins[-1].closed

    admin_client({"training-events": described("training-events", partitions=12)})  # no waiting helps
    with pytest.raises(TopicsNotReady) as err:
        wait_for_topics("b:9092", specs, timeout=5)
    assert admins[-1].calls == 1 and "training-events has 12 partitions, expected 4" in str(err.value)

    admin_client({n: described(n) for n in ("training-events", "wf-new-worker-state-changelog")})
    wait_for_topics("b:9092", specs, timeout=5)
    assert admins[-1].calls == 1
