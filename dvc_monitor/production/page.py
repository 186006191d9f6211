"""``GET /``: a small page for people on call, and ``GET /status``, the JSON behind it.

The page is one self-contained HTML document (inline CSS and JavaScript, an inline SVG
chart; nothing is fetched from anywhere but this server: the machine may have no
internet). Its script reads ``/status`` every few seconds and shows the served version
and its stage history (the registry's events for the model), the shadow's comparison
(``serve --shadow``), and the last live windows' measures as a chart against the
``watch:`` rules' thresholds. Everything shown comes from ``/status`` and is written with
``textContent`` (never parsed as HTML): versions and messages come from tags.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

HISTORY_EVENTS = 20  # the newest events shown
HISTORY_TTL = 5.0  # seconds the registry's events are kept before they are read again
REFRESH_MS = 3000  # how often the page reads /status
ABSOLUTE_RULES = ("max", "min")  # rules whose limit is drawn on the chart as a line


class StageHistory:
    """The registry's events for one model, newest first, read at most every
    ``HISTORY_TTL`` seconds (the page asks every few seconds)."""

    def __init__(self, root: str | Path, name: str):
        self.root, self.name = Path(root), name
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._events: list[dict] = []
        self.error: str | None = None

    def events(self) -> list[dict]:
        from dvc_monitor.errors import DvcMonitorError
        from dvc_monitor.registry.state import Registry

        with self._lock:
            if time.monotonic() - self._read_at >= HISTORY_TTL:
                try:
                    events = Registry.load(self.root).history(self.name)
                    self._events = [_event_json(e.to_json()) for e in events][::-1]
                    self.error = None
                except DvcMonitorError as exc:
                    self.error = str(exc)
                self._read_at = time.monotonic()
            return self._events[:HISTORY_EVENTS]


def _event_json(event: dict) -> dict:
    keep = ("event", "version", "stage", "tag", "time", "author", "message")
    out = {k: event.get(k) for k in keep}
    meta = event.get("meta") or {}
    out["automatic"] = bool(meta.get("automatic") or meta.get("auto")) or _automatic(meta)
    return out


def _automatic(meta: dict) -> bool:
    """Written by a server or a watch, not a person: an automatic promotion or rollback, a
    shadow verdict, a retrained candidate."""
    parts = {k: meta.get(k) for k in ("if_better", "rollback", "shadow", "retrain")}
    parts = {k: v for k, v in parts.items() if isinstance(v, dict)}
    return (parts.get("if_better", {}).get("automatic") is True
            or parts.get("rollback", {}).get("trigger") == "watch"
            or "shadow" in parts or "retrain" in parts)


def chart(rules: dict | None, shadow_windows: list[dict] | None,
          live_windows: list[dict] | None) -> dict:
    """The series the page draws: a value per window for each measure of the rules, of the
    served version (``prod``) and of the shadow, and the rules' absolute limits."""
    rule_list = (rules or {}).get("rules", [])
    measures = list(dict.fromkeys(r["measure"] for r in rule_list))
    thresholds = [r for r in rule_list if r["rule"] in ABSOLUTE_RULES]
    relative = [f"{r['measure']} {r['rule']} {r['limit']:g}" for r in rule_list
                if r["rule"] not in ABSOLUTE_RULES]
    series: dict[str, dict[str, list]] = {}
    names: list[str] = []
    if shadow_windows:
        source = "shadow"
        names = [w["window"] for w in shadow_windows]
        for role in ("prod", "shadow"):
            series[role] = {m: [w[role]["measures"].get(m) for w in shadow_windows]
                            for m in measures}
    elif live_windows:
        source = "watch"
        names = [w["window"] for w in live_windows]
        series["prod"] = {m: [(w.get("measures") or {}).get(m) for w in live_windows]
                          for m in measures}
    else:
        source = None
    return {"source": source, "windows": names, "measures": measures, "series": series,
            "thresholds": thresholds, "relative_rules": relative}


