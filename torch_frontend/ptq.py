"""Post-training quantization of a wrapped PyTorch model.

``dmx.calibrate`` sets the calibrated static scales a configuration asks
for (slots ``input_scale`` / ``weight_scale``), ``dmx.smoothquant`` moves
activation outliers into the weights (Xiao et al., 2023) and ``dmx.gptq``
replaces configured weights by GPTQ's (Frantar et al., 2022). The numerics
are :mod:`dmxnum.ptq`'s; this module runs the model on calibration batches
and keeps the results in the wrapper (``model.dmx_ptq``, see
:mod:`._ptq_store`): the wrapped network is never mutated.

A batch is one call's inputs: a tensor (one positional argument), a tuple
or list (positional arguments) or a dict (keyword arguments).
"""

from __future__ import annotations

import contextlib
import re
import sys
import warnings
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import dmxnum.ptq as core
from dmxnum.config import ConfigRule
from dmxnum.errors import PTQWarning

from .model import Model

#: batches from which a calibration run shows a progress bar (``progress=None``)
PROGRESS_FROM = 8
_GPTQ_KINDS = ("linear", "conv")


# --- helpers -----------------------------------------------------------------------------


def _check_model(model: Any, what: str) -> Model:
    if not isinstance(model, Model):
        raise TypeError(f"dmx.{what} takes a dmx.Model (the wrapper), got {type(model).__name__}")
    return model


def _as_call(batch: Any, index: int) -> tuple[tuple, dict]:
    """A batch as ``(args, kwargs)``."""
    if isinstance(batch, torch.Tensor):
        return (batch,), {}
    if isinstance(batch, (tuple, list)):
        return tuple(batch), {}
    if isinstance(batch, dict):
        return (), dict(batch)
    raise TypeError(
        f"batch {index} is a {type(batch).__name__}; a batch is a tensor, a tuple/list of "
        "positional arguments or a dict of keyword arguments"
    )


def _calls(batches: Iterable[Any]) -> list[tuple[tuple, dict]]:
    if isinstance(batches, (torch.Tensor, dict)):
        raise TypeError(
            "batches is an iterable of batches (e.g. a list of tensors or a DataLoader), "
            f"not a single {type(batches).__name__}"
        )
    calls = [_as_call(b, i) for i, b in enumerate(batches)]
    if not calls:
        raise ValueError("no calibration batches were given")
    return calls


def _progress(items: Any, total: int, desc: str, progress: bool | None) -> Any:
    """``items`` wrapped in a tqdm bar on stderr when ``progress`` (None: more
    than :data:`PROGRESS_FROM` items and tqdm installed)."""
    if progress is False or (progress is None and total <= PROGRESS_FROM):
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with the models extra
        return items
    return tqdm(items, total=total, desc=desc, file=sys.stderr, leave=False)


@contextlib.contextmanager
def _pass(model: Model, taps: dict[str, dict[str, Callable]], through: bool) -> Iterator[None]:
    """Run forwards as a PTQ pass: ``taps`` observe module inputs; with
    ``through``, static-scaled casts not yet calibrated pass values uncast."""
    saved = (model._taps, model._ptq_pass)
    model._taps, model._ptq_pass = taps, through
    try:
        with torch.no_grad():
            yield
    finally:
        model._taps, model._ptq_pass = saved


def _weight_job(model: Model, name: str) -> tuple:
    jobs = [j for j in model._param_jobs if j[4] == name and j[1] == "weight"]
    if len(jobs) != 1:
        raise ValueError(f"{name}: expected one configured weight, found {len(jobs)}")
    return jobs[0]


def _configured(model: Model) -> dict[str, tuple[str, str, dict]]:
    """Configured modules (not functional ops or attention sites): name -> (class, kind, slots)."""
    by_id = {name: (cls, kind) for name, cls, kind in model._info.values()}
    return {n: (*by_id[n], s) for n, s in model._config.items() if n in by_id}


