"""Publishing events, for sources (training institutions, employers, insurance bureaus,
evaluation bodies) and for the demo: validate against the contract before sending, key
by the normalised SSN, send Avro (`streams.codec`), and confirm delivery.

kafka-python: a plain blocking client that any source's batch job can use.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka import KafkaProducer

from processors.intake import Rejection, validate_event
from schemas.events import TOPIC_OF_TYPE, Envelope
from streams import codec
from streams.kafka_security import KafkaSecurity, or_env


class InvalidEvent(ValueError):
    """The event breaks the contract; nothing was sent."""

    def __init__(self, rejection: Rejection):
        super().__init__(f"{rejection.reason}: {rejection.message}")
        self.rejection = rejection


class DeliveryFailed(RuntimeError):
    """The broker did not confirm some records."""


class NotAllowed(RuntimeError):
    """The broker does not let this login write to a topic (ACLs, deploy/security/)."""

    def __init__(self, topics: list[str], who: str):
        super().__init__(f"not allowed to write to {', '.join(topics)} ({who}); nothing was sent")
        self.topics = topics


@dataclass(frozen=True)
class Delivered:
    event_id: str
    topic: str
    partition: int
    offset: int


def delivery_within(seconds: float) -> dict:
    """kafka-python settings that make the producer give up on a record `seconds` after
    it was handed over (retries included, e.g. while a partition has fewer in-sync replicas
    than min.insync.replicas): its future then fails with KafkaTimeoutError. Also the
    longest wait for metadata and buffer space in send().

    Not idempotent: kafka-python's (3.0.12) idempotent producer, once one batch has
    expired, resets its producer id and leaves the batches of the other partitions pending
    for ever, so flush() and close() would never return (seen with two of three brokers
    down). Without it a retry may write an event twice; the fold takes the second copy as a
    duplicate (same event_id, same content)."""
    ms = max(1000, int(seconds * 1000))
    return {"delivery_timeout_ms": ms, "request_timeout_ms": min(30_000, ms - LINGER_MS), "max_block_ms": ms,
            "enable_idempotence": False}


LINGER_MS = 5


class EventProducer:
    """Validate, key and send events; `flush()` confirms every pending delivery.
    `security`: the login (default: the WORKERFILE_KAFKA_* environment). acks=all; every
    record is retried until it is acknowledged or 120 s have passed (`delivery_within`)."""

    def __init__(self, bootstrap: str, retraction_topic: str = "certification-events",
                 security: KafkaSecurity | None = None, **config):
        self.retraction_topic = retraction_topic
        self.security = or_env(security)
        config = {"linger_ms": LINGER_MS, "retries": 2**31 - 1, **delivery_within(120), **self.security.kafka_python(),
                  **config}
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **config)
        self._pending: list = []

    def check_topics(self, topics) -> None:
        """Raise NotAllowed when this login may not use one of `topics` (a secured broker
        hides the topics a party has no right to), before anything is sent."""
        from kafka.errors import TopicAuthorizationFailedError

        refused = []
        for topic in sorted(set(topics)):
            try:
                self._producer.partitions_for(topic)
            except TopicAuthorizationFailedError:
                refused.append(topic)
        if refused:
            raise NotAllowed(refused, self.security.describe())

    def topic_for(self, event: Envelope) -> str:
        return TOPIC_OF_TYPE.get(event.type, self.retraction_topic)

    @staticmethod
    def checked(event: dict | Envelope) -> Envelope:
        """The validated event; raises InvalidEvent naming the field and the reason."""
        if isinstance(event, Envelope):
            return event
        result = validate_event(event)
        if isinstance(result, Rejection):
            raise InvalidEvent(result)
        return result

    def send(self, event: dict | Envelope, topic: str | None = None):
        """Validate and send one event (dict in canonical JSON form, or a model);
        returns kafka-python's future of the record metadata. Raises InvalidEvent."""
        event = self.checked(event)
        return self._track(self._producer.send(topic or self.topic_for(event), key=event.ssn.encode(),
                                               value=codec.encode_event(event)))

    def send_and_confirm(self, event: dict | Envelope, timeout: float = 30) -> Delivered:
        """Send one event and wait until the broker has it."""
        event = self.checked(event)
        meta = self.send(event).get(timeout=timeout)
        return Delivered(event.event_id, meta.topic, meta.partition, meta.offset)

    def send_raw(self, topic: str, key: bytes | None, value: bytes | None):
        """Send bytes as they are (tests and replays of foreign data)."""
        return self._track(self._producer.send(topic, key=key, value=value))

    def _track(self, future):
        self._pending.append(future)
        return future

    def flush(self, timeout: float | None = None) -> int:
        """Wait for every send so far; returns how many were confirmed, and raises
        DeliveryFailed when any was not (so a batch is never silently incomplete)."""
        self._producer.flush(timeout)
        pending, self._pending = self._pending, []
        failed = [f.exception for f in pending if f.failed()]
        if failed:
            raise DeliveryFailed(f"{len(failed)} of {len(pending)} records were not delivered: {failed[0]!r}")
        return len(pending)

    def close(self) -> None:
        """Close, once every record is acknowledged or has failed (`delivery_within`)."""
        self._producer.close()

    def __enter__(self) -> "EventProducer":
        return self

    def __exit__(self, *exc) -> None:
        self.flush()
        self.close()
