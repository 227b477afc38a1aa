"""Settings of the stream processors, from the environment (or given directly).

| variable | default | meaning |
|---|---|---|
| WORKERFILE_BROKER | 127.0.0.1:9092 | Kafka bootstrap servers |
| WORKERFILE_APP_ID | workerfile | faust application id (consumer group, changelog topic names) |
| WORKERFILE_DATA_DIR | ./workerfile-data | RocksDB tables of this worker |
| WORKERFILE_PARTITIONS | 4 | partitions of every topic (all co-partitioned by SSN) |
| WORKERFILE_REPLICATION | 1 | replication factor of the topics faust creates |
| WORKERFILE_WEB_PORT | 0 (off) | faust's web server port |
| WORKERFILE_TOPICS_WAIT | 60 | seconds the worker waits at start for missing topics (`workerfile topics` creates them), then stops |
| WORKERFILE_KAFKA_* | PLAINTEXT | the login on a secured broker (`streams/kafka_security.py`) |
| WORKERFILE_VIEWS | deploy/views.toml | the audience views (who sees what) |
| WORKERFILE_PSEUDONYM_KEY_FILE | (none) | the secret key of the pseudonymised view; without it that view is not published |
| WORKERFILE_API_TOKENS | (none) | the API's callers file (`workerfile token add`); without it the API answers 401 |
| WORKERFILE_SERVICES | deploy/services.toml | the subsidy's parameters (`processors/services.py`); checked at start |
| WORKERFILE_WIRE_FORMAT | single-object | what the worker writes: single-object or confluent (`streams/codec.py`); it reads both |
| WORKERFILE_SCHEMA_REGISTRY_URL | (none) | the Confluent-compatible registry API, needed to write and to read the Confluent wire format |
| WORKERFILE_ORGANISATIONS | (none) | the organisation registry (`processors/organisations.py`); without it sources are not checked (development mode, said in the log at start) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from streams.kafka_security import KafkaSecurity


@dataclass(frozen=True)
class StreamSettings:
    broker: str = "127.0.0.1:9092"
    app_id: str = "workerfile"
    data_dir: str = "./workerfile-data"
    partitions: int = 4
    replication: int = 1
    web_port: int = 0
    commit_interval: float = 1.0
    topics_wait: float = 60.0  # seconds to wait at start for missing topics, then stop
    kafka: KafkaSecurity = field(default_factory=KafkaSecurity)  # the login (PLAINTEXT: none)
    views: str | None = None  # path of the views config (None: deploy/views.toml)
    pseudonym_key_file: str | None = None
    api_tokens: str | None = None
    organisations: str | None = None  # path of the organisation registry (None: development mode)
    services: str | None = None  # path of the subsidy's parameters (None: deploy/services.toml or the defaults)

    @classmethod
    def from_env(cls, **overrides) -> "StreamSettings":
        env = os.environ
        values = dict(
            broker=env.get("WORKERFILE_BROKER", cls.broker),
            app_id=env.get("WORKERFILE_APP_ID", cls.app_id),
            data_dir=env.get("WORKERFILE_DATA_DIR", cls.data_dir),
            partitions=int(env.get("WORKERFILE_PARTITIONS", cls.partitions)),
            replication=int(env.get("WORKERFILE_REPLICATION", cls.replication)),
            web_port=int(env.get("WORKERFILE_WEB_PORT", cls.web_port)),
            topics_wait=float(env.get("WORKERFILE_TOPICS_WAIT", cls.topics_wait)),
            views=env.get("WORKERFILE_VIEWS") or None,
            pseudonym_key_file=env.get("WORKERFILE_PSEUDONYM_KEY_FILE") or None,
            api_tokens=env.get("WORKERFILE_API_TOKENS") or None,
            organisations=env.get("WORKERFILE_ORGANISATIONS") or None,
            services=env.get("WORKERFILE_SERVICES") or None,
        )
        if overrides.get("kafka") is None:
            values["kafka"] = KafkaSecurity.from_env()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def kafka_credentials(self):
        """faust.App(broker_credentials=...): the login, or None on a PLAINTEXT broker."""
        return self.kafka.faust_credentials()

    def aiokafka_kwargs(self) -> dict:
        """The login for the worker's own aiokafka clients ({} on a PLAINTEXT broker)."""
        return self.kafka.aiokafka()
