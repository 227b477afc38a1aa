"""`workerfile emit` against a real Apache Kafka broker: the GBK example of
docs/csv-layouts.md uploaded with the real command, read back from the topic, uploaded
again without new events; an invalid file sends nothing."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from processors.batch import fold_lines
from schemas.identity import normalise_ssn
from schemas.events import EVENT_TOPICS
from streams.codec import decode_event
from streams.reader import read_topic

pytestmark = pytest.mark.timeout(420)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "csv-layouts.md"
SSN_LIKE = re.compile(r"\d{17}[\dXx]|\d{15}")
SUMMARY = re.compile(r"rows read (\d+), valid (\d+), invalid (\d+), sent (\d+), confirmed (\d+), "
                     r"duplicates-in-file (\d+)")


def doc_example() -> str:
    """The example CSV of docs/csv-layouts.md, exactly as written there."""
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- example-csv: training.completed -->", 1)[1]
    return block.split("```csv\n", 1)[1].split("```", 1)[0]


def emit(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "workerfile.cli", "emit", *args], capture_output=True,
                          timeout=180, cwd=ROOT, env=env)


def summary_of(result: subprocess.CompletedProcess) -> tuple[int, ...]:
    stderr = result.stderr.decode()
    match = SUMMARY.search(stderr.splitlines()[-1])
    assert match, stderr
    return tuple(int(g) for g in match.groups())


def events_on(bootstrap: str, topic: str = "training-events") -> list[tuple[bytes, dict]]:
    return [(r.key, decode_event(r.value)) for r in read_topic(bootstrap, topic)]


def fold(events: list[dict]):
    return fold_lines([orjson.dumps(e) for e in events])


def test_gbk_training_completions_uploaded_twice_give_the_same_events_and_files(kafka, tmp_path):
    text = doc_example()
    path = tmp_path / "结业名单.csv"
    path.write_bytes(text.encode("gbk"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 4

    first = emit(str(path), "--broker", kafka.bootstrap, "--type", "training.completed")
    assert first.returncode == 0, first.stderr.decode()
    assert summary_of(first) == (4, 4, 0, 4, 4, 0)
    assert "encoding gb18030" in first.stderr.decode()
    assert not SSN_LIKE.search(first.stderr.decode())

    records = events_on(kafka.bootstrap)
    assert len(records) == 4
    by_ssn = {event["ssn"]: (key, event) for key, event in records}
    for row in rows:
        ssn = normalise_ssn(row["身份证号"]).number
        key, event = by_ssn[ssn]
        assert key == ssn.encode()  # keyed by the normalised number, legacy input included
        assert event["type"] == "training.completed"
        assert event["source"] == row["机构代码"]
        assert event["occurred_at"] == "2024-04-15T17:00:00+08:00"
        assert event["corrects"] is None
        assert event["payload"] == {"program_id": row["培训项目编号"], "end_date": "2024-04-15",
                                    "hours": int(row["学时"]), "passed": row["是否合格"] in ("是", "1")}
        if len(row["身份证号"]) == 15:
            assert event["ssn_legacy"] == row["身份证号"]
    assert by_ssn["11010519491231002X"][1]["event_id"] == "259bf21d-42d2-5ad8-93e4-34901eacb9ed"  # as documented
    for topic in EVENT_TOPICS:
        if topic != "training-events":
            assert events_on(kafka.bootstrap, topic) == []
    first_ids = {event["event_id"] for _, event in records}
    files_after_first = fold([event for _, event in records]).files()
    assert len(files_after_first) == 4
    assert {f["ssn"]: (f["training_hours"], [t["status"] for t in f["trainings"]]) for f in files_after_first} == {
        normalise_ssn(row["身份证号"]).number: (int(row["学时"]), ["completed"]) for row in rows}

    # the same file again, and the same rows as UTF-8 with a BOM, English headers, other column order
    again = emit(str(path), "--broker", kafka.bootstrap, "--type", "training.completed")
    assert again.returncode == 0, again.stderr.decode()
    assert summary_of(again) == (4, 4, 0, 4, 4, 0)
    english = tmp_path / "completions.csv"
    english_rows = ["passed,hours,end_date,program_id,occurred_at,ssn"]
    for row in reversed(rows):
        english_rows.append(",".join([row["是否合格"], row["学时"], row["结束日期"], row["培训项目编号"],
                                      row["发生时间"], row["身份证号"]]))
    english.write_bytes("\r\n".join(english_rows).encode("utf-8-sig"))
    third = emit(str(english), "--broker", kafka.bootstrap, "--type", "training.completed",
                 "--source", rows[0]["机构代码"])
    assert third.returncode == 0, third.stderr.decode()
    assert "encoding utf-8-sig" in third.stderr.decode()

    records = events_on(kafka.bootstrap)
    assert len(records) == 12  # delivered three times ...
    assert {event["event_id"] for _, event in records} == first_ids  # ... as the same four events
    batch = fold([event for _, event in records])
    assert (batch.counts.accepted, batch.counts.duplicates, batch.counts.rejected) == (4, 8, 0)
    assert batch.files() == files_after_first


def test_invalid_file_sends_nothing_then_partial_sends_the_valid_rows(kafka, tmp_path):
    lines = doc_example().splitlines()
    lines[2] = lines[2].replace(",80,", ",八十,")  # line 3 of the file: hours not in digits
    path = tmp_path / "结业名单.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))

    refused = emit(str(path), "--broker", kafka.bootstrap, "--type", "training.completed")
    stderr = refused.stderr.decode()
    assert refused.returncode == 1, stderr
    assert "结业名单.csv: line 3, column 学时: schema: must be a whole number written in digits (0-9)" in stderr
    assert summary_of(refused) == (4, 3, 1, 0, 0, 0)
    assert "NOTHING SENT" in stderr
    assert not SSN_LIKE.search(stderr)
    assert refused.stdout == b""
    assert events_on(kafka.bootstrap) == []

    partial = emit(str(path), "--broker", kafka.bootstrap, "--type", "training.completed", "--partial")
    stderr = partial.stderr.decode()
    assert partial.returncode == 1, stderr
    assert summary_of(partial) == (4, 3, 1, 3, 3, 0)
    assert "--partial: 1 invalid row NOT sent" in stderr
    sent = events_on(kafka.bootstrap)
    assert len(sent) == 3
    assert "440305198506120031" not in {event["ssn"] for _, event in sent}  # the invalid row's worker
