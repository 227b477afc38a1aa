"""The worker's state table on faust (streams.app.StateTable) with an in-memory store and
producer: what goes to the store and the changelog, and when the persisted offset (where
faust's recovery reads the changelog from) moves. Without a broker; the recovery itself
is tested on a real one (tests/integration/test_delivery_integration.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from streams.app import StateTable

CHANGELOG = "app-worker-state-changelog"


class FakeStore:
    """The byte-level methods of a faust store, one dict per partition."""

    def __init__(self):
        self.dbs: dict[int, dict[bytes, bytes]] = {}
        self.partition = 0  # the current event's partition
        self.persisted: list[tuple[str, int, int]] = []

    def db(self) -> dict[bytes, bytes]:
        return self.dbs.setdefault(self.partition, {})

    def _get(self, key):
        return self.db().get(key)

    def _contains(self, key):
        return key in self.db()

    def _set(self, key, value):
        self.db()[key] = value

    def _del(self, key):
        self.db().pop(key, None)

    def set_persisted_offset(self, tp, offset):
        self.persisted.append((tp.topic, tp.partition, offset))


@dataclass
class Table:
    data: FakeStore


@dataclass
class Metadata:
    offset: int


class FakeProducer:
    """faust's Producer.send: the delivery future, resolved when `deliver` says so."""

    def __init__(self):
        self.sent: list[tuple[str, bytes, bytes | None, int, asyncio.Future]] = []
        self.offsets: dict[int, int] = {}

    async def send(self, topic, key, value, partition, timestamp, headers):
        fut = asyncio.get_running_loop().create_future()
        self.sent.append((topic, key, value, partition, fut))
        return fut

    def deliver(self, fail: bool = False) -> None:
        for topic, key, value, partition, fut in self.sent:
            if fut.done():
                continue
            if fail:
                fut.set_exception(RuntimeError("NotEnoughReplicas"))
            else:
                offset = self.offsets.get(partition, -1) + 1
                self.offsets[partition] = offset
                fut.set_result(Metadata(offset))


def table() -> tuple[StateTable, FakeStore, FakeProducer]:
    store, producer = FakeStore(), FakeProducer()
    return StateTable(Table(store), producer, CHANGELOG), store, producer


async def write(states: StateTable, producer: FakeProducer, partition: int, writes, fail: bool = False):
    """What the BatchProcessor does with one worker's writes: send, gather, apply."""
    pending = await states.send(partition, writes)
    producer.deliver(fail=fail)
    await asyncio.gather(*pending.futures)
    states.apply(pending)
    states.persist()
    return pending


def test_writes_go_to_the_changelog_in_the_key_partition_and_to_the_store_once_delivered():
    async def scenario():
        states, store, producer = table()
        store.partition = 2
        pending = await states.send(2, [(b"s|w", b"intent"), (b"s|b", b"bucket"), (b"s", b"head")])
        assert store.dbs.get(2, {}) == {}  # not in the store before the changelog has it
        assert [(t, k, v, p) for t, k, v, p, _ in producer.sent] == [
            (CHANGELOG, b"s|w", b"intent", 2), (CHANGELOG, b"s|b", b"bucket", 2), (CHANGELOG, b"s", b"head", 2)]
        producer.deliver()
        await asyncio.gather(*pending.futures)
        states.apply(pending)
        assert store.dbs[2] == {b"s|w": b"intent", b"s|b": b"bucket", b"s": b"head"}
        assert states.get(b"s") == b"head" and states.get(b"missing") is None and b"s|b" in states

    asyncio.run(scenario())


def test_a_deletion_is_a_tombstone_only_for_a_key_the_store_has():
    async def scenario():
        states, store, producer = table()
        await write(states, producer, 0, [(b"s|b", b"bucket")])
        await write(states, producer, 0, [(b"s|b", None), (b"s|never", None)])
        assert store.dbs[0] == {}
        assert [(k, v) for _, k, v, _, _ in producer.sent] == [(b"s|b", b"bucket"), (b"s|b", None)]

    asyncio.run(scenario())


def test_the_persisted_offset_moves_once_per_partition_after_the_batch_is_in_the_store():
    async def scenario():
        states, store, producer = table()
        a = await states.send(1, [(b"a|w", b"1"), (b"a", b"2")])
        b = await states.send(1, [(b"b|w", b"3"), (b"b", b"4")])
        store.partition = 3
        c = await states.send(3, [(b"c", b"5")])
        producer.deliver()
        await asyncio.gather(*a.futures, *b.futures, *c.futures)
        store.partition = 1
        states.apply(b)  # (in any order)
        states.apply(a)
        store.partition = 3
        states.apply(c)
        assert store.persisted == []  # not before every write of the batch is in the store
        states.persist()
        # one entry per partition: its last record of the batch, each partition its own offsets
        assert sorted(store.persisted) == [(CHANGELOG, 1, 3), (CHANGELOG, 3, 0)]
        d = await write(states, producer, 1, [(b"d", b"6")])
        assert d.futures and store.persisted[-1] == (CHANGELOG, 1, 4)  # and forward from there

    asyncio.run(scenario())


def test_a_rebalance_between_send_and_apply_writes_nothing():
    async def scenario():
        states, store, producer = table()
        pending = await states.send(0, [(b"b", b"2")])
        states.forget()  # a rebalance: the partition may be another worker's (its changelog has the record)
        producer.deliver()
        await asyncio.gather(*pending.futures)
        states.apply(pending)
        states.persist()
        assert store.persisted == [] and store.dbs.get(0, {}) == {}
        await write(states, producer, 0, [(b"c", b"3")])  # after the rebalance, as before
        assert store.persisted == [(CHANGELOG, 0, 1)] and store.dbs[0] == {b"c": b"3"}

    asyncio.run(scenario())
