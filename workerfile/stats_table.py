"""The figures of `workerfile stats` as tables for a terminal (pure: figures in, text out).

Chinese labels take two columns on a terminal: the padding counts display width
(East Asian wide and full-width characters as 2), so the columns line up.
"""

from __future__ import annotations

import unicodedata
from typing import Sequence


def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def pad(text: str, size: int, right: bool = False) -> str:
    fill = " " * max(size - width(text), 0)
    return fill + text if right else text + fill


def num(n) -> str:
    return "–" if n is None else f"{n:,}"


def pct(x, digits: int = 1) -> str:
    return "–" if x is None else f"{x * 100:.{digits}f}%"


def yuan(n) -> str:
    return "–" if n is None else f"¥{n:,}"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None,
          note: str | None = None) -> str:
    """A titled table; `right[i]` right-aligns column i (numbers)."""
    right = list(right or [i > 0 for i in range(len(headers))])
    sizes = [max([width(h)] + [width(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(pad(c, sizes[i], right[i]) for i, c in enumerate(cells)).rstrip()  # noqa: E731
    rule = "─" * (sum(sizes) + 2 * (len(sizes) - 1))
    out = [title, rule, line(headers), rule]
    out += [line(r) for r in rows] if rows else ["(无 none)"]
    if note:
        out.append(note)
    return "\n".join(out)


def render(data: dict, cells: int = 30) -> str:
    """Every figure of GET /stats as terminal tables (at most `cells` wage cells per scope)."""
    meta = data.get("meta") or {}
    parts: list[str] = []
    head = "产业工人队伍统计监测 Industrial workforce statistics"
    source = (f"source {meta.get('topic', 'worker-files')}"
              + (f", group {meta['group']}" if meta.get("group") else "")
              + (f", updated {meta['updated_at']}" if meta.get("updated_at") else ""))
    if meta.get("definitions") not in (None, meta.get("definitions_current")):
        source += (f"\n! counted with definitions {meta['definitions']}, this version counts with "
                   f"{meta['definitions_current']}: rebuild into a fresh database (docs/statistics.md)")
    parts.append(f"{head}\n{source}")

    c, d, s, t = data["contracts"], data["dispatch"], data["subsidy"], data["training"]
    workers = data["workers"]
    parts.append(table("概况 Overview", ["指标 Figure", "数值 Value", "占比 Share"], [
        ["在册职工 Workers on file", num(workers), ""],
        ["在职 Currently employed", num(data["employed"]), pct(data["employed"] / workers if workers else None)],
        ["在职岗位 Current employments", num(c["current_employments"]), ""],
        ["书面劳动合同 Written contract", num(c["written"]), pct(c["written_share"])],
        ["劳务派遣岗位 Dispatched", num(d["dispatched"]), pct(d["dispatched_share"])],
        ["派遣超10%单位 Employers above cap", num(len(d["above_cap"])), f"of {num(d['employers'])}"],
        ["技能提升补贴 Subsidy grants", num(s["grants"]), f"{num(s['workers'])} workers"],
        ["完成培训学时 Training hours", num(t["total_hours"]), f"{num(t['completions'])} completions"],
    ]))

    parts.append(table("技能等级 Workers by highest skill level", ["等级 Level", "人数 Workers", "占比 Share"],
                       [[f"{r['name_zh']} {r['name_en']}", num(r["workers"]), pct(r["share"])]
                        for r in data["skill_levels"]]))
    parts.append(table("地区 Workers by province", ["省份 Province", "代码 Code", "人数 Workers", "占比 Share"],
                       [[f"{r['name_zh']} {r['name_en']}", r["province"], num(r["workers"]), pct(r["share"])]
                        for r in data["regions"]]))
    parts.append(table("职业大类 Occupation major category (current jobs)", ["大类 Major", "人数 Workers", "占比 Share"],
                       [[f"{r['major']} {r['name_zh']}" if len(r["major"]) == 1 else r["name_zh"], num(r["workers"]),
                         pct(r["share"])] for r in data["occupation_major"]]))
    parts.append(table("劳动合同类型 Contract types (current jobs)", ["类型 Type", "岗位 Jobs", "占比 Share"],
                       [[f"{r['name_zh']} {r['name_en']}", num(r["employments"]), pct(r["share"])]
                        for r in c["by_type"]],
                       note=f"书面合同签订率 written-contract share: {pct(c['written_share'])} "
                            f"({num(c['written'])} of {num(c['current_employments'])})"))
    parts.append(table(f"劳务派遣超过{pct(d['cap'], 0)}的用工单位 Employers above the dispatch cap",
                       ["用工单位 Employer", "用工总量 Workforce", "派遣 Dispatched", "比例 Share"],
                       [[r["employer"], num(r["workforce"]), num(r["dispatched"]), pct(r["share"])]
                        for r in d["above_cap"]]))
    parts.append(table("社会保险 Insured share by scheme (active)", ["险种 Scheme", "参保 Insured", "中断 Suspended",
                                                                   "参保率 Share"],
                       [[f"{r['name_zh']} {r['name_en']}", num(r["insured"]), num(r["suspended"]), pct(r["share"])]
                        for r in data["insurance"]]))
    parts.append(table("培训 Training hours completed per quarter", ["季度 Quarter", "学时 Hours", "结业 Completions"],
                       [[r["quarter"], num(r["hours"]), num(r["completions"])] for r in t["by_quarter"]],
                       note=f"合计 total: {num(t['total_hours'])} hours, {num(t['completions'])} completions"))
    parts.append(table("工匠 Craftsmen against the 2035 targets", ["层级 Level", "人数 Count", "2035目标 Target",
                                                                "进度 Progress"],
                       [[f"{r['name_zh']} {r['name_en']}", num(r["count"]), num(r["target_2035"]),
                         pct(r["progress"], 3)] for r in data["craftsmen"]]))
    parts.append(table("技能提升补贴 Skill-upgrade subsidy grants", ["等级 Level", "笔数 Grants"],
                       [[f"{r['name_zh']} {r['name_en']}", num(r["grants"])] for r in s["by_level"]],
                       note=f"合计 total: {num(s['grants'])} grants to {num(s['workers'])} workers"))
    if "stages" in s:
        parts.append(table("技能提升补贴：申请与发放 Subsidy from grant to payment",
                           ["环节 Stage", "笔数 Grants", "金额 Amount (CNY)"],
                           [[f"{r['name_zh']} {r['name_en']}", num(r["grants"]), yuan(r["amount_cny"])]
                            for r in s["stages"]],
                           note=f"重复申请已驳回 double claims refused: {num(s['double_claims_refused'])}"))
        parts.append(table("技能提升补贴（按状态） Subsidy grants by status", ["状态 Status", "笔数 Grants"],
                           [[f"{r['name_zh']} {r['name_en']}", num(r["grants"])] for r in s["by_status"]]))
        stage_headers = ["资格 Offered", "金额 CNY", "申请 Claimed", "金额 CNY", "发放 Paid", "金额 CNY"]

        def stage_cells(r: dict) -> list[str]:
            return [x for stage in ("offered", "claimed", "paid") for x in (num(r[stage]), yuan(r[stage + "_cny"]))]

        parts.append(table("技能提升补贴（按省份） Subsidy by province (the worker's)",
                           ["省份 Province", "代码 Code", *stage_headers, "重复申请 Double claims"],
                           [[f"{r['name_zh']} {r['name_en']}", r["province"], *stage_cells(r),
                             num(r["double_claims_refused"])] for r in s["by_province"]]))
        parts.append(table("技能提升补贴（按省份和等级） Subsidy by province and level",
                           ["省份 Province", "等级 Level", *stage_headers],
                           [[r["province_name_zh"], f"{r['level_name_zh']} {r['level_name_en']}", *stage_cells(r)]
                            for r in s["by_province_level"]], right=[False, False] + [True] * 6))
    notices = data.get("notices")
    if notices:
        codes = [r["code"] for r in notices["by_code"]]
        short = {"no_written_contract": "无书面合同 No contract", "platform_without_injury_cover": "平台无职业伤害 No cover"}
        code_headers = [short.get(c, c) for c in codes]
        parts.append(table("待处理提醒 Open notices", ["提醒 Notice", "件数 Open"],
                           [[f"{r['name_zh']} {r['name_en']}", num(r["open"])] for r in notices["by_code"]],
                           note=f"合计 total: {num(notices['open'])} open notices of {num(notices['workers'])} workers"))
        parts.append(table("待处理提醒（按省份） Open notices by province (of the job)",
                           ["省份 Province", "代码 Code", "件数 Open", *code_headers],
                           [[f"{r['name_zh']} {r['name_en']}", r["province"], num(r["open"]),
                             *(num(r[c]) for c in codes)] for r in notices["by_province"]]))
        more = len(notices["by_employer"]) - cells
        parts.append(table("待处理提醒（按用工单位） Open notices by employer", ["用工单位 Employer", "件数 Open",
                                                                          *code_headers],
                           [[r["employer"], num(r["open"]), *(num(r[c]) for c in codes)]
                            for r in notices["by_employer"][:cells]],
                           right=[False] + [True] * (1 + len(codes)),
                           note=f"{more} more employers not shown" if more > 0 else None))

    wages = data["wages"]
    labels = {"cell": "职业×等级×省份 occupation × level × province", "occupation_level": "职业×等级 occupation × level",
              "occupation": "职业 occupation", "level": "技能等级 skill level", "all": "全部 all current jobs"}
    for scope, block in wages["scopes"].items():
        dims = block["dimensions"]
        rows = []
        for r in block["published"][:cells]:
            label = []
            for dim in dims:
                if dim == "level":
                    label.append(r["level_name_zh"])
                elif dim == "province":
                    label.append(r["province_name_zh"])
                else:
                    label.append(r[dim])
            rows.append([" · ".join(label) or "全部 all", num(r["workers"]),
                         *(yuan(r[f"p{p}"]) for p in wages["percentiles"])])
        more = len(block["published"]) - cells
        parts.append(table(f"月工资价位 Monthly wage, {labels.get(scope, scope)}",
                           ["单元 Cell", "人数 Workers", *(f"P{p}" for p in wages["percentiles"])], rows,
                           note=(f"{block['suppressed_cells']} cells suppressed (fewer than {wages['min_cell']} "
                                 f"workers)" + (f"; {more} more cells not shown" if more > 0 else ""))))
    return "\n\n".join(parts) + "\n"
