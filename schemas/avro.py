"""Avro schemas generated from the pydantic models, which stay the single source of truth.

`python -m schemas.avro` (re)writes `schemas/avro/`; `--check` only compares it with the
models (and `schemas/released/fingerprints.json` with the released folders); `--release N`
copies it into `schemas/released/N/` after checking that it can read the data of every
older release, and rewrites `fingerprints.json`. Released folders are kept forever: the
stream decoder accepts data written with any of them.

Layout (a *schema set*, from release 3 on): one file per named type, named by its full
name (`cn.workerfile.SubsidyGrant.avsc`), which refers to the other named types by name, so
that every named type is defined exactly once and the folder is what avro-maven-plugin
(`schemas/java/pom.xml`), `fastavro.schema.load_schema(path)` or any Avro parser that
reads several files takes as it is. The records written on Kafka (Event, WorkerFile, ...)
are the records no other type refers to; `load_schemas` gives each of them
self-contained, every named type defined at its first use, which is also what its
fingerprint is computed from (the Parsing Canonical Form does not depend on the layout).
Releases 1 and 2 are one self-contained file per record written on Kafka (`WorkerFile.avsc`,
nested types defined inline, hence several times in the folder); they stay as they are.

`schemas/released/fingerprints.json`: every fingerprint written on the wire by a released
schema -> its record and, per release, its file: the key is the 8 bytes that follow the
marker C3 01 in hex (the little-endian CRC-64-AVRO of the Parsing Canonical Form), and
`parsing_fingerprint64` is the same number as Java's `SchemaNormalization.parsingFingerprint64`
gives it (a signed long).

Type mapping (namespace `cn.workerfile`):

- str -> string, int -> long, float -> double, bool -> boolean, bytes -> bytes;
- datetime.date -> int with logicalType date (days since 1970-01-01);
- datetime.datetime -> string, RFC 3339 with its UTC offset (`2026-03-01T09:00:00+08:00`):
  Avro timestamps are instants without an offset, and the offset is part of the event;
- Literal of strings -> enum when every symbol is a valid Avro name (named after the
  Literal alias in schemas.events / schemas.outputs, else `<Model><Field>`), else string;
  the Literals of `STRING_LITERALS` are strings on the wire whose symbols are listed in
  the string's `x-symbols` (metadata, not part of the canonical form);
- X | None -> ["null", X] with default null; list[X] -> array;
- a nested model -> a record named after its class, defined once and then referred to by name.

Pydantic constraints (lengths, patterns, bounds, validators) have no Avro counterpart:
a decoded record is validated with the model again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import re
import shutil
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Union, get_args, get_origin

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from schemas import events, outputs
from schemas.events import EVENT_CLASSES, Envelope

NAMESPACE = "cn.workerfile"
SCHEMA_DIR = Path(__file__).parent / "avro"
RELEASED_DIR = Path(__file__).parent / "released"
FINGERPRINTS_PATH = RELEASED_DIR / "fingerprints.json"
OUTPUT_MODELS: tuple[type[BaseModel], ...] = (
    outputs.WorkerFile, outputs.WorkerFileChange, outputs.ServiceEvent, outputs.RejectedEvent,
    outputs.AccessLogEntry, outputs.OperatorCommand, outputs.WorkerFileRow,
)
TIMESTAMP_DOC = ("RFC 3339 timestamp with its UTC offset, e.g. 2026-03-01T09:00:00+08:00; a string "
                 "rather than an Avro timestamp so that the offset is kept exactly.")
DATE = {"type": "int", "logicalType": "date"}
AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PRIMITIVE_NAMES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})

# Literals whose symbols are Avro names but which travel as strings, with why. Each keeps
# its symbols in `x-symbols` of the string.
STRING_LITERALS = {
    # releases 1 and 2 wrote changed_sections as strings, and Avro resolves no string to
    # an enum (fastavro and Java alike): an enum would make their values unreadable.
    "ChangedSection",
    # a grant's status has a default ("offered", for files of releases before it), and Avro
    # Java's compiler of a schema set refuses an enum default whose enum is defined in
    # another file of the set (it checks the default before it resolves the name)
    "GrantStatus",
}

_PRIMITIVES: dict[Any, Any] = {str: "string", int: "long", float: "double", bool: "boolean", bytes: "bytes",
                               dt.datetime: "string", dt.date: DATE}


def _literal_names() -> dict[Any, str]:
    """The module-level Literal aliases of the model modules (`ContractType`, ...), by value."""
    names: dict[Any, str] = {}
    for module in (events, outputs):
        for name, value in vars(module).items():
            if get_origin(value) is Literal:
                names.setdefault(value, name)
    return names


def _is_avro_name(symbol: object) -> bool:
    return isinstance(symbol, str) and AVRO_NAME.fullmatch(symbol) is not None


def _camel(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


def _doc(model: type[BaseModel]) -> str | None:
    doc = model.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if doc else None


class SchemaBuilder:
    """Builds one self-contained Avro schema: each named type is defined at its first use
    and referred to by name afterwards."""

    def __init__(self) -> None:
        self.defined: dict[str, Any] = {}
        self.literal_names = _literal_names()

    def record(self, model: type[BaseModel], name: str | None = None, doc: str | None = None,
               overrides: dict[str, Callable[[], Any]] | None = None) -> dict | str:
        """The record of `model`, or its name when already defined. `overrides` gives the
        Avro type of some fields (called in field order, so definitions stay in order)."""
        name = name or model.__name__
        if name in self.defined:
            if self.defined[name] is not model:
                raise ValueError(f"two different Avro types are named {name}")
            return name
        self.defined[name] = model
        fields = []
        for field_name, info in model.model_fields.items():
            if overrides and field_name in overrides:
                fields.append({"name": field_name, "type": overrides[field_name]()})
            else:
                fields.append(self.field(name, field_name, info))
        schema: dict[str, Any] = {"type": "record", "name": name, "fields": fields}
        doc = doc or _doc(model)
        if doc:
            schema["doc"] = doc
        return schema

    def field(self, record_name: str, field_name: str, info: FieldInfo) -> dict:
        annotation = info.annotation
        avro_type = self.type_of(annotation, record_name, field_name)
        field: dict[str, Any] = {"name": field_name, "type": avro_type}
        if info.description:
            field["doc"] = info.description
        elif dt.datetime in (_strip(annotation), *map(_strip, get_args(annotation))):
            field["doc"] = TIMESTAMP_DOC
        nullable = isinstance(avro_type, list) and avro_type[0] == "null"
        if not info.is_required():
            default = info.get_default(call_default_factory=True)
            if default is not None and nullable:
                raise ValueError(f"{record_name}.{field_name}: a non-null default of a nullable field is not supported")
            if isinstance(default, list) and not default and isinstance(avro_type, dict) and avro_type["type"] == "array":
                pass  # an empty array: Avro's default [] too
            elif not isinstance(default, (str, int, float, bool, type(None))):
                raise ValueError(f"{record_name}.{field_name}: default {default!r} has no Avro form here")
            field["default"] = default
        elif nullable:
            field["default"] = None  # so that a reader of this schema copes with data that lacks the field
        return field

    def type_of(self, annotation: Any, record_name: str, field_name: str) -> Any:
        annotation = _strip(annotation)
        origin = get_origin(annotation)
        if annotation is None or annotation is type(None):
            return "null"
        if origin in (Union, types.UnionType):
            branches = [self.type_of(a, record_name, field_name) for a in get_args(annotation)]
            return sorted(branches, key=lambda b: b != "null")  # null first, then in declared order
        if origin is Literal:
            return self.literal(annotation, record_name, field_name)
        if origin is list:
            (item,) = get_args(annotation)
            return {"type": "array", "items": self.type_of(item, record_name, field_name)}
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return self.record(annotation)
        if annotation in _PRIMITIVES:
            return _PRIMITIVES[annotation]
        raise TypeError(f"{record_name}.{field_name}: no Avro mapping for {annotation!r}")

    def literal(self, annotation: Any, record_name: str, field_name: str) -> Any:
        symbols = list(get_args(annotation))
        if not all(_is_avro_name(s) for s in symbols):
            if all(isinstance(s, str) for s in symbols):
                return "string"
            raise TypeError(f"{record_name}.{field_name}: only Literals of strings are supported")
        name = self.literal_names.get(annotation) or record_name + _camel(field_name)
        if name in STRING_LITERALS:
            return {"type": "string", "x-symbols": symbols}
        if name in self.defined:
            if self.defined[name] != symbols:
                raise ValueError(f"two different Avro types are named {name}")
            return name
        self.defined[name] = symbols
        return {"type": "enum", "name": name, "symbols": symbols}


def _strip(annotation: Any) -> Any:
    """`Annotated[X, ...]` -> X (the constraints have no Avro form)."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def payload_record_name(event_class: type[Envelope]) -> str:
    """The Avro record of an event type's payload: the payload class name."""
    return event_class.model_fields["payload"].annotation.__name__


