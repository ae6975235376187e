"""The chart as a whole: the data spread over the plot, the range, gaps and markers."""

from __future__ import annotations

from datetime import timedelta

from backend.web.chart import RANGES, build_chart
from backend.web.chart_axes import MIN_SPAN
from tests.web.test_chart_axes import NOW, point
from tests.web.test_chart_markers import change


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
