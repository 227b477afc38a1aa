"""The AsyncAPI 3 document of the topics (contract section 6), generated from the
committed Avro schemas, the topic config (`deploy/topics.toml`: every topic, what its
values and keys are, whether it carries tombstones, its partitions and replication per
profile), the audience views (`deploy/views.toml`, whose JSON values get a JSON Schema
derived from `schemas.outputs.WorkerFile`) and the tables' changelog topics:
`python -m streams.asyncapi` rewrites `docs/asyncapi.json`; a test fails while the
committed file differs from what they give, and an integration test compares it with
the topics a running worker writes (tests/integration/test_asyncapi_integration.py).

Tombstones (records whose value is null) are messages of their own, `<Name>Tombstone`
with the payload `{"type": "null"}`, listed only on the channels where they occur: the
official parser (@asyncapi/parser, `deploy/asyncapi/`) accepts that for the Avro
channels as for the JSON ones, where an Avro schema cannot say "or null" for a value
that is not Avro at all."""

from __future__ import annotations

import copy
import re
import sys
import tomllib
from pathlib import Path
from typing import get_args

import orjson

from processors.views import View
from schemas.avro import SCHEMA_DIR, load_schemas, schema_fingerprint
from schemas.outputs import ChangedSection, WorkerFile
from streams.codec import ROW_ARTIFACT, ROW_GROUP, ROW_RECORD
from streams.access import load_views
from streams.topics import APP_TABLES, TOPICS_TOML, changelog_topic

ASYNCAPI_PATH = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.json"
VIEWS_TOML = Path(__file__).resolve().parents[1] / "deploy" / "views.toml"
AVRO_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
BINDING = "0.5.0"  # the Kafka bindings' version
DOCUMENTED_PROFILE = "cluster"  # the profile whose partitions and replicas the Kafka bindings give
PROFILES = ("local", "cluster")
SSN_PATTERN = "^[0-9]{17}[0-9X]$"
PSEUDONYM_PATTERN = "^[0-9a-f]{64}$"
TOPIC_FIELDS = ("description", "value", "key", "tombstones", "written_by", "workerfile")
VALUE_KINDS = ("view", "internal", "row")  # besides the name of an Avro record
SCHEMA_REF = "#/components/schemas/{model}"

PARTITIONER = (
    "Partitioner: every producer of this project (kafka-python, aiokafka, faust) and Java's default partitioner "
    "put a record with key bytes K in partition (murmur2(K) & 0x7fffffff) mod partitions — Java's "
    "Utils.toPositive(Utils.murmur2(keyBytes)) % numPartitions. Another client must use the same (librdkafka: "
    "partitioner=murmur2_random, not its default consistent_random), or a worker's events land in another "
    "partition than its state and outputs.")

KEYS = {
    "ssn": {"type": "string", "pattern": SSN_PATTERN,
            "description": "the worker's normalised social-security number (18 characters, upper-case X), UTF-8; "
                           "it decides the partition (murmur2, see the document's description)"},
    "producer": {"type": "string",
                 "description": "the worker's social-security number as the producer sends it (UTF-8): the "
                                "normalised form is expected, since it decides the partition (murmur2); an event "
                                "keyed otherwise (a 15-digit legacy number, a lower-case x, full-width digits, "
                                "anything else or no key) is re-published under its normalised SSN to "
                                "workerfile-rekeyed-events and folded from there"},
    "original": {"description": "the key of the rejected input, byte for byte as it was (any bytes, or none): "
                                "also its partition is the one murmur2 gives for it"},
    "pseudonym": {"type": "string", "pattern": PSEUDONYM_PATTERN,
                  "description": "HMAC-SHA256 of the normalised SSN with the integrators' secret key, hex (UTF-8); "
                                 "partitioned by murmur2 of these bytes, so not co-partitioned with the SSN topics"},
    "state": {"type": "string", "pattern": "^[0-9]{17}[0-9X](\\|.+)?$",
              "description": "the SSN, or the SSN, `|` and the part of the worker's state (internal); in the "
                             "partition of the SSN (the part before the first `|`), not of the whole key"},
}


