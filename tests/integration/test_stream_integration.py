"""The stream processors against a real Apache Kafka broker (contract sections 4-6):
end to end, crash (kill -9), scale-out, replay with a fresh application id, poison
messages. The expected files are always those of the offline fold of the same events."""

from __future__ import annotations

import collections

import pytest

from streams import codec
from streams.producer import EventProducer
from streams.reader import decoded, latest_files, read_topic
from streams.runner import wait_for
from tests.integration.conftest import expected_files, publish
from workerfile.population import generate_population

pytestmark = pytest.mark.timeout(420)

CONVERGE = 180  # seconds a test waits for the files to match


def with_legacy_keys(items, every: int = 7):
    """Some producers still key (and write) the 15-digit legacy number: re-key them."""
    out, n = [], 0
    for item in items:
        if isinstance(item, dict) and item["ssn"][6:8] == "19" and item["ssn"][17] != "X":
            n += 1
            if n % every == 0:
                legacy = item["ssn"][:6] + item["ssn"][8:17]
                item = {**item, "ssn": legacy}
        out.append(item)
    return out


def files_match(bootstrap: str, expected: dict[str, dict]):
    def check():
        got = latest_files(bootstrap, versions=False)
        return got if got == expected else None
    return check


def assert_files_equal(bootstrap: str, expected: dict[str, dict], timeout: float = CONVERGE) -> dict:
    try:
        return wait_for(files_match(bootstrap, expected), timeout, interval=2, what="worker-files == offline fold")
    except TimeoutError:
        got = latest_files(bootstrap, versions=False)
        missing = sorted(set(expected) - set(got))
        differing = [s for s in expected if s in got and got[s] != expected[s]]
        pytest.fail(f"worker-files differs from the offline fold: {len(missing)} missing, "
                    f"{len(differing)} differing, {len(set(got) - set(expected))} unexpected")


def grants_published(bootstrap: str) -> collections.Counter:
    """How many times each grant was announced (its first service event, status_before
    null; later events are status changes, and notices are not grants)."""
    return collections.Counter(s["service_id"] for s in decoded(bootstrap, "worker-services")
                               if s["service"] == "skill_upgrade_subsidy" and s["status_before"] is None)


def expected_grant_count(expected: dict[str, dict]) -> int:
    return sum(len(f["services"]["skill_upgrade_subsidy"]) for f in expected.values())


def test_end_to_end_files_equal_offline_fold(kafka, workers):
    items = with_legacy_keys(generate_population(40, seed=11, months=18))
    expected = expected_files(items)
    workers()
    counts = publish(kafka.bootstrap, items)
    assert counts["valid"] > 1000
    assert_files_equal(kafka.bootstrap, expected)
    # a legacy 15-digit key was re-keyed and kept as an alias
    assert any(f["aliases"] for f in expected.values())
    grants = grants_published(kafka.bootstrap)
    assert sum(grants.values()) == expected_grant_count(expected) > 0
    assert set(grants.values()) == {1}
    changes = decoded(kafka.bootstrap, "worker-file-changes")
    assert {c["ssn"] for c in changes} == set(expected)
    for ssn in expected:
        versions = [c["version"] for c in changes if c["ssn"] == ssn]
        assert versions == sorted(versions) and versions[0] == 1
    # every file published is tied to its change event by (ssn, version); the latest is the latest change
    published = decoded(kafka.bootstrap, "worker-files")
    assert {(f["ssn"], f["version"]) for f in published} == {(c["ssn"], c["version"]) for c in changes}
    latest = latest_files(kafka.bootstrap)
    assert all(latest[ssn]["version"] == max(c["version"] for c in changes if c["ssn"] == ssn) for ssn in expected)


