"""The apply-time machinery: module interception and functional-op hooks.

While a wrapped model runs (``Model.init`` / ``apply`` / ``trace``), a
:class:`Session` is the innermost entry of a thread-local stack. Two hooks
consult it:

* a Flax method interceptor (``flax.linen.intercept_methods``) keeps a stack
  of frames (the module path of every running module method) and applies a
  module's input, approximation, accumulation, bias-add and output slots
  around its ``__call__``;
* the functional ops of :data:`~dmxnum.flax.registry.ACTIVATION_OPS` (in
  ``jax.nn``, ``flax.linen`` and ``flax.linen.activation``) and Flax's
  ``dot_product_attention`` are replaced, *only for the duration of the
  call*, by thin hooks that name each call ``<module path>.<op>_<i>`` (``i``
  counts that op's calls in the module method's own body, from 0) and apply
  its slots.

Operators (``+``, ``*``, ``@``) have no hook: :mod:`dmxnum.flax.primitives`
finds them in the jaxpr of the run, using the ``jax.named_scope`` tokens that
the interceptor and :meth:`Session.opaque` push when a session has ``scopes``.

Hooks are inert whenever no session is active on the current thread (they
call the original function), so another thread that runs JAX code during the
swap computes exactly what it would have. Everything happens while Python
runs, i.e. at trace time under ``jax.jit``: the compiled function holds the
casts and nothing of this module. The hooks contain no numerics: they call
``dmxnum.cast``, ``dmxnum.approximate`` and the original functions.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ..config.shapes import fit_problem
from ..errors import ConfigError, MissingRandomnessError, NotCalibratedError
from ..formats.same import Same
from . import registry
from .layouts import torch_shape, translate

_local = threading.local()

#: The ``jax.named_scope`` name of the frontend's own computations (casts, approximations,
#: hooked ops): no operator under it is an operator site.
OPAQUE_SCOPE = "dmx_opaque"
#: The prefix of the ``jax.named_scope`` token of one module method call (``dmx_f<n>``).
FRAME_SCOPE = "dmx_f"
_TOKENS = itertools.count()


def current() -> "Session | None":
    """The innermost active session of this thread, or None."""
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


@dataclass
class Frame:
    """One running module method: its dotted path and its per-op call counters."""

    name: str
    owner: tuple[int, str] = (0, "")  # (id of the module, method name)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class Record:
    """A configurable name seen during a run.

    ``cls``: the class (or op) name given to the configuration; ``kind``;
    ``path``: the Flax module path (None for functional ops); ``info``: the
    module's :class:`~dmxnum.flax.registry.ModuleInfo` (None for ops);
    ``spatial``: spatial dimensions of a convolution, or the number of input
    axes of a ``DenseGeneral`` kernel; ``op``: the op name; ``shapes``: the
    Flax shapes of its weight and bias parameters (parameter name -> shape),
    recorded after its first call.
    """

    cls: str
    kind: str
    path: tuple[str, ...] | None = None
    info: registry.ModuleInfo | None = None
    spatial: int | None = None
    op: str | None = None
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


def _is_float_array(x: Any) -> bool:
    return isinstance(x, (jax.Array, np.ndarray)) and jnp.issubdtype(x.dtype, jnp.floating)


def _is_none_logic(spec: Any) -> bool:
    return spec is None or str(spec) == "NONE"


class Session:
    """State of one wrapped run: configuration, records, frames, randomness.

    ``config``: canonical name -> {slot: value} (empty while only recording);
    ``records``: the dict to record names into (shared with the model);
    ``key``: the ``dmx`` rng key or None; ``biases``: effective biases of
    modules whose accumulation is cast before the bias add (name -> array).

    The slot audit: ``applied`` holds every ``(name, slot)`` that ran in this
    run, ``called`` every module or op name whose ``__call__`` ran, ``why``
    the reason a configured slot was skipped (a non-float input);
    ``weight_slots`` the parameter slots cast before the run (name -> slots),
    counted as applied when the module runs. ``capture``: when a dict, every
    module's and op's output is appended to ``capture[name]`` (for
    ``dmx_report(reference=True)``).

    Post-training quantization (:mod:`dmxnum.flax.ptq`): ``ptq`` is the
    variables' ``dmx_ptq`` collection (calibrated scales, GPTQ kernels) or
    None; ``observe``, when a dict, makes this a calibration run: the inputs
    of modules with an ``input_scale`` are appended to ``observe[name]``
    and passed on uncast; ``grab``, when a dict ``name -> (fn, out)``,
    appends ``fn(module, x)`` to the list ``out`` for every call of module
    ``name``, ``x`` its input as the module computes with it (after the
    input cast).
    """

    def __init__(
        self,
        config: dict[str, dict[str, Any]],
        records: dict[str, Record],
        key: Any = None,
        biases: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.records = records
        self.key = key
        self.biases = biases or {}
        self.frames: list[Frame] = []
        self.suspended = 0
        self._draws: dict[tuple[str, str], int] = defaultdict(int)
        self.applied: set[tuple[str, str]] = set()
        self.called: set[str] = set()
        self.why: dict[tuple[str, str], str] = {}
        self.weight_slots: dict[str, list[str]] = {}
        self.capture: dict[str, list[Any]] | None = None
        self.ptq: Any = None
        self.observe: dict[str, list[Any]] | None = None
        self.grab: dict[str, tuple[Callable, list]] | None = None
        # operator sites (:mod:`dmxnum.flax.primitives`): while ``scopes`` is a dict, every
        # module method call runs under a ``jax.named_scope`` token (token -> (module path,
        # whether its own body's operators are sites)) and every op or cast of the frontend
        # under the opaque scope; ``marks``, when a list, receives each newly recorded name
        # (a marker equation in the recording trace places the operator sites among them)
        self.scopes: dict[str, tuple[str, bool]] | None = None
        self.marks: list[str] | None = None
        # NNX runs (:func:`nnx_frames`): id of module -> its graph path; how to pass a
        # ``dmx`` key, for the error of a stochastic cast without one
        self.paths: dict[int, tuple] | None = None
        self.key_hint = "pass rngs={'dmx': jax.random.key(seed)} to model.apply"

    @contextlib.contextmanager
    def opaque(self) -> Iterator[None]:
        """A region whose calls are not model ops (a cast, an approximation, a hooked op's
        implementation): hooked functions inside are not named, and with operator sites on
        its equations carry the opaque scope, so no operator inside is a site."""
        self.suspended += 1
        try:
            if self.scopes is None:
                yield
            else:
                with jax.named_scope(OPAQUE_SCOPE):
                    yield
        finally:
            self.suspended -= 1

    def mark(self, name: str) -> None:
        """Note a newly recorded ``name`` in a recording trace (see :attr:`marks`)."""
        if self.marks is not None:
            from .primitives import mark

            mark(len(self.marks))
            self.marks.append(name)

    def static_scale(self, name: str, path: tuple[str, ...], slot: str, spec: Any) -> Any:
        """The calibrated ``slot`` scale of module ``name`` from the ``dmx_ptq``
        collection; ``NotCalibratedError`` when there is none."""
        node = self.ptq
        for p in path:
            node = node.get(p) if hasattr(node, "get") else None
        scale = node.get(slot) if hasattr(node, "get") else None
        if scale is None:
            raise NotCalibratedError(
                f"{name}: {slot} = {str(spec)!r} has not been calibrated (variables['dmx_ptq'] has no "
                f"entry {'/'.join(path + (slot,))!r}): run dmxnum.flax.calibrate(model, variables, batches) "
                "first and apply the variables it returns"
            )
        return scale

    def captured(self, name: str, y: Any) -> Any:
        """``y``, appended to ``capture[name]`` when this run captures outputs."""
        if self.capture is not None:
            self.capture.setdefault(name, []).append(y)
        return y

    # ------------------------------------------------------------------ casts
    def key_for(self, name: str, slot: str) -> Any:
        """A fresh key for the ``slot`` cast of ``name``: ``fold_in(dmx key, crc32(name|slot|n))``.

        ``n`` counts the draws of that name and slot in this run. Raises
        ``MissingRandomnessError`` when the run has no ``dmx`` key.
        """
        if self.key is None:
            raise MissingRandomnessError(
                f"{name}: {slot} rounds stochastically and needs randomness; {self.key_hint}"
            )
        n = self._draws[(name, slot)]
        self._draws[(name, slot)] = n + 1
        data = zlib.crc32(f"{name}|{slot}|{n}".encode()) & 0x7FFFFFFF
        return jax.random.fold_in(self.key, data)

    def cast(
        self, x: Any, fmt: Any, layout: str, name: str, slot: str, spatial: int | None = None,
        scale: Any = None, scale_slot: str | None = None,
    ) -> Any:
        """``dmxnum.cast`` of ``x`` with the block axis moved from PyTorch to Flax layout.

        ``scale``: a calibrated static scale, already in Flax layout (it
        broadcasts to ``x``); the cast then also counts ``scale_slot`` as applied.

        ``None``/``SAME`` formats and non-float arrays return ``x`` itself
        (a non-float array is recorded as the reason the slot did not run).
        A block axis that does not exist for ``x`` in PyTorch layout, an N:M
        group that does not divide its axis, or any other ``ValueError`` of
        the core raises ``ConfigError`` naming ``name`` and ``slot``.
        """
        if fmt is None or isinstance(fmt, Same):
            return x
        if not _is_float_array(x):
            what = getattr(x, "dtype", None) or type(x).__name__
            self.why.setdefault((name, slot), f"its tensor is not a floating array ({what})")
            return x
        import dmxnum

        x = jnp.asarray(x)  # a NumPy input becomes the JAX array the module computes with
        problem = fit_problem(fmt, torch_shape(x.shape, layout, spatial))
        if problem:
            raise ConfigError(
                f"{name}: {slot} = {str(fmt)!r} does not fit its tensor of Flax shape "
                f"{tuple(x.shape)} (PyTorch layout {torch_shape(x.shape, layout, spatial)}): {problem}"
            )
        spec = translate(fmt, x.ndim, layout, spatial)
        key = self.key_for(name, slot) if spec.stochastic else None
        try:
            with self.opaque():  # whatever the core calls is not a model op
                y = dmxnum.cast(x, spec, key=key, scale=scale)
        except ConfigError:
            raise
        except ValueError as err:
            if isinstance(err, MissingRandomnessError):
                raise
            raise ConfigError(
                f"{name}: {slot} = {str(fmt)!r} cannot be applied to its tensor of Flax shape "
                f"{tuple(x.shape)}: {err}"
            ) from err
        self.applied.add((name, slot))
        if scale is not None and scale_slot is not None:
            self.applied.add((name, scale_slot))
        return y

    def approximate(self, x: Any, spec: Any, name: str, **kwargs: Any) -> Any:
        """``dmxnum.approximate(x, spec, **kwargs)`` as ``name``'s approximation_function
        (calls inside it are not named)."""
        import dmxnum

        with self.opaque():
            y = dmxnum.approximate(x, spec, **kwargs)
        self.applied.add((name, "approximation_function"))
        return y


# ---------------------------------------------------------------------- module interception
def _interceptor(next_fun: Callable, args: tuple, kwargs: dict, context: Any) -> Any:
    """The Linen method interceptor: every module method call goes through :func:`enter_module`."""
    s = current()
    if s is None or context.method_name == "setup":
        return next_fun(*args, **kwargs)
    module = context.module
    return enter_module(s, module, context.method_name, tuple(module.path), next_fun, args, kwargs)


def enter_module(
    s: Session, module: Any, method: str, path: tuple, next_fun: Callable, args: tuple, kwargs: dict
) -> Any:
    """Run ``next_fun(*args, **kwargs)``, the ``method`` of ``module`` (at module
    ``path``), as a frame of session ``s``: record the module, apply its slots
    around ``__call__``, give its own body a scope token."""
    owner = (id(module), method)
    if s.frames and s.frames[-1].owner == owner:
        # a subclass's method calling super().<same method>: one call, handled once
        return next_fun(*args, **kwargs)
    name = ".".join(str(p) for p in path)
    is_call = method == "__call__" and bool(path)
    if is_call:
        _record_module(s, name, path, module)
        s.called.add(name)
    if path and name in s.weight_slots:  # its cast parameters are used by this run
        s.applied.update((name, slot) for slot in s.weight_slots.pop(name))
    s.frames.append(Frame(name, owner))
    try:
        with _frame_scope(s, name, module):
            slots = s.config.get(name) if is_call else None
            if not slots:
                y = next_fun(*args, **kwargs)
            else:
                y = _apply_module(s, name, module, slots, next_fun, args, kwargs)
    finally:
        s.frames.pop()
    if is_call:
        _record_shapes(s.records[name], module)
        s.captured(name, y)
    return y


def param_value(module: Any, name: str) -> Any:
    """The value of parameter ``name`` of a Linen or NNX module (None without one)."""
    if isinstance(module, nn.Module):
        return module.variables.get("params", {}).get(name)
    from flax import nnx

    v = getattr(module, name, None)
    return v.get_value() if isinstance(v, nnx.Variable) else v


# ---------------------------------------------------------------------- NNX modules
_NNX_CLASSES: dict[type, type] = {}


def _nnx_class(cls: type) -> type:
    """A subclass of the NNX module class ``cls`` whose ``__call__`` runs as a session
    frame (see :func:`nnx_frames`); made once per class."""
    sub = _NNX_CLASSES.get(cls)
    if sub is None:
        call = cls.__call__

        def __call__(self, *args, **kwargs):
            s = current()
            path = None if s is None or s.paths is None else s.paths.get(id(self))
            if path is None:
                return call(self, *args, **kwargs)
            return enter_module(s, self, "__call__", path, functools.partial(call, self), args, kwargs)

        ns = {"__call__": __call__, "__module__": cls.__module__, "__qualname__": cls.__qualname__, "__dmx_base__": cls}
        sub = _NNX_CLASSES[cls] = type(cls)(cls.__name__, (cls,), ns)
    return sub


def graph_modules(root: Any) -> dict[tuple, Any]:
    """Every NNX module of the graph ``root`` by its graph path (attribute names and
    list indices; the first path of a shared module), ``root`` itself at ``()``."""
    from flax import nnx

    out: dict[tuple, Any] = {}
    seen: set[int] = set()
    for path, node in nnx.iter_graph(root):
        if isinstance(node, nnx.Module) and id(node) not in seen:
            seen.add(id(node))
            out[tuple(path)] = node
    return out


@contextlib.contextmanager
def nnx_frames(s: Session, modules: dict[tuple, Any]) -> Iterator[None]:
    """Make every NNX module of ``modules`` (:func:`graph_modules` of a private copy: the
    caller merged it) run its ``__call__`` as a frame of session ``s``, named by its
    path; the classes are restored on exit."""
    previous = s.paths
    s.paths = {id(node): path for path, node in modules.items()}
    swapped: list[tuple[Any, type]] = []
    try:
        for node in modules.values():
            cls = type(node)
            if callable(node) and "__dmx_base__" not in vars(cls):
                object.__setattr__(node, "__class__", _nnx_class(cls))
                swapped.append((node, cls))
        yield
    finally:
        for node, cls in swapped:
            object.__setattr__(node, "__class__", cls)
        s.paths = previous


def _frame_scope(s: Session, name: str, module: Any) -> Any:
    """With operator sites on, a fresh ``jax.named_scope`` token for this method call.

    Its own body's ``+``, ``*``, ``@`` are sites when the module is a user module
    (kind ``module``, a class not defined by Flax): the internals of a Flax layer
    (a ``Dense`` bias add, ``MultiHeadDotProductAttention``'s products) are its
    implementation."""
    if s.scopes is None:
        return contextlib.nullcontext()
    token = f"{FRAME_SCOPE}{next(_TOKENS)}"  # unique across sessions (runs may nest)
    cls = type(module)
    user = registry.module_info(cls)[1].kind == "module" and not cls.__module__.startswith("flax.")
    s.scopes[token] = (name, user)
    return jax.named_scope(token)


def _record_shapes(rec: Record, module: Any) -> None:
    """Record the Flax shapes of a module's weight and bias (once, after its first call)."""
    info = rec.info
    if rec.shapes or info is None or info.weight is None:
        return
    for p in (info.weight, info.bias):
        value = param_value(module, p) if p is not None else None
        if hasattr(value, "shape"):
            rec.shapes[p] = tuple(value.shape)


def _spatial(module: Any) -> int | None:
    ks = getattr(module, "kernel_size", None)
    if ks is None:
        return None
    return 1 if isinstance(ks, int) else len(tuple(ks))


def _record_module(s: Session, name: str, path: tuple[str, ...], module: Any) -> None:
    if name in s.records:
        return
    cls, info = registry.module_info(type(module))
    spatial = _spatial(module) if info.kind in ("conv", "conv_transpose") else None
    if info.weight_layout == "dense_general_weight":
        axis = module.axis
        spatial = 1 if isinstance(axis, int) else len(tuple(axis))
    s.records[name] = Record(registry.instance_name(cls, spatial), info.kind, path, info, spatial)
    s.mark(name)


def _apply_module(s: Session, name: str, module: Any, slots: dict, next_fun, args, kwargs) -> Any:
    rec = s.records[name]
    info = rec.info or registry.ModuleInfo("module")
    layout, spatial = info.act_layout, rec.spatial
    args = list(args)
    if args:
        args[0] = _cast_input(s, name, rec, slots, args[0])
        if s.grab is not None and name in s.grab:
            fn, out = s.grab[name]
            out.append(fn(module, args[0]))
    else:
        s.why[(name, "input_format")] = "the module was called without a positional input"
    approx = slots.get("approximation_function")
    accum = slots.get("accum_format")
    if info.kind == "layer_norm" and not _is_none_logic(approx):
        y = _layer_norm_logic(s, module, args[0], approx, name)
    elif info.kind == "rms_norm" and not _is_none_logic(approx):
        y = _rms_norm_logic(s, module, args[0], approx, name)
    elif info.kind in ("softmax", "gelu", "silu") and not _is_none_logic(approx):
        if info.kind == "softmax":
            y = s.approximate(args[0], approx, name, axis=int(getattr(module, "axis", -1)))
        else:
            y = s.approximate(args[0], approx, name)
    elif info.kind in registry.PRODUCT_KINDS and accum is not None and not isinstance(accum, Same):
        y = next_fun(*args, **kwargs)
        y = s.cast(y, accum, layout, name, "accum_format", spatial)
        bias = s.biases.get(name)
        if bias is not None:
            y = y + bias.astype(y.dtype)
    else:
        y = next_fun(*args, **kwargs)
    return s.cast(y, slots.get("output_format"), layout, name, "output_format", spatial)


def _cast_input(s: Session, name: str, rec: Record, slots: dict, x: Any) -> Any:
    """A module's first input cast by its ``input_format``, under the calibrated
    ``input_scale`` when one is configured; in a calibration run (``s.observe``)
    such an input is observed and passed on uncast."""
    info = rec.info or registry.ModuleInfo("module")
    fmt, spec = slots.get("input_format"), slots.get("input_scale")
    scale = None
    if spec is not None and not spec.is_none and fmt is not None and not isinstance(fmt, Same):
        if s.observe is not None:
            if _is_float_array(x):
                s.observe.setdefault(name, []).append(x)
            return x
        if _is_float_array(x):
            scale = s.static_scale(name, rec.path or (), "input_scale", spec)
    return s.cast(x, fmt, info.act_layout, name, "input_format", rec.spatial, scale=scale, scale_slot="input_scale")


def _last_axis_scale(module: Any, x: Any, approx: Any, name: str, cls: str) -> Any:
    """The ``scale`` parameter of a Flax norm (None without one), after checking
    that it normalizes over the last axis only, as the logics do."""
    from ..errors import ConfigError

    axes = module.reduction_axes
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    if tuple(a % x.ndim for a in axes) != (x.ndim - 1,):
        raise ConfigError(
            f"{name}: approximation_function {approx} needs a {cls} over the last axis "
            f"(reduction_axes=-1), got reduction_axes={module.reduction_axes}"
        )
    return param_value(module, "scale") if module.use_scale else None


def _layer_norm_logic(s: Session, module: Any, x: Any, approx: Any, name: str) -> Any:
    weight = _last_axis_scale(module, x, approx, name, "LayerNorm")
    bias = param_value(module, "bias") if module.use_bias else None
    return s.approximate(x, approx, name, normalized_shape=x.shape[-1:], weight=weight, bias=bias)


def _rms_norm_logic(s: Session, module: Any, x: Any, approx: Any, name: str) -> Any:
    """Flax ``RMSNorm`` as ``dmxnum.approximate(x, RMSNORM(...), weight=scale, eps=epsilon)``."""
    weight = _last_axis_scale(module, x, approx, name, "RMSNorm")
    return s.approximate(
        x, approx, name, normalized_shape=x.shape[-1:], weight=weight, eps=float(module.epsilon)
    )


# ---------------------------------------------------------------------- functional ops
def _op_name(s: Session, op: str) -> str:
    frame = s.frames[-1]
    i = frame.counts[op]
    frame.counts[op] = i + 1
    return f"{frame.name}.{op}_{i}" if frame.name else f"{op}_{i}"


def _opaque(s: Session, call: Callable[[], Any]) -> Any:
    """Run a hooked op's original: calls inside it are not named (it is one op)."""
    with s.opaque():
        return call()


def _record_op(s: Session, name: str, info: registry.OpInfo) -> None:
    if name not in s.records:
        s.records[name] = Record(info.op, info.kind, op=info.op)
        s.mark(name)
    s.called.add(name)


def _activation_hook(orig: Callable, info: registry.OpInfo) -> Callable:
    @functools.wraps(orig)
    def hook(x, *args, **kwargs):
        s = current()
        if s is None:
            return orig(x, *args, **kwargs)
        if s.suspended or not s.frames:
            return orig(x, *args, **kwargs)
        name = _op_name(s, info.op)
        _record_op(s, name, info)
        slots = s.config.get(name)
        if not slots:
            return s.captured(name, _opaque(s, lambda: orig(x, *args, **kwargs)))
        with s.opaque():
            x = s.cast(x, slots.get("input_format"), "features", name, "input_format")
            approx = slots.get("approximation_function")
            if _is_none_logic(approx):
                y = orig(x, *args, **kwargs)
            elif info.kind == "softmax":
                y = s.approximate(x, approx, name, axis=_softmax_axis(name, args, kwargs))
            else:
                y = s.approximate(x, approx, name)
            y = s.cast(y, slots.get("output_format"), "features", name, "output_format")
        return s.captured(name, y)

    hook.__dmx_hook__ = True  # type: ignore[attr-defined]
    return hook


def _softmax_axis(name: str, args: tuple, kwargs: dict) -> int:
    from ..errors import ConfigError

    axis = kwargs.get("axis", args[0] if args else -1)
    if isinstance(axis, (tuple, list)):
        if len(axis) != 1:
            raise ConfigError(f"{name}: a softmax approximation needs one axis, got axis={axis}")
        axis = axis[0]
    return int(axis)


_SOFTMAX = jax.nn.softmax  # the original, captured before any swap


def _attention_decomposed(s: Session, name: str, q, k, v, call: dict, approx: Any, accum: Any) -> Any:
    """Attention as its decomposition, in the PyTorch frontend's order.

    ``scores = accum(q . k^T) * scale`` (``scale = fl32(1/sqrt(D))`` unless
    given), ``+ bias``, causal / boolean masks (masked scores become the
    dtype's most negative finite value, as Flax does), ``softmax`` (or the
    approximation) over the key axis, Flax-style dropout when it is active,
    ``out = accum(p . v)``. ``q, k, v``: ``(..., T, H, D)``.
    """
    import math

    import dmxnum

    from ..errors import ConfigError

    unsupported = [
        arg for arg in ("query_seq_lengths", "key_value_seq_lengths", "local_window_size")
        if call.get(arg) is not None
    ]
    if unsupported or k.shape[-2] != q.shape[-2]:
        what = ", ".join(unsupported) or "grouped key/value heads"
        raise ConfigError(
            f"{name}: an approximation_function or accum_format computes attention as its "
            f"decomposition, which does not support {what}; configure input/multiplier/output only"
        )
    dtype = q.dtype
    scale = call.get("scale")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    scores = jnp.einsum("...qhd,...khd->...hqk", q, k, precision=call.get("precision"))
    scores = s.cast(scores, accum, "features", name, "accum_format") * jnp.asarray(scale, dtype)
    bias = call.get("bias")
    if bias is not None:
        scores = scores + bias
    big_neg = jnp.finfo(dtype).min
    if call.get("is_causal", False):
        tq, tk = scores.shape[-2], scores.shape[-1]
        scores = jnp.where(jnp.tril(jnp.ones((tq, tk), bool)), scores, big_neg)
    mask = call.get("mask")
    if mask is not None:
        scores = jnp.where(mask, scores, big_neg)
    if _is_none_logic(approx):
        probs = _SOFTMAX(scores, axis=-1)
    else:
        probs = dmxnum.approximate(scores, approx, axis=-1).astype(dtype)
        s.applied.add((name, "approximation_function"))
    rate = call.get("dropout_rate", 0.0)
    if not call.get("deterministic", True) and rate > 0.0:
        keep_prob = 1.0 - rate
        shape = probs.shape
        if call.get("broadcast_dropout", True):
            shape = (1,) * (k.ndim - 2) + probs.shape[-2:]
        keep = jax.random.bernoulli(call["dropout_rng"], keep_prob, shape)
        probs = probs * (keep.astype(dtype) / jnp.asarray(keep_prob, dtype))
    out = jnp.einsum("...hqk,...khd->...qhd", probs, v, precision=call.get("precision"))
    return s.cast(out, accum, "attention", name, "accum_format")


def _attention_hook(orig: Callable) -> Callable:
    import inspect

    info = registry.ATTENTION_OP
    signature = inspect.signature(orig)

    @functools.wraps(orig)
    def hook(*args, **kwargs):
        s = current()
        if s is None or s.suspended or not s.frames:
            return orig(*args, **kwargs)
        name = _op_name(s, info.op)
        _record_op(s, name, info)
        slots = s.config.get(name)
        if not slots:
            return s.captured(name, _opaque(s, lambda: orig(*args, **kwargs)))
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        call = dict(bound.arguments)
        call.update(call.pop("kwargs", {}) or {})
        q = s.cast(call["query"], slots.get("input_format"), "attention", name, "input_format")
        mult = slots.get("multiplier_format")
        k = s.cast(call["key"], mult, "attention", name, "multiplier_format")
        v = s.cast(call["value"], mult, "attention", name, "multiplier_format")
        approx, accum = slots.get("approximation_function"), slots.get("accum_format")
        if isinstance(accum, Same):
            accum = None
        with s.opaque():
            if _is_none_logic(approx) and accum is None:
                call.update(query=q, key=k, value=v)
                y = orig(**call)
            else:
                y = _attention_decomposed(s, name, q, k, v, call, approx, accum)
        return s.captured(name, s.cast(y, slots.get("output_format"), "attention", name, "output_format"))

    hook.__dmx_hook__ = True  # type: ignore[attr-defined]
    return hook


def _build_patches() -> list[tuple[Any, str, Callable, Callable]]:
    """(namespace, attribute, original, hook) for every hooked function."""
    import flax.linen.activation as fla
    import flax.linen.attention as flat
    import flax.nnx as nnx
    import flax.nnx.nn.activations as nnxa
    import flax.nnx.nn.attention as nnxat

    hooks: dict[int, Callable] = {}
    patches = []

    def add(ns: Any, attr: str, make: Callable[[Callable], Callable]) -> None:
        orig = getattr(ns, attr, None)
        if orig is None or getattr(orig, "__dmx_hook__", False):
            return
        hook = hooks.get(id(orig))
        if hook is None:
            hook = hooks[id(orig)] = make(orig)
        patches.append((ns, attr, orig, hook))

    for attr, info in registry.ACTIVATION_OPS.items():
        for ns in (jax.nn, nn, fla, nnx, nnxa):
            add(ns, attr, lambda f, info=info: _activation_hook(f, info))
    for ns in (nn, flat, jax.nn, nnx, nnxat):
        add(ns, "dot_product_attention", _attention_hook)
    return patches


_PATCHES: list | None = None
_lock = threading.Lock()
_installed = 0


class active:
    """Context manager: push ``session`` and install the functional hooks.

    The hooks are swapped into their namespaces when the first session of the
    process starts and swapped back when the last one ends (reference
    counted, so nested and concurrent runs are safe); the Flax method
    interceptor is registered for the duration.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._intercept = nn.intercept_methods(_interceptor)

    def __enter__(self) -> Session:
        global _installed, _PATCHES
        with _lock:
            if _PATCHES is None:
                _PATCHES = _build_patches()
            if _installed == 0:
                for ns, attr, _, hook in _PATCHES:
                    setattr(ns, attr, hook)
            _installed += 1
        stack = getattr(_local, "stack", None)
        if stack is None:
            stack = _local.stack = []
        stack.append(self.session)
        self._intercept.__enter__()
        return self.session

    def __exit__(self, *exc: Any) -> None:
        global _installed
        try:
            self._intercept.__exit__(*exc)
        finally:
            _local.stack.pop()
            with _lock:
                _installed -= 1
                if _installed == 0:
                    for ns, attr, orig, _ in reversed(_PATCHES or []):
                        setattr(ns, attr, orig)
