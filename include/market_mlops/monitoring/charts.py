"""Small static SVG charts for the drift report and the Models pages: no script and no CDN, so a page opens offline
and a saved report stays readable. Pure functions: numbers in, an SVG string out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

WIDTH, HEIGHT, PAD = 640, 220, 40
BAND_COLOURS = {"normal": "#2e7d32", "monitor": "#f9a825", "drift": "#ef6c00", "emergency": "#c62828"}


@dataclass(frozen=True)
class Line:
    """A horizontal reference line (a band's edge, the reference accuracy)."""

    y: float
    label: str
    colour: str


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _scale(low: float, high: float, size: float, flip: bool) -> tuple[float, float]:
    span = (high - low) or 1.0
    return (-size / span, size + low * size / span) if flip else (size / span, -low * size / span)


def line_chart(labels: Sequence[str], values: Sequence[float | None], lines: Sequence[Line] = (),
               title: str = "", y_format: str = "{:.0%}", positions: Sequence[float] | None = None,
               breaks: Sequence[bool] | None = None) -> str:
    """Points joined in order (gaps where a value is missing, or where `breaks[i]` starts a new segment), with
    labelled horizontal lines; x labels at the ends. `positions`: each point's place on the x axis (a time axis:
    points a year apart are a year apart), else evenly spaced."""
    known = _finite(values) + [line.y for line in lines]
    if not known:
        return _empty(title or "no data yet")
    low, high = min(known), max(known)
    pad = (high - low) * 0.08 or 0.05
    low, high = low - pad, high + pad
    inner_w, inner_h = WIDTH - 2 * PAD - 100, HEIGHT - 2 * PAD  # room on the right for the lines' labels
    ky, by = _scale(low, high, inner_h, flip=True)
    if positions is not None and len(positions) == len(values) and len(values) > 1 and max(positions) > min(positions):
        first, span = min(positions), max(positions) - min(positions)
        xs = [PAD + (p - first) / span * inner_w for p in positions]
    else:
        step = inner_w / max(1, len(values) - 1)
        xs = [PAD + i * step for i in range(len(values))]

    def y_of(v: float) -> float:
        return PAD + by + ky * v

    parts = [_frame(title)]
    for line in lines:
        y = y_of(line.y)
        parts.append(f'<line x1="{PAD}" x2="{PAD + inner_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{line.colour}" '
                     f'stroke-dasharray="4 3"/><text x="{PAD + inner_w + 4}" y="{y + 4:.1f}" font-size="11" '
                     f'fill="{line.colour}">{escape(line.label)}</text>')
    segment: list[str] = []
    for i, v in enumerate(values):
        if breaks is not None and breaks[i]:
            parts.append(_polyline(segment))
            segment = []
        if v is None or not math.isfinite(float(v)):
            parts.append(_polyline(segment))
            segment = []
            continue
        x, y = xs[i], y_of(float(v))
        segment.append(f"{x:.1f},{y:.1f}")
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1565c0"><title>{escape(labels[i])}: '
                     f'{escape(y_format.format(float(v)))}</title></circle>')
    parts.append(_polyline(segment))
    for tick in (high - pad, low + pad):
        parts.append(f'<text x="{PAD - 4}" y="{y_of(tick) + 4:.1f}" font-size="11" text-anchor="end">'
                     f'{escape(y_format.format(tick))}</text>')
    if labels:
        parts.append(f'<text x="{PAD}" y="{HEIGHT - 12}" font-size="11">{escape(labels[0])}</text>')
        parts.append(f'<text x="{PAD + inner_w}" y="{HEIGHT - 12}" font-size="11" text-anchor="end">'
                     f'{escape(labels[-1])}</text>')
    return _svg(WIDTH, HEIGHT, "".join(parts), title)


SERIES_COLOURS = ("#616161", "#1565c0", "#2e7d32", "#c62828", "#6a1b9a", "#ef6c00")


