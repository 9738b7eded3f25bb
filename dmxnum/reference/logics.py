"""Reference twins of the logics (SPEC section 5), element by element.

Written from the SPEC text and ``docs/logics.md`` alone, sharing no code with
``dmxnum/logics``: NumPy scalar IEEE operations in the stated dtype
(``np.float16``, ``ml_dtypes.bfloat16`` through a float32 operation,
``np.float32``), explicit Python loops, Python integers for fixed-point and
I-BERT steps, ``fractions.Fraction`` for rounding decimal constants.

Flush rule (NF float32 / bfloat16 and the float32 steps of NF int): an
operand or float32 result below 2^-126 in magnitude becomes a zero of the
same sign; for bfloat16 the float32 result is flushed first, then rounded
to bfloat16 (RNE). float16 keeps its subnormals.

Entry point: :func:`approximate` (same signature as ``dmxnum.approximate``,
NumPy input, float32 NumPy output).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import ml_dtypes
import numpy as np

BF16 = ml_dtypes.bfloat16
TINY = 2.0**-126


# ----------------------------------------------------------------------------- scalar arithmetic
def _flush32(v: Any) -> np.float32:
    v = np.float32(v)
    if v != 0 and abs(float(v)) < TINY:
        return np.float32(math.copysign(0.0, float(v)))
    return v


class _NF:
    """Scalar arithmetic in one number format; values are NumPy scalars of that format."""

    def __init__(self, name: str):
        self.name = name  # "float16", "bfloat16", "float32" ("int" uses float32)

    def of32(self, v: Any) -> Any:
        """A float32 value rounded (RNE) to this format."""
        v = np.float32(v)
        with np.errstate(all="ignore"):
            if self.name == "float16":
                return np.float16(v)
            if self.name == "bfloat16":
                return BF16(_flush32(v))
            return _flush32(v)

    def exact(self, v: Fraction | float) -> Any:
        """The exact real ``v`` rounded once (RNE) to this format."""
        if isinstance(v, float) and not math.isfinite(v):
            return self.of32(v)
        fr = Fraction(v)
        dt = {"float16": np.float16, "bfloat16": BF16, "float32": np.float32}[self.name]
        with np.errstate(all="ignore"):
            guess = np.array([float(fr)], dtype=np.float64).astype(np.float32).astype(dt)[0]
            cands = [guess, np.nextafter(guess, dt(np.inf)), np.nextafter(guess, dt(-np.inf))]
        finite = [c for c in cands if math.isfinite(float(c))]

        def key(c: Any) -> tuple[Fraction, int]:
            bits = int(np.array(c).view(np.uint16 if dt is not np.float32 else np.uint32))
            return (abs(Fraction(float(c)) - fr), bits & 1)

        best = min(finite, key=key)
        if self.name != "float16":
            best = self.of32(best)
        return best

    def op(self, f: Any, *args: Any) -> Any:
        """``f`` applied to the operands as one IEEE operation rounded to this format."""
        with np.errstate(all="ignore"):
            if self.name == "float16":
                return np.float16(f(*[np.float16(a) for a in args]))
            ops = [_flush32(np.float32(a)) for a in args]
            r = _flush32(np.float32(f(*ops)))
            return BF16(r) if self.name == "bfloat16" else r

    def add(self, a: Any, b: Any) -> Any:
        return self.op(lambda u, v: u + v, a, b)

    def sub(self, a: Any, b: Any) -> Any:
        return self.op(lambda u, v: u - v, a, b)

    def mul(self, a: Any, b: Any) -> Any:
        return self.op(lambda u, v: u * v, a, b)

    def div(self, a: Any, b: Any) -> Any:
        return self.op(lambda u, v: u / v, a, b)

    def scale2(self, p: Any, d: Any) -> Any:
        """``p * 2^d`` (``d`` integer valued, +-Inf or NaN) computed exactly, rounded once."""
        p, d = float(p), float(d)
        if math.isnan(p) or math.isnan(d):
            return self.of32(float("nan"))
        if math.isinf(d):
            return self.of32(p * math.inf if d > 0 else p * 0.0)
        if math.isinf(p):
            return self.of32(p)
        if d > 400:
            return self.of32(math.copysign(math.inf, p) if p != 0 else p)
        if d < -400:
            return self.of32(math.copysign(0.0, p))
        if self.name == "float16":
            # float64 holds p * 2^d exactly here; NumPy's float64 -> float16 conversion rounds once (RNE)
            with np.errstate(all="ignore"):
                return np.float16(np.float64(math.ldexp(p, int(d))))
        with np.errstate(all="ignore"):
            v = np.float32(math.ldexp(p, int(d)))  # exact: p has <= 24 bits; out of range -> 0 / Inf
        return self.of32(v)


F32 = _NF("float32")


def _isnan(v: Any) -> bool:
    return math.isnan(float(v))


def _max(a: Any, b: Any) -> Any:
    if _isnan(a):
        return a
    if _isnan(b):
        return b
    return a if float(a) >= float(b) else b


def _tree(values: list, combine: Any, pad: Any) -> Any:
    """Halving tree: pad to a power of two, add the upper half onto the lower half."""
    v = list(values)
    size = 1
    while size < len(v):
        size *= 2
    v += [pad] * (size - len(v))
    while len(v) > 1:
        h = len(v) // 2
        v = [combine(v[i], v[i + h]) for i in range(h)]
    return v[0]


def _rint(v: Any) -> float:
    """Round half to even to an integer value (NaN/Inf unchanged)."""
    return float(np.rint(np.float64(v)))


# ----------------------------------------------------------------------------- exp
def _exp_parts(x: Any, algorithm: str, nf: str) -> tuple[Any, Any]:
    """``(p, k)`` for an NF value ``x`` (NF int: a clamped float32 value)."""
    if nf == "int":
        return _exp_parts_int(x, algorithm)
    A = _NF(nf)
    if algorithm == "poly2":
        k = A.of32(_rint(A.mul(x, A.exact(Fraction("1.4427")))))
        r = A.sub(x, A.mul(k, A.exact(Fraction("0.69315"))))
        t = A.mul(A.exact(Fraction("0.503765")), r)
        t = A.add(A.exact(Fraction("1.015082")), t)
        t = A.mul(t, r)
        return A.add(A.exact(1), t), k
    z = A.mul(x, A.exact(Fraction("1.4426950408889634")))
    k = A.of32(math.floor(float(z))) if math.isfinite(float(z)) else z
    v = A.sub(z, k)
    return A.add(v, A.exact(Fraction("0.957"))), k


def _rhe_div(m: int, s: int) -> int:
    """round(m / 2^s), ties to even, on Python ints."""
    q, rem = divmod(m, 1 << s)
    half = 1 << (s - 1)
    if rem > half or (rem == half and q % 2 == 1):
        q += 1
    return q


def _exp_parts_int(x: Any, algorithm: str) -> tuple[Any, Any]:
    if _isnan(x):
        return np.float32("nan"), np.float32("nan")
    if algorithm == "poly2":
        k = np.float32(_rint(F32.mul(x, np.float32(1.4427))))
        r = F32.sub(x, F32.mul(k, np.float32(0.69315)))
        ri = int(_rint(np.float32(r) * np.float32(16384)))
        t1 = _rhe_div(2 * 16631 + ri, 1)  # round(16631 + 0.5 ri)
        t2 = 16384 + _rhe_div(t1 * ri, 14)
        return np.float32(Fraction(t2, 16384)), k
    log2e = np.float32(Fraction(round(Fraction("1.4426950408889634") * 16384), 16384))
    d = np.float32(Fraction(round(Fraction("0.957") * 16384), 16384))
    z = F32.mul(x, log2e)
    k = np.float32(math.floor(float(z)))
    w = F32.sub(z, k)
    v = np.float32(_rint(np.float32(w) * np.float32(16384)) / 16384)
    return F32.add(v, d), k


def _clamp_int(x: Any) -> np.float32:
    x = _flush32(x)
    if _isnan(x):
        return x
    return np.float32(min(max(float(x), -16384.0), 16384.0))


def exp(x: np.ndarray, algorithm: str, nf: str) -> np.ndarray:
    """Reference ``EXP(algorithm, NF)``: ``p * 2^k`` rounded once to NF, float32 output."""
    A = _NF("float32" if nf == "int" else nf)
    out = np.empty(x.shape, np.float32)
    for i, v in np.ndenumerate(np.asarray(x, np.float32)):
        v = _clamp_int(v) if nf == "int" else A.of32(v)
        p, k = _exp_parts(v, algorithm, nf)
        out[i] = np.float32(A.scale2(p, k))
    return out


# ----------------------------------------------------------------------------- quake
def _f16_bits(v: Any) -> int:
    return int(np.array(np.float16(v)).view(np.uint16))


def _f16_of_bits(b: int) -> np.float16:
    return np.array(b % 65536, dtype=np.uint16).view(np.float16)[()]


def _recip16(x: Any) -> np.float16:
    A = _NF("float16")
    x0 = _f16_of_bits(0x77A8 - _f16_bits(x))
    return A.add(x0, A.mul(A.sub(1, A.mul(x, x0)), x0))


def _rsqrt(x: Any, nf: str) -> Any:
    A = _NF(nf)
    if nf == "float16":
        x0 = _f16_of_bits(0x59BE - (_f16_bits(x) >> 1))
    else:
        bits = int(np.array(np.float32(x)).view(np.uint32))
        x0 = _flush32(np.array((0x5F3759DF - (bits >> 1)) % 2**32, dtype=np.uint32).view(np.float32)[()])
    h = A.mul(A.mul(A.exact(Fraction(1, 2)), x), x0)
    return A.mul(A.sub(A.exact(Fraction(3, 2)), A.mul(h, x0)), x0)


def recip(x: np.ndarray) -> np.ndarray:
    """Reference ``RECIP(quake3,float16)``."""
    out = np.empty(x.shape, np.float32)
    for i, v in np.ndenumerate(np.asarray(x, np.float32)):
        out[i] = np.float32(_recip16(_NF("float16").of32(v)))
    return out


def rsqrt(x: np.ndarray, nf: str) -> np.ndarray:
    """Reference ``RSQRT(quake3,NF)``."""
    A = _NF(nf)
    out = np.empty(x.shape, np.float32)
    for i, v in np.ndenumerate(np.asarray(x, np.float32)):
        out[i] = np.float32(_rsqrt(A.of32(v), nf))
    return out


# ----------------------------------------------------------------------------- softmax
def _softmax_row(row: list, algorithm: str, nf: str) -> list:
    A = _NF("float32" if nf == "int" else nf)
    xs = []
    for v in row:
        if nf == "int":
            v = _clamp_int(v)
        else:
            v = A.of32(v)
            if float(v) < -16384:
                v = A.of32(-16384.0)
        xs.append(v)
    exp_alg = "base2" if algorithm == "base2quake3" else algorithm
    parts = [_exp_parts(v, exp_alg, nf) for v in xs]
    kmax = _tree([k for _, k in parts], _max, A.of32(-np.inf))
    es = [A.scale2(p, A.sub(k, kmax)) for p, k in parts]
    s = _tree(es, A.add, A.of32(0.0))
    if nf == "float16":
        se = A.add(s, np.float16(2.0**-24))
    else:
        se = A.add(s, A.exact(Fraction("1e-30")))
    if algorithm == "base2quake3":
        inv = _recip16(se)
        return [A.mul(e, inv) for e in es]
    return [A.div(e, se) for e in es]


def softmax(x: np.ndarray, algorithm: str, nf: str | None, axis: int = -1) -> np.ndarray:
    """Reference ``SOFTMAX(algorithm, NF)`` (and ``SOFTMAX(ibert)``) along ``axis``."""
    x = np.moveaxis(np.asarray(x, np.float32), axis, -1)
    out = np.empty(x.shape, np.float32)
    if algorithm == "ibert":
        out = _softmax_ibert(x)
    else:
        for idx in np.ndindex(*x.shape[:-1]):
            out[idx] = [np.float32(v) for v in _softmax_row(list(x[idx]), algorithm, nf)]
    return np.moveaxis(out, -1, axis)


# ----------------------------------------------------------------------------- gelu
def gelu(x: np.ndarray, algorithm: str) -> np.ndarray:
    """Reference ``GELU(poly2,float16)`` / ``GELU(ibert)``."""
    x = np.asarray(x, np.float32)
    if algorithm == "ibert":
        return _gelu_ibert(x)
    A = _NF("float16")
    a1, a2 = A.exact(Fraction("-0.1444")), A.exact(Fraction("0.1444"))
    b, c = A.exact(Fraction("1.769")), A.exact(Fraction("0.70711"))
    out = np.empty(x.shape, np.float32)
    for i, v in np.ndenumerate(x):
        v = A.of32(v)
        t = A.mul(v, c)
        m = t if _isnan(t) else min(abs(t), b)
        u = A.sub(m, b)
        q = A.mul(u, u)
        L = A.add(A.mul(a1, q), 1) if float(t) >= 0 else A.mul(a2, q)
        out[i] = np.float32(A.mul(v, L))
    return out


# ----------------------------------------------------------------------------- layer norm
def _layernorm_row(row: list, algorithm: str, nf: str, norm: int | None, w: list | None, b: list | None) -> list:
    A = _NF(nf)
    n = len(row)
    xs = [A.of32(v) for v in row]
    ws = [A.of32(v) for v in w] if w is not None else None
    bs = [A.of32(v) for v in b] if b is not None else None
    nn = A.exact(n)
    zero = A.of32(0.0)
    if algorithm == "fallback":
        xs = [A.div(v, A.exact(2**norm)) for v in xs]
        mean = A.div(_tree(xs, A.add, zero), nn)
        m2 = A.div(_tree([A.mul(v, v) for v in xs], A.add, zero), nn)
        var = A.sub(m2, A.mul(mean, mean))
        with np.errstate(all="ignore"):
            t = np.float32(np.float32(var) + np.float32(1e-5))
            rs = A.of32(np.float32(1) / np.sqrt(t))
    else:
        mean = A.div(_tree(xs, A.add, zero), nn)
        dev = [A.sub(v, mean) for v in xs]
        var = A.div(_tree([A.mul(d, d) for d in dev], A.add, zero), nn)
        if algorithm == "legacy":
            with np.errstate(all="ignore"):
                t = _flush32(np.float32(np.float32(var) + np.float32(2.0**-126)))
                s = _flush32(np.sqrt(t))
                rs = A.of32(_flush32(np.float32(1) / s))
        else:
            eps = A.exact(Fraction(1, 1024)) if nf == "float16" else A.exact(Fraction("1e-5"))
            rs = _rsqrt(A.add(var, eps), nf)
    out = []
    for j, v in enumerate(xs):
        y = A.sub(v, mean)
        if ws is not None:
            y = A.mul(y, ws[j])
        y = A.mul(y, rs)
        if bs is not None:
            y = A.add(y, bs[j])
        out.append(np.float32(y))
    return out


def layernorm(
    x: np.ndarray,
    algorithm: str,
    nf: str | None,
    norm: int | None = None,
    normalized_shape: Any = None,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """Reference layer norm over the trailing ``normalized_shape`` (default: last dimension)."""
    x = np.asarray(x, np.float32)
    rows = _norm_rows(x, normalized_shape)
    w, b = _param_list(weight), _param_list(bias)
    out = np.empty(rows.shape, np.float32)
    if algorithm == "ibert":
        out = _layernorm_ibert(rows, w, b)
    else:
        for i in range(rows.shape[0]):
            out[i] = _layernorm_row(list(rows[i]), algorithm, nf, norm, w, b)
    return out.reshape(x.shape)


# ----------------------------------------------------------------------------- silu
def silu(x: np.ndarray, algorithm: str, nf: str) -> np.ndarray:
    """Reference ``SILU(algorithm, NF)``: ``e = EXP(-x)``, ``d = 1 + e``, ``y = x / d``
    (``base2quake3``: ``x * recip16(d)``), each step one NF operation."""
    A = _NF("float32" if nf == "int" else nf)
    exp_alg = "base2" if algorithm == "base2quake3" else algorithm
    one = A.exact(1)
    out = np.empty(np.shape(x), np.float32)
    for i, v in np.ndenumerate(np.asarray(x, np.float32)):
        v = _clamp_int(v) if nf == "int" else A.of32(v)
        neg = -v  # exact
        p, k = _exp_parts(neg, exp_alg, nf)
        e = A.scale2(p, k)
        d = A.add(one, e)
        y = A.mul(v, _recip16(d)) if algorithm == "base2quake3" else A.div(v, d)
        out[i] = np.float32(y)
    return out


# ----------------------------------------------------------------------------- rms norm
def _finfo_eps(dtype: Any) -> float:
    """``finfo(dtype).eps`` (``ml_dtypes.finfo`` also knows bfloat16)."""
    return float(ml_dtypes.finfo(dtype).eps)


def _rmsnorm_row(row: list, algorithm: str, nf: str, norm: int | None, w: list | None, eps: float) -> list:
    A = _NF(nf)
    xs = [A.of32(v) for v in row]
    ws = [A.of32(v) for v in w] if w is not None else None
    e = A.exact(Fraction(eps))  # the module's eps rounded once to NF (flushed for float32/bfloat16)
    if algorithm == "fallback":
        xs = [A.div(v, A.exact(2**norm)) for v in xs]
        e = np.float32(Fraction(float(e)) / 4**norm)  # exact power-of-two scaling, a float32 number
    sq = _tree([A.mul(v, v) for v in xs], A.add, A.of32(0.0))
    ms = A.div(sq, A.exact(len(xs)))
    if algorithm == "quake3":
        floor = A.exact(Fraction(1, 1024)) if nf == "float16" else A.exact(Fraction(1, 2**23))
        rs = _rsqrt(A.add(ms, e if float(e) > float(floor) else floor), nf)
    else:
        with np.errstate(all="ignore"):
            t = _flush32(np.float32(np.float32(ms) + np.float32(e)))
            r = _flush32(np.sqrt(t))
            rs = A.of32(_flush32(np.float32(1) / r))
    out = []
    for j, v in enumerate(xs):
        y = A.mul(v, rs)
        if ws is not None:
            y = A.mul(ws[j], y)
        out.append(np.float32(y))
    return out


def _norm_rows(x: np.ndarray, normalized_shape: Any) -> np.ndarray:
    """``x`` as rows of the flattened trailing ``normalized_shape`` (default: last dimension)."""
    if normalized_shape is None:
        normalized_shape = x.shape[-1:]
    elif isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    return x.reshape(-1, int(np.prod(normalized_shape)))


def _param_list(p: np.ndarray | None) -> list | None:
    """A norm's weight or bias as a flat list of float32 scalars (None stays None)."""
    return None if p is None else [np.float32(v) for v in np.asarray(p, np.float32).reshape(-1)]


