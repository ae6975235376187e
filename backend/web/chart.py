"""A server-rendered SVG timeline: p95 latency and error rate per minute, with flag changes
drawn as markers, so "did this change hurt?" is answered by looking (no script needed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from backend.metrics.recorder import Point


@dataclass(frozen=True, slots=True)
class Marker:
    at: datetime
    label: str
    emergency: bool


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    latency_path: str
    error_path: str
    markers: list[tuple[float, str, bool]]
    dots: list[tuple[float, float, float, str]]
    latency_max: float
    error_max: float
    start: datetime
    end: datetime
    empty: bool


def build_chart(
    points: Sequence[Point],
    markers: Sequence[Marker],
    *,
    start: datetime,
    end: datetime,
    width: int = 900,
    height: int = 240,
) -> Chart:
    """Coordinates for the template; x is time, left axis latency (ms), right axis errors (%)."""
    span = max((end - start).total_seconds(), 60.0)
    pad_x, pad_y = 50, 20
    inner_w, inner_h = width - 2 * pad_x, height - 2 * pad_y
    latency_max = max([p.p95_ms for p in points] + [10.0])
    error_max = max([p.error_rate * 100 for p in points] + [5.0])

    def x(moment: datetime) -> float:
        return round(pad_x + inner_w * (moment - start).total_seconds() / span, 1)

    def y(value: float, top: float) -> float:
        return round(pad_y + inner_h * (1 - min(value, top) / top), 1)

    def path(values: list[tuple[float, float]]) -> str:
        return " ".join(f"{'M' if i == 0 else 'L'}{vx},{vy}" for i, (vx, vy) in enumerate(values))

    return Chart(
        width=width,
        height=height,
        latency_path=path([(x(p.minute), y(p.p95_ms, latency_max)) for p in points]),
        error_path=path([(x(p.minute), y(p.error_rate * 100, error_max)) for p in points]),
        markers=[(x(m.at), m.label, m.emergency) for m in markers if start <= m.at <= end],
        dots=[
            (
                x(p.minute),
                y(p.p95_ms, latency_max),
                y(p.error_rate * 100, error_max),
                f"{p.minute:%H:%M} UTC: {p.requests} requests, p95 {p.p95_ms:.0f} ms, "
                f"{p.error_rate:.1%} errors",
            )
            for p in points
        ],
        latency_max=latency_max,
        error_max=error_max,
        start=start,
        end=end,
        empty=not points,
    )
