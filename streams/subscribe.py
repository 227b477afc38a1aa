"""Subscribing, for social-insurance systems: follow `worker-services` (subsidy grants)
or `worker-file-changes` as a consumer group, and print each message or forward it to
an HTTP endpoint. `workerfile subscribe` is the runnable example.

Delivery to the subscriber (nothing lost, at-least-once):

- A partition's offset is committed only after its message was handed on (printed, or
  POSTed and answered 2xx), or was written to the rejects file (below).
- A hand-on that fails (the receiving system down, a timeout, an answer that is not 2xx —
  redirects are not followed, a 3xx is a failure) commits nothing: the consumer seeks
  back to that message and tries it again at the next poll (waiting `retry_every`
  seconds, doubled up to `MAX_RETRY_WAIT`), saying so on stderr each time with the
  topic, partition and offset. It keeps polling meanwhile, so it stays in its group;
  the other partitions go on. Nothing after the failed message of that partition is
  handed on before it.
- A record that is not a message of the topic — a value that does not decode (garbage,
  truncated Avro, an unknown schema fingerprint), a record of another schema, a
  tombstone (none is ever published on these topics) — is never handed on and never
  skipped silently: it is appended to the rejects file (JSON lines: topic, partition,
  offset, reason, the key and value in base64; flushed and fsynced before the offset
  moves past it), reported on stderr with its topic, partition and offset, counted in
  the summary, and the subscriber goes on. Default file:
  `workerfile-subscribe-<what>.rejects.jsonl`.
- With `--state`, the ids handed on (`service_id|status|version`, or `ssn|version` for
  changes) are
  appended to a file before the offset is committed, so a restarted subscriber does not
  hand the same message on twice; only a crash between the hand-on and that write can
  repeat one (receivers deduplicate by the same id). Rejects may repeat after a crash
  likewise (deduplicate them by topic, partition, offset).

Counts: read = handed on + already handed on (state) + rejected, over the records whose
offsets were committed.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import orjson
from kafka import KafkaConsumer, OffsetAndMetadata
from kafka.errors import CommitFailedError

from processors.identity import mask_ssn
from streams import codec
from streams.kafka_security import KafkaSecurity, or_env
from streams.topics import WORKER_FILE_CHANGES, WORKER_SERVICES
from workerfile.logmask import mask_text

TOPIC_OF = {"services": WORKER_SERVICES, "changes": WORKER_FILE_CHANGES}
RECORD_OF = {"services": "ServiceEvent", "changes": "WorkerFileChange"}
MAX_RETRY_WAIT = 60.0  # seconds, the longest wait between two tries of a failing hand-on


def message_id(what: str, message: dict) -> str:
    """What identifies a message for deduplication: a change of a file by (ssn, version);
    a service event by its service_id, status and file version (contract section 9: one
    event per status change; an event from before section 9 has no status: its id)."""
    if what != "services":
        return f"{message['ssn']}|{message['version']}"
    if message.get("status") is None:
        return message["service_id"]
    return f"{message['service_id']}|{message['status']}|v{message['version']}"


def describe(what: str, message: dict) -> str:
    """One line for a person (the SSN masked)."""
    if what == "services":
        who = mask_ssn(message["ssn"])
        change = message.get("status") or "offered"
        if message.get("status_before"):
            change = f"{message['status_before']} -> {change}"
        if message["service"] == "notice":
            n = message["notice"]
            return f"notice {n['code']} for {who}: employer {n['employer']} since {n['since']} ({change})"
        g = message["grant"]
        amount = f", {g['amount_cny']} CNY" if g.get("amount_cny") else ""
        return (f"grant {message['service']} for {who}: {g['occupation_code']} {g['level']}{amount}, "
                f"certificate {g['certificate_no']}, apply by {g['apply_by']}, {change} "
                f"(service_id {message['service_id']})")
    return (f"change of {mask_ssn(message['ssn'])} v{message['version']}: {', '.join(message['changed_sections'])} "
            f"({len(message['event_ids'])} events)")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A POST that is redirected would be re-sent as a GET without its body: never follow."""

    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def http_forwarder(url: str, timeout: float = 10.0) -> Callable[[dict], None]:
    """Forward each message as a JSON POST; raises (so the offset is not committed) unless
    the answer is 2xx within `timeout` seconds (a redirect is a failure)."""
    def forward(message: dict) -> None:
        request = urllib.request.Request(url, data=orjson.dumps(message), method="POST",
                                         headers={"Content-Type": "application/json"})
        with _opener.open(request, timeout=timeout) as response:
            if not 200 <= response.status < 300:
                raise RuntimeError(f"{url} answered {response.status}")
            response.read()
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
                fh.flush()
                os.fsync(fh.fileno())


class Unreadable(ValueError):
    """A record that is not a message of the subscribed topic (the reason names no SSN)."""


