"""Subscribing, for social-insurance systems: follow `worker-services` (subsidy grants)
or `worker-file-changes` as a consumer group, and print each message or forward it to
an HTTP endpoint. `workerfile subscribe` is the runnable example.

Delivery to the subscriber: offsets are committed only after a message was printed or
forwarded (at-least-once), and service events are deduplicated by their stable
`service_id` (changes by `(ssn, version)`) in a small state file when `--state` is given,
so a subscriber that restarts does not hand the same grant on twice.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

import orjson
from kafka import KafkaConsumer, OffsetAndMetadata

from processors.identity import mask_ssn
from streams import codec
from streams.kafka_security import KafkaSecurity, or_env
from streams.topics import WORKER_FILE_CHANGES, WORKER_SERVICES

TOPIC_OF = {"services": WORKER_SERVICES, "changes": WORKER_FILE_CHANGES}


def message_id(what: str, message: dict) -> str:
    """What identifies a message for deduplication."""
    return message["service_id"] if what == "services" else f"{message['ssn']}|{message['version']}"


def describe(what: str, message: dict) -> str:
    """One line for a person (the SSN masked)."""
    if what == "services":
        g = message["grant"]
        return (f"grant {message['service']} for {mask_ssn(message['ssn'])}: {g['occupation_code']} {g['level']}, "
                f"certificate {g['certificate_no']}, apply by {g['apply_by']} (service_id {message['service_id']})")
    return (f"change of {mask_ssn(message['ssn'])} v{message['version']}: {', '.join(message['changed_sections'])} "
            f"({len(message['event_ids'])} events)")


def http_forwarder(url: str, timeout: float = 10.0) -> Callable[[dict], None]:
    """Forward each message as a JSON POST; raises (so the offset is not committed) on failure."""
    def forward(message: dict) -> None:
        request = urllib.request.Request(url, data=orjson.dumps(message), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status >= 300:
                raise RuntimeError(f"{url} answered {response.status}")
    return forward


class SeenIds:
    """Ids already handed on, kept in an append-only file (or in memory only)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.ids: set[str] = set()
        if self.path and self.path.exists():
            self.ids = {line.strip() for line in self.path.read_text().splitlines() if line.strip()}

    def __contains__(self, item: str) -> bool:
        return item in self.ids

    def add(self, item: str) -> None:
        self.ids.add(item)
        if self.path:
            with self.path.open("a") as fh:
                fh.write(item + "\n")


def subscribe(bootstrap: str, what: str, handle: Callable[[dict], None], group: str = "workerfile-subscriber",
              once: bool = False, state: str | None = None, retry_every: float = 2.0,
              security: KafkaSecurity | None = None) -> int:
    """Hand every new message of `what` (services / changes) to `handle`; returns how many
    were handed on. With `once`, stop when caught up. `security`: the login (default: the
    WORKERFILE_KAFKA_* environment)."""
    topic = TOPIC_OF[what]
    seen = SeenIds(state)
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest", isolation_level="read_committed",
                             **or_env(security).kafka_python())
    handed = 0
    idle_polls = 0
    try:
        while True:
            batches = consumer.poll(timeout_ms=1000)
            if not batches:
                idle_polls += 1
                if once and idle_polls >= 3 and consumer.assignment() and _caught_up(consumer):
                    return handed
                continue
            idle_polls = 0
            for tp, records in batches.items():
                for record in records:
                    if record.value is None:
                        continue
                    _, message = codec.decode(record.value)
                    key = message_id(what, message)
                    if key not in seen:
                        while True:
                            try:
                                handle(message)
                                break
                            except Exception as err:  # the receiving system is down: try again, commit nothing
                                print(f"workerfile subscribe: hand-on failed ({type(err).__name__}); retrying",
                                      flush=True, file=sys.stderr)
                                time.sleep(retry_every)
                        seen.add(key)
                        handed += 1
                    consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "", -1)})
    finally:
        consumer.close()


def _caught_up(consumer: KafkaConsumer) -> bool:
    partitions = list(consumer.assignment())
    ends = consumer.end_offsets(partitions)
    return all(consumer.position(tp) >= ends[tp] for tp in partitions)


def printer(what: str, as_json: bool) -> Callable[[dict], None]:
    def show(message: dict) -> None:
        print(json.dumps(message, ensure_ascii=False) if as_json else describe(what, message), flush=True)
    return show

