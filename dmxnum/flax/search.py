"""Sensitivity analysis and mixed-precision search for wrapped Flax models.

The Flax twin of ``torch_frontend.search``: ``dmxnum.flax.sensitivity``
scores every (site, candidate format) pair of a :class:`~dmxnum.flax.Model`,
``dmxnum.flax.search`` picks one candidate per site under an average bits
budget (:mod:`dmxnum.search` holds the tables, the solver and the plots).

Scores (lower is better, as the metric):

- *measured*: ``evaluate(trial, variables) - evaluate(plain, variables)``,
  ``trial`` a fresh ``Model(model.module)`` with only that site at that
  candidate, ``plain`` the unconfigured one;
- *proxy*: ``sum_batches sum (g * (Q(w) - w))^2`` over the site's kernel,
  ``g = jax.grad(loss)(variables, batch)["params"]`` at the unconfigured
  module (computed once per batch and reused for every candidate: the sum
  is ``sum((Q(w) - w)^2 * sum_batches g^2)``) and ``Q(w)`` the kernel that
  ``model.apply`` computes with under that candidate (the frontend's own
  cast, block axis translated from the PyTorch layout, bit for bit); for an
  input site, ``sum_batches sum_calls sum (g_x * (Q(x) - x))^2`` with ``x``
  the module's first positional input, ``g_x`` the loss's gradient with
  respect to it and ``Q(x)`` its ``input_format`` cast as ``apply`` casts it.

A weight site counts toward the budget by its kernel's size, an input site
by its elements per token (the input's last axis for a ``Dense`` /
``DenseGeneral``, all but the first (batch) axis otherwise), as in PyTorch.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any, Callable, Iterable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import dmxnum
from ..config import parse_config
from ..search import ScoreTable, Site, search as core_search
from ..search.sites import select_sites
from ..search.runs import ScoreCache, SearchReport, evaluate_id, progress_bar
from .model import Model, _lookup
from .session import Session, active

_WEIGHTED = ("linear", "conv")
#: the seed of the ``dmx`` key of the proxy's casts (stochastic candidates draw from it)
_PROXY_SEED = 0


def _check_model(model: Any, what: str) -> Model:
    if not isinstance(model, Model):
        nnx_note = (": NNX models are not supported yet (score the Linen or PyTorch twin)"
                    if type(model).__name__ == "NnxModel" else "")
        raise TypeError(
            f"dmxnum.flax.{what} takes a Linen dmxnum.flax.Model (the wrapper), got {type(model).__name__}{nnx_note}"
        )
    return model


def _fresh(model: Model) -> Model:
    """An unconfigured ``Model(model.module)`` that knows ``model``'s recorded names
    (so a ``transform`` is validated at once, not at its first run)."""
    plain = Model(model.module)
    plain._records.update(model._records)
    return plain


def _call(fn: Callable, batch: Any) -> Any:
    if isinstance(batch, dict):
        return fn(**batch)
    if isinstance(batch, (tuple, list)):
        return fn(*batch)
    return fn(batch)


def _own_loss(module: nn.Module) -> Callable[[Any, Any], Any]:
    """``loss(variables, batch)``: the output of ``module.apply(variables, *batch)`` when it is a
    scalar, else its ``loss`` attribute or key."""

    def loss(variables: Any, batch: Any) -> Any:
        out = _call(lambda *a, **k: module.apply(variables, *a, **k), batch)
        value = getattr(out, "loss", None)
        if value is None and isinstance(out, Mapping):
            value = out.get("loss")
        if value is None and getattr(out, "shape", None) == ():
            value = out
        if value is None:
            raise ValueError(
                "the module's output is neither a scalar nor has a loss: give "
                "loss=lambda variables, batch: ... to dmxnum.flax.sensitivity"
            )
        return value

    return loss


def _record_names(model: Model, variables: Any, batches: Any, loss: Callable | None) -> None:
    """Record ``model``'s names from the first batch (shapes only) when none are recorded."""
    if model._records:
        return
    if not batches:
        raise ValueError(
            "the model has no recorded names: call model.init(...) or model.trace(...) first, or give batches"
        )
    first = next(iter(batches))
    fn = loss or _own_loss(model.module)
    with active(Session({}, model._records)):
        jax.eval_shape(lambda v: fn(v, first), variables)


