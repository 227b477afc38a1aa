"""Emitting batch files of events, as training institutions and other sources have them:
canonical JSON lines, or CSV with one column layout per event type (docs/csv-layouts.md).

The whole file is validated before anything is sent (`read_rows` → `rows_to_events`);
if a row is invalid nothing is sent unless `partial=True` (`emit_file`). A row without
an `event_id` gets a stable one (`stable_event_id`), so uploading the same file again
sends the same events again, which the fold treats as duplicates.

Error messages and summaries never show a whole social-security number.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import time
import typing
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import orjson

from workerfile.logmask import mask_text
from processors.intake import Rejection, validate_event
from schemas.events import CST, EVENT_TYPES, Envelope, event_to_json_dict
from streams.kafka_security import KafkaSecurity

# --- the stable event_id ------------------------------------------------------------------

EVENT_ID_NAMESPACE = uuid.UUID("3d580c37-1a4e-5aeb-9e80-ab1163487cd4")
"""= uuid.uuid5(uuid.NAMESPACE_URL, "urn:workerfile:emit:event-id:v1"); never change it."""


def canonical_content(event: Envelope) -> dict:
    """The normalised content of an event that its stable id is derived from: type,
    normalised ssn, occurred_at as the same instant at +08:00, source, corrects (only
    when given) and the payload fields that have a value, in their JSON form."""
    payload = {k: v for k, v in event.payload.model_dump(mode="json").items() if v is not None}
    content = {"type": event.type, "ssn": event.ssn, "occurred_at": event.occurred_at.astimezone(CST).isoformat(),
               "source": event.source, "payload": payload}
    if event.corrects is not None:
        content["corrects"] = event.corrects
    return content


def canonical_json(event: Envelope) -> str:
    """`canonical_content` as JSON: keys sorted at every level, no whitespace, UTF-8 text
    (non-ASCII characters not escaped) — what `json.dumps(c, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)` writes."""
    return orjson.dumps(canonical_content(event), option=orjson.OPT_SORT_KEYS).decode()


def stable_event_id(event: Envelope) -> str:
    """uuid5(EVENT_ID_NAMESPACE, canonical_json(event)): the same content gives the same
    id, whatever the file name, encoding, column order, header language or row position."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, canonical_json(event)))


# --- the CSV layouts ----------------------------------------------------------------------

ENVELOPE_COLUMNS = ("type", "event_id", "ssn", "occurred_at", "source", "corrects")
RETRACTED_COLUMN = "retracted_event_id"  # event.retracted's payload.event_id (event_id is the envelope's)

# Chinese (and other) header names → column name. Header names are compared after NFKC,
# trimming, dropping a leading "*" and a trailing "(note)", and lower-casing.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "type": ("事件类型", "类型"),
    "event_id": ("事件编号", "事件id"),
    "ssn": ("社会保障号码", "身份证号", "身份证号码", "公民身份号码", "社保号", "证件号码"),
    "occurred_at": ("发生时间",),
    "source": ("来源机构", "来源机构代码", "机构代码"),
    "corrects": ("更正事件编号", "被更正事件编号"),
    "program_id": ("培训项目编号", "项目编号", "培训项目代码"),
    "program_name": ("项目名称", "培训项目名称"),
    "start_date": ("开始日期", "开班日期", "入职日期"),
    "planned_hours": ("计划学时",),
    "occupation_code": ("职业编码", "职业代码", "工种编码"),
    "end_date": ("结束日期", "结业日期", "离职日期"),
    "hours": ("学时", "完成学时", "实际学时"),
    "passed": ("是否合格",),
    "date": ("日期", "退出日期"),
    "reason": ("原因", "退出原因", "离职原因", "暂停原因", "撤销原因"),
    "employer": ("用人单位", "用人单位代码", "单位代码"),
    "contract_type": ("合同类型", "用工形式"),
    "written_contract": ("是否签订书面合同", "书面合同"),
    "region": ("地区", "地区代码", "行政区划代码", "参保地"),
    "monthly_wage_cny": ("月工资",),
    "dispatch_agency": ("劳务派遣单位", "派遣单位", "派遣单位代码"),
    "scheme": ("险种",),
    "month": ("月份", "所属期", "费款所属期", "缴费月份"),
    "base_cny": ("缴费基数",),
    "employer_amount_cny": ("单位缴费", "单位缴费金额"),
    "personal_amount_cny": ("个人缴费", "个人缴费金额"),
    "from_region": ("转出地", "转出地区"),
    "to_region": ("转入地", "转入地区"),
    "card_no": ("社保卡号", "卡号"),
    "issued_on": ("发证日期", "发卡日期"),
    "certificate_no": ("证书编号",),
    "kind": ("证书类型", "证书种类"),
    "level": ("等级", "技能等级", "职业技能等级"),
    "valid_until": ("有效期至",),
    "revoked_on": ("撤销日期", "注销日期"),
    "title": ("荣誉称号", "称号"),
    "awarded_on": ("授予日期", "获得日期"),
    RETRACTED_COLUMN: ("被撤回事件编号", "撤回事件编号"),
    "service_id": ("服务编号", "补贴编号"),
    "claimed_on": ("申领日期", "申请日期"),
    "decision": ("审核结果", "审核决定"),
    "decided_on": ("审核日期", "决定日期"),
    "paid_on": ("发放日期", "支付日期"),
    "amount_cny": ("发放金额", "支付金额"),
}

