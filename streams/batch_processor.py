"""What the stream worker does with one batch of Kafka messages, with its collaborators
made explicit so that its ordering rules are tested without a broker
(tests/streams/test_batch_processor.py uses in-memory fakes of each):

- `states`: the state table, `get(key) -> bytes | None`; `await states.send(partition,
  writes)` hands one worker's `streams.handler.state_writes` (in order, a None value
  deletes the key) to the table's changelog without waiting and returns a `PendingWrite`
  with their delivery futures; `states.apply(pending)` writes them to the local store
  once delivered, and `states.persist()` records, after a batch's applies, how far the
  store has its changelog (streams.app.StateTable);
- `markers`: the table of merged and erased numbers (`get`, `[key] = value`);
- `publisher`: `await publisher.send(record)` hands a record to the producer and returns
  its *delivery future* without waiting for the delivery;
- `ledger`: `await ledger.published(partition)`, {service_id: the status of its last
  event} on `worker-services` in that partition (streams.app.ServiceLedger);
- `place(event)`: makes `event` the current event, so that faust's table reads and
  writes use its partition (no-op in the tests).

The rules, per batch:
1. messages are taken in order; a worker's events of the batch are folded together (one
   `fold_batch` per worker); events of a number merged away are sent on to the number it
   was merged into; operator commands come after the events of the same batch;
2. every record is handed to the producer without waiting for it; a service event only
   when its status differs from the last one of its service_id, in the ledger or sent in
   this batch (so no change is published twice, and the last event of a service_id on
   the topic always has its current status);
3. all delivery futures are gathered once; only when every one is delivered are the
   ledger, the state table and the markers table written. A failed delivery raises out of
   `process` with nothing written (the caller processes the batch again, or stops);
4. the states' changelog records are sent then (so no state is on its changelog before
   the outputs it caused are delivered: a worker recovering it would take the events for
   duplicates and never publish them), their futures gathered once, and only then are
   the states written to the local store: a failed changelog delivery raises out of
   `process` with the store as it was, never ahead of its changelog.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol

from processors.fold import WorkerState
from schemas.identity import mask_ssn
from processors.organisations import Organisations
from processors.services import DEFAULT_RULES, SubsidyRules
from streams import codec
from streams.handler import (
    Audiences, Folded, Marker, Origin, Output, apply_command, fold_batch, intake_message, load_state, redirected,
    service_record, state_writes,
)
from streams.topics import OPERATOR_COMMANDS

log = logging.getLogger("workerfile.stream")


@dataclass(frozen=True)
class PendingWrite:
    """One worker's state writes handed to the changelog, and their delivery futures."""

    partition: int
    writes: list[tuple[bytes, bytes | None]]
    futures: list
    generation: int = 0  # the state table's: a rebalance since makes the write apply nothing


