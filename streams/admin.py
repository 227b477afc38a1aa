"""Operator commands (issue #6, item 6): merge the files of one person registered under
two numbers, or erase a file. `workerfile admin` sends the command on
`workerfile-operator-commands`, keyed by the number acted on; the stream processors
carry it out in order with that worker's events (`streams.handler.apply_command`):
tombstones on every record topic (worker-files and each view; the sinks delete the
rows), the alias history kept on a merge, and a line in the worker's access log."""

from __future__ import annotations

import datetime as dt
import uuid

from schemas.identity import normalise_ssn
from streams import codec
from streams.kafka_security import KafkaSecurity
from streams.producer import EventProducer
from streams.topics import OPERATOR_COMMANDS

CST = dt.timezone(dt.timedelta(hours=8))


class AdminError(ValueError):
    """A command that cannot be sent as given."""


def make_command(action: str, ssn: str, into: str | None, operator: str | None, reason: str | None) -> dict:
    """The OperatorCommand record; numbers normalised (raises IdentityError, masked)."""
    if action not in ("merge", "erase"):
        raise AdminError(f"action: merge or erase, not {action!r}")
    if not operator or not operator.strip():
        raise AdminError("operator: say who does it (--operator NAME)")
    if not reason or not reason.strip():
        raise AdminError("reason: say why (--reason TEXT)")
    number = normalise_ssn(ssn).number
    other = None
    if action == "merge":
        if not into:
            raise AdminError("into: the number that keeps the file is missing")
        other = normalise_ssn(into).number
        if other == number:
            raise AdminError("into: a file cannot be merged into itself")
    return {"command_id": str(uuid.uuid4()), "action": action, "ssn": number, "other_ssn": other,
            "operator": operator.strip(), "reason": reason.strip(),
            "at": dt.datetime.now(CST).isoformat(timespec="seconds"), "state": None}


def send_command(bootstrap: str, action: str, ssn: str, into: str | None = None, *, operator: str | None,
                 reason: str | None, security: KafkaSecurity | None = None, timeout: float = 30) -> dict:
    """Send one command and wait until the broker has it (acks=all); returns it."""
    command = make_command(action, ssn, into, operator, reason)
    producer = EventProducer(bootstrap, security=security)
    try:
        producer.send_raw(OPERATOR_COMMANDS, command["ssn"].encode(), codec.encode("OperatorCommand", command))
        producer.flush(timeout)
    finally:
        producer.close()
    return command