def test_kill_9_mid_stream_loses_nothing_and_publishes_no_grant_twice(kafka, workers):
    items = generate_population(60, seed=12, months=24)
    expected = expected_files(items)
    first = workers(name="crashing")
    half = len(items) // 2
    publish(kafka.bootstrap, items[:half])
    # let it get going, then crash it in the middle of the stream
    wait_for(lambda: len(read_topic(kafka.bootstrap, "worker-files")) > 20, 120, what="first files")
    publish(kafka.bootstrap, items[half: half + half // 2])
    first.kill()
    publish(kafka.bootstrap, items[half + half // 2:])
    workers(name="crashing")  # same data directory: restart after the crash
    assert_files_equal(kafka.bootstrap, expected)
    grants = grants_published(kafka.bootstrap)
    assert sum(grants.values()) == expected_grant_count(expected) > 0
    assert max(grants.values()) == 1, "a grant was published twice"
    assert_every_input_accounted_for(kafka.bootstrap, items)


def assert_every_input_accounted_for(bootstrap: str, items) -> None:
    """Every input message is on a topic, and every bad one has exactly one rejection
    position (re-processing after a crash may repeat a rejection record, never lose one);
    the good ones are all in the files, which equal the offline fold."""
    rejected = decoded(bootstrap, "rejected-events")
    origins = {(r["topic"], r["partition"], r["offset"]) for r in rejected}
    inputs = sum(len(read_topic(bootstrap, t)) for t in
                 ("training-events", "employment-events", "insurance-events", "certification-events"))
    bad_inputs = sum(1 for i in items if isinstance(i, str) or not _valid(i))
    assert inputs == len(items)
    assert len(origins) == bad_inputs > 0


def _valid(item: dict) -> bool:
    from processors.intake import Rejection, validate_event
    return not isinstance(validate_event(item), Rejection)


def test_scale_out_second_worker_joins_mid_stream(kafka, workers):
    items = generate_population(60, seed=13, months=24)
    expected = expected_files(items)
    workers(name="one")
    third = len(items) // 3
    publish(kafka.bootstrap, items[:third])
    wait_for(lambda: len(read_topic(kafka.bootstrap, "worker-files")) > 10, 120, what="first files")
    workers(name="two")  # joins: the partitions are shared out again
    publish(kafka.bootstrap, items[third:])
    assert_files_equal(kafka.bootstrap, expected)
    grants = grants_published(kafka.bootstrap)
    assert max(grants.values()) == 1


def test_replay_with_fresh_application_id_rebuilds_every_file(kafka, workers):
    items = generate_population(30, seed=14, months=18)
    expected = expected_files(items)
    first = workers(app_id="workerfile-a", name="a")
    publish(kafka.bootstrap, items)
    assert_files_equal(kafka.bootstrap, expected)
    first.stop()
    before = len(read_topic(kafka.bootstrap, "worker-files"))
    workers(app_id="workerfile-b", name="b")  # no state, no offsets: reads the event topics again
    wait_for(lambda: len(read_topic(kafka.bootstrap, "worker-files")) >= before + len(expected), CONVERGE,
             interval=2, what="a second file per worker")
    assert_files_equal(kafka.bootstrap, expected)


def test_poison_messages_go_to_rejected_events_and_the_stream_continues(kafka, workers):
    items = generate_population(10, seed=15, months=12, anomalies=False)
    expected = expected_files(items)
    workers()
    good = next(i for i in items if i["type"] == "certificate.issued" or i["type"] == "employment.started")
    wrong_schema = codec.encode("Event", {**good, "event_id": "poison-schema"})[:-3]  # truncated Avro
    invalid_ssn = codec.encode("Event", {**good, "event_id": "poison-ssn", "ssn": good["ssn"][:17] + "Z"})
    with EventProducer(kafka.bootstrap) as producer:
        producer.send_raw("employment-events", b"k1", b"\x00\x01 definitely not avro")
        producer.send_raw("employment-events", b"k2", wrong_schema)
        producer.send_raw("employment-events", good["ssn"].encode(), invalid_ssn)
        producer.send_raw("employment-events", b"k3", None)
    publish(kafka.bootstrap, items)  # the good events come after the poison
    assert_files_equal(kafka.bootstrap, expected)
    rejected = wait_for(lambda: (r := decoded(kafka.bootstrap, "rejected-events")) and len(r) >= 4 and r,
                        60, what="four rejections")
    by_key = {}
    for record in read_topic(kafka.bootstrap, "rejected-events"):
        by_key[record.key] = codec.decode(record.value)[1]
    assert by_key[b"k1"]["reason"] == "malformed" and by_key[b"k1"]["topic"] == "employment-events"
    assert by_key[b"k2"]["reason"] == "malformed"
    assert by_key[good["ssn"].encode()]["reason"] == "invalid_ssn"
    assert by_key[good["ssn"].encode()]["event_id"] == "poison-ssn"
    assert by_key[b"k3"]["reason"] == "malformed"
    assert all(r["offset"] is not None and r["partition"] is not None for r in rejected)
