"""What the pipeline publishes (contract sections 3, 5, 6): the worker's file, the change
event, the service event and the rejected-event envelope, as frozen pydantic models.

The fold builds plain dicts for speed; `WorkerFile.model_validate(d)` checks one, and
the tests do so for every file they build. The Avro schemas are generated from these.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import CertificateKind, ContractType, EndReason, HonorTitle, Scheme, SkillLevel


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Card(Frozen):
    card_no: str
    issued_on: dt.date
    region: str


class Employment(Frozen):
    employer: str
    occupation_code: str
    contract_type: ContractType
    written_contract: bool
    dispatch_agency: str | None
    region: str
    monthly_wage_cny: int | None
    start_date: dt.date
    end_date: dt.date | None
    end_reason: EndReason | None


class Training(Frozen):
    source: str
    program_id: str
    program_name: str | None
    occupation_code: str | None
    status: Literal["enrolled", "completed", "withdrawn"]
    planned_hours: int | None
    hours: int
    passed: bool | None
    start_date: dt.date | None
    end_date: dt.date | None


class Certificate(Frozen):
    certificate_no: str
    kind: CertificateKind
    occupation_code: str
    level: SkillLevel | None
    issuer: str
    issued_on: dt.date
    valid_until: dt.date | None
    revoked_on: dt.date | None


class InsuranceScheme(Frozen):
    scheme: Scheme
    status: Literal["active", "suspended"]
    region: str | None
    months_contributed: int
    last_contribution_month: str | None


class Honor(Frozen):
    title: HonorTitle
    awarded_on: dt.date
    awarded_by: str


GrantStatus = Literal["offered", "over_annual_limit", "claimed", "approved", "refused", "paid"]
NoticeCode = Literal["no_written_contract", "platform_without_injury_cover"]
Decision = Literal["approved", "refused"]


class Claim(Frozen):
    """The winning claim of a grant (contract section 9)."""

    source: str
    region: str
    claimed_on: dt.date
    event_id: str


class GrantDecision(Frozen):
    decision: Decision
    decided_on: dt.date
    source: str
    event_id: str


class Payment(Frozen):
    paid_on: dt.date
    amount_cny: int
    source: str
    event_id: str


class SubsidyGrant(Frozen):
    certificate_no: str
    occupation_code: str
    level: SkillLevel
    apply_by: dt.date
    # contract section 9 (defaults: what a file written before it reads as)
    service_id: str = ""
    amount_cny: int = 0
    status: GrantStatus = "offered"
    claim: Claim | None = None
    decision: GrantDecision | None = None
    payments: list[Payment] = []


class Notice(Frozen):
    """Something labour inspection should look at (contract section 9)."""

    code: NoticeCode
    employer: str
    since: dt.date


class Services(Frozen):
    skill_upgrade_subsidy: list[SubsidyGrant]
    notices: list[Notice] = []


class FileIssue(Frozen):
    code: str
    event_id: str


class WorkerFile(Frozen):
    """One worker's electronic file (contract section 3)."""

    ssn: str
    aliases: list[str]
    birth_date: dt.date
    sex: Literal["male", "female"]
    card: Card | None
    employments: list[Employment]
    current_employers: list[str]
    trainings: list[Training]
    training_hours: int
    certificates: list[Certificate]
    highest_skill_level: SkillLevel | None
    insurance: list[InsuranceScheme]
    honors: list[Honor]
    services: Services
    issues: list[FileIssue]
    applied_events: int
    version: int | None = Field(None, description=(
        "The version of the change that published this file on worker-files: the `version` of the "
        "WorkerFileChange of the same ssn on worker-file-changes, so that a file is tied to its change event "
        "(ssn, version). Null (absent in JSON) in files written with schema releases 1 and 2, in the output of "
        "the offline fold (`workerfile fold`) and in the answers of the HTTP API, which derive the file from the "
        "events rather than publish it."))


class WorkerFileRow(Frozen):
    """Published on `worker-file-rows` next to every file on `worker-files` (same key, same
    tombstones; issue #12): one flat row per worker for relational sinks such as Kafka
    Connect's JDBC sink (deploy/connect/). The figures a BI tool groups and sums are scalar
    columns; the whole file is `file_json`. Only strings, numbers and dates (no enums, no
    nested records), so that the schema is one self-contained record that a schema
    registry holds without references, and every column maps to a plain SQL type.
    Derived from the published file by `processors.rows.file_row`."""

    ssn: str
    version: int = Field(description="the version of the file (WorkerFile.version, its change event's)")
    birth_date: dt.date
    sex: str = Field(description="male or female")
    region: str | None = Field(None, description=(
        "the region of the worker's card, else of the latest open employment (the rule of the region column of "
        "`workerfile sink`), else null"))
    province: str | None = Field(None, description="the province of `region`: its first two digits and 0000")
    highest_skill_level: str | None = Field(None, description="WorkerFile.highest_skill_level (a SkillLevel symbol)")
    current_employer: str | None = Field(None, description="the first of WorkerFile.current_employers (sorted), or null")
    current_employers: int = Field(description="how many open employments with distinct employers")
    employments: int = Field(description="employments ever, open or ended")
    training_hours: int
    trainings_completed: int
    certificates: int = Field(description="certificates not revoked")
    insurance_active_schemes: int = Field(description="insurance schemes whose status is active")
    pension_months: int = Field(description="months contributed to the pension scheme")
    subsidy_grants: int = Field(description="skill-upgrade subsidy grants, any status")
    subsidy_paid_cny: int = Field(description="CNY paid on the grants (the winning organisation's payments)")
    open_notices: int
    issues: int
    applied_events: int
    file_json: str = Field(description="the whole WorkerFile as published on worker-files, as JSON text (dates "
                                       "YYYY-MM-DD)")


