"""The state split into plain buckets and a core (processors.fold's design): the split is
exact (the file equals the one resolved over every record as core), it survives the table
under several keys in any batching, with states cached or loaded cold, and one more
month-end event writes a few KiB whatever the history."""

from __future__ import annotations

import orjson
from hypothesis import event, given
from hypothesis import strategies as st

from processors.derive import derive_file
from processors.fold import (
    WorkerState, fold_event, from_table, new_state, state_of_records, state_to_bytes, table_keys, table_writes,
)
from tests.conftest import BUREAU, SSN_A, correction, envelope, fold, make_event, retraction
from tests.processors.test_fold_properties import SETTINGS, careers
from tests.processors.test_fold_rules import forty_year_career


def all_core(state: WorkerState) -> WorkerState:
    """The same records, every one in the core: the resolution over the whole set."""
    reference = new_state(state.ssn)
    for eid, record in state.records.items():
        reference._add_core(eid, record)
    reference.aliases = set(state.aliases)
    return reference


@SETTINGS
@given(careers())
def test_the_split_gives_the_file_of_the_whole_set(events):
    for state in fold(events).states.values():
        assert derive_file(state) == derive_file(all_core(state))
        assert state.plain_count + len(state.core) == len(state.records)


def fold_through_table(events, batch: int, cached: bool) -> dict[str, dict]:
    table: dict[bytes, bytes] = {}
    cache: dict[str, WorkerState] = {}
    ssns = set()
    for i in range(0, len(events), batch):
        for event in events[i:i + batch]:
            e = envelope(event)
            if isinstance(e, dict):
                continue
            ssns.add(e.ssn)
            state = cache.get(e.ssn) if cached else None
            state = state or from_table(e.ssn, table.get)
            fold_event(state, e)
            cache[e.ssn] = state
            for key, value in table_writes(state):
                if value is None:
                    table.pop(key, None)
                else:
                    table[key] = value
    return {ssn: derive_file(from_table(ssn, table.get)) for ssn in ssns}


@SETTINGS
@given(careers())
def test_the_table_gives_the_same_files_in_any_batching(events):
    expected = {f["ssn"]: f for f in (derive_file(s) for s in fold(events).states.values())}
    for batch, cached in ((1, False), (3, True), (len(events), True)):
        assert fold_through_table(events, batch, cached) == expected


def folded_career_table():
    events = forty_year_career()
    table: dict[bytes, bytes] = {}
    state = new_state(SSN_A, table.get)
    for event in events:
        fold_event(state, envelope(event))
    table.update(table_writes(state))
    return events, table


def test_one_more_month_end_event_writes_a_few_kib_into_a_forty_year_career():
    events, table = folded_career_table()
    state = from_table(SSN_A, table.get)
    assert state.plain_count == 2400 and len(state.core) == 1 and not state.buckets  # nothing read but the head
    before = derive_file(state)
    late = make_event("insurance.contribution", source=BUREAU, payload={
        "scheme": "pension", "month": "2025-01", "region": "440305", "base_cny": 1,
        "employer_amount_cny": 1, "personal_amount_cny": 1})
    fold_event(state, envelope(late))
    writes = table_writes(state)
    written = sum(len(k) + len(v or b"") for k, v in writes)
    assert written < 4096, written
    assert [k.decode().split("|", 1)[-1] for k, _ in writes] == [  # intent, bucket, id key, the head last
        "w", "p|pension|2025", f"i|{late['event_id']}", SSN_A]
    after = derive_file(state)
    pension = next(p for p in after["insurance"] if p["scheme"] == "pension")
    assert (pension["months_contributed"], pension["last_contribution_month"]) == (481, "2025-01")
    assert after["applied_events"] == before["applied_events"] + 1


def test_a_retraction_of_an_old_contribution_moves_it_to_the_core_and_counts_again():
    events, table = folded_career_table()
    last_pension = [e for e in events if e["type"] == "insurance.contribution"
                    and e["payload"]["scheme"] == "pension"][-1]
    state = from_table(SSN_A, table.get)
    fold_event(state, envelope(retraction(last_pension, source=BUREAU)))
    table.update(table_writes(state))
    f = derive_file(from_table(SSN_A, table.get))
    pension = next(p for p in f["insurance"] if p["scheme"] == "pension")
    assert (pension["months_contributed"], pension["last_contribution_month"]) == (479, "2024-11")
    assert f == derive_file(all_core(from_table(SSN_A, table.get)))
    # a re-delivery of the retracted event is still a duplicate, wherever it now is
    again = from_table(SSN_A, table.get)
    assert fold_event(again, envelope(last_pension)).status == "duplicate"


def test_duplicates_and_conflicts_are_found_by_point_lookups_after_a_cold_load():
    events, table = folded_career_table()
    state = from_table(SSN_A, table.get)
    old = events[1234]
    assert fold_event(state, envelope(old)).status == "duplicate"
    other = {**old, "payload": {**old["payload"], "scheme": "medical" if old["payload"]["scheme"] != "medical"
                                else "pension"}}
    outcome = fold_event(state, envelope(other))
    assert outcome.status == "rejected" and outcome.rejection.reason == "event_id_conflict"
    fixed = correction(old, {"month": "1985-02"}, source=BUREAU)
    assert fold_event(state, envelope(fixed)).status == "accepted"
    table.update(table_writes(state))
    assert derive_file(from_table(SSN_A, table.get)) == derive_file(all_core(from_table(SSN_A, table.get)))


def test_a_state_of_format_3_is_converted_when_read():
    events = forty_year_career()[:50]
    whole = state_of_records(SSN_A, fold(events).states[SSN_A].records)
    old = orjson.loads(state_to_bytes(whole)) | {"v": 3}
    table = {SSN_A.encode(): orjson.dumps(old)}
    state = from_table(SSN_A, table.get)
    assert derive_file(state) == derive_file(whole)
    table.update(table_writes(state))
    assert orjson.loads(table[SSN_A.encode()])["layout"] == "keys"
    assert derive_file(from_table(SSN_A, table.get)) == derive_file(whole)


