"""``dmx.Model``: wrap an ``nn.Module`` and apply a dmxnum configuration.

The wrapped network is never mutated. A forward pass:

1. computes the effective parameters ``cast(sparsify(w), weight_format)``
   and ``cast(b, bias_format)`` of every configured module (autograd flows
   straight through to the float originals); parameters that FSDP2
   (``fully_shard``) manages are cast instead in their module's own forward,
   after FSDP's all-gather, on the unsharded parameters (``_fsdp``);
2. calls ``torch.func.functional_call(net, effective, args, kwargs)`` with,
   while it runs, global module forward hooks that keep the current module
   path and cast a configured module's first positional tensor input
   (``input_format``) and its output (``output_format``), and, when needed,
   a ``TorchFunctionMode`` that names and configures functional ops
   (``dmx.aware()``) and replaces the core call of modules configured with an
   ``accum_format`` or ``approximation_function``;
3. audits the forward: every configured slot that did not run is reported
   once by a ``SlotNotAppliedWarning`` (outside any compiled region).

Modules that PyTorch may route through a fused fast path
(``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer``) run natively
unless they or their children hold a configured slot; then they take their
decomposed path (``_attention`` for ``MultiheadAttention``, whose packed
projection and attention are the sites ``<mha>.in_proj`` and
``<mha>.scaled_dot_product_attention_0``).

Hooks and mode exist only during the wrapped forward; nothing in ``torch``
is patched.

Under ``torch.compile`` (``docs/export.md``), ``Model.__call__`` is a frame
Dynamo never compiles: it installs the two hooks (fixed ids, so guards hold
across calls), draws the forward's random seed, computes the effective
parameters (step 1, cached in eval without grad) and audits afterwards
(step 3); ``forward`` (step 2) is compiled as one graph. Under
``torch.export`` the whole forward, step 1 included, is traced.
"""

from __future__ import annotations

import contextlib
import functools
import re
import warnings
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree

from dmxnum.config import (
    ConfigRule,
    Report,
    apply_rules,
    audit_message,
    audited_slots,
    canonical_instance,
    check_fits,
    make_row,
    parse_config,
    selects_nothing,
    slots_of,
    sqnr_db,
    to_yaml,
)
from dmxnum.config.schema import RULES_KEY, _check_module, closest
from dmxnum.errors import ConfigError, ConfigWarning, NotCalibratedError, PTQWarning, SlotNotAppliedWarning

from . import _attention, _core, _fsdp, _modules, _ops
from ._aware import is_aware
from ._ptq_store import PTQStore
from ._words import Words, draw_seed

_FUNCTIONAL_NAME = re.compile(
    r"(?:^|\.)(" + "|".join(sorted({op for op, _ in _ops.OPS.values()})) + r")_\d+$"
)
_WEIGHT_SLOTS = ("weight_sparseness", "weight_format", "weight_scale")
#: modules PyTorch may compute in one fused call that skips their children
#: (TransformerEncoder: the nested-tensor path for padded batches)
_FAST_PATH = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerEncoder)


def _join(prefix: str, suffix: str) -> str:
    return f"{prefix}.{suffix}" if prefix else suffix


def _draws(job: tuple) -> int:
    """The word sites a parameter job's casts take (one per stochastic slot)."""
    return sum(bool(getattr(v, "stochastic", False)) for v in job[2].values())


def _encoder_layer_ops(layer: nn.TransformerEncoderLayer) -> dict[str, tuple[str, str]]:
    """The functional ops of a ``TransformerEncoderLayer``'s unfused forward
    (both residual additions, and F.gelu when it is the activation): the
    names its recording would give, known without running it."""
    ops = {"add_0": ("add", "add"), "add_1": ("add", "add")}
    if getattr(layer, "activation", None) is F.gelu:
        ops["gelu_0"] = ("gelu", "gelu")
    return ops


#: the runs of the wrapped forwards in progress (innermost last); the global
#: module hooks act for the innermost one
_ACTIVE: list["_Run"] = []
#: fixed ids of the two global module hooks: the same dictionary entries on
#: every call, so that Dynamo's guards on the hook tables hold across calls
_PRE_ID, _POST_ID = -0x646D7801, -0x646D7802
_DEPTH = [0]
#: ``torch.backends.mha`` fast-path settings saved by the wrapped calls in progress
_FASTPATH_SAVED: list[bool] = []
#: keyword that carries a forward's effective parameters and random seed from
#: ``Model.__call__`` (outside any compiled region) into ``forward``
_PREPARED = "_dmx_prepared"
#: the first word site of activations (parameters count from 0)
_ACTIVATION_SITES = 1 << 20


def _pre_hook(module: nn.Module, args: tuple) -> Any:
    if not _ACTIVE:
        return None
    return _ACTIVE[-1].pre_hook(module, args)


def _post_hook(module: nn.Module, args: tuple, output: Any) -> Any:
    if not _ACTIVE:
        return None
    return _ACTIVE[-1].post_hook(module, args, output)


def _install_hooks() -> None:
    """Add the two global module hooks (nested wrapped calls share them).

    ``Model.__call__`` installs them outside any compiled region (hooks
    registered while Dynamo traces are not traced) and :func:`_remove_hooks`
    removes them when the outermost wrapped call returns: no hook remains
    between calls, so every other module runs as if dmxnum were absent."""
    table = nn.modules.module
    if _DEPTH[0] == 0:
        table._global_forward_pre_hooks[_PRE_ID] = _pre_hook
        table._global_forward_hooks[_POST_ID] = _post_hook
        table._global_forward_hooks_always_called[_POST_ID] = True
    _DEPTH[0] += 1


def _remove_hooks() -> None:
    _DEPTH[0] -= 1
    if _DEPTH[0] == 0:
        table = nn.modules.module
        table._global_forward_pre_hooks.pop(_PRE_ID, None)
        table._global_forward_hooks.pop(_POST_ID, None)
        table._global_forward_hooks_always_called.pop(_POST_ID, None)


class _Frame:
    def __init__(self, name: str | None, kind: str, replace: Callable | None, known: bool):
        self.name = name
        self.kind = kind
        self.counts: dict[str, int] = {}
        self.replace = replace
        self.known = known
        self.suspend: Any = None


