"""The wire codec of every Kafka value: Avro, in one of two framings.

Single-object encoding (the default, no registry needed): a value is `C3 01` (the
marker), then the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
Parsing Canonical Form, then the Avro binary body (Avro specification, "Single-object
encoding"). Any Avro library decodes a value with the schema whose fingerprint it
carries, and every schema ever published is in `schemas/released/<version>/` (the
current ones in `schemas/avro/`), listed by fingerprint in
`schemas/released/fingerprints.json`.

Confluent wire format (`WORKERFILE_WIRE_FORMAT=confluent`, with
`WORKERFILE_SCHEMA_REGISTRY_URL`): the magic byte `00`, the 4-byte big-endian schema id
of the writer schema in the registry, then the same Avro body. The ids of the current
schemas are looked up once per process (`prepare`; `workerfile topics` registers them,
`streams/schema_registry.py`); a schema id met when reading is fetched once and cached.

Every reader reads both framings, whatever it writes; a Confluent-framed value read where
no registry URL is configured is a CodecError naming the variable.

Records travel in their canonical JSON form on this side (dates as `YYYY-MM-DD` strings,
timestamps as RFC 3339 strings): `decode_event` gives what `schemas.events.event_to_json_dict`
gives, so `processors.intake.validate_event` checks a decoded event like a JSON line.
Data written with any released schema is resolved to the current schema when read. A
WorkerFile's `version` (schema release 3) is in its JSON form only when it has one, as an
event's `ssn_legacy`: a file of an older release, or of the offline fold, has none.

`RejectedEvent.input` is a string in Avro as in JSON (the model is the source of truth):
the original Kafka value when it is UTF-8, else its base64 with `input_encoding` "base64";
the exact original bytes are `input.encode()` or `base64.b64decode(input)`.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import struct
import time
from dataclasses import dataclass
from typing import Any, Callable

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.validation import validate

from schemas.avro import (
    NAMESPACE, SCHEMA_DIR, load_schemas, payload_record_name, released_versions, schema_fingerprint,
)
from schemas.events import EVENT_TYPES, Envelope, event_to_json_dict

MARKER = b"\xc3\x01"
HEADER_SIZE = len(MARKER) + 8
CURRENT_VERSION = "current"
CONFLUENT_MAGIC = b"\x00"
CONFLUENT_HEADER_SIZE = len(CONFLUENT_MAGIC) + 4
SINGLE_OBJECT, CONFLUENT = "single-object", "confluent"
WIRE_FORMATS = (SINGLE_OBJECT, CONFLUENT)
WIRE_FORMAT_ENV, REGISTRY_URL_ENV = "WORKERFILE_WIRE_FORMAT", "WORKERFILE_SCHEMA_REGISTRY_URL"


class CodecError(ValueError):
    """A value cannot be encoded or decoded. The message says what is wrong with the
    framing or the schema, never the content of the record."""


class RegistryUnavailable(CodecError):
    """The schema registry of a Confluent-framed value could not be asked (not reachable,
    or a server error): the value itself may be fine, so a reader that can wait should
    stop or retry rather than set the record aside."""


# --- conversions between the JSON form and what fastavro reads and writes ------------------
# A converter is None when the value is the same in both forms (the usual case), so that
# only the paths that hold dates (and the event payload union) are walked.

Converter = Callable[[Any], Any] | None


class _NotADate(ValueError):
    pass


def _date_to_avro(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value
    if not (isinstance(value, str) and len(value) == 10 and value[4] == value[7] == "-"):
        raise _NotADate()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _NotADate() from None


def _date_to_json(value: dt.date) -> str:
    return value.isoformat()


def _converter(schema: Any, to_avro: bool) -> Converter:
    """The converter of values of an expanded schema, one direction."""
    if isinstance(schema, list):
        return _union_converter(schema, to_avro)
    if isinstance(schema, str):
        return None
    kind = schema["type"]
    if isinstance(kind, (dict, list)):
        return _converter(kind, to_avro)
    if kind == "int" and schema.get("logicalType") == "date":
        return _date_to_avro if to_avro else _date_to_json
    if kind == "array":
        item = _converter(schema["items"], to_avro)
        return None if item is None else (lambda values: [item(v) for v in values])
    if kind == "record":
        fields = [(f["name"], c) for f in schema["fields"] if (c := _converter(f["type"], to_avro)) is not None]
        return None if not fields else _record_converter(fields, to_avro)
    return None


def _record_converter(fields: list[tuple[str, Callable]], to_avro: bool) -> Callable:
    def convert(record: dict) -> dict:
        out = dict(record) if to_avro else record  # never change the caller's dict; fastavro's own is fine
        for name, convert_field in fields:
            if name in out:
                out[name] = convert_field(out[name])
        return out

    return convert


def _union_converter(branches: list, to_avro: bool) -> Converter:
    """["null", X] converts like X; a union of several records (the event payload) travels
    as (record name, value) in fastavro's tuple notation, chosen by the writer."""
    records = [b for b in branches if isinstance(b, dict) and b.get("type") == "record"]
    if len(records) > 1:
        by_name = {b["name"]: _converter(b, to_avro) for b in records}
        if to_avro:
            return lambda value: (value[0], by_name[value[0]](value[1]) if by_name[value[0]] else value[1])
        return lambda value: by_name[value[0]](value[1]) if by_name[value[0]] else value[1]
    converters = [c for b in branches if b != "null" and (c := _converter(b, to_avro)) is not None]
    if not converters:
        return None
    if len(converters) > 1:
        raise ValueError("only unions of null and one type that needs converting are supported")
    (inner,) = converters
    return lambda value: None if value is None else inner(value)


