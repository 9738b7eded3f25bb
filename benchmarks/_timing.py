"""Shared timing helpers for the benchmarks (median of repeated runs, after warm-up)."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def median_seconds(fn: Callable[[], Any], repeats: int = 15, warmup: int = 2, sync: Callable[[Any], Any] | None = None) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs.

    ``sync`` is applied to each result before the clock stops (e.g.
    ``block_until_ready`` for JAX).
    """
    sync = sync or (lambda r: r)
    for _ in range(warmup):
        sync(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def table(rows: list[list[str]], header: list[str]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def interleaved_ratio(fn: Callable[[], Any], base: Callable[[], Any], rounds: int = 9, sync: Callable[[Any], Any] | None = None) -> float:
    """Median over ``rounds`` of ``time(fn) / time(base)``, the two timed back to back.

    Timing each candidate right next to its baseline cancels most of the
    load changes of a shared machine, which single medians do not.
    """
    sync = sync or (lambda r: r)
    for _ in range(2):
        sync(fn())
        sync(base())
    ratios = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        sync(base())
        t1 = time.perf_counter()
        sync(fn())
        t2 = time.perf_counter()
        ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(ratios)
