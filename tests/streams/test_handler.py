"""The stream's message handling without a broker: intake (decode, validate, re-key,
reject) and fold_batch (what is published for a worker's batch)."""

from __future__ import annotations

import base64

from processors.derive import derive_file
from schemas.identity import make_org_code, make_ssn
from processors.intake import validate_event
from schemas.outputs import WorkerFileChange
from streams import codec
from streams.handler import Origin, fold_batch, intake_message, load_state, service_record
from processors.rows import file_row
from streams.topics import (
    REJECTED_EVENTS, REKEYED_EVENTS, WORKER_FILE_CHANGES, WORKER_FILE_ROWS, WORKER_FILES, WORKER_SERVICES,
)

SSN = make_ssn("11010519800101001")
ORG = make_org_code("91440300192203821")
ORIGIN = Origin("insurance-events", 2, 17)


def event(event_id: str, kind: str, payload: dict, ssn: str = SSN, **extra) -> dict:
    return {"event_id": event_id, "type": kind, "ssn": ssn, "occurred_at": "2025-01-15T10:00:00+08:00",
            "source": ORG, "corrects": None, "payload": payload, **extra}


def contribution(event_id: str, month: str, scheme: str = "unemployment") -> dict:
    return event(event_id, "insurance.contribution", {"scheme": scheme, "month": month, "region": "110105",
                                                     "base_cny": 5000, "employer_amount_cny": 800,
                                                     "personal_amount_cny": 400})


def wire(data: dict) -> bytes:
    return codec.encode_event(validate_event(data))


def folded_input(data: dict):
    value = wire(data)
    intake = intake_message(SSN.encode(), value, ORIGIN)
    assert intake.event is not None
    return intake.event, SSN.encode(), value, ORIGIN


def test_intake_rejects_bytes_that_are_not_avro_with_origin_and_original_bytes():
    intake = intake_message(b"k", b"\xff\x00garbage", ORIGIN)
    assert intake.status == "rejected" and intake.event is None
    [record] = intake.records
    assert record.topic == REJECTED_EVENTS and record.key == b"k"
    _, rejected = codec.decode(record.value)
    assert rejected["reason"] == "malformed"
    assert (rejected["topic"], rejected["partition"], rejected["offset"]) == ("insurance-events", 2, 17)
    assert rejected["input_encoding"] == "base64"


def test_intake_rejects_an_invalid_ssn_without_printing_it():
    bad = contribution("e-bad", "2025-01") | {"ssn": SSN[:17] + ("1" if SSN[17] != "1" else "2")}
    intake = intake_message(b"k", codec.encode("Event", bad), ORIGIN)
    _, rejected = codec.decode(intake.records[0].value)
    assert rejected["reason"] == "invalid_ssn" and rejected["event_id"] == "e-bad"
    assert bad["ssn"] not in rejected["message"]


def test_intake_rekeys_an_event_keyed_by_the_legacy_number():
    legacy_ssn = make_ssn("13050319670401001")  # born 1967: has a 15-digit legacy form
    legacy = legacy_ssn[:6] + legacy_ssn[8:17]
    data = contribution("e-legacy", "2025-01") | {"ssn": legacy}
    intake = intake_message(legacy.encode(), codec.encode("Event", data), ORIGIN)
    assert intake.status == "rekeyed"
    [record] = intake.records
    assert record.topic == REKEYED_EVENTS and record.key == legacy_ssn.encode()
    again = codec.decode_event(record.value)
    assert again["ssn"] == legacy_ssn and again["ssn_legacy"] == legacy


def test_fold_batch_publishes_file_and_change_then_nothing_for_a_duplicate():
    state = load_state(SSN, {}.get)
    first = fold_batch(state, [folded_input(contribution("c1", "2025-01"))])
    topics = [r.topic for r in first.records]
    assert topics == [WORKER_FILES, WORKER_FILE_ROWS, WORKER_FILE_CHANGES]
    _, change = codec.decode(first.records[2].value)
    assert change["version"] == 1 and change["event_ids"] == ["c1"]
    _, file = codec.decode(first.records[0].value)
    assert file["version"] == 1  # the file is tied to its change event (ssn, version)
    again = fold_batch(first.state, [folded_input(contribution("c1", "2025-01"))])
    assert again.duplicates == 1 and again.records == []


