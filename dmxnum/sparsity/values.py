"""Sparseness values and their shorthand grammar (SPEC section 4).

A sparseness is an immutable, hashable value; ``str(spec)`` prints the
canonical shorthand and :func:`parse_sparseness` reads it back to an equal
value. Calling a value, ``spec(w, ...)``, is :func:`dmxnum.sparsify`.

Grammar (keywords are case-insensitive, blanks are ignored)::

    DENSE
    TOPK{density}(G)        density: a decimal in [0, 1], e.g. 0.5, .25, 1
    BTOPK{K:M,d}(G)         0 <= K <= M, M >= 1, d an integer axis (may be < 0)
    BERN
    G := M | U              M masks the weight gradient, U passes it unmasked

Canonical printing: upper-case keywords, no blanks, the density as the
shortest positional decimal that reads back to the same float (``0.5``,
``1``, ``0.00001``), K, M and d in decimal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Union

import numpy as np

from ..errors import FormatParameterError, ShorthandError

GRADIENT_MODES = ("M", "U")

GRAMMAR = (
    "DENSE | TOPK{density}(G) | BTOPK{K:M,d}(G) | BERN, with density a decimal in [0, 1], "
    "integers 0 <= K <= M, M >= 1, an axis d, and G = M (mask the gradient) or U (unmasked, "
    "straight-through)"
)


def _check_grad(grad: Any) -> None:
    if grad not in GRADIENT_MODES:
        raise FormatParameterError(
            f"gradient mode {grad!r} is not one of 'M' (mask the weight gradient) or "
            "'U' (pass it unmasked, straight-through)"
        )


def _check_int(what: str, value: Any) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
        raise FormatParameterError(f"{what} must be an integer, got {value!r}")


def shortest_decimal(value: float) -> str:
    """The shortest positional decimal string that reads back to ``value`` (``1.0`` -> ``"1"``)."""
    return np.format_float_positional(float(value), unique=True, trim="-")


class Sparseness:
    """Base class of every sparseness value; ``spec(w, ...)`` is ``dmxnum.sparsify(w, spec, ...)``."""

    #: True when the mask needs one random word per element (a key or random_bits).
    stochastic: ClassVar[bool] = False
    #: True when the scores cannot default to |w| (they must be passed explicitly).
    needs_scores: ClassVar[bool] = False

    def __call__(
        self,
        w: Any,
        scores: Any = None,
        key: Any = None,
        random_bits: Any = None,
        *,
        trainable_scores: bool = False,
    ) -> Any:
        """Sparsify ``w``; same as ``dmxnum.sparsify(w, self, ...)``."""
        from .api import sparsify

        return sparsify(w, self, scores, key, random_bits, trainable_scores=trainable_scores)


@dataclass(frozen=True)
class Dense(Sparseness):
    """``DENSE``: keep every element (the mask is all True; ``sparsify`` returns ``w``)."""

    grad: ClassVar[str] = "U"

    def __str__(self) -> str:
        return "DENSE"


@dataclass(frozen=True)
class TopK(Sparseness):
    """``TOPK{density}(G)``: keep the ``round_half_even(density * numel)`` largest scores.

    ``density`` is a float in [0, 1] read as the decimal it prints as (its
    shortest round-tripping decimal), so ``TopK(0.35)`` on 10 elements keeps
    ``round_half_even(3.5) = 4``. ``grad``: ``"U"`` (default) passes the
    weight gradient unmasked, ``"M"`` masks it.
    """

    density: float
    grad: str = "U"

    def __post_init__(self) -> None:
        d = self.density
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, float, np.integer, np.floating, str)):
            raise FormatParameterError(f"TOPK density must be a number in [0, 1], got {d!r}")
        try:
            value = float(d)
        except ValueError:
            raise FormatParameterError(f"TOPK density must be a number in [0, 1], got {d!r}") from None
        if not 0.0 <= value <= 1.0:  # also rejects NaN
            raise FormatParameterError(f"TOPK density {d!r} is outside [0, 1]; allowed: a decimal 0 <= density <= 1")
        object.__setattr__(self, "density", value)
        _check_grad(self.grad)

    def kept(self, numel: int) -> int:
        """Number of kept elements for ``numel`` elements: ``round_half_even(density * numel)``."""
        return round(Fraction(shortest_decimal(self.density)) * int(numel))

    def __str__(self) -> str:
        return f"TOPK{{{shortest_decimal(self.density)}}}({self.grad})"


@dataclass(frozen=True)
class BlockTopK(Sparseness):
    """``BTOPK{K:M,d}(G)``: keep the ``k`` largest scores in every group of ``m``
    consecutive elements along axis ``axis`` (N:M structured sparsity)."""

    k: int
    m: int
    axis: int = -1
    grad: str = "U"

    def __post_init__(self) -> None:
        _check_int("BTOPK group size M", self.m)
        _check_int("BTOPK kept count K", self.k)
        _check_int("BTOPK axis d", self.axis)
        if self.m < 1:
            raise FormatParameterError(f"BTOPK group size M = {self.m} is out of range; allowed: M >= 1")
        if not 0 <= self.k <= self.m:
            raise FormatParameterError(
                f"BTOPK kept count K = {self.k} is out of range for M = {self.m}; allowed: 0 <= K <= {self.m}"
            )
        for name in ("k", "m", "axis"):
            object.__setattr__(self, name, int(getattr(self, name)))
        _check_grad(self.grad)

    @property
    def density(self) -> float:
        """Fraction of kept elements, ``K / M``."""
        return self.k / self.m

    def __str__(self) -> str:
        return f"BTOPK{{{self.k}:{self.m},{self.axis}}}({self.grad})"


@dataclass(frozen=True)
class Bernoulli(Sparseness):
    """``BERN``: keep an element iff ``(r >> 8) * 2^-24 < p`` for its score (probability)
    ``p`` in [0, 1] and its uint32 random word ``r``. Scores and a key (or
    random_bits) are required; the weight gradient is masked."""

    stochastic: ClassVar[bool] = True
    needs_scores: ClassVar[bool] = True
    grad: ClassVar[str] = "M"

    def __str__(self) -> str:
        return "BERN"


SparsenessLike = Union[Sparseness, str]

_DECIMAL = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|[0-9]+\."
_TOPK = re.compile(rf"TOPK\{{({_DECIMAL})\}}\(([A-Z])\)")
_BTOPK = re.compile(r"BTOPK\{([-+]?[0-9]+):([-+]?[0-9]+),([-+]?[0-9]+)\}\(([A-Z])\)")


def _fail(text: str, what: str, suggestion: str | None = None) -> ShorthandError:
    msg = f"invalid sparseness {text!r}: {what}; expected {GRAMMAR}"
    if suggestion:
        msg += f"; did you mean {suggestion!r}?"
    return ShorthandError(msg)


def _suggest(compact: str) -> str | None:
    """A plausible canonical form for a near miss, or None."""
    nums = re.findall(r"[-+]?[0-9]*\.?[0-9]+", compact)
    grad = "M" if re.search(r"\(M\)$", compact) else "U"
    if compact.startswith("BTOPK") or compact.startswith("NM") or ":" in compact:
        ints = [n for n in nums if re.fullmatch(r"[-+]?[0-9]+", n)]
        if len(ints) >= 2:
            axis = ints[2] if len(ints) > 2 else "-1"
            return f"BTOPK{{{int(ints[0])}:{int(ints[1])},{int(axis)}}}({grad})"
        return "BTOPK{2:4,-1}(U)"
    if compact.startswith("TOPK"):
        if nums:
            return f"TOPK{{{nums[0]}}}({grad})"
        return "TOPK{0.5}(U)"
    if compact.startswith("BERN"):
        return "BERN"
    if compact.startswith("DENSE"):
        return "DENSE"
    return None


def parse_sparseness(spec: SparsenessLike) -> Sparseness:
    """Parse a sparseness shorthand (or return a sparseness value unchanged).

    ``parse_sparseness(str(s)) == s`` for every value ``s``. Malformed text
    raises :class:`dmxnum.errors.ShorthandError` quoting it, naming the bad
    part, giving the grammar and, where obvious, the closest valid form;
    parameters out of range (``K > M``, ``M < 1``, density outside [0, 1])
    raise :class:`dmxnum.errors.FormatParameterError` naming the value.
    """
    if isinstance(spec, Sparseness):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a sparseness is a Sparseness value or a shorthand string, got {type(spec).__name__}")
    compact = re.sub(r"\s+", "", spec).upper()
    if compact == "DENSE":
        return Dense()
    if compact == "BERN":
        return Bernoulli()
    if compact.startswith("BTOPK"):
        m = _BTOPK.fullmatch(compact)
        if m is None:
            raise _fail(spec, "BTOPK needs {K:M,d} and a gradient mode (M|U)", _suggest(compact))
        k, mm, axis, grad = m.groups()
        if grad not in GRADIENT_MODES:
            raise _fail(spec, f"gradient mode {grad!r} must be M or U", _suggest(compact))
        try:
            return BlockTopK(int(k), int(mm), int(axis), grad)
        except FormatParameterError as e:
            raise FormatParameterError(f"invalid sparseness {spec!r}: {e}") from None
    if compact.startswith("TOPK"):
        m = _TOPK.fullmatch(compact)
        if m is None:
            raise _fail(spec, "TOPK needs {density} with a decimal density and a gradient mode (M|U)", _suggest(compact))
        density, grad = m.groups()
        if grad not in GRADIENT_MODES:
            raise _fail(spec, f"gradient mode {grad!r} must be M or U", _suggest(compact))
        try:
            return TopK(float(density), grad)
        except FormatParameterError as e:
            raise FormatParameterError(f"invalid sparseness {spec!r}: {e}") from None
    raise _fail(spec, "unknown sparseness keyword", _suggest(compact))
