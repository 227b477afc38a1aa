"""The Avro schemas generated from the pydantic models: no drift between models and the
committed .avsc files, the type mapping, released versions that never change, and
backward compatibility (every released version stays readable by the current schemas)."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import random
from typing import Literal, get_args

import fastavro
import pytest
from fastavro.utils import generate_many
from pydantic import BaseModel, ValidationError

from schemas.avro import (
    NAMESPACE, SCHEMA_DIR, TIMESTAMP_DOC, check_backward_compatible, generate_schema_set, generate_schemas, inline,
    load_definitions, load_schemas, model_schema, released_versions, render, stale_files, wire_names, write_schemas,
)
from schemas.events import EVENT_CLASSES, SkillLevel
from schemas.outputs import FILE_SECTIONS, ChangedSection, WorkerFileChange
from streams.codec import schema_fingerprint

# The fingerprints of every released version. A released schema is never edited: a new
# version gets a new folder (python -m schemas.avro --release N) and a line here.
RELEASED_FINGERPRINTS = {
    "1": {
        "Event": "7aa9d577f9c61fd0",
        "RejectedEvent": "9ba9370e3c392a0d",
        "ServiceEvent": "23880e0a5ed1bc07",
        "WorkerFile": "6e981f98e49e1f96",
        "WorkerFileChange": "71e50b51796d15fe",
    },
    "2": {  # RejectedEvent: input_size, input_sha256, input_truncated (a bounded input on Kafka)
        "AccessLogEntry": "1bd6b492ad3e88fd",
        "Event": "7aa9d577f9c61fd0",
        "OperatorCommand": "2319ed6b9e020bfa",
        "RejectedEvent": "aa866c8b5d1ba751",
        "ServiceEvent": "23880e0a5ed1bc07",
        "WorkerFile": "6e981f98e49e1f96",
        "WorkerFileChange": "71e50b51796d15fe",
    },
    "3": {  # one file per named type; WorkerFile: version; WorkerFileChange: the ChangedSection values (doc only)
        "AccessLogEntry": "1bd6b492ad3e88fd",
        "Event": "7aa9d577f9c61fd0",
        "OperatorCommand": "2319ed6b9e020bfa",
        "RejectedEvent": "aa866c8b5d1ba751",
        "ServiceEvent": "23880e0a5ed1bc07",
        "WorkerFile": "933f8ecaef359577",
        "WorkerFileChange": "71e50b51796d15fe",
    },
    "4": {  # contract section 9: Event: service.claimed/decided/paid; WorkerFile: grants handled, notices; ServiceEvent: status changes, notices
        "AccessLogEntry": "1bd6b492ad3e88fd",
        "Event": "44ad35a50c3ba542",
        "OperatorCommand": "2319ed6b9e020bfa",
        "RejectedEvent": "aa866c8b5d1ba751",
        "ServiceEvent": "356cd7adb27c07e5",
        "WorkerFile": "44b46d3e3e42fd99",
        "WorkerFileChange": "71e50b51796d15fe",
    },
    "5": {  # issue #12: WorkerFileRow, the flat row of worker-file-rows (Kafka Connect)
        "AccessLogEntry": "1bd6b492ad3e88fd",
        "Event": "44ad35a50c3ba542",
        "OperatorCommand": "2319ed6b9e020bfa",
        "RejectedEvent": "aa866c8b5d1ba751",
        "ServiceEvent": "356cd7adb27c07e5",
        "WorkerFile": "44b46d3e3e42fd99",
        "WorkerFileChange": "71e50b51796d15fe",
        "WorkerFileRow": "ce378b02835bddf5",
    },
}


@pytest.fixture
def seeded_random():
    """fastavro's generators use the global `random`: seed it, and put it back afterwards."""
    state = random.getstate()
    random.seed(20260601)
    yield
    random.setstate(state)


# --- drift ------------------------------------------------------------------------------

def test_committed_schemas_are_what_the_models_generate():
    assert stale_files() == [], "the models changed: run `python -m schemas.avro` and commit schemas/avro/"


