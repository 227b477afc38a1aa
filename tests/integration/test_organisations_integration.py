"""Contract section 8 against a real broker: a worker with WORKERFILE_ORGANISATIONS folds
a population whose sources have their roles into the files of the offline fold with the
same registry, rejects a forged certificate on `rejected-events` (unauthorized_source),
and its POST /events answers 422 unauthorized_source for it, sending nothing."""

from __future__ import annotations

import orjson
import pytest

from processors.batch import fold_lines
from processors.organisations import parse_organisations, registry_toml
from streams.local_kafka import free_ports
from streams.reader import latest_files, read_topic
from streams.runner import WorkerProcess, wait_for
from streams.topics import provision
from streams import codec
from tests.integration.api_access import Access, _answers, call
from tests.integration.conftest import PARTITIONS, as_line, publish
from workerfile.population import generate_population, population_registry

pytestmark = pytest.mark.timeout(420)
EVENT_TOPICS = ("training-events", "employment-events", "insurance-events", "certification-events")


def test_the_worker_checks_sources_on_kafka_and_over_http(kafka, tmp_path):
    seed = 31
    registry_path = tmp_path / "organisations.toml"
    registry_path.write_text(registry_toml(population_registry(seed)), encoding="utf-8")
    organisations = parse_organisations(registry_path.read_text(encoding="utf-8"))
    items = [i for i in generate_population(4, seed=seed, months=12, anomalies=False, shuffle=False)]
    school = next(e for e in items if e["type"] == "training.enrolled")
    forged = {**next(e for e in items if e["type"] == "certificate.issued"), "event_id": "forged-cert",
              "source": school["source"]}
    access = Access(tmp_path / "access")
    access.add("school", "training_institution", org=school["source"])
    [port] = free_ports(1)
    provision(kafka.bootstrap, "workerfile-orgs", PARTITIONS)
    proc = WorkerProcess(kafka.bootstrap, "workerfile-orgs", tmp_path / "w", partitions=PARTITIONS, web_port=port,
                         env={**access.env, "WORKERFILE_ORGANISATIONS": str(registry_path)}).start()
    try:
        wait_for(lambda: _answers(proc, access.tokens["operator"]), 90, what="the HTTP API")
        status, body = call("POST", proc.base_url + "/events", [forged], token=access.tokens["school"])
        assert status == 422, body
        [error] = body["errors"]
        assert (error["index"], error["reason"], error["field"]) == (0, "unauthorized_source", "source")
        assert "lacks the role skill_evaluator" in error["message"]
        assert sum(len(read_topic(kafka.bootstrap, t)) for t in EVENT_TOPICS) == 0  # nothing sent

        publish(kafka.bootstrap, [*items, forged])
        expected = {f["ssn"]: f for f in fold_lines([as_line(i) for i in [*items, forged]],
                                                    organisations=organisations).files()}
        wait_for(lambda: (files := latest_files(kafka.bootstrap, versions=False)) and all(files.get(s) == f for s, f in expected.items()),
                 180, interval=2, what="every file as the offline fold with the registry makes it")
        rejected = [codec.decode(r.value)[1] for r in read_topic(kafka.bootstrap, "rejected-events")]
        assert [(r["reason"], r["event_id"]) for r in rejected] == [("unauthorized_source", "forged-cert")]
        assert "forged-cert" not in orjson.dumps(expected[forged["ssn"]]).decode()
        assert "development mode" not in proc.log_text()
    finally:
        proc.kill()


def test_without_a_registry_the_worker_says_development_mode_in_its_log(kafka, tmp_path):
    provision(kafka.bootstrap, "workerfile-dev", PARTITIONS)
    proc = WorkerProcess(kafka.bootstrap, "workerfile-dev", tmp_path / "w", partitions=PARTITIONS,
                         env={"WORKERFILE_ORGANISATIONS": ""}).start()
    try:
        line = wait_for(lambda: "development mode" in proc.log_text() and proc.log_text(), 60,
                        what="the development-mode line")
        assert line.count("the sources of events are not checked (development mode") == 1
    finally:
        proc.kill()
