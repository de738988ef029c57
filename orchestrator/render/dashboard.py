"""The history dashboard: one static, offline HTML page (no CDN), like ``asv publish``.

Open regressions first, then a filterable index of every series, then one plot per series:
points with their CIs, segment medians, change points marked (red: regression, green:
improvement, grey: not confirmed; hollow: acknowledged). The data sit in the page as JSON and
each plot is drawn (inline SVG) only when it scrolls into view, so hundreds of series stay
quick (asv #438); ``index.html#filter=TEXT`` opens it filtered. The page records any script
error on ``body[data-errors]``, the plots drawn on ``body[data-drawn]`` and the index rows
shown on ``body[data-shown]``, which the test reads.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from orchestrator.analysis.regressions import History, Regression
from orchestrator.render.history_view import alert_lines, change_record

_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em}small,.muted{color:#666}
#alerts li{margin:.4em 0;white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:12px}
#alerts li.acked{color:#777}table{border-collapse:collapse;font-size:12px;width:100%}
td,th{border-bottom:1px solid #ddd;padding:2px 6px;text-align:left}th{background:#f3f3f3;position:sticky;top:0}
tr.open td{color:#b00}input#filter{width:40em;padding:4px;margin:.5em 0}
section.series{border-top:1px solid #ccc;margin-top:1em;padding-top:.5em}
section.series h3{font-size:13px;margin:0 0 .3em 0;font-weight:600}.plot{height:220px}
svg text{font-size:10px;fill:#444}.hidden{display:none}"""