def load_topics(path: Path = TOPICS_TOML) -> dict:
    """deploy/topics.toml, with each topic's AsyncAPI fields checked (a topic added
    without them fails here, naming what is missing)."""
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    for name, topic in raw["topics"].items():
        missing = [f for f in TOPIC_FIELDS if f not in topic]
        if missing:
            raise ValueError(f"{path}: [topics.{name}] lacks {', '.join(missing)} (what travels on it, for the "
                             f"AsyncAPI document: see the file's header)")
        if topic["key"] not in KEYS:
            raise ValueError(f"{path}: [topics.{name}] key must be one of {sorted(KEYS)}, not {topic['key']!r}")
    return raw


def avro_topics(path: Path = TOPICS_TOML) -> dict[str, str]:
    """topic -> the Avro record its values are written with, for every Avro topic."""
    return {name: t["value"] for name, t in load_topics(path)["topics"].items() if t["value"] not in VALUE_KINDS}


def build_asyncapi(topics_path: Path = TOPICS_TOML, views_path: Path = VIEWS_TOML) -> dict:
    """The whole document, deterministic."""
    schemas = load_schemas(SCHEMA_DIR)
    raw = load_topics(topics_path)
    profiles = raw["profiles"]
    views = {v.topic: v for v in load_views(views_path).values() if v.topic and v.fields}
    channels, operations, messages = {}, {}, {}
    component_schemas = view_component_schemas()

    def add_channel(topic: str, address: str, description: str, config: dict, message_names: list[str],
                    actions: list[str], parameters: dict | None = None) -> None:
        channel_id = re.sub(r"[^A-Za-z0-9_]", "_", topic.replace("{", "").replace("}", ""))
        config = {k: _config_value(k, v) for k, v in sorted(config.items())
                  if k in ("cleanup.policy", "retention.ms", "delete.retention.ms")}
        description += "\n\n" + _profiles_text(profiles)
        if "compact" in config.get("cleanup.policy", []):
            description += "\n\n" + _compaction_caveat(config)
        channels[channel_id] = {
            "address": address,
            "description": description,
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in message_names},
            "bindings": {"kafka": {
                **({"topic": address} if parameters is None else {}),
                "partitions": profiles[DOCUMENTED_PROFILE]["partitions"],
                "replicas": profiles[DOCUMENTED_PROFILE]["replication"],
                "topicConfiguration": config,
                "x-profiles": {p: {"partitions": profiles[p]["partitions"], "replicas": profiles[p]["replication"]}
                               for p in PROFILES},
                "bindingVersion": BINDING}},
        }
        if parameters is not None:
            channels[channel_id]["parameters"] = parameters
        for action in actions:
            operations[f"{action}_{channel_id}"] = {
                "action": action, "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": f"workerfile {'publishes' if action == 'send' else 'consumes'} {address}",
            }

    for topic, spec in raw["topics"].items():
        what = f"{spec['description']}. Written by {spec['written_by']}."
        names = []
        if spec["value"] == "view":
            view = views.get(topic)
            if view is None:
                raise ValueError(f"{topics_path}: [topics.{topic}] value is \"view\" but no view of "
                                 f"{views_path} is published on it")
            names += _view_messages(view, messages, spec["key"], component_schemas)
        elif spec["value"] == "internal":
            names.append(_internal_message(topic, messages, spec["key"]))
        elif spec["value"] == "row":
            names.append(_row_message(schemas, messages, spec["key"]))
        else:
            names.append(_avro_message(spec["value"], schemas, messages, spec["key"]))
            if spec["value"] == "Event":
                what += (" A value that is not an Event of a released schema (or any other bad input) is not "
                         "folded: it is published to rejected-events with its reason and origin.")
        if spec["tombstones"]:
            names.append(_tombstone_message(names[0], messages, spec["key"]))
        add_channel(topic, topic, what, spec.get("config", {}), names, spec["workerfile"])

    # views published on one topic per reader organisation, created on demand
    on_demand = raw["on_demand"]["views"]
    for template, view in sorted(views.items()):
        if not view.per_org:
            continue
        names = _view_messages(view, messages, view.key, component_schemas)
        names.append(_tombstone_message(names[0], messages, view.key))
        add_channel(template, template,
                    f"{view.description} (deploy/views.toml, view {view.name}). One topic per reader organisation, "
                    "{org} its unified social credit code: each organisation that is the source of some "
                    f"{', '.join(view.own)} of the worker. Created by the stream processors when first needed, "
                    "with the config of [on_demand.views] of deploy/topics.toml and the worker's WORKERFILE_PARTITIONS "
                    "and WORKERFILE_REPLICATION (set them to the profile's: 12 and 3 on the cluster, "
                    "deploy/cluster/README.md). Written by the stream processors.",
                    on_demand["config"], names, ["send"],
                    parameters={"org": {"description": "the reader organisation's unified social credit code "
                                                       "(18 characters)"}})

    # the changelog topics of the stream processors' tables, named after the application id
    for table in APP_TABLES:
        name = _internal_message(changelog_topic("{appId}", table), messages, "state")
        add_channel(changelog_topic("{appId}", table), changelog_topic("{appId}", table),
                    f"internal: faust's changelog of the processors' table {table} of the application id "
                    "{appId} (`workerfile topics --app-id`; default workerfile): the state of each worker, "
                    "in several keys (processors/fold.py, \"table layout\"); a key deleted from the table "
                    "is a tombstone. Written by the stream processors.",
                    {"cleanup.policy": "compact"},
                    [name, _tombstone_message(name, messages, "state")], ["send", "receive"],
                    parameters={"appId": {"description": "the application id of the stream processors "
                                                         "(--app-id, WORKERFILE_APP_ID)", "default": "workerfile"}})

    return {
        "asyncapi": "3.0.0",
        "info": {"title": "workerfile topics", "version": "1", "description": _info_text()},
        "defaultContentType": "application/octet-stream",
        "servers": {
            "local": {"host": "127.0.0.1:9092", "protocol": "kafka",
                      "description": f"profile local of deploy/topics.toml: {profiles['local']['description']}; "
                                     f"every topic {_profile_shape(profiles['local'])}"},
            "cluster": {"host": "127.0.0.1:29092", "protocol": "kafka",
                        "description": f"profile cluster of deploy/topics.toml: {profiles['cluster']['description']} "
                                       "(also 127.0.0.1:39092 and 127.0.0.1:49092); every topic "
                                       f"{_profile_shape(profiles['cluster'])}"},
        },
        "channels": dict(sorted(channels.items())),
        "operations": dict(sorted(operations.items())),
        "components": {"messages": dict(sorted(messages.items())), "schemas": dict(sorted(component_schemas.items()))},
    }


