"""The statistics store (sinks.stats) against a real SQLite file and a real PostgreSQL
server: the totals are always a recount of the latest files, a re-delivered or older
record changes nothing (offsets and versions), a tombstone is remembered, and a failed
transaction leaves totals, contributions and offsets as they were."""

from __future__ import annotations

import orjson
import pytest

from processors import stats as st
from processors.batch import BatchFold
from processors.derive import derive_file
from processors.intake import Rejection, parse_json_line
from sinks.base import FileChange
from sinks.stats import ADD_TOTAL, StatsStore, open_stats_store
from workerfile.population import generate_population


@pytest.fixture(scope="module")
def versions() -> list[FileChange]:
    """Successive files of 15 workers as the stream worker publishes them (one new file per
    accepted event, corrections and retractions included), at increasing offsets."""
    lines = [e.encode() if isinstance(e, str) else orjson.dumps(e) for e in generate_population(15, seed=9)]
    batch, out = BatchFold(), []
    for number, line in enumerate(lines, 1):
        event = parse_json_line(line)
        if batch.take_line(line, number) == "accepted" and not isinstance(event, Rejection):
            out.append(FileChange(event.ssn, len(out), derive_file(batch.states[event.ssn])))
    return out


def latest(changes: list[FileChange]) -> list[dict]:
    files: dict[str, dict | None] = {}
    for c in changes:
        files[c.ssn] = c.file
    return [f for f in files.values() if f is not None]


def apply_in_batches(store: StatsStore, changes: list[FileChange], size: int = 97, group: str = "g") -> None:
    for i in range(0, len(changes), size):
        chunk = changes[i:i + size]
        store.apply(chunk, {0: chunk[-1].version + 1}, group=group)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        with open_stats_store("sqlite", str(tmp_path / "stats.sqlite3")) as s:
            yield s
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        with open_stats_store("postgres", dsn) as s:
            yield s


def test_totals_are_a_recount_of_the_latest_files(store, versions):
    apply_in_batches(store, versions)
    files = latest(versions)
    assert store.totals() == st.recount(files)
    assert store.offsets("g") == {0: len(versions)}
    assert {ssn: c for ssn, (_, c) in store.contributions().items()} == {f["ssn"]: st.contribution(f) for f in files}
    body = store.stats_json(group="g")
    meta = body.pop("meta")
    assert body == st.figures(st.recount(files))
    assert meta["offsets"] == {"0": len(versions)} and meta["updated_at"] and meta["min_cell"] == 10


def test_redelivery_changes_nothing(store, versions):
    apply_in_batches(store, versions)
    totals, offsets = store.totals(), store.offsets("g")
    result = store.apply(versions[-50:], {0: len(versions)}, group="g")  # the last batch again
    assert (result.written, result.deleted) == (0, 0) and result.ignored == 50
    apply_in_batches(store, versions, size=13)  # everything again, in other batches
    assert store.totals() == totals and store.offsets("g") == offsets


def test_an_older_record_after_a_newer_one_is_ignored(store, versions):
    ssn = versions[-1].ssn
    mine = [c for c in versions if c.ssn == ssn]
    store.apply([mine[-1]])
    assert store.apply([mine[0]]).ignored == 1
    assert store.totals() == st.recount([mine[-1].file])


def test_a_tombstone_is_remembered(store, versions):
    apply_in_batches(store, versions)
    ssn = versions[-1].ssn
    mine = [c for c in versions if c.ssn == ssn]
    tomb = len(versions) + 10
    assert store.apply([FileChange(ssn, tomb, None)], {0: tomb + 1}, group="g").deleted == 1
    others = [f for f in latest(versions) if f["ssn"] != ssn]
    assert store.totals() == st.recount(others)
    assert store.apply([mine[-1]]).ignored == 1  # an older file does not bring the worker back
    assert store.totals() == st.recount(others)
    assert store.apply([FileChange(ssn, tomb + 5, mine[-1].file)]).written == 1  # a newer one does
    assert store.totals() == st.recount(latest(versions))
    assert store.apply([FileChange("11010519491231002X", 3, None)]).ignored == 1  # absent worker: nothing to delete


def test_newest_record_of_a_batch_wins(store, versions):
    result = store.apply(list(reversed(versions)), {0: len(versions)})
    assert result.written == len(latest(versions))
    assert store.totals() == st.recount(latest(versions))


def test_a_failed_transaction_changes_nothing(store, versions, monkeypatch):
    half = len(versions) // 2
    apply_in_batches(store, versions[:half])
    before = (store.totals(), store.offsets("g"), store.contributions())
    real = store._executemany

    def failing(sql, params):
        if sql == ADD_TOTAL:
            real(sql, params)
            raise RuntimeError("the database went away")
        return real(sql, params)

    monkeypatch.setattr(store, "_executemany", failing)
    with pytest.raises(RuntimeError):
        store.apply(versions[half:], {0: len(versions)}, group="g")
    monkeypatch.undo()
    assert (store.totals(), store.offsets("g"), store.contributions()) == before
    apply_in_batches(store, versions[half:])  # resumes where the last commit left off
    assert store.totals() == st.recount(latest(versions))


def test_offsets_never_move_back_and_groups_are_separate(store, versions):
    store.apply(versions[:5], {0: 5, 1: 7}, group="a")
    store.apply([], {0: 2}, group="a")
    store.apply(versions[:5], {0: 1}, group="b")
    assert store.offsets("a") == {0: 5, 1: 7} and store.offsets("b") == {0: 1}


def test_shares_a_database_with_the_file_sink(tmp_path, versions):
    from sinks.base import open_store

    path = str(tmp_path / "both.sqlite3")
    with open_store("sqlite", path) as sink, open_stats_store("sqlite", path) as stats:
        sink.apply(versions, {0: len(versions)})
        stats.apply(versions, {0: len(versions)})
        assert sink.offsets() == stats.offsets() == {0: len(versions)}  # each under its own group
        assert stats.totals() == st.recount(r["document"] for r in sink.rows())


def test_a_store_counted_with_other_definitions_is_refused_until_rebuilt(store, versions):
    from sinks.stats import StatsStoreOutdated

    assert store.definitions == st.DEFINITIONS
    store.apply(versions[:20], {0: 20}, group="g")
    store._begin()  # as a database of the previous version was left: no stats_meta row, contributions stored
    store._execute("DELETE FROM stats_meta")
    store._commit()
    store.ensure_schema()
    assert store.definitions == 1
    before = (store.totals(), store.offsets("g"))
    with pytest.raises(StatsStoreOutdated, match="rebuild"):
        store.apply(versions[20:], {0: len(versions)}, group="g")
    assert (store.totals(), store.offsets("g")) == before  # nothing added to the old contributions
    meta = store.stats_json(group="g")["meta"]
    assert (meta["definitions"], meta["definitions_current"]) == (1, st.DEFINITIONS)
    store._begin()  # emptied: a fresh database counts with this version
    for table in ("stats_meta", "stats_workers", "stats_totals"):
        store._execute(f"DELETE FROM {table}")
    store._commit()
    store.ensure_schema()
    assert store.definitions == st.DEFINITIONS
    apply_in_batches(store, versions)
    assert store.totals() == st.recount(latest(versions))
