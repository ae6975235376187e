"""The chart's pure parts: 1-2-5 ticks, units, the fitted time range, downsampling and the
grouping of markers that would overlap."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from backend.metrics.recorder import Point
from backend.web.chart import (
    CLUSTER_PX,
    MAX_SAMPLES,
    MAX_TIME_TICKS,
    MIN_SPAN,
    RANGES,
    Marker,
    build_chart,
    downsample,
    fitted_window,
    group_markers,
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


def change(at: datetime, name: str = "xss_protection_enabled") -> Marker:
    return Marker(at, f"{name} off", f"{at:%H:%M:%S} {name} off")


def test_group_markers__close_changes__one_group_labelled_with_the_count_listing_all() -> None:
    markers = [change(NOW), change(NOW, "csrf_tokens_enabled"), change(NOW, "thread_safe_sessions")]
    (group,) = group_markers(markers, {0: 300.0, 1: 301.0, 2: 305.0}, left=58, right=626)
    assert group.label == "3 changes"
    assert group.title.splitlines() == [m.detail for m in markers]
    assert (group.x, group.x_end) == (300.0, 305.0)


def test_group_markers__far_apart__each_labelled_with_its_flag_without_overlap() -> None:
    markers = [change(NOW - timedelta(minutes=m), f"flag_{m}") for m in range(4)]
    xs = {i: 100.0 + i * (CLUSTER_PX + 1) for i in range(4)}
    groups = group_markers(markers, xs, left=58, right=626)
    assert [g.label for g in groups] == [m.label for m in sorted(markers, key=lambda m: m.at)][::-1]
    assert len({g.label_row for g in groups}) > 1  # long labels staggered into rows
    spans: dict[int, list[tuple[float, float]]] = {}
    for g in groups:
        assert g.label is not None
        width = len(g.label) * 6.4
        lo = g.label_x if g.anchor == "start" else g.label_x - width
        for a, b in spans.get(g.label_row, []):
            assert lo >= b or lo + width <= a
        spans.setdefault(g.label_row, []).append((lo, lo + width))


def test_group_markers__near_the_right_edge__label_ends_at_the_marker() -> None:
    (group,) = group_markers([change(NOW)], {0: 620.0}, left=58, right=626)
    assert group.anchor == "end" and group.label_x < 620


def test_group_markers__emergency_rollback_counts_its_flags() -> None:
    rollback = Marker(NOW, "emergency rollback #10", "all off", emergency=True, changes=9)
    (group,) = group_markers([rollback, change(NOW)], {0: 400.0, 1: 402.0}, left=58, right=626)
    assert group.label == "10 changes" and group.emergency


def test_build_chart__three_minutes_of_data_in_an_hour__data_spans_the_plot() -> None:
    points = [point(NOW.replace(second=0) - timedelta(minutes=m)) for m in (2, 1, 0)]
    chart = build_chart(points, [], now=NOW, range_key="1h")
    plot = chart.right - chart.left
    xs = [d.x for d in chart.panels[0].dots]
    assert (chart.end - chart.start) == MIN_SPAN
    assert (max(xs) - min(xs)) / plot >= 0.3  # was under 4 % on a fixed 60-minute axis


def test_build_chart__half_an_hour_of_data__spans_nearly_the_whole_width() -> None:
    points = [point(NOW.replace(second=0) - timedelta(minutes=m)) for m in range(30)]
    chart = build_chart(points, [], now=NOW, range_key="6h")
    xs = [d.x for d in chart.panels[0].dots]
    assert min(xs) == chart.left
    assert (max(xs) - min(xs)) / (chart.right - chart.left) > 0.9


def test_build_chart__range__limits_what_is_drawn_and_the_axis() -> None:
    points = [point(NOW.replace(second=0) - timedelta(minutes=m)) for m in range(0, 600, 5)]
    short = build_chart(points, [], now=NOW, range_key="15m")
    long = build_chart(points, [], now=NOW, range_key="24h")
    in_short = [p for p in points if p.minute >= NOW - RANGES["15m"][0]]
    assert short.start == in_short[-1].minute and len(short.panels[0].dots) == len(in_short) == 3
    assert long.start == points[-1].minute
    assert [t.label for t in short.x_ticks] != [t.label for t in long.x_ticks]


def test_build_chart__a_minute_without_requests__breaks_the_line() -> None:
    minutes = [0, 1, 2, 5, 6]
    points = [point(NOW.replace(second=0) - timedelta(minutes=m)) for m in minutes]
    chart = build_chart(points, [], now=NOW)
    assert chart.panels[0].path.count("M") == 2


def test_build_chart__markers_outside_the_range__left_out() -> None:
    chart = build_chart([], [change(NOW - timedelta(hours=2)), change(NOW)], now=NOW)
    assert len(chart.markers) == 1 and chart.empty


def test_group_markers__many_close_changes__tooltip_names_some_and_counts_the_rest() -> None:
    markers = [change(NOW + timedelta(seconds=i), f"flag_{i}") for i in range(40)]
    (group,) = group_markers(markers, dict.fromkeys(range(40), 300.0), left=58, right=626)
    lines = group.title.splitlines()
    assert lines[0] == markers[0].detail and len(lines) == 16
    assert lines[-1] == "… and 25 more (see the history)"
    assert group.label == "40 changes" and len(group.members) == 40
