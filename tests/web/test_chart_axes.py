"""The chart's axes: 1-2-5 ticks, one unit per axis, the fitted time range, round time
ticks and the downsampling of long ranges."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from backend.metrics.recorder import Point
from backend.web.chart_axes import (
    MAX_SAMPLES,
    MAX_TIME_TICKS,
    MIN_SPAN,
    downsample,
    fitted_window,
    latency_labels,
    nice_step,
    nice_ticks,
    percent_labels,
    sample_step,
    time_label,
    time_ticks,
)

NOW = datetime(2026, 12, 1, 16, 11, 50, tzinfo=UTC)


def is_round(value: float) -> bool:
    """1, 2 or 5 times a power of ten (or zero)."""
    if value == 0:
        return True
    mantissa = f"{value:e}".split("e")[0].rstrip("0").rstrip(".")
    return mantissa in ("1", "2", "5")


def point(minute: datetime, requests: int = 10, errors: int = 0, p95: float = 5.0) -> Point:
    return Point(minute, requests, errors, p95 / 2, p95, p95 * 2)


@pytest.mark.parametrize(
    ("raw", "step"),
    [(0.03, 0.05), (0.3, 0.5), (1, 1), (1.2, 2), (2, 2), (2.5, 5), (7, 10), (25, 50), (1001, 2000)],
)
def test_nice_step__any_positive_number__smallest_1_2_5_step_at_least_it(
    raw: float, step: float
) -> None:
    assert nice_step(raw) == step


@pytest.mark.parametrize("raw", [0, -1, float("inf"), float("nan")])
def test_nice_step__not_a_positive_number__refused(raw: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        nice_step(raw)


@pytest.mark.parametrize("high", [0.004, 0.7, 1, 3, 9.9, 10, 47, 100, 733, 1000, 5000, 123456])
def test_nice_ticks__any_maximum__round_steps_from_zero_covering_it(high: float) -> None:
    ticks = nice_ticks(high)
    steps = {round(b - a, 12) for a, b in itertools.pairwise(ticks)}
    assert ticks[0] == 0 and ticks[-1] >= high
    assert len(steps) == 1 and is_round(steps.pop())
    assert 3 <= len(ticks) <= 7
    assert ticks[-2] < high  # no empty band above the data


def test_nice_ticks__nothing_measured__a_unit_axis() -> None:
    assert nice_ticks(0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_latency_labels__below_a_second__milliseconds() -> None:
    assert latency_labels(nice_ticks(20)) == ["0 ms", "5 ms", "10 ms", "15 ms", "20 ms"]
    assert latency_labels(nice_ticks(1)) == [
        "0 ms",
        "0.2 ms",
        "0.4 ms",
        "0.6 ms",
        "0.8 ms",
        "1.0 ms",
    ]


def test_latency_labels__a_second_or_more__seconds_on_every_tick() -> None:
    assert latency_labels(nice_ticks(2000)) == ["0 s", "0.5 s", "1.0 s", "1.5 s", "2.0 s"]
    assert latency_labels(nice_ticks(5000)) == ["0 s", "1 s", "2 s", "3 s", "4 s", "5 s"]


def test_percent_labels__one_unit_and_the_step_precision() -> None:
    assert percent_labels(nice_ticks(1, intervals=3)) == ["0 %", "0.5 %", "1.0 %"]
    assert percent_labels(nice_ticks(40, intervals=3)) == ["0 %", "20 %", "40 %"]


def test_fitted_window__three_minutes_of_data_in_an_hour__axis_fits_the_data() -> None:
    first = NOW - timedelta(minutes=30)
    assert fitted_window(NOW, timedelta(hours=1), first) == (first, NOW)


def test_fitted_window__less_than_the_minimum__minimum_span_ending_now() -> None:
    first = NOW - timedelta(minutes=2)
    assert fitted_window(NOW, timedelta(hours=1), first) == (NOW - MIN_SPAN, NOW)


@pytest.mark.parametrize("first", [None, NOW - timedelta(days=2)])
def test_fitted_window__no_data_in_range__the_whole_range(first: datetime | None) -> None:
    assert fitted_window(NOW, timedelta(hours=6), first) == (NOW - timedelta(hours=6), NOW)


@pytest.mark.parametrize(
    "span",
    [MIN_SPAN, timedelta(minutes=13), timedelta(hours=1), timedelta(hours=6), timedelta(hours=24)],
)
def test_time_ticks__any_span__few_round_times_inside_it(span: timedelta) -> None:
    ticks = time_ticks(NOW - span, NOW)
    assert 2 <= len(ticks) <= MAX_TIME_TICKS
    assert all(NOW - span <= t <= NOW for t in ticks)
    steps = {b - a for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    step = steps.pop()
    assert step / timedelta(minutes=1) in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720)
    assert all(t.timestamp() % step.total_seconds() == 0 for t in ticks)


def test_time_label__midnight_shows_the_day() -> None:
    assert time_label(datetime(2026, 12, 1, 0, 0, tzinfo=UTC)) == "01 Dec"
    assert time_label(datetime(2026, 12, 1, 6, 30, tzinfo=UTC)) == "06:30"


def test_downsample__a_day__at_most_max_samples_adding_requests_and_errors() -> None:
    points = [point(NOW - timedelta(minutes=m), errors=m % 2) for m in range(1440)]
    step = sample_step(timedelta(hours=24))
    samples = downsample(points, step)
    assert len(samples) <= MAX_SAMPLES
    assert sum(s.requests for s in samples) == 14400
    assert sum(s.errors for s in samples) == 720


def test_downsample__worst_minute_p95_kept() -> None:
    start = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    points = [point(start, p95=5), point(start + timedelta(minutes=1), p95=500)]
    (sample,) = downsample(points, timedelta(minutes=5))
    assert sample.p95_ms == 500 and sample.requests == 20
    assert "16:00 to 16:05 UTC" in sample.describe() and "worst minute" in sample.describe()
