"""Avro schemas generated from the pydantic models, which stay the single source of truth.

`python -m schemas.avro` (re)writes `schemas/avro/<Name>.avsc`; `--check` only compares
them with the models; `--release N` copies them into `schemas/released/N/` after
checking that they can read the data of every older release. Released folders are
kept forever: the stream decoder accepts data written with any of them.

Type mapping (namespace `cn.workerfile`):

- str -> string, int -> long, float -> double, bool -> boolean, bytes -> bytes;
- datetime.date -> int with logicalType date (days since 1970-01-01);
- datetime.datetime -> string, RFC 3339 with its UTC offset (`2026-03-01T09:00:00+08:00`):
  Avro timestamps are instants without an offset, and the offset is part of the event;
- Literal of strings -> enum when every symbol is a valid Avro name (named after the
  Literal alias in schemas.events / schemas.outputs, else `<Model><Field>`), else string;
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
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from schemas import events, outputs
from schemas.events import EVENT_CLASSES, Envelope

NAMESPACE = "cn.workerfile"
SCHEMA_DIR = Path(__file__).parent / "avro"
RELEASED_DIR = Path(__file__).parent / "released"
OUTPUT_MODELS: tuple[type[BaseModel], ...] = (
    outputs.WorkerFile, outputs.WorkerFileChange, outputs.ServiceEvent, outputs.RejectedEvent,
    outputs.AccessLogEntry, outputs.OperatorCommand,
)
TIMESTAMP_DOC = ("RFC 3339 timestamp with its UTC offset, e.g. 2026-03-01T09:00:00+08:00; a string "
                 "rather than an Avro timestamp so that the offset is kept exactly.")
DATE = {"type": "int", "logicalType": "date"}
AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

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
    """Every published Avro schema, by record name."""
    schemas = {"Event": event_schema()}
    for model in OUTPUT_MODELS:
        schemas[model.__name__] = model_schema(model)
    return schemas


def render(schema: dict) -> str:
    """The committed text of a schema: pretty, sorted keys, so regenerating is byte-stable."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def load_schemas(folder: Path) -> dict[str, dict]:
    """The .avsc files of a folder, by file stem."""
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.avsc"))}


def released_versions() -> dict[str, dict[str, dict]]:
    """Every released version folder (`schemas/released/<version>/`), oldest first."""
    folders = [p for p in RELEASED_DIR.iterdir() if p.is_dir()] if RELEASED_DIR.is_dir() else []
    return {p.name: load_schemas(p) for p in sorted(folders, key=lambda p: (len(p.name), p.name))}


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
    """Names whose committed .avsc differs from what the models generate (or is missing/extra)."""
    generated = {name: render(schema) for name, schema in generate_schemas().items()}
    committed = {p.stem: p.read_text(encoding="utf-8") for p in folder.glob("*.avsc")} if folder.is_dir() else {}
    return sorted(n for n in generated.keys() | committed.keys() if generated.get(n) != committed.get(n))


def write_schemas(folder: Path = SCHEMA_DIR) -> list[Path]:
    """(Re)write every generated schema into `folder`, removing .avsc files of no model."""
    folder.mkdir(parents=True, exist_ok=True)
    schemas = generate_schemas()
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
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.avro", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare the committed schemas with the models")
    parser.add_argument("--release", metavar="VERSION", help="copy the current schemas into schemas/released/VERSION/")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"schemas/avro/{name}.avsc differs from the models: run python -m schemas.avro", file=sys.stderr)
        return 1 if stale else 0
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
