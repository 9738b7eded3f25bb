"""Calibration observers: static scales ``s`` for ``dmxnum.cast(x, fmt, scale=s)``.

An observer streams over calibration batches (:meth:`Observer.update`) and
then gives the scale (:meth:`Observer.scale`), per tensor or per index of
one axis. Every kind ends with the same formula (SPEC section 3, static
scales)::

    s = fl32(fl32(amax * ratio) / fmt.max_value)

(each step one IEEE float32 operation, RNE), then clamped into the range
``cast`` accepts (``[2^-126, 3.4e38]``; ``NVFP4(T)``: ``[2^-120, 2^116]``),
so that nothing observed, or only zeros, gives the lower end. The kinds
differ in ``amax`` and ``ratio``:

- ``minmax``: ``amax`` the exact running ``max |x|``, ``ratio = 1``;
- ``percentile`` (option ``p`` in ``(0, 100]``): ``amax`` the ``p``-th
  percentile of the observed ``|x|`` (NumPy's default linear
  interpolation) rounded to float32, ``ratio = 1``; ``p = 100`` is minmax;
- ``mse``: ``amax`` as minmax and the ``ratio`` among ``fl32(1 - i/100)``,
  ``i = 0..50``, that minimizes ``sum (cast(x, fmt, scale=s) - x)^2`` over
  the observed values (float64 sums; ties go to the larger ratio).

Only finite values are observed (NaN and ±Inf are ignored). Static scales
exist for the formats that cast elementwise under one: XP, FP and the two
level ``NVFP4(T)`` (whose ``scale`` is its tensor scale ``g``, in units of
which ``max_value`` is 2688); any other format is a ``ValueError``.

Sampling (``percentile`` and ``mse``): an observer keeps at most
``sample_cap`` values per channel (default 65,536), a uniform sample
without replacement of everything observed: each value draws a key from
``numpy.random.default_rng(seed)`` in the order observed and the
``sample_cap`` smallest keys are kept (bottom-k sampling). The same batches
in the same order give the same sample; until the cap is reached the
sample is every observed value, and the results are exact. ``NVFP4(T)``
casts blocks, so its ``mse`` observer keeps whole batches in their layout
instead, in the order observed, while their total stays within
``sample_cap`` values per channel (later batches still update ``amax``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..casting import cast
from ..formats.base import Format
from ..formats.fixed import FixedPoint
from ..formats.floating import FloatingPoint
from ..formats.grammar import parse
from ..formats.nvfp4 import NVFP4, TENSOR_SCALE_MAX, TENSOR_SCALE_MIN
from ..kernels.blocking import normalize_axis
from ._arrays import host

Array = Any
KINDS = ("minmax", "percentile", "mse")
#: values kept per channel by ``percentile`` and ``mse`` observers unless ``sample_cap`` says otherwise
DEFAULT_SAMPLE_CAP = 65536
#: the ``mse`` observer's candidate ratios ``fl32(1 - i/100)``, ``i = 0..50``, largest first
MSE_RATIOS = tuple(float(np.float32(1.0 - i / 100.0)) for i in range(51))
_NORMAL_MIN = float(np.float32(2.0**-126))
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def static_scale_format(fmt: Format | str) -> Format:
    """``fmt`` (a format value or shorthand) checked to take a calibrated
    static scale: XP, FP or ``NVFP4(T)``. Raises ``ValueError`` otherwise."""
    f = parse(fmt) if not isinstance(fmt, Format) else fmt
    if isinstance(f, (FixedPoint, FloatingPoint)) or (isinstance(f, NVFP4) and f.tensor_scale):
        return f
    raise ValueError(
        f"{f} does not take a calibrated static scale; observers produce scales for XP, FP "
        "and NVFP4(T) formats (SPEC section 3, static scales)"
    )


def scale_range(fmt: Format) -> tuple[float, float]:
    """The ``(lowest, highest)`` static scale ``cast(x, fmt, scale=s)`` accepts:
    positive normal float32, or ``[2^-120, 2^116]`` for ``NVFP4(T)``."""
    if isinstance(fmt, NVFP4):
        return TENSOR_SCALE_MIN, TENSOR_SCALE_MAX
    return _NORMAL_MIN, _FLOAT32_MAX


def scale_from_amax(amax: Array, fmt: Format | str, ratio: float = 1.0) -> np.ndarray:
    """``s = fl32(fl32(amax * ratio) / fmt.max_value)`` as float32 (each step
    one IEEE float32 operation, RNE; ``amax`` and ``ratio`` first rounded to
    float32), clamped into :func:`scale_range` (so ``amax = 0`` gives the
    lowest valid scale and an overflow the highest). ``fmt`` must take a
    static scale (:func:`static_scale_format`). Returns a NumPy float32
    array of ``amax``'s shape."""
    f = static_scale_format(fmt)
    a = np.asarray(amax, dtype=np.float32)
    with np.errstate(over="ignore"):
        s = (a * np.float32(ratio)) / np.float32(f.max_value)
    lo, hi = scale_range(f)
    return np.clip(s, np.float32(lo), np.float32(hi)).astype(np.float32)


