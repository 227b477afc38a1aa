"""Audience views of a worker's file (issue #6): which parts of the file each audience
may see, declared once in `deploy/views.toml`, and the keyed pseudonym of the
integrators' view. Pure: the config is given as a dict, the key as bytes.

A pseudonym is HMAC-SHA256(key, ssn) in hex — never a plain hash: the space of
citizen ID numbers is small enough to hash every one of them, so without the secret
key a plain digest would be reversed by a table.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from dataclasses import dataclass

from schemas.outputs import WorkerFile

SECTIONS = frozenset(WorkerFile.model_fields)
DERIVED = frozenset({"pseudonym", "birth_year"})
PERMISSIONS = frozenset({"ingest", "provenance", "access_log", "any_worker"})
KEYS = frozenset({"ssn", "pseudonym"})
# Sections that can be cut to the reader's own records, and the event types whose
# source owns them.
OWN_SECTIONS = {"trainings": "training."}
MIN_KEY_BYTES = 32


class ViewConfigError(ValueError):
    """The views config is wrong; the message names the view and the field."""


@dataclass(frozen=True)
class View:
    """What one audience sees of a file, and may do."""

    name: str
    fields: tuple[str, ...]  # sections, derived fields, or ("*",)
    omit: tuple[str, ...] = ()
    own: tuple[str, ...] = ()
    key: str = "ssn"
    topic: str | None = None
    may: frozenset[str] = frozenset()
    description: str = ""

    @property
    def sees_files(self) -> bool:
        return bool(self.fields)

    @property
    def per_org(self) -> bool:
        """Published once per reader organisation (its topic has "{org}")."""
        return bool(self.topic and "{org}" in self.topic)

    def topic_for(self, org: str | None) -> str:
        if self.topic is None:
            raise ValueError(f"view {self.name} is not published on a topic")
        return self.topic.replace("{org}", org or "") if self.per_org else self.topic

    def shows(self, sections) -> bool:
        """Whether a change of these file sections changes this view."""
        if "*" in self.fields:
            return True
        return any(s in self.fields or (s == "ssn" and "pseudonym" in self.fields) for s in sections)


def views_from_config(raw: dict) -> dict[str, View]:
    """Check and build the views of a parsed views.toml (`{"views": {name: {...}}}`)."""
    tables = raw.get("views")
    if not isinstance(tables, dict) or not tables:
        raise ViewConfigError("views: no [views.NAME] tables")
    views = {}
    for name, table in tables.items():
        where = f"views.{name}"
        unknown = set(table) - {"description", "fields", "omit", "own", "key", "topic", "may"}
        if unknown:
            raise ViewConfigError(f"{where}: unknown setting(s) {sorted(unknown)}")
        fields = tuple(table.get("fields", ()))
        for f in fields:
            if f != "*" and f not in SECTIONS and f not in DERIVED:
                raise ViewConfigError(f"{where}.fields: {f!r} is not a section of the file")
        for path in table.get("omit", ()):
            if path.split(".")[0] not in fields:
                raise ViewConfigError(f"{where}.omit: {path!r} is not in a shown section")
        own = tuple(table.get("own", ()))
        for section in own:
            if section not in OWN_SECTIONS:
                raise ViewConfigError(f"{where}.own: {section!r} cannot be cut by organisation "
                                      f"(possible: {sorted(OWN_SECTIONS)})")
            if section not in fields:
                raise ViewConfigError(f"{where}.own: {section!r} is not a shown section")
        key = table.get("key", "ssn")
        if key not in KEYS:
            raise ViewConfigError(f"{where}.key: must be one of {sorted(KEYS)}, not {key!r}")
        topic = table.get("topic")
        if topic is not None and ("{org}" in topic) != bool(own):
            raise ViewConfigError(f"{where}.topic: \"{{org}}\" belongs in the topic of a view with `own` sections, only")
        if "pseudonym" in fields and key != "pseudonym" and topic is not None:
            raise ViewConfigError(f"{where}.key: a pseudonymised view is keyed by its pseudonym")
        if key == "pseudonym" and ("*" in fields or "ssn" in fields or "aliases" in fields):
            raise ViewConfigError(f"{where}.fields: a pseudonymised view cannot show the ssn or its aliases")
        may = frozenset(table.get("may", ()))
        if may - PERMISSIONS:
            raise ViewConfigError(f"{where}.may: unknown permission(s) {sorted(may - PERMISSIONS)}")
        views[name] = View(name=name, fields=fields, omit=tuple(table.get("omit", ())), own=own, key=key,
                           topic=topic, may=may, description=table.get("description", ""))
    return views


def check_pseudonym_key(key: bytes) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise ViewConfigError(f"pseudonym key: at least {MIN_KEY_BYTES} bytes of secret, got {len(key)}")
    return key


def pseudonym(ssn: str, key: bytes) -> str:
    """The integrators' key for a worker: HMAC-SHA256 of the normalised SSN, hex."""
    return hmac.new(key, ssn.encode("ascii"), hashlib.sha256).hexdigest()


