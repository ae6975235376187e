"""The AWS regions botocore knows, from its own endpoints data (no network)."""

from __future__ import annotations

from functools import lru_cache

from botocore.loaders import create_loader


@lru_cache(maxsize=1)
def known_regions() -> frozenset[str]:
    """Every region of every partition in botocore's endpoints.json."""
    data = create_loader().load_data("endpoints")
    return frozenset(region for p in data["partitions"] for region in p.get("regions", {}))


def check_region(value: str) -> str:
    """`value` if botocore knows it; ValueError with the closest hint otherwise."""
    if value not in known_regions():
        raise ValueError(f"{value!r} is not an AWS region botocore knows (e.g. 'eu-west-1')")
    return value
