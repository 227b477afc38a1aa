"""schemas/released/fingerprints.json, the list an integrator looks a value's fingerprint up
in: generated from the released folders, computed here independently of fastavro's
fingerprint (the Avro specification's CRC-64-AVRO over the Parsing Canonical Form), equal
to what the codec accepts, and listing every schema the pipeline writes with."""

from __future__ import annotations

import json
import struct

import fastavro
import pytest

from schemas.avro import (
    FINGERPRINTS_PATH, NAMESPACE, RELEASED_DIR, fingerprint_index, is_schema_set, load_definitions, released_folders,
    render_fingerprints, wire_names,
)
from streams import asyncapi, codec
from streams.topics import EVENT_TOPICS, OPERATOR_COMMANDS, REKEYED_EVENTS

# What each topic's values are written with (the pipeline's own topics and the event topics,
# which the producer, `workerfile emit` and POST /events write with the current Event): the
# Avro topics of deploy/topics.toml, as the AsyncAPI document names them.
# every Avro topic, and the rows of worker-file-rows (the plain body, its schema named in headers)
PIPELINE_TOPICS = {**asyncapi.avro_topics(), "worker-file-rows": codec.ROW_RECORD}


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO (Rabin) as the Avro specification writes it."""
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


def committed() -> dict[str, dict]:
    return json.loads(FINGERPRINTS_PATH.read_text(encoding="utf-8"))


def test_the_committed_list_is_what_the_released_folders_give():
    assert FINGERPRINTS_PATH.read_text(encoding="utf-8") == render_fingerprints(fingerprint_index()), \
        "run: python -m schemas.avro --release N (it rewrites schemas/released/fingerprints.json)"


def test_every_released_schema_file_is_listed_with_its_fingerprint_in_wire_byte_order():
    listed = {(version, path): (wire, entry) for wire, entry in committed().items()
              for version, path in entry["releases"].items()}
    seen = set()
    for version, folder in released_folders().items():
        if is_schema_set(folder):  # the records no other type refers to are on the wire
            paths = [folder / f"{name}.avsc" for name in wire_names(load_definitions(folder))]
        else:  # releases 1 and 2: every file is one
            paths = sorted(folder.glob("*.avsc"))
        for path in paths:
            relative = f"{version}/{path.name}"
            if is_schema_set(folder):
                parsed = fastavro.schema.load_schema(str(path))  # with the other types of its folder
            else:
                parsed = fastavro.parse_schema(json.loads(path.read_text(encoding="utf-8")))
            assert (version, relative) in listed, f"{relative} is not in fingerprints.json"
            wire, entry = listed[(version, relative)]
            canonical = fastavro.schema.to_parsing_canonical_form(parsed).encode()
            value = crc64_avro(canonical)
            assert bytes.fromhex(wire) == struct.pack("<Q", value), relative  # the 8 bytes after C3 01
            assert entry["parsing_fingerprint64"] == struct.unpack("<q", struct.pack("<Q", value))[0]
            assert entry["name"] == f"{NAMESPACE}.{parsed['name'].rpartition('.')[2]}"
            assert (RELEASED_DIR / relative).is_file()
            seen.add((version, relative))
    assert seen == set(listed), "every file listed exists and is a record written on Kafka"


def test_the_list_is_what_the_codec_accepts():
    index = committed()
    assert {bytes.fromhex(wire) for wire in index} == set(codec.WRITER_SCHEMAS)
    for wire, entry in index.items():
        writer = codec.WRITER_SCHEMAS[bytes.fromhex(wire)]
        assert f"{NAMESPACE}.{writer.name}" == entry["name"]
        assert writer.version in (*entry["releases"], codec.CURRENT_VERSION)


@pytest.mark.parametrize("topic", sorted(PIPELINE_TOPICS))
def test_every_fingerprint_the_pipeline_writes_is_released_and_listed(topic):
    name = PIPELINE_TOPICS[topic]
    wire = codec.CURRENT[name].fingerprint.hex()
    index = committed()
    assert wire in index, f"{topic}: {name} of schemas/avro/ is not released: python -m schemas.avro --release N"
    newest = max(index[wire]["releases"], key=lambda v: (len(v), v))
    assert newest == max(released_folders(), key=lambda v: (len(v), v)), f"{name}: not in the newest release"


def test_every_topic_is_covered():
    assert set(PIPELINE_TOPICS) >= {*EVENT_TOPICS, "worker-access-log", OPERATOR_COMMANDS, REKEYED_EVENTS}
    assert PIPELINE_TOPICS[OPERATOR_COMMANDS] == "OperatorCommand" and PIPELINE_TOPICS[REKEYED_EVENTS] == "Event"
    assert set(PIPELINE_TOPICS.values()) == set(codec.CURRENT)
