"""`streams.emit` without a broker: reading CSV/JSONL in UTF-8, GBK and GB18030 with
Chinese or English headers, the exact error of each bad input (line, column, reason),
stable event ids, and the send policy (nothing sent when a row is invalid, --partial)
with a fake sender standing in for the producer."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import uuid
from pathlib import Path

import orjson
import pytest

from schemas.identity import make_org_code, make_ssn
from processors.uploads import (
    EVENT_ID_NAMESPACE, HEADER_ALIASES, LAYOUTS, EmitInputError, canonical_json, rows_to_events, stable_event_id,
)
from schemas.events import EVENT_TYPES, event_to_json_dict
from streams import emit
from streams.emit import emit_file, read_rows
from tests.conftest import fold_files
from workerfile.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "csv-layouts.md"
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
SCHOOL = "52440300MJL0000012"
SSN_A = "11010519491231002X"
SSN_B = make_ssn("44030519850612003")
SSN_LEGACY, SSN_LEGACY_18 = "130503670401001", "130503196704010016"
EMPLOYER = make_org_code("91440300708461136")
SSN_LIKE = re.compile(r"\d{17}[\dXx]|\d{15}")

ZH_HEADER = "身份证号,姓名,培训项目编号,结束日期,学时,是否合格,发生时间,机构代码"
EN_HEADER = "ssn,program_id,end_date,hours,passed,occurred_at,source"


def zh_row(ssn=SSN_A, program="PX-2024-017", end="2024-04-15", hours="80", passed="是",
           at="2024-04-15 17:00", source=SCHOOL, name="张伟") -> str:
    return ",".join([ssn, name, program, end, hours, passed, at, source])


def write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "rows.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def zh_file(tmp_path: Path, *rows: str, encoding: str = "gbk", name: str = "结业名单.csv") -> Path:
    return write(tmp_path, "\r\n".join([ZH_HEADER, *rows]) + "\r\n", encoding, name)


def convert(path: Path, event_type: str | None = "training.completed", source: str | None = None, **kw):
    return rows_to_events(read_rows(path, **kw), event_type, source, now=NOW)


def errors(conversion) -> list[tuple[int, str, str]]:
    return [(e.line, e.column, e.reason) for e in conversion.errors]


def doc_example() -> str:
    """The example CSV of docs/csv-layouts.md, exactly as written there."""
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- example-csv: training.completed -->", 1)[1]
    return block.split("```csv\n", 1)[1].split("```", 1)[0]


class FakeFuture:
    def __init__(self, fail: Exception | None = None):
        self.fail = fail

    def get(self, timeout=None):
        if self.fail:
            raise self.fail
        return "ok"


class FakeSender:
    """Records what would go to Kafka; `fail_lines` makes some deliveries fail."""

    def __init__(self, fail_every: int = 0):
        self.sent: list = []
        self.flushed = 0
        self.fail_every = fail_every

    def send(self, event):
        self.sent.append(event)
        failing = self.fail_every and len(self.sent) % self.fail_every == 0
        return FakeFuture(TimeoutError("no ack") if failing else None)

    def flush(self, timeout=None):
        self.flushed += 1


# --- reading: encodings and headers ---------------------------------------------------------

@pytest.mark.parametrize("encoding, detected", [
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gb18030"), ("gb18030", "gb18030"),
])
def test_auto_detects_the_encoding_and_reads_chinese_headers(tmp_path, encoding, detected):
    path = zh_file(tmp_path, zh_row(), zh_row(SSN_B, passed="否"), encoding=encoding)
    table = read_rows(path)
    assert table.encoding == detected and table.format == "csv"
    assert table.header[0] == "身份证号" and [r.line for r in table.rows] == [2, 3]
    result = convert(path)
    assert result.errors == [] and result.valid == 2
    first, second = (e.event for e in result.events)
    assert first.ssn == SSN_A and first.source == SCHOOL
    assert first.payload.model_dump(mode="json") == {"program_id": "PX-2024-017", "end_date": "2024-04-15",
                                                      "hours": 80, "passed": True}
    assert second.payload.passed is False
    assert first.occurred_at == dt.datetime(2024, 4, 15, 17, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def test_gb18030_characters_outside_gbk(tmp_path):
    """A rare name character (not in GBK) in a GB18030 file: auto reads it; GBK cannot."""
    text = "\r\n".join([ZH_HEADER, zh_row(name="𠮷丽")]) + "\r\n"
    path = write(tmp_path, text, "gb18030")
    with pytest.raises(UnicodeEncodeError):
        text.encode("gbk")
    assert read_rows(path).encoding == "gb18030"
    assert read_rows(path, encoding="gb18030").rows[0].cells[1] == "𠮷丽"
    with pytest.raises(EmitInputError) as err:
        read_rows(path, encoding="gbk")
    assert err.value.line == 2 and "not valid gbk" in str(err.value)


def test_explicit_encodings(tmp_path):
    gbk = zh_file(tmp_path, zh_row(), encoding="gbk")
    assert read_rows(gbk, encoding="gbk").header[0] == "身份证号"
    with pytest.raises(EmitInputError) as err:
        read_rows(gbk, encoding="utf-8")
    assert err.value.line == 1
    bom = zh_file(tmp_path, zh_row(), encoding="utf-8-sig", name="bom.csv")
    assert read_rows(bom, encoding="utf-8").header[0] == "身份证号"  # the BOM is not part of the header
    utf16 = write(tmp_path, ZH_HEADER, "utf-16", name="u16.csv")
    with pytest.raises(EmitInputError, match="UTF-16"):
        read_rows(utf16)


def test_header_names_are_normalised(tmp_path):
    header = "*身份证号, 培训项目编号 ,结束日期,学时（小时）,ＰＡＳＳＥＤ,发生时间,来源机构代码"
    path = write(tmp_path, header + "\n" + f"{SSN_A},P1,2024-04-15,80,true,2024-04-15 17:00,{SCHOOL}\n")
    result = convert(path)
    assert result.errors == [] and result.events[0].event.payload.hours == 80


def test_every_payload_field_has_a_column_and_chinese_names():
    for kind, layout in LAYOUTS.items():
        payload_model = EVENT_TYPES[kind].model_fields["payload"].annotation
        payload_paths = {c.path for c in layout.values() if c.path.startswith("payload.")}
        assert payload_paths == {f"payload.{f}" for f in payload_model.model_fields}, kind
        for column in layout:
            assert HEADER_ALIASES.get(column), f"{kind}: no Chinese header for {column}"


def test_the_doc_lists_every_column_and_every_chinese_name():
    text = DOC.read_text(encoding="utf-8")
    for kind, layout in LAYOUTS.items():
        assert f"### `{kind}`" in text
        for column in layout:
            assert f"`{column}`" in text, column
    for aliases in HEADER_ALIASES.values():
        for alias in aliases:
            assert alias in text or alias.upper() in text, alias
    assert str(EVENT_ID_NAMESPACE) in text


# --- values ---------------------------------------------------------------------------------

def test_cell_formats(tmp_path):
    rows = [
        zh_row(end="2024/4/5", hours="８０", passed="TRUE", at="2024/4/5 9:30"),
        zh_row(SSN_B, end="2024年4月5日", hours="0", passed="0", at="2024-04-05T01:30:00Z"),
        zh_row(SSN_LEGACY, passed="否"),
        zh_row(SSN_A.lower(), program="P2", passed="1"),
    ]
    result = convert(zh_file(tmp_path, *rows))
    assert result.errors == []
    events = [e.event for e in result.events]
    assert [e.payload.end_date.isoformat() for e in events[:2]] == ["2024-04-05", "2024-04-05"]
    assert [e.payload.passed for e in events] == [True, False, False, True]
    assert events[0].payload.hours == 80
    assert events[0].occurred_at == events[1].occurred_at  # 09:30 +08:00 is 01:30Z
    assert events[2].ssn == SSN_LEGACY_18 and events[2].ssn_legacy == SSN_LEGACY
    assert events[3].ssn == SSN_A


def test_other_types_enums_months_and_nulls(tmp_path):
    header = "事件类型,身份证号,发生时间,来源机构,证书编号,证书类型,职业编码,等级,发证日期,险种,所属期,地区,缴费基数,单位缴费,个人缴费"
    rows = [
        f"certificate.issued,{SSN_A},2024-05-01 10:00,{SCHOOL},S1,职业技能等级证书,6-18-01-01,四级/中级工,2024-05-01,,,,,,",
        f"certificate.issued,{SSN_A},2024-05-01 10:00,{SCHOOL},S2,特种作业,6-18-01-01,,2024-05-01,,,,,,",
        f"insurance.contribution,{SSN_A},2024-02-01 10:00,{SCHOOL},,,,,,失业保险,202401,440305,5000,800,400",
    ]
    path = write(tmp_path, "\n".join([header, *rows]) + "\n", "gbk")
    result = convert(path, event_type=None)
    assert [(e.line, e.column, e.reason) for e in result.errors] == [(2, "等级", "schema")]
    assert "must be" in result.errors[0].message or "Input should be" in result.errors[0].message
    fixed = path.read_bytes().decode("gbk").replace("四级/中级工", "四级")
    path.write_bytes(fixed.encode("gbk"))
    result = convert(path, event_type=None)
    assert result.errors == []
    cert, special, contribution = (e.event for e in result.events)
    assert (cert.payload.kind, cert.payload.level) == ("skill_level", "intermediate")
    assert (special.payload.kind, special.payload.level) == ("special_competency", None)
    assert (contribution.payload.scheme, contribution.payload.month, contribution.payload.base_cny) == (
        "unemployment", "2024-01", 5000)


# --- errors: line, column, reason ----------------------------------------------------------

BAD_CELLS = [
    # (row arguments, column, reason, message fragment)
    (dict(hours="8o"), "学时", "schema", "must be a whole number written in digits (0-9)"),
    (dict(hours="80.0"), "学时", "schema", "must be a whole number written in digits (0-9)"),
    (dict(hours="-1"), "学时", "schema", "must be a whole number written in digits (0-9)"),
    (dict(passed="也许"), "是否合格", "schema", "must be true/false, 是/否 or 1/0"),
    (dict(hours=""), "学时", "schema", "missing field"),
    (dict(ssn=""), "身份证号", "schema", "missing field"),
    (dict(ssn="11010519491231003X"), "身份证号", "invalid_ssn", "check character does not match"),
    (dict(ssn="1.10105E+17"), "身份证号", "invalid_ssn", "must have 18 characters"),
    (dict(source="52440300MJL0000013"), "机构代码", "invalid_org_code", "check character does not match"),
    (dict(end="2024-02-30"), "结束日期", "invalid_date", "is not a calendar date"),
    (dict(end="15/04/2024"), "结束日期", "invalid_date", "must be a date YYYY-MM-DD"),
    (dict(at="2024-04-15"), "发生时间", "invalid_date", "timestamp"),
    (dict(at="2099-01-01 08:00"), "发生时间", "future_date", "ahead of now"),
    (dict(program="P" * 200), "培训项目编号", "schema", "at most 128"),
]


@pytest.mark.parametrize("changes, column, reason, fragment", BAD_CELLS,
                         ids=[f"{c}-{r}-{list(ch)[0]}" for ch, c, r, _ in BAD_CELLS])
def test_each_bad_cell_gives_its_line_column_and_reason(tmp_path, changes, column, reason, fragment):
    path = zh_file(tmp_path, zh_row(), "", zh_row(**{"ssn": SSN_B, **changes}), zh_row(SSN_LEGACY))
    result = convert(path)
    assert errors(result) == [(4, column, reason)]  # line 3 is blank: the row is on line 4
    assert fragment in result.errors[0].message
    assert result.valid == 2 and result.invalid == 1 and result.rows == 3
    assert not SSN_LIKE.search(str(result.errors[0]))


def test_several_problems_in_one_row_one_error_listing_them(tmp_path):
    path = zh_file(tmp_path, zh_row(ssn="11010519491231003X", hours="8o", passed="也许"))
    (error,) = convert(path).errors
    assert (error.line, error.column, error.reason) == (2, "学时", "schema")
    assert error.message == ("must be a whole number written in digits (0-9); 是否合格: must be true/false, "
                             "是/否 or 1/0; 身份证号: 110105********003X: check character does not match "
                             "(ISO 7064 MOD 11-2)")
    assert str(error) == f"line 2, column 学时: schema: {error.message}"


@pytest.mark.parametrize("header, row, event_type, expected", [
    # unknown column, on the header's line
    ("身份证号,完成情况,培训项目编号,结束日期,学时,是否合格,发生时间,机构代码", zh_row(name="x"),
     "training.completed", [(1, "完成情况", "schema")]),
    # a column of another type
    ("身份证号,姓名,培训项目编号,结束日期,学时,是否合格,发生时间,机构代码,计划学时", zh_row() + ",80",
     "training.completed", [(1, "计划学时", "schema")]),
    # the same column twice (two names)
    ("身份证号,社会保障号码,培训项目编号,结束日期,学时,是否合格,发生时间,机构代码", zh_row(name=SSN_A),
     "training.completed", [(1, "社会保障号码", "schema")]),
    # a required column missing
    ("身份证号,姓名,培训项目编号,结束日期,是否合格,发生时间,机构代码",
     f"{SSN_A},x,P1,2024-04-15,是,2024-04-15 17:00,{SCHOOL}", "training.completed", [(1, "hours", "schema")]),
    # no type column and no --type
    (ZH_HEADER, zh_row(), None, [(1, "type", "schema")]),
])
def test_header_errors(tmp_path, header, row, event_type, expected):
    path = write(tmp_path, f"{header}\n{row}\n")
    result = convert(path, event_type=event_type)
    assert errors(result) == expected
    assert result.valid == 0 and result.invalid == 1
    assert not SSN_LIKE.search(" ".join(str(e) for e in result.errors))


def test_row_level_structure_errors(tmp_path):
    header = "事件类型,身份证号,发生时间,来源机构,培训项目编号,结束日期,学时,是否合格,计划学时"
    rows = [
        f"training.completed,{SSN_A},2024-04-15 17:00,{SCHOOL},P1,2024-04-15,80,是,",      # 2 ok
        f"training.complete,{SSN_A},2024-04-15 17:00,{SCHOOL},P1,2024-04-15,80,是,",       # 3 unknown type
        f"training.completed,{SSN_A},2024-04-15 17:00,{SCHOOL},P1,2024-04-15,80,是,40",    # 4 other type's cell
        f"training.completed,{SSN_A},2024-04-15 17:00,{SCHOOL},P1,2024-04-15,80,是",       # 5 a cell short
        f",{SSN_A},2024-04-15 17:00,{SCHOOL},P1,2024-04-15,80,是,",                        # 6 no type
        f"training.completed,{SSN_A},2024-04-15 17:00,{SCHOOL},P1,2024-04-15,,是,",        # 7 missing hours
    ]
    result = convert(write(tmp_path, "\n".join([header, *rows]) + "\n"), event_type=None)
    assert errors(result) == [(3, "事件类型", "unknown_type"), (4, "计划学时", "schema"), (5, "-", "malformed"),
                              (6, "事件类型", "schema"), (7, "学时", "schema")]
    assert result.errors[1].message == "not a field of training.completed: leave the cell empty"
    assert result.errors[2].message == "8 cells, the header has 9"
    assert result.errors[4].message == "missing field"


def test_columns_without_header_and_trailing_empty_cells(tmp_path):
    rows = [zh_row() + ",,", zh_row(SSN_B) + ",,,", zh_row(SSN_LEGACY) + ",,x", zh_row(SSN_B, program="P9") + ",,,x"]
    result = convert(write(tmp_path, "\n".join([ZH_HEADER + ",,", *rows]) + "\n"))
    assert errors(result) == [(4, "#10", "schema"), (5, "-", "malformed")]
    assert result.errors[0].message == "a value in a column without a header name"
    assert result.errors[1].message == "11 cells, the header has 10"


def test_dispatched_without_agency_names_the_missing_column(tmp_path):
    header = "身份证号,发生时间,来源机构,用人单位,职业编码,合同类型,是否签订书面合同,入职日期,地区"
    row = f"{SSN_A},2024-01-01 09:00,{SCHOOL},{EMPLOYER},6-18-01-01,劳务派遣,是,2024-01-01,440305"
    result = convert(write(tmp_path, f"{header}\n{row}\n"), event_type="employment.started")
    assert errors(result) == [(2, "dispatch_agency", "schema")]
    assert "requires dispatch_agency" in result.errors[0].message


def test_source_option(tmp_path):
    header = "身份证号,培训项目编号,结束日期,学时,是否合格,发生时间"
    path = write(tmp_path, f"{header}\n{SSN_A},P1,2024-04-15,80,是,2024-04-15 17:00\n")
    assert errors(convert(path)) == [(1, "source", "schema")]
    result = convert(path, source=SCHOOL)
    assert result.errors == [] and result.events[0].event.source == SCHOOL
    assert errors(convert(path, source="52440300MJL0000013")) == [(2, "--source", "invalid_org_code")]
    with_column = zh_file(tmp_path, zh_row(), zh_row(SSN_B, source=""), name="s.csv")
    other = make_org_code("52440300MJL000002")
    assert errors(convert(with_column, source=SCHOOL)) == []
    assert errors(convert(with_column, source=other)) == [(2, "机构代码", "schema")]


def test_event_id_conflicts_and_duplicates_within_the_file(tmp_path):
    header = "事件编号," + ZH_HEADER
    rows = [f"E1,{zh_row()}", f"E1,{zh_row()}", f"E1,{zh_row(hours='70')}", f",{zh_row(SSN_B)}", f",{zh_row(SSN_B)}"]
    result = convert(write(tmp_path, "\n".join([header, *rows]) + "\n"))
    assert errors(result) == [(4, "事件编号", "event_id_conflict")]
    assert "line 2" in result.errors[0].message
    assert [d.line for d in result.duplicates] == [3, 6]
    assert [e.line for e in result.events] == [2, 5]
    assert result.events[0].event.event_id == "E1" and not result.events[0].derived_id
    assert result.events[1].derived_id and result.valid == 4 and result.invalid == 1


def test_the_conflict_rule_is_the_fold_s_per_worker(tmp_path):
    """The same event_id for two workers: two events, as the fold (one state per worker) takes them."""
    header = "事件编号," + ZH_HEADER
    rows = [f"E1,{zh_row()}", f"E1,{zh_row(SSN_B, hours='70')}"]
    result = convert(write(tmp_path, "\n".join([header, *rows]) + "\n"))
    assert errors(result) == [] and [e.line for e in result.events] == [2, 3]
    files = fold_files(event_to_json_dict(e.event) for e in result.events)
    assert [f["applied_events"] for f in files] == [1, 1]


def test_correction_of_another_type_in_the_same_file(tmp_path):
    header = "事件类型,事件编号,更正事件编号,身份证号,发生时间,来源机构,培训项目编号,结束日期,学时,是否合格,日期"
    rows = [f"training.completed,E1,,{SSN_A},2024-04-15 17:00,{SCHOOL},P1,2024-04-15,80,是,",
            f"training.withdrawn,E2,E1,{SSN_A},2024-04-16 17:00,{SCHOOL},P1,,,,2024-04-16"]
    result = convert(write(tmp_path, "\n".join([header, *rows]) + "\n"), event_type=None)
    assert errors(result) == [(3, "更正事件编号", "correction_type_mismatch")]


def test_jsonl_rows(tmp_path):
    good = {"event_id": "J1", "type": "training.completed", "ssn": SSN_A, "occurred_at": "2024-04-15T17:00:00+08:00",
            "source": SCHOOL, "corrects": None, "payload": {"program_id": "P1", "end_date": "2024-04-15",
                                                            "hours": 80, "passed": True}}
    no_id = {k: v for k, v in good.items() if k != "event_id"}
    bad = {**good, "event_id": "J2", "payload": {**good["payload"], "hours": "80"}}
    lines = [orjson.dumps(good).decode(), "", "{not json", orjson.dumps(no_id).decode(), orjson.dumps(bad).decode()]
    path = write(tmp_path, "\n".join(lines) + "\n", name="events.jsonl")
    result = convert(path, event_type=None)
    assert errors(result) == [(3, "-", "malformed"), (5, "payload.hours", "schema")]
    assert [e.line for e in result.events] == [1, 4]
    assert result.events[1].derived_id
    assert errors(convert(path, event_type=None, source=make_org_code("52440300MJL000002"))) == [
        (1, "--source", "schema"), (3, "-", "malformed"), (4, "--source", "schema"), (5, "--source", "schema")]
    # the same content as a CSV row gets the same derived id
    csv_path = zh_file(tmp_path, zh_row(program="P1", at="2024-04-15T17:00:00+08:00"))
    assert convert(csv_path).events[0].event.event_id == result.events[1].event.event_id


# --- stable ids -----------------------------------------------------------------------------

def test_stable_ids_do_not_depend_on_encoding_headers_column_order_position_or_name(tmp_path):
    rows_zh = [zh_row(), zh_row(SSN_B, passed="否"), zh_row(SSN_LEGACY, hours="64")]
    variants = []
    for i, encoding in enumerate(("gbk", "gb18030", "utf-8", "utf-8-sig")):
        variants.append(zh_file(tmp_path, *rows_zh, encoding=encoding, name=f"zh{i}.csv"))
    en_rows = [  # English headers, other column order, other spellings of the same values, reversed
        f"{SCHOOL},{SSN_LEGACY_18},2024-04-15T09:00:00Z,PX-2024-017,2024/4/15,64,true",
        f"{SCHOOL},{SSN_B},2024-04-15T17:00:00+08:00,PX-2024-017,2024-04-15,80,false",
        f"{SCHOOL},{SSN_A.lower()},2024/4/15 17:00:00,PX-2024-017,2024年4月15日,８０,1",
    ]
    order = "source,ssn,occurred_at,program_id,end_date,hours,passed"
    variants.append(write(tmp_path, "\n".join([order, *en_rows]) + "\n", "utf-8", "other-name.txt"))
    ids = []
    for path in variants:
        result = convert(path)
        assert result.errors == [], (path, result.errors)
        ids.append(sorted(e.event.event_id for e in result.events))
    assert all(i == ids[0] for i in ids) and len(set(ids[0])) == 3
    # what the contract's content says: other content, other id
    other = convert(zh_file(tmp_path, zh_row(hours="79"), name="o.csv")).events[0].event.event_id
    assert other not in ids[0]


def test_stable_id_rule_as_documented():
    assert EVENT_ID_NAMESPACE == uuid.uuid5(uuid.NAMESPACE_URL, "urn:workerfile:emit:event-id:v1")
    from processors.intake import validate_event

    event = validate_event({"event_id": "x", "type": "training.completed", "ssn": SSN_A,
                            "occurred_at": "2024-04-15T09:00:00Z", "source": SCHOOL, "corrects": None,
                            "payload": {"program_id": "PX-2024-017", "end_date": "2024-04-15", "hours": 80,
                                        "passed": True}})
    content = {"type": "training.completed", "ssn": SSN_A, "occurred_at": "2024-04-15T17:00:00+08:00",
               "source": SCHOOL, "payload": {"program_id": "PX-2024-017", "end_date": "2024-04-15",
                                             "hours": 80, "passed": True}}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(event) == text
    assert stable_event_id(event) == str(uuid.uuid5(EVENT_ID_NAMESPACE, text)) == "259bf21d-42d2-5ad8-93e4-34901eacb9ed"
    assert "259bf21d-42d2-5ad8-93e4-34901eacb9ed" in DOC.read_text(encoding="utf-8")


def test_doc_example_reads_as_documented(tmp_path):
    path = write(tmp_path, doc_example(), "gbk", "结业名单.csv")
    result = convert(path)
    assert result.errors == [] and result.valid == 4
    assert read_rows(path).encoding == "gb18030"
    assert result.events[0].event.event_id == "259bf21d-42d2-5ad8-93e4-34901eacb9ed"


# --- the send policy --------------------------------------------------------------------------

def test_everything_valid_everything_sent_and_confirmed(tmp_path):
    path = zh_file(tmp_path, zh_row(), zh_row(SSN_B), zh_row())
    sender = FakeSender()
    summary = emit_file(path, sender, event_type="training.completed", now=NOW)
    assert [e.ssn for e in sender.sent] == [SSN_A, SSN_B] and sender.flushed == 1
    assert (summary.read, summary.valid, summary.invalid, summary.sent, summary.confirmed, summary.duplicates) == (
        3, 3, 0, 2, 2, 1)
    assert summary.exit_code == 0
    assert summary.line().startswith(
        "rows read 3, valid 3, invalid 0, sent 2, confirmed 2, duplicates-in-file 1 (csv, encoding gb18030")


def test_nothing_is_sent_when_a_row_is_invalid(tmp_path):
    path = zh_file(tmp_path, zh_row(), zh_row(SSN_B, hours="x"), zh_row(SSN_LEGACY))
    sender = FakeSender()
    summary = emit_file(path, sender, event_type="training.completed", now=NOW)
    assert sender.sent == [] and sender.flushed == 0
    assert (summary.read, summary.valid, summary.invalid, summary.sent, summary.confirmed) == (3, 2, 1, 0, 0)
    assert summary.exit_code == 1
    assert "NOTHING SENT: 1 invalid row; fix it or use --partial to send the 2 valid events" in summary.line()


def test_nothing_is_sent_when_the_header_is_invalid(tmp_path):
    path = write(tmp_path, "身份证号,完成情况\n" + f"{SSN_A},x\n")
    sender = FakeSender()
    summary = emit_file(path, sender, event_type="training.completed", now=NOW)
    assert sender.sent == [] and summary.exit_code == 1 and summary.invalid == 1


def test_partial_sends_the_valid_rows_and_says_how_many_were_not(tmp_path):
    path = zh_file(tmp_path, zh_row(), zh_row(SSN_B, hours="x"), zh_row(SSN_LEGACY), zh_row(SSN_B, at="2024-04-15"))
    sender = FakeSender()
    summary = emit_file(path, sender, event_type="training.completed", partial=True, now=NOW)
    assert [e.ssn for e in sender.sent] == [SSN_A, SSN_LEGACY_18]
    assert (summary.read, summary.valid, summary.invalid, summary.sent, summary.confirmed) == (4, 2, 2, 2, 2)
    assert summary.exit_code == 1
    assert "--partial: 2 invalid rows NOT sent" in summary.line()


def test_dry_run_sends_nothing(tmp_path):
    path = zh_file(tmp_path, zh_row())
    sender = FakeSender()
    summary = emit_file(path, sender, event_type="training.completed", dry_run=True, now=NOW)
    assert sender.sent == [] and summary.exit_code == 0 and len(summary.events) == 1
    assert "dry run: 1 event would be sent" in summary.line()


def test_unconfirmed_deliveries_are_reported(tmp_path):
    path = zh_file(tmp_path, zh_row(), zh_row(SSN_B), zh_row(SSN_LEGACY))
    summary = emit_file(path, FakeSender(fail_every=2), event_type="training.completed", now=NOW)
    assert (summary.sent, summary.confirmed) == (3, 2) and summary.exit_code == 3
    assert summary.failures == ["line 3: delivery not confirmed: TimeoutError: no ack"]
    assert "1 of 3 events NOT confirmed" in summary.line()


def test_the_command_output_masks_every_ssn(tmp_path):
    path = zh_file(tmp_path, zh_row(ssn="11010519491231003X"), zh_row(SSN_B, hours="x"), zh_row(SSN_LEGACY))
    out, err = io.BytesIO(), io.StringIO()
    code = emit.run(str(path), broker="unused:9092", event_type="training.completed", source=None, encoding="auto",
                    format="auto", partial=False, dry_run=False, out=out, err=err, sender=FakeSender())
    assert code == 1 and out.getvalue() == b""
    lines = err.getvalue().splitlines()
    assert lines[0] == ("结业名单.csv: line 2, column 身份证号: invalid_ssn: 110105********003X: check character "
                        "does not match (ISO 7064 MOD 11-2)")
    assert lines[1] == "结业名单.csv: line 3, column 学时: schema: must be a whole number written in digits (0-9)"
    assert lines[-1].startswith("workerfile emit: 结业名单.csv: rows read 3, valid 1, invalid 2, sent 0, confirmed 0")
    assert not SSN_LIKE.search(err.getvalue())


def test_dry_run_prints_the_events_as_canonical_json_lines(tmp_path):
    path = zh_file(tmp_path, zh_row(), zh_row(SSN_LEGACY))
    out, err = io.BytesIO(), io.StringIO()
    code = emit.run(str(path), broker="unused:9092", event_type="training.completed", source=None, encoding="auto",
                    format="auto", partial=False, dry_run=True, out=out, err=err)
    assert code == 0
    events = [orjson.loads(x) for x in out.getvalue().splitlines()]
    assert [e["ssn"] for e in events] == [SSN_A, SSN_LEGACY_18] and events[1]["ssn_legacy"] == SSN_LEGACY


def test_unreadable_file_exit_status_2(tmp_path):
    err = io.StringIO()
    code = emit.run(str(tmp_path / "missing.csv"), broker="x", event_type=None, source=None, encoding="auto",
                    format="auto", partial=False, dry_run=True, out=io.BytesIO(), err=err)
    assert code == 2 and "cannot read" in err.getvalue()


def test_cli_parser_has_the_emit_command():
    args = build_parser().parse_args(["emit", "f.csv", "--type", "training.completed", "--source", SCHOOL,
                                      "--encoding", "gbk", "--partial", "--dry-run", "--broker", "b:1"])
    assert (args.file, args.type, args.source, args.encoding, args.partial, args.dry_run, args.broker) == (
        "f.csv", "training.completed", SCHOOL, "gbk", True, True, "b:1")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["emit", "f.csv", "--encoding", "latin-1"])


def test_unknown_type_option_exit_status_2(tmp_path):
    err = io.StringIO()
    code = emit.run(str(zh_file(tmp_path, zh_row())), broker="x", event_type="training.complete", source=None,
                    encoding="auto", format="auto", partial=False, dry_run=True, out=io.BytesIO(), err=err)
    assert code == 2 and "is not an event type" in err.getvalue()
