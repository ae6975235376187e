"""The axes of the charts, pure: 1-2-5 value ticks with one unit, a time axis fitted to the
data, round time ticks, and per-minute figures added up into fewer samples for long ranges."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from backend.metrics.recorder import Point

# A fitted axis is never shorter than this, so that one minute of data is not a full-width blur.
MIN_SPAN = timedelta(minutes=5)
# Candidate steps of the time axis and of the downsampling, in minutes.
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720)
SAMPLE_STEPS = (1, 2, 5, 10, 15, 30, 60)
MAX_TIME_TICKS = 6
MAX_SAMPLES = 180


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
