"""Folding a whole sequence of raw inputs (the offline `workerfile fold`): every input is
accepted, a duplicate, or rejected with its reason, and the counts always add up.

Pure: the caller reads the file and writes the outputs. Uses the same fold (`fold_record`,
which `fold_event` calls) and `derive_file` as the stream agents, and their `validate_event`
for every line that the JSON fast path (`processors.intake.fast_json_line`, which gives
the same records) does not accept in full.
"""

from __future__ import annotations

import base64
import datetime as dt
import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable

import orjson

from processors.services import DEFAULT_RULES, SubsidyRules
from processors.derive import derive_file
from processors.fold import WorkerState, fold_event, fold_record, make_record, new_state, tally
from processors.intake import Rejection, fast_json_line, fast_json_lines, now_us, parse_json_line
from processors.organisations import Organisations


_CHUNK = 256  # lines that `take_lines` takes together


@dataclass
class Counts:
    """accepted + duplicates + rejected == read, always."""

    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0

    def summary(self, files: int) -> str:
        return (f"read {self.read}, accepted {self.accepted}, duplicates {self.duplicates}, "
                f"rejected {self.rejected}, files {files}")


@dataclass
class BatchFold:
    """Folds inputs one by one into per-worker states, keeping every rejection.
    `organisations`: the registry whose roles the sources must have (None: not checked)."""

    now: dt.datetime | None = None
    states: dict[str, WorkerState] = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)
    rejects: list[dict] = field(default_factory=list)
    organisations: Organisations | None = None
    rules: SubsidyRules = DEFAULT_RULES  # the subsidy's parameters (deploy/services.toml)

    def take_line(self, line: str | bytes, line_no: int, file: str | None = None) -> str:
        """Fold one JSON line; returns its status (accepted / duplicate / rejected).
        (`fold_lines` does the same for many lines, in a loop of its own.)"""
        fast = fast_json_line(line, now_us(self.now), self.organisations)
        if fast is None:
            return self._take_slow(line, line_no, file)
        self.counts.read += 1
        event_id, kind, ssn, occurred, source, corrects, payload = fast
        state = self.states.get(ssn)
        if state is None:
            state = self.states[ssn] = new_state(ssn, check_sources=self.organisations is not None)
        outcome = fold_record(state, event_id, None, make_record(kind, ssn, occurred, source, corrects, payload))
        rejection = tally(self.counts, outcome)
        if rejection is not None:
            return self._reject(rejection, line, line_no, file, event_id)
        return outcome.status

    def take_lines(self, lines: Iterable[str | bytes], file: str | None = None) -> None:
        """`take_line` of every line that is not blank (numbered from 1, blank lines
        included). The hot loop of `workerfile fold`: the lines are taken a few hundred at
        a time, each step over all of them before the next (validate, check, reduce to
        records, fold in their order), which keeps each step's code and data in the
        processor's caches."""
        numbers: list[int] = []
        chunk: list[str | bytes] = []
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            numbers.append(line_no)
            chunk.append(line)
            if len(chunk) == _CHUNK:
                self._take_chunk(numbers, chunk, file)
                numbers, chunk = [], []
        if chunk:
            self._take_chunk(numbers, chunk, file)

    def _take_chunk(self, numbers: list[int], lines: list[str | bytes], file: str | None) -> None:
        checked = fast_json_lines(lines, now_us(self.now), self.organisations)
        records = [None if fast is None else make_record(*fast[1:]) for fast in checked]
        states, counts = self.states, self.counts
        for line_no, line, fast, record in zip(numbers, lines, checked, records):
            if fast is None:
                self._take_slow(line, line_no, file)
                continue
            counts.read += 1
            event_id, ssn = fast[0], fast[2]
            state = states.get(ssn)
            if state is None:
                state = states[ssn] = new_state(ssn, check_sources=self.organisations is not None)
            rejection = tally(counts, fold_record(state, event_id, None, record))
            if rejection is not None:
                self._reject(rejection, line, line_no, file, event_id)

    def _take_slow(self, line: str | bytes, line_no: int, file: str | None) -> str:
        """`take_line` the reference way: every line the fast path does not accept."""
        self.counts.read += 1
        event = parse_json_line(line, self.now, self.organisations)
        if isinstance(event, Rejection):
            return self._reject(event, line, line_no, file, None)
        state = self.states.get(event.ssn)
        if state is None:
            state = self.states[event.ssn] = new_state(event.ssn, check_sources=self.organisations is not None)
        outcome = fold_event(state, event)
        rejection = tally(self.counts, outcome)
        if rejection is not None:
            return self._reject(rejection, line, line_no, file, event.event_id)
        return outcome.status

    def _reject(self, rejection: Rejection, line, line_no: int, file: str | None, event_id: str | None) -> str:
        self.counts.rejected += 1
        text, encoding = _original_text(line)
        if event_id is None and encoding == "utf-8":
            event_id = _event_id_of(text)
        self.rejects.append({
            "reason": rejection.reason, "message": rejection.message, "field": rejection.field,
            "event_id": event_id, "file": file, "line": line_no, "input": text, "input_encoding": encoding,
        })
        return "rejected"

    def files(self) -> list[dict]:
        """Every worker's file, sorted by ssn."""
        with _no_gc():
            return [derive_file(self.states[ssn], self.rules) for ssn in sorted(self.states)]


def _original_text(line: str | bytes) -> tuple[str, str]:
    """The original line without its line break, and how it is encoded in the reject:
    as text, or base64 when the bytes are not UTF-8 (schemas.outputs.RejectedEvent)."""
    if isinstance(line, bytes):
        raw = line.rstrip(b"\r\n")
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii"), "base64"
    return line.rstrip("\r\n"), "utf-8"


def _event_id_of(text: str) -> str | None:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    value = data.get("event_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def fold_lines(lines: Iterable[str | bytes], file: str | None = None, now: dt.datetime | None = None,
               organisations: Organisations | None = None, rules: SubsidyRules = DEFAULT_RULES) -> BatchFold:
    """Fold an iterable of JSON lines; blank lines are skipped (not counted as read).
    With `organisations`, an event whose source may not say it is `unauthorized_source`;
    `rules`: the subsidy's parameters."""
    batch = BatchFold(now=now, organisations=organisations, rules=rules)
    with _no_gc():
        batch.take_lines(lines, file)
    return batch


@contextmanager
def _no_gc():
    """The cyclic garbage collector paused: folding only adds to the states (records are
    tuples of strings and numbers, no cycles), and every collection would walk them all
    again. Reference counting still frees what is dropped. Afterwards what was made is
    put straight into the oldest generation (freeze, unfreeze), rather than walked by
    the next young collections, and the collector is restored as it was, also on error."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if not gc.get_freeze_count():  # leave alone what someone else froze
                gc.freeze()
                gc.unfreeze()
            gc.enable()
