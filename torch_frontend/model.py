"""``dmx.Model``: wrap an ``nn.Module`` and apply a dmxnum configuration.

The wrapped network is never mutated. A forward pass:

1. computes the effective parameters ``cast(sparsify(w), weight_format)``
   and ``cast(b, bias_format)`` of every configured module (autograd flows
   straight through to the float originals);
2. calls ``torch.func.functional_call(net, effective, args, kwargs)`` with,
   while it runs, global module forward hooks that keep the current module
   path and cast a configured module's first positional tensor input
   (``input_format``) and its output (``output_format``), and, when needed,
   a ``TorchFunctionMode`` that names and configures functional ops
   (``dmx.aware()``) and replaces the core call of modules configured with an
   ``accum_format`` or ``approximation_function``.

Hooks and mode exist only during the wrapped forward; nothing in ``torch``
is patched.
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree

from dmxnum.config import (
    ConfigRule,
    apply_rules,
    canonical_instance,
    parse_config,
    slots_of,
    to_yaml,
)
from dmxnum.config.schema import RULES_KEY, closest
from dmxnum.errors import ConfigError

from . import _core, _modules, _ops
from ._aware import is_aware

_FUNCTIONAL_NAME = re.compile(
    r"(?:^|\.)(" + "|".join(sorted({op for op, _ in _ops.OPS.values()})) + r")_\d+$"
)
_WEIGHT_SLOTS = ("weight_sparseness", "weight_format")


class _Frame:
    __slots__ = ("name", "kind", "counts", "replace", "known")

    def __init__(self, name: str | None, kind: str, replace: Callable | None, known: bool):
        self.name = name
        self.kind = kind
        self.counts: dict[str, int] = {}
        self.replace = replace
        self.known = known


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
        slots = run.op_config.get(name)
        if not slots:
            return func(*args, **kwargs)
        return _ops.apply(op, func, args, kwargs, slots, run.key)


class _Run:
    """State of one wrapped forward (module stack, recording, configuration)."""

    def __init__(self, model: "Model", record: dict | None, functional: bool):
        self.model = model
        self.stack: list[_Frame] = []
        self.record = record
        self.functional = functional
        self.op_config = model._op_config if functional else {}
        self.key = model._generator
        # input casts of one tensor by one deterministic format, shared within
        # this forward (q, k and v projections read the same hidden states)
        self.memo: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def cast_input(self, t: torch.Tensor, fmt: Any) -> torch.Tensor:
        if fmt.stochastic or t.is_inference():
            return _core.cast(t, fmt, self.key)
        k = (id(t), t._version, fmt)
        hit = self.memo.get(k)
        if hit is not None and hit[0] is t:
            return hit[1]
        out = _core.cast(t, fmt, self.key)
        self.memo[k] = (t, out)
        return out

    def pre_hook(self, module: nn.Module, args: tuple) -> Any:
        info = self.model._info.get(id(module))
        if info is None:
            self.stack.append(_Frame(None, "module", None, False))
            return None
        name, cls, kind = info
        slots = self.model._config.get(name)
        replace = self.model._replace.get(name)
        self.stack.append(_Frame(name, kind, replace, True))
        if not slots:
            return None
        fmt = slots.get("input_format")
        if _core.is_same(fmt):
            return None
        for i, a in enumerate(args):
            if isinstance(a, torch.Tensor):
                if not a.is_floating_point():
                    return None
                return args[:i] + (self.cast_input(a, fmt),) + args[i + 1:]
        return None

    def post_hook(self, module: nn.Module, args: tuple, output: Any) -> Any:
        if self.stack:
            self.stack.pop()
        info = self.model._info.get(id(module))
        if info is None:
            return None
        slots = self.model._config.get(info[0])
        if not slots or _core.is_same(slots.get("output_format")):
            return None
        fmt = slots["output_format"]
        return _pytree.tree_map_only(
            torch.Tensor, lambda t: _core.cast(t, fmt, self.key), output
        )


class Model(nn.Module):
    """A configurable view of ``net`` (which is held, not modified).

    ``Model(net, key=None)``: ``key`` (an int seed or a ``torch.Generator``)
    feeds stochastic formats and sparsities; with an int a CPU generator is
    seeded once, so a run is reproducible and successive casts draw fresh
    words. ``model.net`` is the original network; ``model.parameters()`` are
    its float parameters (optimizers train them; casts are straight-through).
    """

    def __init__(self, net: nn.Module, key: int | torch.Generator | None = None):
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"dmx.Model wraps an nn.Module, got {type(net).__name__}")
        self.net = net
        if key is None or isinstance(key, torch.Generator):
            self._generator = key
        elif isinstance(key, int) and not isinstance(key, bool):
            self._generator = torch.Generator().manual_seed(key)
        else:
            raise TypeError(f"key must be an int seed or a torch.Generator, got {key!r}")
        self._config: dict[str, dict[str, Any]] = {}  # modules: name -> slots
        self._op_config: dict[str, dict[str, Any]] = {}  # functional ops
        self._recorded: dict[str, tuple[str, str]] | None = None  # name -> (op, kind)
        self._replace: dict[str, Callable] = {}
        self._param_jobs: list[tuple[str, str, dict, bool]] = []
        self._cache: dict[str, tuple[tuple, torch.Tensor]] = {}
        self._generation = 0
        self._info: dict[int, tuple[str, str, str]] = {}
        self._scan()

    # --- names -----------------------------------------------------------------

    def _scan(self) -> None:
        self._info = {}
        for name, module in self.net.named_modules():
            cls, kind = _modules.classify(module)
            self._info[id(module)] = (name, cls, kind)

    def _modules_table(self) -> dict[str, tuple[str, str]]:
        table = {
            name: (cls, kind) for name, cls, kind in self._info.values() if name != ""
        }
        for name, (op, kind) in (self._recorded or {}).items():
            table[name] = (op, kind)
        return table

    def dmx_module_names(self) -> dict[str, tuple[str, ...]]:
        """Every configurable name -> its slots (in application order).

        Module names are ``net.named_modules()`` names (the root excluded);
        functional ops appear once recorded (``trace`` or the first forward
        with ``dmx.aware()`` on) as ``<module path>.<op>_<i>``.
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
                        "model.trace(*example_inputs) or one forward pass first"
                    )
                near = closest(name, table)
                raise ConfigError(
                    f"functional op {name!r} was not recorded in the forward pass"
                    + (f"; closest valid names: {', '.join(map(repr, near))}" if near else "")
                )

    def transform(self, config_or_path: Any = None, *rules: ConfigRule | Mapping) -> "Model":
        """Apply a configuration (path, YAML text, mapping or None) and rules.

        The file's entries apply first (in order; a ``rules:`` list in the
        file applies where it stands), then each rule in order, on top of
        the current configuration; a later setting of a slot overrides an
        earlier one. Everything is validated before anything changes: an
        unknown name (closest names suggested; a functional name needs
        ``dmx.aware()`` and a recording), an unknown slot, a slot the module
        lacks, an ``instance`` mismatch, a malformed value, or a stochastic
        format without a ``key`` raise ``ConfigError`` and leave the model as
        it was. Returns ``self``.
        """
        parsed = parse_config(config_or_path) if config_or_path is not None else {}
        self._scan()  # the network's modules as they are now
        table = self._modules_table()
        self._check_names(parsed, table)
        base = {**self._config, **self._op_config}
        merged = apply_rules(parsed, rules, table, base=base)
        for name, slots in merged.items():
            if self._generator is None:
                for slot, value in slots.items():
                    if getattr(value, "stochastic", False) or str(value).startswith("BERN"):
                        raise ConfigError(
                            f"{name}: {slot} = {str(value)!r} is stochastic and needs randomness: "
                            "give the model a seed or generator, dmx.Model(net, key=0)"
                        )
            if "instance" not in slots:
                slots = {"instance": canonical_instance(table[name][0]), **slots}
            merged[name] = slots
        # --- nothing has failed: install -------------------------------------------
        module_names = {name for name, _, _ in self._info.values()}
        self._config = {n: s for n, s in merged.items() if n in module_names}
        self._op_config = {n: s for n, s in merged.items() if n not in module_names}
        self._install()
        return self

    def _install(self) -> None:
        by_name = {name: (cls, kind) for name, cls, kind in self._info.values()}
        self._replace = {}
        self._param_jobs = []
        for name, slots in self._config.items():
            cls, kind = by_name[name]
            fn = _modules.replacement(kind, slots)
            if fn is not None:
                self._replace[name] = fn
            module = self.net.get_submodule(name)
            transposed = _modules.weight_transposed(cls)
            w_slots = {s: slots[s] for s in _WEIGHT_SLOTS if s in slots}
            if w_slots and getattr(module, "weight", None) is not None:
                self._param_jobs.append((f"{name}.weight", "weight", w_slots, transposed))
            if "bias_format" in slots and getattr(module, "bias", None) is not None:
                self._param_jobs.append(
                    (f"{name}.bias", "bias", {"bias_format": slots["bias_format"]}, False)
                )
        self._cache = {}
        self._generation += 1

    # --- forward -------------------------------------------------------------------

    def _effective(self, job: tuple) -> torch.Tensor:
        pname, role, slots, transposed = job
        p = self.net.get_parameter(pname)
        key = self._generator
        if role == "bias":
            return _core.cast(p, slots["bias_format"], key)
        w = p.t() if transposed else p
        w = _core.sparsify(w, slots.get("weight_sparseness"), key)
        w = _core.cast(w, slots.get("weight_format"), key)
        return w.t() if transposed else w

    def effective_parameters(self) -> dict[str, torch.Tensor]:
        """The configured parameters' effective values, by parameter name:
        ``cast(sparsify(w))`` for weights, ``cast(b)`` for biases."""
        cacheable = not self.training and not torch.is_grad_enabled()
        out = {}
        for job in self._param_jobs:
            pname = job[0]
            if cacheable and not any(getattr(v, "stochastic", False) for v in job[2].values()):
                p = self.net.get_parameter(pname)
                stamp = (self._generation, p._version, p.data_ptr(), p.device, p.dtype)
                hit = self._cache.get(pname)
                if hit is not None and hit[0] == stamp:
                    out[pname] = hit[1]
                    continue
                value = self._effective(job)
                self._cache[pname] = (stamp, value)
                out[pname] = value
            else:
                out[pname] = self._effective(job)
        return out

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """``net(*args, **kwargs)`` under the configuration (see module docs)."""
        params = self.effective_parameters()
        aware = is_aware()
        record = {} if aware and self._recorded is None else None
        functional = aware and (record is not None or bool(self._op_config))
        need_mode = functional or bool(self._replace)
        need_hooks = need_mode or bool(self._config)
        if not need_hooks:
            return torch.func.functional_call(self.net, params, args, kwargs)
        run = _Run(self, record, functional)
        with ExitStack() as stack:
            h1 = nn.modules.module.register_module_forward_pre_hook(run.pre_hook)
            stack.callback(h1.remove)
            h2 = nn.modules.module.register_module_forward_hook(run.post_hook, always_call=True)
            stack.callback(h2.remove)
            if need_mode:
                stack.enter_context(_Mode(run))
            out = torch.func.functional_call(self.net, params, args, kwargs)
        if record is not None:
            self._recorded = record
        return out

    def extra_repr(self) -> str:
        return f"configured={len(self._config) + len(self._op_config)}"