def event_schema() -> dict:
    """The one `Event` record of all event types; `payload` is a union of the payload records."""
    builder = SchemaBuilder()
    mapping = ", ".join(f"{cls.model_fields['type'].annotation.__args__[0]} -> {payload_record_name(cls)}"
                        for cls in EVENT_CLASSES)
    doc = ("An event of the contract (section 2), any type. `type` names the event type and `payload` is the "
           f"record of that type: {mapping}. `ssn_legacy` is the 15-digit number the event was sent with, if any.")

    def payload_union() -> list:
        return [builder.record(cls.model_fields["payload"].annotation) for cls in EVENT_CLASSES]

    schema = builder.record(Envelope, name="Event", doc=doc, overrides={"payload": payload_union})
    return {**schema, "namespace": NAMESPACE}


def model_schema(model: type[BaseModel]) -> dict:
    """The Avro record of one output model (WorkerFile, ...), with its nested types."""
    return {**SchemaBuilder().record(model), "namespace": NAMESPACE}


def generate_schemas() -> dict[str, dict]:
    """Every Avro schema written on Kafka, self-contained, by record name."""
    schemas = {"Event": event_schema()}
    for model in OUTPUT_MODELS:
        schemas[model.__name__] = model_schema(model)
    return schemas


def generate_schema_set() -> dict[str, dict]:
    """The schema set: every named type once, by full name, referring to the others by name."""
    definitions: dict[str, dict] = {}
    for schema in generate_schemas().values():
        split_schema(schema, definitions)
    return dict(sorted(definitions.items()))


