"""The state split into plain buckets and a core (processors.fold's design): the split is
exact (the file equals the one resolved over every record as core), it survives the table
under several keys in any batching, with states cached or loaded cold, and one more
month-end event writes a few KiB whatever the history."""

from __future__ import annotations

import orjson
from hypothesis import given

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
    assert len(writes) == 3  # the head, the pension bucket of 2025, the new id
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


def test_an_emptied_state_deletes_every_key_but_its_head():
    from processors.fold import emptied
    _, table = folded_career_table()
    state = emptied(from_table(SSN_A, table.get))
    for key, value in table_writes(state):
        if value is None:
            table.pop(key)
        else:
            table[key] = value
    assert list(table) == [SSN_A.encode()]
    assert derive_file(from_table(SSN_A, table.get))["applied_events"] == 0