IGNORED_HEADERS = ("序号", "姓名", "备注", "no", "name", "remark")
"""Columns institutions' exports often have and the contract has no field for: accepted
and never sent."""

# Chinese labels accepted for enumerated values, by (event type or "*", field).
ENUM_LABELS: dict[tuple[str, str], dict[str, str]] = {
    ("*", "level"): {
        "学徒工": "apprentice", "初级工": "junior", "中级工": "intermediate", "高级工": "senior",
        "技师": "technician", "高级技师": "senior_technician", "特级技师": "principal_technician",
        "首席技师": "chief_technician",
        "五级": "junior", "四级": "intermediate", "三级": "senior", "二级": "technician", "一级": "senior_technician",
    },
    ("*", "kind"): {
        "职业资格": "vocational_qualification", "职业资格证书": "vocational_qualification",
        "职业技能等级": "skill_level", "职业技能等级证书": "skill_level",
        "特种作业": "special_competency", "特种作业操作证": "special_competency",
    },
    ("*", "scheme"): {
        "养老": "pension", "养老保险": "pension", "医疗": "medical", "医疗保险": "medical",
        "失业": "unemployment", "失业保险": "unemployment", "工伤": "work_injury", "工伤保险": "work_injury",
        "生育": "maternity", "生育保险": "maternity",
        "职业伤害": "occupational_injury", "职业伤害保障": "occupational_injury",
    },
    ("*", "contract_type"): {
        "无固定期限": "open_ended", "固定期限": "fixed_term", "以完成一定工作任务为期限": "task_based",
        "非全日制": "part_time", "劳务派遣": "dispatched", "平台用工": "platform",
    },
    ("employment.ended", "reason"): {
        "辞职": "resigned", "辞退": "dismissed", "解除": "dismissed", "合同到期": "contract_expired",
        "合同期满": "contract_expired", "退休": "retired", "其他": "other",
    },
    ("*", "title"): {
        "全国工匠": "national_craftsman", "国家级工匠": "national_craftsman", "省级工匠": "provincial_craftsman",
        "市级工匠": "city_craftsman", "劳动模范": "model_worker", "技能竞赛获奖": "competition_award",
        "竞赛获奖": "competition_award",
    },
    ("service.decided", "decision"): {"通过": "approved", "批准": "approved", "核准": "approved",
                                      "不通过": "refused", "不予批准": "refused", "驳回": "refused"},
}

TRUE_VALUES = ("true", "是", "1")
FALSE_VALUES = ("false", "否", "0")

Kind = Literal["str", "int", "bool", "date", "month", "timestamp", "enum"]


@dataclass(frozen=True)
class Column:
    """One column of a type's layout: where it goes in the event and how a cell is read."""

    name: str  # the English column name
    path: str  # the field path in the event ("ssn", "payload.hours")
    kind: Kind
    required: bool  # must have a value (source: unless --source; event_id never)
    nullable: bool = False  # required, but an empty cell means null (certificate level)
    labels: tuple[tuple[str, str], ...] = ()  # (Chinese label, value) of an enum


