"""Settings of the stream processors, from the environment (or given directly).

| variable | default | meaning |
|---|---|---|
| WORKERFILE_BROKER | 127.0.0.1:9092 | Kafka bootstrap servers |
| WORKERFILE_APP_ID | workerfile | faust application id (consumer group, changelog topic names) |
| WORKERFILE_DATA_DIR | ./workerfile-data | RocksDB tables of this worker |
| WORKERFILE_PARTITIONS | 4 | partitions of every topic (all co-partitioned by SSN) |
| WORKERFILE_REPLICATION | 1 | replication factor of the topics faust creates |
| WORKERFILE_WEB_PORT | 0 (off) | faust's web server port |
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class StreamSettings:
    broker: str = "127.0.0.1:9092"
    app_id: str = "workerfile"
    data_dir: str = "./workerfile-data"
    partitions: int = 4
    replication: int = 1
    web_port: int = 0
    commit_interval: float = 1.0

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
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