def _select(model: Model, modules: Any, eligible: dict[str, Any], default: list[str], what: str) -> list[str]:
    """The names ``modules`` selects among ``eligible`` (in model order)."""
    if modules is None:
        return default
    if isinstance(modules, ConfigRule):
        table = {n: (cls, kind) for n, (cls, kind, _) in _configured(model).items()}
        chosen = set(modules.select(table))
    elif isinstance(modules, str):
        try:
            pattern = re.compile(modules)
        except re.error as err:
            raise ValueError(f"modules={modules!r} is not a valid regular expression: {err}") from None
        chosen = {n for n in eligible if pattern.search(n)}
    elif isinstance(modules, (list, tuple, set)):
        chosen = set(modules)
        bad = [n for n in modules if n not in eligible]
        if bad:
            raise ValueError(
                f"{what}: {bad} cannot be selected; eligible modules: {sorted(eligible)[:12]}"
                + (" ..." if len(eligible) > 12 else "")
            )
    else:
        raise TypeError(f"modules must be None, a ConfigRule, a regex or a list of names, got {modules!r}")
    names = [n for n in eligible if n in chosen]
    if not names:
        raise ValueError(f"{what}: modules={modules!r} selects no eligible module")
    return names




def _scaled(slots: dict, key: str) -> bool:
    """True when ``slots`` configure the static scale ``key`` (not NONE)."""
    spec = slots.get(key)
    return spec is not None and not spec.is_none


def _scale_tensor(obs: Any, device: Any) -> torch.Tensor:
    """An observer's scale as a float32 tensor on ``device``."""
    return torch.from_numpy(np.array(obs.scale(), dtype=np.float32)).to(device)


