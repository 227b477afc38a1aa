#!/usr/bin/env python3
"""Smoke test for a running broker, with aiokafka (the client faust uses).

Creates a throw-away topic, produces and consumes a message, commits a
transaction (what faust's exactly_once processing needs), aborts another and
checks that a read_committed consumer sees only the committed records, then
deletes the topic.

    python3 deploy/kafka/smoke.py 127.0.0.1:9092
"""
import asyncio
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def consume_all(bootstrap, topic, expected, isolation):
    """Read `topic` from the beginning until `expected` records arrived (10 s max)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"smoke-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        isolation_level=isolation,
    )
    await consumer.start()
    got = []
    try:
        deadline = time.monotonic() + 10
        while len(got) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                got.extend(r.value for r in records)
        await consumer.commit()  # exercises the group coordinator too
    finally:
        await consumer.stop()
    return got


async def main(bootstrap):
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])

        # 1. Plain produce / consume.
        t0 = time.monotonic()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"plain")
        finally:
            await producer.stop()
        got = await consume_all(bootstrap, topic, 1, "read_uncommitted")
        assert got == [b"plain"], got
        print(f"produce/consume ok ({time.monotonic() - t0:.2f}s)")

        # 2. Transactions: one committed, one aborted.
        t0 = time.monotonic()
        tx = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            transactional_id=f"smoke-tx-{uuid.uuid4().hex[:8]}",
            enable_idempotence=True,
        )
        await tx.start()  # InitProducerId: creates __transaction_state on first use
        try:
            async with tx.transaction():
                await tx.send(topic, b"committed-1")
                await tx.send(topic, b"committed-2")
            await tx.begin_transaction()
            await tx.send(topic, b"aborted")
            await tx.abort_transaction()
        finally:
            await tx.stop()
        got = await consume_all(bootstrap, topic, 3, "read_committed")
        assert got == [b"plain", b"committed-1", b"committed-2"], got
        print(f"transactional commit/abort ok, read_committed sees {got} "
              f"({time.monotonic() - t0:.2f}s)")
    finally:
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1]))
