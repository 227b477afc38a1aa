"""Operator commands without a broker (issue #6, item 6): what erasing a file and merging
two numbers publish, what the processors remember, and that nothing comes back."""

from __future__ import annotations

import pytest

from processors.derive import derive_file
from schemas.identity import make_org_code, make_ssn
from processors.intake import validate_event
from schemas.outputs import WorkerFileChange
from streams import codec
from streams.access import load_views
from streams.admin import AdminError, make_command
from streams.handler import (
    Audiences, Marker, Origin, apply_command, fold_batch, intake_message, load_state, redirected,
)
from streams.topics import (
    OPERATOR_COMMANDS, REKEYED_EVENTS, WORKER_ACCESS_LOG, WORKER_FILE_CHANGES, WORKER_FILE_ROWS, WORKER_FILES,
)

OLD = make_ssn("11010519800101001")  # registered twice: this number is merged away
NEW = make_ssn("44030519850612003")
ORG = make_org_code("91440300192203821")
SCHOOL = make_org_code("52440300MJL000001")
AUDIENCES = Audiences(views=load_views(), pseudonym_key=b"p" * 32)


def event(event_id: str, ssn: str, kind: str = "insurance.contribution", payload: dict | None = None, source=ORG):
    payload = payload or {"scheme": "unemployment", "month": "2025-01", "region": "110105", "base_cny": 5000,
                          "employer_amount_cny": 800, "personal_amount_cny": 400}
    data = {"event_id": event_id, "type": kind, "ssn": ssn, "occurred_at": "2025-01-15T10:00:00+08:00",
            "source": source, "corrects": None, "payload": payload}
    value = codec.encode_event(validate_event(data))
    intake = intake_message(ssn.encode(), value, Origin("insurance-events", 0, 1))
    return intake.event, ssn.encode(), value, Origin("insurance-events", 0, 1)


def training(event_id: str, ssn: str):
    return event(event_id, ssn, "training.enrolled", {"program_id": "P1", "program_name": "焊工", "start_date": "2025-01-02",
                                                     "planned_hours": 80}, source=SCHOOL)


def folded(ssn: str, *events):
    return fold_batch(load_state(ssn, {}.get), list(events), AUDIENCES).state


def command(action: str, ssn: str, other: str | None = None) -> dict:
    made = make_command(action, ssn, other, "ops-zhang", "duplicate registration")
    return codec.decode(codec.encode("OperatorCommand", made))[1]  # as the processors receive it


def by_topic(records):
    out = {}
    for r in records:
        out.setdefault(r.topic, []).append(r)
    return out


def test_erasing_a_file_leaves_tombstones_everywhere_and_an_audit_line():
    state = folded(OLD, event("e1", OLD), training("t1", OLD))
    out, marker = apply_command(state, None, command("erase", OLD), AUDIENCES)
    topics = by_topic(out.records)
    assert [r.value for r in topics[WORKER_FILES]] == [None]
    assert [(r.key, r.value) for r in topics[WORKER_FILE_ROWS]] == [(OLD.encode(), None)]  # the row is deleted too
    views = [r for r in out.records if r.topic.startswith("worker-view-")]
    assert {r.topic for r in views} == {"worker-view-social-insurance", "worker-view-pseudonymised",
                                        f"worker-view-training.{SCHOOL}"}
    assert all(r.value is None for r in views)
    _, change = codec.decode(topics[WORKER_FILE_CHANGES][0].value)
    assert change["changed_sections"] == ["erased"] and change["version"] == state.version + 1
    WorkerFileChange.model_validate(change)  # `erased` is one of its ChangedSection values
    _, audit = codec.decode(topics[WORKER_ACCESS_LOG][0].value)
    assert (audit["action"], audit["caller"], audit["purpose"]) == ("erase", "ops-zhang", "duplicate registration")
    assert out.state.records == {} and out.state.version == state.version + 1
    assert marker.erased_ids == {"e1", "t1"} and marker.merged_into is None


def test_an_erased_event_never_comes_back_but_new_events_start_a_new_file():
    state = folded(OLD, event("e1", OLD))
    out, marker = apply_command(state, None, command("erase", OLD), AUDIENCES)
    marker = Marker.from_bytes(marker.to_bytes())  # as the table keeps it
    again = fold_batch(out.state, [event("e1", OLD)], AUDIENCES, marker.erased_ids)
    assert again.duplicates == 1 and again.records == [] and again.state.records == {}
    new = fold_batch(out.state, [event("e2", OLD)], AUDIENCES, marker.erased_ids)
    assert set(new.state.records) == {"e2"}
    _, change = codec.decode(next(r.value for r in new.records if r.topic == WORKER_FILE_CHANGES))
    assert change["version"] > state.version + 1 - 1  # versions go on after the erasure
    _, file = codec.decode(next(r.value for r in new.records if r.topic == WORKER_FILES))
    assert file["version"] == change["version"]


