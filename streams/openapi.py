"""The OpenAPI 3.1 document of the HTTP API (`streams.web`), generated from the pydantic
models so it cannot drift from them: `python -m streams.openapi` rewrites
`streams/openapi.json`; a test fails while the committed file differs."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
from pydantic.json_schema import models_json_schema

from processors.intake import REASON_ORDER
from schemas.events import EVENT_CLASSES
from schemas.outputs import WorkerFile
from streams.web import MAX_BODY

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
REF = "#/components/schemas/{model}"
# the reasons of a 422 of POST /events: those of validate_event (a body that is not JSON
# is a 400; the fold's reasons, from a worker's state, come later, on rejected-events)
INTAKE_REASONS = tuple(r for r in REASON_ORDER[:REASON_ORDER.index("unauthorized_source") + 1] if r != "malformed")


def _error(description: str, reasons: list[str]) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/Error"}, "examples": {r: {"value": {"error": r, "message": "..."}} for r in reasons}}}}


def build_openapi() -> dict:
    """The whole document, deterministic."""
    _, defs = models_json_schema([(m, "validation") for m in (*EVENT_CLASSES, WorkerFile)], ref_template=REF)
    schemas = dict(sorted(defs["$defs"].items()))
    event_refs = [{"$ref": REF.format(model=m.__name__)} for m in EVENT_CLASSES]
    schemas["Event"] = {"oneOf": event_refs, "discriminator": {"propertyName": "type"}}
    schemas["Error"] = {"type": "object", "required": ["error"], "properties": {
        "error": {"type": "string", "description": "machine-readable reason"},
        "message": {"type": "string"}}}
    schemas["FieldError"] = {"type": "object", "required": ["index", "reason", "message"], "properties": {
        "index": {"type": "integer", "description": "position of the event in the request"},
        "reason": {"type": "string", "enum": list(INTAKE_REASONS),
                   "description": "the contract's reject reason (the first of this order when there are several); "
                                  "unauthorized_source: the source is not in the organisation registry or lacks "
                                  "the role for the event's type (contract section 8)"},
        "field": {"type": ["string", "null"], "description": "path of the field, e.g. payload.hours"},
        "message": {"type": "string"}}}
    schemas["Provenance"] = {"type": "object", "required": ["ssn", "events"], "properties": {
        "ssn": {"type": "string"},
        "events": {"type": "array", "items": {"type": "object", "required": ["event_id", "type", "source", "occurred_at"],
                                               "properties": {"event_id": {"type": "string"}, "type": {"type": "string"},
                                                              "source": {"type": "string"},
                                                              "occurred_at": {"type": "string", "format": "date-time"},
                                                              "corrects": {"type": ["string", "null"]}}}}}}
    schemas["AccessLog"] = {"type": "object", "required": ["ssn", "entries"], "properties": {
        "ssn": {"type": "string"},
        "entries": {"type": "array", "items": {"type": "object", "required": ["at", "caller", "audience", "action"],
                                                "properties": {"at": {"type": "string", "format": "date-time"},
                                                               "caller": {"type": "string"},
                                                               "audience": {"type": "string"},
                                                               "org": {"type": ["string", "null"]},
                                                               "action": {"type": "string"},
                                                               "purpose": {"type": ["string", "null"]},
                                                               "detail": {"type": ["string", "null"]}}}}}}
    denied = {"401": _error("no or unknown token", ["unauthenticated"]),
              "403": _error("the caller's audience may not do this (deploy/views.toml)", ["forbidden"])}
    purpose = {"name": "purpose", "in": "query", "required": False, "schema": {"type": "string"},
               "description": "why the file is read, kept in the worker's access log (or header X-Purpose, "
                              "percent-encoded UTF-8)"}
    unrecorded = _error("the read could not be recorded in the access log, so it is not answered", ["unavailable"])
    ssn_param = {"name": "ssn", "in": "path", "required": True, "schema": {"type": "string"},
                 "description": "social-security number (18 characters, or the legacy 15 digits)"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "workerfile", "version": "1",
                 "description": "One electronic file per industrial worker. Served by every stream worker "
                                "(`workerfile worker --web-port PORT`); any worker answers any SSN. Every call "
                                "but this document needs a caller's bearer token (`workerfile token add`); "
                                "each caller sees its audience's view (deploy/views.toml). Every error, on every path "
                                "(also an unknown path or a trailing slash: 404 not_found; a method a path does not have: "
                                "405 method_not_allowed), is an Error object; no error shows a whole social-security "
                                "number."},
        "security": [{"bearer": []}],
        "paths": {
            "/events": {"post": {
                "summary": "Ingest one event or a batch (all or nothing)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "oneOf": [{"$ref": "#/components/schemas/Event"},
                              {"type": "array", "items": {"$ref": "#/components/schemas/Event"}, "maxItems": 1000}]}}}},
                "responses": {
                    "202": {"description": "acknowledged by Kafka (acks=all)", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"accepted": {"type": "array", "items": {"type": "string"}}}}}}},
                    "400": _error("the body is not JSON, or not 1-1000 events", ["malformed", "schema"]),
                    **denied,
                    "413": _error(f"the body is over {MAX_BODY} bytes ({MAX_BODY // 1048576} MiB); nothing was sent",
                                  ["too_large"]),
                    "422": {"description": "invalid events; nothing was sent", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"error": {"const": "invalid_events"},
                                                         "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
                                                         "message": {"type": "string"}}}}}},
                    "503": _error("the brokers did not acknowledge every event within WORKERFILE_INGEST_TIMEOUT "
                                  "(30 s; acks=all: a partition's leader down, or fewer in-sync replicas than "
                                  "min.insync.replicas, e.g. two of three brokers down) or refused one; nothing is "
                                  "accepted: send the same batch again later (event ids make it harmless)",
                                  ["unavailable"]),
                }}},
            "/workers/{ssn}": {"get": {
                "summary": "The caller's view of the worker's file (the whole file for operators and the worker)",
                "parameters": [ssn_param, purpose],
                "responses": {
                    "200": {"description": "the file, or the caller's view of it", "content": {"application/json": {
                        "schema": {"oneOf": [{"$ref": "#/components/schemas/WorkerFile"}, {"type": "object"}]}}}},
                    "400": _error("malformed SSN", ["invalid_ssn"]),
                    **denied,
                    "404": _error("no file for this SSN, or nothing of the caller's in it", ["not_found"]),
                    "503": unrecorded,
                }}},
            "/workers/{ssn}/events": {"get": {
                "summary": "The events that shaped the file, with their sources (provenance)",
                "parameters": [ssn_param, purpose],
                "responses": {
                    "200": {"description": "provenance", "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/Provenance"}}}},
                    "400": _error("malformed SSN", ["invalid_ssn"]),
                    **denied,
                    "404": _error("no file for this SSN", ["not_found"]),
                    "503": unrecorded,
                }}},
            "/workers/{ssn}/access-log": {"get": {
                "summary": "Who read the file: every read through this API and every operator action on it",
                "parameters": [ssn_param, purpose],
                "responses": {
                    "200": {"description": "the access log, oldest first: every record of this SSN on "
                                           "worker-access-log up to the request", "content": {"application/json": {
                                               "schema": {"$ref": "#/components/schemas/AccessLog"}}}},
                    "400": _error("malformed SSN", ["invalid_ssn"]),
                    **denied,
                    "404": _error("no file for this SSN", ["not_found"]),
                    "503": _error("worker-access-log could not be read up to the request in time (30 s), or this "
                                  "read could not be recorded in it, so it is not answered", ["unavailable"]),
                }}},
            "/me/file": {"get": {
                "summary": "The worker's own file: the file of the number a worker's token is bound to",
                "description": "As GET /workers/{ssn} of that number (recorded in the access log first). Only a "
                               "caller bound to one number (audience worker) has a file of its own.",
                "parameters": [purpose],
                "responses": {
                    "200": {"description": "the whole file", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/WorkerFile"}}}},
                    "401": denied["401"],
                    "403": _error("the caller is bound to no number (not a worker's token)", ["forbidden"]),
                    "404": _error("no file for the worker's number (yet)", ["not_found"]),
                    "503": unrecorded,
                }}},
            "/me": {"get": {
                "summary": "The worker's own page (HTML, Chinese with English)",
                "description": "One self-contained page (inline script and style, nothing loaded from elsewhere) "
                               "that holds no data: it asks once for the worker's token, keeps it in the tab's "
                               "sessionStorage (or takes it from the fragment #token=..., which it removes from the "
                               "address at once), then shows GET /me/file and the access log in plain words, the "
                               "number masked.",
                "security": [],
                "responses": {"200": {"description": "the page", "content": {"text/html": {
                    "schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [],
                                      "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        },
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "a caller's token from `workerfile token add`: `Authorization: Bearer <token>` (the scheme "
                           "in any case, RFC 7235)"}}},
    }


def render() -> bytes:
    return orjson.dumps(build_openapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def main() -> int:
    OPENAPI_PATH.write_bytes(render())
    print(f"wrote {OPENAPI_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