def test_a_change_of_applied_events_alone_is_published():
    # a second contribution for a month already counted changes nothing but applied_events
    state = fold_batch(load_state(SSN, {}.get), [folded_input(contribution("c1", "2025-01"))]).state
    second = fold_batch(state, [folded_input(contribution("c2", "2025-01"))])
    files = [codec.decode(r.value)[1] for r in second.records if r.topic == WORKER_FILES]
    assert len(files) == 1 and files[0]["applied_events"] == 2
    _, change = codec.decode(next(r.value for r in second.records if r.topic == WORKER_FILE_CHANGES))
    assert change["changed_sections"] == ["applied_events"] and change["version"] == 2 == files[0]["version"]
    WorkerFileChange.model_validate(change)
    assert derive_file(second.state) == {k: v for k, v in files[0].items() if k != "version"}  # as the offline fold


def test_a_grant_is_offered_once_with_a_stable_service_id():
    events = [folded_input(contribution(f"c{m}", f"2024-{m:02d}")) for m in range(1, 13)]
    cert = event("cert", "certificate.issued", {"certificate_no": "S1", "kind": "skill_level",
                                                "occupation_code": "6-18-01-01", "level": "junior",
                                                "issued_on": "2024-12-20"})
    first = fold_batch(load_state(SSN, {}.get), events + [folded_input(cert)])
    assert len(first.grants) == 1
    service_id, status, service = first.grants[0]
    record = service_record(service, None)
    assert record.topic == WORKER_SERVICES and status == "offered"
    _, service = codec.decode(record.value)
    assert service["service_id"] == service_id and service["grant"]["apply_by"] == "2025-12-20"
    assert (service["status"], service["status_before"], service["version"]) == ("offered", None, 1)
    later = fold_batch(first.state, [folded_input(contribution("c13", "2025-01"))])
    assert later.grants == []


def test_fold_batch_rejects_a_conflicting_event_id_with_its_origin():
    state = fold_batch(load_state(SSN, {}.get), [folded_input(contribution("c1", "2025-01"))]).state
    conflicting = folded_input(contribution("c1", "2025-02"))
    out = fold_batch(state, [conflicting])
    assert out.rejected == 1
    [record] = out.records
    _, rejected = codec.decode(record.value)
    assert rejected["reason"] == "event_id_conflict" and rejected["offset"] == 17
    assert original_bytes(rejected) == conflicting[2]  # the message exactly as it was sent


def original_bytes(rejected: dict) -> bytes:
    if rejected["input_encoding"] == "base64":
        return base64.b64decode(rejected["input"])
    return rejected["input"].encode()


def test_fold_batch_publishes_the_views_the_change_touches_and_pseudonymised_keys():
    import orjson

    from processors.views import pseudonym
    from streams.access import load_views
    from streams.handler import Audiences

    key = b"s" * 32
    audiences = Audiences(views=load_views(), pseudonym_key=key)
    folded = fold_batch(load_state(SSN, {}.get), [folded_input(contribution("e1", "2025-01"))], audiences)
    views = {r.topic: r for r in folded.records if r.topic.startswith("worker-view-")}
    assert set(views) == {"worker-view-social-insurance", "worker-view-pseudonymised"}
    assert views["worker-view-social-insurance"].key == SSN.encode()
    assert orjson.loads(views["worker-view-social-insurance"].value)["insurance"][0]["scheme"] == "unemployment"
    assert views["worker-view-pseudonymised"].key == pseudonym(SSN, key).encode()
    assert SSN.encode() not in views["worker-view-pseudonymised"].value
    # without the key the pseudonymised view is not published at all
    unkeyed = fold_batch(load_state(SSN, {}.get), [folded_input(contribution("e1", "2025-01"))],
                         Audiences(views=load_views(), pseudonym_key=None))
    assert {r.topic for r in unkeyed.records if r.topic.startswith("worker-view-")} == {"worker-view-social-insurance"}


def test_every_published_file_has_its_flat_row_next_to_it_with_the_headers_naming_its_schema():
    first = fold_batch(load_state(SSN, {}.get), [folded_input(contribution("c1", "2025-01", "pension"))])
    second = fold_batch(first.state, [folded_input(contribution("c2", "2025-02", "pension"))])
    for out in (first, second):
        [file_record] = [r for r in out.records if r.topic == WORKER_FILES]
        [row_record] = [r for r in out.records if r.topic == WORKER_FILE_ROWS]
        assert row_record.key == file_record.key == SSN.encode() and file_record.headers == ()
        _, file = codec.decode(file_record.value)
        assert dict(row_record.headers) == {"apicurio.value.groupId": b"workerfile",
                                            "apicurio.value.artifactId": b"cn.workerfile.WorkerFileRow",
                                            "apicurio.value.version": codec.CURRENT["WorkerFileRow"].fingerprint.hex().encode()}
        row = codec.decode_row(row_record.value, row_record.headers)
        assert row == file_row(file)
    assert row["version"] == 2 and row["pension_months"] == 2 and row["insurance_active_schemes"] == 1
