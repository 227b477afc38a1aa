"""Bounded waits for the brokers' acknowledgement, without a broker: POST /events hands
over and waits within one timeout (streams.web.send_acknowledged, then a 503 with a reason),
and `workerfile emit --timeout` makes its producer give up on a record in that time
(streams.producer.delivery_within), so that closing it does not wait longer."""

from __future__ import annotations

import asyncio

import pytest

from streams import codec, emit, web
from streams.producer import delivery_within
from tests.conftest import make_event, line


def run(coro):
    return asyncio.run(coro)


async def _acknowledged(value=None):
    future = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


def test_every_delivery_acknowledged_returns():
    sent = []

    async def send(item):
        sent.append(item)
        return await _acknowledged(item)

    run(web.send_acknowledged(send, [1, 2, 3], timeout=1))
    assert sent == [1, 2, 3]


def test_deliveries_never_acknowledged_time_out_within_the_timeout():
    async def main():
        loop = asyncio.get_running_loop()

        async def send(item):
            return loop.create_future()  # a leader that never answers: never resolved

        started = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await web.send_acknowledged(send, [1, 2], timeout=0.2)
        return loop.time() - started

    assert run(main()) < 5  # bounded by the timeout, not by the producer's own (20 minutes in faust)


def test_a_hand_over_that_blocks_is_bounded_by_the_same_timeout():
    async def send(item):
        if item == 2:  # the producer's buffer for the partition is full and does not drain
            await asyncio.Event().wait()
        return await _acknowledged(item)

    with pytest.raises(asyncio.TimeoutError):
        run(web.send_acknowledged(send, [1, 2, 3], timeout=0.2))


def test_a_delivery_error_is_raised():
    class NotEnoughReplicasError(Exception):
        pass

    async def send(item):
        future = asyncio.get_running_loop().create_future()
        future.set_exception(NotEnoughReplicasError("1 in sync, 2 required"))
        return future

    with pytest.raises(NotEnoughReplicasError):
        run(web.send_acknowledged(send, [1], timeout=1))


def test_the_503_message_says_why_and_what_to_do():
    text = web.not_acknowledged(asyncio.TimeoutError(), 30)
    assert "within 30 s" in text and "min.insync.replicas" in text and "send the same batch again" in text
    text = web.not_acknowledged(RuntimeError("refused"), 30)
    assert text.startswith("the brokers refused an event: RuntimeError") and "nothing is accepted" in text


@pytest.mark.parametrize("seconds", [1, 10, 60, 120])
def test_delivery_within_is_a_valid_kafka_python_config(seconds):
    from kafka.producer.record_accumulator import RecordAccumulator

    config = delivery_within(seconds)
    assert config["delivery_timeout_ms"] == config["max_block_ms"] == seconds * 1000
    RecordAccumulator(linger_ms=5, **{k: v for k, v in config.items()
                                      if k not in ("max_block_ms", "enable_idempotence")})  # raises if not


def test_emit_gives_its_producer_the_timeout_and_says_what_was_not_acknowledged(tmp_path, monkeypatch):
    made = {}

    class Future:
        def get(self, timeout=None):
            from kafka.errors import KafkaTimeoutError
            raise KafkaTimeoutError("Timeout waiting for future")

    class Producer:
        def __init__(self, bootstrap, security=None, **config):
            made.update(config, bootstrap=bootstrap)

        def send(self, event):
            return Future()

        def flush(self, timeout=None):
            made["flush"] = timeout
            raise TimeoutError("Timeout waiting for future")

        def close(self):
            made["closed"] = True

    import streams.producer

    monkeypatch.setattr(streams.producer, "EventProducer", Producer)
    path = tmp_path / "events.jsonl"
    path.write_text(line(make_event("training.completed")) + "\n")
    summary = emit.emit_file(path, broker="127.0.0.1:1", timeout=7)
    assert made["delivery_timeout_ms"] == 7000 and made["flush"] == 7 and made["closed"]
    assert summary.exit_code == 3 and summary.confirmed == 0
    assert summary.failures[0].startswith("not every event was acknowledged within 7 s")


def test_deliveries_still_pending_at_the_timeout_are_not_cancelled():
    async def main():
        loop = asyncio.get_running_loop()
        futures = []

        async def send(item):
            futures.append(loop.create_future())
            return futures[-1]

        with pytest.raises(asyncio.TimeoutError):
            await web.send_acknowledged(send, [1, 2], timeout=0.1)
        return futures

    futures = run(main())
    assert len(futures) == 2 and not any(f.cancelled() for f in futures)


# --- the stream worker: a batch failing while brokers are down is tried again, not dropped ---

def test_a_batch_failing_while_brokers_are_down_is_tried_again_for_the_outage_window():
    from aiokafka.errors import (InvalidReplicationFactorError, KafkaTimeoutError, NodeNotReadyError,
                                 NotEnoughReplicasError, RequestTimedOutError)

    from streams.app import BATCH_BACKOFF_MAX, OUTAGE_WINDOW, retry_delay, transient

    for err in (NodeNotReadyError(), NotEnoughReplicasError(), RequestTimedOutError(), KafkaTimeoutError(),
                InvalidReplicationFactorError(), asyncio.TimeoutError(), asyncio.CancelledError(),
                codec.RegistryUnavailable("cannot fetch schema id 7: not reachable")):
        assert transient(err), err
        delays = [retry_delay(err, attempt, failing_for=attempt) for attempt in range(1, 30)]
        assert delays[:6] == [0.5, 1, 2, 4, 8, BATCH_BACKOFF_MAX] and set(delays[6:]) == {BATCH_BACKOFF_MAX}
        assert retry_delay(err, 40, failing_for=OUTAGE_WINDOW) is None


def test_any_other_failure_stops_the_worker_after_four_tries():
    from aiokafka.errors import MessageSizeTooLargeError, TopicAuthorizationFailedError

    from streams.app import BATCH_ATTEMPTS, retry_delay, transient

    for err in (MessageSizeTooLargeError(), TopicAuthorizationFailedError(), ValueError("a bug")):
        assert not transient(err)
        assert [retry_delay(err, attempt, failing_for=0) for attempt in range(1, BATCH_ATTEMPTS + 1)] == \
            [0.5, 1, 2, None]