def _info_text() -> str:
    return (
        "Events in, one electronic file per worker out. Every topic of deploy/topics.toml is a channel here, and "
        "so are the topics created on demand (a parameterised address: worker-view-training.{org}, "
        "{appId}-worker-state-changelog).\n\n"
        "Avro values: single-object encoding (C3 01, the 8-byte little-endian CRC-64-AVRO fingerprint of the "
        "writer schema, the Avro binary body). Schemas: schemas/released/<N>/ (from release 3 one file per named "
        "type, cn.workerfile.<Name>.avsc, each type defined once); every fingerprint on the wire with its schema "
        "file: schemas/released/fingerprints.json. A deployment that sets WORKERFILE_WIRE_FORMAT=confluent "
        "writes the Confluent wire format instead (00, the 4-byte big-endian schema id of its schema registry, "
        "the same Avro body; subjects <topic>-value, BACKWARD; README \"Wire formats\"); every reader of the "
        "project reads both. Views: JSON (application/json), JSON Schemas in "
        "components.schemas, derived from the WorkerFile model and deploy/views.toml.\n\n"
        "Tombstones: a record with a null value (a deletion on a compacted topic) is the message <Name>Tombstone "
        "with the payload {\"type\": \"null\"}; a channel lists it only where tombstones occur (worker-files, the "
        "views, the state changelog). Everywhere else a null value is never written.\n\n"
        f"Partitions and replicas: the Kafka bindings give the {DOCUMENTED_PROFILE} profile's; `x-profiles` of "
        "each binding and the servers give every profile's (deploy/topics.toml); `--partitions` / "
        "WORKERFILE_PARTITIONS may set other partitions for every topic alike. All topics keyed by the SSN have "
        "the same number of partitions (co-partitioning): a worker's events, state and outputs are in the same "
        f"partition number.\n\n{PARTITIONER}")


def _profile_shape(profile: dict) -> str:
    return f"{profile['partitions']} partitions, replication {profile['replication']}"


def _profiles_text(profiles: dict) -> str:
    shapes = "; ".join(f"profile {p}: {_profile_shape(profiles[p])}" for p in PROFILES)
    return f"Partitions and replicas in the binding: the {DOCUMENTED_PROFILE} profile's ({shapes})."


