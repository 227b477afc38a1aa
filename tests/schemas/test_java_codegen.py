"""The Java route over the schema set: avro-maven-plugin (schemas/java/pom.xml) generates a
class per named type and maven-compiler-plugin compiles them; Avro 1.12.0, which refuses a
named type defined twice (`Can't redefine`), does too, and refuses a set with a type
defined twice; the generated classes read what the Python codec writes, with every
released writer schema, and what they write back is what the codec reads.

Maven runs online (its first run downloads the plugins and Avro into ~/.m2)."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import shutil
import struct
import subprocess
from pathlib import Path

import fastavro
import orjson
import pytest

from processors.batch import fold_lines
from processors.derive import changed_sections, new_service_events
from processors.fold import state_to_bytes
from processors.intake import validate_event
from processors.rows import file_row
from schemas.avro import (
    FINGERPRINTS_PATH, NAMESPACE, SCHEMA_DIR, load_definitions, load_schemas, released_folders, released_versions,
    render,
)
from schemas.events import EVENT_TYPES, event_to_json_dict
from streams import codec
from workerfile.population import generate_population

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "schemas" / "java" / "pom.xml"
CHECK_WIRE = Path(__file__).parent / "java" / "CheckWire.java"
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
STRICT_AVRO = "1.12.0"  # refuses any named type defined twice, even identically (1.12.1 accepts the same twice)

pytestmark = pytest.mark.timeout(1500)


def maven(build: Path, schemas: Path, *goals: str, avro_version: str | None = None) -> subprocess.CompletedProcess:
    mvn = shutil.which("mvn")
    assert mvn, "Maven (mvn) is needed on the PATH, as for the local Kafka broker"
    command = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(POM), f"-Dbuild.dir={build}",
               f"-Dschemas.dir={schemas}"]
    if avro_version:
        command.append(f"-Davro.version={avro_version}")
    return subprocess.run([*command, *goals], capture_output=True, text=True, timeout=1400, stdin=subprocess.DEVNULL)


def output(done: subprocess.CompletedProcess) -> str:
    return (done.stdout + done.stderr)[-4000:]


def classes_of(build: Path) -> set[str]:
    return {p.stem for p in (build / "classes" / "cn" / "workerfile").glob("*.class") if "$" not in p.stem}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, str]:
    """The current schemas compiled with the pom's Avro version: (classes, classpath)."""
    root = tmp_path_factory.mktemp("java")
    build, classpath = root / "target", root / "classpath.txt"
    done = maven(build, SCHEMA_DIR, "compile", "dependency:build-classpath", f"-Dmdep.outputFile={classpath}")
    assert done.returncode == 0, output(done)
    return build, classpath.read_text().strip()


def test_every_named_type_is_generated_and_compiled(generated):
    build, _ = generated
    assert classes_of(build) == {name.rpartition(".")[2] for name in load_definitions(SCHEMA_DIR)}


def test_avro_that_refuses_a_type_defined_twice_compiles_the_set(tmp_path):
    done = maven(tmp_path / "target", SCHEMA_DIR, "compile", avro_version=STRICT_AVRO)
    assert done.returncode == 0, output(done)
    assert classes_of(tmp_path / "target") == {name.rpartition(".")[2] for name in load_definitions(SCHEMA_DIR)}


def test_the_newest_release_is_the_current_set():
    """So the classes compiled above are those of the newest release too (a release with
    other files would need its own run: -Dschemas.dir=../released/N)."""
    newest = list(released_folders().values())[-1]
    assert {p.name: p.read_text() for p in newest.glob("*.avsc")} == \
        {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.avsc")}


def test_a_type_defined_twice_fails(tmp_path):
    twice = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, twice)
    grant = json.loads((twice / f"{NAMESPACE}.SubsidyGrant.avsc").read_text())
    services = json.loads((twice / f"{NAMESPACE}.Services.avsc").read_text())
    services["fields"][0]["type"]["items"] = {k: v for k, v in grant.items() if k != "namespace"}  # identical
    (twice / f"{NAMESPACE}.Services.avsc").write_text(render(services))
    with pytest.raises(ValueError, match="defined inside another type"):
        load_definitions(twice)
    done = maven(tmp_path / "target", twice, "compile", avro_version=STRICT_AVRO)
    assert done.returncode != 0 and "Can't redefine: cn.workerfile.SubsidyGrant" in output(done)
    # the case: release 1 defines SubsidyGrant in WorkerFile.avsc and ServiceEvent.avsc
    done = maven(tmp_path / "target1", released_folders()["1"], "compile", avro_version=STRICT_AVRO)
    assert done.returncode != 0 and "Can't redefine: cn.workerfile." in output(done)


# --- the generated classes read and write what the codec does ------------------------------------

