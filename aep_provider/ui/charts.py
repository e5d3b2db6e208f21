"""Server-rendered SVG charts (no JavaScript build): delivered per run, lag over time."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT, PAD = 640, 160, 28


def _scale(values: Sequence[float]) -> float:
    top = max(values, default=0)
    return top if top > 0 else 1


def bar_chart(points: Sequence[tuple[str, float]], title: str) -> str:
    """Bars oldest to newest; each bar's tooltip (``<title>``) names its label and value."""
    if not points:
        return f'<svg class="chart" role="img" aria-label="{escape(title)}: no runs" width="{WIDTH}" height="40"></svg>'
    top = _scale([v for _, v in points])
    step = (WIDTH - 2 * PAD) / len(points)
    bars = []
    for i, (label, value) in enumerate(points):
        h = (HEIGHT - 2 * PAD) * value / top
        x = PAD + i * step
        bars.append(
            f'<rect x="{x:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{max(step * 0.8, 1):.1f}" height="{h:.1f}">'
            f"<title>{escape(label)}: {value:g}</title></rect>"
        )
    return _frame(title, top, "".join(bars))


def line_chart(points: Sequence[tuple[str, float]], title: str) -> str:
    """A polyline oldest to newest, a dot per run with its tooltip."""
    if not points:
        return f'<svg class="chart" role="img" aria-label="{escape(title)}: no runs" width="{WIDTH}" height="40"></svg>'
    top = _scale([v for _, v in points])
    step = (WIDTH - 2 * PAD) / max(len(points) - 1, 1)
    coords = [
        (PAD + i * step, HEIGHT - PAD - (HEIGHT - 2 * PAD) * value / top, label, value)
        for i, (label, value) in enumerate(points)
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in coords)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{escape(label)}: {value:g}</title></circle>'
        for x, y, label, value in coords
    )
    return _frame(title, top, f'<polyline fill="none" points="{path}"/>{dots}')


def _frame(title: str, top: float, body: str) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        f'<text x="{PAD}" y="14">{escape(title)}</text>'
        f'<text x="{WIDTH - PAD}" y="14" text-anchor="end">max {top:g}</text>'
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}"/>'
        f"{body}</svg>"
    )