def _device(model: Model, name: str) -> torch.device:
    """The device of module ``name``'s first parameter (CPU when it has none)."""
    p = next(model.net.get_submodule(name).parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _set_weight_scale(model: Model, name: str, slots: dict) -> None:
    """Observe module ``name``'s pre-cast weight (slot layout) and store its scale."""
    job = _weight_job(model, name)
    spec = slots["weight_scale"]
    w = model._pre_cast_weight(job, None).detach()
    obs = spec.observer(slots["weight_format"]).update(w)
    model.dmx_ptq.set(name, "weight_scale", _scale_tensor(obs, w.device))


# --- calibration -------------------------------------------------------------------------


def calibrate(model: Model, batches: Iterable[Any], *, progress: bool | None = None) -> Model:
    """Set every configured static scale of ``model`` and return it.

    ``weight_scale``: observed on each weight as the weight cast sees it
    (slot layout ``(out, in, ...)``, after SmoothQuant; a GPTQ weight keeps
    the scale GPTQ used). ``input_scale``: observed on each module's input
    (after SmoothQuant's division) while the model runs on ``batches`` with
    every other slot applied; the observed inputs themselves pass uncast.
    Earlier input scales are recomputed. The scales become buffers of the
    wrapper (``model.dmx_ptq``, in its ``state_dict``). A module that
    receives no input keeps no scale (``PTQWarning``)."""
    _check_model(model, "calibrate")
    sites = {
        n: s for n, (_, _, s) in _configured(model).items() if _scaled(s, "input_scale") or _scaled(s, "weight_scale")
    }
    if not sites:
        warnings.warn("dmx.calibrate: no module has an input_scale or weight_scale to calibrate",
                      PTQWarning, stacklevel=2)
        return model
    for name, slots in sites.items():
        if _scaled(slots, "weight_scale"):
            if model.dmx_ptq.get(name, "weight") is None or model.dmx_ptq.get(name, "weight_scale") is None:
                _set_weight_scale(model, name, slots)
    observers = {}
    for name, slots in sites.items():
        if _scaled(slots, "input_scale"):
            model.dmx_ptq.drop(name, "input_scale")
            observers[name] = slots["input_scale"].observer(slots["input_format"])
    if observers:
        calls = _calls(batches)
        taps = {n: {"observe": obs.update} for n, obs in observers.items()}
        with _pass(model, taps, through=True):
            for args, kwargs in _progress(calls, len(calls), "dmx.calibrate", progress):
                model(*args, **kwargs)
        for name, obs in observers.items():
            if obs.count == 0:
                warnings.warn(f"{name}: received no input during calibration; its input_scale stays "
                              "uncalibrated", PTQWarning, stacklevel=2)
                continue
            model.dmx_ptq.set(name, "input_scale", _scale_tensor(obs, _device(model, name)))
    return model


# --- SmoothQuant -------------------------------------------------------------------------


def smoothquant(
    model: Model, batches: Iterable[Any], alpha: float = 0.5, modules: Any = None, *,
    progress: bool | None = None,
) -> Model:
    """SmoothQuant on ``model``'s ``Linear`` modules; returns the model.

    Runs the model on ``batches`` (uncalibrated static scales pass values
    uncast) to find each module's ``max |x_j|`` per input feature; modules
    that receive the same input tensor (q/k/v projections, gate/up
    projections) form one group sharing the factors
    ``dmxnum.ptq.smoothquant_factors(max|X|, [their weights], alpha)``. In the
    wrapped forward each module's input is divided by ``f`` before its input
    cast and its weight multiplied by ``f`` (along the input features) before
    its weight cast. ``modules``: a ``ConfigRule``, a regex or a list of
    names; default every configured ``Linear`` with an ``input_format``.
    Calibrated scales and GPTQ weights of the smoothed modules are dropped
    (``PTQWarning``): calibrate (and run GPTQ) after smoothing."""
    _check_model(model, "smoothquant")
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    configured = _configured(model)
    eligible = {n: v for n, v in configured.items() if v[1] == "linear"}
    default = [n for n, (_, _, s) in eligible.items()
               if s.get("input_format") is not None and str(s["input_format"]) != "SAME"]
    names = _select(model, modules, eligible, default, "dmx.smoothquant")
    calls = _calls(batches)
    amax: dict[str, torch.Tensor] = {}
    readers: dict[int, tuple[torch.Tensor, list[str]]] = {}  # first batch: input tensor -> its readers
    first = [True]

    def tap(name: str) -> Callable[[torch.Tensor], None]:
        def observe(x: torch.Tensor) -> None:
            a = x.detach().abs().reshape(-1, x.shape[-1]).float()
            a = torch.where(torch.isfinite(a), a, torch.zeros((), dtype=a.dtype, device=a.device))
            top = a.amax(dim=0)
            amax[name] = top if name not in amax else torch.maximum(amax[name], top)
            if first[0]:  # the tensor is kept alive, so that ids are not reused within the batch
                readers.setdefault(id(x), (x, []))[1].append(name)
        return observe

    taps = {n: {"raw": tap(n)} for n in names}
    with _pass(model, taps, through=True):
        for i, (args, kwargs) in enumerate(_progress(calls, len(calls), "dmx.smoothquant", progress)):
            model(*args, **kwargs)
            first[0] = False
    missing = [n for n in names if n not in amax]
    if missing:
        raise RuntimeError(f"dmx.smoothquant: {missing} received no input from the batches")
    groups = [names for _, names in readers.values()]
    model._drop_ptq({n: ("input_scale", "weight_scale", "weight") for g in groups for n in g},
                    "SmoothQuant changed their inputs and weights: calibrate (and run GPTQ) again", stacklevel=3)
    for group in groups:
        weights = []
        for name in group:
            pname, _, _, transposed, _ = _weight_job(model, name)
            p = model.net.get_parameter(pname).detach()
            weights.append(p.t() if transposed else p)
        f = core.smoothquant_factors(amax[group[0]], weights, float(alpha))
        for name in group:
            model.dmx_ptq.set(name, "smooth", f)
    return model


# --- GPTQ --------------------------------------------------------------------------------


def _tied(model: Model) -> set[str]:
    """Modules whose weight tensor another module also holds (a tied LM head)."""
    holders: dict[int, list[str]] = {}
    for name, module in model.net.named_modules(remove_duplicate=False):
        w = module._parameters.get("weight")
        if w is not None:
            holders.setdefault(id(w), []).append(name)
    return {n for names in holders.values() if len(set(names)) > 1 for n in names}


def _find_blocks(net: nn.Module, targets: list[str]) -> str | None:
    """The largest ``ModuleList`` of same-class modules holding a target."""
    best, size = None, 1
    for name, module in net.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) <= size:
            continue
        if len({type(m) for m in module}) != 1:
            continue
        if any(t.startswith(f"{name}.") for t in targets):
            best, size = name, len(module)
    return best


