"""Inline SVG charts (no library): quantity under the procedure over time (the contract's ``GetCeilingUse``),
actual vs authorised yield.

Each chart is an accessible ``<svg role="img">`` with ``<title>``/``<desc>``; the page shows the same
numbers in a table next to it."""
from __future__ import annotations

from html import escape

from ipledger.gateway import moments


def ceiling_charts(use: dict, now: str) -> list[dict]:
    """A chart of each ceiling of the contract's ``GetCeilingUse`` answer: its points from its ``since`` (the use
    then, then after each change) up to ``now``, ``{cn, unit, points, truncated, svg}``."""
    out = []
    for i, c in enumerate(use.get("ceilings", [])):
        points = [(c.get("since") or use["from"], c["at_start"])] + [(p["recorded_at"], p["quantity"])
                                                                      for p in c["points"]]
        out.append({"cn": c["cn"], "unit": c["unit"], "points": points, "truncated": bool(c.get("truncated")),
                    "svg": quantity_chart(points, c["unit"], c["max_qty"], now, goods=c["cn"], ident=f"qc{i}")})
    return out


def _t(text: str) -> float:
    when = moments.parse(text)
    return when.timestamp() if when is not None else 0.0


def quantity_chart(points: list[tuple[str, int]], unit: str, ceiling: int | None, now: str, goods: str | None = None,
                   ident: str = "qc") -> str:
    """A step chart of one ceiling's use (``goods``: the input-goods entry's code); ``ident`` makes the ids of its
    title and description its own on a page of several charts."""
    w, h, left, bottom, top, right = 640, 240, 70, 40, 20, 20
    if not points:
        return ""
    xs = [_t(p[0]) for p in points] + [_t(now)]
    x0, x1 = min(xs), max(xs)
    if x1 <= x0:
        x1 = x0 + 1
    ymax = max([p[1] for p in points] + [ceiling or 0, 1])
    sx = lambda t: left + (t - x0) / (x1 - x0) * (w - left - right)  # noqa: E731
    sy = lambda v: h - bottom - v / ymax * (h - top - bottom)  # noqa: E731
    path, prev = [], None
    for when, qty in points:
        x, y = sx(_t(when)), sy(qty)
        if prev is None:
            path.append(f"M{x:.1f},{sy(0):.1f} L{x:.1f},{y:.1f}")
        else:
            path.append(f"L{x:.1f},{prev:.1f} L{x:.1f},{y:.1f}")
        prev = y
    path.append(f"L{sx(_t(now)):.1f},{prev:.1f}")
    last = points[-1][1]
    of = f"goods {goods}, " if goods else ""
    desc = (f"Step chart of the quantity of input goods under the procedure, {of}in {unit}, from "
            f"{points[0][0][:10]} to {now[:10]} (UTC): now {last} {unit}"
            + (f", ceiling {ceiling} {unit}." if ceiling else ".") + " Its data: the table after the chart.")
    ident = escape(ident)
    parts = [f'<svg class="chart" role="img" aria-labelledby="{ident}-title {ident}-desc" viewBox="0 0 {w} {h}" '
             f'xmlns="http://www.w3.org/2000/svg">',
             f'<title id="{ident}-title">Quantity under the procedure ({escape(of + unit)})</title>',
             f'<desc id="{ident}-desc">{escape(desc)}</desc>',
             f'<line class="axis" x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}"/>',
             f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}"/>']
    for frac in (0, 0.5, 1):
        v = round(ymax * frac)
        parts.append(f'<text class="tick" x="{left - 6}" y="{sy(v) + 4:.1f}" text-anchor="end">{v}</text>')
    parts.append(f'<text class="tick" x="{left}" y="{h - bottom + 16}">{escape(points[0][0][:10])}</text>')
    parts.append(f'<text class="tick" x="{w - right}" y="{h - bottom + 16}" text-anchor="end">{escape(now[:10])}</text>')
    if ceiling:
        parts.append(f'<line class="ceiling" x1="{left}" y1="{sy(ceiling):.1f}" x2="{w - right}" y2="{sy(ceiling):.1f}"/>')
        parts.append(f'<text class="tick ceiling-label" x="{w - right}" y="{sy(ceiling) - 4:.1f}" '
                     f'text-anchor="end">ceiling {ceiling} {escape(unit)}</text>')
    parts.append(f'<path class="series" d="{" ".join(path)}"/>')
    parts.append("</svg>")
    return "".join(parts)


def yield_chart(rows: list[dict]) -> str:
    """Grouped bars: authorised vs actual output per input, per operation and output CN."""
    if not rows:
        return ""
    w, bar, gap, left, top, bottom = 640, 14, 18, 70, 20, 50
    group = 2 * bar + gap
    h = 220
    vmax = max([max(float(r["authorised"]), float(r["actual"])) for r in rows] + [0.0001]) * 1.1
    sy = lambda v: h - bottom - v / vmax * (h - top - bottom)  # noqa: E731
    desc = "; ".join(f"{r['label']}: authorised {r['authorised']}, actual {r['actual']}" for r in rows) + \
        ". Its data: the table of the rates of yield."
    width = max(w, left + len(rows) * group + 20)
    parts = [f'<svg class="chart" role="img" aria-labelledby="yc-title yc-desc" viewBox="0 0 {width} {h}" '
             f'xmlns="http://www.w3.org/2000/svg">',
             '<title id="yc-title">Actual vs authorised rate of yield</title>',
             f'<desc id="yc-desc">{escape(desc)}</desc>',
             f'<line class="axis" x1="{left}" y1="{h - bottom}" x2="{width - 10}" y2="{h - bottom}"/>',
             f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}"/>']
    for frac in (0, 0.5, 1):
        v = vmax * frac / 1.1
        parts.append(f'<text class="tick" x="{left - 6}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    for i, r in enumerate(rows):
        x = left + 10 + i * group
        a, b = float(r["authorised"]), float(r["actual"])
        # the bars' heights from floats (drawing only); their titles the contract's decimal text, as written
        parts.append(f'<rect class="bar-authorised" x="{x}" y="{sy(a):.1f}" width="{bar}" height="{sy(0) - sy(a):.1f}">'
                     f'<title>authorised {escape(str(r["authorised"]))}</title></rect>')
        parts.append(f'<rect class="bar-actual" x="{x + bar}" y="{sy(b):.1f}" width="{bar}" height="{sy(0) - sy(b):.1f}">'
                     f'<title>actual {escape(str(r["actual"]))}</title></rect>')
        parts.append(f'<text class="tick" x="{x + bar}" y="{h - bottom + 14}" text-anchor="middle">'
                     f'{escape(r["label"])}</text>')
    parts.append(f'<rect class="bar-authorised" x="{left}" y="{h - 18}" width="10" height="10"/>'
                 f'<text class="tick" x="{left + 14}" y="{h - 9}">authorised</text>'
                 f'<rect class="bar-actual" x="{left + 90}" y="{h - 18}" width="10" height="10"/>'
                 f'<text class="tick" x="{left + 104}" y="{h - 9}">actual</text>')
    parts.append("</svg>")
    return "".join(parts)


def yield_rows(processing: list[dict]) -> list[dict]:
    rows = []
    for op in processing:
        for y in op.get("yield") or []:
            rows.append({"label": f"{op['operation_id']}/{y.get('output_cn')}", "operation_id": op["operation_id"],
                         "output_cn": y.get("output_cn"), "authorised": y.get("authorised_per_input"),
                         "actual": y.get("actual_per_input"), "deviation_pct": y.get("deviation_pct"),
                         "recorded_at": op.get("recorded_at")})
    return rows
