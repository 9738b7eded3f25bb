"""Sensitivity analysis and mixed-precision search for wrapped PyTorch models.

``dmx.sensitivity`` scores every (site, candidate format) pair of a model,
``dmx.search`` picks one candidate per site under an average bits budget
(:mod:`dmxnum.search` holds the tables, the solver and the plots), and
``python -m torch_frontend.search`` runs both and draws the figures.

Scores (lower is better, as the metric):

- *measured*: ``evaluate(model with only that site at that candidate) -
  evaluate(unconfigured model)``;
- *proxy*: ``sum_batches sum (g * (Q(w) - w))^2`` over the site's weight,
  ``g`` the gradient of the loss at the unconfigured model (computed once
  per batch and reused for every candidate: the sum is ``sum((Q(w) - w)^2 *
  sum_batches g^2)``); for an input site, the same with the module's input
  activation and its gradient, per batch.

A weight site counts toward the budget by its parameter count, an input
site by its elements per token (the input's last axis for a ``Linear``, all
but the batch axis otherwise).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

import dmxnum

from dmxnum.search import ScoreTable, Site, search as core_search
from dmxnum.search.sites import select_sites
from dmxnum.search.runs import ScoreCache, SearchReport, evaluate_id, progress_bar

from .model import Model

_WEIGHTED = ("linear", "conv")


def _check_model(model: Any, what: str) -> Model:
    if not isinstance(model, Model):
        raise TypeError(f"dmx.{what} takes a dmx.Model (the wrapper), got {type(model).__name__}")
    return model


def _kinds(model: Model) -> dict[str, tuple[str, str]]:
    return {name: (cls, kind) for name, cls, kind in model._info.values() if name}


def _tied(net: nn.Module) -> set[str]:
    holders: dict[int, set[str]] = {}
    for name, module in net.named_modules(remove_duplicate=False):
        w = module._parameters.get("weight")
        if w is not None:
            holders.setdefault(id(w), set()).add(name)
    return {n for names in holders.values() if len(names) > 1 for n in names}


def resolve_sites(model: Model, sites: Any = None) -> list[tuple[str, str]]:
    """``(module, slot)`` pairs: ``sites`` a ``ConfigRule`` or a regex (their
    modules' ``weight_format``), a list of ``(module, slot)``, or None: the
    ``weight_format`` of every ``Linear``/``Conv`` module, a tied weight
    (an LM head sharing the embedding) excluded. Raises ``ValueError`` for
    a module or slot that does not exist."""
    table = _kinds(model)
    weighted = [n for n, (_, kind) in table.items() if kind in _WEIGHTED]
    tied = _tied(model.net)
    return select_sites(sites, table, weighted, [n for n in weighted if n not in tied])


def _weight(model: Model, name: str) -> torch.Tensor:
    """Module ``name``'s weight in slot layout (``(out, in, ...)``)."""
    from . import _modules

    module = model.net.get_submodule(name)
    w = module.weight
    return w.t() if _modules.weight_transposed(_modules.classify(module)[0]) and w.ndim == 2 else w


def _call(fn: Callable, batch: Any) -> Any:
    if isinstance(batch, dict):
        return fn(**batch)
    if isinstance(batch, (tuple, list)):
        return fn(*batch)
    return fn(batch)


def _input_shapes(model: Model, names: list[str], batches: Any, loss: Callable | None) -> dict[str, tuple]:
    """The first input shape of each module in ``names`` (recorded shapes, else
    one run of ``loss`` (or the model's forward) on the first batch)."""
    shapes = {n: model._shapes[n] for n in names if model._shapes.get(n)}
    missing = [n for n in names if n not in shapes]
    if not missing:
        return shapes
    if batches is None:
        raise ValueError(f"input sites {missing}: their input shapes are unknown; give batches or run the model once")
    handles = []
    for n in missing:
        def hook(module, args, n=n):
            if args and isinstance(args[0], torch.Tensor):
                shapes.setdefault(n, tuple(args[0].shape))
        handles.append(model.net.get_submodule(n).register_forward_pre_hook(hook))
    try:
        plain = Model(model.net, key=model._generator)
        first = next(iter(batches))
        with torch.no_grad():
            loss(plain, first) if loss is not None else _call(plain, first)
    finally:
        for h in handles:
            h.remove()
    return shapes


def _elements(model: Model, name: str, slot: str, shapes: Mapping[str, tuple]) -> int:
    if slot == "weight_format":
        return int(_weight(model, name).numel())
    shape = shapes.get(name)
    if not shape:
        raise ValueError(f"site ({name!r}, {slot!r}): the module received no tensor input")
    kind = _kinds(model)[name][1]
    return int(shape[-1]) if kind == "linear" or len(shape) < 2 else int(np.prod(shape[1:]))


def fingerprint(net: nn.Module) -> str:
    """SHA-256 over the network's parameter and buffer names, shapes, dtypes and bytes."""
    h = hashlib.sha256()
    for name, t in list(net.named_parameters()) + list(net.named_buffers()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _measure(model: Model, evaluate: Callable, sites: list, candidates: list[str], cache: ScoreCache,
             progress: bool | None) -> tuple[np.ndarray, float]:
    base_key = "|baseline"
    baseline = cache.get(base_key)
    if baseline is None:
        baseline = float(evaluate(Model(model.net, key=model._generator)))
        cache.put(base_key, baseline)
    out = np.full((len(sites), len(candidates)), np.nan)
    with progress_bar(len(sites) * len(candidates), "dmx.sensitivity measured", progress) as bar:
        for i, (name, slot) in enumerate(sites):
            for j, cand in enumerate(candidates):
                key = f"{name}|{slot}|{cand}"
                value = cache.get(key)
                if value is None:
                    trial = Model(model.net, key=model._generator).transform({name: {slot: cand}})
                    value = float(evaluate(trial)) - baseline
                    cache.put(key, value)
                out[i, j] = value
                bar.update(1)
    return out, baseline


def _own_loss(model: Any, batch: Any) -> torch.Tensor:
    out = _call(model, batch)
    loss = getattr(out, "loss", None)
    if loss is None and isinstance(out, Mapping):
        loss = out.get("loss")
    if loss is None:
        raise ValueError("the model's output has no loss: give loss=lambda model, batch: ... to dmx.sensitivity")
    return loss


def _proxy(model: Model, sites: list, candidates: list[str], batches: Iterable[Any], loss: Callable | None,
           progress: bool | None) -> np.ndarray:
    net = model.net
    plain = Model(net, key=model._generator)
    loss = loss or _own_loss
    weights = {name: _weight(model, name) for name, slot in sites if slot == "weight_format"}
    params = {name: model.net.get_submodule(name).weight for name in weights}
    g2 = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    act_scores = {(n, s): np.zeros(len(candidates)) for n, s in sites if s != "weight_format"}
    handles = []
    for (name, slot) in act_scores:
        def pre_hook(module, args, name=name, slot=slot):
            x = args[0] if args and isinstance(args[0], torch.Tensor) else None
            if x is None or not x.requires_grad:
                return None
            def grad_hook(g, x=x):
                xd = x.detach()
                for j, cand in enumerate(candidates):
                    d = dmxnum.cast(xd, cand) - xd
                    act_scores[(name, slot)][j] += float(((g.detach() * d).double() ** 2).sum())
            x.register_hook(grad_hook)
            return None
        handles.append(net.get_submodule(name).register_forward_pre_hook(pre_hook))
    requires = {p: p.requires_grad for p in net.parameters()}
    batches = list(batches)
    try:
        for p in net.parameters():
            p.requires_grad_(True)
        with progress_bar(len(batches), "dmx.sensitivity gradients", progress) as bar:
            for batch in batches:
                net.zero_grad(set_to_none=True)
                with torch.enable_grad():
                    loss(plain, batch).backward()
                for name, p in params.items():
                    if p.grad is not None:
                        g = p.grad.detach().float()
                        g2[name] += g * g
                bar.update(1)
    finally:
        for h in handles:
            h.remove()
        net.zero_grad(set_to_none=True)
        for p, flag in requires.items():
            p.requires_grad_(flag)
    out = np.full((len(sites), len(candidates)), np.nan)
    for i, (name, slot) in enumerate(sites):
        if slot != "weight_format":
            out[i] = act_scores[(name, slot)]
            continue
        transposed = weights[name] is not params[name]  # HF Conv1D: slot layout is the transpose
        w = weights[name].detach()
        gg = g2[name].t() if transposed else g2[name]
        for j, cand in enumerate(candidates):
            d = (dmxnum.cast(w, cand) - w).double()
            out[i, j] = float((d * d * gg.double()).sum())
    return out


def sensitivity(
    model: Model, evaluate: Callable[[Model], float] | None, candidates: Sequence[str], sites: Any = None,
    proxy: bool = True, measure: bool = True, batches: Iterable[Any] | None = None,
    loss: Callable[[Any, Any], torch.Tensor] | None = None, *, cache_dir: Any = None,
    progress: bool | None = None,
) -> ScoreTable:
    """Score every ``(site, candidate)`` of ``model`` (module docstring for
    both scores) and return a :class:`dmxnum.search.ScoreTable`.

    ``evaluate(model) -> float`` (lower is better; it receives a
    ``dmx.Model`` of the same network) is needed with ``measure``;
    ``batches`` (and ``loss(model, batch)``, default the output's ``loss``)
    with ``proxy``. ``candidates``: format shorthands. ``sites``: see
    :func:`resolve_sites`. ``cache_dir``: measured scores are saved there,
    keyed by the network's fingerprint and ``evaluate``'s identity (its
    ``cache_key`` attribute, else its qualified name), so an interrupted
    run resumes. A progress bar with an ETA goes to stderr."""
    _check_model(model, "sensitivity")
    if not (proxy or measure):
        raise ValueError("sensitivity needs proxy=True or measure=True")
    cands = [str(dmxnum.parse(c)) for c in candidates]
    if not cands:
        raise ValueError("no candidate formats given")
    pairs = resolve_sites(model, sites)
    shapes = _input_shapes(model, [n for n, s in pairs if s != "weight_format"], batches, loss)
    site_list = tuple(Site(name, slot, _elements(model, name, slot, shapes)) for name, slot in pairs)
    measured = baseline = proxy_scores = None
    if measure:
        if evaluate is None:
            raise ValueError("measure=True needs evaluate(model) -> float")
        cache = ScoreCache(cache_dir, f"{fingerprint(model.net)}|{evaluate_id(evaluate)}")
        measured, baseline = _measure(model, evaluate, pairs, cands, cache, progress)
    if proxy:
        if batches is None:
            raise ValueError("proxy=True needs batches (the inputs of the gradient passes)")
        proxy_scores = _proxy(model, pairs, cands, batches, loss, progress)
    return ScoreTable(site_list, tuple(cands), measured=measured, proxy=proxy_scores, baseline=baseline)


def search(
    model: Model, evaluate: Callable[[Model], float] | None, candidates: Sequence[str], budget_bits: float,
    sites: Any = None, scores: ScoreTable | None = None, *, kind: str | None = None, method: str = "exact",
    measure_result: bool = True, **sensitivity_options: Any,
) -> tuple[dict, SearchReport]:
    """Choose one candidate per site minimizing the summed score with the
    average bits per element (element-weighted) at most ``budget_bits``;
    returns ``(config, report)``, ``config`` a mapping in the YAML schema
    (``model.transform(config)`` applies it). ``scores``: a table from
    :func:`sensitivity` (else one is computed with ``sensitivity_options``);
    ``kind``: ``"measured"`` or ``"proxy"`` (default: measured when the
    table has it); ``method``: ``"exact"`` or ``"greedy"``. With
    ``evaluate`` and ``measure_result``, ``report.metric`` is the metric of
    the configured network."""
    _check_model(model, "search")
    if scores is None:
        scores = sensitivity(model, evaluate, candidates, sites, **sensitivity_options)
    if kind is None:
        kind = "measured" if scores.measured is not None else "proxy"
    result = core_search(scores, budget_bits, kind=kind, method=method)
    metric = None
    if evaluate is not None and measure_result:
        metric = float(evaluate(Model(model.net, key=model._generator).transform(result.config)))
    return result.config, SearchReport(result, scores, metric)


# --- command line ----------------------------------------------------------------------------


def _load_target(spec: str) -> tuple:
    import importlib

    if ":" not in spec:
        raise SystemExit(f"--model takes MODULE:FUNCTION (e.g. examples.search_targets:digits), got {spec!r}")
    module_name, func = spec.split(":", 1)
    sys.path.insert(0, str(Path.cwd()))
    target = getattr(importlib.import_module(module_name), func)()
    if not isinstance(target, tuple) or len(target) not in (3, 4, 5):
        raise SystemExit(f"{spec}() must return (model, evaluate, batches[, loss[, sites]])")
    return target + (None,) * (5 - len(target))


def run(
    model: Model, evaluate: Callable, batches: Any, candidates: Sequence[str], budget: float, out: Any, *,
    loss: Callable | None = None, sites: Any = None, measure: bool = True, proxy: bool = True,
    budgets: Sequence[float] | None = None, cache_dir: Any = None, progress: bool | None = None,
) -> dict:
    """Sensitivity, search at ``budget`` and at ``budgets`` (the Pareto
    curve, each point measured), every uniform candidate measured, and the
    files in ``out``: ``scores.csv``, ``scores.md``, ``config.yaml`` (the
    search at ``budget``), ``summary.json`` and the plots ``heatmap``,
    ``pareto`` and ``bits`` (PNG and SVG). Returns the summary."""
    import dmxnum.search as ds
    from dmxnum.config import parse_config, to_yaml

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = sensitivity(model, evaluate, candidates, sites, proxy=proxy, measure=measure, batches=batches,
                        loss=loss, cache_dir=cache_dir, progress=progress)
    (out / "scores.csv").write_text(table.to_csv())
    (out / "scores.md").write_text(table.to_markdown() + "\n")
    kind = "measured" if measure else "proxy"

    def metric_of(config: Mapping) -> float:
        return float(evaluate(Model(model.net, key=model._generator).transform(config)))

    chosen = ds.evaluated(ds.search(table, budget, kind=kind), metric_of)
    (out / "config.yaml").write_text(to_yaml(parse_config(chosen.config)))
    uniforms = [ds.evaluated(ds.uniform(table, c, kind=kind), metric_of) for c in table.candidates]
    points = sorted(set([budget, *(budgets or ())]))
    curve = []
    for b in points:
        try:
            curve.append(chosen if b == budget else ds.evaluated(ds.search(table, b, kind=kind), metric_of))
        except ValueError:
            continue  # below the cheapest assignment
    ds.plots.heatmap(table, out / "heatmap", kind=kind)
    ds.plots.pareto_plot(curve, uniforms, out / "pareto")
    ds.plots.bits_bars(chosen, table, out / "bits")
    summary = {
        "budget": budget, "kind": kind, "bits": chosen.bits, "predicted": chosen.predicted,
        "metric": chosen.metric, "baseline": table.baseline,
        "uniform": {c: {"bits": u.bits, "metric": u.metric} for c, u in zip(table.candidates, uniforms)},
        "pareto": [{"bits": r.bits, "metric": r.metric} for r in curve],
        "spearman": table.spearman() if (measure and proxy) else None,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: Sequence[str] | None = None) -> dict:
    """``python -m torch_frontend.search --model MODULE:FUNCTION --budget B
    --candidates A,B --out DIR``: see :func:`run`."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m torch_frontend.search",
        description="Sensitivity analysis and mixed-precision search of a dmx.Model.",
    )
    parser.add_argument("--model", required=True,
                        help="MODULE:FUNCTION returning (model, evaluate, batches[, loss[, sites]])")
    parser.add_argument("--budget", type=float, required=True, help="average bits per element")
    parser.add_argument("--candidates", required=True, help="comma-separated format shorthands")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--budgets", default="", help="more budgets for the Pareto curve (comma-separated)")
    parser.add_argument("--no-measure", action="store_true", help="proxy scores only")
    parser.add_argument("--no-proxy", action="store_true", help="measured scores only")
    parser.add_argument("--cache", default=None, help="directory caching measured scores (resumable)")
    args = parser.parse_args(argv)
    model, evaluate, batches, loss, sites = _load_target(args.model)
    summary = run(
        model, evaluate, batches, [c for c in args.candidates.split(",") if c], args.budget, args.out,
        loss=loss, sites=sites, measure=not args.no_measure, proxy=not args.no_proxy,
        budgets=[float(b) for b in args.budgets.split(",") if b], cache_dir=args.cache,
    )
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
