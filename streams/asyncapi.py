"""The AsyncAPI 3 document of the topics (contract section 6), generated from the
committed Avro schemas and the topic config: `python -m streams.asyncapi` rewrites
`docs/asyncapi.json`; a test fails while the committed file differs from what the
schemas and `deploy/topics.toml` give."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from schemas.avro import SCHEMA_DIR, load_schemas, schema_fingerprint
from streams.codec import ROW_ARTIFACT, ROW_GROUP, ROW_RECORD
from streams.topics import load_topic_specs

ASYNCAPI_PATH = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.json"
AVRO_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"

# topic -> (message schema, who writes it, what it is)
TOPICS = {
    "training-events": ("Event", "training institutions and vocational schools", "training.* events (and retractions)"),
    "employment-events": ("Event", "employers", "employment.* events (and retractions)"),
    "insurance-events": ("Event", "social-insurance bureaus", "insurance.* and card.issued events (and retractions)"),
    "certification-events": ("Event", "skill-evaluation bodies", "certificate.*, honor.awarded events (and retractions)"),
    "worker-files": ("WorkerFile", "workerfile", "the whole file of a worker, compacted; a tombstone removes it"),
    "worker-file-rows": ("WorkerFileRow", "workerfile",
                         "the flat row of every file for relational sinks (Kafka Connect's JDBC sink): scalar columns "
                         "and the file as JSON text, compacted, the same tombstones as worker-files; the value is the "
                         "plain Avro body, its schema named by the headers apicurio.value.groupId (workerfile), "
                         "apicurio.value.artifactId (cn.workerfile.WorkerFileRow) and apicurio.value.version (the "
                         "schema's fingerprint in hex)"),
    "worker-file-changes": ("WorkerFileChange", "workerfile",
                            "each change of a file: version, changed sections, events; at-least-once, "
                            "deduplicate by (ssn, version)"),
    "worker-services": ("ServiceEvent", "workerfile", "services that become available, e.g. a skill-upgrade subsidy "
                                                      "grant; exactly once per service_id"),
    "rejected-events": ("RejectedEvent", "workerfile", "every rejected input with its reason and origin; "
                                                       "at-least-once, deduplicate by (topic, partition, offset)"),
    "worker-access-log": ("AccessLogEntry", "workerfile", "every read of a worker's file through the API and every "
                                                          "operator action on it: who, when, which view, why"),
}
# Audience views (deploy/views.toml): JSON, not Avro; a tombstone when the file or the
# reader's part of it is gone. worker-view-training.<org> is one topic per institution.
VIEW_TOPICS = {
    "worker-view-social-insurance": ("SSN", "the social-insurance systems' view of every file"),
    "worker-view-pseudonymised": ("HMAC-SHA256 of the SSN, hex", "the integrators' pseudonymised view"),
}


def build_asyncapi() -> dict:
    """The whole document, deterministic."""
    schemas = load_schemas(SCHEMA_DIR)
    specs = {s.name: s for s in load_topic_specs("cluster")}
    channels, operations, messages = {}, {}, {}
    for topic, (schema_name, writer, what) in TOPICS.items():
        channel_id = topic.replace("-", "_")
        spec = specs[topic]
        channels[channel_id] = {
            "address": topic,
            "description": f"{what}. Written by {writer}.",
            "messages": {schema_name: {"$ref": f"#/components/messages/{schema_name}"}},
            "bindings": {"kafka": {"topic": topic, "partitions": spec.partitions, "replicas": spec.replication,
                                   "topicConfiguration": {k: _config_value(k, v) for k, v in sorted(spec.config.items())
                                                          if k in ("cleanup.policy", "retention.ms", "delete.retention.ms")},
                                   "bindingVersion": "0.5.0"}},
        }
        action = "receive" if writer != "workerfile" else "send"
        operations[f"{action}_{channel_id}"] = {
            "action": action, "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"workerfile {'consumes' if action == 'receive' else 'publishes'} {topic}",
        }
        fingerprint = schema_fingerprint(schemas[schema_name]).hex()
        if schema_name == ROW_RECORD:
            framing = ("The Avro binary body alone (no prefix); the headers name its schema for Apicurio Registry's "
                       f"AvroConverter: apicurio.value.groupId {ROW_GROUP}, apicurio.value.artifactId {ROW_ARTIFACT}, "
                       f"apicurio.value.version the schema's fingerprint in hex ({fingerprint} for the schema below; "
                       "values written with an earlier release carry theirs: schemas/released/fingerprints.json). "
                       "Key: the normalised SSN (UTF-8).")
        else:
            framing = ("Avro single-object encoding: C3 01, the 8-byte little-endian CRC-64-AVRO fingerprint "
                       "of the writer schema, then the Avro binary body. Key: the normalised SSN (UTF-8), "
                       "except on rejected-events (the original key). Written with the schema below, "
                       f"fingerprint {fingerprint} (the 8 bytes after C3 01); "
                       "values written with an earlier release carry theirs: schemas/released/fingerprints.json.")
        messages[schema_name] = {
            "name": schema_name,
            "contentType": "application/octet-stream",
            "description": framing,
            "payload": {"schemaFormat": AVRO_FORMAT, "schema": schemas[schema_name]},
            "bindings": {"kafka": {"key": {"type": "string", "description": "social-security number"},
                                   "bindingVersion": "0.5.0"}},
        }
    for topic, (key, what) in VIEW_TOPICS.items():
        channel_id = topic.replace("-", "_")
        spec = specs[topic]
        channels[channel_id] = {
            "address": topic, "description": f"{what} (deploy/views.toml). Written by workerfile.",
            "messages": {"WorkerView": {"$ref": "#/components/messages/WorkerView"}},
            "bindings": {"kafka": {"topic": topic, "partitions": spec.partitions, "replicas": spec.replication,
                                   "topicConfiguration": {k: _config_value(k, v) for k, v in sorted(spec.config.items())
                                                          if k in ("cleanup.policy", "retention.ms", "delete.retention.ms")},
                                   "bindingVersion": "0.5.0"}},
        }
        operations[f"send_{channel_id}"] = {"action": "send", "channel": {"$ref": f"#/channels/{channel_id}"},
                                            "summary": f"workerfile publishes {topic}"}
    messages["WorkerView"] = {
        "name": "WorkerView", "contentType": "application/json",
        "description": "A view of a worker's file: the sections of deploy/views.toml, as in the WorkerFile "
                       "(JSON, dates as YYYY-MM-DD). Key: the SSN, or the pseudonym for a pseudonymised view. "
                       "Also worker-view-training.<org>: one topic per training institution, its own trainings.",
        "payload": {"type": "object"},
    }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "workerfile topics", "version": "1",
                 "description": "Events in, one electronic file per worker out. Schemas: schemas/released/<N>/ (from "
                                "release 3 one file per named type, cn.workerfile.<Name>.avsc, each type defined "
                                "once); every fingerprint on the wire with its schema file: "
                                "schemas/released/fingerprints.json."},
        "defaultContentType": "application/octet-stream",
        "channels": channels,
        "operations": operations,
        "components": {"messages": dict(sorted(messages.items()))},
    }


def _config_value(key: str, value: str):
    """As the AsyncAPI Kafka binding wants it: cleanup.policy a list, times integers."""
    return value.split(",") if key == "cleanup.policy" else int(value)


def render() -> bytes:
    return orjson.dumps(build_asyncapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def main() -> int:
    ASYNCAPI_PATH.parent.mkdir(exist_ok=True)
    ASYNCAPI_PATH.write_bytes(render())
    print(f"wrote {ASYNCAPI_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
