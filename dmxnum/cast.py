"""``dmxnum.cast``: cast an array to a format, on NumPy, JAX or PyTorch."""

from __future__ import annotations

from typing import Any

from . import _backend as B
from .formats.base import Format
from .formats.same import Same

Array = Any


def cast(
    x: Array,
    fmt: Format | str,
    key: Any = None,
    random_bits: Array | None = None,
    *,
    gradient: str = "ste",
) -> Array:
    """Cast ``x`` to ``fmt`` and return an array of ``x``'s kind and dtype.

    ``fmt`` is a format value or its shorthand string. float16, bfloat16,
    float32 and float64 inputs are first converted to float32 (RNE); the
    format's exact semantics (SPEC section 3) apply to that float32 value and
    the result is returned in the input's dtype (a final RNE conversion for
    float16/bfloat16). ``SAME`` returns ``x`` itself. Stochastic formats need
    ``key`` (int seed, JAX key, NumPy ``Generator`` or ``torch.Generator``) or
    ``random_bits`` (uint32, ``x``'s shape). Gradients: ``gradient="ste"``
    (default) passes the gradient through unchanged; ``gradient="clip"``
    zeroes it where the input lay outside the format's finite range (where
    a clamp or saturation changed it by more than rounding).

    Raises ``TypeError`` for integer/bool inputs, ``ValueError`` for malformed
    shorthands, bad axes or missing randomness.
    """
    from .formats.grammar import parse
    from .kernels.dispatch import cast_float32

    fmt = parse(fmt) if not isinstance(fmt, Format) else fmt
    if isinstance(fmt, Same):
        return x
    B.check_float(x)
    if gradient not in ("ste", "clip"):
        raise ValueError(f"gradient must be 'ste' or 'clip', got {gradient!r}")
    words = B.resolve_words(x, key, random_bits) if fmt.stochastic else None

    def run(v: Array) -> Array:
        v32 = B.to_float32(v)
        y = cast_float32(v32, fmt, words)
        return y if v32 is v else B.to_dtype_like(y, v)

    grad_mask = None
    if gradient == "clip":
        limit = getattr(fmt, "max_value", None)
        if limit is not None:
            xp = B.namespace(x)
            grad_mask = lambda v: xp.abs(v) <= limit  # noqa: E731
    return B.with_straight_through(run, x, grad_mask)
