"""The status page at `/`: one HTML document, rendered from a `history.View` and nothing else,
for the person asking "why did it not scale?".

One row per trigger (namespace, ScaledObject, source, metric value against target, desired
replicas, activity, data age, the newest error with its gRPC code) and an inline SVG of the
window's value, target and replicas. No scripts, fonts or other files to load. Every text from
outside (names come from ScaledObjects, errors from brokers) is HTML-escaped, and errors are
redacted once more; metadata values are never shown.
"""

from __future__ import annotations

import html
import itertools
import math
import urllib.parse
from collections.abc import Sequence

from scaler import redaction
from scaler.history import INVALID_METADATA, TriggerView, View

_CHART_W, _CHART_H = 262, 50
_PLOT_LEFT, _PLOT_W = 26, 232
"""The plot starts right of a gutter that holds the two bands' scale labels."""
_VALUE_TOP, _VALUE_BOTTOM = 4, 31
_REPLICAS_TOP, _REPLICAS_BOTTOM = 36, 47
_MAX_ERROR_CHARS = 300
_GAP_S = 120.0
"""Samples further apart are not joined: KEDA's pollingInterval (30 s by default) can be set
to a minute or two, and each of its calls is one sample then."""
_SILENT_AFTER_S = 60.0
"""An answer older than this says so under the data age (KEDA asks every 30 s by default)."""
_NAMESPACE_LINKS = 24
"""Up to this many namespaces are also offered as links; more, and only the form is."""

_CSS = """
:root{color-scheme:light}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
sans-serif;color:#1f2328;background:#f6f8fa}
header{padding:16px 24px 8px}
h1{margin:0 0 4px;font-size:20px;font-weight:600}
main{padding:0 24px 24px}
a{color:#0550ae;text-decoration:none}a:hover{text-decoration:underline}
.summary{color:#57606a;margin:0 0 12px}
.summary b{color:#1f2328}
form{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin:8px 0 12px}
select,button{font:inherit;padding:3px 8px;border:1px solid #d0d7de;border-radius:6px;
background:#fff}
button{background:#f6f8fa;cursor:pointer}
.chips a{display:inline-block;margin:0 4px 4px 0;padding:1px 8px;border:1px solid #d0d7de;
border-radius:12px;background:#fff;font-size:12px}
.chips a.sel{background:#0550ae;border-color:#0550ae;color:#fff}
.legend{display:flex;gap:14px;font-size:12px;color:#57606a;margin:0 0 8px}
.legend svg{vertical-align:middle;margin-right:4px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de;
border-radius:6px}
th{position:sticky;top:0;background:#eef1f4;text-align:left;font-size:12px;font-weight:600;
color:#57606a;padding:6px 10px;border-bottom:1px solid #d0d7de;white-space:nowrap}
td{padding:6px 10px;border-bottom:1px solid #eaeef2;vertical-align:middle}
tr.failing td:first-child{box-shadow:inset 3px 0 #cf222e}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.name{font-weight:600;overflow-wrap:anywhere}
td.scaledobject{min-width:150px}
a.explain{font-size:12px;margin-left:4px}
td.last-error{min-width:200px}
.muted{color:#6e7781;font-size:12px;overflow-wrap:anywhere}
.badge{display:inline-block;padding:0 8px;border-radius:10px;font-size:12px;font-weight:600}
.on{background:#dafbe1;color:#116329}
.off{background:#eef1f4;color:#57606a}
.code{background:#ffebe9;color:#a40e26;font-family:ui-monospace,SFMono-Regular,Menlo,
Consolas,monospace}
.error{font-size:12px;max-width:380px;overflow-wrap:anywhere;color:#57606a}
.empty{padding:24px;text-align:center;color:#57606a}
svg.chart{display:block;background:#fbfcfd;border:1px solid #eaeef2;border-radius:4px}
svg path{fill:none;stroke-width:1.6}
svg path.grid{stroke:#eaeef2;stroke-width:1}
svg path.value{stroke:#0969da;stroke-linejoin:round}
svg path.target{stroke:#6e7781;stroke-width:1.2;stroke-dasharray:3 2}
svg path.replicas{stroke:#1a7f37}
.chart circle.value{fill:#0969da}
.chart circle.replicas{fill:#1a7f37}
.chart text{font-size:9px;fill:#57606a;text-anchor:end}
.chart text.replicas{fill:#1a7f37}
.chart text.empty{font-size:11px;fill:#8c959f;text-anchor:start}
"""