def _kind_of(annotation: Any) -> tuple[Kind, bool]:
    """(kind, nullable) of a payload field's annotation."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _kind_of(args[0])
    if origin is typing.Union or (origin is not None and type(None) in args):
        inner = [a for a in args if a is not type(None)]
        return _kind_of(inner[0])[0], type(None) in args
    if origin is Literal:
        return "enum", False
    if annotation is bool:
        return "bool", False
    if annotation is int:
        return "int", False
    if annotation is dt.date:
        return "date", False
    return "str", False


def _layout(event_type: str) -> dict[str, Column]:
    columns = {
        "type": Column("type", "type", "str", False),
        "event_id": Column("event_id", "event_id", "str", False),
        "ssn": Column("ssn", "ssn", "str", True),
        "occurred_at": Column("occurred_at", "occurred_at", "timestamp", True),
        "source": Column("source", "source", "str", True),
        "corrects": Column("corrects", "corrects", "str", False),
    }
    payload_model = EVENT_TYPES[event_type].model_fields["payload"].annotation
    for name, info in payload_model.model_fields.items():
        kind, nullable = _kind_of(info.annotation)
        if name == "month":
            kind = "month"
        labels = ENUM_LABELS.get((event_type, name)) or ENUM_LABELS.get(("*", name)) or {}
        column = RETRACTED_COLUMN if event_type == "event.retracted" and name == "event_id" else name
        columns[column] = Column(column, f"payload.{name}", kind, info.is_required() and not nullable,
                                 info.is_required() and nullable, tuple(labels.items()))
    return columns


LAYOUTS: dict[str, dict[str, Column]] = {t: _layout(t) for t in EVENT_TYPES}
"""The column layout of every event type: envelope columns, then the payload fields."""

ALL_COLUMNS: frozenset[str] = frozenset(c for layout in LAYOUTS.values() for c in layout)


def header_key(name: str) -> str:
    """How a header name is compared: NFKC, trimmed, without a leading "*" (a required
    marker) or a trailing parenthesised note ("月工资（元）"), lower-case."""
    text = unicodedata.normalize("NFKC", name).strip().lstrip("*").strip()
    text = re.sub(r"\s*\([^()]*\)$", "", text)
    return text.lower()


def _header_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for column in sorted(ALL_COLUMNS):
        index[header_key(column)] = column
    for column, aliases in HEADER_ALIASES.items():
        assert column in ALL_COLUMNS, column
        for alias in aliases:
            key = header_key(alias)
            assert index.get(key, column) == column, f"header {alias} maps to two columns"
            index[key] = column
    return index


COLUMN_OF_HEADER: dict[str, str] = _header_index()
_IGNORED = frozenset(header_key(h) for h in IGNORED_HEADERS)


# --- reading files --------------------------------------------------------------------------

class EmitInputError(ValueError):
    """The file cannot be read at all (missing, not decodable, broken CSV quoting)."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


@dataclass(frozen=True)
class Row:
    """One data row: its 1-based line in the file (where it starts), and its cells (CSV,
    aligned with the header) or its text (JSONL)."""

    line: int
    cells: tuple[str, ...] | None = None
    text: str | None = None


@dataclass
class Table:
    """A file as read: its format, the encoding used, the CSV header and the rows."""

    path: str
    format: Literal["csv", "jsonl"]
    encoding: str
    rows: list[Row]
    header: tuple[str, ...] = ()
    header_line: int = 0


ENCODINGS = ("auto", "utf-8", "gbk", "gb18030")


