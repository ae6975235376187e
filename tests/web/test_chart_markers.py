"""Markers on the chart: close changes grouped and counted, labels that never overlap."""

from __future__ import annotations

from datetime import datetime, timedelta

from backend.web.chart_markers import CLUSTER_PX, Marker, group_markers
from tests.web.test_chart_axes import NOW


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


def test_group_markers__many_close_changes__tooltip_names_some_and_counts_the_rest() -> None:
    markers = [change(NOW + timedelta(seconds=i), f"flag_{i}") for i in range(40)]
    (group,) = group_markers(markers, dict.fromkeys(range(40), 300.0), left=58, right=626)
    lines = group.title.splitlines()
    assert lines[0] == markers[0].detail and len(lines) == 16
    assert lines[-1] == "… and 25 more (see the history)"
    assert group.label == "40 changes" and len(group.members) == 40
