"""The wire codec (Avro single-object encoding), without a broker: lossless round trips of
every event type and every output record, data of released schema versions, and clear
errors for bad values."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import io
import struct

import fastavro
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.batch import fold_lines
from processors.derive import changed_sections, new_service_events
from processors.fold import state_to_bytes
from schemas.identity import ORG_ALPHABET, make_org_code, make_ssn
from processors.intake import Rejection, validate_event
from schemas.avro import SCHEMA_DIR, released_versions
from schemas.events import (
    EVENT_TYPES, SKILL_LADDER, CertificateKind, ContractType, EndReason, Envelope, HonorTitle, Scheme,
    event_to_json_dict,
)
from schemas.outputs import RejectedEvent, ServiceEvent, WorkerFile, WorkerFileChange
from streams import codec
from streams.codec import CURRENT, HEADER_SIZE, MARKER, CodecError, Schema, decode, decode_event, encode, encode_event
from workerfile.population import generate_population

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
SSN = "11010519491231002X"
SAMPLE = {"event_id": "e1", "type": "employment.ended", "ssn": SSN, "occurred_at": "2024-05-01T10:00:00+08:00",
          "source": "914403001922038216", "payload": {"employer": "914403001922038216", "end_date": "2024-04-30",
                                                      "reason": "resigned"}}

# --- strategies: valid canonical JSON events of every type -------------------------------------

DIGITS = "0123456789"
texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=500)  # Cs: no UTF-8 form
identifiers = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=128)
dates = st.dates(dt.date(1880, 1, 1), dt.date(9998, 12, 31)).map(dt.date.isoformat)  # the years of schemas.events
months = st.builds("{:04d}-{:02d}".format, st.integers(1880, 9998), st.integers(1, 12))
regions = st.text(DIGITS, min_size=6, max_size=6)
orgs = st.text(ORG_ALPHABET, min_size=17, max_size=17).map(make_org_code)
occupations = st.builds(lambda major, parts, job: f"{major}-" + "-".join(f"{p:02d}" for p in parts) + job,
                        st.integers(1, 8), st.tuples(*[st.integers(0, 99)] * 3),
                        st.just("") | st.integers(0, 99).map("-{:02d}".format))
offsets = st.integers(-12 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
timestamps = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2025, 12, 31),
                          timezones=st.none() | offsets).map(dt.datetime.isoformat)  # naive = +08:00


def _ssn(region: str, birth: dt.date, sequence: int) -> str:
    return make_ssn(f"{region}{birth:%Y%m%d}{sequence:03d}")


ssns = st.builds(_ssn, regions, st.dates(dt.date(1880, 1, 1), dt.date(2025, 12, 31)), st.integers(0, 999))
legacy_ssns = st.builds(lambda region, birth, seq: f"{region}{birth:%y%m%d}{seq:03d}",
                        regions, st.dates(dt.date(1900, 1, 1), dt.date(1999, 12, 31)), st.integers(0, 999))
ssn_inputs = ssns | ssns.map(str.lower) | legacy_ssns  # normalised while validating


def _optional(strategy):
    return st.none() | strategy


def _payload(required: dict, **optional):
    return st.fixed_dictionaries(required, optional={k: _optional(v) for k, v in optional.items()})


def _certificate_level(payload: dict) -> dict:
    if payload["kind"] == "special_competency":
        return {**payload, "level": None}
    return payload if payload["level"] is not None else {**payload, "level": "junior"}


def payload_strategies(counts) -> dict:
    """A strategy of valid payloads per event type; `counts` draws hours, amounts and wages."""
    return {
        "training.enrolled": _payload({"program_id": identifiers, "program_name": texts, "start_date": dates,
                                       "planned_hours": counts}, occupation_code=occupations),
        "training.completed": _payload({"program_id": identifiers, "end_date": dates, "hours": counts,
                                        "passed": st.booleans()}),
        "training.withdrawn": _payload({"program_id": identifiers, "date": dates}, reason=texts),
        "employment.started": _payload(
            {"employer": orgs, "occupation_code": occupations, "contract_type": st.sampled_from(ContractType.__args__),
             "written_contract": st.booleans(), "start_date": dates, "region": regions},
            monthly_wage_cny=counts, dispatch_agency=orgs,
        ).filter(lambda p: p["contract_type"] != "dispatched" or p.get("dispatch_agency")),
        "employment.ended": _payload({"employer": orgs, "end_date": dates, "reason": st.sampled_from(EndReason.__args__)}),
        "insurance.enrolled": _payload({"scheme": st.sampled_from(Scheme.__args__), "month": months, "region": regions},
                                       employer=orgs),
        "insurance.contribution": _payload(
            {"scheme": st.sampled_from(Scheme.__args__), "month": months, "region": regions, "base_cny": counts,
             "employer_amount_cny": counts, "personal_amount_cny": counts}, employer=orgs),
        "insurance.suspended": _payload({"scheme": st.sampled_from(Scheme.__args__), "month": months}, reason=texts),
        "insurance.transferred": _payload({"scheme": st.sampled_from(Scheme.__args__), "month": months,
                                           "from_region": regions, "to_region": regions}),
        "card.issued": _payload({"card_no": identifiers, "issued_on": dates, "region": regions}),
        "certificate.issued": _payload(
            {"certificate_no": identifiers, "kind": st.sampled_from(CertificateKind.__args__), "occupation_code": occupations,
             "level": _optional(st.sampled_from(SKILL_LADDER)), "issued_on": dates}, valid_until=dates,
        ).map(_certificate_level),
        "certificate.revoked": _payload({"certificate_no": identifiers, "revoked_on": dates}, reason=texts),
        "honor.awarded": _payload({"title": st.sampled_from(HonorTitle.__args__), "awarded_on": dates}),
        "event.retracted": _payload({"event_id": identifiers}),
        "service.claimed": _payload({"service_id": service_ids, "claimed_on": dates, "region": regions}),
        "service.decided": _payload({"service_id": service_ids, "decision": st.sampled_from(["approved", "refused"]),
                                     "decided_on": dates}, reason=texts),
        "service.paid": _payload({"service_id": service_ids, "paid_on": dates, "amount_cny": counts.map(lambda n: n + 1)}),
    }


service_ids = st.uuids().map(str)


PAYLOADS = payload_strategies(st.integers(0, 100_000))  # the models bound hours (1e5) and yuan (1e12)
REALISTIC_PAYLOADS = payload_strategies(st.integers(0, 10**6))  # sums in a file stay within a long


def events(event_type: str, ssn=ssn_inputs, payloads=PAYLOADS):
    """Valid canonical JSON events of one type."""
    optional = {} if event_type == "event.retracted" else {"corrects": _optional(identifiers)}
    return st.fixed_dictionaries(
        {"event_id": identifiers, "type": st.just(event_type), "ssn": ssn, "occurred_at": timestamps,
         "source": orgs, "payload": payloads[event_type]},
        optional=optional,
    ).filter(lambda e: e.get("corrects") != e["event_id"])


def test_every_event_type_has_a_strategy():
    assert set(PAYLOADS) == set(EVENT_TYPES)


# --- round trips of events -------------------------------------------------------------------

def _payload_branch(data: bytes) -> str:
    """The payload union branch the bytes carry, read with plain fastavro."""
    record = fastavro.schemaless_reader(io.BytesIO(data[HEADER_SIZE:]), CURRENT["Event"].parsed,
                                        return_record_name=True, return_record_name_override=True)
    return record["payload"][0]


def assert_event_round_trip(raw: dict) -> None:
    """JSON -> model -> Avro bytes -> JSON -> model -> JSON gives back the same JSON."""
    event = validate_event(raw, NOW)
    assert isinstance(event, Envelope), event
    json_form = event_to_json_dict(event)
    data = encode_event(event)
    assert data[:2] == MARKER and data[2:HEADER_SIZE] == CURRENT["Event"].fingerprint
    assert _payload_branch(data) == f"cn.workerfile.{type(event.payload).__name__}"
    decoded = decode_event(data)
    assert decoded == json_form
    again = validate_event(decoded, NOW)
    assert isinstance(again, Envelope), again
    assert event_to_json_dict(again) == json_form


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_every_event_type_round_trips(event_type, data):
    assert_event_round_trip(data.draw(events(event_type)))


def test_population_events_round_trip():
    population = [e for e in generate_population(30) if isinstance(e, dict)]
    valid = [e for e in population if isinstance(validate_event(e, NOW), Envelope)]
    assert len(valid) > 2000 and {e["type"] for e in valid} >= {"employment.started", "certificate.issued"}
    for raw in valid:
        assert_event_round_trip(raw)


def test_offset_and_legacy_number_are_kept():
    raw = {"event_id": "e1", "type": "card.issued", "ssn": "130503670401001", "occurred_at": "2024-06-01T09:00:00.250+05:30",
           "source": "914403001922038216", "payload": {"card_no": "C1", "issued_on": "2024-06-01", "region": "110105"}}
    decoded = decode_event(encode_event(validate_event(raw, NOW)))
    assert decoded["occurred_at"] == "2024-06-01T09:00:00.250000+05:30"
    assert (decoded["ssn"], decoded["ssn_legacy"]) == ("130503196704010016", "130503670401001")
    plain = decode_event(encode_event(validate_event({**raw, "ssn": "130503196704010016"}, NOW)))
    assert "ssn_legacy" not in plain  # as in event_to_json_dict


def test_an_integrator_decodes_with_the_committed_schema_file():
    """What any Avro library does: check the marker, find the schema by fingerprint, read the body."""
    raw = {"event_id": "e1", "type": "honor.awarded", "ssn": "11010519491231002X", "occurred_at": "2024-05-01T10:00:00+08:00",
           "source": "914403001922038216", "payload": {"title": "model_worker", "awarded_on": "2024-05-01"}}
    data = encode_event(validate_event(raw, NOW))
    schema = fastavro.schema.load_schema(str(SCHEMA_DIR / "cn.workerfile.Event.avsc"))  # and the types it refers to
    canonical = fastavro.schema.to_parsing_canonical_form(schema).encode()
    assert data[:2] == b"\xc3\x01" and data[2:10] == struct.pack("<Q", crc64_avro(canonical))
    record = fastavro.schemaless_reader(io.BytesIO(data[10:]), schema)
    assert record["payload"] == {"title": "model_worker", "awarded_on": dt.date(2024, 5, 1)}


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO as the Avro specification writes it (independent of fastavro)."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_fingerprints_follow_the_specification():
    assert crc64_avro(b'"null"') == 7195948357588979594  # the specification's test vector
    assert codec.schema_fingerprint("null") == struct.pack("<Q", 7195948357588979594)
    for schema in CURRENT.values():
        canonical = fastavro.schema.to_parsing_canonical_form(schema.parsed).encode()
        assert schema.fingerprint == struct.pack("<Q", crc64_avro(canonical))


# --- round trips of what the pipeline publishes --------------------------------------------------

@pytest.fixture(scope="module")
def folded_population():
    lines = [orjson.dumps(e) if isinstance(e, dict) else e for e in generate_population(30)]
    return fold_lines(lines, now=NOW)


def assert_output_round_trip(name: str, record: dict, model) -> None:
    expected = model.model_validate(record).model_dump(mode="json")  # defaults filled in, as Avro has them
    if name == "WorkerFile" and expected["version"] is None:
        del expected["version"]  # only a published file has one, as only a legacy event has ssn_legacy
    assert decode(encode(name, record)) == (name, expected)


def test_worker_files_round_trip(folded_population):
    files = folded_population.files()
    assert len(files) == 30 and any(f["services"]["skill_upgrade_subsidy"] for f in files)
    for file in files:
        assert "version" not in file  # the offline fold publishes nothing
        assert decode(encode("WorkerFile", file)) == ("WorkerFile", file)
        assert_output_round_trip("WorkerFile", file, WorkerFile)
        published = {**file, "version": 7}  # as the stream publishes it, with its change's version
        assert decode(encode("WorkerFile", published)) == ("WorkerFile", published)
        assert_output_round_trip("WorkerFile", published, WorkerFile)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_files_of_random_event_sets_round_trip(data):
    """Files with nulls, issues, held ends and revocations, from random events of one worker."""
    ssn = data.draw(ssns)
    kinds = data.draw(st.lists(st.sampled_from(sorted(EVENT_TYPES)), max_size=12))
    lines = [orjson.dumps(data.draw(events(kind, st.just(ssn), REALISTIC_PAYLOADS))) for kind in kinds]
    for file in fold_lines(lines, now=NOW).files():
        WorkerFile.model_validate(file)
        assert decode(encode("WorkerFile", file)) == ("WorkerFile", file)


def test_changes_services_and_rejects_round_trip(folded_population):
    services = []
    for ssn, state in folded_population.states.items():
        file = next(f for f in folded_population.files() if f["ssn"] == ssn)
        change = {"ssn": ssn, "version": 3, "changed_sections": changed_sections(None, file),
                  "event_ids": sorted(state.records)[:5]}
        assert_output_round_trip("WorkerFileChange", change, WorkerFileChange)
        services.extend(new_service_events(copy.deepcopy(state), file))
    assert services
    for service in services:
        assert_output_round_trip("ServiceEvent", service, ServiceEvent)
    assert folded_population.rejects
    for reject in folded_population.rejects:
        assert_output_round_trip("RejectedEvent", reject, RejectedEvent)
    kafka_reject = {"reason": "malformed", "message": "not an Avro event", "input": base64.b64encode(b"\xc3\x02\xff").decode(),
                    "input_encoding": "base64", "topic": "training-events", "partition": 3, "offset": 2**40}
    assert_output_round_trip("RejectedEvent", kafka_reject, RejectedEvent)


# --- data of other schema versions -----------------------------------------------------------------

def _frame(schema: dict, record: dict) -> bytes:
    """A single-object encoded value written with `schema` (an old version, say)."""
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), record)
    return MARKER + codec.schema_fingerprint(schema) + body.getvalue()


@pytest.mark.parametrize("version", sorted(released_versions()))
def test_values_written_with_a_released_schema_decode(version, folded_population):
    released = released_versions()[version]
    events = [e for e in generate_population(5, seed=11) if isinstance(e, dict)]
    for raw in events:
        event = validate_event(raw, NOW)
        if isinstance(event, Rejection):
            continue
        json_form = event_to_json_dict(event)
        avro_form = codec.avro_record("Event", json_form)
        assert decode_event(_frame(released["Event"], avro_form)) == json_form
    for file in folded_population.files()[:5]:
        published = {**file, "version": 3}
        found = decode(_frame(released["WorkerFile"], codec.avro_record("WorkerFile", published)))
        # release 3 added `version`: a file of an older release has none (Avro's default, null);
        # release 4 added section 9: a file of an older release has its fields' defaults
        has_version = any(f["name"] == "version" for f in released["WorkerFile"]["fields"])
        expected = published if has_version else file
        if not _has_section_9(released["WorkerFile"]):
            expected = as_before_section_9(expected)
        assert found == ("WorkerFile", expected)
        change = {"ssn": file["ssn"], "version": 3, "changed_sections": ["trainings", "erased"], "event_ids": ["e1"]}
        assert decode(_frame(released["WorkerFileChange"], change)) == ("WorkerFileChange", change)


def _has_section_9(schema) -> bool:
    return "service_id" in orjson.dumps(schema).decode()


def as_before_section_9(file: dict) -> dict:
    """A file as a release before contract section 9 keeps it: its grants' and services'
    new fields read as their defaults."""
    grants = [{**{k: g[k] for k in ("certificate_no", "occupation_code", "level", "apply_by")}, "service_id": "",
               "amount_cny": 0, "status": "offered", "claim": None, "decision": None, "payments": []}
              for g in file["services"]["skill_upgrade_subsidy"]]
    return {**file, "services": {"skill_upgrade_subsidy": grants, "notices": []}}


OLD_REJECTED_EVENT = {  # an imagined version 0, before field, event_id and input_encoding
    "type": "record", "name": "RejectedEvent", "namespace": "cn.workerfile", "fields": [
        {"name": "reason", "type": "string"}, {"name": "message", "type": "string"},
        {"name": "input", "type": "string"}, {"name": "origin", "type": ["null", "string"], "default": None},
    ],
}


def test_an_older_writer_schema_is_resolved_to_the_current_one(monkeypatch):
    old = Schema("RejectedEvent", "0", codec.schema_fingerprint(OLD_REJECTED_EVENT), fastavro.parse_schema(OLD_REJECTED_EVENT))
    monkeypatch.setitem(codec.WRITER_SCHEMAS, old.fingerprint, old)
    data = _frame(OLD_REJECTED_EVENT, {"reason": "malformed", "message": "m", "input": "x", "origin": "file"})
    assert decode(data) == ("RejectedEvent", {
        "reason": "malformed", "message": "m", "field": None, "event_id": None, "input": "x", "input_encoding": "utf-8",
        "topic": None, "partition": None, "offset": None, "file": None, "line": None,
        "input_size": None, "input_sha256": None, "input_truncated": False})  # added in version 2: their defaults


def _older_event_schema() -> dict:
    """An imagined older Event: without ssn_legacy and without the honor.awarded payload."""
    schema = copy.deepcopy(released_versions()["1"]["Event"])
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "ssn_legacy"]
    payload = next(f for f in schema["fields"] if f["name"] == "payload")
    payload["type"] = [b for b in payload["type"] if b["name"] != "HonorAwardedPayload"]
    return schema


def test_an_older_event_schema_resolves_payload_branches_by_name(monkeypatch):
    old_schema = _older_event_schema()
    old = Schema("Event", "0", codec.schema_fingerprint(old_schema), fastavro.parse_schema(old_schema))
    monkeypatch.setitem(codec.WRITER_SCHEMAS, old.fingerprint, old)
    raw = {**SAMPLE, "ssn": "130503670401001"}  # a legacy number: the old schema cannot carry ssn_legacy
    for event_type in ("employment.ended", "training.withdrawn", "certificate.revoked"):
        payload = {"employment.ended": SAMPLE["payload"],
                   "training.withdrawn": {"program_id": "P1", "date": "2024-04-30", "reason": None},
                   "certificate.revoked": {"certificate_no": "S1", "revoked_on": "2024-04-30", "reason": "wrong"}}
        event = validate_event({**raw, "type": event_type, "payload": payload[event_type]}, NOW)
        json_form = event_to_json_dict(event)
        data = _frame(old_schema, codec.avro_record("Event", json_form))
        assert data[2:HEADER_SIZE] != CURRENT["Event"].fingerprint
        expected = {k: v for k, v in json_form.items() if k != "ssn_legacy"}
        assert decode_event(data) == expected
        assert isinstance(validate_event(decode_event(data), NOW), Envelope)


# --- errors ------------------------------------------------------------------------------------

@pytest.fixture
def sample() -> bytes:
    return encode_event(validate_event(SAMPLE, NOW))


def _error(data) -> str:
    with pytest.raises(CodecError) as err:
        decode(data)
    message = str(err.value)
    assert SSN not in message and "resigned" not in message  # never the content
    return message


def test_bad_marker(sample):
    assert "expected the marker C3 01" in _error(b"\xc3\x02" + sample[2:])
    assert "looks like JSON" in _error(orjson.dumps(SAMPLE))
    assert "starts with 7B" in _error(b"{")
    assert "empty value" in _error(b"")


def test_unknown_fingerprint(sample):
    message = _error(MARKER + b"\x00" * 8 + sample[HEADER_SIZE:])
    assert "unknown writer schema fingerprint 0000000000000000" in message


def test_truncated_header_and_body(sample):
    assert "truncated header: 5 bytes" in _error(sample[:5])
    for cut in range(HEADER_SIZE, len(sample)):
        assert "corrupt or truncated Avro body of Event (schema version current" in _error(sample[:cut])


def test_a_value_the_current_schema_cannot_hold(monkeypatch):
    old_schema = copy.deepcopy(released_versions()["1"]["Event"])
    payload = next(f for f in old_schema["fields"] if f["name"] == "payload")
    ended = next(b for b in payload["type"] if b["name"] == "EmploymentEndedPayload")
    next(f for f in ended["fields"] if f["name"] == "reason")["type"]["symbols"].append("laid_off")
    old = Schema("Event", "0", codec.schema_fingerprint(old_schema), fastavro.parse_schema(old_schema))
    monkeypatch.setitem(codec.WRITER_SCHEMAS, old.fingerprint, old)
    record = codec.avro_record("Event", {**SAMPLE, "corrects": None, "payload": {**SAMPLE["payload"], "reason": "laid_off"}})
    assert "Event of schema version 0 does not resolve to the current schema" in _error(_frame(old_schema, record))


def test_trailing_bytes(sample):
    assert "2 bytes left after the Event record" in _error(sample + b"\x00\x00")


def test_not_bytes_and_wrong_record():
    assert "expected bytes, got str" in _error("text")
    file = next(iter(fold_lines([orjson.dumps(SAMPLE)], now=NOW).files()))
    with pytest.raises(CodecError, match="expected an Event, got a WorkerFile"):
        decode_event(encode("WorkerFile", file))


def test_encoding_errors_name_the_field_not_the_value():
    file = next(iter(fold_lines([orjson.dumps(SAMPLE)], now=NOW).files()))
    with pytest.raises(CodecError, match="no Avro schema named 'Worker'"):
        encode("Worker", file)
    with pytest.raises(CodecError, match="a date field is not a YYYY-MM-DD date"):
        encode("WorkerFile", {**file, "birth_date": "1949/12/31"})
    with pytest.raises(CodecError, match=r"WorkerFile\.applied_events$") as err:
        encode("WorkerFile", {**file, "applied_events": 2**63})
    assert str(2**63) not in str(err.value)
    with pytest.raises(CodecError, match="unknown event type"):
        encode("Event", {**SAMPLE, "type": "nope"})


def test_counts_beyond_what_avro_long_holds_are_rejected_by_the_model():
    """Avro `long` stops at 2**63 - 1: the models bound hours and amounts well below it,
    so an accepted event always encodes."""
    raw = {**SAMPLE, "type": "training.completed",
           "payload": {"program_id": "P1", "end_date": "2024-04-30", "hours": 2**63, "passed": True}}
    rejection = validate_event(raw, NOW)
    assert not isinstance(rejection, Envelope)
    assert (rejection.reason, rejection.field) == ("schema", "payload.hours")


def test_access_log_entries_and_operator_commands_round_trip(folded_population):
    from schemas.outputs import AccessLogEntry

    ssn = next(iter(folded_population.states))
    entry = {"ssn": ssn, "at": "2026-11-29T10:00:00.123+08:00", "caller": "深圳市社保局", "audience": "social_insurance",
             "org": "914403001922038216", "action": "read_file", "purpose": "待遇核定", "detail": None}
    AccessLogEntry.model_validate(entry)
    assert decode(encode("AccessLogEntry", entry)) == ("AccessLogEntry", entry)
    state = state_to_bytes(folded_population.states[ssn])
    command = {"command_id": "c1", "action": "merge_in", "ssn": ssn, "other_ssn": "11010519491231002X",
               "operator": "ops", "reason": "two numbers, one person", "at": "2026-11-29T10:00:00+08:00",
               "state": state}
    name, decoded = decode(encode("OperatorCommand", command))
    assert name == "OperatorCommand" and decoded == command and decoded["state"] == state


# --- worker-file-rows: the plain Avro body, the schema named in the headers ---------------

def _row() -> dict:
    from tests.processors.test_rows import a_file
    from processors.rows import file_row

    return file_row(a_file())


def test_a_row_is_the_plain_avro_body_that_any_avro_reader_reads_with_the_named_schema():
    import io

    import fastavro

    row = _row()
    value, headers = codec.encode_row(row)
    assert value[:2] != codec.MARKER  # no single-object prefix: Apicurio's converter reads the body as it is
    named = dict(headers)
    assert named["apicurio.value.groupId"] == b"workerfile"
    assert named["apicurio.value.artifactId"] == b"cn.workerfile.WorkerFileRow"
    schema = codec.WRITER_SCHEMAS[bytes.fromhex(named["apicurio.value.version"].decode())]
    assert schema.name == "WorkerFileRow"
    plain = fastavro.schemaless_reader(io.BytesIO(value), fastavro.parse_schema(
        fastavro.schema.load_schema("schemas/avro/cn.workerfile.WorkerFileRow.avsc")))
    assert plain["ssn"] == row["ssn"] and plain["birth_date"].isoformat() == row["birth_date"]
    assert codec.decode_row(value, headers) == row


def test_a_row_without_its_headers_or_with_an_unknown_version_is_refused():
    value, headers = codec.encode_row(_row())
    with pytest.raises(codec.CodecError, match="do not name it"):
        codec.decode_row(value, [])
    other = [(k, b"00" * 8 if k == "apicurio.value.version" else v) for k, v in headers]
    with pytest.raises(codec.CodecError, match="unknown WorkerFileRow schema version"):
        codec.decode_row(value, other)
    with pytest.raises(codec.CodecError):
        codec.decode_row(value[:-3], headers)
