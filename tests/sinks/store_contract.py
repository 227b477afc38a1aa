"""What every FileStore must do, whatever the database: test_sqlite_sink.py and
test_postgres_sink.py run these against a real SQLite file and a real PostgreSQL server
(a subclass gives the `store` fixture)."""

from __future__ import annotations

import copy
import random

import pytest

from sinks.base import FileChange


def _with(file: dict, **changes) -> dict:
    out = copy.deepcopy(file)
    out.update(changes)
    return out


def table(store) -> dict[str, tuple[int, dict]]:
    return {row["ssn"]: (row["version"], row["document"]) for row in store.rows()}


class StoreContract:
    """Subclasses provide the `store` fixture."""

    # --- writing and reading back ----------------------------------------------------

    def test_upsert_reads_back_the_file(self, store, population_files):
        file = population_files[0]
        assert store.get_file(file["ssn"]) is None
        assert store.upsert(file["ssn"], 7, file) is True
        assert store.get_file(file["ssn"]) == file
        row = store.get_row(file["ssn"])
        assert row["version"] == 7 and row["ssn"] == file["ssn"] and row["updated_at"] is not None
        assert store.count() == 1

    def test_every_population_file_round_trips(self, store, population_files):
        result = store.apply([FileChange(f["ssn"], i, f) for i, f in enumerate(population_files)])
        assert (result.written, result.deleted, result.ignored) == (len(population_files), 0, 0)
        assert [r["document"] for r in store.rows()] == population_files
        for file in population_files:
            assert store.get_file(file["ssn"]) == file

    def test_upsert_is_idempotent(self, store, population_files):
        file = population_files[1]
        store.apply([FileChange(file["ssn"], 3, file)], {0: 4})
        before = store.rows()
        result = store.apply([FileChange(file["ssn"], 3, file)], {0: 4})
        assert (result.written, result.deleted, result.ignored) == (0, 0, 1)
        assert store.rows() == before  # updated_at included: the row was not touched
        assert store.upsert(file["ssn"], 3, _with(file, applied_events=999)) is False  # same version, other content
        assert store.get_file(file["ssn"]) == file

    def test_newer_version_replaces(self, store, population_files):
        file = population_files[2]
        newer = _with(file, applied_events=file["applied_events"] + 1, training_hours=1234)
        store.upsert(file["ssn"], 5, file)
        assert store.upsert(file["ssn"], 9, newer) is True
        assert store.get_row(file["ssn"])["version"] == 9
        assert store.get_file(file["ssn"]) == newer

    def test_older_version_never_overwrites_newer(self, store, population_files):
        file = population_files[3]
        older = _with(file, applied_events=1, training_hours=0)
        store.upsert(file["ssn"], 20, file)
        assert store.upsert(file["ssn"], 19, older) is False
        assert store.upsert(file["ssn"], 0, older) is False
        assert store.get_row(file["ssn"])["version"] == 20
        assert store.get_file(file["ssn"]) == file

    def test_in_one_batch_the_greatest_version_wins_whatever_the_order(self, store, population_files):
        file = population_files[4]
        older = _with(file, training_hours=1)
        store.apply([FileChange(file["ssn"], 11, file), FileChange(file["ssn"], 10, older)])
        assert store.get_file(file["ssn"]) == file
        other = population_files[5]
        store.apply([FileChange(other["ssn"], 30, None), FileChange(other["ssn"], 31, other),
                     FileChange(other["ssn"], 29, _with(other, training_hours=2))])
        assert store.get_file(other["ssn"]) == other

    # --- tombstones ----------------------------------------------------------------

    def test_tombstone_deletes(self, store, population_files):
        file, kept = population_files[6], population_files[7]
        store.apply([FileChange(file["ssn"], 4, file), FileChange(kept["ssn"], 5, kept)])
        assert store.delete(file["ssn"], 8) is True
        assert store.get_file(file["ssn"]) is None and store.get_row(file["ssn"]) is None
        assert store.get_file(kept["ssn"]) == kept
        assert store.delete(file["ssn"], 8) is False  # idempotent
        assert store.count() == 1

    def test_stale_tombstone_does_not_delete_a_newer_row(self, store, population_files):
        file = population_files[8]
        store.upsert(file["ssn"], 12, file)
        assert store.delete(file["ssn"], 11) is False
        assert store.delete(file["ssn"], 3) is False
        assert store.get_file(file["ssn"]) == file
        assert store.deletions() == {}

    def test_older_file_does_not_bring_a_deleted_row_back(self, store, population_files):
        file = population_files[9]
        store.upsert(file["ssn"], 5, file)
        store.delete(file["ssn"], 9)
        assert store.deletions() == {file["ssn"]: 9}
        assert store.upsert(file["ssn"], 5, file) is False  # a re-delivery of the old file
        assert store.upsert(file["ssn"], 8, file) is False
        assert store.get_file(file["ssn"]) is None
        newer = _with(file, training_hours=77)
        assert store.upsert(file["ssn"], 10, newer) is True  # a file after the tombstone: the worker is back
        assert store.get_file(file["ssn"]) == newer
        assert store.deletions() == {}

    def test_tombstone_of_an_unknown_worker_is_remembered(self, store, population_files):
        file = population_files[10]
        assert store.delete(file["ssn"], 6) is False
        assert store.upsert(file["ssn"], 2, file) is False
        assert store.get_file(file["ssn"]) is None

    # --- indexed columns -----------------------------------------------------------

    def test_indexed_columns(self, store, population_files):
        for i, file in enumerate(population_files):
            store.upsert(file["ssn"], i, file)
        for file in population_files:
            row = store.get_row(file["ssn"])
            assert row["highest_skill_level"] == file["highest_skill_level"]
            assert row["current_employer"] == (file["current_employers"][0] if file["current_employers"] else None)
            assert row["region"] == file["card"]["region"]  # every generated worker has a card

    def test_region_without_a_card_is_the_latest_open_employment(self, store, population_files):
        base = population_files[11]
        job = base["employments"][0]
        employments = [
            {**job, "employer": "91A", "region": "110105", "start_date": "2021-01-01", "end_date": None, "end_reason": None},
            {**job, "employer": "91B", "region": "440305", "start_date": "2023-03-01", "end_date": None, "end_reason": None},
            {**job, "employer": "91C", "region": "310115", "start_date": "2024-01-01", "end_date": "2024-06-30",
             "end_reason": "resigned"},
        ]
        no_card = _with(base, card=None, employments=employments, current_employers=["91A", "91B"])
        store.upsert(base["ssn"], 1, no_card)
        row = store.get_row(base["ssn"])
        assert (row["region"], row["current_employer"]) == ("440305", "91A")
        nothing_open = _with(base, card=None, employments=[employments[2]], current_employers=[],
                             highest_skill_level=None)
        store.upsert(base["ssn"], 2, nothing_open)
        row = store.get_row(base["ssn"])
        assert (row["region"], row["current_employer"], row["highest_skill_level"]) == (None, None, None)

    def test_indexed_columns_follow_the_newest_version(self, store, population_files):
        file = population_files[12]
        store.upsert(file["ssn"], 1, file)
        changed = _with(file, highest_skill_level="chief_technician", current_employers=["91ZZZ"],
                        card={**file["card"], "region": "650102"})
        store.upsert(file["ssn"], 2, changed)
        row = store.get_row(file["ssn"])
        assert (row["highest_skill_level"], row["current_employer"], row["region"]) == (
            "chief_technician", "91ZZZ", "650102")

    def test_indexed_columns_have_indexes(self, store):
        assert {"highest_skill_level", "current_employer", "region"} <= self.indexed(store)

    def indexed(self, store) -> set[str]:
        raise NotImplementedError

    # --- offsets -------------------------------------------------------------------

    def test_offsets_are_stored_with_the_rows(self, store, population_files):
        a, b = population_files[13], population_files[14]
        assert store.offsets("g") == {}
        store.apply([FileChange(a["ssn"], 3, a), FileChange(b["ssn"], 7, b)], {0: 4, 2: 8}, group="g")
        assert store.offsets("g") == {0: 4, 2: 8}
        assert store.offsets("other") == {}
        assert store.offsets("g", topic="another-topic") == {}
        store.apply([], {2: 9, 3: 1}, group="g")
        assert store.offsets("g") == {0: 4, 2: 9, 3: 1}

    def test_offsets_never_move_back(self, store):
        store.apply([], {0: 10}, group="g")
        store.apply([], {0: 6}, group="g")
        assert store.offsets("g") == {0: 10}

    def test_a_failed_transaction_stores_neither_rows_nor_offsets(self, store, population_files):
        a, b = population_files[15], population_files[16]
        store.apply([FileChange(a["ssn"], 1, a)], {0: 2}, group="g")
        with pytest.raises(Exception):  # a NULL partition breaks the offsets insert, after the rows
            store.apply([FileChange(b["ssn"], 5, b), FileChange(a["ssn"], 6, None)], {None: 7}, group="g")
        assert table(store) == {a["ssn"]: (1, a)}
        assert store.offsets("g") == {0: 2}
        assert store.deletions() == {}
        store.apply([FileChange(b["ssn"], 5, b)], {0: 6}, group="g")  # still usable
        assert set(table(store)) == {a["ssn"], b["ssn"]}

    # --- any order, any repetition -------------------------------------------------

    def test_any_order_and_redelivery_gives_the_latest_per_worker(self, store, population_files):
        """Random histories of files and tombstones, applied shuffled, repeated and in random
        batches: the table always holds the greatest version of each worker, or no row
        when that is a tombstone."""
        rng = random.Random(11)
        workers = population_files[:8]
        history: list[FileChange] = []
        for version in range(120):
            file = rng.choice(workers)
            if rng.random() < 0.2:
                history.append(FileChange(file["ssn"], version, None))
            else:
                history.append(FileChange(file["ssn"], version, _with(file, applied_events=version)))
        latest: dict[str, FileChange] = {}
        for change in history:
            latest[change.ssn] = change
        expected = {ssn: (c.version, c.file) for ssn, c in latest.items() if c.file is not None}
        for _ in range(4):
            deliveries = history + rng.sample(history, 40)
            rng.shuffle(deliveries)
            while deliveries:
                size = rng.randint(1, 25)
                store.apply(deliveries[:size])
                deliveries = deliveries[size:]
            assert table(store) == expected