def decode_bytes(data: bytes, encoding: str = "auto") -> tuple[str, str]:
    """(text, encoding used). auto: a UTF-8 BOM → "utf-8-sig"; valid UTF-8 → "utf-8";
    else "gb18030" (a superset of GBK). An explicit "utf-8" also drops a BOM.
    Raises EmitInputError naming the line of the first undecodable bytes."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise EmitInputError("the file is UTF-16 (a byte-order mark FF FE or FE FF): save it as CSV UTF-8 or GBK")
    if encoding == "auto":
        if data.startswith(b"\xef\xbb\xbf"):
            used = "utf-8-sig"
        else:
            try:
                return data.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                used = "gb18030"
    elif encoding == "utf-8":
        used = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
    else:
        used = encoding
    try:
        return data.decode(used), used
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise EmitInputError(f"bytes {data[err.start:err.start + 2].hex(' ')} are not valid {used}"
                             f"{'' if encoding != 'auto' else ' (auto-detected)'}; try --encoding", line) from None


def _format_of(path: Path, text: str) -> Literal["csv", "jsonl"]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    return "jsonl" if text.lstrip()[:1] == "{" else "csv"


def read_rows(path: str | Path, encoding: str = "auto", format: str = "auto") -> Table:
    """Read a CSV or JSONL file into rows with their line numbers (blank lines and
    all-empty CSV rows are skipped). format: "auto" (by extension .csv/.tsv/.txt or
    .jsonl/.ndjson/.json, else by content), "csv" or "jsonl". Raises EmitInputError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise EmitInputError(f"cannot read {path}: {err.strerror or err}") from None
    text, used = decode_bytes(data, encoding)
    fmt = _format_of(path, text) if format == "auto" else format
    if fmt == "jsonl":
        rows = [Row(n, text=line) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
        return Table(str(path), "jsonl", used, rows)
    if fmt != "csv":
        raise ValueError("format must be auto, csv or jsonl")
    return _read_csv(path, text, used)


def _read_csv(path: Path, text: str, used: str) -> Table:
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = "\t" if path.suffix.lower() == ".tsv" or ("\t" in first and "," not in first) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: tuple[str, ...] = ()
    header_line = 0
    rows: list[Row] = []
    last = 0
    try:
        for cells in reader:
            start, last = last + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if not header:
                header, header_line = tuple(cells), start
            else:
                rows.append(Row(start, cells=tuple(cells)))
    except csv.Error as err:
        raise EmitInputError(f"CSV cannot be parsed: {err}", last + 1) from None
    if not header:
        raise EmitInputError("no header row: the file is empty")
    return Table(str(path), "csv", used, rows, header, header_line)


# --- rows to events ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RowError:
    """Why a row (or the header) is invalid: its line, the column as the user wrote it
    (or the field path for JSONL, "--source"/"--type" for options), a contract reject
    reason, and a message without any whole social-security number."""

    line: int
    column: str
    reason: str
    message: str

    def __str__(self) -> str:  # the column too: a header or a JSON field name may be a number
        return scrub(f"line {self.line}, column {self.column}: {self.reason}: {self.message}")


@dataclass(frozen=True)
class RowEvent:
    """A valid row: its line and the validated event (event_id given or derived)."""

    line: int
    event: Envelope
    derived_id: bool


@dataclass
class Conversion:
    """Every row of a file, validated: the events to send (first occurrence of each
    event), the rows repeating an earlier row's event, and the errors."""

    rows: int = 0
    events: list[RowEvent] = field(default_factory=list)
    duplicates: list[RowEvent] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return self.rows - len(self.events) - len(self.duplicates)

    @property
    def valid(self) -> int:
        return len(self.events) + len(self.duplicates)


def scrub(text: str) -> str:
    """Mask anything that looks like a social-security number (as every log record is:
    workerfile.logmask.mask_text)."""
    return mask_text(text)


_BLANK = " \t\r\n\u3000\ufeff"


def _clean(cell: str) -> str:
    return cell.strip(_BLANK)


def _nfkc(cell: str) -> str:
    return unicodedata.normalize("NFKC", cell).strip(_BLANK)


_DATE_LIKE = re.compile(r"([0-9]{4})\s*[-/.年]\s*([0-9]{1,2})\s*[-/.月]\s*([0-9]{1,2})\s*日?")
_MONTH_LIKE = re.compile(r"([0-9]{4})\s*[-/.年]\s*([0-9]{1,2})\s*月?|([0-9]{4})([0-9]{2})")
_TIME_LIKE = re.compile(r"([0-9]{4})[-/]([0-9]{1,2})[-/]([0-9]{1,2})[ T]([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(\.[0-9]+)?)?"
                        r"(Z|z|[+-][0-9]{2}:[0-9]{2})?")


def _convert(column: Column, cell: str) -> Any:
    """A non-empty cell as the value of its field; raises ValueError(message) for cells
    that are not of the column's kind (dates are left for the contract's own checks)."""
    if column.kind == "str":
        return cell
    text = _nfkc(cell)
    if column.kind == "int":
        if not re.fullmatch(r"[0-9]{1,15}", text):
            raise ValueError("must be a whole number written in digits (0-9)")
        return int(text)
    if column.kind == "bool":
        if text.lower() in TRUE_VALUES:
            return True
        if text.lower() in FALSE_VALUES:
            return False
        raise ValueError("must be true/false, 是/否 or 1/0")
    if column.kind == "enum":
        return dict(column.labels).get(text, text.lower() if text.isascii() else text)
    if column.kind == "date":
        m = _DATE_LIKE.fullmatch(text)
        return f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}" if m else text
    if column.kind == "month":
        m = _MONTH_LIKE.fullmatch(text)
        if m:
            year, month = (m[1], m[2]) if m[1] else (m[3], m[4])
            return f"{year}-{int(month):02d}"
        return text
    if column.kind == "timestamp":
        m = _TIME_LIKE.fullmatch(text)
        if m:
            y, mo, d, h, mi, s, frac, tz = m.groups()
            return (f"{y}-{int(mo):02d}-{int(d):02d}T{int(h):02d}:{mi}:{s or '00'}{frac or ''}"
                    f"{'+00:00' if tz in ('Z', 'z') else (tz or '')}")
        return text
    raise AssertionError(column.kind)


def _put(data: dict, path: str, value: Any) -> None:
    if path.startswith("payload."):
        data["payload"][path[len("payload."):]] = value
    else:
        data[path] = value


