"""Who may call the HTTP API, and as which audience (issue #6, items 2 and 3).

- Views: `deploy/views.toml` (or WORKERFILE_VIEWS), see processors/views.py.
- Pseudonym key: WORKERFILE_PSEUDONYM_KEY_FILE, a file of at least 32 random bytes held
  outside the code (`workerfile token key FILE` makes one).
- Callers: WORKERFILE_API_TOKENS, a TOML file of `[[callers]]`, each with a name, an
  audience (a view of views.toml), its organisation code (unified social credit code;
  what it may send as `source`), or for the worker audience the SSN it may read, and the
  SHA-256 of its bearer token. The token itself is shown once, by `workerfile token
  add`, and stored nowhere. Without a callers file the API answers 401 to everything
  but `/openapi.json`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

import orjson

from schemas.identity import mask_ssn, normalise_ssn, validate_org_code
from processors.views import View, ViewConfigError, check_pseudonym_key, views_from_config

log = logging.getLogger("workerfile.access")
VIEWS_TOML = Path(__file__).resolve().parents[1] / "deploy" / "views.toml"


class AccessConfigError(ValueError):
    """A wrong views, key or callers file; the message names the file and the field."""


def load_views(path: str | os.PathLike | None = None) -> dict[str, View]:
    """The views of `path` (None: deploy/views.toml; the worker's comes from
    StreamSettings.views, WORKERFILE_VIEWS)."""
    path = Path(path or VIEWS_TOML)
    try:
        with path.open("rb") as fh:
            return views_from_config(tomllib.load(fh))
    except (OSError, tomllib.TOMLDecodeError, ViewConfigError) as err:
        raise AccessConfigError(f"{path}: {err}") from None


def load_pseudonym_key(path: str | os.PathLike | None = None) -> bytes | None:
    """The pseudonym key from its file (the worker's: StreamSettings.pseudonym_key_file,
    WORKERFILE_PSEUDONYM_KEY_FILE), or None if none is given."""
    if not path:
        return None
    try:
        return check_pseudonym_key(Path(path).read_bytes().strip())
    except (OSError, ViewConfigError) as err:
        raise AccessConfigError(f"WORKERFILE_PSEUDONYM_KEY_FILE {path}: {err}") from None


def write_pseudonym_key(path: str | os.PathLike) -> None:
    """A new random key (64 hex characters = 32 bytes of secret), readable by the owner only."""
    target = Path(path)
    if target.exists():
        raise AccessConfigError(f"{target} exists: a pseudonym key is never overwritten (pseudonyms would change)")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")


@dataclass(frozen=True)
class Caller:
    """An authenticated caller of the API."""

    name: str
    audience: str
    org: str | None = None
    ssn: str | None = None  # the worker audience: the one file this caller may read

    def describe(self) -> dict:
        return {"caller": self.name, "audience": self.audience, "org": self.org}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Callers:
    """The callers file, by token hash; read again when it changes, so a caller added or
    removed with `workerfile token add` (or by editing the file) counts at once. A file
    that no longer reads lets nobody in (fail closed) until it is fixed."""

    def __init__(self, callers: dict[str, Caller], path: str | os.PathLike | None = None,
                 views: dict[str, View] | None = None):
        self.by_hash = callers
        self.path, self.views = path, views
        self.stamp = self._stamp()

    def _stamp(self):
        try:
            st = os.stat(self.path) if self.path else None
        except OSError:
            return None
        return st and (st.st_mtime_ns, st.st_size, st.st_ino)

    @classmethod
    def load(cls, path: str | os.PathLike | None, views: dict[str, View]) -> "Callers":
        return cls(cls.read(path, views), path, views)

    @staticmethod
    def read(path: str | os.PathLike | None, views: dict[str, View]) -> dict[str, Caller]:
        if not path:
            return {}
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise AccessConfigError(f"callers file {path}: {err}") from None
        callers = {}
        for index, entry in enumerate(raw.get("callers", [])):
            where = f"{path}: callers[{index}]"
            caller = _caller(entry, views, where)
            digest = entry.get("token_sha256", "")
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise AccessConfigError(f"{where}.token_sha256: 64 lower-case hex characters expected")
            callers[digest] = caller
        return callers

    def authenticate(self, authorization: str | None) -> Caller | None:
        """The caller of an `Authorization: Bearer <token>` header, or None."""
        stamp = self._stamp()
        if stamp != self.stamp:
            self.stamp = stamp
            try:
                self.by_hash = self.read(self.path, self.views or {})
            except AccessConfigError as err:
                log.error("the callers file no longer reads; nobody is let in until it is fixed: %s", err)
                self.by_hash = {}
        # RFC 7235: the scheme is case-insensitive ("bearer" too); tokens are ASCII (token_urlsafe)
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or not token.isascii():
            return None
        return self.by_hash.get(hash_token(token))


def _caller(entry: dict, views: dict[str, View], where: str) -> Caller:
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise AccessConfigError(f"{where}.name: missing")
    audience = entry.get("audience")
    if audience not in views:
        raise AccessConfigError(f"{where}.audience: {audience!r} is not a view of views.toml ({sorted(views)})")
    org, ssn = entry.get("org"), entry.get("ssn")
    if org is not None:
        try:
            validate_org_code(org)
        except ValueError as err:
            raise AccessConfigError(f"{where}.org: {err}") from None
    if ssn is not None:
        try:
            ssn = normalise_ssn(ssn).number
        except ValueError as err:
            raise AccessConfigError(f"{where}.ssn: {err}") from None
    view = views[audience]
    if "any_worker" not in view.may and ssn is None and view.sees_files:
        raise AccessConfigError(f"{where}.ssn: audience {audience} reads one worker's file: give its ssn")
    if ("ingest" in view.may or view.own) and org is None:
        raise AccessConfigError(f"{where}.org: audience {audience} needs the caller's organisation code")
    return Caller(name=name, audience=audience, org=org, ssn=ssn)


def add_caller(path: str | os.PathLike, views: dict[str, View], name: str, audience: str,
               org: str | None = None, ssn: str | None = None) -> str:
    """Append a caller to the callers file (created if missing) and return its new token,
    which is stored nowhere: only its SHA-256."""
    token = secrets.token_urlsafe(32)
    entry = {"name": name, "audience": audience, "org": org, "ssn": ssn, "token_sha256": hash_token(token)}
    caller = _caller({k: v for k, v in entry.items() if v is not None}, views, f"{path}: new caller")
    lines = ["", "[[callers]]"]
    for field, value in (("name", caller.name), ("audience", caller.audience), ("org", caller.org),
                         ("ssn", caller.ssn), ("token_sha256", entry["token_sha256"])):
        if value is not None:
            lines.append(f"{field} = {orjson.dumps(value).decode()}")  # a JSON string is a TOML basic string
    target = Path(path)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    Callers.load(target, views)  # the file still reads
    return token


def describe_caller(caller: Caller) -> str:
    """For logs: never the full SSN."""
    return f"{caller.name} ({caller.audience}{', ' + mask_ssn(caller.ssn) if caller.ssn else ''})"
