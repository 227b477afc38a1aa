"""Fixtures of the integration tests: a real Apache Kafka broker (KRaft, from the jars
Maven fetched), the project's topics, and helpers to publish a population and to
compute what `workerfile fold` makes of the same events."""

from __future__ import annotations

import uuid

import orjson
import pytest

from processors.batch import fold_lines
from streams import codec
from streams.local_kafka import LocalKafka
from streams.producer import EventProducer, InvalidEvent
from streams.runner import WorkerProcess
from streams.topics import ensure_topics, load_topic_specs, provision

PARTITIONS = 4


@pytest.fixture
def kafka():
    """A fresh single-node broker per test: topics start empty."""
    broker = LocalKafka()
    broker.start()
    try:
        ensure_topics(broker.bootstrap, load_topic_specs("local", partitions=PARTITIONS))
        yield broker
    finally:
        broker.stop()


def topics_profile(kafka) -> str:
    """The profile of deploy/topics.toml the topics of `kafka` follow: `local` (one broker),
    or what the broker object says (the cluster tests' cluster: `cluster`)."""
    return getattr(kafka, "topics_profile", "local")


@pytest.fixture
def workers(kafka, tmp_path):
    """Start `workerfile worker` processes, each after the changelog topics of its
    application id were created (as `workerfile topics --app-id` does); every one is
    stopped at the end."""
    started: list[WorkerProcess] = []

    def start(app_id: str = "workerfile-test", name: str | None = None) -> WorkerProcess:
        name = name or f"w{len(started)}"
        provision(kafka.bootstrap, app_id, PARTITIONS, profile=topics_profile(kafka))
        proc = WorkerProcess(kafka.bootstrap, app_id, tmp_path / name, partitions=PARTITIONS).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def as_line(item) -> bytes:
    return item.encode() if isinstance(item, str) else orjson.dumps(item)


def expected_files(items) -> dict[str, dict]:
    """What the offline fold (`workerfile fold`) makes of the same inputs, by ssn."""
    batch = fold_lines([as_line(i) for i in items])
    return {f["ssn"]: f for f in batch.files()}


def publish(bootstrap: str, items, topic_for_bad: str = "training-events") -> dict[str, int]:
    """Publish inputs as producers would: valid events through the validating producer
    (keyed by normalised SSN); invalid events Avro-encoded as they are, keyed by the
    raw ssn; strings as raw bytes. Returns counts by kind."""
    counts = {"valid": 0, "invalid": 0, "raw": 0}
    with EventProducer(bootstrap) as producer:
        for item in items:
            if isinstance(item, str):
                producer.send_raw(topic_for_bad, uuid.uuid4().hex.encode(), item.encode())
                counts["raw"] += 1
                continue
            try:
                event = producer.checked(item)
            except InvalidEvent:
                value = codec.encode("Event", item)
                producer.send_raw(topic_for_bad, str(item.get("ssn")).encode(), value)
                counts["invalid"] += 1
                continue
            key = item["ssn"].encode()  # as the producer wrote it: legacy keys get re-keyed
            producer.send_raw(producer.topic_for(event), key, codec.encode_event(event))
            counts["valid"] += 1
    return counts


# --- a secured broker (deploy/security/): SASL/SCRAM-SHA-512 logins and ACLs per party ----------

def load_security_acls():
    """deploy/security/acls.py (users, ACLs, client properties) as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "deploy" / "security" / "acls.py"
    spec = importlib.util.spec_from_file_location("security_acls", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class SecuredKafka:
    """A running broker with deploy/security/server.properties: the `admin` super user and
    every party user of parties.toml with its ACLs. `secrets` holds what
    `acls.py --secrets` writes: <user>.password and <user>.properties (admin's too)."""

    def __init__(self, broker: LocalKafka, secrets, acls):
        self.broker = broker
        self.secrets = secrets
        self.acls = acls

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def password(self, user: str) -> str:
        return self.password_file(user).read_text().strip()

    def password_file(self, user: str):
        return self.secrets / f"{user}.password"

    def properties_file(self, user: str):
        return self.secrets / f"{user}.properties"

    def kafka_python(self, user: str, password: str | None = None) -> dict:
        """kafka-python login arguments (another password to try a wrong one)."""
        return self.acls.client_kwargs(user, self.password(user) if password is None else password)

    def security(self, user: str):
        """The project's login settings (streams.kafka_security) of `user`."""
        from streams.kafka_security import KafkaSecurity

        return KafkaSecurity.from_env({}, user=user, password_file=self.password_file(user))

    def env(self, user: str) -> dict[str, str]:
        """The WORKERFILE_KAFKA_* variables that log a command in as `user`."""
        return {"WORKERFILE_KAFKA_USER": user, "WORKERFILE_KAFKA_PASSWORD_FILE": str(self.password_file(user))}

    def admin_client(self):
        return self.acls.admin_client(self.bootstrap, self.password("admin"))


@pytest.fixture(scope="module")
def secured_kafka(tmp_path_factory):
    """A secured single broker on free 127.0.0.1 ports (no topics yet), its admin credential
    created when the storage is formatted; the party users and ACLs applied with
    `deploy/security/acls.py --secrets` as admin. Stopped at the end of the module."""
    acls = load_security_acls()
    secrets = tmp_path_factory.mktemp("secrets")
    admin_password = acls.new_password()
    (secrets / "admin.password").write_text(admin_password + "\n")
    (secrets / "admin.properties").write_text(acls.client_properties("admin", admin_password))
    broker = LocalKafka(extra_config=acls.server_config(admin_password), env={
        "KAFKA_LISTENER_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_CONTROLLER_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_ADD_SCRAM": acls.format_scram("admin", admin_password),
        "KAFKA_CLIENT_CONFIG": str(secrets / "admin.properties"),  # the readiness probe logs in as admin
    })
    broker.start()
    try:
        assert acls.main(["--bootstrap", broker.bootstrap, "--admin-password-file", str(secrets / "admin.password"),
                          "--secrets", str(secrets)]) == 0
        yield SecuredKafka(broker, secrets, acls)
    finally:
        broker.stop()
    assert not broker.is_running()
