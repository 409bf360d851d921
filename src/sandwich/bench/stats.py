"""The small statistics of the report: percentiles, per-second counts, downsampled series, ms."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default) of an ascending sequence."""
    if not sorted_values:
        raise ValueError("no values")
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    rank = q * (len(sorted_values) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = rank - low
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction)


def percentiles(values: Iterable[float]) -> dict[str, float | int | None]:
    """count, mean, p50, p95, p99 and max (seconds in, seconds out); None when there is nothing."""
    data = sorted(v for v in values if v is not None and not math.isnan(v))
    if not data:
        return {"count": 0, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    return {
        "count": len(data),
        "mean": sum(data) / len(data),
        "p50": quantile(data, 0.50),
        "p95": quantile(data, 0.95),
        "p99": quantile(data, 0.99),
        "max": data[-1],
    }


def per_second(times: Iterable[float], duration: float, *, width: float = 1.0) -> list[int]:
    """How many of `times` (seconds from the phase start) fall in each `width`-second bucket of
    [0, duration + the tail after it)."""
    counts: list[int] = [0] * max(1, math.ceil(duration / width))
    for t in times:
        if t < 0:
            continue
        index = int(t // width)
        while index >= len(counts):
            counts.append(0)
        counts[index] += 1
    return counts


def downsample(values: Sequence[float], limit: int) -> list[float]:
    """At most `limit` values, evenly picked from the sorted ones (keeps the distribution's shape)."""
    data = sorted(values)
    if len(data) <= limit:
        return data
    step = (len(data) - 1) / (limit - 1)
    return [data[round(i * step)] for i in range(limit)]


def ms(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 1000:.{digits}f}"
