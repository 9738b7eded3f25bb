"""``dmxnum.flax.Model``: a Flax Linen module under a dmxnum configuration."""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from ..config import RULES_KEY, apply_rules, canonical_instance, parse_config, slots_of, to_yaml
from ..errors import ConfigError
from ..formats.same import Same
from . import registry
from .layouts import translate
from .session import Record, Session, active


class Model:
    """A Flax Linen module with the dmxnum configuration schema (SPEC sections 6, 8).

    ``Model(module)`` wraps ``module`` without changing it. ``init`` and
    ``apply`` have the signatures of ``module.init`` / ``module.apply`` and
    return what they return. Configurable names (module paths joined with
    ``.``, and ``<path>.<op>_<i>`` for functional calls) are recorded by every
    ``init``, ``apply`` or ``trace`` call; ``transform`` needs them recorded.
    ``configuration`` holds the parsed configuration, ``dmx_config`` its YAML.

    With an empty configuration ``apply`` is ``module.apply`` (bitwise
    identical outputs and gradients). The configuration is read while the
    Python code runs: a function that was ``jax.jit``-compiled before a
    ``transform`` keeps the old configuration; jit again after transforming.
    """

    def __init__(self, module: Any) -> None:
        import flax.linen as nn

        if not isinstance(module, nn.Module):
            raise TypeError(
                f"dmxnum.flax.Model wraps a flax.linen.Module, got {type(module).__name__}"
            )
        self.module = module
        self._records: dict[str, Record] = {}
        self._config: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"dmxnum.flax.Model({type(self.module).__name__}, {len(self._config)} configured)"

    # ------------------------------------------------------------------ running
    def init(self, rngs: Any, *args: Any, **kwargs: Any) -> Any:
        """``module.init(rngs, *args, **kwargs)``, recording the configurable names.

        Initialization runs the plain module (no casts), so the variables are
        exactly ``module.init``'s.
        """
        with active(Session({}, self._records)):
            return self.module.init(rngs, *args, **kwargs)

    def trace(self, *args: Any, rngs: Any = None, **kwargs: Any) -> dict[str, tuple[str, ...]]:
        """Record the configurable names from example inputs, without computing.

        Runs ``module.init`` under ``jax.eval_shape`` (shapes only); ``rngs``
        defaults to ``jax.random.key(0)``. Returns :meth:`dmx_module_names`.
        """
        rngs = jax.random.key(0) if rngs is None else rngs
        with active(Session({}, self._records)):
            jax.eval_shape(lambda: self.module.init(rngs, *args, **kwargs))
        return self.dmx_module_names()

    def apply(self, variables: Any, *args: Any, rngs: Any = None, **kwargs: Any) -> Any:
        """``module.apply(variables, *args, rngs=rngs, **kwargs)`` under the configuration.

        Parameters are replaced by effective ones (``cast(sparsify(w))``, with
        straight-through gradients to the float originals) and activations
        are cast at module boundaries and functional calls. Stochastic formats
        draw from ``rngs["dmx"]`` (a JAX key); the other streams reach the
        module unchanged.
        """
        if not self._config:
            if self._records:
                return self.module.apply(variables, *args, rngs=rngs, **kwargs)
            with active(Session({}, self._records)):
                return self.module.apply(variables, *args, rngs=rngs, **kwargs)
        key = rngs.get("dmx") if isinstance(rngs, Mapping) else None
        session = Session(self._config, self._records, key)
        variables = self._effective_variables(variables, session)
        with active(session):
            return self.module.apply(variables, *args, rngs=rngs, **kwargs)

    def effective_variables(self, variables: Any, rngs: Any = None) -> Any:
        """The variables the module computes with: configured weights ``cast(sparsify(w))``
        and biases ``cast(b)`` (new dicts along changed paths; the rest shared).

        A module whose ``accum_format`` splits the bias add keeps its cast bias
        here (``apply`` adds it after the accumulation cast). ``rngs``: as for
        :meth:`apply` (``rngs["dmx"]`` for stochastic weight formats).
        """
        key = rngs.get("dmx") if isinstance(rngs, Mapping) else None
        session = Session(self._config, self._records, key)
        out = self._effective_variables(variables, session)
        if not session.biases:
            return out
        changes = {}
        for name, b in session.biases.items():
            rec = self._records[name]
            changes[rec.path + (rec.info.bias,)] = b
        out = dict(out)
        out["params"] = _replace(out["params"], changes)
        return out

    def __call__(self, variables: Any, *args: Any, **kwargs: Any) -> Any:
        """Same as :meth:`apply`."""
        return self.apply(variables, *args, **kwargs)

    # ------------------------------------------------------------------ configuration
    def transform(self, config_or_path: Any = None, *rules: Any) -> "Model":
        """Apply a configuration file (or YAML text / mapping / None), then each rule; return the model.

        Names may be spelled as recorded (``layers_0.softmax_0``) or as
        PyTorch spells them (``layers.0.softmax_0``;
        ``scaled_dot_product_attention_<i>`` for ``dot_product_attention_<i>``).
        Everything is validated first: an unknown name (closest names
        suggested), an unknown slot, a slot the module lacks, an ``instance``
        mismatch or a malformed value raises ``ConfigError`` and the model
        is left as it was. Settings merge onto the current configuration; a
        later setting of a slot overrides an earlier one.
        """
        parsed = {} if config_or_path is None else parse_config(config_or_path)
        modules = self._modules()
        if not modules:
            raise ConfigError(
                "no configurable names recorded yet: call model.init(...), model.trace(...) "
                "or model.apply(...) on example inputs before model.transform(...)"
            )
        parsed = self._canonical_keys(parsed, modules)
        self._config = apply_rules(parsed, rules, modules, self._config)
        return self

    @property
    def configuration(self) -> dict[str, dict[str, Any]]:
        """The current configuration: name -> {slot: parsed value} (a copy), in recording order."""
        order = {n: i for i, n in enumerate(self._records)}
        names = sorted(self._config, key=lambda n: order.get(n, len(order)))
        return {n: dict(self._config[n]) for n in names}

    @property
    def dmx_config(self) -> str:
        """The current configuration as YAML text (canonical shorthands), as the PyTorch side exports it.

        Every configured name carries its ``instance`` (the canonical instance
        name, e.g. ``Linear`` for a ``Dense``, so the check holds in both
        frameworks); ``Model(module).transform(text)`` on a recorded model
        reproduces the configuration.
        """
        out = {}
        for name, slots in self.configuration.items():
            rec = self._records.get(name)
            if rec is not None and "instance" not in slots:
                slots = {"instance": canonical_instance(rec.cls), **slots}
            out[name] = slots
        return to_yaml(out)

    def dmx_module_names(self) -> dict[str, tuple[str, ...]]:
        """Every recorded configurable name -> its slots (in application order)."""
        return {n: slots_of(r.kind) for n, r in self._records.items()}

    # ------------------------------------------------------------------ internals
    def _modules(self) -> dict[str, tuple[str, str]]:
        return {n: (r.cls, r.kind) for n, r in self._records.items()}

    def _aliases(self) -> dict[str, str]:
        aliases: dict[str, str] = {}
        for name, rec in self._records.items():
            alias = registry.torch_alias(name, rec.op)
            if alias != name and alias not in self._records:
                aliases.setdefault(alias, name)
        return aliases

    def _canonical_keys(self, parsed: dict[str, Any], modules: Mapping[str, Any]) -> dict[str, Any]:
        aliases = self._aliases()
        out: dict[str, Any] = {}
        for name, slots in parsed.items():
            if name == RULES_KEY and isinstance(slots, tuple):
                out[name] = slots
                continue
            canon = aliases.get(name, name)
            if canon not in modules:
                self._explain_unknown(name, modules, aliases)
            merged = dict(out.get(canon, {}))
            merged.update(slots)
            out[canon] = merged
        return out

    def _explain_unknown(self, name: str, modules: Mapping[str, Any], aliases: Mapping[str, str]) -> None:
        from ..config.schema import _suggest

        candidates = list(modules) + list(aliases)
        op = registry.split_op_name(name)
        if op is not None:
            path = aliases.get(op[0], op[0])
            if path == "" or path in modules:
                raise ConfigError(
                    f"unknown module name {name!r}: no call of {op[1]!r} number {op[2]} was recorded "
                    f"in {path or 'the top-level module'!r}; functional calls are recorded by "
                    f"model.init/model.trace/model.apply on example inputs (hooked: jax.nn.*, "
                    f"flax.linen activations, dot_product_attention, jax.numpy.matmul); "
                    f"{_suggest(name, candidates)}"
                )
        raise ConfigError(f"unknown module name {name!r}; {_suggest(name, candidates)}")

    def _effective_variables(self, variables: Any, session: Session) -> Any:
        """``variables`` with configured weights/biases replaced (new dicts along changed paths)."""
        import dmxnum

        if not isinstance(variables, Mapping) or "params" not in variables:
            return variables
        params = variables["params"]
        changes: dict[tuple[str, ...], Any] = {}
        for name, slots in self._config.items():
            rec = self._records.get(name)
            if rec is None or rec.path is None or rec.kind not in registry.WEIGHTED_KINDS:
                continue
            info = rec.info
            node = _lookup(params, rec.path)
            if node is None:
                continue
            sparse = slots.get("weight_sparseness")
            wfmt = slots.get("weight_format")
            if info.weight in node and (sparse is not None or wfmt is not None):
                w = node[info.weight]
                if sparse is not None and str(sparse) != "DENSE":
                    w = dmxnum.sparsify(w, translate(sparse, w.ndim, info.weight_layout, rec.spatial))
                w = session.cast(w, wfmt, info.weight_layout, name, "weight_format", rec.spatial)
                changes[rec.path + (info.weight,)] = w
            if info.bias is None or info.bias not in node:
                continue
            bfmt = slots.get("bias_format")
            accum = slots.get("accum_format")
            split = rec.kind in registry.PRODUCT_KINDS and accum is not None and not isinstance(accum, Same)
            if bfmt is None and not split:
                continue
            b = session.cast(node[info.bias], bfmt, "features", name, "bias_format")
            if split:
                session.biases[name] = b
                b = jnp.zeros_like(b)
            changes[rec.path + (info.bias,)] = b
        if not changes:
            return variables
        new = dict(variables)
        new["params"] = _replace(params, changes)
        return new


def _lookup(tree: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(tree, Mapping) or p not in tree:
            return None
        tree = tree[p]
    return tree if isinstance(tree, Mapping) else None


def _replace(tree: Mapping, changes: dict[tuple[str, ...], Any], prefix: tuple[str, ...] = ()) -> dict:
    out = dict(tree)
    heads = {k[len(prefix)] for k in changes if k[: len(prefix)] == prefix and len(k) > len(prefix)}
    for h in heads:
        key = prefix + (h,)
        if key in changes:
            out[h] = changes[key]
        else:
            out[h] = _replace(tree[h], changes, key)
    return out
