"""The worker's log: a retriable group-coordinator error at start is INFO, not ERROR."""

from __future__ import annotations

import logging

from aiokafka import errors

from streams.app import TransientCoordinatorErrors, batch_span


def record(err) -> logging.LogRecord:
    return logging.LogRecord("aiokafka.consumer.group_coordinator", logging.ERROR, __file__, 1,
                             "Group Coordinator Request failed: %s", (err,), None)


def test_a_retriable_coordinator_error_is_info():
    rec = record(errors.CoordinatorNotAvailableError())
    assert TransientCoordinatorErrors().filter(rec) and rec.levelno == logging.INFO


def test_any_other_coordinator_error_stays_an_error():
    rec = record(errors.GroupAuthorizationFailedError())
    assert TransientCoordinatorErrors().filter(rec) and rec.levelno == logging.ERROR


def test_batch_span_names_topic_partition_and_offsets():
    class M:
        def __init__(self, topic, partition, offset):
            self.topic, self.partition, self.offset = topic, partition, offset

    class E:
        def __init__(self, *a):
            self.message = M(*a)

    assert batch_span([E("t", 1, 5), E("t", 1, 3), E("u", 0, 9)]) == "t/1 3-5, u/0 9-9"