def render(view: View, namespace: str | None = None) -> str:
    """The whole page; `namespace` is the filter the rows of `view` were picked with."""
    rows = view.triggers
    active = sum(1 for row in rows if row.answer.is_active)
    failing = sum(1 for row in rows if row.answer.error is not None)
    minutes = f"{view.window_s / 60:g}"
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>queue-scaler status</title><style>", _CSS, "</style></head><body>",
        "<header><h1>queue-scaler status</h1>",
        '<p class="summary">',
        f"<b>{len(rows):,}</b> trigger{'' if len(rows) == 1 else 's'}",
        f" in namespace <b>{_e(namespace)}</b>" if namespace is not None else "",
        f" &middot; <b>{active:,}</b> active &middot; <b>{failing:,}</b> with an error",
        f" &middot; charts: the last {minutes} min, one point per {view.step_s:g} s",
        ' &middot; <a href="/scaledobjects">all as JSON</a> &middot; <a href="/metrics">'
        "metrics</a></p>",
        _filter(view.namespaces, namespace),
        "</header><main>",
        _legend(),
    ]
    if rows:
        parts.append(
            "<table><thead><tr><th>Namespace</th><th>ScaledObject</th><th>Source</th>"
            '<th class="num">Value / target</th><th class="num">Replicas</th><th>Active</th>'
            f'<th class="num">Data age</th><th>Last {minutes} min</th><th>Last error</th>'
            "</tr></thead><tbody>")
        parts.extend(_row(row, view) for row in rows)
        parts.append("</tbody></table>")
    else:
        where = (f" in namespace {_e(namespace)}" if namespace is not None else "")
        parts.append(f'<p class="empty">No triggers{where}: KEDA has not asked about any in '
                     f"the last {minutes} min.</p>")
    parts.append("</main></body></html>\n")
    return "".join(parts)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _filter(namespaces: Sequence[str], selected: str | None) -> str:
    options = ['<option value="">all namespaces</option>', *(
        f'<option value="{_e(ns)}"{" selected" if ns == selected else ""}>{_e(ns)}</option>'
        for ns in namespaces)]
    form = ('<form method="get" action="/"><label for="namespace">Namespace</label>'
            '<select id="namespace" name="namespace" onchange="this.form.submit()">'
            f'{"".join(options)}</select><button type="submit">Show</button></form>')
    if len(namespaces) > _NAMESPACE_LINKS:
        return form
    chips = [f'<a href="/"{" class=sel" if selected is None else ""}>all</a>', *(
        f'<a href="{_namespace_href(ns)}"{" class=sel" if ns == selected else ""}>{_e(ns)}</a>'
        for ns in namespaces)]
    return form + f'<nav class="chips" aria-label="namespaces">{"".join(chips)}</nav>'


def _legend() -> str:
    def swatch(line: str) -> str:
        return (f'<svg width="18" height="6" aria-hidden="true"><path class="{line}" '
                'd="M0 3H18"/></svg>')

    return ('<div class="legend">'
            f"<span>{swatch('value')}metric value</span>"
            f"<span>{swatch('target')}target per replica</span>"
            f"<span>{swatch('replicas')}desired replicas (lower band)</span></div>")


def _namespace_href(namespace: str) -> str:
    return "/?namespace=" + urllib.parse.quote(namespace, safe="")


def _row(row: TriggerView, view: View) -> str:
    answer = row.answer
    explain = ""
    if row.metric_name != INVALID_METADATA:  # bad metadata has no explanation
        href = ("/scaledobjects/" + urllib.parse.quote(row.namespace, safe="") + "/"
                + urllib.parse.quote(row.name, safe=""))
        explain = (f' <a class="explain" href="{_e(href)}" title="why: the decision and the '
                   'broker facts it was made from, as JSON">explain</a>')
    if answer.metric_value is None:
        value = '<span class="muted">no value</span>'
        replicas = active = age = '<span class="muted">&mdash;</span>'
    else:
        value = f"<b>{_number(answer.metric_value)}</b> / {_number(answer.target)}"
        replicas = f"<b>{answer.desired_replicas}</b>"
        active = ('<span class="badge on">active</span>' if answer.is_active
                  else '<span class="badge off">inactive</span>')
        # How old the data was when the decision was made, as KEDA got it.
        age = (_duration(row.answered_at - answer.read_at) if answer.read_at is not None
               else "")
    # Nobody asking is a reason not to scale too: KEDA asks every 30 s by default.
    silent = f"answered {_duration(view.now - row.answered_at)} ago"
    if view.now - row.answered_at > _SILENT_AFTER_S:
        age += f'<div class="muted">{silent}</div>'
    if answer.error is not None:
        message = redaction.redact_text(answer.error)
        shown = (message if len(message) <= _MAX_ERROR_CHARS
                 else message[:_MAX_ERROR_CHARS - 1] + "\u2026")
        error = (f'<span class="badge code">{_e(answer.error_code or "")}</span> '
                 f'<span class="error" title="{_e(message)}">{_e(shown)}</span>')
    else:
        error = '<span class="muted">none</span>'
    return (f'<tr class="trigger{" failing" if answer.error is not None else ""}" '
            f'data-namespace="{_e(row.namespace)}" data-name="{_e(row.name)}">'
            f'<td class="namespace"><a href="{_namespace_href(row.namespace)}">'
            f"{_e(row.namespace)}</a></td>"
            f'<td class="scaledobject"><span class="name">{_e(row.name)}</span>{explain}'
            f'<div class="muted">{_e(row.metric_name)}</div></td>'
            f'<td class="source">{_e(answer.source)}</td>'
            f'<td class="num value">{value}</td><td class="num replicas">{replicas}</td>'
            f'<td class="active">{active}</td><td class="num age" title="{silent}">{age}</td>'
            f'<td class="chart">{_chart(row, view)}</td><td class="last-error">{error}</td></tr>')


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "?"
    if math.isinf(value):
        return "\u221e" if value > 0 else "-\u221e"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3g}"


