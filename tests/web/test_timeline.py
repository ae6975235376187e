"""/timeline and the dashboard's chart as rendered SVG: one y-axis label per chart, round ticks,
data across the plot, a range picker that changes the axis, markers labelled and grouped."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from backend.metrics.models import RequestMetric
from backend.metrics.recorder import LATENCY_BUCKETS_MS

SVG = "{http://www.w3.org/2000/svg}"


def seed_minutes(sessions: sessionmaker[Session], minutes_ago: range, slow_ms: float) -> None:
    """Per-minute rows as a worker's recorder writes them: 20 requests a minute, some slow."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    slot = LATENCY_BUCKETS_MS.index(slow_ms)
    with sessions.begin() as s:
        for ago in minutes_ago:
            histogram = [0] * len(LATENCY_BUCKETS_MS)
            histogram[2] = 18
            histogram[slot] = 2
            s.add(
                RequestMetric(
                    minute=now - timedelta(minutes=ago),
                    pid=4242,
                    requests=20,
                    errors=ago % 3,
                    total_ms=200.0,
                    max_ms=slow_ms,
                    histogram=histogram,
                )
            )


def charts(page: str, layout: str = "wide") -> list[ET.Element]:
    """The SVGs of one drawing: "wide" for screens, "narrow" for phones."""
    drawing = page.split(f'<div class="drawing drawing-{layout}">', 1)[1].split("</div>", 1)[0]
    svgs = re.findall(r"<svg .*?</svg>", drawing, flags=re.S)
    assert svgs, "no chart on the page"
    return [ET.fromstring(s.replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1)) for s in svgs]


def by_class(svg: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in svg.iter() if name in (e.get("class") or "").split()]


def number(label: str) -> float:
    return float(label.split()[0])


def is_round(value: float) -> bool:
    return value == 0 or f"{value:e}".split("e")[0].rstrip("0").rstrip(".") in ("1", "2", "5")


@pytest.fixture
def measured(sessions: sessionmaker[Session]) -> None:
    """Forty minutes of requests, ending now, with a slow tail of 2 s."""
    seed_minutes(sessions, range(40), 2000)


@pytest.mark.parametrize("layout", ["wide", "narrow"])
def test_timeline__each_chart_one_y_axis_label_and_round_ticks(
    client: TestClient, admin_headers: dict[str, str], measured: None, layout: str
) -> None:
    latency, errors = charts(client.get("/timeline", headers=admin_headers).text, layout)
    for svg, unit in ((latency, "s"), (errors, "%")):
        assert len(by_class(svg, "y-label")) == 1
        labels = [t.text or "" for t in by_class(svg, "y-tick")]
        assert all(label.endswith(f" {unit}") for label in labels), labels
        values = [number(label) for label in labels]
        steps = {round(b - a, 9) for a, b in itertools.pairwise(values)}
        assert values[0] == 0 and len(steps) == 1 and is_round(steps.pop()), labels
    assert [t.text for t in by_class(latency, "y-label")] == ["p95 latency"]
    assert number(by_class(latency, "y-tick")[-1].text or "") >= 2  # the 2 s tail fits


@pytest.mark.parametrize("layout", ["wide", "narrow"])
def test_timeline__data_spans_the_plot_width(
    client: TestClient, admin_headers: dict[str, str], measured: None, layout: str
) -> None:
    latency = charts(client.get("/timeline?range=6h", headers=admin_headers).text, layout)[0]
    axis = [float(x.get("x1") or 0) for x in by_class(latency, "gridline")]
    left = min(axis)
    right = max(float(x.get("x2") or 0) for x in by_class(latency, "gridline"))
    xs = [float(c.get("cx") or 0) for c in by_class(latency, "dot")]
    assert len(xs) == 40
    assert (max(xs) - min(xs)) / (right - left) > 0.9


def test_timeline__range_picker__changes_the_time_axis(
    client: TestClient, admin_headers: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    # Given requests over the last five hours
    seed_minutes(sessions, range(0, 300, 3), 50)
    ticks = {}
    for key in ("15m", "1h", "6h", "24h"):
        page = client.get(f"/timeline?range={key}", headers=admin_headers).text
        assert f'href="/timeline?range={key}" aria-current="true"' in page
        latency = charts(page)[0]
        ticks[key] = [t.text for t in by_class(latency, "x-tick")]
        assert 2 <= len(ticks[key]) <= 6
    # Then each range has its own axis; 6 h and 24 h both fit the five hours of data
    assert len({tuple(ticks[k]) for k in ("15m", "1h", "6h")}) == 3
    assert ticks["6h"] == ticks["24h"]


def test_timeline__unknown_range__a_clear_422(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = client.get("/timeline?range=7d", headers=admin_headers)
    assert r.status_code == 422 and "range" in r.text


def test_timeline__emergency_rollback_and_a_change__labelled_markers_not_a_smear(
    client: TestClient, admin_headers: dict[str, str], measured: None
) -> None:
    # Given a flag change, then an emergency rollback of every flag a moment later
    client.post(
        "/api/feature-flags/toggle",
        headers=admin_headers,
        json={"flag_name": "csrf_tokens_enabled", "enabled": False, "reason": "try it"},
    )
    r = client.post(
        "/api/feature-flags/emergency-rollback", headers=admin_headers, json={"reason": "spike"}
    )
    record_id = r.json()["record_id"]
    # When the timeline is drawn
    latency, errors = charts(client.get("/timeline", headers=admin_headers).text)
    # Then the eight changes are one labelled group, its tooltip listing both
    (group,) = by_class(latency, "marker-group")
    assert [t.text for t in by_class(group, "marker-label")] == ["8 changes"]
    title = group.find(f"{SVG}title")
    assert title is not None and title.text is not None
    assert "csrf_tokens_enabled off by token:admin (api): try it" in title.text
    assert f"emergency rollback #{record_id} by token:admin: spike" in title.text
    assert "emergency" in (group.get("class") or "")
    assert len(by_class(group, "marker")) == 1
    # And the errors chart draws the same marker without repeating the label
    assert len(by_class(errors, "marker-group")) == 1 and not by_class(errors, "marker-label")


def test_timeline__nothing_measured__says_so_and_still_draws_axes(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    page = client.get("/timeline?range=15m", headers=admin_headers).text
    # the in-process client's own requests may not be flushed yet: either way, axes are drawn
    latency = charts(page)[0]
    assert len(by_class(latency, "y-label")) == 1 and by_class(latency, "x-tick")


def test_dashboard__chart_partial__same_svg_and_picker_links_to_timeline(
    client: TestClient, admin_headers: dict[str, str], measured: None
) -> None:
    page = client.get("/", headers=admin_headers).text
    latency = charts(page)[0]
    assert len(by_class(latency, "y-label")) == 1
    assert 'href="/timeline?range=6h"' in page


def test_chart_pages__strict_csp_kept__no_style_attribute_or_inline_script(
    client: TestClient, admin_headers: dict[str, str], measured: None
) -> None:
    # (an emergency rollback would switch the CSP itself off: xss_protection_enabled)
    client.post(
        "/api/feature-flags/toggle",
        headers=admin_headers,
        json={"flag_name": "thread_safe_sessions", "enabled": False, "reason": "drill"},
    )
    for path in ("/timeline?range=24h", "/", "/history"):
        r = client.get(path, headers=admin_headers)
        policy = r.headers["content-security-policy"]
        assert "unsafe-inline" not in policy and "style-src 'self' 'nonce-" in policy
        assert " style=" not in r.text and "<style" not in r.text, path
        assert "<script>" not in r.text and " on" + "click=" not in r.text, path