# --- the schemas ------------------------------------------------------------------------

@dataclass(frozen=True)
class Schema:
    """One writer schema the codec knows: a record name in a version."""

    name: str  # "Event", "WorkerFile", ...
    version: str  # a released version folder, or "current"
    fingerprint: bytes
    parsed: dict  # fastavro-parsed, for the reader and the writer
    to_avro: Converter = None  # only for current schemas
    to_json: Converter = None


def _schema(name: str, version: str, source: dict) -> Schema:
    parsed = fastavro.parse_schema(source)
    to_avro = to_json = None
    if version == CURRENT_VERSION:
        expanded = fastavro.parse_schema(source, expand=True)
        to_avro, to_json = _converter(expanded, True), _converter(expanded, False)
    return Schema(name, version, schema_fingerprint(source), parsed, to_avro, to_json)


def _load() -> tuple[dict[str, Schema], dict[bytes, Schema]]:
    current = {name: _schema(name, CURRENT_VERSION, s) for name, s in load_schemas(SCHEMA_DIR).items()}
    writers: dict[bytes, Schema] = {}
    for version, schemas in released_versions().items():
        for name, source in schemas.items():
            released = _schema(name, version, source)
            writers[released.fingerprint] = released
    for schema in current.values():  # an unchanged released schema decodes as the current one
        writers[schema.fingerprint] = schema
    return current, writers


CURRENT, WRITER_SCHEMAS = _load()
"""CURRENT: the schema each record is written with, by name. WRITER_SCHEMAS: every schema
the decoder accepts (released and current), by fingerprint."""

PAYLOAD_RECORD_OF_TYPE: dict[str, str] = {t: f"{NAMESPACE}.{payload_record_name(c)}" for t, c in EVENT_TYPES.items()}


# --- encoding and decoding ----------------------------------------------------------------

def encode(name: str, record: dict) -> bytes:
    """A record in its JSON form (WorkerFile, WorkerFileChange, ServiceEvent, RejectedEvent,
    Event, ...) as one Kafka value written with the current schema, in the framing of this
    process (`wire()`: single-object encoding unless WORKERFILE_WIRE_FORMAT=confluent)."""
    schema = _current(name)
    record = avro_record(name, record)
    body = io.BytesIO()
    body.write(_WIRE.header(schema) if _WIRE is not None else wire().header(schema))
    try:
        fastavro.schemaless_writer(body, schema.parsed, record)
    except Exception as err:
        raise CodecError(f"cannot encode {name}: {_where_invalid(schema, record, err)}") from None
    return body.getvalue()