def _compact(value: float) -> str:
    """A chart's scale label in at most about four characters: 950, 12k, 3.4M."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            scaled = value / limit
            return f"{scaled:.1f}{suffix}" if scaled < 10 else f"{scaled:.0f}{suffix}"
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds // 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _chart(row: TriggerView, view: View) -> str:
    times = row.times
    if not times:
        return (f'<svg class="chart" width="{_CHART_W}" height="{_CHART_H}" role="img" '
                'aria-label="no decision yet"><text class="empty" x="8" y="29">no decision yet'
                "</text></svg>")
    start = view.now - view.window_s
    scale_x = _PLOT_W / view.window_s
    xs = [_PLOT_LEFT + round((at - start) * scale_x) for at in times]
    segments = _segments(times, view.step_s)
    peak = max(max(row.values), max(row.targets)) or 1.0
    value_span = (_VALUE_BOTTOM - _VALUE_TOP) / peak
    value_ys = [round(_VALUE_BOTTOM - v * value_span) for v in row.values]
    target_ys = [round(_VALUE_BOTTOM - t * value_span) for t in row.targets]
    most_replicas = max(row.replicas)
    replica_span = (_REPLICAS_BOTTOM - _REPLICAS_TOP) / (most_replicas or 1.0)
    replica_ys = [round(_REPLICAS_BOTTOM - r * replica_span) for r in row.replicas]
    grid = "".join(f'<path class="grid" d="M{x} 0V{_CHART_H}"/>'
                   for x in (_PLOT_LEFT + round(_PLOT_W * part / 3) for part in (0, 1, 2)))
    label = (f"last {view.window_s / 60:g} min: value up to {_number(max(row.values))}, "
             f"target {_number(row.targets[-1])}, up to {int(most_replicas)} replicas")
    return (f'<svg class="chart" width="{_CHART_W}" height="{_CHART_H}" role="img" '
            f'aria-label="{_e(label)}"><title>{_e(label)}</title>{grid}'
            f'<path class="grid" d="M{_PLOT_LEFT} {_VALUE_BOTTOM + 2.5}H{_CHART_W}"/>'
            f'<path class="target" d="{_steps(xs, target_ys, segments)}"/>'
            f'<path class="value" d="{_line(xs, value_ys, segments)}"/>'
            f'<path class="replicas" d="{_steps(xs, replica_ys, segments)}"/>'
            # The newest point, so that a chart of one sample (a new trigger) shows something.
            f'<circle class="value" cx="{xs[-1]}" cy="{value_ys[-1]}" r="2.2"/>'
            f'<circle class="replicas" cx="{xs[-1]}" cy="{replica_ys[-1]}" r="2.2"/>'
            f'<text x="{_PLOT_LEFT - 3}" y="{_VALUE_TOP + 7}">{_compact(peak)}</text>'
            f'<text class="replicas" x="{_PLOT_LEFT - 3}" y="{_REPLICAS_TOP + 7}">'
            f"{int(most_replicas)}</text></svg>")


def _segments(times: Sequence[float], step_s: float) -> list[tuple[int, int]]:
    """[start, end) index ranges of `times` without a gap of more than _GAP_S (or two
    buckets, were they longer): the lines break where nobody asked or every read failed."""
    longest = max(_GAP_S, 2 * step_s)
    cuts = [index for index, (before, at) in enumerate(itertools.pairwise(times), 1)
            if at - before > longest]
    edges = [0, *cuts, len(times)]
    return list(itertools.pairwise(edges))


def _line(xs: list[int], ys: list[int], segments: list[tuple[int, int]]) -> str:
    """A polyline through the points (after M, SVG takes further pairs as line-tos); points
    inside a run of equal height are left out, so a steady series costs two points."""
    parts = []
    for low, high in segments:
        if high - low == 1:
            parts.append(f"M{xs[low]} {ys[low]}h2")
            continue
        inner = " ".join([f"{xs[i]} {ys[i]}" for i in range(low + 1, high - 1)
                          if not ys[i - 1] == ys[i] == ys[i + 1]])
        parts.append(f"M{xs[low]} {ys[low]} {inner} {xs[high - 1]} {ys[high - 1]}")
    return "".join(parts)


def _steps(xs: list[int], ys: list[int], segments: list[tuple[int, int]]) -> str:
    """A step line: each value holds until the next sample (replicas, the target)."""
    parts = []
    for low, high in segments:
        changes = "".join([f"H{xs[i]}V{ys[i]}" for i in range(low + 1, high)
                           if ys[i] != ys[i - 1]])
        parts.append(f"M{xs[low]} {ys[low]}{changes}H{xs[high - 1] + 2}")
    return "".join(parts)