def test_merging_sends_the_state_on_and_redirects_later_events():
    old_state = folded(OLD, event("e1", OLD), training("t1", OLD))
    out, marker = apply_command(old_state, None, command("merge", OLD, NEW), AUDIENCES)
    topics = by_topic(out.records)
    assert [r.value for r in topics[WORKER_FILES]] == [None] and marker.merged_into == NEW
    assert [r.value for r in topics[WORKER_FILE_ROWS]] == [None]
    _, change = codec.decode(topics[WORKER_FILE_CHANGES][0].value)
    assert WorkerFileChange.model_validate(change).changed_sections == ["merged"]
    [onward] = topics[OPERATOR_COMMANDS]
    assert onward.key == NEW.encode()
    _, merge_in = codec.decode(onward.value)
    assert (merge_in["action"], merge_in["ssn"], merge_in["other_ssn"]) == ("merge_in", NEW, OLD)
    _, audit = codec.decode(topics[WORKER_ACCESS_LOG][0].value)
    assert audit["action"] == "merge" and OLD not in audit["detail"] and NEW not in audit["detail"]
    # a later event of the old number goes to the new one
    moved = redirected(event("e9", OLD)[0], NEW)
    assert moved.topic == REKEYED_EVENTS and moved.key == NEW.encode()
    assert codec.decode_event(moved.value)["ssn"] == NEW


def test_the_receiving_file_holds_both_and_keeps_the_old_number_as_an_alias():
    old_state = folded(OLD, event("e1", OLD), training("t1", OLD))
    new_state = folded(NEW, event("n1", NEW, payload={"scheme": "pension", "month": "2025-02", "region": "440305",
                                                      "base_cny": 6000, "employer_amount_cny": 900,
                                                      "personal_amount_cny": 480}))
    out, _ = apply_command(old_state, None, command("merge", OLD, NEW), AUDIENCES)
    _, merge_in = codec.decode(by_topic(out.records)[OPERATOR_COMMANDS][0].value)
    joined, marker = apply_command(new_state, None, merge_in, AUDIENCES)
    assert marker.merged_into is None
    file = derive_file(joined.state)
    assert file["ssn"] == NEW and OLD in file["aliases"]
    assert {i["scheme"] for i in file["insurance"]} == {"unemployment", "pension"}
    assert [t["program_id"] for t in file["trainings"]] == ["P1"] and file["applied_events"] == 3
    topics = by_topic(joined.records)
    _, published = codec.decode(topics[WORKER_FILES][0].value)
    _, change = codec.decode(topics[WORKER_FILE_CHANGES][0].value)
    assert published == {**file, "version": change["version"]} and change["version"] == joined.state.version
    assert sorted(change["event_ids"]) == ["e1", "t1"] and "aliases" in change["changed_sections"]
    _, audit = codec.decode(topics[WORKER_ACCESS_LOG][0].value)
    assert audit["ssn"] == NEW and audit["action"] == "merge"
    # the same merge again (a re-delivery) changes nothing
    again, _ = apply_command(joined.state, None, merge_in, AUDIENCES)
    assert WORKER_FILES not in by_topic(again.records)


def test_a_redelivered_event_of_the_merged_number_is_a_duplicate_in_the_file_kept():
    old_state = folded(OLD, event("e1", OLD), training("t1", OLD))
    out, _ = apply_command(old_state, None, command("merge", OLD, NEW), AUDIENCES)
    _, merge_in = codec.decode(by_topic(out.records)[OPERATOR_COMMANDS][0].value)
    joined, _ = apply_command(load_state(NEW, {}.get), None, merge_in, AUDIENCES)
    moved = redirected(event("e1", OLD)[0], NEW)
    intake = intake_message(moved.key, moved.value, Origin(REKEYED_EVENTS, 0, 5))
    assert intake.event is not None and intake.event.ssn == NEW
    redelivered = fold_batch(joined.state, [(intake.event, moved.key, moved.value, Origin(REKEYED_EVENTS, 0, 5))],
                             AUDIENCES)
    assert redelivered.duplicates == 1 and redelivered.rejected == 0


def test_a_merge_into_a_number_that_was_merged_on_follows_it():
    third = make_ssn("32050519910409353")
    out, _ = apply_command(folded(OLD, event("e1", OLD)), None, command("merge", OLD, NEW), AUDIENCES)
    _, merge_in = codec.decode(by_topic(out.records)[OPERATOR_COMMANDS][0].value)
    forwarded, _ = apply_command(load_state(NEW, {}.get), Marker(merged_into=third), merge_in, AUDIENCES)
    [record] = forwarded.records
    assert record.topic == OPERATOR_COMMANDS and record.key == third.encode()
    assert codec.decode(record.value)[1]["ssn"] == third


@pytest.mark.parametrize("args, error", [
    (("merge", OLD, OLD, "ops", "r"), "into itself"),
    (("merge", OLD, None, "ops", "r"), "into: the number"),
    (("erase", OLD, None, "", "r"), "operator"),
    (("erase", OLD, None, "ops", " "), "reason"),
    (("delete", OLD, None, "ops", "r"), "action"),
])
def test_commands_that_cannot_be_sent_say_why(args, error):
    with pytest.raises(AdminError, match=error):
        make_command(*args)