def test_drift_is_detected(tmp_path):
    write_schemas(tmp_path)
    assert stale_files(tmp_path) == []
    schema = json.loads((tmp_path / f"{NAMESPACE}.WorkerFile.avsc").read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "training_hours"]
    (tmp_path / f"{NAMESPACE}.WorkerFile.avsc").write_text(render(schema))
    (tmp_path / f"{NAMESPACE}.Gone.avsc").write_text("{}")
    (tmp_path / f"{NAMESPACE}.SubsidyGrant.avsc").unlink()
    assert stale_files(tmp_path) == [f"{NAMESPACE}.Gone", f"{NAMESPACE}.SubsidyGrant", f"{NAMESPACE}.WorkerFile"]


def test_generation_is_deterministic():
    assert {n: render(s) for n, s in generate_schemas().items()} == {n: render(s) for n, s in generate_schemas().items()}


# --- the schema set: every named type defined once ---------------------------------------------

WIRE_RECORDS = ["AccessLogEntry", "Event", "OperatorCommand", "RejectedEvent", "ServiceEvent", "WorkerFile",
                "WorkerFileChange", "WorkerFileRow"]


def _definitions_in(schema, found: list[str]) -> None:
    """The full names of every named type a self-contained schema defines, repeats included."""
    if isinstance(schema, list):
        for branch in schema:
            _definitions_in(branch, found)
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "enum", "fixed"):
            found.append(schema["name"])
            for field in schema.get("fields", []):
                _definitions_in(field["type"], found)
        else:
            for key in ("type", "items", "values"):
                if key in schema:
                    _definitions_in(schema[key], found)


def test_every_named_type_has_its_own_file_and_is_defined_once():
    files = sorted(SCHEMA_DIR.glob("*.avsc"))
    definitions = load_definitions(SCHEMA_DIR)
    assert [p.stem for p in files] == list(definitions)
    found: list[str] = []
    for path in files:
        _definitions_in(json.loads(path.read_text()), found)
    assert sorted(found) == sorted(d["name"] for d in definitions.values()), "a named type is defined twice"
    assert all(d["namespace"] == NAMESPACE for d in definitions.values())


def test_the_records_written_on_kafka_are_those_no_type_refers_to():
    assert [n.rpartition(".")[2] for n in wire_names(load_definitions(SCHEMA_DIR))] == WIRE_RECORDS
    assert sorted(load_schemas(SCHEMA_DIR)) == WIRE_RECORDS


def test_inlining_the_set_gives_the_self_contained_schemas_of_the_models():
    definitions = generate_schema_set()
    for name, schema in generate_schemas().items():
        assert inline(f"{NAMESPACE}.{name}", definitions) == schema, name


def test_fastavro_loads_a_record_of_the_set_from_its_file():
    """What an integrator does in Python: fastavro finds the other types by <full name>.avsc."""
    for name, schema in load_schemas(SCHEMA_DIR).items():
        loaded = fastavro.schema.load_schema(str(SCHEMA_DIR / f"{NAMESPACE}.{name}.avsc"))
        assert schema_fingerprint(loaded) == schema_fingerprint(schema), name


def test_a_type_defined_inside_another_or_a_misnamed_file_is_refused(tmp_path):
    write_schemas(tmp_path)
    grant = json.loads((tmp_path / f"{NAMESPACE}.SubsidyGrant.avsc").read_text())
    services = json.loads((tmp_path / f"{NAMESPACE}.Services.avsc").read_text())
    services["fields"][0]["type"]["items"] = {k: v for k, v in grant.items() if k != "namespace"}
    (tmp_path / f"{NAMESPACE}.Services.avsc").write_text(render(services))
    with pytest.raises(ValueError, match="SubsidyGrant is defined inside another type"):
        load_schemas(tmp_path)
    write_schemas(tmp_path)
    (tmp_path / f"{NAMESPACE}.Card.avsc").rename(tmp_path / f"{NAMESPACE}.IdCard.avsc")
    with pytest.raises(ValueError, match="defines cn.workerfile.Card"):
        load_schemas(tmp_path)
    write_schemas(tmp_path)
    (tmp_path / "Card.avsc").write_text("{}")
    with pytest.raises(ValueError, match="one layout or the other"):
        load_schemas(tmp_path)


