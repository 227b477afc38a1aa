/* The workforce dashboard: fetches /stats and draws every chart as inline SVG (no chart
   library, nothing loaded from outside the server, works without internet access).
   Every drawn figure carries data-key / data-value attributes inside an element with
   data-chart, so that a test can read the numbers back from the DOM. */
(function () {
  "use strict";

  var SVGNS = "http://www.w3.org/2000/svg";
  var REFRESH_MS = 30000;
  var LEVEL_COLORS = ["#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b", "#041f45"];

  // --- small helpers ---------------------------------------------------------------------
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVGNS, tag);
    for (var k in attrs || {}) { if (attrs[k] !== undefined && attrs[k] !== null) node.setAttribute(k, attrs[k]); }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function html(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) { if (attrs[k] !== undefined && attrs[k] !== null) node.setAttribute(k, attrs[k]); }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function add(parent) { for (var i = 1; i < arguments.length; i++) parent.appendChild(arguments[i]); return arguments[1]; }
  function fmt(n) {
    if (n === null || n === undefined) return "–";
    var s = String(Math.round(n)), out = "";
    var neg = s.charAt(0) === "-"; if (neg) s = s.slice(1);
    while (s.length > 3) { out = "," + s.slice(-3) + out; s = s.slice(0, -3); }
    return (neg ? "-" : "") + s + out;
  }
  function pct(x, digits) {
    if (x === null || x === undefined) return "–";
    return (x * 100).toFixed(digits === undefined ? 1 : digits) + "%";
  }
  function yuan(n) { return "¥" + fmt(n); }
  /* A round axis maximum at or above v, and its tick step (steps of 1, 2, 5 x 10^k, so
     that ticks of counts are whole numbers). */
  function niceScale(v, ticks) {
    ticks = ticks || 5;
    if (!(v > 0)) return {max: ticks, step: 1};
    var raw = v / ticks, p = Math.pow(10, Math.floor(Math.log10(raw))), steps = [1, 2, 5, 10], step = 10 * p;
    for (var i = 0; i < steps.length; i++) { if (steps[i] * p >= raw) { step = steps[i] * p; break; } }
    if (step < 1) step = 1;
    return {max: Math.ceil(v / step) * step, step: step};
  }
  function niceMax(v) { return niceScale(v).max; }
  function datum(node, key, value) {
    node.setAttribute("class", ((node.getAttribute("class") || "") + " datum").trim());
    node.setAttribute("data-key", key);
    node.setAttribute("data-value", value === null || value === undefined ? "" : String(value));
    return node;
  }
  function chartBox(id, name) {
    var box = document.getElementById(id);
    box.textContent = "";
    box.setAttribute("data-chart", name);
    return box;
  }
  /* The drawing width of a chart: its container's width in CSS pixels, so that text is
     drawn at its real size whatever the card's width. */
  function widthOf(box) { return Math.max(Math.floor(box.clientWidth || 0), 320); }
  function canvas(box, width, height) {
    var root = svg("svg", {viewBox: "0 0 " + width + " " + height, width: width, height: height, role: "img"});
    box.appendChild(root);
    return root;
  }
  /* A label in one or two lines (long English names wrap at the middle space). */
  function label(parent, cls, x, y, text, anchor, wrap) {
    var node = add(parent, svg("text", {"class": cls, x: x, y: y, "text-anchor": anchor || "start"}));
    var words = String(text).split(" ");
    if (!wrap || words.length < 2 || String(text).length <= wrap) { node.textContent = text; return node; }
    var half = Math.ceil(words.length / 2);
    add(node, svg("tspan", {x: x, dy: 0}, words.slice(0, half).join(" ")));
    add(node, svg("tspan", {x: x, dy: "1.15em"}, words.slice(half).join(" ")));
    return node;
  }
  function empty(id, name, text) {
    var box = chartBox(id, name);
    add(box, html("div", {"class": "empty"}, text || "暂无数据 No data yet"));
  }
  function title(node, text) { add(node, svg("title", {}, text)); return node; }

  // --- chart kinds -------------------------------------------------------------------------
  /* Vertical bars: items [{key, zh, en, value, color, tip}] */
  function columns(id, name, items, opts) {
    opts = opts || {};
    var box = chartBox(id, name), W = widthOf(box);
    var H = opts.height || 290, left = 46, right = 8, top = 22, bottom = opts.bottom || 58;
    var root = canvas(box, W, H);
    var scale = niceScale(Math.max.apply(null, items.map(function (d) { return d.value; }).concat([0])), 5);
    var max = scale.max;
    var plotH = H - top - bottom, plotW = W - left - right, slot = plotW / Math.max(items.length, 1);
    var grid = add(root, svg("g", {"class": "grid axis"}));
    for (var v = 0; v <= max + 1e-9; v += scale.step) {
      var y = top + plotH - plotH * v / max;
      add(grid, svg("line", {x1: left, x2: W - right, y1: y, y2: y}));
      add(grid, svg("text", {x: left - 6, y: y + 4, "text-anchor": "end"}, fmt(v)));
    }
    items.forEach(function (d, i) {
      var h = max ? plotH * d.value / max : 0, x = left + i * slot + slot * 0.16, w = slot * 0.68;
      var g = datum(add(root, svg("g", {})), d.key, d.value);
      title(g, d.tip || (d.zh + " " + (d.en || "") + ": " + fmt(d.value)));
      add(g, svg("rect", {x: x, y: top + plotH - h, width: w, height: Math.max(h, d.value ? 1.5 : 0), rx: 3,
                          fill: d.color || "#2f6db5"}));
      add(g, svg("text", {"class": "value", x: x + w / 2, y: top + plotH - h - 6, "text-anchor": "middle"},
                 d.label !== undefined ? d.label : fmt(d.value)));
      add(g, svg("text", {"class": "label", x: x + w / 2, y: top + plotH + 17, "text-anchor": "middle"}, d.zh));
      if (d.en) label(g, "label-en", x + w / 2, top + plotH + 31, d.en, "middle", 10);
    });
    if (opts.unit) add(root, svg("text", {"class": "muted", x: 2, y: 12}, opts.unit));
    return root;
  }

  /* Horizontal bars: items [{key, zh, en, value, label, color}], opts.max (e.g. 1 for shares) */
  function hbars(id, name, items, opts) {
    opts = opts || {};
    var box = chartBox(id, name), W = widthOf(box);
    var row = opts.row || 28, left = opts.left || 170, right = opts.right || 120, top = 6;
    var H = top + row * items.length + 6;
    W = Math.max(W, left + right + 80);
    var root = canvas(box, W, H);
    var max = opts.max || niceMax(Math.max.apply(null, items.map(function (d) { return d.value; }).concat([0])));
    var plotW = W - left - right;
    items.forEach(function (d, i) {
      var y = top + i * row, w = max ? plotW * Math.min(d.value, max) / max : 0;
      var g = datum(add(root, svg("g", {})), d.key, d.value);
      title(g, d.tip || (d.zh + " " + (d.en || "") + ": " + (d.label || fmt(d.value))));
      add(g, svg("text", {"class": "label", x: left - 8, y: y + row / 2 + (d.en ? -1 : 4), "text-anchor": "end"}, d.zh));
      if (d.en) add(g, svg("text", {"class": "label-en", x: left - 8, y: y + row / 2 + 11, "text-anchor": "end"}, d.en));
      add(g, svg("rect", {x: left, y: y + 5, width: plotW, height: row - 10, rx: 3, fill: "#eef2f7"}));
      add(g, svg("rect", {x: left, y: y + 5, width: Math.max(w, d.value ? 2 : 0), height: row - 10, rx: 3,
                          fill: d.color || "#2f6db5"}));
      add(g, svg("text", {"class": "value", x: left + plotW + 8, y: y + row / 2 + 4}, d.label || fmt(d.value)));
    });
    if (opts.cap !== undefined) {
      var cx = left + plotW * opts.cap / max;
      add(root, svg("line", {x1: cx, x2: cx, y1: 0, y2: H, stroke: "#c8553d", "stroke-dasharray": "4 3"}));
    }
    return root;
  }

  /* Wage bands: rows [{key, zh, en, p25, p50, p75, p90, workers}] on one axis */
  function wageBands(id, name, rows, axisMax) {
    if (!rows.length) { empty(id, name, "所有单元格人数不足，已抑制 All cells suppressed (too few workers)"); return; }
    var box = chartBox(id, name), W = widthOf(box);
    var row = 32, left = 190, right = 70, top = 8, bottom = 26;
    var H = top + row * rows.length + bottom;
    W = Math.max(W, left + right + 120);
    var root = canvas(box, W, H);
    var max = axisMax || niceMax(Math.max.apply(null, rows.map(function (d) { return d.p90; })));
    var plotW = W - left - right;
    function X(v) { return left + plotW * v / max; }
    var grid = add(root, svg("g", {"class": "grid axis"}));
    for (var t = 0; t <= 5; t++) {
      var gx = left + plotW * t / 5, gy = top + row * rows.length;
      add(grid, svg("line", {x1: gx, x2: gx, y1: top, y2: gy}));
      add(grid, svg("text", {x: gx, y: gy + 15, "text-anchor": "middle"}, yuan(max * t / 5)));
    }
    rows.forEach(function (d, i) {
      var y = top + i * row, mid = y + row / 2;
      var g = datum(add(root, svg("g", {})), d.key, d.p50);
      g.setAttribute("data-p25", d.p25); g.setAttribute("data-p75", d.p75); g.setAttribute("data-p90", d.p90);
      g.setAttribute("data-workers", d.workers);
      title(g, d.zh + " " + (d.en || "") + " — P25 " + yuan(d.p25) + " · P50 " + yuan(d.p50) + " · P75 " +
            yuan(d.p75) + " · P90 " + yuan(d.p90) + " · " + fmt(d.workers) + " 人 workers");
      add(g, svg("text", {"class": "label", x: left - 8, y: mid + (d.en ? -1 : 4), "text-anchor": "end"}, d.zh));
      if (d.en) add(g, svg("text", {"class": "label-en", x: left - 8, y: mid + 11, "text-anchor": "end"}, d.en));
      add(g, svg("line", {x1: X(d.p75), x2: X(d.p90), y1: mid, y2: mid, stroke: "#2a9d8f", "stroke-width": 2}));
      add(g, svg("line", {x1: X(d.p90), x2: X(d.p90), y1: mid - 6, y2: mid + 6, stroke: "#2a9d8f", "stroke-width": 2}));
      add(g, svg("rect", {x: X(d.p25), y: mid - 8, width: Math.max(X(d.p75) - X(d.p25), 2), height: 16, rx: 3,
                          fill: "#9ec5ea", stroke: "#2f6db5"}));
      add(g, svg("line", {x1: X(d.p50), x2: X(d.p50), y1: mid - 10, y2: mid + 10, stroke: "#1d3557", "stroke-width": 3}));
      add(g, svg("text", {"class": "value", x: X(d.p90) + 8, y: mid + 4}, yuan(d.p50)));
      add(g, svg("text", {"class": "muted", x: W - 2, y: mid + 4, "text-anchor": "end"}, fmt(d.workers) + "人"));
    });
    return root;
  }

  function legendWages(parent) {
    var lg = add(parent, html("div", {"class": "legend"}));
    var a = add(lg, html("span")); add(a, html("i", {style: "background:#9ec5ea;border:1px solid #2f6db5"})); add(a, document.createTextNode("P25–P75"));
    var b = add(lg, html("span")); add(b, html("i", {style: "background:#1d3557;width:3px"})); add(b, document.createTextNode("中位数 Median P50 (数值 value shown)"));
    var c = add(lg, html("span")); add(c, html("i", {style: "background:#2a9d8f;height:2px"})); add(c, document.createTextNode("P75–P90"));
    var d = add(lg, html("span")); add(d, document.createTextNode("右侧为人数 workers on the right"));
  }

  // --- the sections ------------------------------------------------------------------------------
  function renderKpis(data) {
    var box = document.getElementById("kpis");
    box.textContent = "";
    var craftsmen = data.craftsmen.reduce(function (s, c) { return s + c.count; }, 0);
    var tiles = [
      ["workers", "在册职工", "Workers on file", fmt(data.workers), "人", data.workers,
       "在职 employed " + fmt(data.employed) + " (" + pct(data.workers ? data.employed / data.workers : null) + ")"],
      ["written_share", "书面劳动合同签订率", "Written-contract share", pct(data.contracts.written_share), "",
       data.contracts.written_share, fmt(data.contracts.written) + " / " + fmt(data.contracts.current_employments) + " 在职岗位 current jobs"],
      ["craftsmen", "工匠人才", "Craftsmen (all levels)", fmt(craftsmen), "人", craftsmen,
       "2035目标 target " + fmt(data.craftsmen.reduce(function (s, c) { return s + c.target_2035; }, 0))],
      ["dispatch_above_cap", "派遣超10%单位", "Employers above dispatch cap", fmt(data.dispatch.above_cap.length),
       "家", data.dispatch.above_cap.length, "共 of " + fmt(data.dispatch.employers) + " 家用工单位 employers"],
      ["grants", "技能提升补贴", "Subsidy grants issued", fmt(data.subsidy.grants), "笔", data.subsidy.grants,
       fmt(data.subsidy.workers) + " 人 workers"],
      ["training_hours", "完成培训学时", "Training hours completed", fmt(data.training.total_hours), "学时",
       data.training.total_hours, fmt(data.training.completions) + " 次结业 completions"]
    ];
    tiles.forEach(function (t) {
      var tile = datum(add(box, html("div", {"class": "kpi"})), t[0], t[5]);
      var label = add(tile, html("div", {"class": "label"}, t[1]));
      add(label, html("span", {"class": "en"}, t[2]));
      var value = add(tile, html("div", {"class": "value"}, t[3]));
      if (t[4]) add(value, html("small", {}, t[4]));
      add(tile, html("div", {"class": "hint"}, t[6]));
    });
  }

  function renderLevels(data) {
    var items = data.skill_levels.map(function (d, i) {
      return {key: d.level, zh: d.name_zh, en: d.name_en, value: d.workers,
              color: d.level === "none" ? "#b8c0ca" : LEVEL_COLORS[i],
              tip: d.name_zh + " " + d.name_en + ": " + fmt(d.workers) + " 人 (" + pct(d.share) + ")"};
    });
    columns("chart-levels", "skill_levels", items, {unit: "人 workers"});
  }

  function renderRegions(data) {
    if (!data.regions.length) { empty("chart-regions", "regions"); return; }
    hbars("chart-regions", "regions", data.regions.map(function (d) {
      return {key: d.province, zh: d.name_zh, en: d.name_en + " (" + d.province + ")", value: d.workers,
              label: fmt(d.workers) + " 人 · " + pct(d.share), color: d.province === "unknown" ? "#b8c0ca" : "#2f6db5"};
    }), {row: 30, left: 150});
  }

  function renderMajors(data) {
    if (!data.occupation_major.length) { empty("chart-majors", "occupation_major"); return; }
    hbars("chart-majors", "occupation_major", data.occupation_major.map(function (d) {
      return {key: d.major, zh: (d.major.length === 1 ? d.major + " " : "") + d.name_zh, en: d.name_en,
              value: d.workers, label: fmt(d.workers) + " 人 · " + pct(d.share),
              color: d.major === "none" || d.major === "unknown" ? "#b8c0ca" : "#2a9d8f"};
    }), {row: 34, left: 250, right: 110});
  }

  function renderCraftsmen(data) {
    var box = chartBox("chart-craftsmen", "craftsmen");
    var W = widthOf(box), row = 62, H = row * data.craftsmen.length + 4;
    var root = canvas(box, W, H);
    var colors = {national: "#c8553d", provincial: "#d4a017", city: "#2a9d8f"};
    data.craftsmen.forEach(function (c, i) {
      var y = i * row, left = 0, plotW = Math.max(W - 150, 80);
      var g = datum(add(root, svg("g", {})), c.level, c.count);
      g.setAttribute("data-target", c.target_2035);
      title(g, c.name_zh + " " + c.name_en + ": " + fmt(c.count) + " / " + fmt(c.target_2035) + " (" + pct(c.progress, 2) + ")");
      var name = add(g, svg("text", {"class": "label", x: left, y: y + 16}, c.name_zh + "  "));
      add(name, svg("tspan", {"class": "label-en"}, c.name_en));
      add(g, svg("text", {"class": "muted", x: W, y: y + 16, "text-anchor": "end"},
                 "目标 target 2035: " + fmt(c.target_2035)));
      add(g, svg("rect", {x: left, y: y + 24, width: plotW, height: 18, rx: 9, fill: "#eef2f7"}));
      var w = plotW * Math.min(c.progress, 1);
      add(g, svg("rect", {x: left, y: y + 24, width: Math.max(w, c.count ? 4 : 0), height: 18, rx: 9, fill: colors[c.level] || "#2f6db5"}));
      add(g, svg("text", {"class": "value", x: plotW + 10, y: y + 38}, fmt(c.count) + " · " + pct(c.progress, 2)));
      for (var t = 1; t < 4; t++) {
        add(g, svg("line", {x1: left + plotW * t / 4, x2: left + plotW * t / 4, y1: y + 24, y2: y + 42, stroke: "#fff", "stroke-width": 1.5}));
      }
    });
    add(box, html("div", {"class": "legend"}, "进度 = 已获称号人数 / 2035年目标（约2,000名大国工匠、10,000名省级工匠、50,000名市级工匠） · progress = title holders / 2035 target"));
  }

  function wageRow(d, zh, en, key) {
    return {key: key, zh: zh, en: en, p25: d.p25, p50: d.p50, p75: d.p75, p90: d.p90, workers: d.workers};
  }

  function renderWages(data) {
    var w = data.wages, scopes = w.scopes;
    var note = document.getElementById("wage-note");
    note.textContent = "在职岗位月工资的P25/P50/P75/P90（线性插值）。少于 " + w.min_cell +
      " 人的单元格不予公布（小单元格抑制），以免推算个人工资；已抑制单元格：职业×等级×省份 " +
      scopes.cell.suppressed_cells + " 个，职业×等级 " + scopes.occupation_level.suppressed_cells + " 个。 " +
      "Percentiles of the monthly wage of current jobs; cells with fewer than " + w.min_cell +
      " workers are suppressed.";
    var all = scopes.all.published;
    var levelRows = scopes.level.published.map(function (d) { return wageRow(d, d.level_name_zh, d.level_name_en, d.level); });
    var occRows = scopes.occupation.published.map(function (d) { return wageRow(d, d.occupation_code, "", d.occupation_code); });
    if (all.length) {
      levelRows.push(wageRow(all[0], "全部", "All current jobs", "all"));
    }
    var axisMax = niceMax(Math.max.apply(null, [1].concat(levelRows, occRows).map(function (d) { return d.p90 || 0; })));
    wageBands("chart-wages-level", "wages_level", levelRows, axisMax);
    wageBands("chart-wages-occupation", "wages_occupation", occRows, axisMax);
    var legendHost = document.getElementById("chart-wages-level");
    legendWages(legendHost);

    var cells = scopes.cell.published.map(function (d) {
      return {key: d.occupation_code + "|" + d.level + "|" + d.province, zh: d.occupation_code + " · " + d.level_name_zh,
              en: d.province_name_zh + " " + d.province_name_en, p25: d.p25, p50: d.p50, p75: d.p75, p90: d.p90,
              workers: d.workers};
    });
    var pairs = scopes.occupation_level.published.map(function (d) {
      return {key: d.occupation_code + "|" + d.level + "|all", zh: d.occupation_code + " · " + d.level_name_zh,
              en: "全国 National · " + d.level_name_en, p25: d.p25, p50: d.p50, p75: d.p75, p90: d.p90, workers: d.workers};
    });
    var rows = cells.concat(pairs);
    if (!rows.length) {
      empty("chart-wages-cells", "wages_cells", "所有单元格人数不足 " + w.min_cell + " 人，已抑制 — every cell has fewer than " +
            w.min_cell + " workers and is suppressed");
      return;
    }
    wageBands("chart-wages-cells", "wages_cells", rows.slice(0, 40), axisMax);
  }

  function renderInsurance(data) {
    var items = data.insurance.map(function (d) {
      return {key: d.scheme, zh: d.name_zh, en: d.name_en, value: d.share || 0,
              label: pct(d.share) + " · " + fmt(d.insured) + "人", color: "#3c8d5a",
              tip: d.name_zh + " " + d.name_en + ": " + fmt(d.insured) + " 人参保 insured, " + fmt(d.suspended) + " 人中断 suspended"};
    });
    var root = hbars("chart-insurance", "insurance", items, {max: 1, row: 34, left: 180, right: 120});
    root.querySelectorAll(".datum").forEach(function (g, i) { g.setAttribute("data-count", data.insurance[i].insured); });
    add(document.getElementById("chart-insurance"), html("div", {"class": "legend"},
        "参保率 = 该险种状态正常（active）的职工 / 在册职工 " + fmt(data.workers) + " 人 · share = workers with the scheme active / workers on file"));
  }

  function renderTraining(data) {
    var quarters = data.training.by_quarter.slice(-16);
    if (!quarters.length) { empty("chart-training", "training"); return; }
    columns("chart-training", "training", quarters.map(function (q) {
      var parts = q.quarter.split("-");
      return {key: q.quarter, zh: parts[1] || q.quarter, en: parts[1] ? parts[0] : "", value: q.hours, color: "#6a5acd",
              label: fmt(q.hours), tip: q.quarter + ": " + fmt(q.hours) + " 学时 hours, " + fmt(q.completions) + " 次结业 completions"};
    }), {unit: "学时 hours", bottom: 40});
  }

  function renderContracts(data) {
    var c = data.contracts;
    var box = chartBox("chart-contracts", "contracts");
    var split = add(box, html("div", {"class": "split"}));
    var big = datum(add(split, html("div", {})), "written_share", c.written_share);
    add(big, html("div", {"class": "big"}, pct(c.written_share)));
    add(big, html("div", {"class": "hint"}, "签订书面劳动合同 written contract"));
    add(big, html("div", {"class": "hint"}, fmt(c.written) + " / " + fmt(c.current_employments) + " 在职岗位 current jobs"));
    var host = add(split, html("div", {id: "chart-contract-types"}));
    host.id = "chart-contract-types";
    var colors = ["#1d3557", "#2f6db5", "#2a9d8f", "#d4a017", "#c8553d", "#6a5acd"];
    if (!c.by_type.length) { add(host, html("div", {"class": "empty"}, "暂无在职岗位 No current jobs")); return; }
    var W = widthOf(host), H = 30 + 22 * Math.ceil(c.by_type.length / 2) + 6;
    var root = canvas(host, W, H);
    var x = 0;
    c.by_type.forEach(function (t, i) {
      var w = W * (t.share || 0);
      var g = datum(add(root, svg("g", {})), "type:" + t.contract_type, t.employments);
      title(g, t.name_zh + " " + t.name_en + ": " + fmt(t.employments) + " (" + pct(t.share) + ")");
      add(g, svg("rect", {x: x, y: 0, width: Math.max(w - 1, 0), height: 20, fill: colors[i % colors.length]}));
      var lx = (i % 2) * (W / 2), ly = 40 + 22 * Math.floor(i / 2);
      add(g, svg("rect", {x: lx, y: ly - 10, width: 11, height: 11, rx: 2, fill: colors[i % colors.length]}));
      var text = add(g, svg("text", {"class": "label", x: lx + 16, y: ly}, t.name_zh + " " + pct(t.share) + " "));
      add(text, svg("tspan", {"class": "label-en"}, t.name_en));
      x += w;
    });
  }

  function renderDispatch(data) {
    var d = data.dispatch;
    var box = chartBox("chart-dispatch", "dispatch");
    add(box, html("div", {"class": "hint"}, "被派遣劳动者不得超过用工总量的 " + pct(d.cap, 0) + "（《劳务派遣暂行规定》）。 " +
        "全部在职岗位中派遣 " + fmt(d.dispatched) + " 个（" + pct(d.dispatched_share) + "）。 Dispatched workers may be at most " +
        pct(d.cap, 0) + " of an employer's workforce."));
    if (!d.above_cap.length) {
      add(box, html("div", {"class": "empty"}, "✓ 所有用工单位均未超过上限 No employer above the cap"));
      return;
    }
    var table = add(box, html("table", {"class": "list"}));
    var head = add(table, html("tr"));
    ["用工单位 Employer (USCC)", "用工总量 Workforce", "派遣 Dispatched", "派遣比例 Share"].forEach(function (t, i) {
      add(head, html("th", i ? {style: "text-align:right"} : {}, t));
    });
    var max = Math.max(0.5, d.above_cap[0].share);
    d.above_cap.slice(0, 15).forEach(function (e) {
      var tr = datum(add(table, html("tr")), e.employer, e.share);
      tr.setAttribute("data-dispatched", e.dispatched); tr.setAttribute("data-workforce", e.workforce);
      add(tr, html("td", {"class": "code"}, e.employer));
      add(tr, html("td", {"class": "num"}, fmt(e.workforce)));
      add(tr, html("td", {"class": "num"}, fmt(e.dispatched)));
      var cell = add(tr, html("td", {"class": "num"}));
      var s = add(cell, svg("svg", {viewBox: "0 0 170 16", width: 170, height: 16, style: "vertical-align:middle;display:inline-block"}));
      add(s, svg("rect", {x: 0, y: 3, width: 110, height: 10, rx: 2, fill: "#eef2f7"}));
      add(s, svg("rect", {x: 0, y: 3, width: 110 * Math.min(e.share / max, 1), height: 10, rx: 2, fill: "#c8553d"}));
      var cx = 110 * d.cap / max;
      add(s, svg("line", {x1: cx, x2: cx, y1: 0, y2: 16, stroke: "#1d3557", "stroke-dasharray": "2 2"}));
      add(s, svg("text", {"class": "value", x: 168, y: 13, "text-anchor": "end"}, pct(e.share)));
    });
    if (d.above_cap.length > 15) add(box, html("div", {"class": "hint"}, "另有 " + (d.above_cap.length - 15) + " 家 more"));
  }

  function renderSubsidy(data) {
    var s = data.subsidy;
    var box = chartBox("chart-subsidy", "subsidy");
    var split = add(box, html("div", {"class": "split"}));
    var big = datum(add(split, html("div", {})), "grants", s.grants);
    add(big, html("div", {"class": "big"}, fmt(s.grants)));
    add(big, html("div", {"class": "hint"}, "笔补贴资格 grants · " + fmt(s.workers) + " 人 workers"));
    var host = add(split, html("div", {id: "chart-subsidy-levels"}));
    if (!s.by_level.length) { add(host, html("div", {"class": "empty"}, "暂无 None yet")); return; }
    hbars("chart-subsidy-levels", "subsidy_levels", s.by_level.map(function (d) {
      return {key: d.level, zh: d.name_zh, en: d.name_en, value: d.grants, color: "#d4a017",
              label: fmt(d.grants) + " 笔 grants"};
    }), {row: 30, left: 130, right: 120});
  }

  /* A table of rows [{key, cells: [text | {text, en, num}], attrs}] with data-key on each row. */
  function listTable(box, headers, rows, total) {
    var table = add(box, html("table", {"class": "list"}));
    var head = add(table, html("tr"));
    headers.forEach(function (t, i) { add(head, html("th", i ? {style: "text-align:right"} : {}, t)); });
    rows.concat(total ? [total] : []).forEach(function (r, n) {
      var tr = add(table, html("tr", n === rows.length ? {"class": "total"} : {}));
      if (r.key !== undefined) datum(tr, r.key, r.value);
      for (var a in r.attrs || {}) tr.setAttribute(a, r.attrs[a]);
      r.cells.forEach(function (c, i) {
        var cell = typeof c === "object" ? c : {text: c};
        var td = add(tr, html("td", {"class": i ? "num" : (cell.code ? "code" : "")}, cell.text));
        if (cell.en) add(td, html("span", {"class": "en"}, cell.en));
      });
    });
    return table;
  }

  var STAGES = ["offered", "claimed", "paid"];
  function stageAttrs(r) {
    var out = {};
    STAGES.forEach(function (s) { out["data-" + s] = r[s]; out["data-" + s + "-cny"] = r[s + "_cny"]; });
    return out;
  }
  function stageCells(r) {
    var out = [];
    STAGES.forEach(function (s) { out.push(fmt(r[s])); out.push(yuan(r[s + "_cny"])); });
    return out;
  }
  var STAGE_HEADERS = ["资格 Offered", "金额 CNY", "申请 Claimed", "金额 CNY", "发放 Paid", "金额 CNY"];

  function renderSubsidyHandling(data) {
    var s = data.subsidy;
    var colors = {offered: "#d4a017", claimed: "#2f6db5", paid: "#3c8d5a"};
    hbars("chart-subsidy-stages", "subsidy_stages", s.stages.map(function (d) {
      return {key: d.stage, zh: d.name_zh, en: d.name_en, value: d.grants, color: colors[d.stage],
              label: fmt(d.grants) + " 笔 · " + yuan(d.amount_cny),
              tip: d.name_zh + " " + d.name_en + ": " + fmt(d.grants) + " 笔 grants, " + yuan(d.amount_cny)};
    }), {row: 34, left: 110, right: 170});
    document.querySelectorAll("#chart-subsidy-stages .datum").forEach(function (g, i) {
      g.setAttribute("data-amount", s.stages[i].amount_cny);
    });
    var box = chartBox("chart-subsidy-status", "subsidy_status");
    var line = add(box, html("div", {"class": "stat-line"}));
    s.by_status.forEach(function (d) {
      var item = datum(add(line, html("div", {"class": "item"})), d.status, d.grants);
      add(item, html("div", {"class": "big"}, fmt(d.grants)));
      add(item, html("div", {"class": "hint"}, d.name_zh + " " + d.name_en));
    });
    var dbl = datum(add(line, html("div", {"class": "item"})), "double_claims_refused", s.double_claims_refused);
    add(dbl, html("div", {"class": "big"}, fmt(s.double_claims_refused)));
    add(dbl, html("div", {"class": "hint"}, "重复申请已驳回 Double claims refused"));
    add(box, html("div", {"class": "legend"}, "资格 = 档案中的全部补贴资格；申请 = 有有效申请（含已批准、未获批准、已发放）；" +
        "发放 = 已足额发放，金额为实际发放额 · offered = every grant on file; claimed = with a winning claim; " +
        "paid = paid in full (amount actually paid)"));

    var pbox = chartBox("chart-subsidy-provinces", "subsidy_provinces");
    if (!s.by_province.length) { add(pbox, html("div", {"class": "empty"}, "暂无 None yet")); }
    else {
      listTable(pbox, ["省份 Province"].concat(STAGE_HEADERS, ["重复申请 Double claims"]), s.by_province.map(function (r) {
        var attrs = stageAttrs(r); attrs["data-double"] = r.double_claims_refused;
        return {key: r.province, value: r.offered, attrs: attrs,
                cells: [{text: r.name_zh, en: r.name_en}].concat(stageCells(r), [fmt(r.double_claims_refused)])};
      }));
    }
    var cbox = chartBox("chart-subsidy-cells", "subsidy_cells");
    if (!s.by_province_level.length) { add(cbox, html("div", {"class": "empty"}, "暂无 None yet")); return; }
    listTable(cbox, ["省份 · 等级 Province · level"].concat(STAGE_HEADERS), s.by_province_level.map(function (r) {
      return {key: r.province + "|" + r.level, value: r.offered, attrs: stageAttrs(r),
              cells: [{text: r.province_name_zh + " · " + r.level_name_zh, en: r.province_name_en + " · " + r.level_name_en}]
                .concat(stageCells(r))};
    }));
  }

  function renderNotices(data) {
    var n = data.notices;
    var codes = n.by_code.map(function (c) { return c.code; });
    var box = chartBox("chart-notices-codes", "notices_codes");
    var line = add(box, html("div", {"class": "stat-line"}));
    var all = datum(add(line, html("div", {"class": "item"})), "open", n.open);
    add(all, html("div", {"class": "big"}, fmt(n.open)));
    add(all, html("div", {"class": "hint"}, "待处理提醒 open notices · " + fmt(n.workers) + " 人 workers"));
    n.by_code.forEach(function (c) {
      var item = datum(add(line, html("div", {"class": "item"})), c.code, c.open);
      add(item, html("div", {"class": "big"}, fmt(c.open)));
      add(item, html("div", {"class": "hint"}, c.name_zh + " " + c.name_en));
    });
    var headers = n.by_code.map(function (c) { return c.name_zh; });
    function attrs(r) {
      var out = {}; codes.forEach(function (c) { out["data-" + c.replace(/_/g, "-")] = r[c]; }); return out;
    }
    var pbox = chartBox("chart-notices-provinces", "notices_provinces");
    if (!n.by_province.length) { add(pbox, html("div", {"class": "empty"}, "✓ 暂无待处理提醒 No open notices")); }
    else {
      listTable(pbox, ["省份 Province", "件数 Open"].concat(headers), n.by_province.map(function (r) {
        return {key: r.province, value: r.open, attrs: attrs(r),
                cells: [{text: r.name_zh, en: r.name_en}, fmt(r.open)].concat(codes.map(function (c) { return fmt(r[c]); }))};
      }));
    }
    var ebox = chartBox("chart-notices-employers", "notices_employers");
    if (!n.by_employer.length) { add(ebox, html("div", {"class": "empty"}, "✓ 暂无待处理提醒 No open notices")); return; }
    listTable(ebox, ["用工单位 Employer (USCC)", "件数 Open"].concat(headers), n.by_employer.slice(0, 15).map(function (r) {
      return {key: r.employer, value: r.open, attrs: attrs(r),
              cells: [{text: r.employer, code: true}, fmt(r.open)].concat(codes.map(function (c) { return fmt(r[c]); }))};
    }));
    if (n.by_employer.length > 15) add(ebox, html("div", {"class": "hint"}, "另有 " + (n.by_employer.length - 15) + " 家 more"));
  }

  // --- loading ------------------------------------------------------------------------------------
  function render(data) {
    var meta = data.meta || {};
    document.getElementById("meta").textContent =
      "数据来源 Source: " + (meta.topic || "worker-files") + " · 更新于 Updated " +
      (meta.updated_at ? meta.updated_at.replace("T", " ").slice(0, 19) + " UTC" : "–") +
      " · 在册职工 Workers on file: " + fmt(data.workers);
    renderKpis(data);
    renderLevels(data);
    renderRegions(data);
    renderCraftsmen(data);
    renderMajors(data);
    renderWages(data);
    renderInsurance(data);
    renderTraining(data);
    renderContracts(data);
    renderDispatch(data);
    renderSubsidy(data);
    renderSubsidyHandling(data);
    renderNotices(data);
    var error = document.getElementById("error");
    error.hidden = meta.definitions === undefined || meta.definitions === meta.definitions_current;
    error.textContent = error.hidden ? "" : "统计库按旧口径（第 " + meta.definitions + " 版）计算，请重建 — " +
      "this database was counted with definitions " + meta.definitions + " (current " + meta.definitions_current +
      "): rebuild it into a fresh database (docs/statistics.md)";
    document.getElementById("live").className = "live";
    document.getElementById("live-text").textContent = "实时 Live";
    document.body.setAttribute("data-workers", String(data.workers));
    document.body.setAttribute("data-ready", "true");
  }

  function fail(err) {
    var box = document.getElementById("error");
    box.hidden = false;
    box.textContent = "无法获取统计数据 Cannot load /stats: " + err;
    document.getElementById("live").className = "live stale";
    document.getElementById("live-text").textContent = "离线 Stale";
    document.body.setAttribute("data-error", String(err));
  }

  function load() {
    fetch("/stats", {cache: "no-store"})
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(render)
      .catch(fail)
      .then(function () { window.setTimeout(load, REFRESH_MS); });
  }

  load();
})();