def _rows(module: nn.Module, x: torch.Tensor, kind: str) -> torch.Tensor:
    """The rows ``x`` multiplies the weight's columns with (float32, 2-D)."""
    x = x.detach().float()
    if kind == "linear":
        return x.reshape(-1, x.shape[-1])
    if isinstance(module, nn.Conv1d):
        x = x.unsqueeze(-2)
        k, d, p, s = (1, *module.kernel_size), (1, *module.dilation), (0, *module.padding), (1, *module.stride)
    else:
        k, d, p, s = module.kernel_size, module.dilation, module.padding, module.stride
    if x.dim() == 3:  # unbatched
        x = x.unsqueeze(0)
    cols = F.unfold(x, k, dilation=d, padding=p, stride=s)  # (B, C * prod(k), L), channel-major
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _check_conv(name: str, module: nn.Module) -> None:
    if not isinstance(module, (nn.Conv1d, nn.Conv2d)):
        raise ValueError(f"{name}: dmx.gptq handles Linear, Conv1d and Conv2d modules, not {type(module).__name__}")
    if isinstance(module.padding, str) or module.padding_mode != "zeros" or module.groups != 1:
        raise ValueError(f"{name}: dmx.gptq needs a Conv with numeric zero padding and groups=1")


class _Hessians:
    """``H = 2/N sum x x^T`` of chosen modules' cast inputs, accumulated in float64."""

    def __init__(self, model: Model, names: list[str]):
        self.model = model
        self.sums: dict[str, torch.Tensor] = {}
        self.count: dict[str, int] = {}
        self.batch: dict[tuple, tuple[torch.Tensor, int]] = {}  # one product per tensor per call
        self.taps = {n: {"cast": self._tap(n)} for n in names}

    def _tap(self, name: str) -> Callable[[torch.Tensor], None]:
        module = self.model.net.get_submodule(name)
        kind = self.model._info[id(module)][2]

        def observe(x: torch.Tensor) -> None:
            key = (id(x), kind, tuple(getattr(module, "kernel_size", ())))
            hit = self.batch.get(key)
            if hit is None or hit[0] is not x:
                rows = _rows(module, x, kind)
                hit = (x, rows.shape[0], (rows.T @ rows).double())
                self.batch[key] = hit
            self.sums[name] = hit[2] if name not in self.sums else self.sums[name] + hit[2]
            self.count[name] = self.count.get(name, 0) + hit[1]
        return observe

    def end_call(self) -> None:
        self.batch.clear()

    def result(self, name: str) -> torch.Tensor:
        if name not in self.sums:
            raise RuntimeError(f"dmx.gptq: {name} received no input from the calibration batches")
        return self.sums[name] * (2.0 / self.count[name])


def _quantize(model: Model, name: str, H: torch.Tensor, options: dict) -> None:
    job = _weight_job(model, name)
    slots = model._config[name]
    w = model._pre_cast_weight(job, None).detach()
    scale = model.dmx_ptq.get(name, "weight_scale") if _scaled(slots, "weight_scale") else None
    res = core.gptq(w, H.cpu().numpy(),
                    slots["weight_format"], scale=None if scale is None else scale.cpu().numpy(), **options)
    model.dmx_ptq.set(name, "weight", res.Wq)
    model._ptq_info[name] = {"loss": res.loss, "loss_rtn": res.loss_rtn, "fallback": res.fallback}


