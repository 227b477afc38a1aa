"""The event catalogue of the contract (section 2) as frozen pydantic models.

One envelope class per event type (`TrainingEnrolled`, `EmploymentStarted`, ...), each
with its own payload model; `Event` is the discriminated union over `type`.
These models are the source of truth: the Avro schemas in `schemas/avro/` are generated
from them (`schemas.avro`), and a test fails when the committed .avsc files drift.

Identity values are normalised while validating: `ssn` comes out as the 18-character
number and a legacy 15-digit input is kept in `ssn_legacy`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from processors.identity import IdentityError, normalise_ssn, validate_occupation_code, validate_org_code

CST = dt.timezone(dt.timedelta(hours=8), "CST")

# --- field types ----------------------------------------------------------------------

_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # fullmatch, ASCII digits only
_MONTH_RE = re.compile(r"([0-9]{4})-([0-9]{2})")

# Every date, month and instant of an event lies in the years 1880-9998 (as written, in its
# own offset): earlier is before any birth date a number may carry, and the margin of a
# year before 9999-12-31 keeps every conversion (to UTC, to China time) and every date the
# file derives (apply_by = issued_on + 12 months) inside what Python's dates can hold.
# Outside: `invalid_date`. The fast path of processors.intake checks the same years with
# YEAR_PATTERN.
EARLIEST_YEAR, LATEST_YEAR = 1880, 9998
YEAR_PATTERN = r"(?:18[89][0-9]|19[0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"  # 1880-9998
_RANGE = f"must lie in the years {EARLIEST_YEAR}-{LATEST_YEAR}"


def _in_range(year: int) -> None:
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        raise PydanticCustomError("invalid_date", _RANGE)


def _identity(check):
    def run(value: str) -> str:
        try:
            return check(value)
        except IdentityError as err:
            raise PydanticCustomError(err.reason, err.message) from None

    return run


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        _in_range(value.year)
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("schema", "must be a date string YYYY-MM-DD")
    if not _DATE_RE.fullmatch(value):
        raise PydanticCustomError("invalid_date", "must be a date YYYY-MM-DD")
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("invalid_date", "is not a calendar date") from None
    _in_range(day.year)
    return day


def _month(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("schema", "must be a month string YYYY-MM")
    m = _MONTH_RE.fullmatch(value)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise PydanticCustomError("invalid_date", "must be a month YYYY-MM")
    _in_range(int(m.group(1)))
    return value


def _timestamp(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        _in_range(value.year)
        return value if value.tzinfo else value.replace(tzinfo=CST)
    if not isinstance(value, str):
        raise PydanticCustomError("schema", "must be an RFC 3339 timestamp string")
    if len(value) < 19 or value[10] not in "Tt ":
        raise PydanticCustomError("invalid_date", "must be an RFC 3339 timestamp (date and time)")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("invalid_date", "is not a valid RFC 3339 timestamp") from None
    offset = parsed.utcoffset()
    if offset is not None and (offset.seconds % 60 or offset.microseconds):
        # Python reads +08:00:30; RFC 3339 has hours and minutes only (and Avro keeps minutes)
        raise PydanticCustomError("invalid_date", "the UTC offset must be hours and minutes (RFC 3339)")
    _in_range(parsed.year)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=CST)


OrgCode = Annotated[str, AfterValidator(_identity(validate_org_code))]
OccupationCode = Annotated[str, AfterValidator(_identity(validate_occupation_code))]
Region = Annotated[str, Field(pattern=r"^[0-9]{6}$")]
Month = Annotated[str, BeforeValidator(_month)]
Date = Annotated[dt.date, BeforeValidator(_date)]
Timestamp = Annotated[dt.datetime, BeforeValidator(_timestamp)]
Text = Annotated[str, Field(min_length=1, max_length=500)]
Identifier = Annotated[str, Field(min_length=1, max_length=128)]
Hours = Annotated[int, Field(ge=0, le=100_000)]
Yuan = Annotated[int, Field(ge=0, le=10**12)]  # integer CNY

ContractType = Literal["open_ended", "fixed_term", "task_based", "part_time", "dispatched", "platform"]
EndReason = Literal["resigned", "dismissed", "contract_expired", "retired", "other"]
Scheme = Literal["pension", "medical", "unemployment", "work_injury", "maternity", "occupational_injury"]
CertificateKind = Literal["vocational_qualification", "skill_level", "special_competency"]
SkillLevel = Literal[
    "apprentice", "junior", "intermediate", "senior",
    "technician", "senior_technician", "principal_technician", "chief_technician",
]
SKILL_LADDER: tuple[str, ...] = SkillLevel.__args__  # lowest first
HonorTitle = Literal["national_craftsman", "provincial_craftsman", "city_craftsman", "model_worker", "competition_award"]


def _legacy_number(legacy: str) -> str | None:
    try:
        return normalise_ssn(legacy).number if len(legacy) == 15 else None
    except IdentityError:
        return None


class Strict(BaseModel):
    """Base of every contract model: frozen, no extra fields, no type coercion."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


