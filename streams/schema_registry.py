"""The schema registry of the Confluent wire format: a small client of the
Confluent-compatible REST API (Apicurio Registry's `/apis/ccompat/v7`, or a Confluent
Schema Registry), the subjects of the topics, and their registration.

Subjects follow the TopicNameStrategy: the value schema of topic T is subject `T-value`.
Each subject holds the topic's value schema fully expanded (self-contained: every named
type it uses is defined inline, as in `schemas.avro.load_schemas`), not with schema
references: every Confluent-compatible deserializer and Apicurio's ccompat layer read a
self-contained schema, while references need support on both sides (README, "Wire
formats"). Registration sets the subject's compatibility to BACKWARD first, so the
registry refuses (HTTP 409) a new schema whose readers could not read the data written
with the subject's latest one.

Standard library only (urllib): one lookup per subject at start, one fetch per unknown
schema id when reading, each cached by the codec.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from schemas.avro import SCHEMA_DIR, load_schemas
from streams.topics import OPERATOR_COMMANDS, REKEYED_EVENTS

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
COMPATIBILITY = "BACKWARD"


def _value_schemas() -> dict[str, str]:
    from streams.asyncapi import TOPICS

    topics = {topic: schema for topic, (schema, _, _) in TOPICS.items()}
    topics[REKEYED_EVENTS] = "Event"
    topics[OPERATOR_COMMANDS] = "OperatorCommand"
    return topics


VALUE_SCHEMAS: dict[str, str] = _value_schemas()
"""Every topic whose values go through the codec -> the name of its value schema (the
audience views are JSON and have none)."""


def subject_of(topic: str) -> str:
    """TopicNameStrategy: the subject of a topic's values."""
    return f"{topic}-value"


def schema_text(name: str) -> str:
    """The current schema of record `name`, self-contained, as the exact text registered
    (and looked up: a registry may compare the text, not its meaning)."""
    return json.dumps(load_schemas(SCHEMA_DIR)[name], separators=(",", ":"))


class RegistryError(RuntimeError):
    """The registry refused a request or cannot be reached; the message says which and why."""

    def __init__(self, message: str, status: int | None = None, error_code: int | None = None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code


@dataclass
class RegistryClient:
    """A client of a Confluent-compatible registry at `url`, e.g.
    http://127.0.0.1:8081/apis/ccompat/v7. Connection failures are retried `attempts`
    times (a registry restarting), refusals are not."""

    url: str
    timeout: float = 10.0
    attempts: int = 3

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise RegistryError(f"not an http(s) URL of a schema registry: {self.url!r}")

    def _call(self, method: str, path: str, body: dict | None = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE})
        for attempt in range(self.attempts):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.load(response)
            except urllib.error.HTTPError as err:
                try:
                    detail = json.load(err)
                except Exception:
                    detail = {}
                code = detail.get("error_code") if isinstance(detail, dict) else None
                message = detail.get("message") if isinstance(detail, dict) else None
                raise RegistryError(f"{method} {path}: HTTP {err.code}" + (f": {message}" if message else ""),
                                    err.code, code) from None
            except (urllib.error.URLError, OSError) as err:
                if attempt + 1 == self.attempts:
                    reason = getattr(err, "reason", err)
                    raise RegistryError(f"schema registry {self.url} not reachable: {reason}") from None
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    @staticmethod
    def _subject(subject: str) -> str:
        return urllib.parse.quote(subject, safe="")

    def schema_by_id(self, schema_id: int) -> dict:
        """{"schema": text, "schemaType"?: ..., "references"?: [...]} of a schema id."""
        return self._call("GET", f"/schemas/ids/{int(schema_id)}")  # type: ignore[return-value]

    def lookup(self, subject: str, schema: str) -> dict | None:
        """{"id", "version", ...} when `schema` is registered under `subject`, else None."""
        try:
            return self._call("POST", f"/subjects/{self._subject(subject)}", {"schema": schema})  # type: ignore[return-value]
        except RegistryError as err:
            if err.status == 404:  # 40401 subject not found, 40403 schema not found
                return None
            raise

    def register(self, subject: str, schema: str) -> int:
        """Registers `schema` under `subject` (a no-op when it is there); returns its id."""
        answer = self._call("POST", f"/subjects/{self._subject(subject)}/versions", {"schema": schema})
        return int(answer["id"])  # type: ignore[index]

    def compatibility(self, subject: str) -> str | None:
        """The subject's own compatibility level, or None when it has none set."""
        try:
            answer = self._call("GET", f"/config/{self._subject(subject)}")
        except RegistryError as err:
            if err.status == 404:
                return None
            raise
        return answer.get("compatibilityLevel") or answer.get("compatibility")  # type: ignore[union-attr]

    def set_compatibility(self, subject: str, level: str) -> None:
        self._call("PUT", f"/config/{self._subject(subject)}", {"compatibility": level})

    def subjects(self) -> list[str]:
        return self._call("GET", "/subjects")  # type: ignore[return-value]


