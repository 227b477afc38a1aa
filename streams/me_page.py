"""The worker's own page, `GET /me` (issue #13, item 4): one self-contained HTML page
(`streams/me.html`: inline style and script, no external asset, no web font), Chinese
with English, on which a worker sees their file in plain words.

The page itself is public and holds no data. It asks once for the worker's token (a
caller of audience `worker`, bound to one number: `workerfile token add --audience
worker --ssn SSN`) and keeps it in the browser tab's `sessionStorage` (never
`localStorage`, never a cookie: it is gone when the tab is closed). A link may carry it
in the URL fragment, `/me#token=...`: the fragment never reaches a server, and the page
moves the token to `sessionStorage` and removes it from the address bar and the
history entry at once. Then the page calls the JSON routes with `Authorization: Bearer`:
`GET /me/file` (the file of the number the token is bound to) and `GET
/workers/{ssn}/access-log` (who read it), both recorded in the access log as any read.
The number is shown masked (`110105********002X`), as are number-shaped strings in the
access log's free text.

The names of codes (levels, schemes, statuses, provinces...) are put into the page as a
JSON data block when it is built, from `schemas/reference.py` (through `processors.stats`
for the statistics' own tables) and the page's tables below (audiences, actions, hints), so
the page, the uploads and the statistics use the same words. The Content-Security-Policy allows the
page's own inline script and style by their SHA-256 and connections to this server only.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path

import orjson

from processors import stats as st
from schemas import reference

TEMPLATE = Path(__file__).with_name("me.html")
NAMES_MARK = "/*NAMES*/{}"

AUDIENCES = {
    "operator": ("档案系统运维", "Operators of the file system"),
    "worker": ("本人", "You"),
    "social_insurance": ("社会保险经办机构", "Social-insurance bureau"),
    "training_institution": ("培训机构", "Training institution"),
    "integrator": ("统计研究（去标识化）", "Statistics and research (pseudonymised)"),
    "employer": ("用人单位", "Employer"),
    "evaluation": ("技能评价机构", "Skill-evaluation body"),
}
ACTIONS = {
    "read_file": ("查阅档案", "Read the file"),
    "read_events": ("查阅档案来源", "Read where the file comes from"),
    "read_access_log": ("查阅本记录", "Read this log"),
    "merge": ("合并档案", "Merged two numbers"),
    "erase": ("删除档案", "Erased the file"),
}
# what a worker may do about a grant at each status, in plain words
STATUS_HINTS = {
    "offered": ("可向社保经办机构申请", "You may claim it at a social-insurance bureau"),
    "over_annual_limit": ("本年度已达补贴次数上限", "Beyond this year's limit of grants"),
    "claimed": ("已受理申请，等待审核", "Claimed; waiting for the decision"),
    "approved": ("已批准，等待发放", "Approved; waiting for the payment"),
    "refused": ("申请未获批准", "The claim was refused"),
    "paid": ("补贴已发放", "The subsidy was paid"),
}
NOTICE_HINTS = {
    "no_written_contract": ("用人单位应与您订立书面劳动合同", "Your employer should sign a written contract with you"),
    "platform_without_injury_cover": ("平台用工应参加职业伤害保障", "Platform work should carry occupational-injury cover"),
}


def names() -> dict:
    """Every code's names, {table: {code: [zh, en]}}, as the page reads them."""
    return {
        "levels": st.LEVEL_NAMES, "ladder": list(st.LEVELS), "schemes": st.SCHEMES, "contract_types": st.CONTRACT_TYPES,
        "provinces": st.PROVINCES, "statuses": st.STATUS_NAMES, "status_hints": STATUS_HINTS,
        "notices": st.NOTICE_NAMES, "notice_hints": NOTICE_HINTS,
        "certificate_kinds": reference.CERTIFICATE_KINDS, "training_statuses": reference.TRAINING_STATUSES,
        "insurance_statuses": reference.INSURANCE_STATUSES, "end_reasons": reference.END_REASONS,
        "honors": reference.HONORS, "audiences": AUDIENCES, "actions": ACTIONS, "sexes": reference.SEXES,
    }


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


@functools.lru_cache(maxsize=1)
def page() -> tuple[bytes, str]:
    """The page's bytes and its Content-Security-Policy (built once)."""
    template = TEMPLATE.read_text(encoding="utf-8")
    if NAMES_MARK not in template:
        raise RuntimeError(f"{TEMPLATE}: no {NAMES_MARK} mark for the names")
    # inside a JSON data block, "</" must not appear (it could close the script element)
    text = template.replace(NAMES_MARK, orjson.dumps(names()).decode().replace("</", "<\\/"))
    scripts = re.findall(r"<script>(.*?)</script>", text, flags=re.S)
    styles = re.findall(r"<style>(.*?)</style>", text, flags=re.S)
    csp = ("default-src 'none'; script-src " + " ".join(map(_sha256, scripts)) + "; style-src "
           + " ".join(map(_sha256, styles)) + "; connect-src 'self'; img-src data:; base-uri 'none'; "
           "form-action 'none'; frame-ancestors 'none'")
    return text.encode("utf-8"), csp


HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY"}


def headers() -> dict[str, str]:
    """The response headers of GET /me."""
    return {**HEADERS, "Content-Security-Policy": page()[1]}