def _message(rejection: Rejection, label_of: Callable[[str], str], primary: str) -> str:
    """The rejection's message with field paths replaced by the column names."""
    parts = []
    for segment in rejection.message.split("; "):
        path, sep, text = segment.partition(": ")
        if sep and (path in ("(event)",) or re.fullmatch(r"[a-z_]+(\.[a-z_]+)*", path)):
            label = label_of(path) if path != "(event)" else "(row)"
            parts.append(text if label == primary else f"{label}: {text}")
        else:
            parts.append(segment)
    return scrub("; ".join(parts))


class _Converter:
    """Turns the rows of one table into events (see rows_to_events)."""

    def __init__(self, table: Table, event_type: str | None, source: str | None, now: dt.datetime | None):
        if event_type is not None and event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        self.table, self.event_type, self.source, self.now = table, event_type, source, now
        self.result = Conversion()
        self.seen: dict[str, tuple[str, RowEvent]] = {}  # event_id -> (canonical json, first row)
        self.labels: dict[str, str] = {}  # column name -> header as written
        self.unnamed: list[int] = []  # columns without a header name: their cells must be empty

    # -- header
    def map_header(self) -> tuple[list[str | None], list[RowError]]:
        """The column name of every header cell (None: ignored), and the header's errors."""
        line = self.table.header_line
        columns: list[str | None] = []
        errors: list[RowError] = []
        where: dict[str, str] = {}
        allowed = set(LAYOUTS[self.event_type]) if self.event_type else ALL_COLUMNS
        for index, written in enumerate(self.table.header):
            label = scrub(written.strip(_BLANK))
            key = header_key(written)
            if not key:  # Excel's trailing empty columns
                self.unnamed.append(index)
                columns.append(None)
                continue
            if key in _IGNORED:
                columns.append(None)
                continue
            column = COLUMN_OF_HEADER.get(key)
            if column is None or column not in allowed:
                what = f"not a column of {self.event_type}" if column else "unknown column"
                errors.append(RowError(line, label, "schema", f"{what} (see docs/csv-layouts.md)"))
                columns.append(None)
                continue
            if column in where:
                errors.append(RowError(line, label, "schema",
                                       f"duplicate column: {where[column]} is also {column}"))
                columns.append(None)
                continue
            where[column] = label
            columns.append(column)
        if "type" not in where and self.event_type is None:
            errors.append(RowError(line, "type", "schema", "no type column and no --type: say which event type the rows are"))
        if "source" not in where and self.source is None:
            errors.append(RowError(line, "source", "schema", "no source column and no --source"))
        if self.event_type is not None:
            for column in LAYOUTS[self.event_type].values():
                if column.required and column.name not in ("source",) and column.name not in where and not column.nullable:
                    errors.append(RowError(line, column.name, "schema", f"missing column (required for {self.event_type})"))
        return columns, errors

    # -- rows
    def run(self) -> Conversion:
        table = self.table
        self.result.rows = len(table.rows)
        if table.format == "jsonl":
            for row in table.rows:
                self.take_json(row)
            return self.result
        columns, errors = self.map_header()
        if errors:
            self.result.errors.extend(errors)
            return self.result  # every row is invalid: none can be read with this header
        self.labels = {c: scrub(h.strip(_BLANK)) for h, c in zip(table.header, columns) if c}
        for row in table.rows:
            self.take_csv(row, columns)
        return self.result

    def label(self, column: str) -> str:
        if column == "source" and "source" not in self.labels and self.source is not None:
            return "--source"
        if column == "type" and "type" not in self.labels:
            return "--type"
        return self.labels.get(column, column)

    def error(self, row: Row, column: str, reason: str, message: str) -> None:
        self.result.errors.append(RowError(row.line, scrub(column), reason, scrub(message)))

    def take_csv(self, row: Row, columns: list[str | None]) -> None:
        cells = row.cells or ()
        if len(cells) < len(columns) or any(_clean(c) for c in cells[len(columns):]):
            self.error(row, "-", "malformed", f"{len(cells)} cells, the header has {len(columns)}")
            return
        cells = cells[:len(columns)]  # extra empty cells at the end are fine
        unnamed = [i for i in self.unnamed if _clean(cells[i])]
        if unnamed:
            self.error(row, f"#{unnamed[0] + 1}", "schema", "a value in a column without a header name")
            return
        values = {c: _clean(v) for c, v in zip(columns, cells) if c is not None}
        kind = values.get("type") or self.event_type
        if not kind:
            self.error(row, self.label("type"), "schema", "missing event type")
            return
        if self.event_type and kind != self.event_type:
            self.error(row, self.label("type"), "schema", f"type differs from --type {self.event_type}")
            return
        layout = LAYOUTS.get(kind)
        if layout is None:
            self.error(row, self.label("type"), "unknown_type", "unknown event type")
            return
        data: dict[str, Any] = {"type": kind, "payload": {}}
        problems: list[tuple[str, str]] = []
        for column, value in values.items():
            if column == "type" or (not value and not (column in layout and layout[column].nullable)):
                continue
            spec = layout.get(column)
            if spec is None:
                problems.append((column, f"not a field of {kind}: leave the cell empty"))
                continue
            if not value:  # nullable: an empty cell means null
                _put(data, spec.path, None)
                continue
            try:
                _put(data, spec.path, _convert(spec, value))
            except ValueError as err:
                problems.append((column, str(err)))
        for spec in layout.values():  # a required-nullable column that is not in the file: null
            if spec.nullable and spec.path.removeprefix("payload.") not in data["payload"]:
                data["payload"][spec.path.removeprefix("payload.")] = None
        label_of = self.column_of_path(layout)
        if problems:  # `schema`, the first reason after malformed/unknown_type: say the rest too
            self.cell_problems(row, data, [(self.label(c), text) for c, text in problems], label_of)
        elif self.fill_source(row, data):
            self.validate(row, data, label_of)

    def cell_problems(self, row: Row, data: dict, problems: list[tuple[str, str]],
                      label_of: Callable[[str], str]) -> None:
        """One error for a row with unreadable cells, listing also what the contract's
        checks find in the rest of the row (except the unreadable cells' absence)."""
        if self.source is not None:
            data.setdefault("source", self.source)
        data.setdefault("event_id", str(uuid.UUID(int=0)))
        bad = {label for label, _ in problems}
        first = problems[0][0]
        result = validate_event(data, self.now)
        more = _message(result, label_of, "").split("; ") if isinstance(result, Rejection) else []
        parts = [text if label == first else f"{label}: {text}" for label, text in problems]
        parts += [m for m in more if m.partition(": ")[0] not in bad]
        self.error(row, first, "schema", "; ".join(parts))

    def column_of_path(self, layout: dict[str, Column]) -> Callable[[str], str]:
        paths = {c.path: c.name for c in layout.values()}
        return lambda path: self.label(paths.get(path, path))

    def fill_source(self, row: Row, data: dict) -> bool:
        if self.source is None:
            return True
        given = data.get("source")
        if given is None:
            data["source"] = self.source
        elif given != self.source:
            self.error(row, self.label("source"), "schema", "source differs from --source")
            return False
        return True

    def take_json(self, row: Row) -> None:
        try:
            data = orjson.loads(row.text or "")
        except orjson.JSONDecodeError as err:
            self.error(row, "-", "malformed", f"not valid JSON: {err}")
            return
        if not isinstance(data, dict):
            self.error(row, "-", "schema", f"an event must be a JSON object, got {type(data).__name__}")
            return
        if self.event_type is not None:
            given = data.setdefault("type", self.event_type)
            if given != self.event_type:
                self.error(row, "type", "schema", f"type differs from --type {self.event_type}")
                return
        if not self.fill_source(row, data):
            return
        self.validate(row, data, lambda path: path)

    def validate(self, row: Row, data: dict, label_of: Callable[[str], str]) -> None:
        derived = data.get("event_id") in (None, "")
        if derived:
            data["event_id"] = str(uuid.UUID(int=0))  # replaced by the stable id once validated
        result = validate_event(data, self.now)
        if isinstance(result, Envelope) and derived:
            data["event_id"] = stable_event_id(result)
            result = validate_event(data, self.now)
        if isinstance(result, Rejection):
            column = label_of(result.field) if result.field else "-"
            self.error(row, column, result.reason, _message(result, label_of, column))
            return
        self.accept(row, result, derived, label_of)

    def accept(self, row: Row, event: Envelope, derived: bool, label_of: Callable[[str], str]) -> None:
        content = canonical_json(event)
        seen = self.seen.get(event.event_id)
        if seen is not None:
            if seen[0] == content:
                self.result.duplicates.append(RowEvent(row.line, event, derived))
            else:
                self.error(row, label_of("event_id"), "event_id_conflict",
                           f"event_id already used on line {seen[1].line} for other content")
            return
        if event.corrects is not None and event.corrects in self.seen:
            target = self.seen[event.corrects][1].event
            if target.type != event.type:
                self.error(row, label_of("corrects"), "correction_type_mismatch",
                           f"a {event.type} cannot correct the {target.type} of line {self.seen[event.corrects][1].line}")
                return
        row_event = RowEvent(row.line, event, derived)
        self.seen[event.event_id] = (content, row_event)
        self.result.events.append(row_event)