def _compaction_caveat(config: dict) -> str:
    ms = config.get("delete.retention.ms", 86_400_000)  # Kafka's default
    return (f"Compacted: the latest record of each key is kept; a tombstone only for delete.retention.ms "
            f"({ms:,} ms, {ms / 86_400_000:g} day(s)) after its segment was compacted. A consumer that is down or "
            "behind longer than that may never see a tombstone, and would keep a record that is gone: it must then "
            "rebuild from the topic (read it from the beginning into an empty store) instead of resuming. Until "
            "compaction, a key may have several records: the last one counts.")


def _config_value(key: str, value):
    """As the AsyncAPI Kafka binding wants it: cleanup.policy a list, times integers."""
    return str(value).split(",") if key == "cleanup.policy" else int(value)


def _key_binding(key: str) -> dict:
    return {"kafka": {"key": copy.deepcopy(KEYS[key]), "bindingVersion": BINDING}}


def _avro_message(name: str, schemas: dict, messages: dict, key: str) -> str:
    """The message of an Avro record (its components entry), keyed as `key`; the same
    record keyed differently on another topic is another message (`<Name>By<Key>`)."""
    message_name = name
    if message_name in messages and messages[message_name]["bindings"]["kafka"]["key"] != KEYS[key]:
        message_name = f"{name}KeyedBy{_camel(key)}"
    if message_name in messages:
        return message_name
    description = ("Avro single-object encoding: C3 01, the 8-byte little-endian CRC-64-AVRO fingerprint of the "
                   f"writer schema, then the Avro binary body. Written with the schema below, fingerprint "
                   f"{schema_fingerprint(schemas[name]).hex()} (the 8 bytes after C3 01); values written with an "
                   "earlier release carry theirs: schemas/released/fingerprints.json. Or, where the deployment writes the "
                   "Confluent wire format, 00, the 4-byte schema id, the same body.")
    if name == "WorkerFileChange":
        values = [v for part in get_args(ChangedSection) for v in (get_args(part) or (part,))]
        description += (" changed_sections holds these values (x-symbols of its items; an Avro string, not an "
                        f"enum, so that releases 1 and 2 stay readable): {', '.join(values)}; erased and merged "
                        "stand alone, and a tombstone of the file follows on worker-files.")
    messages[message_name] = {
        "name": message_name, "title": name,
        "contentType": "application/octet-stream",
        "description": description,
        "payload": {"schemaFormat": AVRO_FORMAT, "schema": schemas[name]},
        "bindings": _key_binding(key),
    }
    return message_name


def _row_message(schemas: dict, messages: dict, key: str) -> str:
    """The flat row of a file on worker-file-rows, for Kafka Connect (deploy/connect/): the
    plain Avro body, its writer schema named in Apicurio's record headers."""
    messages[ROW_RECORD] = {
        "name": ROW_RECORD, "title": ROW_RECORD,
        "contentType": "application/octet-stream",
        "description": ("The plain Avro binary body of the schema below (no framing bytes); the writer schema is "
                        f"named in the record's headers as Apicurio Registry's converter reads them: group "
                        f"{ROW_GROUP}, artifact {ROW_ARTIFACT}, version = the schema's fingerprint "
                        "(`workerfile connect register` puts every version into the registry)."),
        "x-framing": "apicurio-headers",
        "payload": {"schemaFormat": AVRO_FORMAT, "schema": schemas[ROW_RECORD]},
        "bindings": _key_binding(key),
    }
    return ROW_RECORD


def _internal_message(topic: str, messages: dict, key: str) -> str:
    name = _camel(topic.replace("{appId}-", "")) + "Record"
    messages[name] = {
        "name": name, "contentType": "application/octet-stream",
        "description": f"internal to the stream processors ({topic}): a format of their own (JSON objects or short "
                       "text, processors/fold.py, streams/handler.py), not an interface; do not consume it.",
        "payload": {"description": "any bytes: not an interface"},
        "bindings": _key_binding(key),
    }
    return name


def _tombstone_message(of: str, messages: dict, key: str) -> str:
    name = f"{of}Tombstone"
    messages[name] = {
        "name": name, "contentType": "application/octet-stream",
        "description": f"a tombstone: the record's value is null (no bytes at all, not an Avro or JSON null), its key "
                       f"that of a {of}. It deletes the key: what the channel had of it is gone (on worker-files and "
                       "the views: a file erased or merged away by an operator; on a per-organisation view also: the "
                       "reader no longer has a part of the file; on a changelog: a key deleted from the table).",
        "payload": {"type": "null"},
        "bindings": _key_binding(key),
    }
    return name


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)