def test_releases_1_and_2_define_types_several_times_hence_a_new_layout():
    """Why release 3 is a schema set: in the old folders one type is defined in several files
    (avro-maven-plugin 1.12.0: `Can't redefine: cn.workerfile.SubsidyGrant`)."""
    found: list[str] = []
    for schema in released_versions()["1"].values():
        _definitions_in(schema, found)
    assert found.count("SubsidyGrant") == 2 and found.count("SkillLevel") >= 2


# --- the mapping ----------------------------------------------------------------------------

def _field(schema: dict, name: str) -> dict:
    return next(f for f in schema["fields"] if f["name"] == name)


def test_every_schema_parses_and_is_namespaced():
    for name, schema in load_schemas(SCHEMA_DIR).items():
        assert schema["name"] == name and schema["namespace"] == NAMESPACE and schema["type"] == "record"
        fastavro.parse_schema(schema)  # also fails when a named type is defined twice


def test_event_is_one_record_with_a_payload_union_per_type():
    event = generate_schemas()["Event"]
    assert [f["name"] for f in event["fields"]] == [
        "event_id", "type", "ssn", "occurred_at", "source", "corrects", "payload", "ssn_legacy"]
    assert _field(event, "type")["type"] == "string"
    assert _field(event, "occurred_at") == {"name": "occurred_at", "type": "string", "doc": TIMESTAMP_DOC}
    assert _field(event, "corrects") == {"name": "corrects", "type": ["null", "string"], "default": None}
    assert _field(event, "ssn_legacy") == {"name": "ssn_legacy", "type": ["null", "string"], "default": None}
    branches = _field(event, "payload")["type"]
    assert [b["name"] for b in branches] == [c.model_fields["payload"].annotation.__name__ for c in EVENT_CLASSES]
    assert len(branches) == 17
    insurance = {b["name"]: b for b in branches}
    assert _field(insurance["InsuranceEnrolledPayload"], "scheme")["type"]["type"] == "enum"
    assert _field(insurance["InsuranceSuspendedPayload"], "scheme")["type"] == "Scheme"  # defined once, then by name


def test_output_schemas_map_dates_enums_and_strings():
    schemas = generate_schemas()
    file = schemas["WorkerFile"]
    assert _field(file, "birth_date")["type"] == {"type": "int", "logicalType": "date"}
    assert _field(file, "sex")["type"] == {"type": "enum", "name": "WorkerFileSex", "symbols": ["male", "female"]}
    assert _field(file, "card")["type"][0] == "null" and _field(file, "card")["default"] is None
    assert _field(file, "applied_events")["type"] == "long"
    rejected = schemas["RejectedEvent"]
    # "utf-8" is not an Avro name: the Literal becomes a string, its default kept
    assert _field(rejected, "input_encoding") == {"name": "input_encoding", "type": "string", "default": "utf-8"}
    assert _field(rejected, "input")["type"] == "string"
    assert "doc" in rejected and "doc" in file


def test_a_file_carries_the_version_of_its_change():
    file = generate_schemas()["WorkerFile"]
    assert _field(file, "version")["type"] == ["null", "long"] and _field(file, "version")["default"] is None
    assert "WorkerFileChange" in _field(file, "version")["doc"]
    assert "version" not in FILE_SECTIONS  # a new version is no change of a section


def test_changed_sections_are_strings_whose_symbols_are_listed():
    change = generate_schemas()["WorkerFileChange"]
    items = _field(change, "changed_sections")["type"]["items"]
    assert items == {"type": "string", "x-symbols": [*FILE_SECTIONS, "erased", "merged"]}
    assert list(get_args(ChangedSection)) == items["x-symbols"]
    assert "x-symbols" in _field(change, "changed_sections")["doc"]
    WorkerFileChange.model_validate({"ssn": "x", "version": 1, "changed_sections": ["erased"], "event_ids": []})
    with pytest.raises(ValidationError):
        WorkerFileChange.model_validate({"ssn": "x", "version": 1, "changed_sections": ["salary"], "event_ids": []})


