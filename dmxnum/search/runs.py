"""What both frontends' sensitivity runs share: the on-disk score cache, the
progress bar and the search report (framework-neutral)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Callable

from .search import SearchResult
from .table import ScoreTable


def evaluate_id(evaluate: Callable) -> str:
    """The identity of an ``evaluate`` callback in cache keys: its
    ``cache_key`` attribute, else its module and qualified name."""
    own = getattr(evaluate, "cache_key", None)
    if own is not None:
        return str(own)
    return f"{getattr(evaluate, '__module__', '?')}.{getattr(evaluate, '__qualname__', repr(evaluate))}"


class ScoreCache:
    """Measured scores on disk: one JSON file ``sensitivity-<key>.json`` in
    ``directory`` per ``identity`` (the model's fingerprint and
    :func:`evaluate_id`), rewritten atomically after every score, so an
    interrupted run resumes. ``directory=None``: an in-memory cache."""

    def __init__(self, directory: Any, identity: str):
        self.path = None
        self.data: dict[str, float] = {}
        if directory is None:
            return
        key = hashlib.sha256(identity.encode()).hexdigest()[:24]
        self.path = Path(directory) / f"sensitivity-{key}.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.data = json.loads(self.path.read_text())

    def get(self, key: str) -> float | None:
        """The cached score under ``key``, or None."""
        return self.data.get(key)

    def put(self, key: str, value: float) -> None:
        """Store ``value`` under ``key`` (and on disk)."""
        self.data[key] = value
        if self.path is not None:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data))
            tmp.replace(self.path)


def progress_bar(total: int, desc: str, progress: bool | None):
    """A tqdm bar with an ETA on stderr; shown when ``progress`` is True, or
    None and more than 4 steps."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False,
                disable=progress is False or (progress is None and total <= 4))


class SearchReport:
    """What a frontend's ``search`` found: ``bits`` (average bits per element
    over the sites, element-weighted), ``predicted`` (the summed score),
    ``metric`` (``evaluate`` of the configured model, when evaluated),
    ``result`` (the :class:`~dmxnum.search.SearchResult`) and ``table``."""

    def __init__(self, result: SearchResult, table: ScoreTable, metric: float | None):
        self.result, self.table = result, table
        self.bits, self.predicted, self.metric = result.bits, result.predicted, metric

    def __repr__(self) -> str:
        metric = "" if self.metric is None else f", metric={self.metric:.4g}"
        return f"SearchReport(bits={self.bits:.4g}, predicted={self.predicted:.4g}{metric})"
