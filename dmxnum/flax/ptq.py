"""Post-training quantization of ``dmxnum.flax`` models: static scales and GPTQ.

The algorithms are the core's (:mod:`dmxnum.ptq`); this module feeds them
a Flax model's tensors in PyTorch layout and keeps their results in the
variables collection ``dmx_ptq``, which mirrors the module paths::

    variables["dmx_ptq"]["Dense_0"]["input_scale"]    # calibrate
    variables["dmx_ptq"]["Dense_0"]["weight_scale"]   # calibrate
    variables["dmx_ptq"]["Dense_0"]["kernel"]         # gptq

``model.apply(variables, x)`` (also under ``jax.jit``) reads them: the
input cast becomes ``cast(x, input_format, scale=input_scale)``, the kernel
cast ``cast(w, weight_format, scale=weight_scale)``, and a stored GPTQ
``kernel`` replaces the ``params`` kernel (its cast maps it to itself).
Scales are stored in the Flax layout of the tensor they scale, with leading
axes of extent 1 dropped, so they broadcast against the module's input also
under ``vmap`` or with more batch axes: a ``Dense``'s ``weight_scale:
MINMAX{0}`` (one scale per output channel of the PyTorch ``(out, in)``
weight) is stored with shape ``(out,)`` and scales the kernel's last axis.
Scale values are those the PyTorch frontend computes for the same tensors:
each tensor is observed in PyTorch layout (Flax kernels and NHWC
activations are transposed on the host first).

Both functions are pure: they return new variables and change neither the
model nor the variables given.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ConfigError, NotCalibratedError
from ..formats.same import Same
from .layouts import torch_axis_to_flax
from .model import PTQ_COLLECTION, Model, _lookup
from .session import Record

__all__ = ["PTQ_COLLECTION", "calibrate", "gptq", "ptq_state"]

#: kinds whose modules take ``input_scale`` / ``weight_scale``
SCALED_KINDS = frozenset({"linear", "conv", "conv_transpose"})
#: kinds GPTQ quantizes (``Dense``, ``DenseGeneral``, ``Conv``)
GPTQ_KINDS = frozenset({"linear", "conv"})


# ---------------------------------------------------------------------- public API
def calibrate(model: Model, variables: Mapping, batches: Iterable[Any], rngs: Any = None) -> dict:
    """Set every configured static scale and return the new variables.

    ``batches``: calibration inputs, each an array (the model's one
    positional input) or a tuple of positional arguments. Every
    ``weight_scale`` is observed (its observer: ``MINMAX``, ``PERCENTILE(p)``,
    ``MSE``, per tensor or along its PyTorch-layout axis) on the weight as
    its cast receives it (the ``params`` kernel, sparsified by a
    ``weight_sparseness``), in PyTorch layout. Then the model runs (jitted)
    on each batch with everything configured applied (weights cast under
    the new weight scales, a stored GPTQ kernel used) except the casts that
    take an ``input_scale``: those inputs are observed, in PyTorch layout,
    and passed on uncast. ``rngs`` as for ``model.apply``.

    Returns ``{**variables, "dmx_ptq": ...}`` with the ``input_scale`` /
    ``weight_scale`` entries of every configured module set (other entries,
    such as GPTQ kernels, kept). Raises ``ValueError`` when a module with an
    ``input_scale`` never ran on the batches, or there are no batches.
    """
    batches, state, config, records, params, ptq = _start(model, variables, batches, rngs)
    for name, slots in config.items():
        rec = records.get(name)
        if rec is None or rec.kind not in SCALED_KINDS:
            continue
        spec, fmt = slots.get("weight_scale"), slots.get("weight_format")
        if not _is_static(spec, fmt):
            continue
        w = _pre_cast_weight(model, rec, slots, params, name)
        wt = _weight_to_torch(np.asarray(w), rec)
        s = spec.observer(fmt).update(wt).scale()
        _set(ptq, rec.path, "weight_scale", jnp.asarray(_weight_scale_to_flax(s, rec, w.shape)))
    observers = {}
    for name, slots in config.items():
        rec = records.get(name)
        if rec is not None and rec.kind in SCALED_KINDS and _is_static(slots.get("input_scale"), slots.get("input_format")):
            observers[name] = slots["input_scale"].observer(slots["input_format"])
    if observers:
        current = {**variables, PTQ_COLLECTION: ptq}
        run = _forward(model, state, observe=True)
        for args in batches:
            seen = _call(run, current, args, rngs)
            for name, xs in seen.items():
                if name in observers:
                    for x in xs:
                        observers[name].update(_act_to_torch(np.asarray(x), records[name]))
        for name, obs in observers.items():
            rec = records[name]
            if obs.count == 0:
                raise ValueError(
                    f"{name}: input_scale = {str(config[name]['input_scale'])!r} observed nothing: the "
                    "module was not called (with a floating input) on the calibration batches"
                )
            _set(ptq, rec.path, "input_scale", jnp.asarray(_drop_leading_ones(_from_torch_act(obs.scale(), rec))))
    return {**variables, PTQ_COLLECTION: ptq}


def gptq(
    model: Model,
    variables: Mapping,
    batches: Iterable[Any],
    modules: str | Sequence[str] | None = None,
    block_size: int = 128,
    damp: float = 0.01,
    act_order: bool = False,
    rngs: Any = None,
    stats: dict | None = None,
) -> dict:
    """Quantize the kernels of ``Dense``, ``DenseGeneral`` and ``Conv`` modules by
    GPTQ (:func:`dmxnum.ptq.gptq`) and return the new variables.

    ``modules``: which modules, among those with a ``weight_format`` (not
    ``SAME``): None for all, a regular expression (``re.search`` on the name,
    Flax or PyTorch spelling), or a list of names. They are processed in
    forward order (the order of their first call), each after the ones
    before it are quantized: for each, the model runs (jitted) on every batch
    with the current variables and collects the module's inputs ``x`` as it
    computes with them (after its input cast, under its calibrated
    ``input_scale``), as rows: a ``Dense`` input's last axis (a
    ``DenseGeneral``'s contracted axes, flattened), a ``Conv`` input's patches
    in channel-major order (``jax.lax.conv_general_dilated_patches``), then
    ``H = 2/N sum x x^T`` (float64, summed batch by batch, ``N`` the number of
    rows). The ``params`` kernel, in PyTorch layout (``(out, in)``, or ``(O,
    I, *kernel)``), is quantized to the module's ``weight_format`` under its
    calibrated ``weight_scale`` if one is configured, and stored back in Flax
    layout as ``variables["dmx_ptq"][...]["kernel"]``, which ``apply`` then
    uses in place of the ``params`` kernel. Cost: one pass over the batches
    per module (``L`` passes for ``L`` modules).

    ``block_size``, ``damp``, ``act_order``: as for :func:`dmxnum.ptq.gptq`.
    ``stats``: a dict that receives, per module name, ``(loss, loss_rtn,
    fallback)`` of the core's result. ``rngs``: as for ``model.apply``.

    Raises ``ConfigError`` for a selected module with a ``weight_sparseness``
    other than ``DENSE`` (GPTQ would refill pruned weights), a name that is
    not such a module, a grouped or circularly padded ``Conv``, or a
    ``DenseGeneral`` with ``batch_dims``; ``NotCalibratedError`` when a
    configured static scale has not been calibrated (run :func:`calibrate`
    first); ``ValueError`` when a module never ran on the batches.
    """
    import dmxnum.ptq

    batches, state, config, records, params, ptq = _start(model, variables, batches, rngs)
    targets = _targets(model, config, modules)
    jobs = {}
    for name in targets:
        rec, slots = records[name], config[name]
        sparse = slots.get("weight_sparseness")
        if sparse is not None and str(sparse) != "DENSE":
            raise ConfigError(
                f"{name}: weight_sparseness = {str(sparse)!r}: GPTQ would refill the pruned weights; "
                "GPTQ applies to dense weights only (exclude the module with modules=...)"
            )
        node = _lookup(params, rec.path)
        if node is None or rec.info.weight not in node:
            raise ValueError(f"{name}: variables['params'] has no {'/'.join(rec.path + (rec.info.weight,))!r}")
        kernel = node[rec.info.weight]
        fmt, spec = slots["weight_format"], slots.get("weight_scale")
        scale_t = None
        if _is_static(spec, fmt):
            entry = _lookup(ptq, rec.path)
            if entry is None or "weight_scale" not in entry:
                raise NotCalibratedError(
                    f"{name}: weight_scale = {str(spec)!r} has not been calibrated: run "
                    "dmxnum.flax.calibrate(model, variables, batches) before dmxnum.flax.gptq"
                )
            scale_t = _weight_scale_to_torch(np.asarray(entry["weight_scale"]), rec, kernel.shape)
        jobs[name] = (rec, fmt, kernel, scale_t)
        # until its turn, a target computes with its params kernel (cast as usual): the
        # entry is there from the start so that every pass has the same structure (one compile)
        _set(ptq, rec.path, rec.info.weight, kernel)
    if not jobs:
        return {**variables, PTQ_COLLECTION: ptq}
    run = _forward(model, state, grab={n: functools.partial(_rows, records[n], n) for n in jobs})
    for name, (rec, fmt, kernel, scale_t) in jobs.items():
        current = {**variables, PTQ_COLLECTION: ptq}
        h, n = None, 0
        for args in batches:
            for r in _call(run, current, args, rngs)[name]:
                r64 = np.asarray(r, dtype=np.float64)
                h = r64.T @ r64 if h is None else h + r64.T @ r64
                n += r64.shape[0]
        if n == 0:
            raise ValueError(f"{name}: the module was not called on the calibration batches; GPTQ needs its inputs")
        h = h * (2.0 / n)
        w_t = _weight_to_torch(np.asarray(kernel), rec)
        result = dmxnum.ptq.gptq(
            w_t, h, fmt, block_size=block_size, damp=damp, act_order=act_order, scale=scale_t
        )
        kq = _weight_from_torch(np.asarray(result.Wq), rec, kernel.shape)
        _set(ptq, rec.path, rec.info.weight, jnp.asarray(kq, dtype=kernel.dtype))
        if stats is not None:
            stats[name] = (result.loss, result.loss_rtn, result.fallback)
    return {**variables, PTQ_COLLECTION: ptq}


def ptq_state(model: Model, variables: Mapping) -> dict[str, tuple[str, ...]]:
    """Per configured module, what ``variables["dmx_ptq"]`` holds for it:
    ``input_scale``, ``weight_scale`` (calibrated) and ``gptq`` (a stored
    kernel); modules with nothing stored are left out."""
    tree = variables.get(PTQ_COLLECTION) if isinstance(variables, Mapping) else None
    out = {}
    for name, rec in model._records.items():
        entry = _lookup(tree, rec.path) if tree is not None and rec.path else None
        if not entry:
            continue
        have = tuple(k for k in ("input_scale", "weight_scale") if k in entry)
        if rec.info is not None and rec.info.weight in entry:
            have += ("gptq",)
        if have:
            out[name] = have
    return out


# ---------------------------------------------------------------------- running
def _start(model: Model, variables: Mapping, batches: Iterable[Any], rngs: Any) -> tuple:
    """What both PTQ passes begin with: the batches as tuples, the model's
    configuration resolved on the first batch, its records, the params and a
    copy of the ``dmx_ptq`` collection."""
    if not isinstance(model, Model):
        raise TypeError(
            f"dmxnum.flax PTQ (calibrate, gptq) takes a Linen dmxnum.flax.Model, got {type(model).__name__}"
            + (": NNX models are not supported yet (run PTQ on the Linen or PyTorch twin)"
               if type(model).__name__ == "NnxModel" else "")
        )
    batches = _as_batches(batches)
    state = model._state
    model._prepare(state, variables, batches[0], rngs, {})
    return batches, state, state.config, model._records, variables["params"], _copy_tree(
        variables.get(PTQ_COLLECTION, {}))


def _as_batches(batches: Iterable[Any]) -> list[tuple]:
    out = [b if isinstance(b, tuple) else (b,) for b in batches]
    if not out:
        raise ValueError("no calibration batches given")
    return out


def _forward(model: Model, state: Any, observe: bool = False, grab: Mapping[str, Callable] | None = None) -> Callable:
    """A jitted configured run that returns what the session observed
    (``observe``: name -> list of inputs) or grabbed (``grab``: name -> ``fn``;
    returns name -> the list of ``fn(module, x)``, one per call). Python
    scalars, strings and None among the positional arguments are static."""

    def fn(variables, arrays, rngs, statics):
        args = _merge_args(arrays, statics)
        session = model._session(state.config, variables, rngs)
        if observe:
            session.observe = {}
        grabbed: dict[str, list] = {name: [] for name in grab or ()}
        if grab is not None:
            session.grab = {name: (f, grabbed[name]) for name, f in grab.items()}
        model._apply_in(session, variables, args, rngs, {})
        return session.observe if observe else grabbed

    return jax.jit(fn, static_argnums=3)


def _call(run: Callable, variables: Any, args: tuple, rngs: Any) -> Any:
    arrays = tuple(a if _is_array(a) else None for a in args)
    statics = tuple((i, a) for i, a in enumerate(args) if not _is_array(a))
    return run(variables, arrays, rngs, statics)


def _merge_args(arrays: tuple, statics: tuple) -> tuple:
    args = list(arrays)
    for i, a in statics:
        args[i] = a
    return tuple(args)


def _is_array(a: Any) -> bool:
    """Python scalars, strings and None are static arguments (``train=False``); the rest is traced."""
    return not isinstance(a, (bool, int, float, complex, str, type(None)))


def _targets(model: Model, config: dict, modules: Any) -> list[str]:
    """The modules GPTQ processes, in forward (recording) order."""
    records = model._records
    eligible = [
        n for n, r in records.items()
        if r.kind in GPTQ_KINDS and r.path and _quantizes(config.get(n, {}).get("weight_format"))
    ]
    if modules is None:
        return eligible
    aliases = model._aliases()
    if isinstance(modules, str):
        pattern = re.compile(modules)
        from .registry import torch_alias

        return [n for n in eligible if pattern.search(n) or pattern.search(torch_alias(n))]
    wanted = []
    for m in modules:
        n = aliases.get(m, m)
        if n not in eligible:
            rec = records.get(n)
            why = (
                "no such module" if rec is None
                else f"it is a {rec.cls} (GPTQ quantizes Dense, DenseGeneral and Conv kernels)" if rec.kind not in GPTQ_KINDS
                else "it has no weight_format (other than SAME) to quantize to"
            )
            raise ConfigError(f"gptq: cannot quantize module {m!r}: {why}; eligible: {eligible}")
        wanted.append(n)
    return [n for n in eligible if n in wanted]


# ---------------------------------------------------------------------- GPTQ input rows
def _rows(rec: Record, name: str, module: Any, x: Any) -> Any:
    """The input ``x`` of module ``module`` as rows ``(N, C)`` over the columns
    of its PyTorch-layout weight ``W.reshape(out, -1)``."""
    if rec.kind == "linear":
        axis = getattr(module, "axis", -1)
        axis = (axis,) if isinstance(axis, int) else tuple(axis)
        if tuple(getattr(module, "batch_dims", ())):
            raise ConfigError(f"{name}: GPTQ does not support a DenseGeneral with batch_dims")
        axis = tuple(a % x.ndim for a in axis)
        x = jnp.moveaxis(x, axis, tuple(range(x.ndim - len(axis), x.ndim)))
        width = int(np.prod([x.shape[i] for i in range(x.ndim - len(axis), x.ndim)]))
        return x.reshape(-1, width)
    # conv
    spatial = rec.spatial
    if getattr(module, "feature_group_count", 1) != 1:
        raise ConfigError(f"{name}: GPTQ does not support grouped convolutions (feature_group_count != 1)")
    padding = module.padding
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID", "SAME_LOWER"):
            raise ConfigError(f"{name}: GPTQ does not support a Conv with padding={padding!r}")
        padding = padding.upper()
    else:
        import flax.linen.linear as fll

        padding = fll.canonicalize_padding(padding, spatial)
    if x.ndim == spatial + 1:
        x = x[None]
    x = x.reshape((-1,) + x.shape[-spatial - 1:])
    kernel_size = tuple(module.kernel_size) if not isinstance(module.kernel_size, int) else (module.kernel_size,)
    names = "HWD"[:spatial] if spatial <= 3 else None
    lhs = "N" + names + "C"
    patches = jax.lax.conv_general_dilated_patches(
        x,
        kernel_size,
        _tuple(module.strides, spatial),
        padding,
        lhs_dilation=_tuple(module.input_dilation, spatial),
        rhs_dilation=_tuple(module.kernel_dilation, spatial),
        dimension_numbers=(lhs, names + "IO", lhs),
        precision=jax.lax.Precision.HIGHEST,
    )
    return patches.reshape(-1, patches.shape[-1])


def _tuple(v: Any, n: int) -> tuple[int, ...]:
    if v is None:
        return (1,) * n
    if isinstance(v, int):
        return (v,) * n
    return tuple(v)


# ---------------------------------------------------------------------- layouts
def _perm(layout: str, ndim: int, spatial: int | None) -> list[int]:
    """Flax axes in PyTorch order: ``np.transpose(flax, perm)`` is the PyTorch tensor."""
    return [torch_axis_to_flax(a, ndim, layout, spatial) for a in range(ndim)]


def _weight_to_torch(w: np.ndarray, rec: Record) -> np.ndarray:
    """A Flax kernel in PyTorch layout: ``(out, in)`` for Dense/DenseGeneral
    (a DenseGeneral's input and output axes flattened), ``(O, I, *S)`` for Conv."""
    layout = rec.info.weight_layout
    if layout == "dense_general_weight":
        n_in = rec.spatial or 1
        return w.reshape(int(np.prod(w.shape[:n_in])), -1).T
    return np.transpose(w, _perm(layout, w.ndim, rec.spatial))


def _weight_from_torch(wt: np.ndarray, rec: Record, shape: tuple[int, ...]) -> np.ndarray:
    layout = rec.info.weight_layout
    if layout == "dense_general_weight":
        return wt.T.reshape(shape)
    return np.transpose(wt, np.argsort(_perm(layout, len(shape), rec.spatial)))


def _weight_scale_to_flax(s: np.ndarray, rec: Record, shape: tuple[int, ...]) -> np.ndarray:
    """A weight scale from the PyTorch-layout observer, in Flax layout, leading ones dropped."""
    s = np.asarray(s, np.float32)
    if s.ndim == 0:
        return s
    layout = rec.info.weight_layout
    if layout == "dense_general_weight":
        n_in = rec.spatial or 1
        per_out, per_in = s.shape[0] > 1, s.shape[1] > 1
        full = (shape[:n_in] if per_in else (1,) * n_in) + (shape[n_in:] if per_out else (1,) * (len(shape) - n_in))
        return _drop_leading_ones(s.T.reshape(full))
    return _drop_leading_ones(np.transpose(s, np.argsort(_perm(layout, s.ndim, rec.spatial))))


def _weight_scale_to_torch(s: np.ndarray, rec: Record, shape: tuple[int, ...]) -> np.ndarray:
    """A stored (Flax-layout) weight scale as a scale of the PyTorch-layout weight."""
    s = np.asarray(s, np.float32)
    if s.ndim == 0:
        return s
    full = s.reshape((1,) * (len(shape) - s.ndim) + s.shape)
    layout = rec.info.weight_layout
    if layout == "dense_general_weight":
        n_in = rec.spatial or 1
        return full.reshape(int(np.prod(full.shape[:n_in])), -1).T
    return np.transpose(full, _perm(layout, full.ndim, rec.spatial))


def _act_to_torch(x: np.ndarray, rec: Record) -> np.ndarray:
    layout = (rec.info.act_layout if rec.info else "features")
    return np.transpose(x, _perm(layout, x.ndim, rec.spatial)) if layout != "features" else x


def _from_torch_act(s: np.ndarray, rec: Record) -> np.ndarray:
    layout = (rec.info.act_layout if rec.info else "features")
    if layout == "features" or np.ndim(s) == 0:
        return s
    return np.transpose(s, np.argsort(_perm(layout, s.ndim, rec.spatial)))


def _drop_leading_ones(s: np.ndarray) -> np.ndarray:
    shape = tuple(s.shape)
    while shape and shape[0] == 1:
        shape = shape[1:]
    return s.reshape(shape)


# ---------------------------------------------------------------------- helpers
def _quantizes(fmt: Any) -> bool:
    return fmt is not None and not isinstance(fmt, Same)


def _is_static(spec: Any, fmt: Any) -> bool:
    return spec is not None and not spec.is_none and _quantizes(fmt)


def _pre_cast_weight(model: Model, rec: Record, slots: dict, params: Any, name: str) -> Any:
    """The weight a module's weight cast receives: ``sparsify(kernel)`` of the params kernel."""
    import dmxnum

    from .configured import _sparsify

    node = _lookup(params, rec.path)
    if node is None or rec.info.weight not in node:
        raise ValueError(f"{name}: variables['params'] has no {'/'.join(rec.path + (rec.info.weight,))!r}")
    w = node[rec.info.weight]
    sparse = slots.get("weight_sparseness")
    if sparse is not None and str(sparse) != "DENSE":
        w = _sparsify(dmxnum, w, sparse, rec.info.weight_layout, rec.spatial, name)
    return w


def _copy_tree(tree: Any) -> dict:
    if isinstance(tree, Mapping):
        return {k: _copy_tree(v) for k, v in tree.items()}
    return tree


def _set(tree: dict, path: tuple[str, ...], key: str, value: Any) -> None:
    node = tree
    for p in path:
        node = node.setdefault(p, {})
    node[key] = value
