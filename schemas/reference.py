"""Reference data, one place for everything that names the contract's codes: skill levels,
contract types, insurance schemes, provinces, occupation major categories, certificate kinds,
the statuses of a training and of an insurance scheme, why an employment ended, honours, the
statuses of a subsidy and the notices (contract sections 3 and 9), each with its Chinese and
English label.

Read by uploads (`processors/uploads.py`: the Chinese spellings a CSV may use), the statistics
(`processors/stats.py`, and through its JSON the dashboard), the worker's page and the docs.
The codes themselves are the event catalogue's (`schemas/events.py`); a test checks that
every code has exactly one label here (tests/schemas/test_reference.py).
"""

from __future__ import annotations

import typing

from schemas.events import SKILL_LADDER, CertificateKind, ContractType, EndReason, HonorTitle, Scheme
from schemas.outputs import GrantStatus, InsuranceScheme, NoticeCode, Training, WorkerFile

SKILL_LEVEL_NAMES = {  # the eight-level ladder, lowest first (SKILL_LADDER)
    "apprentice": ("学徒工", "Apprentice"),
    "junior": ("初级工", "Junior"),
    "intermediate": ("中级工", "Intermediate"),
    "senior": ("高级工", "Senior"),
    "technician": ("技师", "Technician"),
    "senior_technician": ("高级技师", "Senior technician"),
    "principal_technician": ("特级技师", "Principal technician"),
    "chief_technician": ("首席技师", "Chief technician"),
}


CONTRACT_TYPES = {
    "open_ended": ("无固定期限", "Open-ended"),
    "fixed_term": ("固定期限", "Fixed-term"),
    "task_based": ("以完成一定工作任务为期限", "Task-based"),
    "part_time": ("非全日制", "Part-time"),
    "dispatched": ("劳务派遣", "Dispatched"),
    "platform": ("平台用工", "Platform"),
}

SCHEMES = {
    "pension": ("养老保险", "Pension"),
    "medical": ("医疗保险", "Medical"),
    "unemployment": ("失业保险", "Unemployment"),
    "work_injury": ("工伤保险", "Work injury"),
    "maternity": ("生育保险", "Maternity"),
    "occupational_injury": ("职业伤害保障", "Occupational injury (platform)"),
}

PROVINCES = {
    "11": ("北京", "Beijing"), "12": ("天津", "Tianjin"), "13": ("河北", "Hebei"), "14": ("山西", "Shanxi"),
    "15": ("内蒙古", "Inner Mongolia"), "21": ("辽宁", "Liaoning"), "22": ("吉林", "Jilin"),
    "23": ("黑龙江", "Heilongjiang"), "31": ("上海", "Shanghai"), "32": ("江苏", "Jiangsu"),
    "33": ("浙江", "Zhejiang"), "34": ("安徽", "Anhui"), "35": ("福建", "Fujian"), "36": ("江西", "Jiangxi"),
    "37": ("山东", "Shandong"), "41": ("河南", "Henan"), "42": ("湖北", "Hubei"), "43": ("湖南", "Hunan"),
    "44": ("广东", "Guangdong"), "45": ("广西", "Guangxi"), "46": ("海南", "Hainan"), "50": ("重庆", "Chongqing"),
    "51": ("四川", "Sichuan"), "52": ("贵州", "Guizhou"), "53": ("云南", "Yunnan"), "54": ("西藏", "Xizang"),
    "61": ("陕西", "Shaanxi"), "62": ("甘肃", "Gansu"), "63": ("青海", "Qinghai"), "64": ("宁夏", "Ningxia"),
    "65": ("新疆", "Xinjiang"), "71": ("台湾", "Taiwan"), "81": ("香港", "Hong Kong"), "82": ("澳门", "Macao"),
}
MAJOR_CATEGORIES = {  # 2022 national occupation classification, major categories (大类)
    "1": ("党的机关、国家机关、群众团体和社会组织、企事业单位负责人", "Heads of organisations and enterprises"),
    "2": ("专业技术人员", "Professional and technical personnel"),
    "3": ("办事人员和有关人员", "Clerical and related workers"),
    "4": ("社会生产服务和生活服务人员", "Social production and life services"),
    "5": ("农、林、牧、渔业生产及辅助人员", "Agriculture, forestry, animal husbandry, fishery"),
    "6": ("生产制造及有关人员", "Production, manufacturing and related"),
    "7": ("军人", "Military personnel"),
    "8": ("不便分类的其他从业人员", "Other workers"),
}

CERTIFICATE_KINDS = {
    "vocational_qualification": ("职业资格证书", "Vocational qualification"),
    "skill_level": ("职业技能等级证书", "Skill-level certificate"),
    "special_competency": ("专项职业能力证书", "Special competency"),
}
TRAINING_STATUSES = {
    "enrolled": ("在读", "Enrolled"),
    "completed": ("已结业", "Completed"),
    "withdrawn": ("已退出", "Withdrawn"),
}
INSURANCE_STATUSES = {"active": ("正常缴费", "Active"), "suspended": ("暂停缴费", "Suspended")}
END_REASONS = {  # why an employment ended
    "resigned": ("本人辞职", "Resigned"),
    "dismissed": ("用人单位解除", "Dismissed"),
    "contract_expired": ("合同到期", "Contract expired"),
    "retired": ("退休", "Retired"),
    "other": ("其他", "Other"),
}
HONORS = {
    "national_craftsman": ("大国工匠", "National craftsman"),
    "provincial_craftsman": ("省级工匠", "Provincial craftsman"),
    "city_craftsman": ("市级工匠", "City-level craftsman"),
    "model_worker": ("劳动模范", "Model worker"),
    "competition_award": ("技能竞赛获奖", "Skills competition award"),
}
SEXES = {"male": ("男", "Male"), "female": ("女", "Female")}

STATUS_NAMES = {  # of a subsidy grant, in plain words (contract section 9)
    "offered": ("可申请", "Offered"),
    "over_annual_limit": ("超出年度限额", "Over the annual limit"),
    "claimed": ("已申请", "Claimed"),
    "approved": ("已批准", "Approved"),
    "refused": ("未获批准", "Refused"),
    "paid": ("已发放", "Paid"),
}
NOTICE_CODES: tuple[str, ...] = NoticeCode.__args__
GRANT_STATUSES: tuple[str, ...] = GrantStatus.__args__  # in the order a grant goes
NOTICE_NAMES = {
    "no_written_contract": ("未签订书面劳动合同", "No written contract"),
    "platform_without_injury_cover": ("平台用工未参加职业伤害保障", "Platform work without occupational-injury cover"),
}

# every code of the catalogue has its labels, and nothing else has
assert tuple(SKILL_LEVEL_NAMES) == SKILL_LADDER
assert tuple(CONTRACT_TYPES) == ContractType.__args__
assert tuple(SCHEMES) == Scheme.__args__
assert tuple(STATUS_NAMES) == GRANT_STATUSES
assert tuple(NOTICE_NAMES) == NOTICE_CODES
assert tuple(CERTIFICATE_KINDS) == CertificateKind.__args__
assert tuple(END_REASONS) == EndReason.__args__
assert tuple(HONORS) == HonorTitle.__args__
assert tuple(TRAINING_STATUSES) == typing.get_args(Training.model_fields["status"].annotation)
assert tuple(INSURANCE_STATUSES) == typing.get_args(InsuranceScheme.model_fields["status"].annotation)
assert tuple(SEXES) == typing.get_args(WorkerFile.model_fields["sex"].annotation)
