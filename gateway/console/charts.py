"""Charts drawn on the server as SVG (no chart script, no CDN): stacked bars per day.

Every chart carries a ``<title>`` and a ``<desc>`` (screen readers read them) and the page puts
the same figures in a table next to it; colours are chosen to reach 3:1 against white (WCAG
1.4.11) and every series is named in a text legend, so colour is never the only cue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = (
    "#1f5f99",  # blue
    "#8a4b08",  # brown
    "#a3262a",  # red
    "#2e6b34",  # green
    "#5b3a8c",  # purple
    "#00616b",  # teal
    "#7a3b62",  # plum
    "#4a4a4a",  # grey
    "#6b5d00",  # olive
    "#204060",  # navy
)
ACTION_COLOURS = {"allow": "#2e6b34", "review": "#8a4b08", "block": "#a3262a"}


@dataclass(frozen=True, slots=True)
class Series:
    """One named series of a chart: a value per x label."""

    name: str
    colour: str
    values: tuple[float, ...]


def colour_for(index: int) -> str:
    """The ``index``-th palette colour (cycling)."""
    return PALETTE[index % len(PALETTE)]


def _nice_max(value: float) -> float:
    """An axis top for counts: four grid steps of 1, 2 or 5 x 10^k (at least 1), so every tick
    is a whole number."""
    step = 1.0
    while True:
        for factor in (1, 2, 5):
            if 4 * step * factor >= value:
                return 4 * step * factor
        step *= 10


def stacked_bars(
    chart_id: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    percent: bool = False,
    width: int = 640,
    height: int = 220,
) -> Markup:
    """A stacked bar chart: one bar per label, one segment per series (bottom to top)."""
    left, right, top, bottom = 44, 8, 10, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    top_value = 1.0 if percent else _nice_max(max(totals, default=0.0))
    n = max(1, len(labels))
    slot = plot_w / n
    bar_w = max(2.0, slot * 0.7)
    parts: list[str] = [
        f'<svg class="chart" id="{escape(chart_id)}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-t {escape(chart_id)}-d" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMidYMid meet" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-t">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-d">{escape(desc)}</desc>',
    ]
    for k in range(5):
        value = top_value * k / 4
        y = top + plot_h - plot_h * k / 4
        text = f"{value:.0%}" if percent else f"{value:g}"
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="axis">{text}</text>'
        )
    every = max(1, round(n / 8))
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar_w) / 2
        y = top + plot_h
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            h = plot_h * min(1.0, value / top_value)
            y -= h
            shown = f"{value:.1%}" if percent else f"{value:g}"
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{escape(s.colour)}"><title>{escape(label)}: {escape(s.name)} '
                f"{escape(shown)}</title></rect>"
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                f'class="axis">{escape(label)}</text>'
            )
    parts.append(
        f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" '
        'class="baseline"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))