def rmsnorm(
    x: np.ndarray,
    algorithm: str,
    nf: str,
    norm: int | None = None,
    normalized_shape: Any = None,
    weight: np.ndarray | None = None,
    eps: float | None = None,
) -> np.ndarray:
    """Reference RMS norm over the trailing ``normalized_shape`` (default: last dimension);
    ``eps=None`` is ``finfo(x.dtype).eps`` of the input as given."""
    x = np.asarray(x)
    if eps is None:
        eps = _finfo_eps(x.dtype)
    x = x.astype(np.float32)
    rows = _norm_rows(x, normalized_shape)
    w = _param_list(weight)
    out = np.empty(rows.shape, np.float32)
    for i in range(rows.shape[0]):
        out[i] = _rmsnorm_row(list(rows[i]), algorithm, nf, norm, w, float(eps))
    return out.reshape(x.shape)


# ----------------------------------------------------------------------------- I-BERT
def _quantize(x: np.ndarray, f_lo: int, f_hi: int) -> tuple[np.ndarray, int, np.ndarray]:
    """16-bit per-tensor power-of-two quantization (docs/logics.md): (int64 q, f, NaN mask)."""
    flat = [_flush32(v) for v in x.reshape(-1)]
    fields = [int(np.array(v).view(np.uint32)) >> 23 & 0xFF for v in flat if math.isfinite(float(v))]
    E = max(fields, default=0)
    f = f_hi if E == 0 else min(max(14 - (E - 127), f_lo), f_hi)
    q = np.zeros(len(flat), dtype=np.int64)
    nan = np.zeros(len(flat), dtype=bool)
    for i, v in enumerate(flat):
        if _isnan(v):
            nan[i] = True
            continue
        with np.errstate(all="ignore"):
            s = np.float32(v) * np.float32(2.0**f)  # one float32 product
        val = float(s)
        if math.isinf(val):
            qi = 32767 if val > 0 else -32768
        else:
            qi = min(max(int(_rint(val)), -32768), 32767)
        q[i] = qi
    return q.reshape(x.shape), f, nan.reshape(x.shape)