def resolve_sites(model: Model, sites: Any = None) -> list[tuple[str, str]]:
    """``(module, slot)`` pairs: ``sites`` a ``ConfigRule`` or a regex (their
    modules' ``weight_format``; a regex searches the recorded Flax names), a
    list of ``(module, slot)`` (names as ``model.dmx_module_names()`` gives
    them, or in their PyTorch spelling ``layers.0``), or None: the
    ``weight_format`` of every ``Dense`` / ``DenseGeneral`` / ``Conv``
    (kinds linear and conv). Names come back in the Flax spelling. Raises
    ``ValueError`` for a module or slot that does not exist, when nothing is
    selected, or when the model has recorded no names yet.
    """
    if not model._records:
        raise ValueError("the model has no recorded names: call model.init(...) or model.trace(...) first")
    table = model._modules()
    weighted = [n for n, (_, kind) in table.items() if kind in _WEIGHTED]
    return select_sites(sites, table, weighted, weighted, model._aliases())


def _kernel(model: Model, variables: Any, name: str) -> Any:
    rec = model._records[name]
    node = _lookup(variables.get("params") if isinstance(variables, Mapping) else None, rec.path or ())
    if rec.info is None or rec.info.weight is None or node is None or rec.info.weight not in node:
        raise ValueError(f"site ({name!r}, 'weight_format'): variables['params'] holds no weight for it")
    return node[rec.info.weight]


# ---------------------------------------------------------------------- module inputs
@contextlib.contextmanager
def _inputs(names: Iterable[str], seen: dict[str, list], deltas: Mapping[str, list] | None = None):
    """While active, every ``__call__`` of a module in ``names`` appends its first
    positional input (a floating array) to ``seen[name]``; with ``deltas``,
    the ``i``-th call gets ``x + deltas[name][i]`` instead (zeros: the same
    values, and the gradient with respect to the delta is the input's)."""
    names = frozenset(names)
    running: set[int] = set()

    def interceptor(next_fun, args, kwargs, context):
        module = context.module
        name = ".".join(module.path)
        if context.method_name != "__call__" or name not in names or id(module) in running or not args:
            return next_fun(*args, **kwargs)
        x = args[0]
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating):
            calls = seen.setdefault(name, [])
            if deltas is not None:
                d = deltas[name]
                if len(calls) >= len(d):
                    raise ValueError(f"{name} was called more often than in the shape pass")
                args = (x + d[len(calls)],) + tuple(args[1:])
            calls.append(x)
        running.add(id(module))
        try:
            return next_fun(*args, **kwargs)
        finally:
            running.discard(id(module))

    with nn.intercept_methods(interceptor):
        yield


def _input_shapes(names: list[str], variables: Any, batch: Any, loss: Callable) -> dict[str, list[tuple]]:
    """name -> the shape of its input at each call of ``loss(variables, batch)`` (shapes only)."""
    seen: dict[str, list] = {}

    def run(v):
        with _inputs(names, seen):
            loss(v, batch)
            return {n: [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in xs] for n, xs in seen.items()}

    return jax.eval_shape(run, variables)


def _elements(model: Model, variables: Any, name: str, slot: str, shapes: Mapping[str, list]) -> int:
    if slot == "weight_format":
        return int(np.prod(_kernel(model, variables, name).shape))
    calls = shapes.get(name)
    if not calls:
        raise ValueError(f"site ({name!r}, {slot!r}): the module received no floating input")
    shape = tuple(calls[0].shape)
    kind = model._records[name].kind
    return int(shape[-1]) if kind == "linear" or len(shape) < 2 else int(np.prod(shape[1:]))


