"""What a tool is: a name, a table's columns, typed parameters and a scan function."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from backend.aws.clients import AwsConnector

T = TypeVar("T")
R = TypeVar("R")
Row = dict[str, Any]


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Scan:
    """What a scan gets: clients, the region it covers, every region of the run, parameters."""

    aws: AwsConnector
    region: str
    regions: list[str]
    params: Any
    workers: int

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """`fn` over `items` in parallel, results in order (per-bucket or per-user calls)."""
        items = list(items)
        if len(items) <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            return list(pool.map(fn, items))


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    description: str
    columns: tuple[str, ...]
    # "regional": one scan per region, in parallel; "global": one scan for the account.
    scope: Literal["regional", "global"]
    scan: Callable[[Scan], list[Row]]
    params: type[BaseModel] = NoParams

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "scope": self.scope,
            "columns": list(self.columns),
            "params": self.params.model_json_schema().get("properties", {}),
            "read_only": True,
        }


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def tag(tags: list[dict[str, str]] | None, key: str) -> str:
    for t in tags or []:
        if t.get("Key") == key:
            return t.get("Value", "")
    return ""
