"""The Java consumer example (examples/java/) without a broker: its `decode` command reads
values as they are on the topics (base64, one per line) and prints exactly the lines
`workerfile subscribe` prints for them — the human line (the number masked) or, with
--json, the JSON line — for values of the current schemas and of every older release,
with the same deduplication within a run, and rejects what the Python codec rejects.
The real-broker run is tests/integration/test_java_consumer_integration.py."""

from __future__ import annotations

import base64
import copy
import json
import re
import struct

import pytest

from schemas.avro import released_versions
from streams import codec
from streams.subscribe import describe, message_id
from tests.schemas.test_java_codegen import frame, samples

pytestmark = pytest.mark.timeout(1500)  # the first test builds the jar (Maven online)

RECORD = {"services": "ServiceEvent", "changes": "WorkerFileChange", "files": "WorkerFile"}
FULL_SSN = re.compile(r"\d{17}[\dX]")


def python_lines(what: str, values: list[bytes | None], as_json: bool) -> tuple[list[str], int, int, int]:
    """What `workerfile subscribe` prints for these values (for files: the JSON line of each
    file, as the Python codec decodes it), and how many it skips as repeats, how many it
    cannot read, how many are tombstones of worker-files."""
    lines, seen, repeated, unreadable, tombstones = [], set(), 0, 0, 0
    for value in values:
        if value is None and what == "files":
            tombstones += 1
            continue
        try:
            name, message = codec.decode(value)
        except (codec.CodecError, TypeError):
            unreadable += 1
            continue
        if name != RECORD[what]:
            unreadable += 1
            continue
        if what != "files":
            key = message_id(what, message)
            if key in seen:
                repeated += 1
                continue
            seen.add(key)
        lines.append(json.dumps(message, ensure_ascii=False) if as_json else describe(what, message))
    return lines, repeated, unreadable, tombstones


def values_of(what: str) -> list[bytes | None]:
    """Values of every kind the topic carries: the current schema, each older release of the
    record (written by fastavro with that release's schema), and odd strings."""
    name = RECORD[what]
    records = samples()[name]
    if what == "services":
        first = records[0]
        records += [
            {**first, "status": "paid", "status_before": "approved", "version": 9,
             "grant": {**first["grant"], "amount_cny": 0}},  # no amount: none printed
            {**first, "service_id": "n-1", "service": "notice", "grant": None, "status": "open", "status_before": None,
             "notice": {"code": "no_written_contract", "employer": "91440300708461136T", "since": "2024-02-29"}},
            dict(first),  # the same message again: printed once
        ]
    if what == "files":
        odd = copy.deepcopy(records[0])
        odd["aliases"] = ['a"b\\c/d\n\r\t\b\f\x00\x01\x1f\x7f é 数控车工 😀 \u2028']
        records.append(odd)
    values: list[bytes | None] = [codec.encode(name, r) for r in records]
    for version, schemas in released_versions().items():
        if name in schemas and codec.schema_fingerprint(schemas[name]) != codec.CURRENT[name].fingerprint:
            values += [frame(schemas[name], codec.avro_record(name, r)) for r in records[:3]]
    if what == "files":
        values.append(None)  # a tombstone: an erased file
    return values