def render(schema: dict) -> str:
    """The committed text of a schema: pretty, sorted keys, so regenerating is byte-stable."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- the schema set: one file per named type ----------------------------------------------

def _kind_of(schema: Any) -> Any:
    return schema["type"] if isinstance(schema, dict) else schema


def split_schema(schema: dict, definitions: dict[str, dict]) -> str:
    """Put every named type that self-contained `schema` defines into `definitions` (full
    name -> definition with its namespace, referring to named types by name) and return
    its full name. The same name defined differently twice is an error."""
    return _split(schema, None, definitions)


def _split(schema: Any, namespace: str | None, definitions: dict[str, dict]) -> Any:
    if isinstance(schema, list):
        return [_split(branch, namespace, definitions) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema["type"]
    if isinstance(kind, (dict, list)):
        return {**schema, "type": _split(kind, namespace, definitions)}
    if kind == "array":
        return {**schema, "items": _split(schema["items"], namespace, definitions)}
    if kind == "map":
        return {**schema, "values": _split(schema["values"], namespace, definitions)}
    if kind not in _NAMED:
        return schema
    own = schema.get("namespace", namespace) if "." not in schema["name"] else schema["name"].rpartition(".")[0]
    short = schema["name"].rpartition(".")[2]
    full = f"{own}.{short}" if own else short
    definition = {**schema, "name": short, **({"namespace": own} if own else {})}
    if kind == "record":
        definition["fields"] = [{**f, "type": _split(f["type"], own, definitions)} for f in schema["fields"]]
    if full in definitions and definitions[full] != definition:
        raise ValueError(f"two different Avro types are named {full}")
    definitions[full] = definition
    return short if own == namespace else full


def _full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def references(definition: dict) -> set[str]:
    """The full names of the named types a definition refers to."""
    found: set[str] = set()

    def walk(schema: Any, namespace: str | None) -> None:
        if isinstance(schema, str):
            if schema not in PRIMITIVE_NAMES:
                found.add(_full_name(schema, namespace))
        elif isinstance(schema, list):
            for branch in schema:
                walk(branch, namespace)
        elif isinstance(schema, dict):
            kind = schema["type"]
            if isinstance(kind, str) and kind in _NAMED:
                raise ValueError(f"{_full_name(schema['name'], namespace)} is defined inside another type")
            if kind == "array":
                walk(schema["items"], namespace)
            elif kind == "map":
                walk(schema["values"], namespace)
            else:
                walk(kind, namespace)

    namespace = definition.get("namespace")
    for field in definition.get("fields", []):
        walk(field["type"], namespace)
    return found


def wire_names(definitions: dict[str, dict]) -> list[str]:
    """The records of a schema set that no other type refers to: those written on Kafka."""
    referred = set().union(*(references(d) for d in definitions.values())) if definitions else set()
    return sorted(n for n, d in definitions.items() if d["type"] == "record" and n not in referred)


def inline(name: str, definitions: dict[str, dict]) -> dict:
    """The self-contained schema of the named type `name` of a schema set: every named type
    defined at its first use (depth first, in field order) and referred to by name after."""
    defined: set[str] = set()

    def named(full: str, enclosing: str | None) -> Any:
        if full in defined:
            return full.rpartition(".")[2] if full.rpartition(".")[0] == (enclosing or "") else full
        if full not in definitions:
            raise ValueError(f"unknown Avro type {full}")
        defined.add(full)
        definition = dict(definitions[full])
        own = definition.get("namespace")
        if enclosing is not None and own == enclosing:
            del definition["namespace"]  # nested in its own namespace, as a generator writes it
        if definition["type"] == "record":
            definition["fields"] = [{**f, "type": walk(f["type"], own)} for f in definition["fields"]]
        return definition

    def walk(schema: Any, namespace: str | None) -> Any:
        if isinstance(schema, str):
            return schema if schema in PRIMITIVE_NAMES else named(_full_name(schema, namespace), namespace)
        if isinstance(schema, list):
            return [walk(branch, namespace) for branch in schema]
        kind = schema["type"]
        if kind == "array":
            return {**schema, "items": walk(schema["items"], namespace)}
        if kind == "map":
            return {**schema, "values": walk(schema["values"], namespace)}
        if isinstance(kind, str) and kind in PRIMITIVE_NAMES:
            return schema
        if isinstance(kind, str) and kind in _NAMED:
            raise ValueError(f"{_full_name(schema['name'], namespace)} is defined inside another type")
        return {**schema, "type": walk(kind, namespace)}

    return named(name, None)


def load_definitions(folder: Path) -> dict[str, dict]:
    """The schema set of a folder, by full name: one file per named type, named by its full
    name, defining exactly that type (a named type defined inside another is an error)."""
    definitions: dict[str, dict] = {}
    for path in sorted(folder.glob("*.avsc")):
        definition = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(definition, dict) or definition.get("type") not in _NAMED:
            raise ValueError(f"{path.name}: not a named Avro type (record, enum, fixed)")
        full = _full_name(definition["name"], definition.get("namespace"))
        if path.stem != full:
            raise ValueError(f"{path.name} defines {full}: the file of a named type is named <full name>.avsc")
        try:
            references(definition)
        except ValueError as err:
            raise ValueError(f"{path.name}: {err}; each named type is defined once, in its own file") from None
        definitions[full] = definition
    return definitions


def is_schema_set(folder: Path) -> bool:
    """Whether a folder is a schema set (release 3 on) rather than one self-contained file
    per record (releases 1 and 2): its files are named by full names."""
    stems = [p.stem for p in folder.glob("*.avsc")]
    namespaced = [s for s in stems if "." in s]
    if namespaced and len(namespaced) != len(stems):
        raise ValueError(f"{folder}: both <full name>.avsc and <Name>.avsc files; a folder is one layout or the other")
    return bool(namespaced)


def load_schemas(folder: Path) -> dict[str, dict]:
    """The records of a folder written on Kafka, each self-contained, by record name."""
    if not is_schema_set(folder):
        return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.avsc"))}
    definitions = load_definitions(folder)
    return {name.rpartition(".")[2]: inline(name, definitions) for name in wire_names(definitions)}


def released_folders() -> dict[str, Path]:
    """Every released version folder (`schemas/released/<version>/`), oldest first."""
    folders = [p for p in RELEASED_DIR.iterdir() if p.is_dir()] if RELEASED_DIR.is_dir() else []
    return {p.name: p for p in sorted(folders, key=lambda p: (len(p.name), p.name))}


def released_versions() -> dict[str, dict[str, dict]]:
    """The records of every released version, self-contained, oldest first."""
    return {version: load_schemas(folder) for version, folder in released_folders().items()}


# --- fingerprints -------------------------------------------------------------------------

def schema_fingerprint(schema: dict | list | str) -> bytes:
    """The 8 bytes that follow the marker: CRC-64-AVRO of the Parsing Canonical Form, little-endian."""
    parsed = fastavro.parse_schema(schema)
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))  # fastavro gives it little-endian


def fingerprint_index() -> dict[str, dict]:
    """What `schemas/released/fingerprints.json` holds: the wire bytes of every released
    fingerprint (hex) -> the record's full name, the fingerprint as a signed 64-bit number
    (Java's SchemaNormalization.parsingFingerprint64) and, per release, its file (relative
    to schemas/released/). In order of first release, then name."""
    index: dict[str, dict] = {}
    for version, folder in released_folders().items():
        schema_set = is_schema_set(folder)
        for name, schema in load_schemas(folder).items():
            wire = schema_fingerprint(schema)
            full = _full_name(schema["name"], schema.get("namespace"))
            entry = index.setdefault(wire.hex(), {
                "name": full, "parsing_fingerprint64": int.from_bytes(wire, "little", signed=True), "releases": {}})
            if entry["name"] != full:
                raise ValueError(f"{full} and {entry['name']} have the same fingerprint {wire.hex()}")
            entry["releases"][version] = f"{version}/{full if schema_set else name}.avsc"
    return index


def render_fingerprints(index: dict[str, dict]) -> str:
    return json.dumps(index, indent=2, ensure_ascii=False) + "\n"


def stale_fingerprints() -> bool:
    """Whether the committed fingerprints.json differs from what the released folders give."""
    committed = FINGERPRINTS_PATH.read_text(encoding="utf-8") if FINGERPRINTS_PATH.is_file() else None
    return committed != render_fingerprints(fingerprint_index())


def write_fingerprints() -> Path:
    FINGERPRINTS_PATH.write_text(render_fingerprints(fingerprint_index()), encoding="utf-8")
    return FINGERPRINTS_PATH


# --- backward compatibility -------------------------------------------------------------

_PROMOTIONS = {"int": {"long", "float", "double"}, "long": {"float", "double"}, "float": {"double"},
               "string": {"bytes"}, "bytes": {"string"}}
_NAMED = {"record", "enum", "fixed"}


def check_backward_compatible(old: dict, new: dict) -> list[str]:
    """Problems that stop `new` (reader) from reading data written with `old` (writer),
    by the Avro schema resolution rules; an empty list means compatible.

    Removed fields are fine; an added field needs a default; a type may change only by an
    Avro promotion (int -> long -> float -> double, string <-> bytes); named types keep
    their name (or list the old one in `aliases`); an enum may not lose a symbol (unless
    it has a default); every branch of an old union must find a branch in the new type.
    A changed logical type (e.g. a date that became a plain int) is reported too.
    """
    problems: list[str] = []
    writer = fastavro.parse_schema(old, expand=True)
    reader = fastavro.parse_schema(new, expand=True)
    _resolve(writer, reader, _short(_name(writer)) or _kind(writer), problems)
    return problems


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return _kind(schema["type"])
    return schema


def _name(schema: Any) -> str | None:
    return schema.get("name") if isinstance(schema, dict) and _kind(schema) in _NAMED else None


def _short(name: str | None) -> str | None:
    return name.rsplit(".", 1)[-1] if name else None


def _label(schema: Any) -> str:
    return _short(_name(schema)) or _kind(schema)


def _logical(schema: Any) -> str | None:
    return schema.get("logicalType") if isinstance(schema, dict) else None


def _matches(writer: Any, reader: Any) -> bool:
    """Whether `reader` is the union branch Avro picks for `writer` (same type, a
    promotion, or the same named type)."""
    w, r = _kind(writer), _kind(reader)
    if w in _NAMED:
        return w == r and (_name(writer) == _name(reader) or _name(writer) in _aliases(reader))
    return w == r or r in _PROMOTIONS.get(w, ())


def _aliases(schema: dict) -> set[str]:
    namespace = schema["name"].rpartition(".")[0]
    return {a if "." in a else f"{namespace}.{a}".lstrip(".") for a in schema.get("aliases", [])}


def _resolve(writer: Any, reader: Any, path: str, problems: list[str]) -> None:
    if isinstance(writer, list):  # every branch the old schema may have written must resolve
        several = sum(branch != "null" for branch in writer) > 1
        for branch in writer:
            named = _short(_name(branch))
            _resolve(branch, reader, f"{path}[{named}]" if named and several else path, problems)
        return
    if isinstance(reader, list):
        match = next((branch for branch in reader if _matches(writer, branch)), None)
        if match is None:
            problems.append(f"{path}: {_label(writer)} is no longer a branch of the union "
                            f"({', '.join(_label(b) for b in reader)})")
        else:
            _resolve(writer, match, path, problems)
        return
    if not _matches(writer, reader):
        problems.append(f"{path}: type changed from {_label(writer)} to {_label(reader)}")
        return
    if _logical(writer) != _logical(reader):
        problems.append(f"{path}: logical type changed from {_logical(writer)} to {_logical(reader)}")
    kind = _kind(writer)
    if kind == "record":
        old_fields = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            old = next((old_fields[n] for n in [field["name"], *field.get("aliases", [])] if n in old_fields), None)
            if old is not None:
                _resolve(old["type"], field["type"], f"{path}.{field['name']}", problems)
            elif "default" not in field:
                problems.append(f"{path}.{field['name']}: new field without a default")
    elif kind == "enum":
        lost = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if lost and "default" not in reader:
            problems.append(f"{path}: enum symbols removed: {', '.join(lost)}")
    elif kind == "array":
        _resolve(writer["items"], reader["items"], f"{path}[]", problems)
    elif kind == "map":
        _resolve(writer["values"], reader["values"], f"{path}{{}}", problems)
    elif kind == "fixed" and writer["size"] != reader["size"]:
        problems.append(f"{path}: fixed size changed from {writer['size']} to {reader['size']}")


# --- command line -------------------------------------------------------------------------

def stale_files(folder: Path = SCHEMA_DIR) -> list[str]:
    """Names (file stems: full names) whose committed .avsc differs from what the models
    generate (or is missing/extra)."""
    generated = {name: render(schema) for name, schema in generate_schema_set().items()}
    committed = {p.stem: p.read_text(encoding="utf-8") for p in folder.glob("*.avsc")} if folder.is_dir() else {}
    return sorted(n for n in generated.keys() | committed.keys() if generated.get(n) != committed.get(n))


def write_schemas(folder: Path = SCHEMA_DIR) -> list[Path]:
    """(Re)write the generated schema set into `folder`, removing .avsc files of no type."""
    folder.mkdir(parents=True, exist_ok=True)
    schemas = generate_schema_set()
    for path in folder.glob("*.avsc"):
        if path.stem not in schemas:
            path.unlink()
    written = []
    for name, schema in schemas.items():
        path = folder / f"{name}.avsc"
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def release(version: str) -> list[str]:
    """Copy the committed current schemas into `schemas/released/<version>/`, unless the
    folder exists or they cannot read an older release. Returns the problems (none: done)."""
    target = RELEASED_DIR / version
    if target.exists():
        return [f"{target} exists: a released version is never rewritten"]
    if stale_files():
        return ["the committed schemas differ from the models: run python -m schemas.avro first"]
    current = load_schemas(SCHEMA_DIR)
    problems = [f"version {old_version}, {name}: {problem}"
                for old_version, old_schemas in released_versions().items()
                for name, old in old_schemas.items() if name in current
                for problem in check_backward_compatible(old, current[name])]
    if not problems:
        shutil.copytree(SCHEMA_DIR, target)
        write_fingerprints()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.avro", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="only compare the committed schemas with the models (and fingerprints.json)")
    parser.add_argument("--release", metavar="VERSION", help="copy the current schemas into schemas/released/VERSION/")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"schemas/avro/{name}.avsc differs from the models: run python -m schemas.avro", file=sys.stderr)
        fingerprints = stale_fingerprints()
        if fingerprints:
            print("schemas/released/fingerprints.json differs from the released folders", file=sys.stderr)
        return 1 if stale or fingerprints else 0
    if args.release:
        problems = release(args.release)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    for path in write_schemas():
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
