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
