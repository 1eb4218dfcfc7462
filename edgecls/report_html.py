"""``edgecls report --html``: one self-contained page (no server, nothing fetched).

The plots are embedded as base64 PNGs; the measurements travel as one JSON block that a few lines
of inline JavaScript turn into sortable tables and one card per artifact (parity, accuracy,
per-class accuracy change, latency percentiles per thread count, memory). Rendering from the data
keeps the page and the report's numbers one source.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

_ROW_FIELDS = ("model", "device", "runtime", "format", "precision", "threads", "batch", "p50_ms", "p90_ms", "p99_ms",
               "mean_ms", "throughput_ips", "peak_rss_mb", "size_mb", "macs_m", "parity", "accuracy", "top1_drop",
               "agreement", "weights")

_SCRIPT = r"""
const D = JSON.parse(document.getElementById('report-data').textContent);
const esc = s => String(s).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'})[c]);
const fmt = (v, d) => v === null || v === undefined ? '-' : (typeof v === 'number' ? v.toFixed(d) : esc(v));
const pct = v => v === null || v === undefined ? '-' : (100 * v).toFixed(1);
const COLS = [['model', 'model'], ['runtime', 'runtime'], ['precision', 'precision'], ['threads', 'threads'],
  ['p50_ms', 'p50 ms', 2], ['p90_ms', 'p90 ms', 2], ['p99_ms', 'p99 ms', 2], ['throughput_ips', 'img/s', 1],
  ['peak_rss_mb', 'RSS MB', 1], ['size_mb', 'size MB', 2], ['parity', 'parity'], ['accuracy', 'top-1 %', 'pct'],
  ['top1_drop', 'drop (points)', 'pct'], ['agreement', 'agreement %', 'pct']];
