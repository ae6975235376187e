"""Server-rendered SVG charts of request latency and error rate per minute, with flag changes
drawn as labelled markers, so "did this change hurt?" is answered by looking (no script needed).

Everything here is pure: figures in, coordinates and labels out, for two drawings (wide
screens and phones). The axes (1-2-5 steps, a time range fitted to the data) are in
chart_axes.py, the grouping and labelling of markers in chart_markers.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from backend.metrics.recorder import Point
from backend.web.chart_axes import (
    MAX_SAMPLES,
    MAX_TIME_TICKS,
    Sample,
    downsample,
    fitted_window,
    latency_labels,
    nice_ticks,
    percent_labels,
    sample_step,
    time_label,
    time_ticks,
)
from backend.web.chart_markers import Marker, MarkerGroup, group_markers

__all__ = ["DEFAULT_RANGE", "RANGES", "Chart", "ChartSet", "Marker", "build_chart", "build_charts"]

# The range picker: query value -> (how far back, what the picker shows).
RANGES: dict[str, tuple[timedelta, str]] = {
    "15m": (timedelta(minutes=15), "15 min"),
    "1h": (timedelta(hours=1), "1 h"),
    "6h": (timedelta(hours=6), "6 h"),
    "24h": (timedelta(hours=24), "24 h"),
}
DEFAULT_RANGE: Final = "1h"
# SVG geometry (viewBox units); the SVG scales to its container's width.
LEFT, RIGHT = 58, 14
LABEL_ROW_PX = 14


@dataclass(frozen=True, slots=True)
class Layout:
    """One drawing of the chart: text keeps its size only if the viewBox is about as wide as
    the screen, so phones get a narrower drawing with fewer ticks (CSS shows one of them)."""

    name: str
    width: int
    max_ticks: int
    max_samples: int
    latency_height: int
    errors_height: int


WIDE = Layout("wide", 640, MAX_TIME_TICKS, MAX_SAMPLES, 150, 90)
NARROW = Layout("narrow", 360, 4, 90, 130, 70)


@dataclass(frozen=True, slots=True)
class Tick:
    at: float  # x or y in viewBox units
    label: str


@dataclass(frozen=True, slots=True)
class Dot:
    x: float
    y: float
    title: str


@dataclass(frozen=True, slots=True)
class Panel:
    """One SVG: one quantity against time, with its single y-axis label."""

    key: str  # css class and id part: "latency" or "errors"
    y_label: str
    height: int
    top: float
    bottom: float
    y_ticks: list[Tick]
    path: str
    dots: list[Dot]
    marker_labels: bool  # the first panel carries the marker labels, the others the lines


@dataclass(frozen=True, slots=True)
class Chart:
    layout: str
    width: int
    left: float
    right: float
    start: datetime
    end: datetime
    range_key: str
    sample_minutes: int
    x_ticks: list[Tick]
    markers: list[MarkerGroup]
    panels: list[Panel]
    empty: bool

    @property
    def ranges(self) -> list[tuple[str, str]]:
        return [(key, text) for key, (_, text) in RANGES.items()]

    @property
    def range_text(self) -> str:
        return RANGES[self.range_key][1]

    @property
    def label_rows_px(self) -> int:
        return LABEL_ROW_PX


def _path(coords: Sequence[tuple[float, float] | None]) -> str:
    """An SVG path through the coordinates; None breaks the line (a gap without requests)."""
    parts: list[str] = []
    pen_down = False
    for c in coords:
        if c is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{c[0]},{c[1]}")
        pen_down = True
    return " ".join(parts)


def _panel(
    key: str,
    y_label: str,
    samples: Sequence[Sample],
    value: str,
    x_of: dict[datetime, float],
    *,
    top: float,
    plot_height: float,
    marker_labels: bool,
) -> Panel:
    values = [getattr(s, value) for s in samples]
    if key == "latency":
        ticks = nice_ticks(max(values, default=0.0) or 1.0)
        labels = latency_labels(ticks)
    else:
        ticks = nice_ticks(max([*values, 1.0]), intervals=3)
        labels = percent_labels(ticks)
    bottom = top + plot_height
    high = ticks[-1]

    def y(v: float) -> float:
        return round(bottom - plot_height * min(v, high) / high, 1)

    coords: list[tuple[float, float] | None] = []
    previous: Sample | None = None
    for s, v in zip(samples, values, strict=True):
        if previous is not None and s.start - previous.start > s.step:
            coords.append(None)
        coords.append((x_of[s.start], y(v)))
        previous = s
    return Panel(
        key=key,
        y_label=y_label,
        height=round(bottom + 22),
        top=top,
        bottom=bottom,
        y_ticks=[Tick(y(t), text) for t, text in zip(ticks, labels, strict=True)],
        path=_path(coords),
        dots=[Dot(x_of[s.start], y(v), s.describe()) for s, v in zip(samples, values, strict=True)],
        marker_labels=marker_labels,
    )


def build_chart(
    points: Sequence[Point],
    markers: Sequence[Marker],
    *,
    now: datetime,
    range_key: str = DEFAULT_RANGE,
    layout: Layout = WIDE,
) -> Chart:
    """The latency and error panels of the chosen range, fitted to the data inside it."""
    reach = RANGES[range_key][0]
    earliest = now - reach
    points = [p for p in points if earliest <= p.minute <= now]
    markers = [m for m in markers if earliest <= m.at <= now]
    first = min([p.minute for p in points] + [m.at for m in markers], default=None)
    start, end = fitted_window(now, reach, first)
    span = (end - start).total_seconds()
    left, right = float(LEFT), float(layout.width - RIGHT)

    def x(moment: datetime) -> float:
        offset = (moment - start).total_seconds() / span
        return round(left + (right - left) * min(max(offset, 0.0), 1.0), 1)

    step = sample_step(end - start, layout.max_samples)
    samples = downsample(points, step)
    x_of = {s.start: x(max(s.start, start)) for s in samples}
    groups = group_markers(
        markers, {i: x(m.at) for i, m in enumerate(markers)}, left=left, right=right
    )
    rows = max((g.label_row + 1 for g in groups if g.label is not None), default=0)
    panels = [
        _panel(
            "latency",
            "p95 latency",
            samples,
            "p95_ms",
            x_of,
            top=24 + rows * LABEL_ROW_PX,
            plot_height=layout.latency_height,
            marker_labels=True,
        ),
        _panel(
            "errors",
            "Server errors (% of requests)",
            samples,
            "error_percent",
            x_of,
            top=24,
            plot_height=layout.errors_height,
            marker_labels=False,
        ),
    ]
    return Chart(
        layout=layout.name,
        width=layout.width,
        left=left,
        right=right,
        start=start,
        end=end,
        range_key=range_key,
        sample_minutes=int(step.total_seconds() // 60),
        x_ticks=[Tick(x(t), time_label(t)) for t in time_ticks(start, end, layout.max_ticks)],
        markers=groups,
        panels=panels,
        empty=not points,
    )


@dataclass(frozen=True, slots=True)
class ChartSet:
    """The same chart drawn for wide screens and for phones."""

    wide: Chart
    narrow: Chart

    @property
    def drawings(self) -> tuple[Chart, Chart]:
        return (self.wide, self.narrow)

    # The range, the time span, the markers and the emptiness are the same in both drawings.
    @property
    def range_key(self) -> str:
        return self.wide.range_key

    @property
    def ranges(self) -> list[tuple[str, str]]:
        return self.wide.ranges

    @property
    def range_text(self) -> str:
        return self.wide.range_text

    @property
    def start(self) -> datetime:
        return self.wide.start

    @property
    def end(self) -> datetime:
        return self.wide.end

    @property
    def empty(self) -> bool:
        return self.wide.empty

    @property
    def markers(self) -> list[MarkerGroup]:
        return self.wide.markers


def build_charts(
    points: Sequence[Point], markers: Sequence[Marker], *, now: datetime, range_key: str
) -> ChartSet:
    """The chart of `range_key` in both layouts."""
    return ChartSet(
        *(
            build_chart(points, markers, now=now, range_key=range_key, layout=layout)
            for layout in (WIDE, NARROW)
        )
    )