def _current(name: str) -> Schema:
    schema = CURRENT.get(name)
    if schema is None:
        raise CodecError(f"no Avro schema named {name!r} (known: {', '.join(sorted(CURRENT))})")
    return schema


def avro_record(name: str, record: dict) -> dict:
    """A record's JSON form as fastavro writes it with the current schema: dates as
    datetime.date, and an Event's payload as (payload record name, payload), the branch
    chosen by `type` (several payload records look alike, so fastavro must not guess)."""
    schema = _current(name)
    if not isinstance(record, dict):
        raise CodecError(f"cannot encode {name}: expected a dict, got {type(record).__name__}")
    if name == "Event":
        branch = PAYLOAD_RECORD_OF_TYPE.get(record.get("type"))  # type: ignore[arg-type]
        if branch is None:
            raise CodecError("cannot encode Event: unknown event type")
        record = {**record, "payload": (branch, record.get("payload"))}
    if schema.to_avro is None:
        return record
    try:
        return schema.to_avro(record)
    except Exception as err:
        raise CodecError(f"cannot encode {name}: {_where_invalid(schema, record, err)}") from None


def _where_invalid(schema: Schema, record: Any, err: Exception) -> str:
    """Which fields do not fit the schema (their paths, not their values)."""
    if isinstance(err, _NotADate):
        return "a date field is not a YYYY-MM-DD date"
    try:
        validate(record, schema.parsed, raise_errors=True)
    except Exception as invalid:  # fastavro's ValidationError lists the failing fields
        fields = [e.field for e in getattr(invalid, "errors", []) if getattr(e, "field", None)]
        if fields:
            return "does not match the schema at " + ", ".join(f.removeprefix(f"{NAMESPACE}.") for f in fields)
    return f"does not match the schema ({type(err).__name__})"


def encode_event(event: Envelope) -> bytes:
    """A validated event as a Kafka value (the `Event` record, payload branch chosen by `type`)."""
    return encode("Event", event_to_json_dict(event))