def _softmax_ibert(x: np.ndarray) -> np.ndarray:
    n = x.shape[-1]
    if n > 16384:
        raise ValueError(f"SOFTMAX(ibert) rows have at most 16384 elements; got {n}")
    q, f, nan = _quantize(x, 4, 14)
    q_ln2 = math.floor(Fraction(744261117, 2 ** (30 - f)))
    q_b = math.floor(Fraction(1452772687, 2 ** (30 - f)))
    q_c = math.floor(Fraction(257578233, 2 ** (28 - 2 * f)))
    s = max(0, 2 * f - 15)
    out = np.empty(x.shape, np.float32)
    for idx in np.ndindex(*x.shape[:-1]):
        row = [int(v) for v in q[idx]]
        qmax = max(row)
        es = []
        for v in row:
            delta = max(v - qmax, -30 * q_ln2)
            z = (-delta) // q_ln2
            r = delta + z * q_ln2
            L = (r + q_b) ** 2 + q_c
            es.append(L // 2 ** (z + s))
        masked = [float(v) == -math.inf for v in x[idx]]
        if not all(masked):
            es = [0 if m else e for e, m in zip(es, masked)]
        total = sum(es)
        vals = [np.float32(Fraction((e * 256) // total, 256)) for e in es]
        if nan[idx].any():
            vals = [np.float32("nan")] * n
        out[idx] = vals
    return out


def _gelu_ibert(x: np.ndarray) -> np.ndarray:
    q, f, nan = _quantize(x, 5, 13)
    q_b = math.floor(Fraction(1343113471, 2 ** (29 - f)))
    q_c = math.floor(Fraction(1858971301, 2 ** (28 - 2 * f)))
    out = np.empty(x.shape, np.float32)
    for i, v in np.ndenumerate(q):
        v = int(v)
        if nan[i]:
            out[i] = np.nan
            continue
        m = min(abs(v), q_b)
        L = q_c - (m - q_b) ** 2
        sign = (v > 0) - (v < 0)
        h = sign * L + q_c
        t = h // 2 ** (2 * f - 10)
        g = v * t
        y = _flush32(np.float32(g) * np.float32(0.1444))
        out[i] = _flush32(np.float32(Fraction(float(y)) * Fraction(1, 2 ** (f + 11))))
    return out


def _isqrt_ibert(v: int) -> int:
    """I-BERT Algorithm 4 on a Python int (no iteration cap)."""
    if v == 0:
        return 0
    x = 2 ** ((v.bit_length() + 1) // 2)
    while True:
        nx = (x + v // x) // 2
        if nx >= x:
            return x
        x = nx


def _layernorm_ibert(rows: np.ndarray, w: list | None, b: list | None) -> np.ndarray:
    n = rows.shape[-1]
    if n > 4096:
        raise ValueError(f"LAYERNORM(ibert) normalizes at most 4096 elements; got {n}")
    q, _, nan = _quantize(rows, -113, 127)
    c_n = np.float32(Fraction(float(np.sqrt(np.float32(n)))) / 2**15)
    out = np.empty(rows.shape, np.float32)
    for i in range(rows.shape[0]):
        row = [int(v) for v in q[i]]
        mean = (2 * sum(row) + n) // (2 * n)
        ys = [v - mean for v in row]
        k = max(0, max(abs(y) for y in ys).bit_length() - 9)
        yr = [y // 2**k for y in ys]
        std = _isqrt_ibert(sum(y * y for y in yr))
        res = []
        for j, y in enumerate(ys):
            o = 0 if std == 0 else (y * 2**15) // (std * 2**k)
            v = _flush32(np.float32(o) * c_n)
            if w is not None:
                v = _flush32(v * _flush32(w[j]))
            if b is not None:
                v = _flush32(v + _flush32(b[j]))
            res.append(v)
        if nan[i].any():
            res = [np.float32("nan")] * n
        out[i] = res
    return out


# ----------------------------------------------------------------------------- entry point
def approximate(x: np.ndarray, spec: Any, **args: Any) -> np.ndarray:
    """Reference ``dmxnum.approximate`` on a NumPy float array; float32 NumPy output."""
    from ..logics.grammar import parse_logic  # the shorthand grammar only (no numerics)

    logic = parse_logic(spec)
    if logic.op == "NONE":
        return x
    if logic.op == "RMSNORM":  # eps=None needs the input's own dtype
        return rmsnorm(
            x, logic.algorithm, logic.nf, logic.norm, args.get("normalized_shape"), args.get("weight"), args.get("eps")
        )
    x = np.asarray(x).astype(np.float32)
    if logic.op == "SOFTMAX":
        return softmax(x, logic.algorithm, logic.nf, axis=args.get("axis", -1))
    if logic.op == "GELU":
        return gelu(x, logic.algorithm)
    if logic.op == "LAYERNORM":
        return layernorm(
            x,
            logic.algorithm,
            logic.nf,
            logic.norm,
            args.get("normalized_shape"),
            args.get("weight"),
            args.get("bias"),
        )
    if logic.op == "SILU":
        return silu(x, logic.algorithm, logic.nf)
    if logic.op == "EXP":
        return exp(x, logic.algorithm, logic.nf)
    if logic.op == "RECIP":
        return recip(x)
    return rsqrt(x, logic.nf)
