"""The worker's batch logic (streams.batch_processor.BatchProcessor) with in-memory fakes
of its collaborators: the state table, the markers table, the publisher (delivery
futures) and the grant ledger. Its ordering rules, without a broker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from schemas.identity import make_org_code, make_ssn
from processors.intake import validate_event
from streams import codec
from streams.admin import make_command
from streams.batch_processor import BatchProcessor, PendingWrite
from streams.handler import Marker, load_state
from streams.topics import (
    OPERATOR_COMMANDS, REJECTED_EVENTS, REKEYED_EVENTS, WORKER_FILE_CHANGES, WORKER_FILES, WORKER_SERVICES,
)

SSN = make_ssn("11010519800101001")
OTHER = make_ssn("44030519850612003")
ORG = make_org_code("91440300192203821")
CHANGELOG = "app-worker-state-changelog"


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Ev:
    message: Message


class FakeTable(dict):
    """A table: get, item assignment and `write`, each write logged with what was delivered then."""

    def __init__(self, publisher=None):
        super().__init__()
        self.publisher = publisher
        self.writes: list[tuple[bytes, int, int]] = []  # (key, sent, delivered) at the write

    def __setitem__(self, key, value):
        assert isinstance(value, bytes), "a table value is bytes (a deletion is del)"
        if self.publisher is not None:
            self.writes.append((key, len(self.publisher.sent), self.publisher.delivered))
        super().__setitem__(key, value)

    def __delitem__(self, key):
        if self.publisher is not None:
            self.writes.append((key, len(self.publisher.sent), self.publisher.delivered))
        super().__delitem__(key)

    async def send(self, partition, writes):
        """The state table's first step (streams.app.StateTable): one worker's writes handed to
        the changelog, through the publisher (so a test can make the changelog fail)."""
        futures = [await self.publisher.send(ChangelogRecord(CHANGELOG, key, value)) for key, value in writes]
        return PendingWrite(partition, list(writes), futures)

    def persist(self):
        """Its last, after a batch's applies (the persisted offset: nothing to keep here)."""

    def apply(self, pending):
        """Its second: the writes to the store, once delivered."""
        assert all(fut.done() and fut.exception() is None for fut in pending.futures), "written before delivered"
        for key, value in pending.writes:
            if value is not None:
                self[key] = value
            elif key in self:
                del self[key]


@dataclass
class ChangelogRecord:
    topic: str
    key: bytes
    value: bytes | None


class FakePublisher:
    """Returns a delivery future per record, resolved later by the event loop (or failed
    for the topics in `failing`), like aiokafka's."""

    def __init__(self, failing: tuple[str, ...] = ()):
        self.failing = failing
        self.sent: list = []
        self.delivered = 0
        self.awaited_sends = 0

    async def send(self, record):
        self.sent.append(record)
        fut = asyncio.get_running_loop().create_future()

        def settle():
            if record.topic in self.failing:
                fut.set_exception(RuntimeError(f"MessageSizeTooLargeError on {record.topic}"))
            else:
                self.delivered += 1
                fut.set_result(None)

        asyncio.get_running_loop().call_later(0.001, settle)
        return fut

    def on(self, topic):
        return [r for r in self.sent if r.topic == topic]


class FakeLedger:
    def __init__(self, known: dict[int, dict[str, str]] | None = None):
        self.by_partition = known or {}

    async def published(self, partition: int) -> dict[str, str]:
        return self.by_partition.setdefault(partition, {})


def event(event_id: str, kind: str, payload: dict, ssn: str = SSN) -> bytes:
    data = {"event_id": event_id, "type": kind, "ssn": ssn, "occurred_at": "2025-01-15T10:00:00+08:00",
            "source": ORG, "corrects": None, "payload": payload}
    return codec.encode_event(validate_event(data))


def contribution(event_id: str, month: str, ssn: str = SSN) -> bytes:
    return event(event_id, "insurance.contribution", {"scheme": "unemployment", "month": month, "region": "110105",
                                                      "base_cny": 5000, "employer_amount_cny": 800,
                                                      "personal_amount_cny": 400}, ssn)


def certificate(event_id: str = "cert") -> bytes:
    return event(event_id, "certificate.issued", {"certificate_no": "S1", "kind": "skill_level",
                                                  "occupation_code": "6-18-01-01", "level": "junior",
                                                  "issued_on": "2024-12-20"})


def batch_of(values, ssn: str = SSN, topic: str = "insurance-events", partition: int = 1, start: int = 0):
    return [Ev(Message(topic, partition, start + n, ssn.encode(), v)) for n, v in enumerate(values)]


