"""The secured broker of deploy/security/: SASL/SCRAM-SHA-512 logins and ACLs per party.

A real single-node broker (KRaft) with deploy/security/server.properties on free
127.0.0.1 ports, the party users and ACLs applied by deploy/security/acls.py as admin
(conftest.secured_kafka); the topics created as admin; then logs in as the parties with
kafka-python and shows what each may and may not do."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import (GroupAuthorizationFailedError, KafkaError, KafkaTimeoutError,
                          SaslAuthenticationFailedError, TopicAuthorizationFailedError)

from streams.topics import TopicSpec, ensure_topics, load_topic_specs


@pytest.fixture(scope="module")
def secured(secured_kafka):
    """The secured broker with the users, their ACLs and the topics (1 partition each,
    created as admin), every partition's leader serving (the producers here do not retry)."""
    specs = load_topic_specs("local", partitions=1)
    ensure_topics(secured_kafka.bootstrap, specs, secured_kafka.security("admin"))
    consumer = KafkaConsumer(bootstrap_servers=secured_kafka.bootstrap, **login(secured_kafka, "admin"))
    try:  # ListOffsets is answered by a partition's leader only: kafka-python retries until it is
        consumer.end_offsets([TopicPartition(s.name, 0) for s in specs])
    finally:
        consumer.close()
    return secured_kafka


def login(kafka, user: str, password: str | None = None) -> dict:
    return kafka.kafka_python(user, password)


def producer(kafka, user, password=None) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=kafka.bootstrap, max_block_ms=8000,
                         request_timeout_ms=15000, retries=0, **login(kafka, user, password))


def read_one(kafka, user, topic, group=None, timeout_ms=15000):
    """Consume `topic` from the beginning as `user`; return the first record (or None)."""
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=timeout_ms, **login(kafka, user))
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
    p = KafkaProducer(bootstrap_servers=kafka.bootstrap, **login(kafka, "admin"))
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
    consumer = KafkaConsumer(bootstrap_servers=secured.bootstrap, **login(secured, "training"))
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
    consumer = KafkaConsumer(bootstrap_servers=secured.bootstrap, **login(secured, "insurance"))
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


def test_kafka_connect_reads_the_flat_rows_only(secured):
    publish_as_admin(secured, "worker-file-rows", b"a flat row")
    publish_as_admin(secured, "worker-files", b"a whole file")
    record = read_one(secured, "connect", "worker-file-rows", group="connect-worker-file-rows-sink")
    assert record is not None and record.value == b"a flat row"
    assert read_one(secured, "connect", "worker-files", timeout_ms=3000) is None
    with pytest.raises(GroupAuthorizationFailedError):
        read_one(secured, "connect", "worker-file-rows", group="someone-elses-group")
    p = producer(secured, "connect")
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            p.send("worker-file-rows", key=b"ssn", value=b"forged row").get(timeout=15)
    finally:
        p.close()


def test_whole_files_reach_the_operators_sinks_and_integrators_only_see_pseudonyms(secured):
    publish_as_admin(secured, "worker-files", b"a whole file")
    publish_as_admin(secured, "worker-view-pseudonymised", b"a pseudonymised view")
    assert read_one(secured, "files", "worker-files", group="files-sink") is not None
    assert read_one(secured, "integrator", "worker-view-pseudonymised", group="integrator-research") is not None
    assert read_one(secured, "integrator", "worker-files", group="integrator-research", timeout_ms=3000) is None


def test_a_training_institution_reads_its_own_view_and_no_other(secured):
    own, other = "worker-view-training.52440300MJL0000012", "worker-view-training.52440300MJL0000025"
    specs = [TopicSpec(t, 1, 1, {"cleanup.policy": "compact"}) for t in (own, other)]
    ensure_topics(secured.bootstrap, specs, secured.security("admin"))
    consumer = KafkaConsumer(bootstrap_servers=secured.bootstrap, **login(secured, "admin"))
    try:
        consumer.end_offsets([TopicPartition(t, 0) for t in (own, other)])  # leaders serving
    finally:
        consumer.close()
    publish_as_admin(secured, own, b"the school's view of a file")
    publish_as_admin(secured, other, b"another school's view")
    user, group = "school-52440300MJL0000012", "school-52440300MJL0000012-sync"
    assert read_one(secured, user, own, group=group).value == b"the school's view of a file"
    assert read_one(secured, user, other, group=group, timeout_ms=3000) is None
    assert read_one(secured, user, "worker-files", group=group, timeout_ms=3000) is None


def test_wrong_password_is_refused(secured):
    with pytest.raises((SaslAuthenticationFailedError, KafkaTimeoutError)) as info:
        p = producer(secured, "training", password="not-the-password")
        try:
            p.send("training-events", value=b"x").get(timeout=15)
        finally:
            p.close()
    assert isinstance(info.value, KafkaError)
