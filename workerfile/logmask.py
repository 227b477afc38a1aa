"""A last line of defence for logs: every log record of the process has anything shaped
like a social-security number masked (`110105********002X`), in its message and in its
exception trace — also those of libraries (faust, aiokafka, aiohttp) that know nothing
of SSNs. The project's own messages already mask (`schemas.identity.mask_ssn`).

Shapes masked: 18 characters (17 digits and a digit or X) and 15 digits, standing
alone; and inside a longer run of digits (a library printing raw record bytes, where a
length byte or the next field may be a digit), every 18 characters that are a valid
number (MOD 11-2 check character). An organisation code or other number of that shape
is masked too: harmless.
"""

from __future__ import annotations

import logging

from schemas.identity import mask_text

class MaskedLogRecord(logging.LogRecord):
    """A log record whose message and exception text never carry a whole number."""

    def getMessage(self) -> str:
        message = mask_text(super().getMessage())
        if self.exc_info and not self.exc_text:
            self.exc_text = mask_text(logging.Formatter().formatException(self.exc_info))
        if self.stack_info:
            self.stack_info = mask_text(self.stack_info)
        return message


def install() -> None:
    """Make every log record of this process a MaskedLogRecord (idempotent)."""
    if logging.getLogRecordFactory() is not MaskedLogRecord:
        logging.setLogRecordFactory(MaskedLogRecord)