def command_event(action: str, ssn: str, other: str | None = None, offset: int = 0) -> Ev:
    made = make_command(action, ssn, other, "ops-zhang", "duplicate registration")
    return Ev(Message(OPERATOR_COMMANDS, 1, offset, ssn.encode(), codec.encode("OperatorCommand", made)))


def processor(publisher=None, ledger=None):
    publisher = publisher or FakePublisher()
    states, markers = FakeTable(publisher), FakeTable(publisher)
    return BatchProcessor(states, markers, publisher, ledger or FakeLedger()), publisher, states, markers


def run(coro):
    return asyncio.run(coro)


GRANT_EVENTS = [contribution(f"c{m}", f"2024-{m:02d}") for m in range(1, 13)] + [certificate()]


def test_every_output_is_delivered_before_any_state_write():
    proc, pub, states, _ = processor()
    run(proc.process(batch_of([contribution("c1", "2025-01"), contribution("c2", "2025-02"),
                               b"garbage"])))
    assert pub.on(WORKER_FILES) and pub.on(REJECTED_EVENTS)
    assert states.writes and all(delivered == sent == len(pub.sent) for _, sent, delivered in states.writes)
    assert load_state(SSN, states.get).version == 1


def test_the_changelog_is_sent_only_once_the_outputs_are_delivered():
    """No state on its changelog before the outputs it caused are delivered: a worker that
    recovered it would take the events for duplicates and never publish their outputs."""
    pub = FakePublisher()
    sent_at_delivery: list[int] = []
    original = pub.send

    async def send(record):
        if record.topic == CHANGELOG and not sent_at_delivery:
            sent_at_delivery.append(pub.delivered)
        return await original(record)
    pub.send = send
    proc, _, states, _ = processor(pub)
    run(proc.process(batch_of([contribution("c1", "2025-01"), b"garbage"])))
    outputs = [r for r in pub.sent if r.topic != CHANGELOG]
    assert pub.on(CHANGELOG) and sent_at_delivery == [len(outputs)]


def test_a_failing_changelog_delivery_leaves_the_store_as_it_was_and_raises():
    """faust's commit flushes the producer without raising on a failed delivery: a store
    written before its changelog was delivered would hold a state the changelog never got.
    Here the batch fails with the store untouched, and its retry writes the changelog again."""
    proc, pub, states, _ = processor(FakePublisher(failing=(CHANGELOG,)))
    with pytest.raises(RuntimeError, match="MessageSizeTooLarge"):
        run(proc.process(batch_of([contribution("c1", "2025-01")])))
    assert pub.on(WORKER_FILES) and pub.on(CHANGELOG)  # the outputs went out, the changelog failed
    assert dict(states) == {} and states.writes == [] and proc.cache == {}
    proc.publisher = states.publisher = FakePublisher()
    run(proc.process(batch_of([contribution("c1", "2025-01")])))
    assert load_state(SSN, states.get).version == 1
    assert {r.key: r.value for r in proc.publisher.on(CHANGELOG)} == dict(states)  # the store is its changelog


def test_one_fold_per_worker_per_batch():
    proc, pub, states, _ = processor()
    mixed = batch_of([contribution("c1", "2025-01"), contribution("c2", "2025-02")]) + \
        batch_of([contribution("o1", "2025-01", OTHER)], OTHER, start=2) + \
        batch_of([contribution("c3", "2025-03")], start=3)
    run(proc.process(mixed))
    files = [codec.decode(r.value)[1] for r in pub.on(WORKER_FILES)]
    assert sorted((f["ssn"], f["applied_events"]) for f in files) == sorted([(SSN, 3), (OTHER, 1)])
    assert len(pub.on(WORKER_FILE_CHANGES)) == 2


def test_a_failing_delivery_writes_no_state_and_raises():
    proc, pub, states, markers = processor(FakePublisher(failing=(WORKER_FILE_CHANGES,)))
    with pytest.raises(RuntimeError, match="MessageSizeTooLarge"):
        run(proc.process(batch_of([contribution("c1", "2025-01")])))
    assert dict(states) == {} and states.writes == [] and dict(markers) == {}
    assert proc.cache == {}
    # the same batch again, once the topic takes it: folded as if the first attempt never was
    proc.publisher = FakePublisher()
    run(proc.process(batch_of([contribution("c1", "2025-01")])))
    assert load_state(SSN, states.get).version == 1
    [change] = [codec.decode(r.value)[1] for r in proc.publisher.on(WORKER_FILE_CHANGES)]
    assert change["version"] == 1 and change["event_ids"] == ["c1"]