def decode(data: bytes) -> tuple[str, dict]:
    """A Kafka value in either framing, written with any released, current or registered
    schema: (record name, the record in its JSON form, resolved to the current schema).
    Raises CodecError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise CodecError("empty value: no bytes")
    if data[:1] == CONFLUENT_MAGIC:
        if len(data) < CONFLUENT_HEADER_SIZE:
            raise CodecError(f"truncated header: {len(data)} bytes, a value in the Confluent wire format has at "
                             f"least {CONFLUENT_HEADER_SIZE} (magic byte 00 and a 4-byte schema id)")
        (schema_id,) = struct.unpack(">I", data[1:CONFLUENT_HEADER_SIZE])
        return _decode_body(data, CONFLUENT_HEADER_SIZE, wire().writer_of_id(schema_id))
    if len(data) < HEADER_SIZE:
        if data[:2] != MARKER[: len(data[:2])]:
            raise CodecError(_bad_marker(data))
        raise CodecError(f"truncated header: {len(data)} bytes, a single-object encoded value has at "
                         f"least {HEADER_SIZE} (marker C3 01 and an 8-byte schema fingerprint)")
    if data[:2] != MARKER:
        raise CodecError(_bad_marker(data))
    writer = WRITER_SCHEMAS.get(data[2:HEADER_SIZE])
    if writer is None:
        (value,) = struct.unpack("<q", data[2:HEADER_SIZE])
        raise CodecError(f"unknown writer schema fingerprint {data[2:HEADER_SIZE].hex()} (CRC-64-AVRO {value}): "
                         f"not the current or a released workerfile schema")
    return _decode_body(data, HEADER_SIZE, writer)


def _decode_body(data: bytes, start: int, writer: Schema) -> tuple[str, dict]:
    reader = CURRENT.get(writer.name)
    if reader is None:
        raise CodecError(f"{writer.name} (schema version {writer.version}) is no longer read by this version")
    body = io.BytesIO(data)
    body.seek(start)
    try:
        record = fastavro.schemaless_reader(
            body, writer.parsed, None if writer is reader else reader.parsed,
            return_record_name=True, return_record_name_override=True)
    except SchemaResolutionError:
        raise CodecError(f"{writer.name} of schema version {writer.version} does not resolve to the current "
                         f"schema (a value the current schema cannot hold)") from None
    except Exception as err:
        raise CodecError(f"corrupt or truncated Avro body of {writer.name} (schema version {writer.version}, "
                         f"{len(data) - start} bytes): {type(err).__name__}") from None
    left = len(data) - body.tell()
    if left:
        raise CodecError(f"{left} bytes left after the {writer.name} record (schema version {writer.version})")
    if reader.to_json is not None:
        record = reader.to_json(record)
    if writer.name == "Event" and record.get("ssn_legacy") is None:
        record.pop("ssn_legacy", None)  # as event_to_json_dict: only when there is one
    elif writer.name == "WorkerFile" and record.get("version") is None:
        record.pop("version", None)  # as derive_file: only a published file has one
    return writer.name, record


def _bad_marker(data: bytes) -> str:
    found = " ".join(f"{b:02X}" for b in data[:2])
    hint = " (looks like JSON)" if data[:1] in (b"{", b"[") else ""
    return (f"not an Avro single-object encoded value: starts with {found}{hint}, expected the marker C3 01 "
            f"(or the magic byte 00 of the Confluent wire format)")


def decode_event(data: bytes) -> dict:
    """A Kafka event value as the canonical JSON dict (validate it with processors.intake.validate_event)."""
    name, record = decode(data)
    if name != "Event":
        raise CodecError(f"expected an Event, got a {name}")
    return record



# --- the framing of this process ---------------------------------------------------------

class Wire:
    """How this process frames what it writes, and the registry it reads schema ids from.

    wire_format: "single-object" or "confluent". registry_url: the Confluent-compatible
    API (needed to write the Confluent framing, and to read it)."""

    def __init__(self, wire_format: str = SINGLE_OBJECT, registry_url: str | None = None):
        if wire_format not in WIRE_FORMATS:
            raise CodecError(f"{WIRE_FORMAT_ENV} must be one of {', '.join(WIRE_FORMATS)}, not {wire_format!r}")
        if wire_format == CONFLUENT and not registry_url:
            raise CodecError(f"{WIRE_FORMAT_ENV}=confluent needs the schema registry: set {REGISTRY_URL_ENV} "
                             f"(e.g. http://127.0.0.1:8081/apis/ccompat/v7)")
        self.wire_format = wire_format
        self.registry_url = registry_url or None
        self._client = None
        self._ids: dict[str, int] | None = None  # current schema name -> its id (confluent)
        self._headers: dict[str, bytes] = {}
        self._by_id: dict[int, Schema] = {}
        self._unknown: dict[int, float] = {}  # schema id -> when the registry said it has none

    def client(self):
        if self.registry_url is None:
            return None
        if self._client is None:
            from streams.schema_registry import RegistryClient, RegistryError

            try:
                self._client = RegistryClient(self.registry_url)
            except RegistryError as err:
                raise CodecError(f"{REGISTRY_URL_ENV}: {err}") from None
        return self._client

    def prepare(self) -> "Wire":
        """Confluent: looks up the id of every current value schema now (raises CodecError
        naming the subject when one is not registered); single-object: nothing to do."""
        if self.wire_format == CONFLUENT and self._ids is None:
            from streams.schema_registry import RegistryError, writer_ids

            try:
                self._ids = writer_ids(self.client())
            except RegistryError as err:
                raise CodecError(str(err)) from None
        return self

    def header(self, schema: Schema) -> bytes:
        """The framing bytes before the Avro body of a value written with `schema`."""
        if self.wire_format == SINGLE_OBJECT:
            return MARKER + schema.fingerprint
        header = self._headers.get(schema.name)
        if header is None:
            self.prepare()
            schema_id = self._ids.get(schema.name)  # type: ignore[union-attr]
            if schema_id is None:
                raise CodecError(f"no registered schema id for {schema.name}: no topic of "
                                 f"streams/schema_registry.VALUE_SCHEMAS carries it")
            header = self._headers[schema.name] = CONFLUENT_MAGIC + struct.pack(">I", schema_id)
        return header

    def writer_of_id(self, schema_id: int) -> Schema:
        """The writer schema of a Confluent-framed value, fetched from the registry once."""
        schema = self._by_id.get(schema_id)
        if schema is not None:
            return schema
        client = self.client()
        if client is None:
            raise CodecError(f"a value in the Confluent wire format (magic byte 00, schema id {schema_id}), but no "
                             f"schema registry is configured to read it: set {REGISTRY_URL_ENV}")
        seen = self._unknown.get(schema_id)
        if seen is not None and time.monotonic() - seen < 60:
            raise CodecError(f"unknown schema id {schema_id}: not in the schema registry {client.url}")
        from streams.schema_registry import RegistryError

        try:
            answer = client.schema_by_id(schema_id)
        except RegistryError as err:
            if err.status == 404:
                self._unknown[schema_id] = time.monotonic()
                raise CodecError(f"unknown schema id {schema_id}: not in the schema registry {client.url}") from None
            if err.status is None or err.status >= 500:
                raise RegistryUnavailable(f"cannot fetch schema id {schema_id}: {err}") from None
            raise CodecError(f"cannot fetch schema id {schema_id}: {err}") from None
        schema = self._by_id[schema_id] = _registered_schema(schema_id, answer)
        return schema


def _registered_schema(schema_id: int, answer: dict) -> Schema:
    """A schema the registry gave for an id, as a writer schema of the codec: the known
    Schema when it is a current or released one (same fingerprint), else a new one."""
    kind = answer.get("schemaType", "AVRO")
    if kind != "AVRO":
        raise CodecError(f"schema id {schema_id} is a {kind} schema, not Avro")
    if answer.get("references"):
        raise CodecError(f"schema id {schema_id} uses schema references, which this reader does not resolve "
                         f"(workerfile registers self-contained schemas)")
    try:
        source = json.loads(answer["schema"])
        known = WRITER_SCHEMAS.get(schema_fingerprint(source))
        if known is not None:
            return known
        name = source["name"].rsplit(".", 1)[-1] if isinstance(source, dict) else None
        parsed = fastavro.parse_schema(source)
    except Exception as err:
        raise CodecError(f"schema id {schema_id} is not a valid Avro record schema ({type(err).__name__})") from None
    if name not in CURRENT:
        raise CodecError(f"schema id {schema_id} is a {name} schema, not a record this version reads")
    return Schema(name, f"registry id {schema_id}", schema_fingerprint(source), parsed)


_WIRE: Wire | None = None


def wire() -> Wire:
    """This process's framing, from WORKERFILE_WIRE_FORMAT and WORKERFILE_SCHEMA_REGISTRY_URL
    on first use (or as set by `configure`)."""
    global _WIRE
    if _WIRE is None:
        _WIRE = Wire(os.environ.get(WIRE_FORMAT_ENV) or SINGLE_OBJECT, os.environ.get(REGISTRY_URL_ENV) or None)
    return _WIRE


def configure(wire_format: str | None = None, registry_url: str | None = None) -> Wire:
    """Sets this process's framing (None: from the environment, as `wire()`); returns it."""
    global _WIRE
    _WIRE = None
    if wire_format is None and registry_url is None:
        return wire()
    _WIRE = Wire(wire_format or SINGLE_OBJECT, registry_url)
    return _WIRE


