"""The access log as a view of `worker-access-log` (streams/access_log.py), without a
broker: the partition of a key, what a partition's view keeps, and undecodable records.
On a real broker: tests/integration/test_first_worker_integration.py."""

from __future__ import annotations

import logging

from aiokafka.partitioner import DefaultPartitioner
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from streams import codec
from streams.access_log import PartitionView, decode_entries, partition_of
from tests.conftest import SSN_A, SSN_B, SSN_C


def entry(ssn: str, caller: str) -> dict:
    return {"ssn": ssn, "at": "2026-05-01T09:00:00.000+08:00", "caller": caller, "audience": "operator",
            "org": None, "action": "read_file", "purpose": None, "detail": None}


def test_the_partition_of_a_key_is_the_producers():
    for ssn in (SSN_A, SSN_B, SSN_C):
        key = ssn.encode()
        for n in (1, 4, 12):
            expected = DefaultPartitioner()(key, list(range(n)), list(range(n)))  # aiokafka: the API, faust
            assert partition_of(key, n) == expected == (kafka_python_murmur2(key) & 0x7FFFFFFF) % n


def test_a_partition_view_keeps_each_record_once_in_offset_order():
    view = PartitionView()
    view.add(0, b"a", b"1")
    view.add(1, b"b", b"2")
    view.add(3, b"a", b"3")  # offset 2: a gap (a transaction marker, a compacted record)
    view.add(3, b"a", b"3")  # a fetch overlapping the last one
    view.add(4, None, b"x")
    assert view.by_key == {b"a": [b"1", b"3"], b"b": [b"2"]}
    assert (view.position, view.skipped) == (5, 1)


def test_an_undecodable_record_is_left_out_and_said_masked(caplog):
    good = [codec.encode("AccessLogEntry", entry(SSN_A, "ops")), codec.encode("AccessLogEntry", entry(SSN_A, "si"))]
    with caplog.at_level(logging.WARNING, logger="workerfile.access_log"):
        got = decode_entries([good[0], b"not avro " + SSN_A.encode(), good[1]], "worker-access-log/1")
    assert [e["caller"] for e in got] == ["ops", "si"]
    [warning] = caplog.records
    assert "worker-access-log/1" in warning.getMessage() and SSN_A not in warning.getMessage()