def status(service_json: dict, history: list[dict], shadow=None, live=None) -> dict:
    """The document ``GET /status`` answers: ``service_json`` (the served version, its
    readiness) with the stage history, the shadow's summary and the chart."""
    shadow_doc = shadow.to_json(limit=1) if shadow is not None else None
    live_doc = live.to_json() if live is not None else None
    rules = (shadow.rules() if shadow is not None else None) or (
        live_doc["rules"] if live_doc else None)
    shadow_windows = [w.to_json() for w in shadow.windows()] if shadow is not None else None
    live_windows = list(live.recent) if live is not None else None
    return {**service_json, "history": history, "shadow": shadow_doc, "watch": live_doc,
            "rules": rules, "chart": chart(rules, shadow_windows, live_windows)}


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dvc-monitor serve</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 980px;
         padding: 12px 20px; color: #1d2330; background: #fafbfc; }
  h1 { font-size: 20px; margin: 4px 0 12px; } h2 { font-size: 16px; margin: 18px 0 6px; }
  section { background: #fff; border: 1px solid #dde2ea; border-radius: 6px;
            padding: 8px 14px 12px; margin-bottom: 12px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eef0f4;
           vertical-align: top; }
  th { font-weight: 600; color: #4a5263; }
  .pill { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
          background: #e6f4ea; color: #1e6b34; }
  .bad { background: #fde8e8; color: #9b1c1c; }
  .muted { color: #6b7385; } .num { font-variant-numeric: tabular-nums; }
  svg { background: #fff; border: 1px solid #eef0f4; }
  .legend span { margin-right: 14px; }
  .prod { color: #2457c5; } .shadowc { color: #c2410c; } .limit { color: #9b1c1c; }
</style>
</head>
<body>
<h1>dvc-monitor &middot; <span id="model">&hellip;</span> <span id="status" class="pill">&hellip;</span></h1>
<section>
  <h2>Served</h2>
  <p>Version <b id="served-version">&hellip;</b> <span class="muted">id <span id="served-id"></span></span>
     for <code id="ref"></code> &middot; <span id="readiness"></span></p>
  <p class="muted" id="last-reload"></p>
  <h2>Stage history</h2>
  <table><thead><tr><th>time</th><th>event</th><th>version</th><th>stage</th><th>message</th></tr></thead>
  <tbody id="history"></tbody></table>
</section>
<section>
  <h2>Shadow</h2>
  <p id="shadow-none" class="muted">No shadow: serve with --shadow NAME#STAGE to compare a candidate on this traffic.</p>
  <div id="shadow-box" hidden>
    <p>Shadow <b id="shadow-version"></b> for <code id="shadow-ref"></code> &middot;
       verdict: <b id="shadow-verdict"></b></p>
    <table class="num"><thead><tr><th></th><th>served</th><th>shadow</th></tr></thead>
    <tbody id="shadow-table"></tbody></table>
    <p>Alerts agree on <b id="shadow-agreement">&hellip;</b> of the rows of the last window
       <span class="muted">(<span id="shadow-windows"></span> windows; queue <span id="shadow-queue"></span>;
       dropped <span id="shadow-dropped"></span> requests)</span></p>
  </div>
</section>
<section>
  <h2>Live windows</h2>
  <p>Measure <select id="measure"></select>
    <span class="legend"><span class="prod">&#9679; served</span><span class="shadowc">&#9679; shadow</span><span class="limit">- - rule limit</span></span></p>
  <svg id="chart" viewBox="0 0 900 260" width="100%" height="260" role="img" aria-label="live windows"></svg>
  <p class="muted" id="chart-note"></p>
</section>
<p class="muted">Read from <a href="/status">/status</a> every few seconds &middot; <span id="updated"></span></p>
<script>
"use strict";
const REFRESH = __REFRESH__;
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const show = (v) => (v === null || v === undefined || v === "") ? "\\u2014" : String(v);
const put = (id, v) => { $(id).textContent = show(v); };
const num = (v, d) => (v === null || v === undefined) ? null : Number(v).toFixed(d === undefined ? 4 : d);
const pct = (v) => (v === null || v === undefined) ? null : (100 * v).toFixed(1) + " %";
let last = null;

function fill(tbody, rows) {
  tbody.replaceChildren();
  for (const cells of rows) {
    const tr = document.createElement("tr");
    for (const c of cells) { const td = document.createElement("td"); td.textContent = show(c); tr.appendChild(td); }
    tbody.appendChild(tr);
  }
}

function node(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const k in attrs) el.setAttribute(k, String(attrs[k]));
  if (text !== undefined) el.textContent = text;
  return el;
}

function draw() {
  const svg = $("chart"); svg.replaceChildren();
  const c = last && last.chart; const m = $("measure").value;
  if (!c || !c.source || !m) { $("chart-note").textContent = "No live window yet: windows appear as traffic is scored."; return; }
  const n = c.windows.length, W = 900, H = 260, L = 56, R = 12, T = 12, B = 30;
  const lines = [];
  for (const role of ["prod", "shadow"]) if (c.series[role]) lines.push([role, c.series[role][m] || []]);
  const limits = c.thresholds.filter((t) => t.measure === m);
  const vals = lines.flatMap(([, v]) => v).concat(limits.map((t) => t.limit)).filter((v) => v !== null && isFinite(v));
  let lo = Math.min(0, ...vals), hi = Math.max(...vals, 1e-9); if (hi === lo) hi = lo + 1;
  hi += (hi - lo) * 0.08;
  const x = (i) => L + (n <= 1 ? (W - L - R) / 2 : i * (W - L - R) / (n - 1));
  const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  for (let k = 0; k <= 4; k++) {
    const v = lo + (hi - lo) * k / 4;
    svg.appendChild(node("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#eef0f4"}));
    svg.appendChild(node("text", {x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7385"}, v.toPrecision(3)));
  }
  for (const t of limits) {
    svg.appendChild(node("line", {x1: L, x2: W - R, y1: y(t.limit), y2: y(t.limit), stroke: "#9b1c1c", "stroke-dasharray": "6 4", class: "limit"}));
    svg.appendChild(node("text", {x: W - R - 4, y: y(t.limit) - 4, "text-anchor": "end", "font-size": 11, fill: "#9b1c1c"}, t.rule + " " + t.limit));
  }
  const colour = {prod: "#2457c5", shadow: "#c2410c"};
  for (const [role, v] of lines) {
    const pts = v.map((val, i) => [i, val]).filter(([, val]) => val !== null);
    if (pts.length > 1) svg.appendChild(node("polyline", {points: pts.map(([i, val]) => x(i) + "," + y(val)).join(" "), fill: "none", stroke: colour[role], "stroke-width": 2}));
    for (const [i, val] of pts) {
      const dot = node("circle", {cx: x(i), cy: y(val), r: 3.5, fill: colour[role], class: "point " + role});
      dot.appendChild(node("title", {}, c.windows[i] + " " + role + ": " + val));
      svg.appendChild(dot);
    }
  }
  if (n) {
    svg.appendChild(node("text", {x: L, y: H - 8, "font-size": 11, fill: "#6b7385"}, c.windows[0]));
    svg.appendChild(node("text", {x: W - R, y: H - 8, "text-anchor": "end", "font-size": 11, fill: "#6b7385"}, c.windows[n - 1]));
  }
  $("chart-note").textContent = n + " window(s) from " + (c.source === "shadow" ? "the shadow comparison" : "the live watch")
    + (c.relative_rules.length ? "; relative rules not drawn: " + c.relative_rules.join(", ") : "");
}

function render(s) {
  last = s;
  put("model", s.model); put("served-version", s.version); put("served-id", s.id); put("ref", s.ref);
  const st = $("status"); st.textContent = show(s.status); st.className = "pill" + (s.ready ? "" : " bad");
  put("readiness", s.ready ? "the holder of the reference" : ("not the holder: " + show(s.reason)));
  put("last-reload", s.last_reload ? ("last registry check: " + s.last_reload.result + " at " + s.last_reload.time + " \\u2014 " + s.last_reload.message) : "");
  fill($("history"), (s.history || []).map((e) => [e.time, e.event + (e.automatic ? " (automatic)" : ""), e.version, e.stage, e.message]));
  const sh = s.shadow;
  $("shadow-box").hidden = !sh; $("shadow-none").hidden = !!sh;
  if (sh) {
    const w = sh.last_window;
    put("shadow-version", sh.version); put("shadow-ref", sh.ref); put("shadow-verdict", sh.verdict.status + ": " + sh.verdict.summary);
    put("shadow-agreement", w ? pct(w.agreement) : "no window yet");
    put("shadow-windows", sh.verdict.windows); put("shadow-queue", sh.queue.waiting + "/" + sh.queue.capacity); put("shadow-dropped", sh.dropped);
    const rows = [["version", w ? w.prod_version : s.version, sh.version]];
    if (w) {
      rows.push(["alert rate", pct(w.alert_rate.prod), pct(w.alert_rate.shadow)]);
      for (const k of Object.keys(w.scores.prod)) rows.push(["score " + k, num(w.scores.prod[k]), num(w.scores.shadow[k])]);
      rows.push(["rules", w.prod.status, w.shadow.status]);
      rows.push(["breaches", w.prod.breaches.join("; "), w.shadow.breaches.join("; ")]);
    }
    fill($("shadow-table"), rows);
  }
  const sel = $("measure"); const ms = (s.chart && s.chart.measures) || [];
  if (sel.options.length !== ms.length || ms.some((m, i) => sel.options[i].value !== m)) {
    const keep = sel.value; sel.replaceChildren();
    for (const m of ms) { const o = document.createElement("option"); o.value = m; o.textContent = m; sel.appendChild(o); }
    if (ms.includes(keep)) sel.value = keep;
  }
  draw();
  put("updated", "updated " + new Date().toLocaleTimeString());
}

async function refresh() {
  try {
    const r = await fetch("/status", {cache: "no-store"});
    render(await r.json());
  } catch (e) {
    put("updated", "could not read /status: " + e);
  }
}
$("measure").addEventListener("change", draw);
refresh();
setInterval(refresh, REFRESH);
</script>
</body>
</html>
""".replace("__REFRESH__", str(REFRESH_MS))