_JS = r"""
(function () {
  var errors = 0, drawn = 0;
  function mark() { document.body.setAttribute('data-errors', errors);
                    document.body.setAttribute('data-drawn', drawn); }
  window.addEventListener('error', function () { errors++; mark(); });
  var data = JSON.parse(document.getElementById('history-data').textContent);
  var byId = {};
  data.series.forEach(function (s) { byId[s.id] = s; });
  var NS = 'http://www.w3.org/2000/svg';
  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v) { return v === null ? '-' : Number(v).toPrecision(4); }
  function draw(box) {
    var s = byId[box.getAttribute('data-series')];
    var W = box.clientWidth || 900, H = 220, L = 60, R = 10, T = 10, B = 30;
    var svg = el('svg', {width: W, height: H, role: 'img'}, null);
    var ys = [];
    s.points.forEach(function (p) { ys.push(p.v); if (p.lo !== null) { ys.push(p.lo); ys.push(p.hi); } });
    var lo = Math.min.apply(null, ys), hi = Math.max.apply(null, ys);
    if (hi === lo) { hi += Math.abs(hi) * 0.01 + 1e-12; lo -= Math.abs(lo) * 0.01 + 1e-12; }
    var n = s.points.length;
    function x(i) { return L + (n <= 1 ? 0.5 : i / (n - 1)) * (W - L - R); }
    function y(v) { return T + (hi - v) / (hi - lo) * (H - T - B); }
    el('line', {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#999'}, svg);
    el('line', {x1: L, y1: T, x2: L, y2: H - B, stroke: '#999'}, svg);
    [lo, (lo + hi) / 2, hi].forEach(function (v) {
      var t = el('text', {x: L - 4, y: y(v) + 3, 'text-anchor': 'end'}, svg); t.textContent = fmt(v);
    });
    var u = el('text', {x: 2, y: T + 8}, svg); u.textContent = s.unit;
    var bounds = [0].concat(s.changes.map(function (c) { return c.index; })).concat([n]);
    for (var k = 0; k + 1 < bounds.length; k++) {
      var seg = s.points.slice(bounds[k], bounds[k + 1]).map(function (p) { return p.v; }).sort(function (a, b) { return a - b; });
      if (!seg.length) continue;
      var m = seg.length % 2 ? seg[(seg.length - 1) / 2] : (seg[seg.length / 2 - 1] + seg[seg.length / 2]) / 2;
      el('line', {x1: x(bounds[k]), x2: x(bounds[k + 1] - 1), y1: y(m), y2: y(m), stroke: '#7aa6d6', 'stroke-width': 2}, svg);
    }
    s.changes.forEach(function (c) {
      var color = !c.confirmed ? '#aaa' : (c.kind === 'regression' ? '#c00' : (c.kind === 'improvement' ? '#080' : '#a60'));
      var cx = (x(c.index - 1) + x(c.index)) / 2;
      var line = el('line', {x1: cx, x2: cx, y1: T, y2: H - B, stroke: color, 'stroke-dasharray': c.acked ? '2,4' : '6,3',
                             'stroke-width': c.confirmed ? 2 : 1, 'class': 'change'}, svg);
      el('title', {}, line).textContent = c.id + ' ' + c.kind + ' x' + fmt(c.ratio) + (c.confirmed ? '' : ' (not confirmed)');
    });
    s.points.forEach(function (p, i) {
      if (p.lo !== null) el('line', {x1: x(i), x2: x(i), y1: y(p.lo), y2: y(p.hi), stroke: '#555'}, svg);
      var dot = el('circle', {cx: x(i), cy: y(p.v), r: 2.5, fill: '#1f4e8c'}, svg);
      el('title', {}, dot).textContent = p.name + ': ' + fmt(p.v) + ' ' + s.unit +
        (p.lo !== null ? ' [' + fmt(p.lo) + ', ' + fmt(p.hi) + ']' : '') + ' (' + p.runs + ' run(s))';
    });
    var f = el('text', {x: L, y: H - 8}, svg); f.textContent = s.points.length ? s.points[0].name : '';
    var g = el('text', {x: W - R, y: H - 8, 'text-anchor': 'end'}, svg); g.textContent = n ? s.points[n - 1].name : '';
    box.appendChild(svg);
    drawn++; mark();
  }
  function show(box) {
    if (box.hasAttribute('data-done')) return;
    box.setAttribute('data-done', '1'); if (observer) observer.unobserve(box); draw(box);
  }
  var observer = 'IntersectionObserver' in window ? new IntersectionObserver(function (entries) {
    entries.forEach(function (e) { if (e.isIntersecting) show(e.target); });
  }, {rootMargin: '400px'}) : null;
  document.querySelectorAll('.plot').forEach(function (box) { if (observer) observer.observe(box); else show(box); });
  // The plots in view (and 400 px around it, as the observer's margin) are drawn at once: the observer's
  // first callback comes a frame later, which a page printed or captured right after load may not see.
  function showInView() {
    var below = window.innerHeight + 400;
    document.querySelectorAll('.plot').forEach(function (box) {
      var r = box.getBoundingClientRect();
      if (box.offsetParent !== null && r.bottom > -400 && r.top < below) show(box);
    });
  }
  var input = document.getElementById('filter');
  function filter() {
    var q = input.value.toLowerCase(), shown = 0;
    document.querySelectorAll('#index tbody tr').forEach(function (e) {
      var keep = q === '' || e.getAttribute('data-text').indexOf(q) >= 0;
      e.classList.toggle('hidden', !keep); if (keep) shown++;
    });
    document.querySelectorAll('section.series').forEach(function (e) {
      e.classList.toggle('hidden', q !== '' && e.getAttribute('data-text').indexOf(q) < 0);
    });
    document.body.setAttribute('data-shown', shown);
  }
  input.addEventListener('input', function () { filter(); showInView(); });
  var m = /^#filter=(.*)$/.exec(location.hash);  // a shareable filtered view: index.html#filter=stream
  if (m) input.value = decodeURIComponent(m[1]);
  filter();
  showInView();
  mark();
})();
"""


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _series_data(history: History) -> list[dict]:
    """Return what the page's script draws: per series its points, unit and changes."""
    out = []
    for s in history.series:
        out.append({"id": s.series.id, "unit": s.series.key.unit,
                    "points": [{"name": p.name, "v": p.value, "lo": _finite(p.ci_low), "hi": _finite(p.ci_high),
                                "runs": len(p.run_ids)}
                               for p in s.series.points],
                    "changes": [{"id": c.id, "index": c.index, "kind": c.kind, "confirmed": c.confirmed,
                                 "acked": c.ack is not None, "ratio": _finite(c.ratio)} for c in s.changes]})
    return out


