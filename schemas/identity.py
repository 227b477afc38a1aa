"""Identity rules of the contract (section 1): social-security numbers, organisation
codes and occupation codes.

Pure functions, no I/O. Every failure raises `IdentityError` with a message that
never contains a full social-security number (see `mask_ssn`).
"""

from __future__ import annotations

import datetime as dt
import re
import time
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

SSN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
SSN_CHECK_CHARS = "10X98765432"  # index = weighted sum mod 11
EARLIEST_BIRTH = dt.date(1880, 1, 1)

ORG_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
ORG_VALUE = {c: i for i, c in enumerate(ORG_ALPHABET)}
ORG_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

OCCUPATION_RE = re.compile(r"[1-8]-[0-9]{2}-[0-9]{2}-[0-9]{2}(-[0-9]{2})?")  # used with fullmatch
_DIGITS = re.compile(r"[0-9]+")  # ASCII only (str.isdigit and \d accept other scripts); fullmatch


class IdentityError(ValueError):
    """An identity value failed a contract rule. `reason` is the reject reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Ssn:
    """A normalised social-security number, with the legacy 15-digit form if given."""

    number: str
    legacy: str | None
    birth_date: dt.date
    sex: str  # "male" / "female"


def mask_ssn(value: object) -> str:
    """Mask a social-security number for logs and errors: `110105********002X`.

    Anything that is not an 18- or 15-character string is reduced to its length,
    so that even a garbled number never leaks whole.
    """
    text = str(value).strip() if value is not None else ""
    if len(text) == 18:
        return text[:6] + "*" * 8 + text[14:]
    if len(text) == 15:
        return text[:6] + "*" * 6 + text[12:]
    if len(text) <= 4:
        return "*" * len(text)
    return text[:2] + "*" * (len(text) - 4) + text[-2:]


def ssn_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, SSN_WEIGHTS))
    return SSN_CHECK_CHARS[total % 11]


def normalise_ssn(raw: object, today: dt.date | None = None) -> Ssn:
    """Normalise and validate a social-security number (contract section 1).

    NFKC, strip, upper-case trailing x; a 15-digit legacy number is upgraded to 18
    digits (the legacy form is kept in `.legacy`); check character and birth date
    are verified. Raises IdentityError(reason="invalid_ssn").
    """
    if not isinstance(raw, str):
        raise IdentityError("invalid_ssn", f"ssn must be a string, got {type(raw).__name__}")
    if today is None:
        return _normalise_ssn_cached(raw, _today())
    return _normalise_ssn_cached(raw, today)


_CST = dt.timezone(dt.timedelta(hours=8))
_today_cache: list = [None, 0.0]  # [date, monotonic time after which to look again]


def _today() -> dt.date:
    """Today in China Standard Time, looked up at most once a second (hot path)."""
    now = time.monotonic()
    if now >= _today_cache[1]:
        _today_cache[0] = dt.datetime.now(_CST).date()
        _today_cache[1] = now + 1.0
    return _today_cache[0]


@lru_cache(maxsize=65536)
def _normalise_ssn_cached(raw: str, today: dt.date) -> Ssn:
    text = unicodedata.normalize("NFKC", raw).strip()
    if text.endswith("x"):
        text = text[:-1] + "X"
    legacy = None
    if len(text) == 15:
        if not _DIGITS.fullmatch(text):
            raise IdentityError("invalid_ssn", f"{mask_ssn(text)}: a 15-character number must be all digits")
        legacy = text
        first17 = text[:6] + "19" + text[6:]
        text = first17 + ssn_check_char(first17)
    elif len(text) != 18:
        raise IdentityError("invalid_ssn", f"{mask_ssn(text)}: must have 18 characters (or 15 legacy digits), has {len(text)}")
    else:
        if not _DIGITS.fullmatch(text[:17]) or text[17] not in "0123456789X":
            raise IdentityError("invalid_ssn", f"{mask_ssn(text)}: 17 digits and a digit or X expected")
        expected = ssn_check_char(text[:17])
        if text[17] != expected:
            raise IdentityError("invalid_ssn", f"{mask_ssn(text)}: check character does not match (ISO 7064 MOD 11-2)")
    try:
        birth = dt.date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise IdentityError("invalid_ssn", f"{mask_ssn(text)}: characters 7-14 are not a calendar date") from None
    if birth < EARLIEST_BIRTH:
        raise IdentityError("invalid_ssn", f"{mask_ssn(text)}: birth date before 1880")
    if birth > today:
        raise IdentityError("invalid_ssn", f"{mask_ssn(text)}: birth date in the future")
    sex = "male" if int(text[16]) % 2 else "female"
    return Ssn(text, legacy, birth, sex)


def make_ssn(first17: str) -> str:
    """The full 18-character number for 17 given digits (used by generators and tests)."""
    return first17 + ssn_check_char(first17)


def org_check_char(first17: str) -> str:
    """GB 32100-2015 check character of the first 17 characters of a credit code."""
    total = sum(ORG_VALUE[c] * w for c, w in zip(first17, ORG_WEIGHTS))
    return ORG_ALPHABET[(31 - total % 31) % 31]


@lru_cache(maxsize=16384)
def validate_org_code(code: str) -> str:
    """Validate an 18-character unified social credit code; returns it unchanged.

    Raises IdentityError(reason="invalid_org_code").
    """
    if len(code) != 18:
        raise IdentityError("invalid_org_code", f"must have 18 characters, has {len(code)}")
    bad = [c for c in code if c not in ORG_VALUE]
    if bad:
        raise IdentityError("invalid_org_code", f"character {bad[0]!r} is not in the GB 32100 alphabet")
    if org_check_char(code[:17]) != code[17]:
        raise IdentityError("invalid_org_code", "check character does not match (GB 32100-2015)")
    return code


def make_org_code(first17: str) -> str:
    """The full credit code for 17 given characters (used by generators and tests)."""
    return first17 + org_check_char(first17)


def validate_occupation_code(code: str) -> str:
    """Validate a 2022 classification occupation code `D-DD-DD-DD[-DD]`, major category 1-8."""
    if not OCCUPATION_RE.fullmatch(code):
        raise IdentityError("invalid_occupation_code", "must look like D-DD-DD-DD or D-DD-DD-DD-DD with major category 1-8")
    return code


SSN_SHAPE = re.compile(r"(?<![0-9A-Za-z])(?:\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")
DIGIT_RUN = re.compile(r"[0-9Xx]{18,}")


def _mask_run(match: re.Match) -> str:
    run = match.group(0)
    out = list(run)
    for start in range(len(run) - 17):
        window = run[start:start + 18]
        if window[:17].isdigit() and ssn_check_char(window[:17]) == window[17].upper():
            out[start + 6:start + 14] = "*" * 8
    return "".join(out)


def mask_text(text: str) -> str:
    """`text` with every SSN-shaped token masked (every log record is: workerfile.logmask)."""
    return DIGIT_RUN.sub(_mask_run, SSN_SHAPE.sub(lambda m: mask_ssn(m.group(0)), text))
