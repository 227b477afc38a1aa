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


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_writes_go_to_the_store_and_to_the_changelog_in_the_key_partition():
    async def scenario():
        states, store, producer = table()
        store.partition = 2
        await states.write(2, [(b"s|w", b"intent"), (b"s|b", b"bucket"), (b"s", b"head")])
        assert store.dbs[2] == {b"s|w": b"intent", b"s|b": b"bucket", b"s": b"head"}
        assert states.get(b"s") == b"head" and states.get(b"missing") is None and b"s|b" in states
        assert [(t, k, v, p) for t, k, v, p, _ in producer.sent] == [
            (CHANGELOG, b"s|w", b"intent", 2), (CHANGELOG, b"s|b", b"bucket", 2), (CHANGELOG, b"s", b"head", 2)]

    asyncio.run(scenario())


def test_a_deletion_is_a_tombstone_only_for_a_key_the_store_has():
    async def scenario():
        states, store, producer = table()
        await states.write(0, [(b"s|b", b"bucket")])
        await states.write(0, [(b"s|b", None), (b"s|never", None)])
        assert store.dbs[0] == {}
        assert [(k, v) for _, k, v, _, _ in producer.sent] == [(b"s|b", b"bucket"), (b"s|b", None)]

    asyncio.run(scenario())


def test_the_persisted_offset_moves_once_a_partition_s_last_record_is_delivered():
    async def scenario():
        states, store, producer = table()
        await states.write(1, [(b"a|w", b"1"), (b"a", b"2")])
        await states.write(1, [(b"b|w", b"3"), (b"b", b"4")])
        store.partition = 3
        await states.write(3, [(b"c", b"5")])
        await settle()
        assert store.persisted == []  # nothing delivered yet: nothing persisted
        producer.deliver()
        await settle()
        # one entry per worker's last record, never backwards, each partition its own offsets
        assert store.persisted == [(CHANGELOG, 1, 1), (CHANGELOG, 1, 3), (CHANGELOG, 3, 0)]

    asyncio.run(scenario())


def test_a_failed_delivery_or_a_rebalance_persists_nothing():
    async def scenario():
        states, store, producer = table()
        await states.write(0, [(b"a", b"1")])
        producer.deliver(fail=True)
        await settle()
        await states.write(0, [(b"b", b"2")])
        states.forget()  # a rebalance: the partition's database may be closed
        producer.deliver()
        await settle()
        assert store.persisted == []
        await states.write(0, [(b"c", b"3")])  # after the rebalance, as before
        producer.deliver()
        await settle()
        assert store.persisted == [(CHANGELOG, 0, 1)]

    asyncio.run(scenario())