# --- payloads -------------------------------------------------------------------------

class TrainingEnrolledPayload(Strict):
    program_id: Identifier
    program_name: Text
    start_date: Date
    planned_hours: Hours
    occupation_code: OccupationCode | None = None


class TrainingCompletedPayload(Strict):
    program_id: Identifier
    end_date: Date
    hours: Hours
    passed: bool


class TrainingWithdrawnPayload(Strict):
    program_id: Identifier
    date: Date
    reason: Text | None = None


class EmploymentStartedPayload(Strict):
    employer: OrgCode
    occupation_code: OccupationCode
    contract_type: ContractType
    written_contract: bool
    start_date: Date
    region: Region
    monthly_wage_cny: Yuan | None = None
    dispatch_agency: OrgCode | None = None

    @model_validator(mode="after")
    def _dispatched_needs_agency(self):
        if self.contract_type == "dispatched" and self.dispatch_agency is None:
            raise PydanticCustomError("dispatch_agency_required", "contract_type dispatched requires dispatch_agency")
        return self


class EmploymentEndedPayload(Strict):
    employer: OrgCode
    end_date: Date
    reason: EndReason


class InsuranceEnrolledPayload(Strict):
    scheme: Scheme
    month: Month
    region: Region
    employer: OrgCode | None = None


class InsuranceContributionPayload(Strict):
    scheme: Scheme
    month: Month
    region: Region
    base_cny: Yuan
    employer_amount_cny: Yuan
    personal_amount_cny: Yuan
    employer: OrgCode | None = None


class InsuranceSuspendedPayload(Strict):
    scheme: Scheme
    month: Month
    reason: Text | None = None


class InsuranceTransferredPayload(Strict):
    scheme: Scheme
    month: Month
    from_region: Region
    to_region: Region


class CardIssuedPayload(Strict):
    card_no: Identifier
    issued_on: Date
    region: Region


class CertificateIssuedPayload(Strict):
    certificate_no: Identifier
    kind: CertificateKind
    occupation_code: OccupationCode
    level: SkillLevel | None
    issued_on: Date
    valid_until: Date | None = None

    @model_validator(mode="after")
    def _level_matches_kind(self):
        if self.kind == "special_competency" and self.level is not None:
            raise PydanticCustomError("level_not_allowed", "special_competency certificates have no level")
        if self.kind != "special_competency" and self.level is None:
            raise PydanticCustomError("level_required", f"{self.kind} certificates need a level")
        return self


class CertificateRevokedPayload(Strict):
    certificate_no: Identifier
    revoked_on: Date
    reason: Text | None = None


class HonorAwardedPayload(Strict):
    title: HonorTitle
    awarded_on: Date


class EventRetractedPayload(Strict):
    event_id: Identifier


# Contract section 9: a service (the skill-upgrade subsidy) handled from claim to payment.
ServiceId = Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
Decision = Literal["approved", "refused"]
Amount = Annotated[int, Field(ge=1, le=10**12)]  # integer CNY, a payment of at least 1


class ServiceClaimedPayload(Strict):
    service_id: ServiceId
    claimed_on: Date
    region: Region


class ServiceDecidedPayload(Strict):
    service_id: ServiceId
    decision: Decision
    decided_on: Date
    reason: Text | None = None


class ServicePaidPayload(Strict):
    service_id: ServiceId
    paid_on: Date
    amount_cny: Amount


# --- envelopes ------------------------------------------------------------------------

class Envelope(Strict):
    """Fields every event has. `ssn_legacy` is added by normalisation, never required."""

    event_id: Identifier
    type: str
    ssn: Annotated[str, Field(min_length=18, max_length=18)]
    occurred_at: Timestamp
    source: OrgCode
    corrects: Identifier | None = None
    payload: Any
    ssn_legacy: Annotated[str, Field(pattern=r"^[0-9]{15}$")] | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise_ssn(cls, data: Any) -> Any:
        """Normalise `ssn` (contract section 1) and keep a legacy 15-digit form; check
        that an event does not correct itself. (One Python hook per event: hot path.)"""
        if not isinstance(data, dict):
            return data
        corrects = data.get("corrects")
        if corrects is not None and corrects == data.get("event_id"):
            raise PydanticCustomError("self_correction", "corrects must name another event, not itself")
        raw = data.get("ssn")
        if not isinstance(raw, str):
            return data
        try:
            ssn = normalise_ssn(raw)
        except IdentityError as err:
            raise PydanticCustomError(err.reason, err.message) from None
        given_legacy = data.get("ssn_legacy")
        if given_legacy is not None:
            if not isinstance(given_legacy, str) or _legacy_number(given_legacy) != ssn.number:
                raise PydanticCustomError("legacy_mismatch", "ssn_legacy does not upgrade to ssn")
        elif ssn.legacy:
            return {**data, "ssn": ssn.number, "ssn_legacy": ssn.legacy}
        if ssn.number != raw:
            return {**data, "ssn": ssn.number}
        return data


