"""Contract section 8 in the stream: `intake_message` with the organisation registry
rejects an event whose source lacks the role (`unauthorized_source`, on
`rejected-events`); the worker reads the registry from WORKERFILE_ORGANISATIONS and says
in its log at start when it has none (development mode)."""

from __future__ import annotations

import logging

import pytest

from processors.intake import validate_event
from processors.organisations import OrganisationsError, parse_organisations, registry_toml
from streams import codec
from streams.handler import Origin, intake_message
from streams.settings import StreamSettings
from streams.topics import REJECTED_EVENTS
from tests.conftest import EVALUATOR, SCHOOL, SSN_A, make_event

ORIGIN = Origin("certification-events", 1, 5)
REGISTRY = registry_toml({SCHOOL: ("职业培训学校", ["training_provider"]), EVALUATOR: ("认定机构", ["skill_evaluator"])})


def message(event: dict) -> bytes:
    return codec.encode_event(validate_event(event))


def test_intake_rejects_a_certificate_from_a_training_institution():
    organisations = parse_organisations(REGISTRY)
    forged = make_event("certificate.issued", source=SCHOOL, event_id="forged")
    intake = intake_message(SSN_A.encode(), message(forged), ORIGIN, organisations=organisations)
    assert intake.status == "rejected" and intake.event is None
    [record] = intake.records
    assert record.topic == REJECTED_EVENTS and record.key == SSN_A.encode()
    _, rejected = codec.decode(record.value)
    assert (rejected["reason"], rejected["field"], rejected["event_id"]) == ("unauthorized_source", "source", "forged")
    assert "lacks the role skill_evaluator" in rejected["message"] and SCHOOL in rejected["message"]
    assert (rejected["topic"], rejected["partition"], rejected["offset"]) == ("certification-events", 1, 5)
    good = make_event("certificate.issued", source=EVALUATOR)
    assert intake_message(SSN_A.encode(), message(good), ORIGIN, organisations=organisations).event is not None
    # development mode: not checked
    assert intake_message(SSN_A.encode(), message(forged), ORIGIN).event is not None


def test_the_settings_read_the_registry_path_from_the_environment(monkeypatch):
    monkeypatch.delenv("WORKERFILE_ORGANISATIONS", raising=False)
    assert StreamSettings.from_env().organisations is None
    monkeypatch.setenv("WORKERFILE_ORGANISATIONS", "/etc/workerfile/organisations.toml")
    assert StreamSettings.from_env().organisations == "/etc/workerfile/organisations.toml"


def test_the_worker_says_development_mode_at_start_and_refuses_a_bad_registry(tmp_path, caplog):
    from streams.app import create_app

    with caplog.at_level(logging.INFO, logger="workerfile.stream"):
        create_app(StreamSettings(app_id="orgs-dev", data_dir=str(tmp_path / "a")))
    development = [r for r in caplog.records if "development mode" in r.getMessage()]
    assert len(development) == 1 and development[0].levelno == logging.WARNING
    assert "WORKERFILE_ORGANISATIONS" in development[0].getMessage()
    caplog.clear()
    path = tmp_path / "organisations.toml"
    path.write_text(REGISTRY, encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="workerfile.stream"):
        create_app(StreamSettings(app_id="orgs-on", data_dir=str(tmp_path / "b"), organisations=str(path)))
    assert not [r for r in caplog.records if "development mode" in r.getMessage()]
    assert [r for r in caplog.records if "2 organisations" in r.getMessage()]
    path.write_text(REGISTRY.replace("skill_evaluator", "examiner"), encoding="utf-8")
    with pytest.raises(OrganisationsError, match="unknown role 'examiner'"):
        create_app(StreamSettings(app_id="orgs-bad", data_dir=str(tmp_path / "c"), organisations=str(path)))
