"""Audience views (issue #6, item 2): what each audience sees of a file, the keyed
pseudonym, and the records published per view."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest

from processors.fold import fold_event, new_state
from processors.views import (
    ViewConfigError, check_pseudonym_key, pseudonym, view_of, view_records, views_from_config,
)
from tests.conftest import (
    BUREAU, EMPLOYER_A, EVALUATOR, OCC, SCHOOL, SCHOOL_2, SSN_A, SSN_B, envelope, file_of, make_event, retraction,
)

VIEWS_TOML = Path(__file__).resolve().parents[2] / "deploy" / "views.toml"
KEY = b"k" * 32


@pytest.fixture(scope="module")
def views():
    with VIEWS_TOML.open("rb") as fh:
        return views_from_config(tomllib.load(fh))


def career(ssn: str = SSN_A) -> list[dict]:
    return [
        make_event("card.issued", ssn=ssn, source=BUREAU),
        make_event("employment.started", ssn=ssn, source=EMPLOYER_A),
        make_event("training.enrolled", ssn=ssn, source=SCHOOL),
        make_event("training.enrolled", ssn=ssn, source=SCHOOL_2,
                   payload={"program_id": "P-OTHER", "program_name": "其他"}),
        make_event("certificate.issued", ssn=ssn, source=EVALUATOR),
        make_event("honor.awarded", ssn=ssn, source=BUREAU),
    ]


def test_social_insurance_sees_its_sections_and_nothing_else(views):
    whole = file_of(*career())
    seen = view_of(whole, views["social_insurance"])
    assert set(seen) == {"ssn", "aliases", "birth_date", "sex", "card", "employments", "current_employers",
                         "insurance", "certificates", "highest_skill_level", "services"}
    assert seen["card"] == whole["card"] and seen["employments"] == whole["employments"]
    assert "trainings" not in seen and "honors" not in seen


def test_a_training_institution_sees_only_its_own_trainings_plus_certificates(views):
    whole = file_of(*career())
    assert {t["source"] for t in whole["trainings"]} == {SCHOOL, SCHOOL_2}
    seen = view_of(whole, views["training_institution"], org=SCHOOL)
    assert set(seen) == {"ssn", "trainings", "certificates", "highest_skill_level"}
    assert [t["source"] for t in seen["trainings"]] == [SCHOOL]
    assert seen["certificates"] == whole["certificates"]
    # an institution the worker never trained with sees nothing at all
    assert view_of(whole, views["training_institution"], org=EMPLOYER_A) is None


def test_the_integrator_view_has_no_direct_identifier(views):
    whole = file_of(*career())
    seen = view_of(whole, views["integrator"], key=KEY)
    assert "ssn" not in seen and "aliases" not in seen and "birth_date" not in seen and "card" not in seen
    assert seen["birth_year"] == 1949 and seen["sex"] == whole["sex"]
    assert seen["certificates"] and all("certificate_no" not in c for c in seen["certificates"])
    assert seen["pseudonym"] == pseudonym(SSN_A, KEY)
    text = repr(seen)
    assert SSN_A not in text and whole["card"]["card_no"] not in text
    assert whole["certificates"][0]["certificate_no"] not in text
    assert whole["certificates"][0]["certificate_no"]  # the whole file still has it (copies, not edits)


def test_pseudonyms_are_keyed_hmacs_not_plain_hashes():
    assert pseudonym(SSN_A, KEY) != hashlib.sha256(SSN_A.encode()).hexdigest()
    assert pseudonym(SSN_A, KEY) == pseudonym(SSN_A, KEY)
    assert pseudonym(SSN_A, KEY) != pseudonym(SSN_A, b"j" * 32)
    assert pseudonym(SSN_A, KEY) != pseudonym(SSN_B, KEY)
    assert len(pseudonym(SSN_A, KEY)) == 64
    with pytest.raises(ViewConfigError, match="at least 32 bytes"):
        check_pseudonym_key(b"short")


def test_without_the_key_there_is_no_pseudonymised_view(views):
    with pytest.raises(ViewConfigError, match="pseudonym key"):
        view_of(file_of(*career()), views["integrator"])


def test_operator_and_worker_see_the_whole_file_and_producers_see_none(views):
    whole = file_of(*career())
    assert view_of(whole, views["operator"]) == whole
    assert view_of(whole, views["worker"]) == whole
    assert view_of(whole, views["employer"]) is None


@pytest.mark.parametrize("table, error", [
    ({"fields": ["ssn", "salary"]}, r"views.x.fields: 'salary' is not a section"),
    ({"fields": ["ssn"], "own": ["trainings"]}, r"views.x.own: 'trainings' is not a shown section"),
    ({"fields": ["honors"], "own": ["honors"]}, r"views.x.own: 'honors' cannot be cut"),
    ({"fields": ["ssn"], "key": "hash"}, r"views.x.key"),
    ({"fields": ["ssn", "pseudonym"], "key": "pseudonym"}, r"cannot show the ssn"),
    ({"fields": ["ssn"], "may": ["delete"]}, r"views.x.may: unknown permission"),
    ({"fields": ["ssn"], "topic": "t.{org}"}, r"views.x.topic"),
    ({"fields": ["ssn"], "colour": "red"}, r"views.x: unknown setting"),
])
def test_a_wrong_views_config_names_the_view_and_the_field(table, error):
    with pytest.raises(ViewConfigError, match=error):
        views_from_config({"views": {"x": table}})


def test_view_records_one_per_published_view_and_institution(views):
    state = new_state(SSN_A)
    for e in career():
        fold_event(state, envelope(e))
    whole = file_of(*career())
    records = view_records(SSN_A, whole, ["trainings"], state.records, views, KEY)
    topics = {topic: (key, value) for topic, key, value in records}
    # every view showing trainings: the per-institution ones and the pseudonymised one
    assert set(topics) == {f"worker-view-training.{SCHOOL}", f"worker-view-training.{SCHOOL_2}",
                           "worker-view-pseudonymised"}
    key, value = topics[f"worker-view-training.{SCHOOL}"]
    assert key == SSN_A.encode() and [t["source"] for t in value["trainings"]] == [SCHOOL]
    key, value = topics["worker-view-pseudonymised"]
    assert key == pseudonym(SSN_A, KEY).encode()
    # a change of the card touches the social-insurance view only
    assert [t for t, _, _ in view_records(SSN_A, whole, ["card"], state.records, views, KEY)] == [
        "worker-view-social-insurance"]


def test_an_institution_whose_training_is_retracted_gets_a_tombstone(views):
    events = career()
    enrolled = events[2]
    events.append(retraction(enrolled, source=SCHOOL))
    state = new_state(SSN_A)
    for e in events:
        fold_event(state, envelope(e))
    whole = file_of(*events)
    records = {t: v for t, _, v in view_records(SSN_A, whole, ["trainings"], state.records, views, KEY)}
    assert records[f"worker-view-training.{SCHOOL}"] is None
    assert records[f"worker-view-training.{SCHOOL_2}"] is not None


def test_a_file_that_is_gone_leaves_a_tombstone_on_every_view(views):
    state = new_state(SSN_A)
    for e in career():
        fold_event(state, envelope(e))
    records = view_records(SSN_A, None, [], state.records, views, KEY)
    assert {t for t, _, _ in records} == {"worker-view-social-insurance", f"worker-view-training.{SCHOOL}",
                                          f"worker-view-training.{SCHOOL_2}", "worker-view-pseudonymised"}
    assert all(v is None for _, _, v in records)