def multi_line_chart(labels: Sequence[str], series: dict[str, Sequence[float | None]], title: str = "",
                     y_format: str = "{:.0%}") -> str:
    """Several named series over the same x labels (one colour each, a legend), gaps where a value is missing."""
    known = [v for values in series.values() for v in _finite(values)]
    if not known or not labels:
        return _empty(title or "no data yet")
    low, high = min(known), max(known)
    pad = (high - low) * 0.08 or 0.05
    low, high = low - pad, high + pad
    legend_h = 16 * len(series)
    inner_w, inner_h = WIDTH - 2 * PAD - 60, HEIGHT - 2 * PAD
    ky, by = _scale(low, high, inner_h, flip=True)
    step = inner_w / max(1, len(labels) - 1)
    parts = [_frame(title)]
    for k, (name, values) in enumerate(series.items()):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        points = [f"{PAD + i * step:.1f},{PAD + by + ky * float(v):.1f}" for i, v in enumerate(values)
                  if v is not None and math.isfinite(float(v))]
        if len(points) > 1:
            parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" stroke-width="2">'
                         f'<title>{escape(name)}</title></polyline>')
        y = HEIGHT + 8 + 16 * k
        parts.append(f'<rect x="{PAD}" y="{y - 9}" width="12" height="3" fill="{colour}"/>'
                     f'<text x="{PAD + 18}" y="{y}" font-size="11">{escape(name)}</text>')
    for tick in (high - pad, low + pad):
        parts.append(f'<text x="{PAD - 4}" y="{PAD + by + ky * tick + 4:.1f}" font-size="11" text-anchor="end">'
                     f'{escape(y_format.format(tick))}</text>')
    parts.append(f'<text x="{PAD}" y="{HEIGHT - 12}" font-size="11">{escape(labels[0])}</text>'
                 f'<text x="{PAD + inner_w}" y="{HEIGHT - 12}" font-size="11" text-anchor="end">{escape(labels[-1])}</text>')
    return _svg(WIDTH, HEIGHT + legend_h + 4, "".join(parts), title)


def sparkline(values: Sequence[float | None], width: int = 120, height: int = 28) -> str:
    """A trend in a table cell (the last realized accuracies); empty when fewer than two are known."""
    known = _finite(values)
    if len(known) < 2:
        return ""
    low, high = min(known), max(known)
    ky, by = _scale(low, high, height - 6, flip=True)
    step = (width - 6) / (len(known) - 1)
    points = " ".join(f"{3 + i * step:.1f},{3 + by + ky * v:.1f}" for i, v in enumerate(known))
    body = f'<polyline points="{points}" fill="none" stroke="#1565c0" stroke-width="1.5"/>'
    return _svg(width, height, body, f"realized accuracy, last {len(known)} checks: {known[-1]:.1%}")


def bar_chart(labels: Sequence[str], values: Sequence[float], limits: Sequence[float | None] | None = None,
              highlight: Sequence[bool] | None = None, title: str = "", value_format: str = "{:.3f}") -> str:
    """Horizontal bars, one per label, with an optional limit tick on each (a feature's PSI and its limit)."""
    if not labels:
        return _empty(title or "no data yet")
    row, label_w = 18, 170
    height = PAD + row * len(labels) + 10
    top = max(_finite(list(values)) + _finite(list(limits or [])) + [1e-9])
    scale = (WIDTH - label_w - 80) / top
    parts = [_frame(title)]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = PAD + i * row
        colour = "#c62828" if highlight and highlight[i] else "#1565c0"
        shown = max(0.0, float(value)) if math.isfinite(float(value)) else 0.0
        limit = (limits or [None] * len(labels))[i]
        tick = float(limit) if limit is not None and math.isfinite(float(limit)) else None
        # the value's label right of its bar and of its limit tick, so the tick never writes over it
        text_x = label_w + max(shown, tick or 0.0) * scale + 5
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" font-size="11" text-anchor="end">{escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y + 2}" width="{shown * scale:.1f}" height="{row - 5}" fill="{colour}">'
                     f'<title>{escape(label)}: {escape(value_format.format(float(value)))}</title></rect>'
                     f'<text x="{text_x:.1f}" y="{y + 12}" font-size="10">'
                     f'{escape(value_format.format(float(value)))}</text>')
        if tick is not None:
            x = label_w + tick * scale
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + row - 2}" stroke="#000" stroke-width="2">'
                         f'<title>limit {escape(value_format.format(tick))}</title></line>')
    return _svg(WIDTH, height, "".join(parts), title)


