"""The files of deploy/connect/ without a running Connect (tests/integration/test_connect_integration.py
runs them): the standalone and the distributed connector configs say the same, they read the
topic the worker writes with the framing the codec writes, and every Maven version is pinned."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from sinks.connect import CONNECT_DIR, SINK_JSON, SINK_PROPERTIES, registry_api, row_schemas, sink_config
from streams import codec
from streams.topics import WORKER_FILE_ROWS, load_topic_specs


def test_the_rest_json_is_the_standalone_properties():
    assert json.loads(SINK_JSON.read_text(encoding="utf-8")) == sink_config(SINK_PROPERTIES)


def test_the_sink_reads_the_rows_topic_as_the_worker_writes_it():
    config = sink_config()
    assert config["topics"] == WORKER_FILE_ROWS
    [spec] = [s for s in load_topic_specs() if s.name == WORKER_FILE_ROWS]
    assert spec.config["cleanup.policy"] == "compact"  # like worker-files: the latest row of each worker stays
    assert config["value.converter"] == "io.apicurio.registry.utils.converter.AvroConverter"
    assert config["value.converter.apicurio.registry.headers.enabled"] == "true"  # the schema is named in headers
    assert config["key.converter"] == "org.apache.kafka.connect.storage.StringConverter"
    # the string key becomes the struct {ssn}, whose field is the primary key; a tombstone deletes
    assert config["transforms.keyStruct.type"] == "org.apache.kafka.connect.transforms.HoistField$Key"
    assert config["transforms.keyStruct.field"] == config["primary.key.fields"] == "ssn"
    assert (config["primary.key.mode"], config["insert.mode"], config["delete.enabled"]) == ("record_key", "upsert",
                                                                                             "true")
    # nothing of a deployment in the file: the database and the registry come from the environment
    for key in ("connection.url", "connection.username", "connection.password", "value.converter.apicurio.registry.url"):
        assert re.fullmatch(r"\$\{env:WORKERFILE_CONNECT_[A-Z_]+\}", config[key]), key


def test_the_headers_the_codec_writes_are_the_ones_apicurio_reads_by_default():
    # Apicurio's SerdeHeaders.HEADER_VALUE_GROUP_ID / _ARTIFACT_ID / _VERSION (2.6)
    assert (codec.HEADER_GROUP, codec.HEADER_ARTIFACT, codec.HEADER_VERSION) == (
        "apicurio.value.groupId", "apicurio.value.artifactId", "apicurio.value.version")
    assert codec.row_version(codec.CURRENT["WorkerFileRow"]) in row_schemas()


@pytest.mark.parametrize(("given", "api"), [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080/apis/registry/v2"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/apis/registry/v2"),
    ("http://127.0.0.1:8080/apis/registry/v2", "http://127.0.0.1:8080/apis/registry/v2"),
    ("http://127.0.0.1:8080/apis/ccompat/v7", "http://127.0.0.1:8080/apis/registry/v2"),
])
def test_the_registry_api_from_its_root_or_either_api(given, api):
    assert registry_api(given) == api


def test_every_maven_version_is_pinned():
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom = ET.parse(CONNECT_DIR / "pom.xml").getroot()
    properties = {p.tag.split("}")[1]: p.text for p in pom.find("m:properties", ns)}
    assert properties["kafka.version"] == "3.9.1"  # the broker's (deploy/kafka/pom.xml)
    versions = [v.text for v in pom.iter("{http://maven.apache.org/POM/4.0.0}version")
                if v is not pom.find("m:version", ns)]  # every dependency's and plugin's, not the project's
    assert len(versions) >= 8
    for version in versions:
        resolved = re.sub(r"\$\{([^}]+)\}", lambda m: properties[m.group(1)], version)
        assert re.fullmatch(r"\d+(\.\d+)+(\.Final)?", resolved), version