def _hidden(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _next_call(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (hidden, *args[1:]), kwargs
    key = "hidden_states" if "hidden_states" in kwargs else next(iter(kwargs))
    return args, {**kwargs, key: hidden}


class _Stop(Exception):
    """Ends a forward once the first block's inputs are captured."""


def _block_inputs(model: Model, first: str, calls: list) -> list[tuple[tuple, dict]]:
    """Each call's inputs to the module ``first`` (the forward stops there)."""
    captured: list[tuple[tuple, dict]] = []

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        captured.append((args, kwargs))
        raise _Stop

    handle = model.net.get_submodule(first).register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            for args, kwargs in calls:
                try:
                    model(*args, **kwargs)
                except _Stop:
                    continue
                raise RuntimeError(f"dmx.gptq: the forward did not reach {first!r}")
    finally:
        handle.remove()
    return captured


def gptq(
    model: Model, batches: Iterable[Any], modules: Any = None, block_size: int = 128,
    damp: float = 0.01, act_order: bool = False, *, static_groups: bool = False,
    blocks: str | None = None, sequential: bool = False, progress: bool | None = None,
) -> Model:
    """GPTQ on ``model``'s configured weights; returns the model.

    ``modules``: a ``ConfigRule``, a regex or a list of names; default every
    configured ``Linear``/``Conv1d``/``Conv2d`` with a ``weight_format``, a
    tied weight (an LM head sharing the embedding) excluded unless named.
    The network's repeated blocks (the largest ``ModuleList`` of modules of
    one class holding a target, or ``blocks=`` its name) are processed in
    order: the first block's inputs are captured once per batch (the
    forward stops there); then each block runs once per batch on its cached
    inputs, as configured (its weights cast to their format), while every
    target's Hessian ``H = 2/N sum x x^T`` is collected over its cast input,
    and its outputs become the next block's inputs; :func:`dmxnum.ptq.gptq`
    then quantizes the block's targets. So every Hessian sees the earlier
    blocks quantized (by their configured cast). With ``sequential=True``
    a second run of each block after its GPTQ computes the next block's
    inputs with GPTQ's weights instead (as in the paper's code; twice the
    block forwards). Targets outside the blocks are done one at a time with
    whole forwards, each after the earlier ones.
    Each result is stored as a parameter of the wrapper (``model.dmx_ptq``)
    that replaces the weight in the wrapped forward (and trains, a QAT
    starting point); a later ``transform`` that changes the module's weight
    format drops it. ``block_size``, ``damp``, ``act_order``,
    ``static_groups``: as in :func:`dmxnum.ptq.gptq`. Missing weight scales
    are calibrated first; input scales must already be calibrated."""
    _check_model(model, "gptq")
    configured = _configured(model)
    eligible = {
        n: v for n, v in configured.items()
        if v[1] in _GPTQ_KINDS and v[2].get("weight_format") is not None and str(v[2]["weight_format"]) != "SAME"
    }
    tied = _tied(model)
    names = _select(model, modules, eligible, [n for n in eligible if n not in tied], "dmx.gptq")
    options = dict(block_size=block_size, damp=damp, act_order=act_order, static_groups=static_groups)
    for name in names:
        slots = configured[name][2]
        sparse = slots.get("weight_sparseness")
        if sparse is not None and str(sparse) != "DENSE":
            raise ValueError(f"{name}: dmx.gptq cannot keep weight_sparseness = {str(sparse)!r} "
                             "(GPTQ's updates refill pruned weights); remove it or leave the module out")
        if slots["weight_format"].stochastic:
            raise ValueError(f"{name}: weight_format {str(slots['weight_format'])!r} rounds stochastically; "
                             "GPTQ needs a deterministic format")
        if configured[name][1] == "conv":
            _check_conv(name, model.net.get_submodule(name))
    calls = _calls(batches)
    for name in names:
        model.dmx_ptq.drop(name, "weight")
        if _scaled(configured[name][2], "weight_scale") and model.dmx_ptq.get(name, "weight_scale") is None:
            _set_weight_scale(model, name, configured[name][2])
    if model._needs_recording():
        with torch.no_grad():
            model(*calls[0][0], **calls[0][1])
    container = blocks if blocks is not None else _find_blocks(model.net, names)
    rest = list(names)
    if container is not None:
        blocks_list = model.net.get_submodule(container)
        if not isinstance(blocks_list, nn.ModuleList):
            raise ValueError(f"blocks={container!r} is not an nn.ModuleList")
        last = max((i for i in range(len(blocks_list)) if any(n.startswith(f"{container}.{i}.") for n in names)),
                   default=-1)  # later blocks hold no target: nothing to run there
        inputs = _block_inputs(model, f"{container}.0", calls)
        steps = _progress(range(last + 1), last + 1, "dmx.gptq blocks", progress)
        for i in steps:
            block = f"{container}.{i}"
            inner = [n for n in names if n.startswith(block + ".")]
            hess = _Hessians(model, inner)
            outputs = []
            with _pass(model, hess.taps, through=False):
                for args, kwargs in inputs:
                    outputs.append(_next_call(args, kwargs, _hidden(model.run_submodule(block, *args, **kwargs))))
                    hess.end_call()
            for name in inner:
                _quantize(model, name, hess.result(name), options)
                rest.remove(name)
            if sequential and inner:
                with torch.no_grad():
                    outputs = [_next_call(a, k, _hidden(model.run_submodule(block, *a, **k))) for a, k in inputs]
            inputs = outputs
    for name in rest:
        hess = _Hessians(model, [name])
        with _pass(model, hess.taps, through=False):
            for args, kwargs in calls:
                model(*args, **kwargs)
                hess.end_call()
        _quantize(model, name, hess.result(name), options)
    return model