def test_a_grant_is_sent_once_and_the_ledger_learns_it_only_after_delivery():
    ledger = FakeLedger()
    proc, pub, states, _ = processor(FakePublisher(failing=(WORKER_SERVICES,)), ledger)
    with pytest.raises(RuntimeError):
        run(proc.process(batch_of(GRANT_EVENTS)))
    assert len(pub.on(WORKER_SERVICES)) == 1 and ledger.by_partition.get(1, {}) == {}
    proc.publisher = FakePublisher()
    run(proc.process(batch_of(GRANT_EVENTS)))
    [grant] = proc.publisher.on(WORKER_SERVICES)
    service = codec.decode(grant.value)[1]
    assert (service["status"], service["status_before"]) == ("offered", None)
    assert ledger.by_partition[1] == {service["service_id"]: "offered"}


def test_a_grant_already_on_the_topic_is_not_sent_again():
    first, pub, _, _ = processor()
    run(first.process(batch_of(GRANT_EVENTS)))
    [grant] = pub.on(WORKER_SERVICES)
    service_id = codec.decode(grant.value)[1]["service_id"]
    # a restarted worker without the state (lost), whose ledger read the topic
    again, pub2, _, _ = processor(ledger=FakeLedger({1: {service_id: "offered"}}))
    run(again.process(batch_of(GRANT_EVENTS)))
    assert pub2.on(WORKER_SERVICES) == [] and pub2.on(WORKER_FILES)


def test_a_status_change_is_sent_once_with_the_status_the_topic_had_before():
    first, pub, _, _ = processor()
    run(first.process(batch_of(GRANT_EVENTS)))
    [grant] = pub.on(WORKER_SERVICES)
    service_id = codec.decode(grant.value)[1]["service_id"]
    claim = event("claim", "service.claimed", {"service_id": service_id, "claimed_on": "2025-02-01",
                                               "region": "440305"})
    first.publisher = FakePublisher()
    run(first.process(batch_of([claim], start=len(GRANT_EVENTS))))
    [change] = first.publisher.on(WORKER_SERVICES)
    service = codec.decode(change.value)[1]
    assert (service["service_id"], service["status_before"], service["status"]) == (service_id, "offered", "claimed")
    assert service["grant"]["claim"]["event_id"] == "claim"
    # a worker that lost the state after publishing: the topic already has "claimed", nothing is sent twice
    again, pub2, _, _ = processor(ledger=FakeLedger({1: {service_id: "claimed"}}))
    run(again.process(batch_of(GRANT_EVENTS + [claim])))
    assert pub2.on(WORKER_SERVICES) == []


def test_commands_come_after_the_events_of_the_same_batch():
    proc, pub, states, markers = processor()
    batch = [command_event("erase", SSN, offset=0)] + batch_of([contribution("c1", "2025-01")], start=1)
    run(proc.process(batch))
    # the erase took the event of the same batch with it: its id is kept, the file is gone
    marker = Marker.from_bytes(markers[SSN.encode()])
    assert marker.erased_ids == {"c1"}
    files = [r for r in pub.on(WORKER_FILES)]
    assert files[0].value is not None and files[-1].value is None  # the file, then its tombstone
    assert pub.sent.index(files[-1]) > pub.sent.index(files[0])


def test_erased_events_never_come_back():
    proc, pub, states, markers = processor()
    run(proc.process(batch_of([contribution("c1", "2025-01")])))
    run(proc.process([command_event("erase", SSN)]))
    proc.publisher = FakePublisher()
    run(proc.process(batch_of([contribution("c1", "2025-01")], start=5)))  # a re-delivery
    assert proc.publisher.on(WORKER_FILES) == []
    assert load_state(SSN, states.get).records == {}


def test_events_of_a_merged_number_are_redirected():
    proc, pub, states, markers = processor()
    run(proc.process([command_event("merge", SSN, OTHER)]))
    assert [r.key for r in pub.on(OPERATOR_COMMANDS)] == [OTHER.encode()]  # merge_in sent on
    proc.publisher = FakePublisher()
    run(proc.process(batch_of([contribution("c9", "2025-03")], start=3)))
    [moved] = proc.publisher.on(REKEYED_EVENTS)
    assert moved.key == OTHER.encode() and codec.decode_event(moved.value)["ssn"] == OTHER
    assert proc.publisher.on(WORKER_FILES) == []
