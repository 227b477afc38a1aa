"""Contract section 7: the real `workerfile fold` command, run as a subprocess on a small
generated population (no broker)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from processors.batch import fold_lines
from schemas.outputs import RejectedEvent, WorkerFile
from tests.conftest import SSN_C, SSN_C_LEGACY, line, make_event, retraction

WORKERFILE = [shutil.which("workerfile")] if shutil.which("workerfile") else [sys.executable, "-m", "workerfile.cli"]
SUMMARY = re.compile(r"read (\d+), accepted (\d+), duplicates (\d+), rejected (\d+), files (\d+)")
SSN_LIKE = re.compile(r"\d{17}[\dXx]|\d{15}")


def run(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*WORKERFILE, *args], input=stdin, capture_output=True, timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def events_file(tmp_path_factory) -> Path:
    """A generated population (with its re-deliveries, corrections, retractions and bad
    lines), plus blank lines, a legacy number, a conflict and bytes that are not UTF-8."""
    path = tmp_path_factory.mktemp("fold") / "events.jsonl"
    generated = run("generate", "--workers", "8", "--months", "14", "--seed", "11")
    assert generated.returncode == 0, generated.stderr
    lines = generated.stdout.splitlines()
    assert len(lines) > 100
    legacy = make_event("card.issued", ssn=SSN_C_LEGACY)
    conflict = {**legacy, "payload": {**legacy["payload"], "card_no": "OTHER"}}
    extra = [b"", line(legacy).encode(), b"   ", line(legacy).encode(), line(conflict).encode(),
             line(retraction(legacy)).encode(), b'{"event_id": "\xff\xfe"}', b""]
    body = lines[:50] + extra + lines[50:]
    path.write_bytes(b"\n".join(body) + b"\n")
    return path


@pytest.fixture(scope="module")
def folded(events_file, tmp_path_factory):
    rejects = tmp_path_factory.mktemp("out") / "rejects.jsonl"
    result = run("fold", str(events_file), "--rejects", str(rejects))
    return result, rejects


def test_exit_status_is_zero(folded):
    result, _ = folded
    assert result.returncode == 0, result.stderr.decode()


def test_stdout_is_one_file_per_line_sorted_by_ssn_equal_to_fold_lines(folded, events_file):
    result, _ = folded
    printed = [orjson.loads(x) for x in result.stdout.decode().splitlines()]
    with events_file.open("rb") as fh:
        expected = fold_lines(fh, file=str(events_file)).files()
    assert printed == expected
    ssns = [f["ssn"] for f in printed]
    assert ssns == sorted(ssns) and len(set(ssns)) == len(ssns) == 9
    for f in printed:
        WorkerFile.model_validate(f)
    c_file = next(f for f in printed if f["ssn"] == SSN_C)
    assert c_file["aliases"] == [SSN_C_LEGACY]
    assert c_file["card"] is None  # retracted


def test_rejects_file_has_one_record_per_rejected_line(folded, events_file):
    result, rejects = folded
    records = [orjson.loads(x) for x in rejects.read_bytes().splitlines()]
    source_lines = events_file.read_bytes().split(b"\n")
    assert records, "the generated input has bad lines"
    for record in records:
        RejectedEvent.model_validate(record)
        assert record["reason"] and record["message"]
        original = source_lines[record["line"] - 1]
        if record.get("input_encoding") == "base64":
            assert base64.b64decode(record["input"]) == original
        else:
            assert record["input"].encode() == original
        assert record["file"] == str(events_file)
    reasons = {r["reason"] for r in records}
    assert {"malformed", "invalid_ssn", "event_id_conflict"} <= reasons
    non_utf8 = [r for r in records if r.get("input_encoding") == "base64"]
    assert [r["reason"] for r in non_utf8] == ["malformed"]
    assert [r["line"] for r in records] == sorted(r["line"] for r in records)


def test_summary_on_stderr_adds_up(folded, events_file):
    result, rejects = folded
    stderr = result.stderr.decode()
    match = SUMMARY.search(stderr)
    assert match, stderr
    read, accepted, duplicates, rejected, files = map(int, match.groups())
    non_blank = [x for x in events_file.read_bytes().split(b"\n") if x.strip()]
    assert read == len(non_blank)
    assert accepted + duplicates + rejected == read
    assert rejected == len(rejects.read_bytes().splitlines())
    assert duplicates >= 1  # the legacy card was delivered twice
    assert files == len(result.stdout.splitlines())
    assert str(rejects) in stderr


def test_no_full_ssn_on_stderr(folded, events_file):
    result, _ = folded
    stderr = result.stderr.decode()
    assert not SSN_LIKE.search(stderr), stderr
    for f in (orjson.loads(x) for x in result.stdout.splitlines()):
        assert f["ssn"] not in stderr


def test_missing_input_file_is_exit_1_with_a_clear_message(tmp_path):
    missing = tmp_path / "nope.jsonl"
    result = run("fold", str(missing), "--rejects", str(tmp_path / "r.jsonl"))
    assert result.returncode == 1
    assert result.stdout == b""
    message = result.stderr.decode()
    assert "no such file" in message and str(missing) in message
    assert "Traceback" not in message


def test_default_rejects_file_is_next_to_the_input(tmp_path):
    events = tmp_path / "small.jsonl"
    events.write_text("\n".join([line(make_event("card.issued")), "not json", ""]) + "\n")
    result = run("fold", str(events))
    assert result.returncode == 0, result.stderr
    default = tmp_path / "small.jsonl.rejects.jsonl"
    [record] = [orjson.loads(x) for x in default.read_bytes().splitlines()]
    assert (record["reason"], record["line"], record["input"]) == ("malformed", 2, "not json")
    assert len(result.stdout.splitlines()) == 1


def test_standard_input(tmp_path):
    data = "\n".join([line(make_event("card.issued")), line(make_event("honor.awarded"))]).encode()
    result = run("fold", "-", "--rejects", str(tmp_path / "r.jsonl"), stdin=data)
    assert result.returncode == 0, result.stderr
    [f] = [orjson.loads(x) for x in result.stdout.splitlines()]
    assert f["applied_events"] == 2
    assert SUMMARY.search(result.stderr.decode()).groups() == ("2", "2", "0", "0", "1")
    assert (tmp_path / "r.jsonl").read_bytes() == b""


def test_clean_population_has_no_rejects(tmp_path):
    generated = run("generate", "--workers", "3", "--months", "6", "--seed", "2", "--clean")
    events = tmp_path / "clean.jsonl"
    events.write_bytes(generated.stdout)
    result = run("fold", str(events), "--rejects", str(tmp_path / "r.jsonl"))
    read, accepted, duplicates, rejected, files = map(int, SUMMARY.search(result.stderr.decode()).groups())
    assert (rejected, duplicates, files) == (0, 0, 3)
    assert accepted == read == len(generated.stdout.splitlines())