class _Mode(TorchFunctionMode):
    """Names functional ops after the current module and applies their slots."""

    def __init__(self, run: "_Run"):
        super().__init__()
        self.run = run

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        run = self.run
        frame = run.stack[-1] if run.stack else None
        if frame is None or not frame.known:
            return func(*args, **kwargs)
        if frame.kind != "module":
            # the implementation of a covered module: maybe replace its core call
            if frame.replace is not None:
                out = frame.replace(func, args, kwargs, run.key)
                if out is not NotImplemented:
                    run.mark_replaced(frame.name)
                    return out
            return func(*args, **kwargs)
        if not run.functional:
            return func(*args, **kwargs)
        entry = _ops.lookup(func, args)
        if entry is None:
            return func(*args, **kwargs)
        op, kind = entry
        i = frame.counts.get(op, 0)
        frame.counts[op] = i + 1
        name = f"{frame.name}.{op}_{i}" if frame.name else f"{op}_{i}"
        if run.record is not None:
            run.record[name] = (op, kind)
            run.apply_pending(name, op, kind)
        slots = run.op_config.get(name)
        if not slots:
            out = func(*args, **kwargs)
        else:
            try:
                out = _ops.apply(op, func, args, kwargs, slots, run.key)
            except (ValueError, IndexError) as err:
                if isinstance(err, ConfigError):
                    raise
                shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
                raise ConfigError(
                    f"{name}: its slots {dict((k, str(v)) for k, v in slots.items() if k != 'instance')} "
                    f"cannot apply to operands of shapes {shapes}: {err}"
                ) from err
            first = args[0] if args else None
            floating = isinstance(first, torch.Tensor) and first.is_floating_point()
            for slot in slots:
                if slot != "input_format" or floating:
                    run.applied.add((name, slot))
        run.capture_output(name, out)
        return out


