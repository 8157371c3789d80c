/**
 * The live dashboard: one self-contained HTML page that polls /metrics.json and draws each panel
 * as current value plus a sparkline of the last few minutes. Panels name a metric and how to show it.
 */

export interface DashboardPanel {
  title: string;
  /** Full metric name (with prefix). */
  metric: string;
  /**
   * rate: per-second increase of a counter (summed over labels, or split by `by`);
   * gauge: current value; quantiles: p50/p99 from a histogram; bytes-rate: like rate, shown as bytes/s.
   */
  kind: 'rate' | 'bytes-rate' | 'gauge' | 'bytes' | 'quantiles';
  /** Split the panel's table by this label. */
  by?: string;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function dashboardHtml(title: string, panels: DashboardPanel[]): string {
  // The panel spec travels as JSON inside a script element; "<" is escaped so it cannot end the element.
  const spec = JSON.stringify(panels).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 20px;display:flex;gap:16px;align-items:center}
header h1{font-size:18px;margin:0;font-weight:600}
#status{padding:2px 10px;border-radius:10px;font-size:12px;background:#888}
#status.ok{background:#2e8540}#status.bad{background:#c0392b}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:14px;padding:16px 20px}
.card{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card h2{font-size:13px;margin:0 0 6px;color:#555;font-weight:600;text-transform:uppercase;letter-spacing:.03em}
.value{font-size:26px;font-weight:600;font-variant-numeric:tabular-nums}
svg{width:100%;height:44px;display:block;margin-top:4px}
table{width:100%;border-collapse:collapse;font-size:12px;margin-top:6px;font-variant-numeric:tabular-nums}
td{padding:1px 4px;border-top:1px solid #eee}td:last-child{text-align:right}
#info{padding:0 20px 16px;font-size:12px;color:#555}#info code{background:#fff;padding:1px 4px;border-radius:3px}
</style></head>
<body><header><h1>${escapeHtml(title)}</h1><span id="status">connecting</span><span id="checks"></span></header>
<main id="panels"></main><div id="info"></div>
<script id="spec" type="application/json">${spec}</script>
<script>
"use strict";
const panels = JSON.parse(document.getElementById('spec').textContent);
const HISTORY = 150;
const history = panels.map(() => []);
let previous = null;
const fmtNum = (v) => !isFinite(v) ? '-' : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
const fmtBytes = (v) => { const u = ['B','KiB','MiB','GiB','TiB']; let i = 0; while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; } return fmtNum(v) + ' ' + u[i]; };
const fmtSec = (v) => !isFinite(v) ? '-' : v < 1 ? (v * 1000).toFixed(1) + ' ms' : v.toFixed(2) + ' s';
function byName(snap, name) { return snap.metrics.find((m) => m.name === name); }
function sumValues(m, filter) { return m ? m.values.filter(filter || (() => true)).reduce((a, v) => a + v.value, 0) : 0; }
function groups(m, label) { const g = new Map(); if (!m) return g; for (const v of m.values) { const k = v.labels[label] ?? ''; g.set(k, (g.get(k) || 0) + v.value); } return g; }
function quantile(m, q, prevM) {
  if (!m) return NaN;
  const buckets = new Map();
  for (const v of m.values) if (v.metricName && v.metricName.endsWith('_bucket')) buckets.set(v.labels.le, (buckets.get(v.labels.le) || 0) + v.value);
  if (prevM) for (const v of prevM.values) if (v.metricName && v.metricName.endsWith('_bucket')) buckets.set(v.labels.le, (buckets.get(v.labels.le) || 0) - v.value);
  const les = [...buckets.keys()].sort((a, b) => (a === '+Inf' ? 1 : b === '+Inf' ? -1 : Number(a) - Number(b)));
  const total = buckets.get('+Inf') || 0;
  if (total <= 0) return NaN;
  for (const le of les) if (buckets.get(le) >= q * total) return le === '+Inf' ? Infinity : Number(le);
  return NaN;
}
function spark(values) {
  if (values.length < 2) return '<svg></svg>';
  const max = Math.max(...values.filter(isFinite), 1e-9);
  const pts = values.map((v, i) => (i / (HISTORY - 1) * 300).toFixed(1) + ',' + (42 - (isFinite(v) ? v : 0) / max * 40).toFixed(1)).join(' ');
  return '<svg viewBox="0 0 300 44" preserveAspectRatio="none"><polyline fill="none" stroke="#3a6fd8" stroke-width="1.5" points="' + pts + '"/></svg>';
}
function render(snap) {
  const dt = previous ? (snap.time - previous.time) / 1000 : 0;
  const root = document.getElementById('panels');
  if (!root.children.length) root.innerHTML = panels.map((p, i) => '<div class="card"><h2></h2><div class="value" id="v' + i + '">-</div><div id="s' + i + '"></div><table id="t' + i + '"></table></div>').join('');
  panels.forEach((p, i) => {
    root.children[i].querySelector('h2').textContent = p.title;
    const m = byName(snap, p.metric);
    const pm = previous && byName(previous, p.metric);
    let value = NaN, text = '-', rows = [];
    if (p.kind === 'gauge' || p.kind === 'bytes') {
      value = sumValues(m);
      text = p.kind === 'bytes' ? fmtBytes(value) : fmtNum(value);
      if (p.by) rows = [...groups(m, p.by)].map(([k, v]) => [k, p.kind === 'bytes' ? fmtBytes(v) : fmtNum(v)]);
    } else if (p.kind === 'rate' || p.kind === 'bytes-rate') {
      const f = (v) => p.kind === 'bytes-rate' ? fmtBytes(v) + '/s' : fmtNum(v) + '/s';
      value = dt > 0 ? Math.max(0, (sumValues(m) - sumValues(pm)) / dt) : NaN;
      text = f(value);
      if (p.by && dt > 0) { const now = groups(m, p.by), before = groups(pm, p.by); rows = [...now].map(([k, v]) => [k, f(Math.max(0, (v - (before.get(k) || 0)) / dt)), v]).filter((r) => r[2] > 0).sort((a, b) => b[2] - a[2]).map((r) => [r[0], r[1] + ' (' + r[2] + ')']); }
    } else if (p.kind === 'quantiles') {
      const p50 = quantile(m, 0.5, pm), p99 = quantile(m, 0.99, pm);
      value = p99; text = 'p50 ' + fmtSec(p50) + ' · p99 ' + fmtSec(p99);
    }
    history[i].push(value); if (history[i].length > HISTORY) history[i].shift();
    document.getElementById('v' + i).textContent = text;
    document.getElementById('s' + i).innerHTML = spark(history[i]);
    document.getElementById('t' + i).innerHTML = rows.slice(0, 12).map((r) => '<tr><td>' + String(r[0]).replace(/[&<>]/g, '') + '</td><td>' + r[1] + '</td></tr>').join('');
  });
  const st = document.getElementById('status');
  st.textContent = snap.ready ? 'ready' : 'not ready'; st.className = snap.ready ? 'ok' : 'bad';
  document.getElementById('checks').textContent = snap.checks.filter((c) => !c.ok).map((c) => c.name + ': ' + (c.detail || 'failing')).join('; ');
  document.getElementById('info').innerHTML = Object.entries(snap.info).map(([k, v]) => k + ': <code>' + String(v).replace(/[&<>]/g, '') + '</code>').join(' &nbsp; ');
  previous = snap;
}
async function tick() {
  try { const r = await fetch('metrics.json', { cache: 'no-store' }); render(await r.json()); }
  catch (e) { const st = document.getElementById('status'); st.textContent = 'unreachable'; st.className = 'bad'; }
}
tick(); setInterval(tick, 2000);
</script></body></html>
`;
}