def register_value_schemas(client: RegistryClient, topics: dict[str, str] | None = None) -> list[str]:
    """Registers the current value schema of every topic under its subject with BACKWARD
    compatibility, then verifies each (registered, and BACKWARD); returns one line per
    subject. Raises RegistryError naming the subject at the first one refused (e.g. a
    schema not backward compatible with the subject's latest: HTTP 409)."""
    lines = []
    for topic, name in sorted((topics or VALUE_SCHEMAS).items()):
        subject, text = subject_of(topic), schema_text(name)
        try:
            if client.compatibility(subject) != COMPATIBILITY:
                client.set_compatibility(subject, COMPATIBILITY)
            known = client.lookup(subject, text)
            schema_id = known["id"] if known else client.register(subject, text)
            check = client.lookup(subject, text)
            level = client.compatibility(subject)
        except RegistryError as err:
            raise RegistryError(f"subject {subject} ({name}): {err}", err.status, err.error_code) from None
        if check is None or int(check["id"]) != int(schema_id):
            raise RegistryError(f"subject {subject} ({name}): registered as id {schema_id}, but the registry "
                                f"does not find it there")
        if level != COMPATIBILITY:
            raise RegistryError(f"subject {subject}: compatibility {level}, expected {COMPATIBILITY}")
        lines.append(f"subject {subject}: {name} id {schema_id} version {check.get('version')} "
                     f"({'registered' if known is None else 'ok'}, {COMPATIBILITY})")
    return lines


def writer_ids(client: RegistryClient, topics: dict[str, str] | None = None) -> dict[str, int]:
    """The schema id of each current value schema, looked up under every subject that
    carries it (what a producer needs at start: no registry call per record). Raises
    RegistryError naming the subject when one is not registered (run `workerfile topics`
    with the registry URL) or when one schema has different ids under two subjects."""
    ids: dict[str, int] = {}
    where: dict[str, str] = {}
    for topic, name in sorted((topics or VALUE_SCHEMAS).items()):
        subject = subject_of(topic)
        try:
            known = client.lookup(subject, schema_text(name))
        except RegistryError as err:
            raise RegistryError(f"subject {subject} ({name}): {err}", err.status, err.error_code) from None
        if known is None:
            raise RegistryError(f"the current {name} schema is not registered under subject {subject} in "
                                f"{client.url}: run `workerfile topics` with WORKERFILE_SCHEMA_REGISTRY_URL set")
        schema_id = int(known["id"])
        if name in ids and ids[name] != schema_id:
            raise RegistryError(f"the {name} schema has id {ids[name]} under {where[name]} but {schema_id} "
                                f"under {subject}: a Confluent-compatible registry gives one schema one id")
        ids[name], where[name] = schema_id, subject
    return ids