class _Run:
    """State of one wrapped forward (module stack, recording, configuration,
    the slots that ran, captured outputs)."""

    def __init__(
        self,
        model: "Model",
        record: dict | None,
        functional: bool,
        configured: bool = True,
        capture: dict | None = None,
        words: Words | None = None,
    ):
        self.model = model
        self.stack: list[_Frame] = []
        self.record = record
        self.functional = functional
        self.config = model._config if configured else {}
        self.op_config = dict(model._op_config) if functional and configured else {}
        self.replace = model._replace if configured else {}
        self.whole = model._whole if configured else {}
        self.pending = model._pending if configured and record is not None else None
        self.key = words
        self.mode_on = False
        self.applied: set[tuple[str, str]] = set()
        self.capture = capture
        self.shapes: dict[str, tuple] = {}
        # input casts of one tensor by one deterministic format, shared within
        # this forward (q, k and v projections read the same hidden states)
        self.memo: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    # --- bookkeeping ---------------------------------------------------------------
    def mark_replaced(self, name: str | None) -> None:
        slots = self.config.get(name) or {}
        for slot in ("accum_format", "approximation_function"):
            if slot in slots:
                self.applied.add((name, slot))

    def apply_pending(self, name: str, op: str, kind: str) -> None:
        """Rules given to ``transform`` before the first forward apply to each
        functional op as it is recorded."""
        if not self.pending:
            return
        for rule in self.pending:
            if not rule.selects(name, op, kind):
                continue
            _check_module(rule.describe(), rule.config, op, kind, name)
            slots = {**self.op_config.get(name, {}), **rule.config}
            self.op_config[name] = {"instance": canonical_instance(op), **slots}

    def capture_output(self, name: str, out: Any) -> None:
        if self.capture is None:
            return
        leaves = [t for t in _pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
        if leaves and leaves[0].is_floating_point() and not leaves[0].is_nested:
            self.capture.setdefault(name, []).append(leaves[0].detach())

    def cast_input(self, t: torch.Tensor, fmt: Any, where: str, scale: Any = None) -> torch.Tensor:
        if fmt.stochastic or _core.tracing() or t.is_inference():
            return _core.cast(t, fmt, self.key, where, scale)
        k = (id(t), t._version, fmt, None if scale is None else id(scale))
        hit = self.memo.get(k)
        if hit is not None and hit[0] is t:
            return hit[1]
        out = _core.cast(t, fmt, self.key, where, scale)
        self.memo[k] = (t, out)
        return out

    # --- hooks -----------------------------------------------------------------------
    def pre_hook(self, module: nn.Module, args: tuple) -> Any:
        model = self.model
        info = model._info.get(id(module))
        if self.mode_on:  # the frame stack names functional ops; only the mode reads it
            self.push_frame(module, info)
        if info is None:
            return None
        name = info[0]
        if not _core.tracing() and name not in model._shapes:  # eager forwards record them
            self.record_shape(name, args)
        slots = self.config.get(name)
        taps = model._taps.get(name) if model._taps else None
        if not slots and taps is None:
            return None
        for slot in model._param_slots.get(name, ()):
            self.applied.add((name, slot))
        for i, a in enumerate(args):
            if isinstance(a, torch.Tensor):
                if not a.is_floating_point():
                    return None
                b = self.prepare_input(name, a, slots or {}, taps or {})
                return None if b is a else args[:i] + (b,) + args[i + 1:]
        return None

    def prepare_input(self, name: str, a: torch.Tensor, slots: dict, taps: dict) -> torch.Tensor:
        """The module's first tensor input as the module receives it: the raw
        input (tap ``raw``), divided by the SmoothQuant factors, observed
        (tap ``observe``) or cast by ``input_format`` under the calibrated
        ``input_scale``, then tap ``cast``."""
        model = self.model
        if "raw" in taps:
            taps["raw"](a)
        smooth = model._ptq_tensor(name, "smooth")
        if smooth is not None:
            a = a / smooth.to(a.dtype)
        fmt = slots.get("input_format")
        spec = slots.get("input_scale")
        scale = None
        if spec is not None and not spec.is_none:
            scale = model._ptq_tensor(name, "input_scale")
            if scale is None:
                if not model._ptq_pass:
                    raise NotCalibratedError(
                        f"{name}: input_scale = {str(spec)!r} has not been calibrated: run "
                        "dmx.calibrate(model, batches) before the forward"
                    )
                if "observe" in taps:
                    taps["observe"](a)
                fmt = None  # calibration passes observe the input and pass it on uncast
        if not _core.is_same(fmt):
            self.applied.add((name, "input_format"))
            if scale is not None:
                self.applied.add((name, "input_scale"))
            a = self.cast_input(a, fmt, f"{name}: input_format", scale)
        if "cast" in taps:
            taps["cast"](a)
        return a

    def push_frame(self, module: nn.Module, info: tuple | None) -> None:
        if info is None:
            self.stack.append(_Frame(None, "module", None, False))
            return
        name, _, kind = info
        model = self.model
        replace = self.replace.get(name)
        decomposed = name in model._decomposed
        if kind == "mha" and decomposed:
            replace = _attention.Decomposition(
                name, self.config, self.key, lambda n, s: self.applied.add((n, s)),
                self.capture_output if self.capture is not None else None,
            )
        frame = _Frame(name, kind, replace, True)
        self.stack.append(frame)
        if isinstance(module, _FAST_PATH) and not decomposed and not _core.tracing():
            # nothing configured in it: let PyTorch choose its own (fused) path
            frame.suspend = (torch._C.DisableTorchFunction(), torch.backends.mha.get_fastpath_enabled())
            frame.suspend[0].__enter__()
            torch.backends.mha.set_fastpath_enabled(True)

    def record_shape(self, name: str, args: tuple) -> None:
        for a in args:
            if isinstance(a, torch.Tensor):
                self.shapes[name] = None if a.is_nested else tuple(a.shape)
                return
        self.shapes[name] = None

    def post_hook(self, module: nn.Module, args: tuple, output: Any) -> Any:
        if self.mode_on:
            frame = self.stack.pop() if self.stack else None
            if frame is not None and frame.suspend is not None:
                torch.backends.mha.set_fastpath_enabled(frame.suspend[1])
                frame.suspend[0].__exit__(None, None, None)
        info = self.model._info.get(id(module))
        if info is None:
            return None
        name = info[0]
        whole = self.whole.get(name)
        if whole is not None and args and isinstance(args[0], torch.Tensor):
            # the module's computation replaced as a whole (its native result is discarded)
            output = whole(module, args[0])
            self.applied.add((name, "approximation_function"))
        slots = self.config.get(name)
        if not slots or _core.is_same(slots.get("output_format")):
            if whole is not None:
                if self.capture is not None:
                    self.capture_output(name, output)
                return output
            if self.capture is not None:
                self.capture_output(name, output)
            return None
        fmt = slots["output_format"]
        where = f"{name}: output_format"
        if isinstance(output, torch.Tensor):
            if output.is_floating_point():
                self.applied.add((name, "output_format"))
            output = _core.cast(output, fmt, self.key, where)
        else:
            if any(isinstance(t, torch.Tensor) and t.is_floating_point() for t in _pytree.tree_leaves(output)):
                self.applied.add((name, "output_format"))
            output = _pytree.tree_map_only(
                torch.Tensor, lambda t: _core.cast(t, fmt, self.key, where), output
            )
        if self.capture is not None:
            self.capture_output(name, output)
        return output


def _skip_frame(fn: Callable) -> Callable:
    """Mark ``fn``'s frame as one Dynamo never compiles while it still
    compiles the functions ``fn`` calls (``torch.compiler.disable(fn,
    recursive=False)`` without its wrapper, which ``torch.export`` rejects)."""
    from torch._dynamo.eval_frame import skip_code

    skip_code(fn.__code__)
    return fn


class Model(nn.Module):
    """A configurable view of ``net`` (which is held, not modified).

    ``Model(net, key=None)``: ``key`` (an int seed or a ``torch.Generator``)
    feeds stochastic formats and sparsities; with an int a CPU generator is
    seeded once, so a run is reproducible and successive casts draw fresh
    words. ``model.net`` is the original network; ``model.parameters()`` are
    its float parameters (optimizers train them; casts are straight-through).
    Attributes the wrapper does not define are read from ``net``
    (``model.config``, ``model.device``, ...). ``print(model)`` shows the
    network and :meth:`dmx_report`.
    """

    def __init__(self, net: nn.Module, key: int | torch.Generator | None = None):
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"dmx.Model wraps an nn.Module, got {type(net).__name__}")
        self.net = net
        self.training = net.training  # a wrapped eval model is an eval model
        if key is None or isinstance(key, torch.Generator):
            self._generator = key
        elif isinstance(key, int) and not isinstance(key, bool):
            self._generator = torch.Generator().manual_seed(key)
        else:
            raise TypeError(f"key must be an int seed or a torch.Generator, got {key!r}")
        self._config: dict[str, dict[str, Any]] = {}  # modules and MHA sites: name -> slots
        self._op_config: dict[str, dict[str, Any]] = {}  # functional ops
        self._recorded: dict[str, tuple[str, str]] | None = None  # name -> (op, kind)
        self._pending: tuple[ConfigRule, ...] | None = None  # rules awaiting recorded ops
        self._pending_check: tuple[Mapping, tuple] | None = None
        self._shapes: dict[str, tuple | None] = {}  # name -> first input shape
        self._applied: set[tuple[str, str]] = set()  # slots that ran in the last forward
        self._warned: set[tuple[str, str]] = set()
        self._forwards = 0
        self.dmx_ptq = PTQStore()  # calibrated scales, SmoothQuant factors, GPTQ weights
        self._taps: dict[str, dict[str, Callable]] = {}  # PTQ passes: name -> stage -> observer
        self._ptq_pass = False  # True: uncalibrated static-scaled casts pass values uncast
        self._ptq_info: dict[str, dict[str, Any]] = {}  # name -> GPTQ's losses (for dmx_report)
        self._install_state()
        self._scan()

    def _install_state(self) -> None:
        self._replace: dict[str, Callable] = {}
        self._whole: dict[str, Callable] = {}
        self._param_jobs: list[tuple[str, str, dict, bool]] = []
        self._param_slots: dict[str, tuple[str, ...]] = {}
        self._decomposed: set[str] = set()
        self._cache: dict[str, tuple[tuple, torch.Tensor]] = {}
        self._stochastic = False
        self._export_seed: torch.Tensor | None = None
        self._generation = getattr(self, "_generation", 0)

    # --- copies --------------------------------------------------------------------------
    def __getstate__(self) -> dict:
        """Copies and pickles keep the whole configuration; what is keyed by
        module identity or holds closures is rebuilt on load."""
        state = self.__dict__.copy()
        for key in ("_info", "_replace", "_param_jobs", "_param_slots", "_decomposed", "_cache"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for key, default in (("_taps", {}), ("_ptq_pass", False), ("_ptq_info", {})):
            self.__dict__.setdefault(key, default)  # wrappers pickled before PTQ existed
        if "dmx_ptq" not in self._modules:
            self.dmx_ptq = PTQStore()
        self._install_state()
        self._scan()
        self._install()

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_") or name == "net":
                raise
            net = self.__dict__.get("_modules", {}).get("net")
            if net is None:
                raise
            return getattr(net, name)

    def __repr__(self) -> str:
        return super().__repr__() + "\n" + str(self.dmx_report())

    # --- names -----------------------------------------------------------------
    def _scan(self) -> None:
        self._info = {}
        self._sites: dict[str, tuple[str, str]] = {}  # MHA sites (no aware() needed)
        self._static_ops: dict[str, tuple[str, str]] = {}  # ops of fused modules
        self._fast: list[str] = []
        for name, module in self.net.named_modules():
            cls, kind = _modules.classify(module)
            self._info[id(module)] = (name, cls, kind)
            if isinstance(module, nn.MultiheadAttention):
                self._fast.append(name)
                for suffix, entry in _attention.sites(module).items():
                    self._sites[_join(name, suffix)] = entry
            elif isinstance(module, nn.TransformerEncoderLayer):
                self._fast.append(name)
                for suffix, entry in _encoder_layer_ops(module).items():
                    self._static_ops[_join(name, suffix)] = entry
            elif isinstance(module, _FAST_PATH):
                self._fast.append(name)

    def _modules_table(self) -> dict[str, tuple[str, str]]:
        table = {
            name: (cls, kind) for name, cls, kind in self._info.values() if name != ""
        }
        for name, entry in self._sites.items():
            table[name] = entry
        if is_aware():
            table.update(self._static_ops)
        for name, (op, kind) in (self._recorded or {}).items():
            table[name] = (op, kind)
        return table

    def dmx_module_names(self) -> dict[str, tuple[str, ...]]:
        """Every configurable name -> its slots (in application order).

        Module names are ``net.named_modules()`` names (the root excluded);
        a ``MultiheadAttention`` adds ``<name>.in_proj`` (its packed input
        projection) and ``<name>.scaled_dot_product_attention_0``; functional
        ops appear once recorded (``trace`` or the first forward with
        ``dmx.aware()`` on) as ``<module path>.<op>_<i>`` (those of a
        ``TransformerEncoderLayer`` are known up front).
        """
        return {name: slots_of(kind) for name, (_, kind) in self._modules_table().items()}

    def trace(self, *example_inputs: Any, **example_kwargs: Any) -> dict[str, tuple[str, ...]]:
        """Run one forward (no grad) to record functional op names; return
        ``dmx_module_names()``. Needs ``dmx.aware()`` (RuntimeError otherwise)."""
        if not is_aware():
            raise RuntimeError(
                "model.trace records functional op names, which needs the interception: "
                "call dmx.aware() first"
            )
        self._recorded = None
        with torch.no_grad():
            self(*example_inputs, **example_kwargs)
        return self.dmx_module_names()

    # --- configuration -----------------------------------------------------------

    @property
    def dmx_config(self) -> str:
        """The current configuration as YAML (canonical shorthands; every
        configured name with its ``instance``). ``Model(net).transform(text)``
        reproduces it (functional names need ``aware()`` and a recording)."""
        merged = {**self._config, **self._op_config}
        table = self._modules_table()
        ordered = {n: merged[n] for n in table if n in merged}
        return to_yaml(ordered)

    def _check_names(self, parsed: Mapping[str, Any], table: Mapping[str, tuple]) -> None:
        for name in parsed:
            if name == RULES_KEY and isinstance(parsed[name], tuple):
                continue
            if name in table:
                continue
            m = _FUNCTIONAL_NAME.search(name)
            if m:
                if not is_aware():
                    raise ConfigError(
                        f"{name!r} names a functional op ({m.group(1)}); configuring functional "
                        "ops needs the interception: call dmx.aware() first"
                    )
                if self._recorded is None:
                    raise ConfigError(
                        f"functional op {name!r} has not been recorded yet: run "
                        "model.trace(*example_inputs) or one forward pass first "
                        "(rules that select op kinds apply in that first forward)"
                    )
                near = closest(name, table)
                raise ConfigError(
                    f"functional op {name!r} was not recorded in the forward pass"
                    + (f"; closest valid names: {', '.join(map(repr, near))}" if near else "")
                )

    def transform(self, config_or_path: Any = None, *rules: ConfigRule | Mapping) -> "Model":
        """Apply a configuration (path, YAML text, mapping, a ``ConfigRule``
        or None) and rules.

        The file's entries apply first (in order; a ``rules:`` list in the
        file applies where it stands), then each rule in order, on top of
        the current configuration; a later setting of a slot overrides an
        earlier one. Everything is validated before anything changes: an
        unknown name (closest names suggested; a functional name needs
        ``dmx.aware()`` and a recording), an unknown slot, a slot the module
        lacks, an ``instance`` mismatch, a malformed value, a rule type that
        names nothing, a block axis or N:M group that does not fit a
        parameter (or a recorded activation), or a stochastic format without
        a ``key`` raise ``ConfigError`` and leave the model as it was.
        With ``dmx.aware()`` on and no forward recorded yet, the rules also
        apply to functional ops as the first forward records them. A rule
        given here that selects nothing warns (``ConfigWarning``); a file's
        rules warn only when the file configures nothing. Returns ``self``.
        """
        if isinstance(config_or_path, ConfigRule):
            rules = (config_or_path, *rules)
            config_or_path = None
        parsed = parse_config(config_or_path) if config_or_path is not None else {}
        self._scan()  # the network's modules as they are now
        table = self._modules_table()
        self._check_names(parsed, table)
        base = {**self._config, **self._op_config}
        pending = is_aware() and self._recorded is None
        merged = apply_rules(parsed, rules, table, base=base, warn=not pending)
        for name, slots in merged.items():
            self._check_randomness(name, slots)
            if "instance" not in slots:
                slots = {"instance": canonical_instance(table[name][0]), **slots}
            merged[name] = slots
        self._check_shapes(merged)
        arg_rules = tuple(r if isinstance(r, ConfigRule) else ConfigRule.from_mapping(r) for r in rules)
        file_rules = parsed.get(RULES_KEY) if isinstance(parsed.get(RULES_KEY), tuple) else ()
        if pending:
            for rule in (*file_rules, *arg_rules):
                for slot, value in rule.config.items():
                    self._check_randomness(rule.describe(), {slot: value})
        # --- nothing has failed: install -------------------------------------------
        self._drop_ptq(self._stale_ptq(merged), "their format changed: calibrate / run GPTQ again")
        module_names = {name for name, _, _ in self._info.values()} | set(self._sites)
        self._config = {n: s for n, s in merged.items() if n in module_names}
        self._op_config = {n: s for n, s in merged.items() if n not in module_names}
        if pending:
            self._pending = (self._pending or ()) + tuple(file_rules) + arg_rules
            self._pending_check = (parsed, arg_rules)
        self._install()
        return self

    def _stale_ptq(self, merged: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
        """PTQ entries a new configuration invalidates: a module's weight scale
        and GPTQ weight when its weight slots change, its input scale when its
        input slots change (SmoothQuant factors stay: they change no result
        by themselves)."""
        watched = {
            ("weight_scale", "weight"): ("weight_sparseness", "weight_format", "weight_scale"),
            ("input_scale",): ("input_format", "input_scale"),
        }
        stale: dict[str, tuple[str, ...]] = {}
        for name, key, _ in self.dmx_ptq.items():
            old, new = self._config.get(name, {}), merged.get(name, {})
            for keys, slots in watched.items():
                if key in keys and any(str(old.get(s)) != str(new.get(s)) for s in slots):
                    stale[name] = stale.get(name, ()) + (key,)
        return stale

    def _drop_ptq(self, entries: Mapping[str, tuple[str, ...]], why: str, stacklevel: int = 4) -> None:
        """Remove PTQ entries ``{module: keys}``; one ``PTQWarning`` lists what went."""
        gone = []
        for name, keys in entries.items():
            for key in keys:
                if self.dmx_ptq.drop(name, key):
                    gone.append(f"{name}.{key}")
                    if key == "weight":
                        self._ptq_info.pop(name, None)
        if gone:
            shown = ", ".join(gone[:6]) + (f", ... ({len(gone)} in all)" if len(gone) > 6 else "")
            warnings.warn(f"dropped post-training quantization state {shown}: {why}", PTQWarning,
                          stacklevel=stacklevel)

    def _check_randomness(self, name: str, slots: Mapping[str, Any]) -> None:
        if self._generator is not None:
            return
        for slot, value in slots.items():
            if getattr(value, "stochastic", False) or str(value).startswith("BERN"):
                raise ConfigError(
                    f"{name}: {slot} = {str(value)!r} is stochastic and needs randomness: "
                    "give the model a seed or generator, dmx.Model(net, key=0)"
                )

    def _param_names(self, name: str, attr: str) -> list[str]:
        """The parameter names (in ``net``) that slot family ``attr``
        (``weight``/``bias``) of module or site ``name`` casts: the module's
        own ``weight``/``bias``; for a ``MultiheadAttention``'s ``in_proj``
        the packed ``in_proj_weight`` (or ``q/k/v_proj_weight`` when the key
        and value dimensions differ) and ``in_proj_bias``."""
        if name in self._sites:
            owner, suffix = name.rsplit(".", 1) if "." in name else ("", name)
            if suffix != _attention.IN_PROJ:
                return []
            mha = self.net.get_submodule(owner)
            attrs = [f"in_proj_{attr}"]
            if attr == "weight" and not mha._qkv_same_embed_dim:
                attrs = ["q_proj_weight", "k_proj_weight", "v_proj_weight"]
            return [_join(owner, a) for a in attrs if getattr(mha, a, None) is not None]
        value = getattr(self.net.get_submodule(name), attr, None)
        return [_join(name, attr)] if isinstance(value, torch.Tensor) else []

    def _check_shapes(self, merged: Mapping[str, Mapping[str, Any]]) -> None:
        """Block axes and N:M groups that cannot fit a parameter, or an
        activation whose shape a forward recorded, fail here, naming the
        module and the slot."""
        by_name = {name: cls for name, cls, _ in self._info.values()}
        for name, slots in merged.items():
            if name in by_name or name in self._sites:
                transposed = _modules.weight_transposed(by_name.get(name, ""))
                for pname in self._param_names(name, "weight"):
                    shape = tuple(self.net.get_parameter(pname).shape)
                    shape = shape[::-1] if transposed else shape
                    for slot in _WEIGHT_SLOTS:
                        if slot in slots:
                            check_fits(name, slot, slots[slot], shape, "weight")
                for pname in self._param_names(name, "bias") if "bias_format" in slots else ():
                    shape = tuple(self.net.get_parameter(pname).shape)
                    check_fits(name, "bias_format", slots["bias_format"], shape, "bias")
            shape = self._shapes.get(name)
            if shape is not None and "input_format" in slots:
                check_fits(name, "input_format", slots["input_format"], shape, "input")

    def _install(self) -> None:
        by_name = {name: (cls, kind) for name, cls, kind in self._info.values()}
        by_name.update(self._sites)
        self._install_state()
        for name, slots in self._config.items():
            cls, kind = by_name[name]
            fn = _modules.replacement(kind, slots)
            if fn is not None and name not in self._sites:
                self._replace[name] = fn
            whole = _modules.whole_replacement(kind, slots)
            if whole is not None and name not in self._sites:
                self._whole[name] = whole
            transposed = _modules.weight_transposed(cls)
            covered = []
            w_slots = {s: slots[s] for s in _WEIGHT_SLOTS if s in slots}
            weights = self._param_names(name, "weight") if w_slots else []
            for pname in weights:
                self._param_jobs.append((pname, "weight", w_slots, transposed, name))
            covered += list(w_slots) if weights else []
            biases = self._param_names(name, "bias") if "bias_format" in slots else []
            for pname in biases:
                self._param_jobs.append((pname, "bias", {"bias_format": slots["bias_format"]}, False, name))
            covered += ["bias_format"] if biases else []
            self._param_slots[name] = tuple(covered)
        configured = [n for n, s in {**self._config, **self._op_config}.items() if audited_slots(s)]
        for owner in self._fast:
            if any(owner == "" or n == owner or n.startswith(owner + ".") for n in configured):
                self._decomposed.add(owner)
        self._stochastic = any(
            getattr(v, "stochastic", False)
            for slots in (*self._config.values(), *self._op_config.values()) for v in slots.values()
        ) or any(
            getattr(v, "stochastic", False) for rule in self._pending or () for v in rule.config.values()
        )
        self._warned = set()
        self._forwards = 0  # forwards under this configuration
        self._applied = set()
        self._generation += 1

    # --- forward -------------------------------------------------------------------

    def _ptq_tensor(self, name: str, key: str) -> torch.Tensor | None:
        """Module ``name``'s PTQ entry ``key`` (:mod:`._ptq_store`), or None."""
        store = self.__dict__["_modules"].get("dmx_ptq")
        return None if store is None else store.get(name, key)

    def _weight_source(self, job: tuple) -> torch.Tensor:
        """The tensor a weight job starts from: GPTQ's weight if stored, else
        the network's parameter (stamps the effective-weight cache)."""
        q = self._ptq_tensor(job[4], "weight") if job[1] == "weight" else None
        return q if q is not None else self.net.get_parameter(job[0])

    def _pre_cast_weight(self, job: tuple, key: Words | None) -> torch.Tensor:
        """A weight job's weight in slot layout before its format's cast:
        ``sparsify(w) * f`` (``f``: SmoothQuant factors along the input
        features), or GPTQ's stored weight as it is."""
        pname, _, slots, transposed, name = job
        q = self._ptq_tensor(name, "weight")
        if q is not None:
            return q
        p = self.net.get_parameter(pname)
        w = p.t() if transposed else p
        smooth = self._ptq_tensor(name, "smooth")
        if smooth is not None:
            w = w * smooth.to(w.dtype).reshape((1, -1) + (1,) * (w.ndim - 2))
        return _core.sparsify(w, slots.get("weight_sparseness"), key)

    def _weight_scale(self, job: tuple) -> torch.Tensor | None:
        spec = job[2].get("weight_scale")
        if spec is None or spec.is_none:
            return None
        scale = self._ptq_tensor(job[4], "weight_scale")
        if scale is None:
            if self._ptq_pass:
                return None
            raise NotCalibratedError(
                f"{job[4]}: weight_scale = {str(spec)!r} has not been calibrated: run "
                "dmx.calibrate(model, batches) before the forward"
            )
        return scale

    def _effective(self, job: tuple, key: Words | None) -> torch.Tensor:
        pname, role, slots, transposed, name = job
        if role == "bias":
            return _core.cast(self.net.get_parameter(pname), slots["bias_format"], key)
        w = self._pre_cast_weight(job, key)
        scale = self._weight_scale(job)
        spec = slots.get("weight_scale")
        if scale is None and spec is not None and not spec.is_none:
            return w.t() if transposed else w  # a calibration pass: uncalibrated weight uncast
        w = _core.cast(w, slots.get("weight_format"), key, scale=scale)
        return w.t() if transposed else w

    def effective_parameters(self, words: Words | None = None, prefix: str | None = None) -> dict[str, torch.Tensor]:
        """The configured parameters' effective values, by parameter name:
        ``cast(sparsify(w))`` for weights, ``cast(b)`` for biases.

        With the network in eval mode and no grad, deterministic values are cached per
        parameter (keyed by its version and storage) outside any compiled or
        exported trace; stochastic slots take their words from ``words``
        (one draw per forward; a fresh seed when None). With ``prefix``, only
        the parameters under that module path."""
        if words is None and self._stochastic:
            words = Words(draw_seed(self._generator))
        return self._effective_parameters(words, prefix, ())

    def _effective_parameters(
        self, words: Words | None, prefix: str | None, units: tuple[str, ...]
    ) -> dict[str, torch.Tensor]:
        """:meth:`effective_parameters` less the parameters that the FSDP2
        ``units`` manage (cast in their module's forward: :meth:`_sharded_casts`);
        their word sites are skipped, so every cast keeps its site."""
        cacheable = not self.net.training and not torch.is_grad_enabled() and not _core.tracing()
        out = {}
        for job in self._param_jobs:
            pname = job[0]
            if prefix is not None and not pname.startswith(prefix + "."):
                continue
            if units and _fsdp.is_managed(pname.rpartition(".")[0], units):
                if words is not None:
                    words.site += _draws(job)
                continue
            if cacheable and not any(getattr(v, "stochastic", False) for v in job[2].values()):
                p = self._weight_source(job)
                ptq = tuple((id(t), t._version) for t in self.dmx_ptq.of(job[4]).values())
                stamp = (self._generation, p._version, p.data_ptr(), p.device, p.dtype, ptq, self._ptq_pass)
                hit = self._cache.get(pname)
                if hit is not None and hit[0] == stamp:
                    out[pname] = hit[1]
                    continue
                value = self._effective(job, words)
                self._cache[pname] = (stamp, value)
                out[pname] = value
            else:
                out[pname] = self._effective(job, words)
        return out

    def _sharded_casts(
        self, units: tuple[str, ...], prefix: str | None, seed: torch.Tensor | None
    ) -> dict[str, list[tuple[str, Callable[[], torch.Tensor]]]]:
        """The casts of the parameters that the FSDP2 ``units`` manage, by
        owner module path: ``(attribute, thunk)``, each thunk computing the
        effective value from the parameter the module holds when it runs
        (FSDP's unsharded one), with the word site it has in
        :meth:`effective_parameters`' order (never cached)."""
        out: dict[str, list[tuple[str, Callable[[], torch.Tensor]]]] = {}
        site = 0
        for job in self._param_jobs:
            if prefix is not None and not job[0].startswith(prefix + "."):
                continue
            owner, _, attr = job[0].rpartition(".")
            if _fsdp.is_managed(owner, units):
                words = None if seed is None else Words(seed, site)
                out.setdefault(owner, []).append((attr, functools.partial(self._effective, job, words)))
            site += _draws(job)
        return out

    @_skip_frame
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the wrapped forward. This frame stays outside ``torch.compile``
        (its callees, ``forward`` included, are compiled): it draws the
        forward's random seed from the model's generator, runs the recording
        forward of ``dmx.aware()`` eagerly, and audits the slots that ran."""
        if torch.compiler.is_exporting():
            # torch.export traces this frame: a plain call, prepared inline by
            # forward (strict export needs the hooks in place: model.export)
            return super().__call__(*args, **kwargs)
        # only compiler-disabled helpers and the module call itself run here:
        # any other callee would be compiled as a frame of its own
        call_kwargs = self._begin_call(kwargs)
        if call_kwargs is None:
            try:
                return self._eager_forward(args, kwargs)
            finally:
                self._end_call(False)
        try:
            out = super().__call__(*args, **call_kwargs)
        except BaseException:
            self._end_call(False)
            raise
        self._end_call(True)
        return out

    @torch.compiler.disable
    def _begin_call(self, kwargs: dict) -> dict | None:
        """Install the hooks; None when this call must be the (eager)
        recording forward, else ``kwargs`` with the prepared forward inputs
        (:meth:`_prepare`)."""
        self._enter_state()
        if self._needs_recording():
            return None
        if not (self._config or self._op_config):
            return kwargs
        try:
            prepared = self._prepare()
        except BaseException:  # e.g. a static scale not calibrated: leave no hook behind
            self._exit_state()
            raise
        return {**kwargs, _PREPARED: prepared}

    def _prepare(self) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The forward's random seed (stochastic configurations) and its
        effective parameters (cached in eval without grad), computed eagerly
        by ``__call__``: the compiled graph receives them as inputs, so it
        holds no generator and no parameter cast it would redo every call.
        Gradients still reach the float parameters (straight through)."""
        seed = None
        if self._stochastic:
            if torch.compiler.is_exporting():
                seed = self._export_seed
                if seed is None:
                    raise RuntimeError(
                        "a stochastic configuration exports through model.export(args), which "
                        "draws the program's fixed random seed (a torch.Generator cannot enter "
                        "an exported graph)"
                    )
            else:
                seed = draw_seed(self._generator)
        words = None if seed is None else Words(seed)
        return self._effective_parameters(words, None, _fsdp.managed(self, self.net)), seed

    @torch.compiler.disable
    def _end_call(self, audit: bool) -> None:
        self._exit_state()
        if audit:
            self._after_forward()

    def _enter_state(self) -> None:
        """What a wrapped forward needs around it, set outside any trace: the
        global hooks, and PyTorch's fused attention paths switched off while
        a configured ``MultiheadAttention``/``TransformerEncoderLayer`` must
        run decomposed (eagerly the interception already prevents them, but
        Dynamo ignores a torch-function mode when it checks for them)."""
        _install_hooks()
        if torch.compiler.is_compiling():  # strict torch.export traces the forward itself
            if self._decomposed and torch.backends.mha.get_fastpath_enabled():
                raise RuntimeError(
                    f"{sorted(self._decomposed)} must run decomposed, which a strict export can "
                    "only ensure through model.export(args, strict=True); or export non-strict"
                )
            return
        _FASTPATH_SAVED.append(torch.backends.mha.get_fastpath_enabled())
        if self._decomposed:
            torch.backends.mha.set_fastpath_enabled(False)

    def _exit_state(self) -> None:
        if not torch.compiler.is_compiling():
            torch.backends.mha.set_fastpath_enabled(_FASTPATH_SAVED.pop())
        _remove_hooks()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """``net(*args, **kwargs)`` under the configuration (see module docs)."""
        prepared = kwargs.pop(_PREPARED, None)
        return self._forward(args, kwargs, prepared=prepared)

    def _needs_recording(self) -> bool:
        return is_aware() and self._recorded is None

    @torch.compiler.disable
    def _eager_forward(self, args: tuple, kwargs: dict) -> Any:
        """The recording forward (functional op names, pending rules), never compiled."""
        out = self._forward(args, kwargs)
        self._after_forward()
        return out

    def _after_forward(self) -> None:
        if self._taps:  # a PTQ pass (calibration, statistics) is not a configured forward
            return
        if self._config or self._op_config:
            self._forwards += 1
            self._audit(self._applied)

    def run_submodule(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run the network's submodule ``name`` alone under the configuration
        (its slots and those of its children, with the effective parameters
        under that path), as it runs inside the whole forward. Post-training
        quantization runs repeated blocks this way on cached inputs. Needs the
        functional ops recorded (a whole forward first) under ``dmx.aware()``;
        the audit is not updated."""
        if self._needs_recording():
            raise RuntimeError("record the functional ops with one whole forward (model.trace) first")
        self._enter_state()
        try:
            return self._forward(args, kwargs, submodule=name)
        finally:
            self._exit_state()

    def _forward(
        self, args: tuple, kwargs: dict, configured: bool = True, capture: dict | None = None,
        prepared: tuple | None = None, submodule: str | None = None,
    ) -> Any:
        units = _fsdp.managed(self, self.net) if configured else ()
        if submodule is not None:
            seed = draw_seed(self._generator) if self._stochastic else None
            params = self._effective_parameters(None if seed is None else Words(seed), submodule, units)
            params = {k[len(submodule) + 1:]: v for k, v in params.items()}
            net = self.net.get_submodule(submodule)
        else:
            params, seed = ({}, None) if not configured else prepared or self._prepare()
            net = self.net
        words = None if seed is None else Words(seed, _ACTIVATION_SITES)
        aware = is_aware()
        record = {} if aware and self._recorded is None else None
        op_config = self._op_config if configured else {}
        functional = aware and (record is not None or bool(op_config) or capture is not None)
        has_config = configured and bool(self._config or op_config)
        need_mode = functional or (configured and bool(self._replace or self._decomposed))
        need_hooks = need_mode or has_config or capture is not None or bool(self._taps)
        if not need_hooks:
            return torch.func.functional_call(net, params, args, kwargs, tie_weights=False)
        if _DEPTH[0] == 0 and torch.compiler.is_compiling() and not torch.compiler.is_exporting():
            raise RuntimeError(
                "the wrapped forward is being traced by Dynamo without its hooks: compile the "
                "model itself (torch.compile(model) or model.compile(), not model.forward), and "
                "export it with model.export(args, strict=True) or torch.export.export(model, args) "
                "(non-strict)"
            )
        run = _Run(self, record, functional, configured, capture, words)
        own_hooks = _DEPTH[0] == 0  # forward called directly (or by torch.export)
        sharded = self._sharded_casts(units, submodule, seed) if units else None
        if own_hooks:
            self._enter_state()
        _ACTIVE.append(run)
        try:
            with _fsdp.cast_in_forward(self.net, sharded) if sharded else contextlib.nullcontext():
                if need_mode:
                    run.mode_on = True
                    with _Mode(run):
                        out = torch.func.functional_call(net, params, args, kwargs, tie_weights=False)
                else:
                    out = torch.func.functional_call(net, params, args, kwargs, tie_weights=False)
        finally:
            _ACTIVE.pop()
            if own_hooks:
                self._exit_state()
            if run.shapes:
                self._shapes.update(run.shapes)
        if record is not None:
            self._recorded = record
            if run.pending is not None:
                self._op_config = run.op_config
                self._finish_pending()
        if configured and submodule is None:
            if torch.compiler.is_exporting():  # export drops attribute assignments
                self._applied.clear()
                self._applied.update(run.applied)
            else:  # (Dynamo would guard on the old set's contents)
                self._applied = run.applied
        return out

    def _finish_pending(self) -> None:
        check = self._pending_check
        self._pending = None
        self._pending_check = None
        if check is not None:
            for message in selects_nothing(check[0], check[1], self._modules_table()):
                warnings.warn(message, ConfigWarning, stacklevel=4)
        self._install()
        self._warned = set()

    @torch.compiler.disable
    def _audit(self, applied: set[tuple[str, str]]) -> None:
        """Warn once per configured slot that did not run in this forward."""
        for name, slots in {**self._config, **self._op_config}.items():
            for slot in audited_slots(slots):
                if (name, slot) in applied or (name, slot) in self._warned:
                    continue
                self._warned.add((name, slot))
                why = ""
                if slot == "input_format" and (name, slot) not in applied and name in self._shapes:
                    why = "the module ran; its first tensor input is not floating" if self._shapes[name] else ""
                warnings.warn(audit_message(name, slot, slots[slot], why), SlotNotAppliedWarning, stacklevel=4)

    # --- export ------------------------------------------------------------------------

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """Hugging Face generation (``net.generate(*args, **kwargs)``) with
        every step's forward run through this wrapper, so the configured
        slots apply to the prompt and to each new token (``net.generate``
        itself would call the network's own forward).

        The network's ``forward`` is routed to the wrapper for the duration of
        the call (an instance attribute, removed afterwards, that keeps the
        original signature Hugging Face inspects). The KV cache holds keys and
        values as the network computed them; an attention op's
        ``multiplier_format`` casts the whole cached key and value each step,
        as ``scaled_dot_product_attention`` receives them (``docs/llm.md``).
        Raises ``AttributeError`` when the network has no ``generate``."""
        net = self.net
        if not callable(getattr(type(net), "generate", None)):
            raise AttributeError(
                f"{type(net).__name__} has no generate method: Model.generate runs Hugging Face "
                "generation (a GenerationMixin model such as LlamaForCausalLM)"
            )
        if "forward" in net.__dict__:
            raise RuntimeError(
                f"{type(net).__name__}.forward is already overridden on the instance "
                "(a generate call in progress?); Model.generate cannot route it"
            )
        own = net.forward
        routing = [False]

        @functools.wraps(own)
        def forward(*a: Any, **kw: Any) -> Any:
            if routing[0]:  # the wrapper's own call of the network
                return own(*a, **kw)
            routing[0] = True
            try:
                return self(*a, **kw)
            finally:
                routing[0] = False

        net.forward = forward
        try:
            return net.generate(*args, **kwargs)
        finally:
            del net.forward

    def export(
        self, args: tuple, kwargs: Mapping[str, Any] | None = None, *, strict: bool = False,
        **export_kwargs: Any,
    ) -> "torch.export.ExportedProgram":
        """``torch.export.export`` of the wrapped model under its configuration.

        Every cast, sparsification and approximation appears in the graph as
        a ``dmxnum.cast`` / ``dmxnum.sparsify`` / ``dmxnum.approximate`` node
        whose string argument is the canonical shorthand, and
        ``ep.module()(*args)`` computes what the wrapped model computes, bit
        for bit. ``strict=True`` traces with Dynamo (the frontend's hooks are
        installed around the export); non-strict is also what
        ``torch.export.export(model, args)`` does directly. With
        ``dmx.aware()`` on and no forward recorded yet, one eager forward
        (no grad) records the functional ops first. A saved program
        (``torch.export.save``) loads after ``import dmxnum``. Stochastic
        configurations export the forward's random seed as a constant: the
        program then replays one fixed draw. Extra keyword arguments go to
        ``torch.export.export``. After a non-strict export the configuration
        audit runs (a strict one traces the forward symbolically and records
        nothing; the eager forward's audit covers it)."""
        if not isinstance(args, tuple):
            raise TypeError(f"model.export takes the example inputs as a tuple, got {type(args).__name__}")
        kwargs = dict(kwargs or {})
        if self._needs_recording():
            with torch.no_grad():
                self(*args, **kwargs)
        # the hooks are installed by the traced forward itself (global hooks
        # present when a strict export starts would make Dynamo trace the
        # exporter's own wrapper module); fused attention paths stay off
        saved = torch.backends.mha.get_fastpath_enabled()
        if self._decomposed:
            torch.backends.mha.set_fastpath_enabled(False)
        self._export_seed = draw_seed(self._generator) if self._stochastic else None
        try:
            with warnings.catch_warnings():
                # Dynamo notes the frontend's own bookkeeping (hook tables, audit state)
                warnings.filterwarnings("ignore", message="While compiling, we found certain side effects")
                program = torch.export.export(self, args, kwargs, strict=strict, **export_kwargs)
        finally:
            self._export_seed = None
            torch.backends.mha.set_fastpath_enabled(saved)
        if not strict:  # a non-strict export ran the forward's Python: its audit holds
            self._after_forward()
        return program

    # --- report ------------------------------------------------------------------------

    def dmx_report(self, *args: Any, reference: bool = False, **kwargs: Any) -> Report:
        """The configuration and what the last forward applied, as a table.

        One row per configured module or op: its slots, the slots applied in
        the last forward, the formats and bits per element. With inputs
        (``model.dmx_report(*args, **kwargs)``, the model's own inputs) a
        forward runs first (no grad); with ``reference=True`` the
        unconfigured model runs on the same inputs too, and each row gets
        the SQNR (dB) of the module's output in the configured model against
        the unconfigured one, per call, errors accumulated end to end.
        """
        sqnr: dict[str, list[float]] = {}
        if args or kwargs:
            with torch.no_grad():
                if reference:
                    ref_out: dict[str, list] = {}
                    got: dict[str, list] = {}
                    self._forward(args, kwargs, configured=False, capture=ref_out)
                    self._forward(args, kwargs, capture=got)
                    self._after_forward()
                    for name, outs in got.items():
                        refs = ref_out.get(name, [])
                        sqnr[name] = [
                            sqnr_db(r, o) for r, o in zip(refs, outs) if r.shape == o.shape
                        ]
                else:
                    self._forward(args, kwargs)
                    self._after_forward()
        elif reference:
            raise ValueError(
                "dmx_report(reference=True) needs the model's inputs: "
                "model.dmx_report(*args, reference=True, **kwargs)"
            )
        merged = {**self._config, **self._op_config}
        order = [n for n in self._modules_table() if n in merged]
        order += [n for n in merged if n not in order]
        rows = []
        for name in order:
            applied = [s for (n, s) in self._applied if n == name]
            rows.append(make_row(name, merged[name], applied, sqnr.get(name, ()), self._ptq_notes(name)))
        return Report(tuple(rows), forwards=self._forwards)

    def _ptq_notes(self, name: str) -> tuple[str, ...]:
        """What post-training quantization holds for module ``name``, for the report."""
        notes = []
        held = self.dmx_ptq.of(name)
        for key in ("smooth", "input_scale", "weight_scale"):
            if key in held:
                notes.append({"smooth": "smoothquant"}.get(key, key))
        if "weight" in held:
            info = self._ptq_info.get(name)
            if info and info["loss_rtn"] > 0:
                note = f"gptq (loss {info['loss'] / info['loss_rtn']:.3g}x RTN"
                notes.append(note + (", RTN kept)" if info["fallback"] else ")"))
            else:
                notes.append("gptq")
        return tuple(notes)

    def extra_repr(self) -> str:
        return f"configured={len(self._config) + len(self._op_config)}"
