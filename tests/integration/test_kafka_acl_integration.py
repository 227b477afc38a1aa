"""The secured broker of deploy/security/: SASL/SCRAM-SHA-512 logins and ACLs per party.

Starts a real single-node broker (KRaft) with deploy/security/server.properties on free
127.0.0.1 ports, the admin credential created when the storage is formatted; creates the
topics and applies deploy/security/acls.py as admin; then logs in as the parties with
kafka-python and shows what each may and may not do."""

from __future__ import annotations

import importlib.util
import tomllib
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (GroupAuthorizationFailedError, KafkaError, KafkaTimeoutError,
                          SaslAuthenticationFailedError, TopicAuthorizationFailedError)

from streams.local_kafka import LocalKafka

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("security_acls", ROOT / "deploy" / "security" / "acls.py")
acls = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(acls)

ADMIN_PASSWORD = acls.new_password()
PARTIES = acls.load_parties()
PASSWORDS = {p["user"]: acls.new_password() for p in PARTIES.values()}


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A secured broker with the topics, the party users and their ACLs; stopped at the end."""
    secrets = tmp_path_factory.mktemp("secrets")
    admin_props = secrets / "admin.properties"
    admin_props.write_text(acls.client_properties("admin", ADMIN_PASSWORD))
    broker = LocalKafka(extra_config=acls.server_config(ADMIN_PASSWORD), env={
        "KAFKA_LISTENER_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_CONTROLLER_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_ADD_SCRAM": acls.format_scram("admin", ADMIN_PASSWORD),
        "KAFKA_CLIENT_CONFIG": str(admin_props),  # the readiness probe logs in as admin
    })
    broker.start()
    try:
        admin = acls.admin_client(broker.bootstrap, ADMIN_PASSWORD)
        try:
            with open(ROOT / "deploy" / "topics.toml", "rb") as f:
                topics = tomllib.load(f)["topics"]
            admin.create_topics([NewTopic(name, 1, 1) for name in topics])
            acls.create_users(admin, PASSWORDS)
            assert acls.apply_acls(admin, acls.acl_bindings(PARTIES)) > 0
        finally:
            admin.close()
        yield broker
    finally:
        broker.stop()
    assert not broker.is_running()


def login(user: str, password: str | None = None) -> dict:
    return acls.client_kwargs(user, PASSWORDS.get(user) if password is None else password)


def producer(kafka, user, password=None) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=kafka.bootstrap, max_block_ms=8000,
                         request_timeout_ms=15000, retries=0, **login(user, password))


def read_one(kafka, user, topic, group=None, timeout_ms=15000):
    """Consume `topic` from the beginning as `user`; return the first record (or None)."""
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=timeout_ms, **login(user))
    try:
        if group:
            consumer.subscribe([topic])
        else:
            consumer.assign([TopicPartition(topic, 0)])
            consumer.seek_to_beginning()
        records = consumer.poll(timeout_ms=timeout_ms, max_records=1)
        for batch in records.values():
            return batch[0]
        return None
    finally:
        consumer.close()


def publish_as_admin(kafka, topic, value):
    p = KafkaProducer(bootstrap_servers=kafka.bootstrap, **acls.client_kwargs("admin", ADMIN_PASSWORD))
    try:
        p.send(topic, key=b"k", value=value).get(timeout=15)
    finally:
        p.close()


def test_training_institution_writes_only_training_events(secured):
    p = producer(secured, "training")
    try:
        meta = p.send("training-events", key=b"ssn", value=b"training event").get(timeout=15)
        assert meta.topic == "training-events" and meta.offset >= 0
        with pytest.raises(TopicAuthorizationFailedError):
            p.send("employment-events", key=b"ssn", value=b"forged employment").get(timeout=15)
    finally:
        p.close()


def test_training_institution_cannot_read_worker_files(secured):
    publish_as_admin(secured, "worker-files", b"a whole file")
    # Within a consumer group: it has no group at all (producers only write).
    with pytest.raises(GroupAuthorizationFailedError):
        read_one(secured, "training", "worker-files", group="training-reader")
    # Without a group: the broker hides the topic and serves no record.
    consumer = KafkaConsumer(bootstrap_servers=secured.bootstrap, **login("training"))
    try:
        visible = consumer.topics()
        assert "training-events" in visible and "worker-files" not in visible
    finally:
        consumer.close()
    assert read_one(secured, "training", "worker-files", timeout_ms=3000) is None


def test_insurance_bureau_reads_its_views_but_not_worker_files(secured):
    publish_as_admin(secured, "worker-services", b"subsidy grant")
    record = read_one(secured, "insurance", "worker-services", group=f"insurance-{uuid.uuid4().hex[:6]}")
    assert record is not None and record.value == b"subsidy grant"
    consumer = KafkaConsumer(bootstrap_servers=secured.bootstrap, **login("insurance"))
    try:
        visible = consumer.topics()
        assert "worker-services" in visible and "worker-files" not in visible
    finally:
        consumer.close()
    assert read_one(secured, "insurance", "worker-files", timeout_ms=3000) is None
    # a consumer group outside its prefix is refused too
    with pytest.raises(GroupAuthorizationFailedError):
        read_one(secured, "insurance", "worker-services", group="someone-elses-group")
    p = producer(secured, "insurance")
    try:
        p.send("insurance-events", key=b"ssn", value=b"insurance event").get(timeout=15)
        with pytest.raises(TopicAuthorizationFailedError):
            p.send("worker-services", key=b"ssn", value=b"forged grant").get(timeout=15)
    finally:
        p.close()


def test_integrator_reads_worker_files(secured):
    publish_as_admin(secured, "worker-files", b"a whole file")
    record = read_one(secured, "integrator", "worker-files", group="integrator-sink")
    assert record is not None


def test_wrong_password_is_refused(secured):
    with pytest.raises((SaslAuthenticationFailedError, KafkaTimeoutError)) as info:
        p = producer(secured, "training", password="not-the-password")
        try:
            p.send("training-events", value=b"x").get(timeout=15)
        finally:
            p.close()
    assert isinstance(info.value, KafkaError)
