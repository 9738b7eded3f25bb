"""``dmxnum.cast``: cast an array to a format, on NumPy, JAX or PyTorch."""

from __future__ import annotations

import functools
from typing import Any, Callable

from . import _backend as B
from .formats.base import Format
from .formats.grammar import parse
from .formats.same import Same
from .kernels.blocking import normalize_axis
from .kernels.families import cast_float32, choose_path
from .kernels.paths import Ctx
from .kernels.static_scale import as_scale

Array = Any
GRADIENTS = ("ste", "clip")


def cast(
    x: Array,
    fmt: Format | str,
    key: Any = None,
    random_bits: Array | None = None,
    *,
    gradient: str = "ste",
    path: str | None = None,
    scale: Any = None,
) -> Array:
    """Cast ``x`` to ``fmt`` and return an array of ``x``'s kind and dtype.

    ``fmt`` is a format value or its shorthand string. float16, bfloat16,
    float32 and float64 inputs are first converted to float32 (RNE); the
    format's exact semantics (SPEC section 3) apply to that float32 value and
    the result is returned in the input's dtype (a final RNE conversion for
    float16/bfloat16). ``SAME`` returns ``x`` itself. Stochastic formats need
    ``key`` (int seed, JAX key, NumPy ``Generator`` or ``torch.Generator``) or
    ``random_bits`` (uint32, ``x``'s shape); deterministic formats ignore both.
    Any kind of key works with any kind of array: the key's own library draws
    the words, which are then converted to ``x``'s backend and device (an int
    seed is drawn by ``x``'s backend). Under ``jax.jit`` pass a JAX key or
    ``random_bits``: a NumPy or torch generator raises ``TypeError`` there.

    ``path`` forces one kernel path by name (:func:`dmxnum.kernel_paths`
    lists them); it never changes the result, only how it is computed, and
    raises ``ValueError`` naming the applicable paths when it does not apply.

    ``scale`` (static, calibrated scaling): a float32 array ``s`` of positive
    normal values that broadcasts to ``x.shape`` without enlarging it (per
    tensor, per channel, per group; a Python float, NumPy scalar or NumPy
    array is converted to float32 on ``x``'s backend). The result is then
    ``fl32(cast(fl32(x / s), fmt) * s)`` on the float32 value of ``x`` (one
    final conversion for float16/bfloat16), each step one exact IEEE float32
    operation on every backend; stochastic formats round the inner cast with
    the same words. For ``NVFP4(T)`` ``scale`` is the tensor scale ``g``
    itself (``[2^-120, 2^116]``). ``SAME`` ignores it. Eagerly, a
    non-positive, subnormal, Inf or NaN ``s`` or a shape that would enlarge
    ``x`` raises ``ValueError`` and an integer or foreign array ``TypeError``
    (:func:`dmxnum.kernels.static_scale.as_scale`); traced values are not
    inspected. Under ``jax.jit`` ``s`` may be a traced argument.

    Gradients: ``gradient="ste"`` (default) passes the gradient through
    unchanged (straight-through estimator); ``gradient="clip"`` zeroes it
    where ``|x|`` exceeds the format's largest finite value (where clamping or
    saturation, not rounding, decided the result), times ``s`` with a scale.
    The gradient with respect to ``scale`` is zero (JAX) or none (PyTorch).

    On JAX the whole kernel is one ``jax.jit``-compiled function (cached per
    format), also when called eagerly. A torch ``meta`` tensor gives a
    ``meta`` tensor of its shape and dtype. Raises ``TypeError`` for anything
    but a NumPy, JAX or PyTorch array (``SAME`` excepted: it returns any
    input) and for integer/bool arrays, and ``ValueError`` for malformed
    shorthands, bad axes or missing randomness.

    A ``torch.distributed.tensor.DTensor`` ``x`` gives a DTensor with ``x``'s
    mesh and placements (``Partial`` reduced: ``Replicate``) equal, bit for
    bit, to the cast of ``x.full_tensor()``: element-wise formats and blocked
    ones whose shards hold whole blocks run on each shard; otherwise the
    block axis (``NVFP4(T)`` without ``scale``: the whole tensor) is gathered,
    with a one-time :class:`~dmxnum.errors.DistributedWarning`. Random words
    are those of the global shape (``key`` on every rank, or ``random_bits``
    as a DTensor or a full array); ``scale`` may be a DTensor or a full array.
    See ``docs/distributed.md``.
    """
    fmt = parse(fmt) if not isinstance(fmt, Format) else fmt
    if isinstance(fmt, Same):
        return x
    B.backend_name(x)  # TypeError for anything but a NumPy, JAX or PyTorch array
    B.check_float(x)
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
    if B.is_dtensor(x):
        return _cast_dtensor(x, fmt, key, random_bits, gradient, path, scale)
    if getattr(fmt, "blocked", False):
        normalize_axis(x.ndim, fmt.axis, fmt)
    if path is not None:
        choose_path(fmt, Ctx.of(x), path)  # ValueError before any work when it does not apply
    s = None if scale is None else as_scale(x, scale, fmt)
    words = B.resolve_words(x, key, random_bits, raw=True) if fmt.stochastic else None
    if B.backend_name(x) == "jax":
        return _jax_cast(fmt, gradient, path)(x, words, s)
    run = functools.partial(_cast_any_dtype, fmt=fmt, words=words, path=path, scale=s)
    mask = _grad_mask(fmt, gradient, B.namespace(x))
    return B.with_straight_through(run, x, None if mask is None else functools.partial(mask, s=s))


