"""Server-rendered SVG charts of request latency and error rate per minute, with flag changes
drawn as labelled markers, so "did this change hurt?" is answered by looking (no script needed).

Everything here is pure: figures in, coordinates and labels out. Axes use 1-2-5 steps, the
time axis is fitted to the data inside the chosen range, and markers that would overlap are
grouped into one ("3 changes") whose tooltip lists them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from backend.metrics.recorder import Point

# The range picker: query value -> (how far back, what the picker shows).
RANGES: dict[str, tuple[timedelta, str]] = {
    "15m": (timedelta(minutes=15), "15 min"),
    "1h": (timedelta(hours=1), "1 h"),
    "6h": (timedelta(hours=6), "6 h"),
    "24h": (timedelta(hours=24), "24 h"),
}
DEFAULT_RANGE: Final = "1h"
# A fitted axis is never shorter than this, so that one minute of data is not a full-width blur.
MIN_SPAN = timedelta(minutes=5)
# Candidate steps of the time axis and of the downsampling, in minutes.
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720)
SAMPLE_STEPS = (1, 2, 5, 10, 15, 30, 60)
MAX_TIME_TICKS = 6
MAX_SAMPLES = 180
# SVG geometry (viewBox units); the SVG scales to its container's width.
LEFT, RIGHT = 58, 14
CHAR_PX = 6.4  # mean advance of an 11 px sans-serif character, for label collision checks
LABEL_ROW_PX = 14
LABEL_ROWS = 3
CLUSTER_PX = 40.0  # markers closer than this become one group
TITLE_LINES = 15  # a group's tooltip names this many changes, then says how many more


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


# --- axes -----------------------------------------------------------------------------------


def nice_step(raw: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least `raw` (> 0)."""
    if raw <= 0 or not math.isfinite(raw):
        raise ValueError(f"step must be a positive number, not {raw!r}")
    base = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        step = factor * base
        if step >= raw * (1 - 1e-9):
            return _clean(step)
    raise AssertionError("unreachable: 10 * base >= raw")


def nice_ticks(high: float, intervals: int = 5) -> list[float]:
    """Ticks from 0 up to the first multiple of a 1-2-5 step at or above `high`."""
    high = high if high > 0 and math.isfinite(high) else 1.0
    step = nice_step(high / intervals)
    count = math.ceil(high / step - 1e-9)
    return [_clean(i * step) for i in range(count + 1)]


def _clean(value: float) -> float:
    """`value` without binary noise (0.30000000000000004 -> 0.3)."""
    return float(f"{value:.12g}")


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0


def latency_labels(ticks: Sequence[float]) -> list[str]:
    """Tick labels of a latency axis in ms, or in s when it reaches a second (one unit)."""
    if len(ticks) < 2:
        return [f"{t:g} ms" for t in ticks]
    in_seconds = ticks[-1] >= 1000
    scale, unit = (1000.0, "s") if in_seconds else (1.0, "ms")
    digits = _decimals((ticks[1] - ticks[0]) / scale)
    return [f"{t / scale:.{digits}f} {unit}" if t else f"0 {unit}" for t in ticks]


def percent_labels(ticks: Sequence[float]) -> list[str]:
    """Tick labels of a percentage axis (values already in percent)."""
    digits = _decimals(ticks[1] - ticks[0]) if len(ticks) > 1 else 0
    return [f"{t:.{digits}f} %" if t else "0 %" for t in ticks]


def fitted_window(
    now: datetime, reach: timedelta, first_data: datetime | None
) -> tuple[datetime, datetime]:
    """The time axis: from the first data inside the last `reach` (or the whole range when
    there is none) to `now`, never shorter than MIN_SPAN nor longer than `reach`."""
    earliest = now - reach
    start = earliest if first_data is None or first_data < earliest else first_data
    start = max(min(start, now - MIN_SPAN), earliest)
    return start, now


def time_step(span: timedelta, max_ticks: int = MAX_TIME_TICKS) -> timedelta:
    """The smallest round step that puts at most `max_ticks` ticks on `span`."""
    for minutes in TIME_STEPS:
        if span / timedelta(minutes=minutes) <= max_ticks:
            return timedelta(minutes=minutes)
    return timedelta(minutes=TIME_STEPS[-1])


def time_ticks(start: datetime, end: datetime, max_ticks: int = MAX_TIME_TICKS) -> list[datetime]:
    """Round UTC times (multiples of the step since midnight) between `start` and `end`."""
    step = int(time_step(end - start, max_ticks).total_seconds())
    first = math.ceil(start.timestamp() / step) * step
    return [datetime.fromtimestamp(t, UTC) for t in range(first, int(end.timestamp()) + 1, step)]