def test_table_keys_lists_every_key_the_state_wrote():
    _, table = folded_career_table()
    assert table_keys(from_table(SSN_A, table.get)) == set(table)


def test_an_emptied_state_deletes_every_key_but_its_head_and_write_token():
    from processors.fold import emptied
    _, table = folded_career_table()
    state = emptied(from_table(SSN_A, table.get))
    for key, value in table_writes(state):
        if value is None:
            table.pop(key)
        else:
            table[key] = value
    assert sorted(table) == [SSN_A.encode(), f"{SSN_A}|w".encode()]
    assert orjson.loads(table[f"{SSN_A}|w".encode()]) == {"t": 2, "k": []}  # no copy of what was erased
    assert derive_file(from_table(SSN_A, table.get))["applied_events"] == 0


def fold_with_crashes(events, batch: int, cuts) -> tuple[dict[str, dict], int]:
    """`fold_through_table` where the writes of a worker's batch may stop after any
    prefix (a process killed mid-write; `cuts` says where): the batch is then processed
    again from the table (its offsets were not committed), as the stream does. Before
    that, a reader of the table sees the file as it was before the torn batch."""
    table: dict[bytes, bytes] = {}
    ssns, torn = set(), 0

    def apply(writes):
        apply_writes(table, writes)

    for i in range(0, len(events), batch):
        chunk = [e for e in (envelope(x) for x in events[i:i + batch]) if not isinstance(e, dict)]
        by_worker: dict[str, list] = {}
        for e in chunk:
            by_worker.setdefault(e.ssn, []).append(e)
        for ssn, mine in by_worker.items():
            ssns.add(ssn)
            before = derive_file(from_table(ssn, table.get))
            while True:
                state = from_table(ssn, table.get)
                for e in mine:
                    fold_event(state, e)
                after = derive_file(state)
                writes = table_writes(state)
                cut = cuts(len(writes))
                if cut >= len(writes):
                    apply(writes)
                    break
                apply(writes[:cut])  # killed here: the rest never reached the table
                torn += 1
                committed = cut > [k for k, _ in writes].index(ssn.encode())  # the head is the commit
                assert derive_file(from_table(ssn, table.get)) == (after if committed else before)
                if committed:  # (its batch is delivered again all the same: its offsets were not committed)
                    before = after
    return {ssn: derive_file(from_table(ssn, table.get)) for ssn in ssns}, torn


@SETTINGS
@given(careers(), st.data())
def test_a_write_torn_anywhere_loses_nothing_once_the_batch_is_processed_again(events, data):
    expected = {f["ssn"]: f for f in (derive_file(s) for s in fold(events).states.values())}
    batch = data.draw(st.sampled_from([1, 4, len(events) or 1]))

    def cuts(n):  # mostly whole writes; sometimes torn after any prefix (at most twice in a row)
        return data.draw(st.one_of(st.just(n), st.integers(0, n)), label="cut")

    files, torn = fold_with_crashes(events, batch, cuts)
    assert files == expected
    event(f"torn writes: {min(torn, 3)}")


def apply_writes(table: dict, writes) -> None:
    for key, value in writes:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value


def test_a_batch_torn_after_any_write_reads_as_before_and_completes_when_processed_again():
    events, table = folded_career_table()
    contributions = [e for e in events if e["type"] == "insurance.contribution"]
    batch = [envelope(e) for e in (
        retraction(contributions[100], source=BUREAU),  # an old plain record joins the core
        correction(contributions[200], {"month": "1990-07"}, source=BUREAU),
        make_event("insurance.contribution", source=BUREAU, payload={"scheme": "pension", "month": "2025-01"}),
        make_event("certificate.issued"),
    )]
    before = derive_file(from_table(SSN_A, table.get))
    state = from_table(SSN_A, table.get)
    for e in batch:
        fold_event(state, e)
    expected = derive_file(state)
    n = len(table_writes(state))
    assert n >= 6
    for cut in range(n):
        torn = dict(table)
        state = from_table(SSN_A, torn.get)
        for e in batch:
            fold_event(state, e)
        apply_writes(torn, table_writes(state)[:cut])
        assert derive_file(from_table(SSN_A, torn.get)) == before, cut
        for second in (cut // 2, None):  # torn again, earlier, then complete
            state = from_table(SSN_A, torn.get)
            for e in batch:
                assert fold_event(state, e).status == "accepted"  # not taken for a re-delivery
            writes = table_writes(state)
            apply_writes(torn, writes if second is None else writes[:second])
        again = from_table(SSN_A, torn.get)
        assert derive_file(again) == expected, cut
        assert set(torn) <= table_keys(again)  # nothing left that an erase would not find


def test_an_erase_torn_after_any_write_keeps_the_file_until_it_is_carried_out_again():
    from processors.fold import emptied
    _, table = folded_career_table()
    before = derive_file(from_table(SSN_A, table.get))
    n = len(table_writes(emptied(from_table(SSN_A, table.get))))
    for cut in sorted({0, 1, n - 3, n - 2} | set(range(0, n - 1, 97))):  # the last write drops the undo copies
        torn = dict(table)
        apply_writes(torn, table_writes(emptied(from_table(SSN_A, torn.get)))[:cut])
        assert derive_file(from_table(SSN_A, torn.get)) == before, cut
        apply_writes(torn, table_writes(emptied(from_table(SSN_A, torn.get))))
        assert sorted(torn) == [SSN_A.encode(), f"{SSN_A}|w".encode()], cut