class Observer:
    """A streaming calibration observer (build it with :func:`observer`).

    Attributes (read-only by convention): ``kind``, ``fmt``, ``axis``,
    ``p``, ``sample_cap``, ``seed``, and ``count``, the number of values
    observed per channel (finite or not).
    """

    def __init__(self, kind: str, fmt: Format, axis: int | None, p: float | None, sample_cap: int, seed: int):
        self.kind, self.fmt, self.axis, self.p = kind, fmt, axis, p
        self.sample_cap, self.seed = sample_cap, seed
        self.count = 0
        self._shape: tuple[int, ...] | None = None  # the scale's shape (keepdims), set by the first update
        self._amax: np.ndarray | None = None  # (C,) float32, exact running max of finite |x|
        self._rng = np.random.default_rng(seed)
        self._keys: np.ndarray | None = None  # (C, k) sampling keys
        self._values: np.ndarray | None = None  # (C, k) float32 sampled values (NaN: not finite)
        self._batches: list[np.ndarray] = []  # NVFP4(T) mse: whole batches
        self._kept = 0

    def __repr__(self) -> str:
        extra = f", p={self.p}" if self.kind == "percentile" else ""
        return f"Observer({self.kind!r}, {str(self.fmt)!r}, axis={self.axis}{extra}, count={self.count})"

    # ------------------------------------------------------------------ streaming
    def update(self, x: Array) -> "Observer":
        """Observe the float32 values of ``x`` (NumPy, JAX or PyTorch float
        array; wider floats rounded to float32 as ``cast`` does) and return
        this observer. Every batch must have the first batch's number of
        dimensions and, per channel, the same size along ``axis``; raises
        ``ValueError`` otherwise, ``TypeError`` for a non-float array."""
        x32 = host(x).astype(np.float32)
        rows = self._rows(x32)
        if rows.shape[1] == 0:
            return self
        self.count += rows.shape[1]
        finite = np.isfinite(rows)
        top = np.max(np.where(finite, np.abs(rows), np.float32(0)), axis=1)
        self._amax = top if self._amax is None else np.maximum(self._amax, top)
        if self.kind == "mse" and isinstance(self.fmt, NVFP4):
            if self._kept + rows.shape[1] <= self.sample_cap:
                self._batches.append(x32)
                self._kept += rows.shape[1]
        elif self.kind != "minmax":
            self._sample(rows, finite)
        return self

    def _rows(self, x32: np.ndarray) -> np.ndarray:
        """``x32`` as ``(channels, values)``, checking it against earlier batches."""
        if self.axis is None:
            shape: tuple[int, ...] = ()
            rows = x32.reshape(1, -1)
        else:
            if not -x32.ndim <= self.axis < x32.ndim:
                raise ValueError(f"observer axis {self.axis} is out of range for a batch of shape {x32.shape}")
            ax = self.axis % x32.ndim
            if isinstance(self.fmt, NVFP4) and normalize_axis(x32.ndim, self.fmt.axis, self.fmt) == ax:
                raise ValueError(f"{self.fmt} blocks run along axis {self.fmt.axis}; a per-channel tensor "
                                 "scale needs another axis")
            shape = tuple(x32.shape[ax] if i == ax else 1 for i in range(x32.ndim))
            rows = np.moveaxis(x32, ax, 0).reshape(x32.shape[ax], -1)
        if self._shape is None:
            self._shape = shape
        elif shape != self._shape:
            raise ValueError(f"batch of shape {x32.shape} does not match the first batch "
                             f"(scale shape {self._shape}, axis {self.axis})")
        return rows

    def _sample(self, rows: np.ndarray, finite: np.ndarray) -> None:
        keys = self._rng.random(rows.shape)
        keys[~finite] = np.inf  # non-finite values are dropped first
        values = np.where(finite, rows, np.float32(np.nan))
        if self._keys is not None:
            keys = np.concatenate([self._keys, keys], axis=1)
            values = np.concatenate([self._values, values], axis=1)
        if keys.shape[1] > self.sample_cap:
            keep = np.argpartition(keys, self.sample_cap - 1, axis=1)[:, : self.sample_cap]
            keys = np.take_along_axis(keys, keep, axis=1)
            values = np.take_along_axis(values, keep, axis=1)
        self._keys, self._values = keys, values

    # ------------------------------------------------------------------ results
    def amax(self) -> np.ndarray:
        """The exact running ``max |x|`` of the finite values observed, per
        channel, as float32 of the scale's shape (0 where nothing finite was
        observed; ``ValueError`` before any update)."""
        self._need_data()
        return self._amax.reshape(self._shape)

    def scale(self) -> np.ndarray:
        """The static scale for ``cast(x, fmt, scale=s)``: a NumPy float32
        array, 0-d per tensor, else of the first batch's rank with extent 1
        except along ``axis`` (module docstring for each kind's formula).
        Raises ``ValueError`` before any update."""
        self._need_data()
        if self.kind == "minmax" or (self.kind == "percentile" and self.p == 100):
            return scale_from_amax(self.amax(), self.fmt)
        if self.kind == "percentile":
            return scale_from_amax(self._percentile().reshape(self._shape), self.fmt)
        return self._mse_scale()

    def _need_data(self) -> None:
        if self._amax is None:
            raise ValueError(f"{self!r} has observed nothing yet; call update(x) with calibration data first")

    def _percentile(self) -> np.ndarray:
        mags = np.abs(self._values.astype(np.float64))
        empty = np.all(np.isnan(mags), axis=1)
        mags[empty] = 0.0
        with np.errstate(invalid="ignore"):
            return np.nanpercentile(mags, self.p, axis=1).astype(np.float32)

    def _mse_scale(self) -> np.ndarray:
        amax = self.amax()
        best_s = scale_from_amax(amax, self.fmt, MSE_RATIOS[0])
        best_err = self._sq_error(best_s)
        for ratio in MSE_RATIOS[1:]:
            s = scale_from_amax(amax, self.fmt, ratio)
            err = self._sq_error(s)
            better = err < best_err  # strict: ties keep the larger ratio
            best_s = np.where(better.reshape(self._shape), s, best_s)
            best_err = np.where(better, err, best_err)
        return best_s.astype(np.float32)

    def _sq_error(self, s: np.ndarray) -> np.ndarray:
        """Per channel (flat), ``sum (cast(x, fmt, scale=s) - x)^2`` over the kept values, in float64."""
        if isinstance(self.fmt, NVFP4):
            total = np.zeros(self._amax.shape, np.float64)
            for b in self._batches:
                d = cast(b, self.fmt, scale=s).astype(np.float64) - b
                total += self._rows(d * d).sum(axis=1)
            return total
        v = np.nan_to_num(self._values, nan=0.0)  # 0 casts to 0: no error
        d = cast(v, self.fmt, scale=s.reshape(-1, 1)).astype(np.float64) - v
        return np.sum(d * d, axis=1)


