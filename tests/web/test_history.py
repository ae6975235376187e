"""/history in-process: rollbacks grouped under their record, older and newer pages that hold
still while changes are written, filters in UTC, and the CSV export of the same filters."""

from __future__ import annotations

import csv
import html
import io
import re

from fastapi.testclient import TestClient

FLAG = "thread_safe_sessions"


def flip(client: TestClient, headers: dict[str, str], times: int, name: str = FLAG) -> None:
    state = client.get(f"/api/feature-flags/{name}", headers=headers).json()["enabled"]
    for i in range(times):
        state = not state
        r = client.post(
            "/api/feature-flags/toggle",
            headers=headers,
            json={"flag_name": name, "enabled": state, "reason": f"change {i}"},
        )
        assert r.status_code == 200, r.text


def emergency(client: TestClient, headers: dict[str, str], reason: str) -> int:
    for f in client.get("/api/feature-flags", headers=headers).json()["flags"]:
        if not f["enabled"]:
            client.post(
                "/api/feature-flags/toggle",
                headers=headers,
                json={"flag_name": f["name"], "enabled": True},
            )
    r = client.post(
        "/api/feature-flags/emergency-rollback", headers=headers, json={"reason": reason}
    )
    assert r.status_code == 200, r.text
    return int(r.json()["record_id"])


def link(page: str, text: str) -> str | None:
    """The href of the first link whose text is `text`."""
    match = re.search(rf'<a href="([^"]+)"[^>]*>{re.escape(text)}</a>', page)
    return html.unescape(match.group(1)) if match else None


def rows(page: str) -> list[str]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr.*?</tr>", body, flags=re.S)


def test_history__emergency_rollback__one_group_with_record_reason_and_each_flag(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    # Given an emergency rollback of several flags
    record_id = emergency(client, admin_headers, "latency doubled")
    # When the history is shown
    page = client.get("/history", headers=admin_headers).text
    # Then the rollback is one expandable row with the record's id, actor and reason
    shown = rows(page)
    groups = [r for r in shown if "rollback-group" in r]
    assert len(groups) == 1
    group = groups[0]
    assert f'id="record-{record_id}"' in group and f"Emergency rollback #{record_id}" in group
    assert "<details>" in group and "latency doubled" in group and "token:admin" in group
    # And its per-flag changes are inside it, not rows of their own
    assert "xss_protection_enabled" in group and "csrf_tokens_enabled" in group
    assert [r for r in shown if "xss_protection_enabled" in r] == [group]


def test_history__more_than_a_page__older_link_pages_and_newer_comes_back(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    # Given 105 changes
    flip(client, admin_headers, 105)
    first = client.get("/history", headers=admin_headers).text
    assert len(rows(first)) == 100 and link(first, "← Newer") is None
    older = link(first, "Older →")
    assert older is not None
    # When more changes are written, then the older page is opened
    flip(client, admin_headers, 3, "csrf_tokens_enabled")
    second = client.get(older, headers=admin_headers).text
    # Then it holds exactly the 5 oldest changes, none of the new ones
    assert [re.search(r"change (\d+)", r).group(1) for r in rows(second)] == [  # type: ignore[union-attr]
        "4",
        "3",
        "2",
        "1",
        "0",
    ]
    assert link(second, "Older →") is None
    # And "newer" shows the first page as it was, "latest" the new changes too
    newer = link(second, "← Newer")
    assert newer is not None
    assert rows(client.get(newer, headers=admin_headers).text) == rows(first)
    latest = client.get(link(second, "Latest") or "", headers=admin_headers).text
    assert "csrf_tokens_enabled" in rows(latest)[0]


def test_history__paging_keeps_the_filters(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    flip(client, admin_headers, 101)
    flip(client, admin_headers, 2, "csrf_tokens_enabled")
    first = client.get(f"/history?flag={FLAG}", headers=admin_headers).text
    older = link(first, "Older →")
    assert older is not None and f"flag={FLAG}" in older
    assert all(FLAG in r for r in rows(client.get(older, headers=admin_headers).text))


def test_history__filters_say_utc_and_to_includes_the_minute_given(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    flip(client, admin_headers, 1)
    export = client.get("/history.csv", headers=admin_headers).text
    at = next(csv.DictReader(io.StringIO(export)))["at"]  # e.g. 2026-12-01T16:05:42.1+00:00
    minute = at[:16]
    page = client.get(f"/history?since={minute}&until={minute}", headers=admin_headers).text
    assert "From (UTC)" in page and "To (UTC)" in page and "Times are in UTC" in page
    assert "When (UTC)" in page
    assert len(rows(page)) == 1 and "change 0" in rows(page)[0]
    assert " UTC</td>" in rows(page)[0]  # the time shown says its zone


def test_history__bad_cursor_or_period__a_clear_422(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    for query, says in [
        ("before=3&after=1", "not both"),
        ("before=soon", "before"),
        ("after=0", "after"),
        ("since=2026-12-02&until=2026-12-01", "later than since"),
        ("until=tomorrow", "not a date"),
    ]:
        r = client.get(f"/history?{query}", headers=admin_headers)
        assert r.status_code == 422, query
        assert says in r.text, (query, r.text)


def test_history_csv__same_filters_every_page_no_cursor(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    flip(client, admin_headers, 103)
    flip(client, admin_headers, 1, "csrf_tokens_enabled")
    page = client.get(f"/history?flag={FLAG}&before=999999", headers=admin_headers).text
    csv_url = html.unescape(re.search(r'href="(/history\.csv[^"]*)"', page).group(1))  # type: ignore[union-attr]
    assert "before" not in csv_url and f"flag={FLAG}" in csv_url
    exported = list(csv.DictReader(io.StringIO(client.get(csv_url, headers=admin_headers).text)))
    assert len(exported) == 103 and {r["flag"] for r in exported} == {FLAG}
