"""Inline SVG charts (no library): quantity under the procedure over time, actual vs authorised yield.

Each chart is an accessible ``<svg role="img">`` with ``<title>``/``<desc>``; the page shows the same
numbers in a table next to it."""
from __future__ import annotations

import datetime as dt
from html import escape


def quantity_series(entries: list[dict]) -> dict[str, list[tuple[str, int]]]:
    """Input goods (lots) under the procedure after each event, per unit: [(recorded_at, quantity)].

    Replays the goods effects of the event log: a placement adds the lot's quantity; consumption by
    processing, exits and losses of a lot remove theirs (what the ceiling counts)."""
    totals: dict[str, int] = {}
    units: dict[str, str] = {}
    series: dict[str, list[tuple[str, int]]] = {}
    for entry in sorted(entries, key=lambda e: (e.get("recorded_at") or "", e.get("tx_id") or "")):
        changed = set()
        for e in entry.get("effects") or []:
            op = e.get("op")
            if op == "place":
                lot = e.get("lot") or {}
                unit = lot.get("unit", "?")
                units[lot.get("lot_id")] = unit
                totals[unit] = totals.get(unit, 0) + int(lot.get("placed") or 0)
                changed.add(unit)
            elif op == "consume" and e.get("lot_id") in units:
                unit = units[e["lot_id"]]
                totals[unit] -= int(e.get("qty") or 0)
                changed.add(unit)
            elif op in ("exit", "lose") and e.get("kind") == "LOT" and e.get("id") in units:
                unit = units[e["id"]]
                totals[unit] -= int(e.get("qty") or 0)
                changed.add(unit)
        for unit in sorted(changed):
            series.setdefault(unit, []).append((entry.get("recorded_at") or "", totals[unit]))
    return series


def _t(text: str) -> float:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def quantity_chart(points: list[tuple[str, int]], unit: str, ceiling: int | None, now: str) -> str:
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
    desc = (f"Step chart of the quantity of input goods under the procedure, in {unit}, from "
            f"{points[0][0][:10]} to {now[:10]}: now {last} {unit}" + (f", ceiling {ceiling} {unit}." if ceiling else "."))
    parts = [f'<svg class="chart" role="img" aria-labelledby="qc-title qc-desc" viewBox="0 0 {w} {h}" '
             f'xmlns="http://www.w3.org/2000/svg">',
             f'<title id="qc-title">Quantity under the procedure ({escape(unit)})</title>',
             f'<desc id="qc-desc">{escape(desc)}</desc>',
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
                     f'text-anchor="end">ceiling {ceiling}</text>')
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
    desc = "; ".join(f"{r['label']}: authorised {r['authorised']}, actual {r['actual']}" for r in rows)
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
        parts.append(f'<rect class="bar-authorised" x="{x}" y="{sy(a):.1f}" width="{bar}" height="{sy(0) - sy(a):.1f}">'
                     f'<title>authorised {a}</title></rect>')
        parts.append(f'<rect class="bar-actual" x="{x + bar}" y="{sy(b):.1f}" width="{bar}" height="{sy(0) - sy(b):.1f}">'
                     f'<title>actual {b}</title></rect>')
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
