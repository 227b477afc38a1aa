"""The committed API documents match what the models, schemas and topic config give:
the OpenAPI document of the HTTP API and the AsyncAPI 3 document of the topics."""

from __future__ import annotations

import json

from schemas.avro import SCHEMA_DIR, load_schemas
from streams import asyncapi, openapi
from streams.topics import (
    EVENT_TOPICS, REJECTED_EVENTS, WORKER_ACCESS_LOG, WORKER_FILE_CHANGES, WORKER_FILE_ROWS, WORKER_FILES,
    WORKER_SERVICES,
)


def test_committed_openapi_document_is_generated_from_the_models():
    assert openapi.OPENAPI_PATH.read_bytes() == openapi.render(), "run: python -m streams.openapi"


def test_openapi_documents_every_route_and_its_error_answers():
    doc = json.loads(openapi.OPENAPI_PATH.read_text())
    assert set(doc["paths"]) == {"/events", "/workers/{ssn}", "/workers/{ssn}/events", "/workers/{ssn}/access-log",
                                 "/me", "/me/file", "/openapi.json"}
    assert set(doc["paths"]["/me/file"]["get"]["responses"]) == {"200", "401", "403", "404", "503"}
    assert doc["paths"]["/me"]["get"]["security"] == [] and "text/html" in doc["paths"]["/me"]["get"]["responses"]["200"][
        "content"]
    assert set(doc["paths"]["/events"]["post"]["responses"]) == {"202", "400", "401", "403", "413", "422", "503"}
    for path in ("/workers/{ssn}", "/workers/{ssn}/events", "/workers/{ssn}/access-log"):
        assert set(doc["paths"][path]["get"]["responses"]) == {"200", "400", "401", "403", "404", "503"}
    assert doc["security"] == [{"bearer": []}] and doc["paths"]["/openapi.json"]["get"]["security"] == []
    worker_file = doc["components"]["schemas"]["WorkerFile"]
    assert {"ssn", "employments", "certificates", "services", "issues", "applied_events"} <= set(worker_file["properties"])
    assert len(doc["components"]["schemas"]["Event"]["oneOf"]) == 17


def test_committed_asyncapi_document_is_generated_from_the_schemas():
    assert asyncapi.ASYNCAPI_PATH.read_bytes() == asyncapi.render(), "run: python -m streams.asyncapi"


def test_asyncapi_describes_every_contract_topic_with_its_avro_schema():
    doc = json.loads(asyncapi.ASYNCAPI_PATH.read_text())
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"]: c for c in doc["channels"].values()}
    assert set(addresses) >= {*EVENT_TOPICS, WORKER_FILES, WORKER_FILE_ROWS, WORKER_FILE_CHANGES, WORKER_SERVICES, REJECTED_EVENTS,
                              WORKER_ACCESS_LOG, "worker-view-social-insurance", "worker-view-pseudonymised",
                              "worker-view-training.{org}", "{appId}-worker-state-changelog"}
    committed = load_schemas(SCHEMA_DIR)
    for channel in addresses.values():
        for ref in channel["messages"].values():
            message = doc["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
            if message["payload"].get("schemaFormat", "").startswith("application/vnd.apache.avro"):
                assert message["payload"]["schema"] == committed[message["title"]]
            elif message["contentType"] == "application/json":  # an audience view (deploy/views.toml)
                assert channel["address"].startswith("worker-view-")
    assert addresses[WORKER_FILES]["bindings"]["kafka"]["topicConfiguration"]["cleanup.policy"] == ["compact"]
    assert addresses[WORKER_FILE_CHANGES]["bindings"]["kafka"]["topicConfiguration"]["cleanup.policy"] == ["delete"]
    actions = {(op["channel"]["$ref"].rsplit("/", 1)[1], op["action"]) for op in doc["operations"].values()}
    assert ("training_events", "receive") in actions and ("worker_files", "send") in actions
    assert ("worker_files", "receive") not in actions and ("training_events", "send") not in actions