class StateTable(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    async def send(self, partition: int, writes: list[tuple[bytes, bytes | None]]) -> PendingWrite: ...

    def apply(self, pending: PendingWrite) -> None: ...

    def persist(self) -> None: ...


class Table(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def __contains__(self, key: bytes) -> bool: ...

    def __setitem__(self, key: bytes, value: bytes) -> None: ...

    def __delitem__(self, key: bytes) -> None: ...


class Publisher(Protocol):
    async def send(self, record: Output) -> Awaitable[Any]: ...


class Ledger(Protocol):
    async def published(self, partition: int) -> dict[str, str]: ...


class BatchProcessor:
    """Processes batches of faust events (anything with `.message` carrying topic,
    partition, offset, key, value). Keeps a cache of decoded states exactly as last
    written to the table; `forget()` clears it (after a failure, on a rebalance)."""

    def __init__(self, states: StateTable, markers: Table, publisher: Publisher, ledger: Ledger,
                 audiences: Audiences | None = None, organisations: Organisations | None = None,
                 place: Callable[[Any], None] = lambda event: None, cache_size: int = 20_000,
                 rules: SubsidyRules = DEFAULT_RULES):
        self.states = states
        self.markers = markers
        self.publisher = publisher
        self.ledger = ledger
        self.audiences = audiences
        self.organisations = organisations
        self.place = place
        self.cache_size = cache_size
        self.rules = rules
        self.cache: OrderedDict[str, WorkerState] = OrderedDict()

    def forget(self) -> None:
        self.cache.clear()

    def state_of(self, ssn: str) -> WorkerState:
        state = self.cache.pop(ssn, None)
        return state if state is not None else load_state(ssn, self.states.get, self.organisations is not None)

    def marker_of(self, ssn: str) -> Marker | None:
        return Marker.from_bytes(self.markers.get(ssn.encode()))

    async def process(self, batch) -> None:
        try:
            await self._process(batch)
        except BaseException:
            self.forget()  # states folded in memory may be ahead of the table now
            raise

    async def _process(self, batch) -> None:
        pending: list[Awaitable[Any]] = []
        sending: dict[tuple[int, str], str] = {}  # (partition, service id) -> status sent in this batch
        send = self.publisher.send

        async def publish(folded: Folded, partition: int, ssn: str) -> None:
            for record in folded.records:
                pending.append(await send(record))
            if folded.grants:
                published = await self.ledger.published(partition)
                for service_id, status, service in folded.grants:
                    last = sending.get((partition, service_id), published.get(service_id))
                    if last == status:
                        log.info("service %s of %s already published as %s; not again", service_id, mask_ssn(ssn),
                                 status)
                        continue
                    sending[(partition, service_id)] = status
                    pending.append(await send(service_record(service, last)))

        by_worker: dict[str, list] = defaultdict(list)
        anchor: dict[str, Any] = {}  # one event of each worker: its partition
        commands = []
        for ev in batch:
            msg = ev.message
            if msg.topic == OPERATOR_COMMANDS:
                commands.append(ev)
                continue
            origin = Origin(msg.topic, msg.partition, msg.offset)
            intake = intake_message(msg.key, msg.value, origin, organisations=self.organisations)
            for record in intake.records:
                pending.append(await send(record))
            if intake.event is not None:
                by_worker[intake.event.ssn].append((intake.event, msg.key, msg.value, origin))
                anchor[intake.event.ssn] = ev
        new_states: dict[str, WorkerState] = {}
        new_markers: dict[str, Marker | None] = {}
        for ssn, events in by_worker.items():
            self.place(anchor[ssn])
            marker = self.marker_of(ssn)
            if marker and marker.merged_into:  # merged by an operator: its events go to the other number
                for event, *_ in events:
                    pending.append(await send(redirected(event, marker.merged_into)))
                continue
            folded = fold_batch(self.state_of(ssn), events, self.audiences,
                                marker.erased_ids if marker else frozenset(), self.rules)
            await publish(folded, anchor[ssn].message.partition, ssn)
            new_states[ssn] = folded.state
        for ev in commands:  # after the events of the same batch
            command = decode_command(ev)
            if command is None:
                continue
            ssn = command["ssn"]
            self.place(ev)
            anchor[ssn] = ev
            state = new_states[ssn] if ssn in new_states else self.state_of(ssn)
            marker = new_markers[ssn] if ssn in new_markers else self.marker_of(ssn)
            folded, new_markers[ssn] = apply_command(state, marker, command, self.audiences, self.rules)
            log.warning("operator %s: %s of %s by %s", command["command_id"], command["action"], mask_ssn(ssn),
                        command["operator"])
            await publish(folded, ev.message.partition, ssn)
            new_states[ssn] = folded.state
        if pending:
            await asyncio.gather(*pending)  # raises if any delivery failed: nothing below happens
        for (partition, service_id), status in sending.items():
            (await self.ledger.published(partition))[service_id] = status
        written = []
        for ssn, state in new_states.items():
            self.place(anchor[ssn])
            written.append((ssn, await self.states.send(anchor[ssn].message.partition, state_writes(state))))
        changelog = [fut for _, write in written for fut in write.futures]
        if changelog:
            await asyncio.gather(*changelog)  # raises if any failed: the store is not written
        for ssn, write in written:
            self.place(anchor[ssn])
            self.states.apply(write)
            state = new_states[ssn]
            self.cache[ssn] = state
            self.cache.move_to_end(ssn)
            if len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        self.states.persist()
        for ssn, marker in new_markers.items():
            self.place(anchor[ssn])
            self.markers[ssn.encode()] = marker.to_bytes()


def decode_command(ev) -> dict | None:
    """An operator command, or None (logged) if the message is not one of this worker's."""
    msg = ev.message
    try:
        name, command = codec.decode(msg.value)
    except Exception as err:  # noqa: BLE001 - a bad command is logged, never raised
        log.error("not an operator command at %s/%d/%d: %s", msg.topic, msg.partition, msg.offset, err)
        return None
    if name != "OperatorCommand" or msg.key != command["ssn"].encode():
        log.error("ignored %s at %s/%d/%d: not an operator command keyed by its number", name,
                  msg.topic, msg.partition, msg.offset)
        return None
    return command