def prepare() -> Wire:
    """For a process that writes: checks the framing settings and, for the Confluent wire
    format, looks up the schema ids now, so no record waits for the registry and a missing
    registration stops the process at start. Raises CodecError."""
    return wire().prepare()


# --- worker-file-rows: the Avro body alone, its schema named in Apicurio's headers ---------
# The flat rows (schemas.outputs.WorkerFileRow) are read by Kafka Connect with Apicurio
# Registry's AvroConverter (deploy/connect/). That converter finds a value's schema either
# in a prefix of the value (a magic byte and an id the registry assigned) or, when the
# record's headers name one, in the headers — then the value is the plain Avro body. The
# worker cannot know a registry's ids without asking it, so it names the schema by
# coordinates the registry is given beforehand (`workerfile connect register`):
#   apicurio.value.groupId    = "workerfile"
#   apicurio.value.artifactId = "cn.workerfile.WorkerFileRow"
#   apicurio.value.version    = the schema's fingerprint in hex, as in fingerprints.json
# So the worker needs no registry, and the bytes are the same with or without one.

ROW_RECORD = "WorkerFileRow"
ROW_GROUP = "workerfile"
ROW_ARTIFACT = f"{NAMESPACE}.{ROW_RECORD}"
HEADER_GROUP = "apicurio.value.groupId"
HEADER_ARTIFACT = "apicurio.value.artifactId"
HEADER_VERSION = "apicurio.value.version"