def _omit(value, path: list[str]) -> None:
    """Remove `path` from `value` (in place); lists apply the rest of the path to every item."""
    if isinstance(value, list):
        for item in value:
            _omit(item, path)
    elif isinstance(value, dict) and path:
        if len(path) == 1:
            value.pop(path[0], None)
        elif path[0] in value:
            _omit(value[path[0]], path[1:])


def view_of(file: dict, view: View, org: str | None = None, key: bytes | None = None) -> dict | None:
    """What `view` shows of a derived file, for a reader of organisation `org`; None when
    the view is scoped to the reader's own records and it has none. A new dict whose
    sections are `file`'s own objects, except those an `omit` path changes (copied
    first): read it or encode it, do not change it."""
    if not view.fields:
        return None
    copied = {path.split(".")[0] for path in view.omit}  # the sections `omit` changes

    def section(name: str):
        return copy.deepcopy(file[name]) if name in copied else file[name]

    if "*" in view.fields:
        out = {name: section(name) for name in file}
    else:
        out = {}
        for name in view.fields:
            if name == "pseudonym":
                if key is None:
                    raise ViewConfigError(f"views.{view.name}: a pseudonym needs the pseudonym key")
                out[name] = pseudonym(file["ssn"], key)
            elif name == "birth_year":
                out[name] = int(str(file["birth_date"])[:4])
            elif name in view.own:
                out[name] = [copy.deepcopy(item) if name in copied else item
                             for item in file[name] if item.get("source") == org]
            else:
                out[name] = section(name)
        if view.own and not any(out[name] for name in view.own):
            return None
    for path in view.omit:
        _omit(out, path.split("."))
    return out


def view_key(ssn: str, view: View, key: bytes | None) -> bytes:
    """The record key of a worker on the view's topic."""
    if view.key == "pseudonym":
        if key is None:
            raise ViewConfigError(f"views.{view.name}: keyed by pseudonym, needs the pseudonym key")
        return pseudonym(ssn, key).encode("ascii")
    return ssn.encode("ascii")


def reader_orgs(records, view: View) -> set[str]:
    """The organisations that ever sent an event of the view's `own` sections: the
    readers of a per-organisation view (`records`: the state's records by event_id).
    Those whose part is gone get a tombstone."""
    prefixes = tuple(OWN_SECTIONS[s] for s in view.own)
    return {r.source for r in records.values() if r.type.startswith(prefixes)}


def view_records(ssn: str, file: dict | None, changed, records, views: dict[str, View],
                 key: bytes | None) -> list[tuple[str, bytes, dict | None]]:
    """(topic, record key, view or None for a tombstone) of every published view that
    the change of sections `changed` touches; `file` None: the file is gone (all
    tombstones)."""
    out = []
    for view in views.values():
        if view.topic is None or not view.fields or (file is not None and not view.shows(changed)):
            continue
        record_key = view_key(ssn, view, key)
        if view.per_org:
            for org in sorted(reader_orgs(records, view)):
                value = view_of(file, view, org, key) if file is not None else None
                out.append((view.topic_for(org), record_key, value))
        else:
            out.append((view.topic, record_key, view_of(file, view, None, key) if file is not None else None))
    return out
