"""Mixed-precision search: which sites tolerate which format under a bit budget.

Framework-neutral and deterministic (NumPy over tables); the PyTorch and Flax
frontends measure the scores.

* :mod:`.sites`: ``Site(module, slot, elements)``, ``bits_of``;
* :mod:`.table`: ``ScoreTable`` (measured / proxy scores, Markdown, CSV,
  Spearman), ``spearman``;
* :mod:`.solver`: ``solve_exact`` (multiple-choice knapsack, exact),
  ``solve_greedy`` (baseline);
* :mod:`.search`: ``search``, ``uniform``, ``random_permutations``,
  ``pareto``, ``evaluated``, ``SearchResult``;
* :mod:`.plots` (imported on first use; needs matplotlib): ``heatmap``,
  ``pareto_plot``, ``bits_bars``.
"""

from __future__ import annotations

from .search import SearchResult, evaluated, pareto, random_permutations, search, uniform
from .sites import Site, bits_of
from .solver import solve_exact, solve_greedy
from .table import ScoreTable, spearman

__all__ = [
    "Site", "bits_of", "ScoreTable", "spearman", "solve_exact", "solve_greedy",
    "SearchResult", "search", "uniform", "random_permutations", "pareto", "evaluated", "plots",
]


def __getattr__(name: str):
    if name == "plots":
        import importlib

        return importlib.import_module(".plots", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
