"""From `worker-files` records to table changes, without a broker: decoding, the version
rule (the offset), the derived columns, and what happens to a record that is not a file."""

from __future__ import annotations

from collections import namedtuple

import pytest
from kafka import TopicPartition

from sinks.base import FileChange, indexed_columns, latest_per_worker
from sinks.runner import Sink, SinkError, file_change_of
from streams import codec

Record = namedtuple("Record", "topic partition offset key value")


def rec(offset, key, value, partition=0):
    return Record("worker-files", partition, offset, key, value)


def test_a_file_record_is_an_upsert_at_its_offset(population_files):
    file = population_files[0]
    change = file_change_of(rec(41, file["ssn"].encode(), codec.encode("WorkerFile", file)))
    assert change == FileChange(file["ssn"], 41, file)


def test_a_tombstone_is_a_delete_at_its_offset(population_files):
    ssn = population_files[0]["ssn"]
    assert file_change_of(rec(7, ssn.encode(), None)) == FileChange(ssn, 7, None)


@pytest.mark.parametrize("key, value, message", [
    (None, b"x", "without a key"),
    (b"\xff\xfe", None, "not UTF-8"),
    (b"11010519491231002X", b'{"json": 1}', "undecodable value"),
    (b"11010519491231002X", b"\xc3\x01" + b"\0" * 8, "undecodable value"),
])
def test_records_that_are_not_files_stop_the_sink(key, value, message):
    with pytest.raises(SinkError, match=message) as err:
        file_change_of(rec(3, key, value, partition=2))
    assert "partition 2 offset 3" in str(err.value)
    assert "11010519491231002X" not in str(err.value)  # the SSN is masked


def test_a_record_of_another_type_or_another_worker_stops_the_sink(population_files):
    a, b = population_files[0], population_files[1]
    with pytest.raises(SinkError, match="under key"):
        file_change_of(rec(0, a["ssn"].encode(), codec.encode("WorkerFile", b)))
    change = {"ssn": a["ssn"], "version": 1, "changed_sections": ["card"], "event_ids": ["e1"]}
    with pytest.raises(SinkError, match="WorkerFileChange instead of a WorkerFile"):
        file_change_of(rec(0, a["ssn"].encode(), codec.encode("WorkerFileChange", change)))


def test_indexed_columns_of_files():
    file = {"highest_skill_level": "senior", "current_employers": ["91B", "91C"],
            "card": {"card_no": "C1", "issued_on": "2020-01-01", "region": "440305"},
            "employments": [{"employer": "91B", "region": "110105", "start_date": "2021-01-01", "end_date": None}]}
    assert indexed_columns(file) == ("senior", "91B", "440305")
    no_card = {**file, "card": None, "employments": [
        {"employer": "91C", "region": "310115", "start_date": "2022-05-01", "end_date": None},
        {"employer": "91B", "region": "110105", "start_date": "2022-05-01", "end_date": None},
        {"employer": "91A", "region": "650102", "start_date": "2023-01-01", "end_date": "2023-02-01"}]}
    assert indexed_columns(no_card) == ("senior", "91B", "310115")  # same start: the greater employer
    assert indexed_columns({"highest_skill_level": None, "current_employers": [], "card": None,
                            "employments": []}) == (None, None, None)


def test_latest_per_worker_keeps_the_greatest_version():
    changes = [FileChange("A", 3, {"v": 3}), FileChange("B", 1, None), FileChange("A", 9, None),
               FileChange("A", 5, {"v": 5}), FileChange("B", 2, {"v": 2})]
    assert sorted(latest_per_worker(changes), key=lambda c: c.ssn) == [FileChange("A", 9, None),
                                                                     FileChange("B", 2, {"v": 2})]


def test_a_bad_record_commits_what_came_before_it_and_stops(sqlite_store, population_files):
    a, b, c = population_files[:3]
    sink = Sink(sqlite_store, "127.0.0.1:1", group="g")
    polled = {
        TopicPartition("worker-files", 0): [rec(0, a["ssn"].encode(), codec.encode("WorkerFile", a)),
                                            rec(1, b"k", b"garbage"),
                                            rec(2, c["ssn"].encode(), codec.encode("WorkerFile", c))],
        TopicPartition("worker-files", 1): [rec(5, b["ssn"].encode(), codec.encode("WorkerFile", b), partition=1)],
    }
    with pytest.raises(SinkError, match="partition 0 offset 1"):
        sink._apply(polled)
    assert {r["ssn"] for r in sqlite_store.rows()} == {a["ssn"], b["ssn"]}
    assert sqlite_store.offsets("g") == {0: 1, 1: 6}  # the bad record is read again next time