FileSection = Literal[
    "aliases", "card", "employments", "current_employers", "trainings", "training_hours",
    "certificates", "highest_skill_level", "insurance", "honors", "services", "issues", "applied_events",
]
FILE_SECTIONS: tuple[str, ...] = get_args(FileSection)
"""The sections of a file whose change a WorkerFileChange reports (every field of the file
but ssn, birth_date, sex, which never change, and version)."""

ChangedSection = Literal[FileSection, Literal["erased", "merged"]]
"""What `changed_sections` may hold: a section, or `erased` / `merged` alone when an
operator removed the file or merged it into another (its tombstone follows)."""


class WorkerFileChange(Frozen):
    """Published on `worker-file-changes` each time a file changes."""

    ssn: str
    version: int
    changed_sections: list[ChangedSection] = Field(description=(
        "The sections of the file that changed, in the file's order (every section for a new file), or `erased` "
        "or `merged` alone when an operator erased the file or merged it into another (then a tombstone follows "
        "on worker-files). The values are listed in `x-symbols` of the items: an Avro string, not an enum, because "
        "releases 1 and 2 wrote strings and Avro resolves no string to an enum."))
    event_ids: list[str]


class ServiceEvent(Frozen):
    """Published on `worker-services` when a grant first appears and each time its status
    changes (contract section 9), and when a notice appears or is resolved. Each change
    once: a consumer may key on (service_id, status)."""

    service_id: str  # stable: the same grant (notice) always has the same id
    ssn: str
    service: Literal["skill_upgrade_subsidy", "notice"]  # (an inline Literal: its enum keeps its released name)
    grant: SubsidyGrant | None = None  # service skill_upgrade_subsidy
    notice: Notice | None = None  # service notice
    status: str | None = None  # the grant's status, or open/resolved for a notice (null: written before section 9)
    status_before: str | None = None  # null when the grant or notice first appears
    version: int | None = None  # the file's version of this change


class RejectedEvent(Frozen):
    """Published on `rejected-events`, or written as a line of the rejects file, for every
    rejected input: the reason, a message, the original input and where it came from
    (topic/partition/offset on Kafka, file/line offline)."""

    reason: str
    message: str
    field: str | None = None
    event_id: str | None = None
    input: str  # the original line or bytes; bytes that are not UTF-8 are base64 (input_encoding)
    input_encoding: Literal["utf-8", "base64"] = "utf-8"
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    file: str | None = None
    line: int | None = None
    # On Kafka, an input too large to publish whole (above streams.handler.INPUT_LIMIT bytes)
    # keeps only a prefix of its bytes in `input`: then `input_truncated` is true and the
    # whole value's size and SHA-256 (hex) identify it. Offline, the whole line is kept.
    input_size: int | None = None  # bytes of the whole original value (set when truncated)
    input_sha256: str | None = None  # hex SHA-256 of the whole original value (set when truncated)
    input_truncated: bool = False


class AccessLogEntry(Frozen):
    """Published on `worker-access-log` for every read of a worker's file through the API
    and every operator action on it (issue #6): who, when, which view, why. The worker
    reads their own log with `GET /workers/{ssn}/access-log`."""

    ssn: str
    at: dt.datetime
    caller: str  # the caller's name in the callers file, or the operator's name
    audience: str  # the view it saw (views.toml), or "operator"
    org: str | None = None
    action: Literal["read_file", "read_events", "read_access_log", "merge", "erase"]
    purpose: str | None = None  # why, when the caller said (X-Purpose header / --reason)
    detail: str | None = None  # e.g. the other number of a merge


class OperatorCommand(Frozen):
    """Internal, on `workerfile-operator-commands` (keyed by `ssn`): an operator's merge or
    erasure of a file (`workerfile admin`), taken by the stream processors in order with
    the worker's events. `merge_in` is what the processors send on to the file that
    receives a merge, with the merged file's state."""

    command_id: str
    action: Literal["erase", "merge", "merge_in"]
    ssn: str  # the file acted on
    other_ssn: str | None = None  # merge: the number merged into; merge_in: the number merged from
    operator: str
    reason: str
    at: dt.datetime
    state: bytes | None = None  # merge_in: the state of the file merged in
