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


def paired_times(fn: Callable[[], Any], base: Callable[[], Any], pairs: int = 21, warmup: int = 2, sync: Callable[[Any], Any] | None = None) -> list[tuple[float, float]]:
    """``pairs`` back-to-back pairs ``(time(fn), time(base))``, after ``warmup`` pairs.

    Each pair times one call of ``fn`` and then one call of ``base``, so
    the two see nearly the same load of a shared machine; the ratio of a
    pair is then meaningful even when the machine's speed drifts between
    pairs. The first calls (warm-up) also trigger ``jax.jit`` tracing and
    ``torch.compile`` compilation and are not timed.
    """
    sync = sync or (lambda r: r)
    for _ in range(warmup):
        sync(fn())
        sync(base())
    times = []
    for _ in range(pairs):
        t0 = time.perf_counter()
        sync(fn())
        t1 = time.perf_counter()
        sync(base())
        t2 = time.perf_counter()
        times.append((t1 - t0, t2 - t1))
    return times


def ratio_summary(times: list[tuple[float, float]]) -> dict[str, Any]:
    """Median, min and max of the per-pair ratios of ``paired_times``, and the ratios."""
    ratios = [t / b for t, b in times]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "ratios": ratios}