def test_why_changed_sections_is_no_avro_enum(seeded_random):
    """An enum would not read the strings releases 1 and 2 wrote: Avro resolves no string
    to an enum (our check, fastavro and Java's SchemaCompatibility agree: INCOMPATIBLE)."""
    released = released_versions()["2"]["WorkerFileChange"]
    as_enum = copy.deepcopy(load_schemas(SCHEMA_DIR)["WorkerFileChange"])
    items = _field(as_enum, "changed_sections")["type"]
    items["items"] = {"type": "enum", "name": "ChangedSection", "symbols": items["items"]["x-symbols"]}
    assert check_backward_compatible(released, as_enum) == [
        "WorkerFileChange.changed_sections[]: type changed from string to ChangedSection"]
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(released), {
        "ssn": "x", "version": 1, "changed_sections": ["erased"], "event_ids": []})
    body.seek(0)
    with pytest.raises(fastavro.read.SchemaResolutionError):
        fastavro.schemaless_reader(body, fastavro.parse_schema(released), fastavro.parse_schema(as_enum))
    assert check_backward_compatible(released, load_schemas(SCHEMA_DIR)["WorkerFileChange"]) == []


class Part(BaseModel):
    code: str


class Toy(BaseModel):
    """A toy model with every mapped type."""

    name: str
    count: int
    ok: bool
    share: float
    day: dt.date
    at: dt.datetime
    shade: Literal["light", "dark"]
    encoding: Literal["utf-8", "base64"] = "utf-8"
    level: SkillLevel | None = None
    best: SkillLevel
    note: str | None
    parts: list[Part]
    spare: Part | None = None


def test_type_mapping_of_a_toy_model():
    skill_levels = list(SkillLevel.__args__)
    assert model_schema(Toy) == {
        "type": "record", "name": "Toy", "namespace": NAMESPACE, "doc": "A toy model with every mapped type.",
        "fields": [
            {"name": "name", "type": "string"},
            {"name": "count", "type": "long"},
            {"name": "ok", "type": "boolean"},
            {"name": "share", "type": "double"},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "at", "type": "string", "doc": TIMESTAMP_DOC},
            {"name": "shade", "type": {"type": "enum", "name": "ToyShade", "symbols": ["light", "dark"]}},
            {"name": "encoding", "type": "string", "default": "utf-8"},
            {"name": "level", "type": ["null", {"type": "enum", "name": "SkillLevel", "symbols": skill_levels}],
             "default": None},
            {"name": "best", "type": "SkillLevel"},
            {"name": "note", "type": ["null", "string"], "default": None},
            {"name": "parts", "type": {"type": "array", "items": {
                "type": "record", "name": "Part", "fields": [{"name": "code", "type": "string"}]}}},
            {"name": "spare", "type": ["null", "Part"], "default": None},
        ],
    }


def test_unmapped_types_fail_loudly():
    class Bad(BaseModel):
        counts: dict[str, int]

    with pytest.raises(TypeError, match="Bad.counts"):
        model_schema(Bad)


# --- released versions -------------------------------------------------------------------

def test_released_versions_are_never_edited():
    found = {version: {name: schema_fingerprint(s).hex() for name, s in schemas.items()}
             for version, schemas in released_versions().items()}
    assert found == RELEASED_FINGERPRINTS


def test_current_schemas_read_every_released_version():
    current = load_schemas(SCHEMA_DIR)
    for version, schemas in released_versions().items():
        for name, released in schemas.items():
            assert name in current, f"{name} of version {version} has no current schema"
            assert check_backward_compatible(released, current[name]) == [], (version, name)


def _released_pairs():
    current = load_schemas(SCHEMA_DIR)
    return [pytest.param(released, current[name], id=f"v{version}-{name}")
            for version, schemas in released_versions().items() for name, released in schemas.items()]