def observer(kind: str, fmt: Format | str, axis: int | None = None, *, p: float | None = None,
             sample_cap: int = DEFAULT_SAMPLE_CAP, seed: int = 0) -> Observer:
    """A new :class:`Observer` of ``kind`` (``"minmax"``, ``"percentile"`` or
    ``"mse"``) for the static scale of ``fmt`` (XP, FP or ``NVFP4(T)``;
    format value or shorthand), per tensor (``axis=None``) or per index of
    ``axis`` (negative counts from the end of each batch's dimensions).

    Options: ``p`` (percentile only, required, in ``(0, 100]``);
    ``sample_cap`` (values kept per channel for percentile and mse, >= 1)
    and ``seed`` (the sampling keys' generator), see the module docstring.
    Raises ``ValueError`` for an unknown kind, a bad option, a format
    without static scales, or a stochastic format with ``mse``.
    """
    if kind not in KINDS:
        raise ValueError(f"observer kind {kind!r} is not one of {', '.join(KINDS)}")
    f = static_scale_format(fmt)
    if kind == "percentile":
        if p is None or not (isinstance(p, (int, float)) and 0 < p <= 100):
            raise ValueError(f"a percentile observer needs p in (0, 100], got p={p!r}")
        p = float(p)
    elif p is not None:
        raise ValueError(f"option p applies to the percentile observer only, not {kind!r}")
    if kind == "mse" and f.stochastic:
        raise ValueError(f"{f} rounds stochastically; the mse observer needs a deterministic rounding")
    if isinstance(sample_cap, bool) or not isinstance(sample_cap, int) or sample_cap < 1:
        raise ValueError(f"sample_cap must be a positive integer, got {sample_cap!r}")
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, int)):
        raise ValueError(f"axis must be None or an integer, got {axis!r}")
    return Observer(kind, f, axis, p, sample_cap, int(seed))