# ---------------------------------------------------------------------- cache
def fingerprint(variables: Any) -> str:
    """SHA-256 over the variables' leaf paths, shapes, dtypes and bytes."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
        a = np.asarray(leaf)
        h.update(f"{jax.tree_util.keystr(path)}:{a.shape}:{a.dtype}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------- scores
def _measure(model: Model, variables: Any, evaluate: Callable, sites: list, candidates: list[str],
             cache: ScoreCache, progress: bool | None) -> tuple[np.ndarray, float]:
    baseline = cache.get("|baseline")
    if baseline is None:
        baseline = float(evaluate(_fresh(model), variables))
        cache.put("|baseline", baseline)
    out = np.full((len(sites), len(candidates)), np.nan)
    with progress_bar(len(sites) * len(candidates), "dmxnum.flax.sensitivity measured", progress) as bar:
        for i, (name, slot) in enumerate(sites):
            for j, cand in enumerate(candidates):
                key = f"{name}|{slot}|{cand}"
                value = cache.get(key)
                if value is None:
                    trial = _fresh(model).transform({name: {slot: cand}})
                    value = float(evaluate(trial, variables)) - baseline
                    cache.put(key, value)
                out[i, j] = value
                bar.update(1)
    return out, baseline


def _gradient_step(variables: Any, loss: Callable, names: list[str]) -> Callable:
    """``step(params, deltas, batch) -> ((g_params, g_deltas), inputs)``: the loss's
    gradients with respect to the parameters and to the inputs of ``names``
    (one delta per call), with those inputs; jitted."""

    def value(params, deltas, batch):
        seen: dict[str, list] = {}
        with _inputs(names, seen, deltas):
            out = loss({**variables, "params": params}, batch)
        return out, seen

    return jax.jit(jax.grad(value, argnums=(0, 1), has_aux=True))


def _proxy(model: Model, variables: Any, sites: list, candidates: list[str], batches: Sequence[Any],
           loss: Callable, progress: bool | None) -> np.ndarray:
    weights = [n for n, s in sites if s == "weight_format"]
    inputs = [n for n, s in sites if s == "input_format"]
    kernels = {n: np.asarray(_kernel(model, variables, n), dtype=np.float64) for n in weights}
    g2 = {n: np.zeros_like(k) for n, k in kernels.items()}
    act = {n: np.zeros(len(candidates)) for n in inputs}
    fmts = {c: parse_config({"_": {"input_format": c}})["_"]["input_format"] for c in candidates}
    key = jax.random.key(_PROXY_SEED)
    caster = Session({}, model._records, key)
    variables = dict(variables)
    params = variables["params"]
    step = _gradient_step(variables, loss, inputs)
    with progress_bar(len(batches), "dmxnum.flax.sensitivity gradients", progress) as bar:
        for batch in batches:
            shapes = _input_shapes(inputs, variables, batch, loss) if inputs else {}
            missing = [n for n in inputs if not shapes.get(n)]
            if missing:
                raise ValueError(
                    f"input sites {missing}: loss(variables, batch) did not call them with a floating input "
                    "(a loss that jits the module's apply itself hides its calls: call it un-jitted, the "
                    "gradient step is jitted as a whole)"
                )
            deltas = {n: [jnp.zeros(s.shape, s.dtype) for s in shapes[n]] for n in inputs}
            (grads, dgrads), seen = step(params, deltas, batch)
            hidden = [n for n in inputs if len(seen.get(n, ())) != len(shapes[n])]
            if hidden:
                raise ValueError(
                    f"input sites {hidden}: the jitted gradient step did not see their calls (a loss that "
                    "jits the module's apply itself hides them: call it un-jitted)"
                )
            for n in weights:
                g = np.asarray(_lookup(grads, model._records[n].path)[model._records[n].info.weight], np.float64)
                g2[n] += g * g
            for n in inputs:
                rec = model._records[n]
                layout = (rec.info.act_layout if rec.info is not None else "features")
                for x, gx in zip(seen[n], dgrads[n]):
                    gx = np.asarray(gx, np.float64)
                    for j, c in enumerate(candidates):
                        q = caster.cast(x, fmts[c], layout, n, "input_format", rec.spatial)
                        d = np.asarray(q, np.float64) - np.asarray(x, np.float64)
                        act[n][j] += float(((gx * d) ** 2).sum())
            bar.update(1)
    out = np.full((len(sites), len(candidates)), np.nan)
    for i, (name, slot) in enumerate(sites):
        if slot == "input_format":
            out[i] = act[name]
        elif slot == "weight_format":
            w, rec = kernels[name], model._records[name]
            for j, c in enumerate(candidates):
                trial = _fresh(model).transform({name: {slot: c}})
                effective = trial.effective_variables(variables, rngs={"dmx": key})
                q = np.asarray(_lookup(effective["params"], rec.path)[rec.info.weight], np.float64)
                out[i, j] = float(((q - w) ** 2 * g2[name]).sum())
    return out


def sensitivity(
    model: Model, variables: Any, evaluate: Callable[[Model, Any], float] | None, candidates: Sequence[str],
    sites: Any = None, proxy: bool = True, measure: bool = True, batches: Iterable[Any] | None = None,
    loss: Callable[[Any, Any], Any] | None = None, *, cache_dir: Any = None, progress: bool | None = None,
) -> ScoreTable:
    """Score every ``(site, candidate)`` of ``model`` on ``variables`` (module
    docstring for both scores) and return a :class:`dmxnum.search.ScoreTable`.

    ``evaluate(model, variables) -> float`` (lower is better; it receives a
    fresh ``dmxnum.flax.Model`` of the same module, configured with one site
    or none) is needed with ``measure``. ``batches`` (each passed to ``loss``
    as given) with ``proxy``; ``loss(variables, batch) -> scalar`` is the
    loss of the **unconfigured** module (e.g. ``lambda v, b:
    xent(net.apply(v, b[0]), b[1])``; default: ``module.apply(variables,
    *batch)``, a scalar or its ``loss``); it is differentiated with
    ``jax.grad`` with respect to ``variables["params"]`` and jitted with the
    batch as argument, so it must be traceable. ``candidates``: format
    shorthands. ``sites``: see :func:`resolve_sites` (slots
    ``weight_format`` and ``input_format`` have proxies; another slot's
    proxy is NaN; a stochastic candidate's proxy casts draw from
    ``jax.random.key(0)``). The model's names must be recorded (``model.init`` /
    ``model.trace``), else they are recorded from the first batch.
    ``cache_dir``: measured scores are saved there, keyed by the module's
    class, the variables' fingerprint and ``evaluate``'s identity (its
    ``cache_key`` attribute, else its qualified name), so an interrupted run
    resumes. A progress bar goes to stderr.
    """
    _check_model(model, "sensitivity")
    if not (proxy or measure):
        raise ValueError("sensitivity needs proxy=True or measure=True")
    cands = [str(dmxnum.parse(c)) for c in candidates]
    if not cands:
        raise ValueError("no candidate formats given")
    batches = None if batches is None else list(batches)
    _record_names(model, variables, batches, loss)
    pairs = resolve_sites(model, sites)
    act_names = list(dict.fromkeys(n for n, s in pairs if s != "weight_format"))
    shapes: dict[str, list] = {}
    if act_names:
        if not batches:
            raise ValueError(f"activation sites {act_names}: their input shapes need batches")
        shapes = _input_shapes(act_names, variables, batches[0], loss or _own_loss(model.module))
    site_list = tuple(Site(n, s, _elements(model, variables, n, s, shapes)) for n, s in pairs)
    measured = baseline = proxy_scores = None
    if measure:
        if evaluate is None:
            raise ValueError("measure=True needs evaluate(model, variables) -> float")
        identity = f"{type(model.module).__qualname__}|{fingerprint(variables)}|{evaluate_id(evaluate)}"
        cache = ScoreCache(cache_dir, identity)
        measured, baseline = _measure(model, variables, evaluate, pairs, cands, cache, progress)
    if proxy:
        if not batches:
            raise ValueError("proxy=True needs batches (the inputs of the gradient passes)")
        proxy_scores = _proxy(model, variables, pairs, cands, batches, loss or _own_loss(model.module), progress)
    return ScoreTable(site_list, tuple(cands), measured=measured, proxy=proxy_scores, baseline=baseline)


def search(
    model: Model, variables: Any, evaluate: Callable[[Model, Any], float] | None, candidates: Sequence[str],
    budget_bits: float, sites: Any = None, scores: ScoreTable | None = None, *, kind: str | None = None,
    method: str = "exact", measure_result: bool = True, **sensitivity_options: Any,
) -> tuple[dict, SearchReport]:
    """Choose one candidate per site minimizing the summed score with the
    average bits per element (element-weighted) at most ``budget_bits``;
    returns ``(config, report)``, ``config`` a mapping in the YAML schema,
    keys in the Flax spelling (``model.transform(config)`` applies it; the
    PyTorch twin takes ``registry.torch_alias`` of each key). ``scores``: a
    table from :func:`sensitivity` (else one is computed with
    ``sensitivity_options``); ``kind``: ``"measured"`` or ``"proxy"``
    (default: measured when the table has it); ``method``: ``"exact"`` or
    ``"greedy"``. With ``evaluate`` and ``measure_result``, ``report.metric``
    is ``evaluate`` of a fresh model with ``config``. ``ValueError`` for a
    budget below the cheapest assignment (as :func:`dmxnum.search.search`).
    """
    _check_model(model, "search")
    if scores is None:
        scores = sensitivity(model, variables, evaluate, candidates, sites, **sensitivity_options)
    if kind is None:
        kind = "measured" if scores.measured is not None else "proxy"
    result = core_search(scores, budget_bits, kind=kind, method=method)
    metric = None
    if evaluate is not None and measure_result:
        metric = float(evaluate(_fresh(model).transform(result.config), variables))
    return result.config, SearchReport(result, scores, metric)
