"""Flag changes on a chart: markers closer than a label's width are grouped into one ("3
changes", its tooltip naming them), and labels are stacked in rows so that none overlaps."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

CHAR_PX = 6.4  # mean advance of an 11 px sans-serif character, for label collision checks
LABEL_ROWS = 3
CLUSTER_PX = 40.0  # markers closer than this become one group
TITLE_LINES = 15  # a group's tooltip names this many changes, then says how many more


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