def dashboard_html(history: History, regressions: Sequence[Regression], generated: datetime | None = None) -> str:
    """Return the dashboard page: alerts, a filterable index, a lazily drawn plot per series."""
    generated = generated or datetime.now(timezone.utc)
    esc = html.escape
    open_ids = {r.series.series.id for r in regressions}
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'><title>topobench history</title>",
           f"<style>{_CSS}</style></head><body data-errors='0' data-drawn='0'>",
           "<h1>topobench history</h1>",
           (f"<p class='muted'>{len(history.series)} series; {history.family} hypotheses judged together "
           f"(Benjamini-Hochberg, FDR {history.settings.fdr:g}); generated {generated:%Y-%m-%d %H:%M UTC}.</p>"),
           f"<h2>Open regressions ({len(regressions)})</h2><ul id='alerts'>"]
    for r in regressions:
        for c in r.changes:
            text = "\n".join(alert_lines(r.series, c))
            out.append(f"<li class='alert' data-change='{c.id}'><a href='#s-{r.series.series.id}'>{esc(c.id)}</a> "
                       f"{esc(text)}</li>")
    if not regressions:
        out.append("<li class='none'>none</li>")
    out += ["</ul>", "<h2>Series</h2>",
            "<input id='filter' type='search' placeholder='filter: workload, metric, host, id…'>",
            ("<table id='index'><thead><tr><th>series</th><th>workload</th><th>metric</th><th>host</th><th>points</th>"
            "<th>latest</th><th>last change</th></tr></thead><tbody>")]
    for s in history.series:
        k, last = s.series.key, s.last_change
        words = esc(f"{s.series.id} {k.describe()}".lower())
        change = "-" if last is None else esc(f"{last.id} {last.kind} ×{last.ratio:.3f}" if last.ratio else last.id)
        out.append(f"<tr data-text='{words}' class='{'open' if s.series.id in open_ids else ''}'>"
                   f"<td><a href='#s-{s.series.id}'>{s.series.id}</a></td><td>{esc(k.workload)}</td>"
                   f"<td>{esc(k.metric)}</td><td title='{esc(k.host)}'>{esc(k.host.split(', ')[0])} "
                   f"<small>{k.fingerprint[:6]}</small></td><td>{len(s.series.points)}</td>"
                   f"<td>{s.series.points[-1].value:.4g} {esc(k.unit)}</td><td>{change}</td></tr>")
    out.append("</tbody></table><h2>Plots</h2>")
    for s in history.series:
        words = esc(f"{s.series.id} {s.series.key.describe()}".lower())
        out.append(f"<section class='series' id='s-{s.series.id}' data-text='{words}'>"
                   f"<h3>{s.series.id} · {esc(s.series.key.describe())}</h3>"
                   f"<div class='plot' data-series='{s.series.id}'></div></section>")
    payload = json.dumps({"series": _series_data(history),
                          "changes": [change_record(s, c) for s, c in history.changes()]}, default=str)
    safe = payload.replace("</", "<\\/")  # no "</script>" inside the data
    out.append(f"<script type='application/json' id='history-data'>{safe}</script>")
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out)


def write_dashboard(history: History, regressions: Sequence[Regression], folder: Path) -> Path:
    """Write the dashboard to ``folder``/index.html (made when missing); return the page."""
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / "index.html"
    tmp = folder / ".index.html.tmp"
    tmp.write_text(dashboard_html(history, regressions))
    tmp.replace(page)
    return page