def rows_to_events(table: Table, event_type: str | None = None, source: str | None = None,
                   now: dt.datetime | None = None) -> Conversion:
    """Validate every row of `table` against the contract. CSV cells are read by the
    layout of the row's type (`event_type`, else the row's type column); `source` fills
    rows without one. A row without event_id gets `stable_event_id`. A row repeating an
    earlier row's event (same event_id, same content) is a duplicate; the same event_id
    with other content is `event_id_conflict`. One RowError per invalid row (the first
    reason in the contract's order; the message lists every problem of the row); header
    errors make every row invalid."""
    return _Converter(table, event_type, source, now).run()


# --- sending ---------------------------------------------------------------------------------

class Sender(typing.Protocol):
    """What emit_file sends with (streams.producer.EventProducer is one)."""

    def send(self, event: Envelope) -> Any: ...  # a future with .get(timeout)

    def flush(self, timeout: float | None = None) -> None: ...


@dataclass
class EmitSummary:
    """What a run did. read = valid + invalid; valid includes the in-file duplicates,
    which are not sent again; confirmed = deliveries the broker acknowledged."""

    path: str
    format: str
    encoding: str
    read: int = 0
    valid: int = 0
    invalid: int = 0
    sent: int = 0
    confirmed: int = 0
    duplicates: int = 0
    dry_run: bool = False
    partial: bool = False
    errors: list[RowError] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # deliveries not confirmed
    refused: list[str] = field(default_factory=list)  # topics this login may not write: nothing sent
    events: list[RowEvent] = field(default_factory=list)  # what was (or, dry run, would be) sent

    @property
    def exit_code(self) -> int:
        """0: everything valid and confirmed; 1: invalid rows; 3: a delivery not confirmed;
        4: the broker does not let this login write a topic of the file (nothing sent)."""
        if self.refused:
            return 4
        if self.failures:
            return 3
        return 1 if self.invalid or self.errors else 0

    def line(self) -> str:
        """The closing summary line."""
        text = (f"rows read {self.read}, valid {self.valid}, invalid {self.invalid}, sent {self.sent}, "
                f"confirmed {self.confirmed}, duplicates-in-file {self.duplicates}")
        notes = [f"{self.format}, encoding {self.encoding}"]
        to_send = len(self.events)
        if (self.invalid or self.errors) and not self.partial:
            if self.invalid and to_send:
                notes.append(f"NOTHING SENT: {self.invalid} invalid row{'s' * (self.invalid != 1)}; fix "
                             f"{'them' if self.invalid != 1 else 'it'} or use --partial to send the "
                             f"{to_send} valid event{'s' * (to_send != 1)}")
            elif self.invalid:
                notes.append(f"NOTHING SENT: {self.invalid} invalid row{'s' * (self.invalid != 1)}, no valid row")
            else:
                notes.append("NOTHING SENT: the header is invalid")
        elif self.invalid:
            notes.append(f"--partial: {self.invalid} invalid row{'s' * (self.invalid != 1)} NOT sent")
        if self.dry_run:
            notes.append(f"dry run: {to_send} event{'s' * (to_send != 1)} would be sent, none was")
        if self.refused:
            notes.append(f"NOTHING SENT: this login may not write to {', '.join(self.refused)}")
        elif self.failures:
            notes.append(f"{to_send - self.confirmed} of {to_send} events NOT confirmed (not sent or not "
                         f"acknowledged): upload the same file again, it is safe (same rows, same event ids)")
        return f"{text} ({'; '.join(notes)})"