def _payload_branches(event_schema: dict) -> list[tuple[str, dict]]:
    """(full record name, single-branch Event schema) per payload record, so that data
    generated for one branch is written with that branch (the payloads look alike)."""
    expanded = fastavro.parse_schema(event_schema, expand=True)
    payload = next(f for f in expanded["fields"] if f["name"] == "payload")
    result = []
    for branch in payload["type"]:
        single = copy.deepcopy({k: v for k, v in expanded.items() if not k.startswith("__")})
        next(f for f in single["fields"] if f["name"] == "payload")["type"] = branch
        result.append((branch["name"], single))
    return result


def _generated_records(schema: dict, count: int) -> list:
    """Random records of a schema; Event payloads in fastavro's (name, record) notation."""
    if schema["name"] != "Event":
        return list(generate_many(schema, count))
    records = []
    for branch_name, single in _payload_branches(schema):
        for record in generate_many(single, count // 10 + 1):
            records.append({**record, "payload": (branch_name, record["payload"])})
    return records


def _days(value):
    return (value - dt.date(1970, 1, 1)).days if isinstance(value, dt.date) else value


def _assert_read_back(written, read, path="record"):
    """What was written is read back, field by field (fields the reader lacks are skipped)."""
    if isinstance(written, tuple):  # (record name, record) of a union
        written = written[1]
    if isinstance(read, tuple):
        read = read[1]
    if isinstance(written, dict):
        for key in written.keys() & read.keys():
            _assert_read_back(written[key], read[key], f"{path}.{key}")
    elif isinstance(written, list):
        assert len(written) == len(read), path
        for i, (w, r) in enumerate(zip(written, read)):
            _assert_read_back(w, r, f"{path}[{i}]")
    else:
        assert _days(written) == _days(read), path


@pytest.mark.parametrize(("released", "current"), _released_pairs())
def test_data_of_a_released_version_reads_with_the_current_schema(released, current, seeded_random):
    writer, reader = fastavro.parse_schema(released), fastavro.parse_schema(current)
    records = _generated_records(released, 200)
    for record in records:
        body = io.BytesIO()
        fastavro.schemaless_writer(body, writer, record)
        body.seek(0)
        read = fastavro.schemaless_reader(body, writer, reader, return_record_name=True,
                                          return_record_name_override=True)
        _assert_read_back(record, read)
        if released["name"] == "Event":
            assert read["payload"][0] == record["payload"][0]  # the same branch, by name


# --- the compatibility check, both ways ------------------------------------------------------

THING = {
    "type": "record", "name": "Thing", "namespace": NAMESPACE, "fields": [
        {"name": "id", "type": "string"},
        {"name": "count", "type": "int"},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["red", "green", "blue"]}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "body", "type": [
            {"type": "record", "name": "A", "fields": [{"name": "a", "type": "string"}]},
            {"type": "record", "name": "B", "fields": [{"name": "b", "type": "long"}]}]},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
}


def _changed(change) -> dict:
    schema = copy.deepcopy(THING)
    change(schema)
    return schema


def _field_of(schema: dict, name: str) -> dict:
    return next(f for f in schema["fields"] if f["name"] == name)


def _add(field: dict):
    return lambda s: s["fields"].append(field)


def _set_type(name: str, new_type):
    return lambda s: _field_of(s, name).update(type=new_type)


COMPATIBLE = {
    "unchanged": lambda s: None,
    "added optional field": _add({"name": "extra", "type": ["null", "long"], "default": None}),
    "added field with a default": _add({"name": "unit", "type": "string", "default": "pcs"}),
    "removed field": lambda s: s["fields"].remove(_field_of(s, "note")),
    "int promoted to long": _set_type("count", "long"),
    "enum symbol added": lambda s: _field_of(s, "colour")["type"]["symbols"].append("black"),
    "union branch added": lambda s: _field_of(s, "body")["type"].append(
        {"type": "record", "name": "C", "fields": [{"name": "c", "type": "boolean"}]}),
    "field made nullable": _set_type("id", ["null", "string"]),
    "field renamed with an alias": lambda s: _field_of(s, "count").update(name="total", aliases=["count"]),
    "record renamed with an alias": lambda s: s.update(name="Item", aliases=["Thing"]),
}