# --- JSON Schemas of the audience views -------------------------------------------------------------

def view_component_schemas() -> dict:
    """The JSON Schemas of the file's parts (components.schemas), from the WorkerFile model."""
    schema = WorkerFile.model_json_schema(mode="serialization", ref_template=SCHEMA_REF)
    return schema.pop("$defs")


def view_schema_name(view: View) -> str:
    return f"{_camel(view.name)}View"


def _view_messages(view: View, messages: dict, key: str, parts: dict) -> list[str]:
    name = view_schema_name(view)
    if name not in messages:
        messages[name] = {
            "name": name, "contentType": "application/json",
            "description": f"What the audience {view.name} sees of a worker's file (deploy/views.toml: "
                           f"{view.description}): JSON, UTF-8, the file's sections {', '.join(view.fields)} as in "
                           "the WorkerFile (dates YYYY-MM-DD)"
                           + (f", without {', '.join(view.omit)}" if view.omit else "")
                           + (f"; {', '.join(view.own)} cut to the reader organisation's own items, and no record "
                              "(a tombstone) when it has none" if view.own else "")
                           + ". Published when a section it shows changes.",
            "payload": view_payload_schema(view, parts),
            "bindings": _key_binding(key),
        }
    return [name]


DERIVED_SCHEMAS = {
    "pseudonym": {"type": "string", "pattern": PSEUDONYM_PATTERN,
                  "description": "HMAC-SHA256 of the SSN with the integrators' secret key, hex"},
    "birth_year": {"type": "integer", "description": "the year of the birth date"},
}


def view_payload_schema(view: View, parts: dict) -> dict:
    """The JSON Schema of the view's JSON value: the model's schema of each shown section
    (refs into components.schemas, `parts`), the omitted fields removed (a copy of the
    parts they are in, named after the view, added to `parts`), `own` sections with at
    least one item."""
    whole = WorkerFile.model_json_schema(mode="serialization", ref_template=SCHEMA_REF)
    fields = list(whole["properties"]) if "*" in view.fields else list(view.fields)
    properties = {}
    for f in fields:
        properties[f] = copy.deepcopy(DERIVED_SCHEMAS[f] if f in DERIVED_SCHEMAS else whole["properties"][f])
        if f in view.own:
            properties[f]["minItems"] = 1
    schema = {"type": "object", "properties": properties,
              "required": [f for f in fields if "*" not in view.fields or f in whole.get("required", ())],
              "additionalProperties": False}
    for path in view.omit:
        _omit_from_schema(schema, path.split("."), parts, view)
    return schema


def _omit_from_schema(schema: dict, path: list[str], parts: dict, view: View) -> None:
    """Remove the field at `path` (sections and fields, lists stepped through) from `schema`;
    a referenced part is replaced by a copy without it, `<View>View<Part>`, in components.schemas."""
    node = schema
    for i, step in enumerate(path):
        node = _object_of(node, parts, view)
        if i == len(path) - 1:
            node["properties"].pop(step, None)
            if step in node.get("required", []):
                node["required"] = [r for r in node["required"] if r != step]
            return
        node = node["properties"][step]


def _object_of(node: dict, parts: dict, view: View) -> dict:
    """The object schema that `node` stands for: through arrays, nullable unions and refs (a
    ref is turned into one to the view's own copy of the part)."""
    while True:
        if node.get("type") == "object" and "properties" in node:
            return node
        if "items" in node:
            node = node["items"]
        elif "anyOf" in node:
            node = next(n for n in node["anyOf"] if n.get("type") != "null")
        elif "$ref" in node:
            part = node["$ref"].rsplit("/", 1)[1]
            own = part if part.startswith(view_schema_name(view)) else f"{view_schema_name(view)}{part}"
            if own not in parts:
                parts[own] = copy.deepcopy(parts[part])
            node["$ref"] = SCHEMA_REF.format(model=own)
            node = parts[own]
        else:
            raise ValueError(f"views.{view.name}.omit: cannot follow {node}")


def render() -> bytes:
    return orjson.dumps(build_asyncapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def main() -> int:
    ASYNCAPI_PATH.parent.mkdir(exist_ok=True)
    ASYNCAPI_PATH.write_bytes(render())
    print(f"wrote {ASYNCAPI_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
