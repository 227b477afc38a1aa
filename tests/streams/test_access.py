"""API callers and the pseudonym key (streams/access.py), without a broker."""

from __future__ import annotations

import os
import stat

import pytest

from streams.access import (
    AccessConfigError, Callers, add_caller, hash_token, load_pseudonym_key, load_views, write_pseudonym_key,
)
from streams.settings import StreamSettings
from tests.conftest import SCHOOL, SSN_A, SSN_C, SSN_C_LEGACY


@pytest.fixture
def views():
    return load_views()


def test_a_token_is_shown_once_and_only_its_hash_is_kept(tmp_path, views):
    path = tmp_path / "callers.toml"
    token = add_caller(path, views, "深圳技师学院", "training_institution", org=SCHOOL)
    text = path.read_text(encoding="utf-8")
    assert token not in text and hash_token(token) in text and "深圳技师学院" in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    caller = Callers.load(path, views).authenticate(f"Bearer {token}")
    assert (caller.name, caller.audience, caller.org) == ("深圳技师学院", "training_institution", SCHOOL)


def test_unknown_missing_or_malformed_credentials_authenticate_nobody(tmp_path, views):
    path = tmp_path / "callers.toml"
    token = add_caller(path, views, "bureau", "social_insurance", org=SCHOOL)
    callers = Callers.load(path, views)
    for header in (None, "", token, f"Basic {token}", "Bearer ", f"Bearer {token}x"):
        assert callers.authenticate(header) is None
    assert Callers.load(None, views).authenticate(f"Bearer {token}") is None  # no callers file: nobody


def test_a_worker_caller_is_bound_to_the_normalised_number(tmp_path, views):
    path = tmp_path / "callers.toml"
    token = add_caller(path, views, "the worker", "worker", ssn=SSN_C_LEGACY)
    assert Callers.load(path, views).authenticate(f"Bearer {token}").ssn == SSN_C


@pytest.mark.parametrize("entry, error", [
    (dict(name="x", audience="nobody", org=SCHOOL), "audience: 'nobody' is not a view"),
    (dict(name="x", audience="employer"), "org: audience employer needs the caller's organisation"),
    (dict(name="x", audience="employer", org="914403001922038217"), "org: check character"),
    (dict(name="x", audience="worker"), "ssn: audience worker reads one worker's file"),
    (dict(name="x", audience="worker", ssn="11010519491231002Y"), "ssn:"),
    (dict(name="", audience="integrator"), "name: missing"),
])
def test_a_wrong_caller_is_refused_with_the_field(tmp_path, views, entry, error):
    with pytest.raises(AccessConfigError, match=error):
        add_caller(tmp_path / "callers.toml", views, entry.pop("name"), entry.pop("audience"), **entry)


def test_callers_added_or_removed_count_at_once_and_a_broken_file_lets_nobody_in(tmp_path, views):
    path = tmp_path / "callers.toml"
    first = add_caller(path, views, "first", "integrator")
    callers = Callers.load(path, views)
    second = add_caller(path, views, "second", "integrator")
    assert callers.authenticate(f"Bearer {second}").name == "second"  # added after loading
    path.write_text(path.read_text() + "\n[[callers]]\nname = 'broken'\n")
    assert callers.authenticate(f"Bearer {first}") is None  # fail closed
    path.write_text("\n".join(path.read_text().splitlines()[:-3]) + "\n")
    assert callers.authenticate(f"Bearer {first}").name == "first"


def test_the_error_of_an_invalid_ssn_in_the_callers_file_does_not_print_it(tmp_path, views):
    bad = SSN_A[:17] + "1"
    with pytest.raises(AccessConfigError) as err:
        add_caller(tmp_path / "callers.toml", views, "w", "worker", ssn=bad)
    assert bad not in str(err.value)


def test_the_pseudonym_key_file(tmp_path, monkeypatch):
    path = tmp_path / "pseudonym.key"
    write_pseudonym_key(path)
    key = load_pseudonym_key(path)
    assert len(key) >= 32 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(AccessConfigError, match="never overwritten"):
        write_pseudonym_key(path)
    (tmp_path / "short.key").write_text("abc\n")
    with pytest.raises(AccessConfigError, match="at least 32 bytes"):
        load_pseudonym_key(tmp_path / "short.key")
    monkeypatch.delenv("WORKERFILE_PSEUDONYM_KEY_FILE", raising=False)
    assert load_pseudonym_key(StreamSettings.from_env().pseudonym_key_file) is None
    monkeypatch.setenv("WORKERFILE_PSEUDONYM_KEY_FILE", str(path))  # read with the worker's other settings
    assert load_pseudonym_key(StreamSettings.from_env().pseudonym_key_file) == key
