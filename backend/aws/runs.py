"""Running a tool across regions in parallel, and the record of every run (no secrets)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.aws.clients import AwsConnector
from backend.aws.errors import RunNotFound
from backend.aws.models import Provider, ToolRun
from backend.aws.tools import Row, Scan, Tool
from backend.core.csv_export import csv_text
from backend.db.base import utcnow

log = logging.getLogger("pcm_ops_tools.aws")


def execute(
    *,
    tool: Tool,
    provider: Provider,
    regions: list[str],
    params: BaseModel,
    aws: AwsConnector,
    workers: int,
    actor: str,
) -> ToolRun:
    """Run `tool`: one scan per region in parallel (or one for global tools); not yet saved."""
    started_at = utcnow()
    t0 = time.perf_counter()
    scan_regions = regions if tool.scope == "regional" else [provider.default_region]

    def scan(region: str) -> tuple[str, list[Row] | None, str | None]:
        try:
            return region, tool.scan(Scan(aws, region, regions, params, workers)), None
        except Exception as exc:  # each region fails alone; the message is scrubbed
            return region, None, aws.describe_error(exc)

    with ThreadPoolExecutor(max_workers=min(workers, len(scan_regions))) as pool:
        results = list(pool.map(scan, scan_regions))
    rows = [row for _, found, _ in results for row in found or []]
    errors = [{"region": r, "error": e} for r, _, e in results if e is not None]
    outcome = "ok" if not errors else ("failed" if len(errors) == len(results) else "partial")
    run = ToolRun(
        started_at=started_at,
        actor=actor,
        tool=tool.name,
        provider_id=provider.id,
        provider_name=provider.name,
        regions=regions,
        params=params.model_dump(mode="json"),
        duration_ms=round((time.perf_counter() - t0) * 1000, 1),
        outcome=outcome,
        row_count=len(rows),
        errors=errors,
        columns=list(tool.columns),
        rows=rows,
    )
    log.info(
        "AWS tool %s on provider %s by %s: %s, %d rows, %d region errors, %.0f ms",
        tool.name,
        provider.name,
        actor,
        outcome,
        len(rows),
        len(errors),
        run.duration_ms,
    )
    return run


def list_runs(
    *, db: Session, limit: int, offset: int, tool: str | None = None
) -> tuple[int, Sequence[ToolRun]]:
    """Runs, newest first, and how many there are."""
    query = select(ToolRun)
    count = select(func.count(ToolRun.id))
    if tool:
        query, count = query.where(ToolRun.tool == tool), count.where(ToolRun.tool == tool)
    rows = db.scalars(query.order_by(ToolRun.id.desc()).limit(limit).offset(offset)).all()
    return int(db.scalar(count) or 0), rows


def get_run(*, db: Session, run_id: int) -> ToolRun:
    run = db.get(ToolRun, run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run


def summary(run: ToolRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "tool": run.tool,
        "provider_id": run.provider_id,
        "provider": run.provider_name,
        "actor": run.actor,
        "started_at": run.started_at.isoformat(),
        "duration_ms": run.duration_ms,
        "outcome": run.outcome,
        "regions": run.regions,
        "params": run.params,
        "row_count": run.row_count,
        "errors": run.errors,
    }


def to_csv(run: ToolRun) -> str:
    """The run's table as CSV, header first (cells that would be formulas quoted as text)."""
    return csv_text(run.columns, ([row.get(c) for c in run.columns] for row in run.rows))