# change, the problem it must report, and whether fastavro itself then fails to read old data
INCOMPATIBLE = {
    "added field without default": (_add({"name": "extra", "type": "long"}), "Thing.extra: new field without a default", True),
    "type changed": (_set_type("id", "long"), "Thing.id: type changed from string to long", True),
    "enum symbol removed": (lambda s: _field_of(s, "colour")["type"]["symbols"].remove("green"),
                            "Thing.colour: enum symbols removed: green", True),
    "union branch removed": (lambda s: _field_of(s, "body")["type"].pop(),
                             "Thing.body[B]: B is no longer a branch of the union (A)", True),
    "nested record renamed": (lambda s: _field_of(s, "body")["type"][0].update(name="A2"),
                              "Thing.body[A]: A is no longer a branch of the union (A2, B)", True),
    "nullable made required": (lambda s: _field_of(s, "note").update(type="string", default="-"),
                               "Thing.note: type changed from null to string", True),
    "array items changed": (_set_type("tags", {"type": "array", "items": "long"}),
                            "Thing.tags[]: type changed from string to long", True),
    "date became a plain int": (_set_type("day", "int"), "Thing.day: logical type changed from date to None", False),
}


@pytest.mark.parametrize("change", COMPATIBLE.values(), ids=COMPATIBLE.keys())
def test_compatible_changes_report_nothing(change, seeded_random):
    new = _changed(change)
    assert check_backward_compatible(THING, new) == []
    writer, reader = fastavro.parse_schema(THING), fastavro.parse_schema(new)
    for record in generate_many(THING, 50):  # and fastavro agrees: old data reads
        body = io.BytesIO()
        fastavro.schemaless_writer(body, writer, record)
        body.seek(0)
        fastavro.schemaless_reader(body, writer, reader)


@pytest.mark.parametrize(("change", "problem", "fastavro_fails"), INCOMPATIBLE.values(), ids=INCOMPATIBLE.keys())
def test_incompatible_changes_are_reported(change, problem, fastavro_fails, seeded_random):
    new = _changed(change)
    assert problem in check_backward_compatible(THING, new)
    if fastavro_fails:  # fastavro agrees: some old data no longer reads
        writer, reader = fastavro.parse_schema(THING), fastavro.parse_schema(new)
        failures = 0
        for record in generate_many(THING, 50):
            body = io.BytesIO()
            fastavro.schemaless_writer(body, writer, record)
            body.seek(0)
            try:
                fastavro.schemaless_reader(body, writer, reader)
            except Exception:
                failures += 1
        assert failures > 0


def test_a_long_does_not_read_as_an_int():
    old = _changed(_set_type("count", "long"))
    assert check_backward_compatible(old, THING) == ["Thing.count: type changed from long to int"]


def test_an_incompatible_change_of_a_real_schema_would_be_caught():
    released = released_versions()["1"]
    current = load_schemas(SCHEMA_DIR)

    file = copy.deepcopy(current["WorkerFile"])
    file["fields"].append({"name": "employer_count", "type": "long"})
    assert check_backward_compatible(released["WorkerFile"], file) == [
        "WorkerFile.employer_count: new field without a default"]

    event = copy.deepcopy(current["Event"])
    payload = _field_of(event, "payload")
    payload["type"] = [b for b in payload["type"] if b["name"] != "HonorAwardedPayload"]
    assert check_backward_compatible(released["Event"], event) == [
        "Event.payload[HonorAwardedPayload]: HonorAwardedPayload is no longer a branch of the union "
        f"({', '.join(b['name'] for b in payload['type'])})"]

    change = copy.deepcopy(current["WorkerFileChange"])
    _field_of(change, "version")["type"] = "string"
    assert check_backward_compatible(released["WorkerFileChange"], change) == [
        "WorkerFileChange.version: type changed from long to string"]
