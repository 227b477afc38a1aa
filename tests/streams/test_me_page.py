"""The worker's own page (streams.me_page, GET /me) without a browser: self-contained (no
external address, no web font, nothing but inline script and style, each allowed by its
hash in the Content-Security-Policy), the token kept in sessionStorage only, and a name
in Chinese and English for every code the file can hold. In Chromium against a real
worker: tests/integration/test_me_page_integration.py."""

from __future__ import annotations

import base64
import hashlib
import re
import typing

import orjson

from processors import stats as st
from schemas import events, outputs
from streams import me_page
from streams.access import load_views


def test_the_page_needs_nothing_from_outside_and_its_csp_allows_only_its_own_code():
    body, csp = me_page.page()
    text = body.decode("utf-8")
    assert not re.findall(r"https?://", text) and "@import" not in text and "url(" not in text
    assert not re.findall(r"<(?:link|script|img)[^>]+(?:src|href)=\"(?!data:)", text)  # no file but the page itself
    scripts = re.findall(r"<script>(.*?)</script>", text, flags=re.S)
    styles = re.findall(r"<style>(.*?)</style>", text, flags=re.S)
    assert len(scripts) == 1 and len(styles) == 1
    digest = lambda s: base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()  # noqa: E731
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'" and directives["connect-src"] == "'self'"
    assert directives["script-src"] == f"'sha256-{digest(scripts[0])}'"
    assert directives["style-src"] == f"'sha256-{digest(styles[0])}'"
    assert " style=" not in text  # no inline style attribute (the CSP would refuse it)
    headers = me_page.headers()
    assert headers["Content-Security-Policy"] == csp and headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_the_token_is_kept_in_the_tabs_session_only():
    script = re.findall(r"<script>(.*?)</script>", me_page.page()[0].decode(), flags=re.S)[0]
    assert "sessionStorage" in script
    assert "localStorage" not in script and "cookie" not in script.lower()
    assert 'credentials: "omit"' in script
    assert "history.replaceState" in script  # a token from the fragment leaves the address bar and the history


def test_every_code_has_its_names():
    text = me_page.page()[0].decode()
    block = re.search(r'<script type="application/json" id="names">(.*?)</script>', text, flags=re.S).group(1)
    names = orjson.loads(block)
    assert names == orjson.loads(orjson.dumps(me_page.names()))
    literal = lambda t: set(typing.get_args(t))  # noqa: E731
    expect = {
        "levels": literal(events.SkillLevel), "schemes": literal(events.Scheme),
        "contract_types": literal(events.ContractType), "certificate_kinds": literal(events.CertificateKind),
        "end_reasons": literal(events.EndReason), "honors": literal(events.HonorTitle),
        "statuses": literal(outputs.GrantStatus), "status_hints": literal(outputs.GrantStatus),
        "notices": literal(outputs.NoticeCode), "notice_hints": literal(outputs.NoticeCode),
        "actions": literal(outputs.AccessLogEntry.model_fields["action"].annotation),
        "audiences": set(load_views()), "training_statuses": {"enrolled", "completed", "withdrawn"},
        "insurance_statuses": {"active", "suspended"}, "sexes": {"male", "female"},
    }
    for table, codes in expect.items():
        assert codes <= set(names[table]), (table, codes - set(names[table]))
        assert all(len(pair) == 2 and all(pair) for pair in names[table].values()), table
    assert names["ladder"] == list(st.LEVELS) == list(events.SKILL_LADDER)
