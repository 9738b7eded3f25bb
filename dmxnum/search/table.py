"""Per-site sensitivity scores: the input of a mixed-precision search.

A :class:`ScoreTable` holds, for every site and every candidate format, the
change of a metric when that site alone takes the candidate and every other
site stays at the baseline (unconfigured) numerics: ``measured`` (from
evaluating the model) and/or ``proxy`` (a cheap estimate such as a
quantization error). Lower is better: a score is the *cost* of a choice.
The frontends produce the tables; this module only stores, prints, saves and
compares them.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .sites import Site, bits_of, canonical

KINDS = ("measured", "proxy")


def _matrix(name: str, value, shape: tuple[int, int]) -> np.ndarray | None:
    if value is None:
        return None
    a = np.array(value, dtype=np.float64)  # a copy, so the caller's array stays theirs
    if a.shape != shape:
        raise ValueError(f"ScoreTable.{name} must have shape {shape} (sites x candidates), got {a.shape}")
    if np.isinf(a).any():
        raise ValueError(f"ScoreTable.{name} must be finite or NaN (not measured), found an infinity")
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class ScoreTable:
    """Scores of every (site, candidate) pair.

    ``sites``: the sites, in the model's order (no (module, slot) twice);
    ``candidates``: candidate formats, stored as canonical shorthands
    (``str(dmxnum.parse(c))``) in the given order (no duplicates after
    canonicalization); ``measured`` / ``proxy``: ``len(sites) x
    len(candidates)`` arrays (copied, read-only, float64) of the metric change
    when that site alone takes that candidate, ``NaN`` where not measured
    (the candidate is then not allowed there); infinities are rejected;
    either may be ``None``. ``baseline``: the unconfigured metric;
    ``metric_name``: its name, for tables and plots.
    """

    sites: tuple[Site, ...]
    candidates: tuple[str, ...]
    measured: np.ndarray | None = None
    proxy: np.ndarray | None = None
    baseline: float | None = None
    metric_name: str = "metric"

    def __post_init__(self) -> None:
        sites = tuple(self.sites)
        if not sites or not all(isinstance(s, Site) for s in sites):
            raise ValueError("ScoreTable.sites must be a non-empty sequence of Site")
        seen: set[tuple[str, str]] = set()
        for s in sites:
            if (s.module, s.slot) in seen:
                raise ValueError(f"ScoreTable.sites lists {s.label} twice")
            seen.add((s.module, s.slot))
        cands = tuple(canonical(c) for c in self.candidates)
        if not cands:
            raise ValueError("ScoreTable.candidates must not be empty")
        if len(set(cands)) != len(cands):
            dup = sorted({c for c in cands if cands.count(c) > 1})
            raise ValueError(f"ScoreTable.candidates name the same format twice: {dup}")
        shape = (len(sites), len(cands))
        object.__setattr__(self, "sites", sites)
        object.__setattr__(self, "candidates", cands)
        object.__setattr__(self, "measured", _matrix("measured", self.measured, shape))
        object.__setattr__(self, "proxy", _matrix("proxy", self.proxy, shape))
        if self.baseline is not None:
            object.__setattr__(self, "baseline", float(self.baseline))

    # -- views -------------------------------------------------------------

    @property
    def bits(self) -> np.ndarray:
        """Bits per element of each candidate (:func:`bits_of`), shape ``(n_candidates,)``."""
        return np.array([bits_of(c) for c in self.candidates], dtype=np.float64)

    @property
    def elements(self) -> np.ndarray:
        """Element count of each site (int64), shape ``(n_sites,)``."""
        return np.array([s.elements for s in self.sites], dtype=np.int64)

    def scores(self, kind: str = "measured") -> np.ndarray:
        """The read-only ``measured`` or ``proxy`` array; ``ValueError`` for
        another ``kind`` or when the table holds no array of that kind."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        a = getattr(self, kind)
        if a is None:
            raise ValueError(f"this ScoreTable has no {kind} scores")
        return a

    def index(self, candidate) -> int:
        """Column of ``candidate`` (any spelling ``dmxnum.parse`` accepts);
        ``ValueError`` naming the candidates when it is not one of them."""
        c = canonical(candidate)
        try:
            return self.candidates.index(c)
        except ValueError:
            raise ValueError(f"{c} is not a candidate of this table ({', '.join(self.candidates)})") from None

    def spearman(self) -> float:
        """Spearman rank correlation between ``proxy`` and ``measured``.

        Taken over every (site, candidate) pair where both are finite: the
        Pearson correlation of the two rank vectors, tied values getting the
        average of their ranks (as ``scipy.stats.spearmanr``). ``NaN`` when
        fewer than two pairs remain or either side is constant there;
        ``ValueError`` when the table lacks either kind.
        """
        m, p = self.scores("measured"), self.scores("proxy")
        ok = np.isfinite(m) & np.isfinite(p)
        return spearman(p[ok], m[ok])

    # -- text --------------------------------------------------------------

    def to_markdown(self) -> str:
        """Markdown text: a header line (metric, baseline, Spearman when both
        kinds exist), then one table per present kind with a row per site
        (``module``, ``slot``, ``elements``) and a column per candidate
        (headed ``shorthand (bits)``); values in ``%.4g``, ``n/a`` for NaN."""
        lines = [f"**{self.metric_name}**"
                 + (f", baseline {self.baseline:.6g}" if self.baseline is not None else "")
                 + (f", Spearman(proxy, measured) = {self.spearman():.3f}"
                    if self.measured is not None and self.proxy is not None else "")]
        head = "| module | slot | elements | " + " | ".join(
            f"{c} ({b:g})" for c, b in zip(self.candidates, self.bits)) + " |"
        rule = "|" + "---|" * 3 + "---:|" * len(self.candidates)
        for kind in KINDS:
            a = getattr(self, kind)
            if a is None:
                continue
            lines += ["", f"{kind} change in {self.metric_name}:", "", head, rule]
            for site, row in zip(self.sites, a):
                cells = " | ".join("n/a" if math.isnan(v) else f"{v:.4g}" for v in row)
                lines.append(f"| {site.module} | {site.slot} | {site.elements} | {cells} |")
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """CSV text that :meth:`from_csv` reads back to an equal table.

        Two ``# key: JSON`` lines (``metric_name``, ``baseline``), then a
        header ``module,slot,elements,candidate[,measured][,proxy]`` and one
        row per (site, candidate), sites then candidates in table order.
        Scores are written with ``repr`` (exact round trip), NaN as an empty
        cell; a kind column is present exactly when that array is.
        """
        out = io.StringIO()
        out.write(f"# metric_name: {json.dumps(self.metric_name)}\n")
        out.write(f"# baseline: {json.dumps(self.baseline)}\n")
        kinds = [k for k in KINDS if getattr(self, k) is not None]
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["module", "slot", "elements", "candidate", *kinds])
        for i, site in enumerate(self.sites):
            for j, c in enumerate(self.candidates):
                vals = [getattr(self, k)[i, j] for k in kinds]
                w.writerow([site.module, site.slot, site.elements, c,
                            *("" if math.isnan(v) else repr(float(v)) for v in vals)])
        return out.getvalue()

    @classmethod
    def from_csv(cls, text: str) -> "ScoreTable":
        """The table written by :meth:`to_csv`. Sites and candidates come in
        first-seen order; a (site, candidate) pair missing from the rows is
        NaN; ``# key: JSON`` lines before the header set ``metric_name`` and
        ``baseline``. ``ValueError`` for a missing column or a site listed
        with two element counts."""
        meta: dict[str, object] = {}
        body = []
        for line in text.splitlines():
            if not body and line.startswith("#"):
                key, _, value = line[1:].partition(":")
                meta[key.strip()] = json.loads(value)
            elif line.strip() or body:
                body.append(line)
        rows = list(csv.DictReader(body))
        if not rows:
            raise ValueError("no score rows in the CSV text")
        missing = {"module", "slot", "elements", "candidate"} - set(rows[0])
        if missing:
            raise ValueError(f"the CSV text lacks the column(s) {sorted(missing)}")
        kinds = [k for k in KINDS if k in rows[0]]
        sites: dict[tuple[str, str], int] = {}
        cands: dict[str, None] = {}
        for r in rows:
            key = (r["module"], r["slot"])
            if sites.setdefault(key, int(r["elements"])) != int(r["elements"]):
                raise ValueError(f"site {key[0]}:{key[1]} is listed with two element counts")
            cands.setdefault(canonical(r["candidate"]), None)
        si = {k: i for i, k in enumerate(sites)}
        ci = {c: j for j, c in enumerate(cands)}
        arrays = {k: np.full((len(sites), len(cands)), np.nan) for k in kinds}
        for r in rows:
            i, j = si[(r["module"], r["slot"])], ci[canonical(r["candidate"])]
            for k in kinds:
                if r[k].strip():
                    arrays[k][i, j] = float(r[k])
        return cls(
            sites=tuple(Site(m, s, e) for (m, s), e in sites.items()),
            candidates=tuple(cands),
            measured=arrays.get("measured"),
            proxy=arrays.get("proxy"),
            baseline=meta.get("baseline"),
            metric_name=str(meta.get("metric_name", "metric")),
        )

    def __eq__(self, other: object) -> bool:
        """Equal sites, candidates, metric name, baseline and arrays
        (NaN equal to NaN, in the baseline too; a missing array equal only
        to a missing one)."""
        if not isinstance(other, ScoreTable):
            return NotImplemented

        def same(a, b) -> bool:
            return (a is None) == (b is None) and (a is None or np.array_equal(a, b, equal_nan=True))

        return (self.sites == other.sites and self.candidates == other.candidates
                and self.metric_name == other.metric_name
                and (self.baseline == other.baseline
                     or (self.baseline is not None and other.baseline is not None
                         and math.isnan(self.baseline) and math.isnan(other.baseline)))
                and same(self.measured, other.measured) and same(self.proxy, other.proxy))

    __hash__ = None  # type: ignore[assignment]


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    xs = x[order]
    # first index of each run of equal values, and the run lengths
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    counts = np.diff(np.r_[starts, xs.size])
    avg = starts + (counts - 1) / 2.0 + 1.0  # 1-based average rank of each run
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(avg, counts)
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation of two equally long 1-D sequences.

    The Pearson correlation of their ranks, ties given the average rank;
    ``NaN`` when fewer than two values or either side is constant. Non-finite
    inputs raise ``ValueError`` (filter them first).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"spearman needs equally long inputs, got {x.size} and {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("spearman needs finite inputs")
    if x.size < 2:
        return float("nan")
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    den = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry / den) if den > 0 else float("nan")
