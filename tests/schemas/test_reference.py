"""The reference data (schemas/reference.py): one label per code of the catalogue, and the
uploads and the statistics read the same labels (they drifted apart once: task_based)."""

from __future__ import annotations

import pytest

from processors import stats
from schemas import reference
from schemas.events import SKILL_LADDER, ContractType, Scheme
from schemas.outputs import GrantStatus, NoticeCode
from processors.uploads import ENUM_LABELS

CATALOGUE = [
    (reference.SKILL_LEVEL_NAMES, SKILL_LADDER),
    (reference.CONTRACT_TYPES, ContractType.__args__),
    (reference.SCHEMES, Scheme.__args__),
    (reference.STATUS_NAMES, GrantStatus.__args__),
    (reference.NOTICE_NAMES, NoticeCode.__args__),
]


@pytest.mark.parametrize("names, codes", CATALOGUE)
def test_every_code_has_one_chinese_and_one_english_label(names, codes):
    assert tuple(names) == tuple(codes)
    for zh, en in names.values():
        assert zh and en and zh != en
    assert len({zh for zh, _ in names.values()}) == len(names)  # no two codes share a label


@pytest.mark.parametrize("field, names", [("level", reference.SKILL_LEVEL_NAMES),
                                          ("contract_type", reference.CONTRACT_TYPES),
                                          ("scheme", reference.SCHEMES)])
def test_uploads_accept_the_reference_label_of_every_code(field, names):
    accepted = ENUM_LABELS[("*", field)]
    assert {zh: code for code, (zh, _) in names.items()}.items() <= accepted.items()


def test_the_statistics_show_the_reference_labels():
    assert stats.CONTRACT_TYPES is reference.CONTRACT_TYPES and stats.SCHEMES is reference.SCHEMES
    assert stats.LEVELS == SKILL_LADDER
    assert {k: v for k, v in stats.LEVEL_NAMES.items() if k in SKILL_LADDER} == reference.SKILL_LEVEL_NAMES
    assert stats.CONTRACT_TYPES["task_based"][0] == "以完成一定工作任务为期限"  # the labour contract law's words


@pytest.mark.parametrize("key, names", [(("*", "kind"), reference.CERTIFICATE_KINDS),
                                        (("employment.ended", "reason"), reference.END_REASONS),
                                        (("*", "title"), reference.HONORS)])
def test_uploads_accept_the_label_the_workers_page_shows(key, names):
    """The worker's page names a certificate kind, an end reason, an honour with the
    reference label: a CSV that writes what the page shows is read (they drifted once:
    the page said 大国工匠, the uploads knew only 全国工匠)."""
    accepted = ENUM_LABELS[key]
    assert {zh: code for code, (zh, _) in names.items()}.items() <= accepted.items()
    from streams import me_page
    page = me_page.names()
    assert any(table is names for table in page.values())


def test_the_csv_layout_doc_lists_exactly_the_labels_the_uploads_accept():
    """docs/csv-layouts.md, "Chinese labels of enumerated values": every label of each column,
    and no other, the reference label of each code among them where there is one."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "csv-layouts.md").read_text(encoding="utf-8")
    section = doc.split("### Chinese labels of enumerated values", 1)[1].split("\n## ", 1)[0]
    columns = {"`level`": ("*", "level"), "`kind`": ("*", "kind"), "`scheme`": ("*", "scheme"),
               "`contract_type`": ("*", "contract_type"), "`reason` of `employment.ended`": ("employment.ended", "reason"),
               "`title`": ("*", "title"), "`decision` of `service.decided`": ("service.decided", "decision")}
    references = {("*", "level"): reference.SKILL_LEVEL_NAMES, ("*", "kind"): reference.CERTIFICATE_KINDS,
              ("*", "scheme"): reference.SCHEMES, ("*", "contract_type"): reference.CONTRACT_TYPES,
              ("employment.ended", "reason"): reference.END_REASONS, ("*", "title"): reference.HONORS}
    seen = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != 2 or cells[0] not in columns:
            continue
        key = columns[cells[0]]
        seen.add(key)
        listed = {}
        for labels, code in re.findall(r"([^,`]+?) `([a-z_]+)`", cells[1]):
            spellings = labels.strip().split("/")
            listed.update({zh: code for zh in spellings})
            if key in references:
                assert references[key][code][0] in spellings, (key, code)
        assert listed == ENUM_LABELS[key], key
    assert seen == set(ENUM_LABELS) == set(columns.values())