def read_message(what: str, record) -> dict:
    """The message of a record; raises Unreadable."""
    if record.value is None:
        raise Unreadable("a tombstone (no value): nothing is ever deleted on this topic")
    try:
        name, message = codec.decode(record.value)
    except codec.RegistryUnavailable:  # the value may be fine: the caller tries it again
        raise
    except codec.CodecError as err:
        raise Unreadable(f"undecodable value: {err}") from None
    if name != RECORD_OF[what]:
        raise Unreadable(f"a {name} instead of a {RECORD_OF[what]}")
    return message


class Rejects:
    """The rejects file: one JSON line per record that could not be handed on."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def add(self, record, reason: str) -> None:
        line = {"topic": record.topic, "partition": record.partition, "offset": record.offset, "reason": reason,
                "key_base64": None if record.key is None else base64.b64encode(bytes(record.key)).decode(),
                "value_base64": None if record.value is None else base64.b64encode(bytes(record.value)).decode()}
        with self.path.open("ab") as fh:
            fh.write(orjson.dumps(line) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())


def default_rejects(what: str) -> str:
    return f"workerfile-subscribe-{what}.rejects.jsonl"


@dataclass
class SubscribeStats:
    what: str
    topic: str
    rejects_path: str
    handed: int = 0
    repeated: int = 0
    rejected: int = 0
    failures: int = 0

    @property
    def read(self) -> int:
        return self.handed + self.repeated + self.rejected

    def summary(self) -> str:
        return (f"read {self.read} records of {self.topic}: {self.handed} {self.what} handed on, {self.repeated} "
                f"already handed on, {self.rejected} unreadable (in {self.rejects_path}); "
                f"{self.failures} failed hand-ons retried")

    def __int__(self) -> int:  # what subscribe() used to return
        return self.handed


def _say(text: str) -> None:
    print(f"workerfile subscribe: {text}", flush=True, file=sys.stderr)


def subscribe(bootstrap: str, what: str, handle: Callable[[dict], None], group: str = "workerfile-subscriber",
              once: bool = False, state: str | None = None, retry_every: float = 2.0,
              security: KafkaSecurity | None = None, rejects: str | None = None,
              consumer_options: dict | None = None) -> SubscribeStats:
    """Hand every new message of `what` (services / changes) to `handle` (see the module
    doc for what happens to failures and unreadable records); returns the counts. With
    `once`, stop when caught up. `security`: the login (default: the WORKERFILE_KAFKA_*
    environment). `rejects`: the rejects file (default `default_rejects(what)`)."""
    topic = TOPIC_OF[what]
    seen = SeenIds(state)
    stats = SubscribeStats(what, topic, str(rejects or default_rejects(what)))
    rejected = Rejects(stats.rejects_path)
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest", isolation_level="read_committed",
                             **(consumer_options or {}), **or_env(security).kafka_python())
    idle_polls = 0
    wait = retry_every
    try:
        while True:
            batches = consumer.poll(timeout_ms=1000)
            if not batches:
                idle_polls += 1
                if once and idle_polls >= 3 and consumer.assignment() and _caught_up(consumer):
                    return stats
                continue
            idle_polls = 0
            failed = False
            for tp, records in batches.items():
                for record in records:
                    where = f"{record.topic} partition {record.partition} offset {record.offset}"
                    try:
                        message = read_message(what, record)
                    except codec.RegistryUnavailable as err:  # the value may be fine: commit nothing, try again
                        stats.failures += 1
                        failed = True
                        _say(f"the record at {where} cannot be read now ({err}); trying it again in {wait:g} s")
                        consumer.seek(tp, record.offset)
                        break
                    except Unreadable as err:
                        rejected.add(record, str(err))
                        stats.rejected += 1
                        _say(f"unreadable record at {where}: {err}; written to {stats.rejects_path}")
                    else:
                        key = message_id(what, message)
                        if key in seen:
                            stats.repeated += 1
                        else:
                            try:
                                handle(message)
                            except Exception as err:  # the receiving system is down: commit nothing, try again
                                stats.failures += 1
                                failed = True
                                _say(f"hand-on of the message at {where} failed ({type(err).__name__}: "
                                     f"{mask_text(str(err))}); trying it again in {wait:g} s")
                                consumer.seek(tp, record.offset)  # the next poll returns it again
                                break  # nothing after it in this partition before it
                            seen.add(key)
                            stats.handed += 1
                    try:
                        consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "", -1)})
                    except CommitFailedError as err:  # the group rebalanced: the new owner reads it again
                        _say(f"offset of {where} not committed ({err}); it will be read again")
                        break
            if failed:
                time.sleep(wait)
                wait = min(wait * 2, MAX_RETRY_WAIT)
            else:
                wait = retry_every
    finally:
        consumer.close(autocommit=False)


def _caught_up(consumer: KafkaConsumer) -> bool:
    partitions = list(consumer.assignment())
    ends = consumer.end_offsets(partitions)
    return all(consumer.position(tp) >= ends[tp] for tp in partitions)


def printer(what: str, as_json: bool) -> Callable[[dict], None]:
    def show(message: dict) -> None:
        print(json.dumps(message, ensure_ascii=False) if as_json else describe(what, message), flush=True)
    return show
