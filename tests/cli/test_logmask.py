"""Log records never carry a whole social-security number (workerfile/logmask.py)."""

from __future__ import annotations

import io
import logging

import pytest

from workerfile import logmask

SSN = "11010519491231002X"
LEGACY = "130503670401001"


@pytest.fixture
def captured():
    previous = logging.getLogRecordFactory()
    logmask.install()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test.logmask")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.removeHandler(handler)
    logging.setLogRecordFactory(previous)


def test_numbers_in_messages_arguments_and_traces_are_masked(captured):
    logger, stream = captured
    logger.info("key %r value %s", SSN.encode(), {"ssn": LEGACY})
    logger.warning(f"plain {SSN.lower()}")
    try:
        {}[SSN]
    except KeyError:
        logger.exception("lookup failed")
    text = stream.getvalue()
    assert SSN not in text and SSN.lower() not in text and LEGACY not in text
    assert "110105********002X" in text and "130503******001" in text
    assert "KeyError" in text and "lookup failed" in text


def test_a_number_inside_raw_bytes_is_masked_too():
    raw = repr(b"\xc3\x01$" + SSN.encode() + b"22" + b"\x00")  # a length byte before, digits after
    assert SSN not in logmask.mask_text(raw) and "110105********002X22" in logmask.mask_text(raw)
    assert logmask.mask_text("9" + SSN[:17] + "0") == "9" + SSN[:17] + "0"  # no valid number inside: as it was


def test_other_numbers_stay_readable():
    assert logmask.mask_text("offset 1234567890123 partition 3 id 12345678901234567890") == \
        "offset 1234567890123 partition 3 id 12345678901234567890"
    assert logmask.mask_text(f"id a{SSN}") == "id a110105********002X"  # a valid number inside a token: masked