def time_label(moment: datetime) -> str:
    """HH:MM, or the date at midnight so that a 24 h axis says which day is which."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%d %b") if (moment.hour, moment.minute) == (0, 0) else f"{moment:%H:%M}"


def sample_step(span: timedelta, max_samples: int = MAX_SAMPLES) -> timedelta:
    """How many minutes one plotted sample covers, so that a range has <= `max_samples`."""
    for minutes in SAMPLE_STEPS:
        if span / timedelta(minutes=minutes) <= max_samples:
            return timedelta(minutes=minutes)
    return timedelta(minutes=SAMPLE_STEPS[-1])


# --- data -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """The minutes of one plotted step added up; p95 is the worst minute's."""

    start: datetime
    step: timedelta
    requests: int
    errors: int
    p95_ms: float

    @property
    def error_percent(self) -> float:
        return 100.0 * self.errors / self.requests if self.requests else 0.0

    def describe(self) -> str:
        when = f"{self.start:%H:%M}"
        if self.step > timedelta(minutes=1):
            when += f" to {self.start + self.step:%H:%M}"
            p95 = f"worst minute's p95 {_ms(self.p95_ms)}"
        else:
            p95 = f"p95 {_ms(self.p95_ms)}"
        return (
            f"{when} UTC: {self.requests} requests, {p95}, "
            f"{self.errors} server error{'' if self.errors == 1 else 's'} "
            f"({self.error_percent:.1f} %)"
        )


def _ms(value: float) -> str:
    return f"{value / 1000:g} s" if value >= 1000 else f"{value:g} ms"


def downsample(points: Sequence[Point], step: timedelta) -> list[Sample]:
    """Per-minute points added up into samples of `step`, aligned on UTC multiples of it."""
    width = int(step.total_seconds())
    merged: dict[int, list[Point]] = {}
    for p in points:
        merged.setdefault(int(p.minute.timestamp()) // width * width, []).append(p)
    return [
        Sample(
            start=datetime.fromtimestamp(key, UTC),
            step=step,
            requests=sum(p.requests for p in group),
            errors=sum(p.errors for p in group),
            p95_ms=max(p.p95_ms for p in group),
        )
        for key, group in sorted(merged.items())
    ]


# --- markers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Marker:
    """One flag change, or one rollback of several flags (`changes` of them)."""

    at: datetime
    label: str
    detail: str
    emergency: bool = False
    changes: int = 1


@dataclass(frozen=True, slots=True)
class MarkerGroup:
    """Markers close enough on the axis to be drawn, labelled and explained as one."""

    x: float
    x_end: float
    label: str | None  # None: no room for text; the tooltip still lists the changes
    label_x: float
    label_row: int
    anchor: str
    title: str
    emergency: bool
    members: tuple[Marker, ...]

    @property
    def changes(self) -> int:
        return sum(m.changes for m in self.members)

    @property
    def when(self) -> str:
        """The group's time span, to the second (UTC)."""
        first, last = self.members[0].at, self.members[-1].at
        text = f"{first:%H:%M:%S}"
        return text if f"{last:%H:%M:%S}" == text else f"{text} to {last:%H:%M:%S}"


def _listing(members: Sequence[Marker]) -> str:
    lines = [m.detail for m in members[:TITLE_LINES]]
    if len(members) > TITLE_LINES:
        lines.append(f"… and {len(members) - TITLE_LINES} more (see the history)")
    return "\n".join(lines)


def group_markers(
    markers: Sequence[Marker], x_of: dict[int, float], *, left: float, right: float
) -> list[MarkerGroup]:
    """Cluster markers closer than CLUSTER_PX, then give each cluster a label in the first of
    LABEL_ROWS rows where it overlaps no other; a label that fits nowhere is left out."""
    ordered = sorted(range(len(markers)), key=lambda i: x_of[i])
    clusters: list[list[int]] = []
    for i in ordered:
        if clusters and x_of[i] - x_of[clusters[-1][0]] < CLUSTER_PX:
            clusters[-1].append(i)
        else:
            clusters.append([i])
    row_ends = [-math.inf] * LABEL_ROWS
    groups = []
    for cluster in clusters:
        members = tuple(markers[i] for i in cluster)
        x, x_end = x_of[cluster[0]], x_of[cluster[-1]]
        count = sum(m.changes for m in members)
        texts = [members[0].label] if len(members) == 1 else []
        texts.append(f"{count} change{'s' if count != 1 else ''}")
        label, label_x, row, anchor = None, x + 3, 0, "start"
        for text in texts:
            width = len(text) * CHAR_PX
            label_x, anchor = (x + 3, "start") if x + 3 + width <= right else (x - 3, "end")
            lo = label_x if anchor == "start" else max(left, label_x - width)
            free = [r for r in range(LABEL_ROWS) if row_ends[r] + 4 <= lo]
            if free:
                label, row = text, free[0]
                row_ends[row] = lo + width
                break
        groups.append(
            MarkerGroup(
                x=x,
                x_end=x_end,
                label=label,
                label_x=round(label_x, 1),
                label_row=row,
                anchor=anchor,
                title=_listing(members),
                emergency=any(m.emergency for m in members),
                members=members,
            )
        )
    return groups


# --- the chart ------------------------------------------------------------------------------


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