def row_version(schema: Schema) -> str:
    """The registry version under which a WorkerFileRow schema is registered: its fingerprint (hex)."""
    return schema.fingerprint.hex()


def row_headers() -> tuple[tuple[str, bytes], ...]:
    """The headers of every value written with the current WorkerFileRow schema."""
    return ((HEADER_GROUP, ROW_GROUP.encode()), (HEADER_ARTIFACT, ROW_ARTIFACT.encode()),
            (HEADER_VERSION, row_version(_current(ROW_RECORD)).encode()))


def encode_row(row: dict) -> tuple[bytes, tuple[tuple[str, bytes], ...]]:
    """A WorkerFileRow in its JSON form as (the plain Avro body, the headers naming its schema)."""
    schema = _current(ROW_RECORD)
    record = avro_record(ROW_RECORD, row)
    body = io.BytesIO()
    try:
        fastavro.schemaless_writer(body, schema.parsed, record)
    except Exception as err:
        raise CodecError(f"cannot encode {ROW_RECORD}: {_where_invalid(schema, record, err)}") from None
    return body.getvalue(), row_headers()


def decode_row(data: bytes, headers) -> dict:
    """A `worker-file-rows` value and its headers ((name, bytes) pairs) -> the row's JSON form,
    resolved to the current schema. Raises CodecError."""
    found = {name: bytes(value) for name, value in headers or () if value is not None}
    if found.get(HEADER_GROUP) != ROW_GROUP.encode() or found.get(HEADER_ARTIFACT) != ROW_ARTIFACT.encode():
        raise CodecError(f"not a {ROW_RECORD}: the headers {HEADER_GROUP} / {HEADER_ARTIFACT} do not name it")
    try:
        writer = WRITER_SCHEMAS.get(bytes.fromhex(found.get(HEADER_VERSION, b"").decode("ascii")))
    except ValueError:
        writer = None
    if writer is None or writer.name != ROW_RECORD:
        raise CodecError(f"unknown {ROW_RECORD} schema version {found.get(HEADER_VERSION)!r}")
    reader = _current(ROW_RECORD)
    body = io.BytesIO(bytes(data))
    try:
        record = fastavro.schemaless_reader(body, writer.parsed, None if writer is reader else reader.parsed)
    except Exception as err:
        raise CodecError(f"corrupt or truncated Avro body of {ROW_RECORD}: {type(err).__name__}") from None
    if body.tell() != len(data):
        raise CodecError(f"{len(data) - body.tell()} bytes left after the {ROW_RECORD} record")
    return reader.to_json(record) if reader.to_json is not None else record