def emit_file(path: str | Path, sender: Sender | None = None, *, broker: str | None = None,
              event_type: str | None = None, source: str | None = None, encoding: str = "auto",
              format: str = "auto", partial: bool = False, dry_run: bool = False,
              now: dt.datetime | None = None, timeout: float = 60.0,
              security: KafkaSecurity | None = None) -> EmitSummary:
    """Read, validate the whole file, then send: everything if every row is valid, the
    valid rows if `partial`, nothing otherwise (and nothing on `dry_run`). Sends with
    `sender`, or an EventProducer on `broker` made only when something is to be sent
    (logged in with `security`, default: the WORKERFILE_KAFKA_* environment); nothing is
    sent when the login may not write one of the file's topics (`refused`); flushes and
    checks every delivery. Raises EmitInputError when the file is unreadable."""
    table = read_rows(path, encoding, format)
    conversion = rows_to_events(table, event_type, source, now)
    summary = EmitSummary(str(path), table.format, table.encoding, read=conversion.rows, valid=conversion.valid,
                          invalid=conversion.invalid, duplicates=len(conversion.duplicates), dry_run=dry_run,
                          partial=partial, errors=conversion.errors, events=conversion.events)
    if dry_run or (conversion.invalid and not partial) or not conversion.events:
        return summary
    own = sender is None
    if own:
        from streams.producer import EventProducer

        broker = broker or "127.0.0.1:9092"
        from streams.producer import delivery_within

        try:  # a record not acknowledged within `timeout` fails (rather than retried past the run)
            sender = EventProducer(broker, security=security, **delivery_within(timeout))
        except Exception as err:
            summary.failures.append(f"cannot connect to the broker {broker}: {type(err).__name__}: {err}")
            return summary
    try:
        if _refused(sender, conversion.events, summary):
            return summary
        _send_all(sender, conversion.events, summary, timeout)
    finally:
        if own:
            sender.close()  # soon: every record is acknowledged or has failed within `timeout` of its send
    return summary