def unreadable_values(what: str) -> list[bytes | None]:
    good = codec.encode(RECORD[what], samples()[RECORD[what]][0])
    other = codec.encode("WorkerFileChange" if what != "changes" else "WorkerFile",
                         samples()["WorkerFileChange" if what != "changes" else "WorkerFile"][0])
    unknown = codec.MARKER + struct.pack("<q", 12345) + good[10:]
    return [b"garbage", b'{"ssn": "11010519491231002X"}', codec.MARKER + b"\x01\x02", good + b"\x00",
            good[: len(good) // 2], unknown, other, b"\x00\x00\x00\x00\x07" + good[10:]]


def encoded(values: list[bytes | None]) -> bytes:
    return b"".join((base64.b64encode(v) if v is not None else b"") + b"\n" for v in values)


@pytest.mark.parametrize("what", ["services", "changes"])
@pytest.mark.parametrize("as_json", [False, True], ids=["line", "json"])
def test_the_lines_are_those_of_workerfile_subscribe(java_consumer, what, as_json):
    values = values_of(what)
    expected, repeated, _, _ = python_lines(what, values, as_json)
    assert len(values) > len(samples()[RECORD[what]]) or what == "changes"  # older releases too
    run = java_consumer.run("decode", what, *(["--json"] if as_json else []), input=encoded(values))
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.lines == expected
    assert run.counts() == {"read": len(values), "printed": len(expected), "repeated": repeated, "unreadable": 0}
    if not as_json:
        assert not any(FULL_SSN.search(line) for line in run.lines)
        assert all("********" in line for line in run.lines)
    if what == "services":
        assert repeated >= 1
        assert any(line.startswith("notice no_written_contract for ") for line in python_lines(what, values, False)[0])


def test_files_are_their_json_lines_of_every_release(java_consumer):
    values = values_of("files")
    expected, _, _, tombstones = python_lines("files", values, True)
    assert tombstones == 1 and len(expected) == len(values) - 1
    run = java_consumer.run("decode", "files", "--json", input=encoded(values))
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.lines == expected
    assert '\\u0000\\u0001\\u001f\x7f é 数控车工 😀 \u2028' in run.lines[len(samples()["WorkerFile"])]
    assert run.counts() == {"read": len(values), "printed": len(expected), "repeated": 0, "unreadable": 0,
                            "tombstones": 1}
    assert "tombstone at line " in run.stderr and not FULL_SSN.search(run.stderr)


def test_files_have_no_line_form(java_consumer):
    run = java_consumer.run("decode", "files", input=b"")
    assert run.returncode == 2 and "--json only" in run.stderr and run.lines == []


@pytest.mark.parametrize("what", ["services", "changes", "files"])
def test_what_the_codec_cannot_read_is_reported_not_printed(java_consumer, what):
    bad = unreadable_values(what)
    assert python_lines(what, bad, True)[0] == []  # none of them reads in Python either
    good = values_of(what)[:2]
    values = [good[0], *bad, good[1]]
    run = java_consumer.run("decode", what, "--json", input=encoded(values) + b"not base64!\n")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.lines == python_lines(what, good, True)[0]
    counts = run.counts()
    assert counts["unreadable"] == len(bad) + 1 and counts["printed"] == 2
    reported = [int(n) for n in re.findall(r"unreadable (?:record at )?line (\d+)", run.stderr)]
    assert reported == list(range(2, len(bad) + 2)) + [len(values) + 1]
    assert "instead of a" in run.stderr and "bytes left after the" in run.stderr
    assert "no registry is configured" in run.stderr and "unknown writer schema fingerprint" in run.stderr
    assert not FULL_SSN.search(run.stderr)


@pytest.mark.parametrize("what", ["services", "changes", "files"])
def test_values_in_the_confluent_framing_are_read_with_the_registry(java_consumer, schema_registry, what):
    """The same records written in the Confluent wire format (00, schema id, body) against a
    real Apicurio Registry, as a deployment with WORKERFILE_WIRE_FORMAT=confluent writes
    them: the Java consumer fetches each writer schema by id and prints what Python does."""
    from streams.schema_registry import RegistryClient, register_value_schemas

    register_value_schemas(RegistryClient(schema_registry.url))
    records = samples()[RECORD[what]]
    try:
        codec.configure("confluent", schema_registry.url)
        codec.prepare()
        values = [codec.encode(RECORD[what], r) for r in records]
        expected, _, unreadable, _ = python_lines(what, values, True)
    finally:
        codec.configure()
    assert unreadable == 0 and expected and all(v[0] == 0 for v in values)
    run = java_consumer.run("decode", what, "--json", "--registry", schema_registry.url, input=encoded(values))
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.lines == expected
    without = java_consumer.run("decode", what, "--json", input=encoded(values[:1]))  # no registry: not readable
    assert without.lines == [] and without.counts()["unreadable"] == 1
