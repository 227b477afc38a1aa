"""The AsyncAPI document (docs/asyncapi.json) as its readers use it: the official AsyncAPI
parser accepts it (its Avro payloads too), every JSON payload schema is a valid JSON
Schema, the views' schemas take the JSON the stream processors publish and refuse what
a view must not show, and the document says what deploy/topics.toml says (every topic,
tombstones only where declared, partitions and replicas of each profile)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from processors.batch import fold_lines
from processors.views import view_records
from streams import asyncapi
from streams.access import load_views
from streams.topics import TOPICS_TOML
from workerfile.population import generate_population

ROOT = Path(__file__).resolve().parents[2]
CHECKER = ROOT / "deploy" / "asyncapi" / "check.mjs"
DOC_URI = "urn:workerfile:asyncapi"
KEY = b"k" * 32  # a pseudonym key for the test


@pytest.fixture(scope="module")
def doc() -> dict:
    return json.loads(asyncapi.ASYNCAPI_PATH.read_text())


def validator(doc: dict, pointer: str) -> Draft7Validator:
    """A validator of the schema at `pointer` in the document: its refs
    (#/components/schemas/...) resolve in the document, as in AsyncAPI tooling."""
    registry = Registry().with_resource(DOC_URI, Resource(contents=doc, specification=DRAFT7))
    return Draft7Validator({"$ref": f"{DOC_URI}#{pointer}"}, registry=registry, format_checker=FormatChecker())


def payload_of(doc: dict, name: str) -> Draft7Validator:
    return validator(doc, f"/components/messages/{name}/payload")


def key_of(doc: dict, name: str) -> Draft7Validator:
    return validator(doc, f"/components/messages/{name}/bindings/kafka/key")


def message(doc: dict, name: str) -> dict:
    return doc["components"]["messages"][name]


def channel_messages(doc: dict, channel: dict) -> list[dict]:
    return [message(doc, ref["$ref"].rsplit("/", 1)[1]) for ref in channel["messages"].values()]


def is_avro(msg: dict) -> bool:
    return msg["payload"].get("schemaFormat", "").startswith("application/vnd.apache.avro")


def test_the_official_asyncapi_parser_accepts_the_document(doc):
    """@asyncapi/parser (deploy/asyncapi/, installed by `make install`) with the Avro schema
    parser: no error or warning, every Avro payload a valid Avro schema."""
    node = shutil.which("node")
    assert node, "Node.js is needed (the machine's node; `make install` runs npm ci in deploy/asyncapi)"
    assert (CHECKER.parent / "node_modules" / "@asyncapi" / "parser").is_dir(), "run: make install"
    done = subprocess.run([node, str(CHECKER), str(asyncapi.ASYNCAPI_PATH)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["parsed"]
    problems = [d for d in report["diagnostics"] if d["severity"] <= 1]  # 0 error, 1 warning
    assert problems == []
    assert report["avro"] == []
    assert report["avroChecked"] == sum(is_avro(m) for m in doc["components"]["messages"].values()) >= 7


def test_the_official_parser_finds_a_broken_document(tmp_path, doc):
    """The check above can fail: a binding with a wrong type, a JSON payload with a wrong
    type and an Avro payload naming no type are each reported."""
    bad = json.loads(json.dumps(doc))
    bad["channels"]["worker_files"]["bindings"]["kafka"]["partitions"] = "twelve"
    bad["components"]["messages"]["SocialInsuranceView"]["payload"]["type"] = "objekt"
    bad["components"]["messages"]["WorkerFile"]["payload"]["schema"]["fields"][0]["type"] = "no_such_type"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    done = subprocess.run([shutil.which("node"), str(CHECKER), str(path)], capture_output=True, text=True, timeout=120)
    report = json.loads(done.stdout)
    errors = {d["path"] for d in report["diagnostics"] if d["severity"] == 0}
    assert "channels/worker_files/bindings/kafka/partitions" in errors
    assert "components/messages/SocialInsuranceView/payload/type" in errors
    assert [a["message"] for a in report["avro"]] == ["WorkerFile"]


def test_every_json_payload_and_key_schema_is_a_valid_json_schema(doc):
    checked = 0
    for name, msg in doc["components"]["messages"].items():
        if not is_avro(msg):
            Draft7Validator.check_schema(msg["payload"])
            checked += 1
        Draft7Validator.check_schema(msg["bindings"]["kafka"]["key"])
    for part in doc["components"]["schemas"].values():
        Draft7Validator.check_schema(part)
    assert checked >= 6  # three views, their tombstones, ...
    refs = list(refs_in(doc))
    assert len(refs) > 50
    for ref in refs:  # every reference points at something in the document
        node = doc
        for step in ref.removeprefix("#/").split("/"):
            assert step in node, ref
            node = node[step]


def refs_in(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs_in(value)


def published_views(population: int = 40, seed: int = 5) -> dict[str, list[tuple[bytes, dict]]]:
    """message name -> (key, JSON value) of every view record the stream processors publish
    for the files of a generated population (views.toml, processors.views.view_records, the
    bytes as streams.handler.view_output makes them), a pseudonym key given."""
    batch = fold_lines([orjson.dumps(e) if isinstance(e, dict) else e.encode()
                        for e in generate_population(population, seed=seed, months=24)])
    views = {v.name: v for v in load_views(asyncapi.VIEWS_TOML).values() if v.topic and v.fields}
    by_topic = {v.topic: asyncapi.view_schema_name(v) for v in views.values()}
    out: dict[str, list] = {}
    for file in batch.files():
        state = batch.states[file["ssn"]]
        for topic, key, value in view_records(file["ssn"], file, ["ssn"], state.core, views, KEY):
            name = next(n for t, n in by_topic.items() if t == topic or ("{org}" in t and topic.startswith(t[:-5])))
            out.setdefault(name, []).append((key, orjson.loads(orjson.dumps(value)) if value is not None else None))
    return out


def test_view_messages_validate_the_views_the_processors_publish(doc):
    records = published_views()
    assert set(records) == {"SocialInsuranceView", "TrainingInstitutionView", "IntegratorView"}
    for name, items in records.items():
        msg = message(doc, name)
        assert msg["contentType"] == "application/json"
        value_check, key_check = payload_of(doc, name), key_of(doc, name)
        for key, value in items:
            assert value is not None
            errors = [e.message for e in value_check.iter_errors(value)]
            assert errors == [], (name, errors[:3])
            assert key_check.is_valid(key.decode())
        assert len(items) >= 5, name


def test_view_schemas_refuse_what_a_view_does_not_show(doc):
    records = published_views(12)
    integrator = payload_of(doc, "IntegratorView")
    value = next(v for _, v in records["IntegratorView"] if v["certificates"])
    assert integrator.is_valid(value)
    assert not integrator.is_valid({**value, "ssn": "11010519491231002X"})  # no direct identifier
    leaked = {**value, "certificates": [{**value["certificates"][0], "certificate_no": "C-1"}]}
    assert not integrator.is_valid(leaked)  # omitted in views.toml
    assert not integrator.is_valid({k: v for k, v in value.items() if k != "pseudonym"})
    social = payload_of(doc, "SocialInsuranceView")
    value = records["SocialInsuranceView"][0][1]
    assert social.is_valid(value) and not social.is_valid({**value, "trainings": []})
    assert not social.is_valid({**value, "birth_date": "1980-02-30"})  # format date is checked
    training = payload_of(doc, "TrainingInstitutionView")
    value = records["TrainingInstitutionView"][0][1]
    assert training.is_valid(value) and not training.is_valid({**value, "trainings": []})  # then a tombstone


def test_tombstones_are_messages_where_topics_toml_says_they_occur(doc):
    with TOPICS_TOML.open("rb") as fh:
        topics = tomllib.load(fh)["topics"]
    channels = {c["address"]: c for c in doc["channels"].values()}
    assert set(topics) <= set(channels)
    for address, channel in channels.items():
        tombstones = [m for m in channel_messages(doc, channel) if m["payload"] == {"type": "null"}]
        expected = topics[address]["tombstones"] if address in topics else True  # on-demand views, changelog
        assert len(tombstones) == (1 if expected else 0), address
        values = [m for m in channel_messages(doc, channel) if m["payload"] != {"type": "null"}]
        assert len(values) == 1, address
        for t in tombstones:  # a tombstone has the key of the channel's records
            assert t["bindings"]["kafka"]["key"] == values[0]["bindings"]["kafka"]["key"]
        if "compact" in channel["bindings"]["kafka"]["topicConfiguration"]["cleanup.policy"]:
            assert "delete.retention.ms" in channel["description"] and "rebuild" in channel["description"]


def test_partitions_and_replicas_of_every_profile(doc):
    with TOPICS_TOML.open("rb") as fh:
        profiles = tomllib.load(fh)["profiles"]
    for channel in doc["channels"].values():
        binding = channel["bindings"]["kafka"]
        assert binding["partitions"] == profiles["cluster"]["partitions"]
        assert binding["replicas"] == profiles["cluster"]["replication"]
        assert binding["x-profiles"] == {p: {"partitions": profiles[p]["partitions"],
                                             "replicas": profiles[p]["replication"]} for p in ("local", "cluster")}
        assert "the cluster profile's" in channel["description"]
    assert set(doc["servers"]) == {"local", "cluster"}
    assert "murmur2" in doc["info"]["description"] and "consistent_random" in doc["info"]["description"]


def test_parameterised_channels_are_the_topics_created_on_demand(doc):
    channels = {c["address"]: c for c in doc["channels"].values()}
    training = channels["worker-view-training.{org}"]
    assert set(training["parameters"]) == {"org"} and "topic" not in training["bindings"]["kafka"]
    assert training["bindings"]["kafka"]["topicConfiguration"] == {"cleanup.policy": ["compact"],
                                                                    "delete.retention.ms": 86_400_000}
    assert set(channels["{appId}-worker-state-changelog"]["parameters"]) == {"appId"}


def test_changed_sections_values_are_listed(doc):
    description = message(doc, "WorkerFileChange")["description"]
    for value in ("aliases", "applied_events", "erased", "merged"):
        assert value in description


def test_a_topic_without_what_travels_on_it_is_refused(tmp_path):
    text = TOPICS_TOML.read_text() + '\n[topics.worker-new-thing]\ndescription = "x"\nconfig = {}\n'
    path = tmp_path / "topics.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"worker-new-thing\] lacks value, key, tombstones, written_by, workerfile"):
        asyncapi.build_asyncapi(topics_path=path)


def test_a_new_topic_of_topics_toml_becomes_a_channel(tmp_path):
    text = TOPICS_TOML.read_text() + ('\n[topics.worker-new-thing]\ndescription = "files again"\nvalue = "WorkerFile"\n'
                                      'key = "ssn"\ntombstones = true\nwritten_by = "someone"\nworkerfile = ["send"]\n'
                                      'config = { "cleanup.policy" = "compact" }\n')
    path = tmp_path / "topics.toml"
    path.write_text(text)
    doc = asyncapi.build_asyncapi(topics_path=path)
    channel = doc["channels"]["worker_new_thing"]
    assert channel["address"] == "worker-new-thing"
    assert set(channel["messages"]) == {"WorkerFile", "WorkerFileTombstone"}
    assert "send_worker_new_thing" in doc["operations"]