def matrix_chart(rows: Sequence[str], columns: Sequence[str], counts: Sequence[Sequence[int]], title: str = "",
                 row_title: str = "actual", column_title: str = "predicted") -> str:
    """A table of counts shaded by size (a confusion matrix: rows the true class, columns the predicted one)."""
    cell, left, top = 56, 90, PAD + 18
    peak = max([max(r) for r in counts if len(r)] + [1])
    parts = [_frame(title), f'<text x="{left + cell * len(columns) / 2:.0f}" y="{top - 8}" font-size="11" '
                            f'text-anchor="middle">{escape(column_title)}</text>']
    for j, name in enumerate(columns):
        parts.append(f'<text x="{left + j * cell + cell / 2:.0f}" y="{top + cell * len(rows) + 14}" font-size="11" '
                     f'text-anchor="middle">{escape(name)}</text>')
    for i, (name, row) in enumerate(zip(rows, counts, strict=True)):
        y = top + i * cell
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4:.0f}" font-size="11" text-anchor="end">{escape(name)}</text>')
        for j, count in enumerate(row):
            shade = 0.1 + 0.8 * count / peak
            parts.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="#1565c0" '
                         f'fill-opacity="{shade:.2f}"><title>{escape(name)} -> {escape(columns[j])}: {count}</title></rect>'
                         f'<text x="{left + j * cell + cell / 2 - 1:.0f}" y="{y + cell / 2 + 4:.0f}" font-size="12" '
                         f'text-anchor="middle">{count}</text>')
    parts.append(f'<text x="12" y="{top + cell * len(rows) / 2:.0f}" font-size="11">{escape(row_title)}</text>')
    return _svg(left + cell * len(columns) + 20, top + cell * len(rows) + 26, "".join(parts), title)


CLASS_COLOURS = {"BEARISH": "#c62828", "NEUTRAL": "#616161", "BULLISH": "#2e7d32"}


def reliability_chart(table: Any, title: str = "reliability") -> str:
    """Observed frequency against mean forecast probability, per class (one point per probability bin, its area by
    forecasts): a calibrated forecaster's points lie on the diagonal. `table`: `model.calibration.reliability_table`."""
    if table is None or len(table) == 0:
        return _empty(f"{title}: no forecasts")
    size = 260
    parts = [_frame(title), f'<rect x="{PAD}" y="{PAD}" width="{size}" height="{size}" fill="none" stroke="#bbb"/>',
             f'<line x1="{PAD}" y1="{PAD + size}" x2="{PAD + size}" y2="{PAD}" stroke="#999" stroke-dasharray="4 3"/>']
    largest = max(float(table["forecasts"].max()), 1.0)
    for row in table.itertuples():
        x = PAD + size * float(row.mean_probability)
        y = PAD + size * (1 - float(row.observed_frequency))
        radius = 2 + 6 * math.sqrt(float(row.forecasts) / largest)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="{CLASS_COLOURS.get(row._1, "#1565c0")}" '
                     f'fill-opacity="0.7"><title>{escape(str(row._1))}: forecast {row.mean_probability:.2f}, observed '
                     f'{row.observed_frequency:.2f} ({row.forecasts})</title></circle>')
    for k, (name, colour) in enumerate(CLASS_COLOURS.items()):
        y = PAD + 14 + 16 * k
        parts.append(f'<circle cx="{PAD + size + 20}" cy="{y - 4}" r="5" fill="{colour}"/>'
                     f'<text x="{PAD + size + 30}" y="{y}" font-size="11">{name}</text>')
    parts.append(f'<text x="{PAD + size / 2}" y="{PAD + size + 28}" font-size="11" text-anchor="middle">mean forecast '
                 f'probability</text><text x="{PAD - 8}" y="{PAD + size}" font-size="11" text-anchor="end">0</text>'
                 f'<text x="{PAD - 8}" y="{PAD + 10}" font-size="11" text-anchor="end">1</text>')
    return _svg(PAD + size + 110, PAD + size + 40, "".join(parts), title)


def _polyline(points: list[str]) -> str:
    return f'<polyline points="{" ".join(points)}" fill="none" stroke="#1565c0" stroke-width="2"/>' if len(points) > 1 else ""


def _frame(title: str) -> str:
    return f'<text x="{PAD}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>' if title else ""


def _empty(text: str) -> str:
    return _svg(WIDTH, 60, f'<text x="{PAD}" y="35" font-size="13" fill="#666">{escape(text)}</text>', text)


def _svg(width: int, height: int, body: str, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{escape(title)}" font-family="sans-serif">{body}</svg>')
