"""`workerfile emit` never prints a whole number, whatever the file puts where: an SSN
as a CSV header, as a JSON field name, as a type, as the file's name (every message goes
through workerfile.logmask.mask_text, as the logs do)."""

from __future__ import annotations

import io
import re

import orjson

from schemas.identity import mask_ssn
from streams import emit
from tests.conftest import SSN_A, make_event

NUMBER = re.compile(r"\d{17}[\dXx]|\d{15}")
LEGACY = SSN_A[:6] + SSN_A[8:17]


def run(path) -> str:
    err = io.StringIO()
    code = emit.run(str(path), broker="unused:9092", event_type=None, source=None, encoding="auto", format="auto",
                    partial=False, dry_run=True, out=io.BytesIO(), err=err)
    assert code in (1, 2)
    return err.getvalue()


def test_a_number_as_a_json_field_name_or_type_is_masked(tmp_path):
    lines = [make_event("training.enrolled", payload={SSN_A: 1}), make_event("training.enrolled", **{LEGACY: "x"}),
             make_event(SSN_A), make_event("training.enrolled", event_id=f"{SSN_A}"), {"type": LEGACY}]
    path = tmp_path / f"{SSN_A}.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    text = run(path)
    assert not NUMBER.search(text), text
    assert f"line 1, column payload.{mask_ssn(SSN_A)}: schema" in text
    assert f"{mask_ssn(SSN_A)}.jsonl: line 1" in text


def test_a_number_as_a_csv_header_is_masked(tmp_path):
    path = tmp_path / "upload.csv"
    path.write_text(f"type,ssn,{SSN_A},{LEGACY}\ntraining.enrolled,{SSN_A},1,2\n", encoding="utf-8")
    text = run(path)
    assert not NUMBER.search(text), text
    assert f"column {mask_ssn(SSN_A)}: schema" in text


def test_an_unreadable_file_named_by_a_number_is_masked(tmp_path):
    text = run(tmp_path / f"{SSN_A}.csv")
    assert not NUMBER.search(text) and mask_ssn(SSN_A) in text