def _cast_dtensor(
    x: Any, fmt: Format, key: Any, random_bits: Any, gradient: str, path: str | None, scale: Any
) -> Any:
    """``cast`` of a ``DTensor``: a DTensor with ``x``'s placements equal to the cast
    of ``x.full_tensor()`` re-sharded (see :mod:`dmxnum._dtensor`). Element-wise
    formats run on each shard; blocked ones too where shards hold whole blocks
    along the block axis (else that axis is gathered, with a warning);
    ``NVFP4(T)`` without ``scale`` gathers the whole tensor (its tensor amax).
    Stochastic words are drawn for the global shape and sliced."""
    from . import _dtensor as D

    if getattr(fmt, "tensor_scale", False) and scale is None:
        layout = D.Layout(None, reason=f"the tensor scale of {fmt} is the amax of the whole tensor")
    elif getattr(fmt, "blocked", False):
        layout = D.Layout(block=(normalize_axis(x.ndim, fmt.axis, fmt), fmt.block_size))
    else:
        layout = D.ELEMENTWISE
    words = D.global_words(x, key, random_bits) if fmt.stochastic else None
    s = None if scale is None else as_scale(D.global_like(x), D.full(scale), fmt)

    def local(v: Array, w: Array | None, s: Array | None) -> Array:
        return cast(v, fmt, random_bits=w, gradient=gradient, path=path, scale=s)

    return D.run(x, local, layout, f"dmxnum.cast({fmt})", [words, s])


def _cast_any_dtype(
    v: Array, fmt: Format, words: Array | None, path: str | None = None, scale: Array | None = None
) -> Array:
    v32 = B.to_float32(v)
    y = cast_float32(v32, fmt, words, path, scale)
    return y if v32 is v or v32.dtype == v.dtype else B.to_dtype_like(y, v)


def _grad_mask(fmt: Format, gradient: str, xp: Any) -> Callable[..., Array] | None:
    """``mask(v, s)``: where ``|v| <= max_value`` (times the scale ``s`` unless ``None``)."""
    limit = getattr(fmt, "max_value", None)
    if gradient != "clip" or limit is None:
        return None
    return lambda v, s=None: xp.abs(v) <= (limit if s is None else limit * s)


@functools.lru_cache(maxsize=512)
def _jax_cast(fmt: Format, gradient: str, path: str | None = None) -> Callable[..., Array]:
    """A jitted ``(x, words, scale) -> cast`` with a straight-through (or
    clipped) VJP in ``x`` and a zero one in ``scale`` (traced, not cached on)."""
    import jax
    import jax.numpy as jnp

    mask = _grad_mask(fmt, gradient, jnp)
    scope = f"dmxnum.cast[{fmt}]"  # location metadata in lowered/exported modules

    def kernel(v, words, s):
        with jax.named_scope(scope):
            return _cast_any_dtype(v, fmt, words, path, s)

    @jax.custom_vjp
    def run(v, words, s):
        return kernel(v, words, s)

    def fwd(v, words, s):
        return kernel(v, words, s), (v if mask is not None else None, s)

    def bwd(saved, g):
        v, s = saved
        if mask is not None:
            g = jnp.where(mask(v, s), g, jnp.zeros_like(g))
        return (g, None, None if s is None else jnp.zeros_like(s))

    run.defvjp(fwd, bwd)
    return jax.jit(run)