def _refused(sender: Sender, events: list[RowEvent], summary: EmitSummary) -> bool:
    """Ask the broker first whether this login may write every topic of the file (a
    sender with check_topics, like EventProducer): a party's file with another party's
    events is refused as a whole, before anything is sent."""
    check, topic_for = getattr(sender, "check_topics", None), getattr(sender, "topic_for", None)
    if check is None or topic_for is None:
        return False
    from streams.producer import NotAllowed

    try:
        check({topic_for(row_event.event) for row_event in events})
    except NotAllowed as err:
        summary.refused = list(err.topics)
        summary.failures.append(str(err))
        return True
    except Exception as err:  # the broker unreachable, or the login refused (a timeout)
        who = getattr(getattr(sender, "security", None), "describe", lambda: "")()
        summary.failures.append(scrub(f"nothing sent: the broker did not answer{f' ({who})' if who else ''}: "
                                      f"{type(err).__name__}: {err}"))
        return True
    return False


def _send_all(sender: Sender, events: list[RowEvent], summary: EmitSummary, timeout: float) -> None:
    pending = []
    for row_event in events:
        try:
            pending.append((row_event, sender.send(row_event.event)))
        except Exception as err:  # the producer does not take events (metadata timeout, buffer full)
            left = len(events) - len(pending)
            summary.failures.append(scrub(f"line {row_event.line}: not sent: {type(err).__name__}: {err}; "
                                          f"{left} row(s) from here on not sent"))
            break
    summary.sent = len(pending)
    deadline = time.monotonic() + timeout
    try:
        sender.flush(timeout)
    except Exception as err:
        summary.failures.append(scrub(f"not every event was acknowledged within {timeout:g} s (a broker down, or "
                                      f"fewer in-sync replicas than min.insync.replicas): {type(err).__name__}: {err}"))
    for row_event, future in pending:
        try:
            future.get(timeout=max(0.1, deadline - time.monotonic()))
        except Exception as err:
            summary.failures.append(scrub(f"line {row_event.line}: delivery not confirmed: {type(err).__name__}: {err}"))
        else:
            summary.confirmed += 1


def run(path: str, *, broker: str, event_type: str | None, source: str | None, encoding: str, format: str,
        partial: bool, dry_run: bool, out: typing.BinaryIO, err: typing.TextIO,
        sender: Sender | None = None, security: KafkaSecurity | None = None, timeout: float = 60.0) -> int:
    """The `workerfile emit` command: row errors, delivery failures and the summary on
    `err`; on a dry run, the events that would be sent as canonical JSON lines on `out`.
    Returns the exit status (0 ok, 1 invalid rows, 2 unreadable file, 3 not confirmed,
    4 refused: this login may not write a topic of the file, nothing sent)."""
    name = Path(path).name

    def say(text: str) -> None:  # every message masked, the file's name too
        print(scrub(text), file=err)

    if event_type is not None and event_type not in EVENT_TYPES:
        say(f"workerfile emit: --type {event_type!r} is not an event type; one of: {', '.join(EVENT_TYPES)}")
        return 2
    try:
        summary = emit_file(path, sender, broker=broker, event_type=event_type, source=source, encoding=encoding,
                            format=format, partial=partial, dry_run=dry_run, security=security, timeout=timeout)
    except EmitInputError as error:
        say(f"workerfile emit: {name}: {error}")
        return 2
    for row_error in summary.errors:
        say(f"{name}: {row_error}")
    for failure in summary.failures:
        say(f"{name}: {failure}")
    if dry_run and (partial or not summary.invalid):
        for row_event in summary.events:
            out.write(orjson.dumps(event_to_json_dict(row_event.event)) + b"\n")
        out.flush()
    say(f"workerfile emit: {name}: {summary.line()}")
    return summary.exit_code
