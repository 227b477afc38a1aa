"""Emitting batch files of events to Kafka (`workerfile emit`): the file is read and
turned into validated events by processors/uploads.py (`read_rows` → `rows_to_events`), the
whole file before anything is sent; if a row is invalid nothing is sent unless
`partial=True` (`emit_file`). Then every event is sent with the validating producer
(streams/producer.py), after a check that the login may write every topic involved, and
every delivery is confirmed.

Error messages and summaries never show a whole social-security number.
"""

from __future__ import annotations

import datetime as dt
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from processors.uploads import EmitInputError, RowError, RowEvent, Table, parse_rows, rows_to_events, scrub
from schemas.events import EVENT_TYPES, Envelope, event_to_json_dict
from streams.kafka_security import KafkaSecurity


def read_rows(path: str | Path, encoding: str = "auto", format: str = "auto") -> Table:
    """Read a CSV or JSONL file into rows (processors.uploads.parse_rows). Raises
    EmitInputError, also when the file cannot be read."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise EmitInputError(f"cannot read {path}: {err.strerror or err}") from None
    return parse_rows(data, str(path), encoding, format)


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
