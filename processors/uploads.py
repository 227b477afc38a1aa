"""Uploads, the pure part: batch files of events as training institutions and other
sources have them — canonical JSON lines, or CSV with one column layout per event type
(docs/csv-layouts.md) — read from their bytes and turned into validated events. No I/O:
`streams/emit.py` reads the file and sends the events.

- the stable event_id of a row without one (`stable_event_id`), so that uploading the
  same file again makes the same events, which the fold takes as duplicates;
- the CSV layouts as data (`ENVELOPE_COLUMNS`, `ENUM_LABELS` from schemas/reference.py,
  one `Column` per payload field of each type), the header aliases;
- the bytes of a file to rows (`parse_rows`: encodings, CSV or JSONL);
- rows to events (`rows_to_events`): each row validated as the fold validates events, and
  the rows folded per worker by the fold itself (processors.fold.fold_event), so that a
  repeated event is a duplicate and an event_id reused with other content an
  `event_id_conflict` exactly as the stream will see them.

Error messages never show a whole social-security number.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import typing
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import orjson

from processors.fold import DUPLICATE, REJECTED, WorkerState, fold_event, new_state
from schemas.identity import mask_text
from processors.intake import Rejection, validate_event
from schemas.events import CST, EVENT_TYPES, Envelope
from schemas.reference import CERTIFICATE_KINDS, CONTRACT_TYPES, END_REASONS, HONORS, SCHEMES, SKILL_LEVEL_NAMES

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
        **{zh: code for code, (zh, _) in SKILL_LEVEL_NAMES.items()},
        "五级": "junior", "四级": "intermediate", "三级": "senior", "二级": "technician", "一级": "senior_technician",
    },
    ("*", "kind"): {  # the reference label, without 证书, and other spellings
        **{zh: code for code, (zh, _) in CERTIFICATE_KINDS.items()},
        **{zh.removesuffix("证书"): code for code, (zh, _) in CERTIFICATE_KINDS.items()},
        "特种作业": "special_competency", "特种作业操作证": "special_competency",
    },
    ("*", "scheme"): {  # the scheme's name, with or without 保险 / 保障 (养老保险, 养老)
        **{zh: code for code, (zh, _) in SCHEMES.items()},
        **{zh.removesuffix("保险").removesuffix("保障"): code for code, (zh, _) in SCHEMES.items()},
    },
    ("*", "contract_type"): {zh: code for code, (zh, _) in CONTRACT_TYPES.items()},
    ("employment.ended", "reason"): {
        **{zh: code for code, (zh, _) in END_REASONS.items()},
        "辞职": "resigned", "辞退": "dismissed", "解除": "dismissed", "合同期满": "contract_expired",
    },
    ("*", "title"): {
        **{zh: code for code, (zh, _) in HONORS.items()},
        "全国工匠": "national_craftsman", "国家级工匠": "national_craftsman", "竞赛获奖": "competition_award",
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


# --- reading rows --------------------------------------------------------------------------

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


def parse_rows(data: bytes, name: str, encoding: str = "auto", format: str = "auto") -> Table:
    """The rows of a CSV or JSONL file's bytes, with their line numbers (blank lines and
    all-empty CSV rows are skipped); `name` is the file's name (its extension chooses the
    format, and .tsv the delimiter). format: "auto" (by extension .csv/.tsv/.txt or
    .jsonl/.ndjson/.json, else by content), "csv" or "jsonl". Raises EmitInputError."""
    path = Path(name)
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
    schemas.identity.mask_text)."""
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
        self.states: dict[str, WorkerState] = {}  # the fold's state of each worker of the file
        self.lines: dict[tuple[str, str], int] = {}  # (ssn, event_id) -> the line of its first row
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
        """Fold the row's event into its worker's state, as the stream will: a duplicate,
        a conflict or a correction of another type is what the fold says it is."""
        state = self.states.get(event.ssn)
        if state is None:
            state = self.states[event.ssn] = new_state(event.ssn)
        outcome = fold_event(state, event)
        row_event = RowEvent(row.line, event, derived)
        if outcome.status == DUPLICATE:
            self.result.duplicates.append(row_event)
        elif outcome.status == REJECTED:
            rejection = outcome.rejection
            first = self.lines.get((event.ssn, event.event_id if rejection.field == "event_id" else event.corrects))
            where = f" (line {first})" if first else ""
            if rejection.reason == "event_id_conflict":
                message = f"event_id already used on line {first} for other content"
            else:
                message = f"{rejection.message}{where}"
            self.error(row, label_of(rejection.field) if rejection.field else "-", rejection.reason, message)
        else:
            self.lines[(event.ssn, event.event_id)] = row.line
            self.result.events.append(row_event)


def rows_to_events(table: Table, event_type: str | None = None, source: str | None = None,
                   now: dt.datetime | None = None) -> Conversion:
    """Validate every row of `table` against the contract. CSV cells are read by the
    layout of the row's type (`event_type`, else the row's type column); `source` fills
    rows without one. A row without event_id gets `stable_event_id`. A row repeating an
    earlier row's event (same worker, same event_id, same content) is a duplicate; the same
    event_id with other content is `event_id_conflict`, and a correction of an event of
    another type `correction_type_mismatch`: the fold's rules (processors.fold.fold_event),
    per worker, as the stream will apply them. One RowError per invalid row (the first
    reason in the contract's order; the message lists every problem of the row); header
    errors make every row invalid."""
    return _Converter(table, event_type, source, now).run()