function cell(row, c) { return c[2] === 'pct' ? pct(row[c[0]]) : fmt(row[c[0]], c[2]); }
function table(el, rows) {
  const head = '<tr>' + COLS.map((c, i) => `<th data-col="${i}">${c[1]}</th>`).join('') + '</tr>';
  el.innerHTML = '<thead>' + head + '</thead><tbody>' + rows.map(r => `<tr data-artifact="${esc(r.artifact)}">` +
    COLS.map(c => `<td>${cell(r, c)}</td>`).join('') + '</tr>').join('') + '</tbody>';
  el.querySelectorAll('th').forEach(th => th.onclick = () => {
    const c = COLS[th.dataset.col], up = th.dataset.dir !== 'up';
    th.dataset.dir = up ? 'up' : 'down';
    const key = r => r[c[0]] === null || r[c[0]] === undefined ? (up ? Infinity : -Infinity) : r[c[0]];
    table(el, rows.slice().sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1)));
  });
}
table(document.getElementById('rows'), D.rows);
document.getElementById('cards').innerHTML = D.artifacts.map(a => {
  const lat = a.rows.map(r => `<tr><td>${fmt(r.threads)}</td><td>${fmt(r.p50_ms, 2)}</td><td>${fmt(r.p90_ms, 2)}</td>` +
    `<td>${fmt(r.p99_ms, 2)}</td><td>${fmt(r.peak_rss_mb, 1)}</td></tr>`).join('');
  const cls = (a.per_class || []).map(c => `<tr><td>${esc(c.class)}</td><td>${pct(c.reference_accuracy)}</td>` +
    `<td>${pct(c.accuracy)}</td><td>${(100 * c.change).toFixed(1)}</td></tr>`).join('');
  return `<div class="card" data-artifact="${esc(a.artifact)}"><h3>${esc(a.title)}</h3>` +
    `<p>parity: ${fmt(a.parity)} &middot; size ${fmt(a.size_mb, 2)} MB &middot; weights ${fmt(a.weights)}</p>` +
    `<p>top-1 ${pct(a.accuracy)} % &middot; change ${a.top1_drop === null || a.top1_drop === undefined ? '-' :
      (-100 * a.top1_drop).toFixed(1)} points &middot; agreement ${pct(a.agreement)} %</p>` +
    `<table><tr><th>threads</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>RSS MB</th></tr>${lat}</table>` +
    (cls ? `<details><summary>per-class accuracy change</summary><table><tr><th>class</th><th>reference %</th>` +
      `<th>artifact %</th><th>change</th></tr>${cls}</table></details>` : '') + '</div>';
}).join('');
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f0f0f0; cursor: pointer; }
td:first-child, th:first-child { text-align: left; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; }
.card { border: 1px solid #bbb; border-radius: 6px; padding: 0.6em 1em; width: 30em; }
.card h3 { margin: 0.2em 0; font-size: 1em; }
img { max-width: 100%; border: 1px solid #eee; }
"""


def _artifact_id(row: dict) -> str:
    return f"{row['model']}|{row['runtime']}|{row['precision']}|{Path(str(row.get('_file') or 'torch')).name}"


def _clean(value):
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def page_data(rows: list[dict]) -> dict:
    """The JSON the page renders: every row, and the rows grouped per artifact for the cards."""
    table_rows, artifacts = [], {}
    for row in rows:
        item = {k: _clean(row.get(k)) for k in _ROW_FIELDS}
        item["artifact"] = _artifact_id(row)
        table_rows.append(item)
        card = artifacts.setdefault(item["artifact"], {
            "artifact": item["artifact"], "title": f"{row['model']}: {row['runtime']} {row['precision']}"
            + (f" ({Path(str(row['_file'])).name})" if row.get("_file") else " (PyTorch eager)"),
            "parity": row.get("parity"), "size_mb": row.get("size_mb"), "weights": row.get("weights"),
            "accuracy": row.get("accuracy"), "top1_drop": row.get("top1_drop"), "agreement": row.get("agreement"),
            "per_class": row.get("per_class_change"), "rows": []})
        card["rows"].append({k: item[k] for k in ("threads", "p50_ms", "p90_ms", "p99_ms", "peak_rss_mb")})
    return {"rows": table_rows, "artifacts": list(artifacts.values())}


def _recommendations(picks: list[dict], budget_picks: list[dict]) -> str:
    items = []
    for pick in budget_picks:
        row = pick["row"]
        where = f"{pick['model']} on {pick['device']}, {pick['threads'] or 'default'} thread(s)"
        text = (f"<b>{row['runtime']} {row['precision']}</b> ({row['p50_ms']:.2f} ms, top-1 {100 * row['accuracy']:.1f} %)"
                if row else "no evaluated artifact within the budget")
        items.append(f"<li>{html.escape(where)} within {100 * pick['max_drop']:.1f} points of top-1: {text}</li>")
    for pick in picks:
        row = pick["row"]
        if row is None:
            continue
        where = f"{pick['model']} on {pick['device']}, {pick['threads'] or 'default'} thread(s)"
        items.append(f"<li>{html.escape(where)}, fastest that passed parity: <b>{row['runtime']} {row['precision']}</b> "
                     f"({row['p50_ms']:.2f} ms)</li>")
    return "<ul>" + "".join(items) + "</ul>"


def write_html(results: list[dict], rows: list[dict], picks: list[dict], budget_picks: list[dict],
               evaluations: list[dict], plots: list[Path], path: Path) -> Path:
    """report.html beside the other report files; returns its path."""
    devices = sorted({r["device"] for r in rows})
    sources = [d.get("_source", "") for d in results] + [e.get("_source", "") for e in evaluations]
    images = "".join(
        f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        f"<figcaption>{html.escape(p.stem.replace('_', ' '))}</figcaption></figure>" for p in plots if Path(p).is_file())
    data = json.dumps(page_data(rows)).replace("</", "<\\/")  # a "</script>" inside the data must not end the block
    evaluated = "".join(f"<li>{html.escape(e['data']['path'])}: {e['data']['evaluated']} images, "
                        f"{len(e['data']['classes'])} classes</li>" for e in evaluations)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>edgecls report</title><style>{_STYLE}</style></head>
<body>
<h1>edgecls report</h1>
<p>devices: {html.escape(', '.join(devices))} &middot; sources: {html.escape(', '.join(sources))}</p>
{f'<h2>Evaluation data</h2><ul>{evaluated}</ul>' if evaluated else ''}
<h2>Recommendations</h2>
{_recommendations(picks, budget_picks)}
<h2>All measurements</h2>
<p>click a column header to sort</p>
<noscript>the tables and cards are drawn by the page's script: enable JavaScript</noscript>
<table id="rows"></table>
<h2>Plots</h2>
{images}
<h2>Artifacts</h2>
<div class="cards" id="cards"></div>
<script type="application/json" id="report-data">{data}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
    Path(path).write_text(page)
    return Path(path)


__all__ = ["page_data", "write_html"]