def samples() -> dict[str, list[dict]]:
    """Records of every kind the pipeline writes, in their JSON form."""
    lines = [orjson.dumps(e) if isinstance(e, dict) else e for e in generate_population(12, seed=41)]
    batch = fold_lines(lines)
    events = [orjson.loads(line) for line in lines if isinstance(line, bytes)]
    by_type: dict[str, dict] = {}
    for event in events:
        by_type.setdefault(event["type"], event)
    accepted = [e for e in by_type.values() if e["event_id"] in {i for s in batch.states.values() for i in s.records}]
    files = batch.files()
    base = {"ssn": files[0]["ssn"], "occurred_at": "2024-05-01T10:00:00+08:00", "source": "914403001922038216"}
    accepted += [  # the types the population may lack
        {**base, "event_id": "h1", "type": "honor.awarded", "payload": {"title": "model_worker", "awarded_on": "2024-05-01"}},
        {**base, "event_id": "r1", "type": "certificate.revoked",
         "payload": {"certificate_no": "S1", "revoked_on": "2024-04-30", "reason": "wrong"}},
        {**base, "event_id": "t1", "type": "insurance.transferred", "ssn": files[0]["ssn"][:6] + files[0]["ssn"][8:17],
         "payload": {"scheme": "pension", "month": "2024-04", "from_region": "440305", "to_region": "110105"}},
        *({**base, "event_id": f"s{i}", "type": kind, "source": "11440300007542610F", "payload": {  # section 9
            "service_id": "0f7fe791-f01b-5834-82e7-fd26f767e050", **extra}} for i, (kind, extra) in enumerate([
                ("service.claimed", {"claimed_on": "2024-05-01", "region": "440305"}),
                ("service.decided", {"decision": "approved", "decided_on": "2024-05-02"}),
                ("service.paid", {"paid_on": "2024-05-03", "amount_cny": 1000})])),
    ]
    assert {e["type"] for e in accepted} == set(EVENT_TYPES)
    accepted = [event_to_json_dict(validate_event(e, NOW)) for e in accepted]
    state = next(iter(batch.states.values()))
    grants = [g for s in batch.states.values() for f in files if f["ssn"] == s.ssn
              for g in new_service_events(copy.deepcopy(s), f)]
    at = "2026-06-01T09:00:00+08:00"
    return {
        "Event": accepted,
        "WorkerFile": [{**f, "version": n + 1} for n, f in enumerate(files[:6])] + files[6:8],
        "WorkerFileChange": [{"ssn": f["ssn"], "version": 2, "changed_sections": changed_sections(None, f),
                              "event_ids": ["e1", "e2"]} for f in files[:3]]
                            + [{"ssn": files[0]["ssn"], "version": 3, "changed_sections": ["erased"], "event_ids": []}],
        "ServiceEvent": grants[:4],
        # single-object encoded here like the others (on worker-file-rows it is the plain body)
        "WorkerFileRow": [file_row({**f, "version": n + 1}) for n, f in enumerate(files[:4])],
        "RejectedEvent": batch.rejects[:6],
        "AccessLogEntry": [{"ssn": files[0]["ssn"], "at": at, "caller": "社保局", "audience": "social_insurance",
                            "org": "11440300007542610F", "action": "read_file", "purpose": "benefit-review",
                            "detail": None}],
        "OperatorCommand": [{"command_id": "c1", "action": "merge_in", "ssn": files[0]["ssn"],
                             "other_ssn": files[1]["ssn"], "operator": "ops", "reason": "twice", "at": at,
                             "state": state_to_bytes(state)}],
    }


def frame(schema: dict, avro_form: dict) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), avro_form)
    return codec.MARKER + codec.schema_fingerprint(schema) + body.getvalue()


def test_java_reads_every_release_and_writes_what_the_codec_reads(generated, tmp_path):
    build, classpath = generated
    records = samples()
    assert all(records.values()), {name: len(r) for name, r in records.items()}
    values: dict[str, tuple[str, bytes]] = {}  # file stem -> (what, value)
    n = 0
    for name, items in records.items():
        for record in items:
            n += 1
            values[f"{n:04d}.{name}"] = (f"{name} #{n}, current", codec.encode(name, record))
        for version, schemas in released_versions().items():
            if name not in schemas or codec.schema_fingerprint(schemas[name]) == codec.CURRENT[name].fingerprint:
                continue
            for record in items[:3]:
                n += 1
                values[f"{n:04d}.{name}"] = (f"{name} #{n}, release {version}",
                                             frame(schemas[name], codec.avro_record(name, record)))
                (tmp_path / f"{n:04d}.{name}.writer.avsc").write_text(json.dumps(schemas[name]))
    for stem, (_, value) in values.items():
        (tmp_path / f"{stem}.bin").write_bytes(value)
    java = shutil.which("java")
    assert java, "a JDK 17+ is needed on the PATH"
    done = subprocess.run([java, "-cp", f"{build / 'classes'}:{classpath}", str(CHECK_WIRE), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, output(done)
    for stem, (what, value) in values.items():
        again = (tmp_path / f"{stem}.out").read_bytes()
        name = stem.split(".", 1)[1]
        assert again[:10] == codec.MARKER + codec.CURRENT[name].fingerprint, f"{what}: Java wrote another fingerprint"
        expected, found = codec.decode(value), codec.decode(again)
        differing = sorted(k for k in expected[1].keys() | found[1].keys() if expected[1].get(k) != found[1].get(k))
        assert expected[0] == found[0] and not differing, f"{what}: differs after Java in {differing}"  # no values
    index = json.loads(FINGERPRINTS_PATH.read_text())
    for line in (tmp_path / "fingerprints.txt").read_text().splitlines():
        name, value = line.split()
        wire = codec.CURRENT[name].fingerprint
        assert struct.pack("<q", int(value)) == wire, name
        assert index[wire.hex()]["parsing_fingerprint64"] == int(value), name
    assert load_schemas(SCHEMA_DIR).keys() == {line.split()[0] for line in
                                                (tmp_path / "fingerprints.txt").read_text().splitlines()}