class TrainingEnrolled(Envelope):
    type: Literal["training.enrolled"]
    payload: TrainingEnrolledPayload


class TrainingCompleted(Envelope):
    type: Literal["training.completed"]
    payload: TrainingCompletedPayload


class TrainingWithdrawn(Envelope):
    type: Literal["training.withdrawn"]
    payload: TrainingWithdrawnPayload


class EmploymentStarted(Envelope):
    type: Literal["employment.started"]
    payload: EmploymentStartedPayload


class EmploymentEnded(Envelope):
    type: Literal["employment.ended"]
    payload: EmploymentEndedPayload


class InsuranceEnrolled(Envelope):
    type: Literal["insurance.enrolled"]
    payload: InsuranceEnrolledPayload


class InsuranceContribution(Envelope):
    type: Literal["insurance.contribution"]
    payload: InsuranceContributionPayload


class InsuranceSuspended(Envelope):
    type: Literal["insurance.suspended"]
    payload: InsuranceSuspendedPayload


class InsuranceTransferred(Envelope):
    type: Literal["insurance.transferred"]
    payload: InsuranceTransferredPayload


class CardIssued(Envelope):
    type: Literal["card.issued"]
    payload: CardIssuedPayload


class CertificateIssued(Envelope):
    type: Literal["certificate.issued"]
    payload: CertificateIssuedPayload


class CertificateRevoked(Envelope):
    type: Literal["certificate.revoked"]
    payload: CertificateRevokedPayload


class HonorAwarded(Envelope):
    type: Literal["honor.awarded"]
    payload: HonorAwardedPayload


class EventRetracted(Envelope):
    type: Literal["event.retracted"]
    payload: EventRetractedPayload

    @model_validator(mode="after")
    def _not_a_correction(self):
        if self.corrects is not None:
            raise PydanticCustomError("retraction_corrects", "a retraction cannot correct another event; send a new retraction")
        return self


class ServiceClaimed(Envelope):
    type: Literal["service.claimed"]
    payload: ServiceClaimedPayload


class ServiceDecided(Envelope):
    type: Literal["service.decided"]
    payload: ServiceDecidedPayload


class ServicePaid(Envelope):
    type: Literal["service.paid"]
    payload: ServicePaidPayload


EVENT_CLASSES: tuple[type[Envelope], ...] = (
    TrainingEnrolled, TrainingCompleted, TrainingWithdrawn,
    EmploymentStarted, EmploymentEnded,
    InsuranceEnrolled, InsuranceContribution, InsuranceSuspended, InsuranceTransferred, CardIssued,
    CertificateIssued, CertificateRevoked, HonorAwarded,
    EventRetracted, ServiceClaimed, ServiceDecided, ServicePaid,
)
EVENT_TYPES: dict[str, type[Envelope]] = {c.model_fields["type"].annotation.__args__[0]: c for c in EVENT_CLASSES}

# The topic each type is published on; event.retracted may go on any of the four.
TOPIC_OF_TYPE: dict[str, str] = {
    **{t: "training-events" for t in ("training.enrolled", "training.completed", "training.withdrawn")},
    **{t: "employment-events" for t in ("employment.started", "employment.ended")},
    **{t: "insurance-events" for t in (
        "insurance.enrolled", "insurance.contribution", "insurance.suspended", "insurance.transferred", "card.issued",
        "service.claimed", "service.decided", "service.paid")},
    **{t: "certification-events" for t in ("certificate.issued", "certificate.revoked", "honor.awarded")},
}
EVENT_TOPICS: tuple[str, ...] = ("training-events", "employment-events", "insurance-events", "certification-events")

Event = Annotated[Union[EVENT_CLASSES], Field(discriminator="type")]  # type: ignore[valid-type]


def event_to_json_dict(event: Envelope) -> dict:
    """The canonical JSON form of an event (`ssn_legacy` only when there is one)."""
    data = event.model_dump(mode="json")
    if data["ssn_legacy"] is None:
        del data["ssn_legacy"]
    return data
