"""Mixed-precision search on SmolLM2-135M: sensitivity, search, controls, plots.

Sites are the weights of the 210 decoder ``Linear`` modules (the tied LM
head stays float); candidates MXFP4_E2M1, MXFP6_E2M3, MXFP8_E4M3 and
BFP16_64_LD. The script

1. scores every (site, candidate): *measured* (perplexity change on
   ``--windows`` evaluation windows with that one site cast, cached in
   ``--out`` so an interrupted run resumes) and *proxy* (gradient-weighted
   squared error from ``--calib`` calibration windows), and writes
   ``scores.csv`` / ``scores.md``;
2. searches at each budget with each kind of score, and evaluates on
   ``--eval`` windows: the searched configurations, every uniform candidate
   and ``--perms`` random permutations of each searched configuration
   (its formats shuffled among sites of equal size); every evaluation is
   appended to ``evaluations.jsonl`` and skipped when already there;
3. draws the heatmap, the Pareto curve and the per-layer bits into
   ``--figures`` and prints the markdown tables of ``docs/search.md``::

    python examples/search_llm.py --out examples/search_smollm2 --figures docs/figures/search
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import llm  # noqa: E402
import torch  # noqa: E402

import dmxnum  # noqa: E402
import dmxnum.search as ds  # noqa: E402
import torch_frontend as dmx  # noqa: E402
from search_targets import ResumingPerplexity  # noqa: E402
from dmxnum.config import parse_config, to_yaml  # noqa: E402

CANDIDATES = ("MXFP4_E2M1", "MXFP6_E2M3", "MXFP8_E4M3", "BFP16_64_LD")
SITES = r"layers\."
#: the unconfigured model, as an item of the plan
FLOAT32 = ds.SearchResult(choices=(), bits=32.0, predicted=0.0, config={})
#: short names of the candidates, keyed by their canonical shorthand (the table's)
LABELS = {str(dmxnum.parse(c)): c.split("_")[0] for c in CANDIDATES}


def scores(model, eval_windows: int, calib_windows: int, out: Path, timing: bool = True) -> ds.ScoreTable:
    """The measured and proxy score table of ``model`` (measured scores cached
    in ``out``); with ``timing``, the times go to ``out/timing.json``."""
    perplexity = ResumingPerplexity(model.net, llm.corpus("eval", eval_windows))
    perplexity.cache_key = f"smollm2-perplexity-{eval_windows}"
    ids = llm.corpus("calib", calib_windows)
    batches = [{"input_ids": ids[i:i + 1], "labels": ids[i:i + 1], "use_cache": False} for i in range(calib_windows)]
    t = time.perf_counter()
    measured = dmx.sensitivity(model, perplexity, CANDIDATES, sites=SITES, proxy=False, cache_dir=out)
    t_measured = time.perf_counter() - t
    t = time.perf_counter()
    proxy = dmx.sensitivity(model, None, CANDIDATES, sites=SITES, measure=False, batches=batches)
    t_proxy = time.perf_counter() - t
    table = dataclasses.replace(measured, proxy=proxy.proxy, metric_name="perplexity")
    (out / "scores.csv").write_text(table.to_csv())
    (out / "scores.md").write_text(table.to_markdown() + "\n")
    if timing:
        (out / "timing.json").write_text(json.dumps({
            "measured_seconds_this_run": t_measured, "proxy_seconds": t_proxy,
            "measured_windows": eval_windows, "calib_windows": calib_windows,
            "sites": len(table.sites), "candidates": len(table.candidates), "threads": torch.get_num_threads(),
        }, indent=2))
    return table


def plan(
    table: ds.ScoreTable, budgets: list[float], perms: int, proxy_perms: int,
) -> list[tuple[str, ds.SearchResult]]:
    """Named configurations to evaluate, most important first: the float
    model, the uniform candidates within the largest budget, the searches,
    ``perms`` (``proxy_perms``) random permutations of each measured (proxy)
    search (measured at the first budget, proxy at every budget, measured at
    the other budgets), then the other uniform candidates."""
    items: list[tuple[str, ds.SearchResult]] = [("float32", FLOAT32)]
    cheap = [c for c in table.candidates if table.bits[table.index(c)] <= max(budgets)]
    items += [(f"uniform {LABELS[c]}", ds.uniform(table, c)) for c in cheap]
    searched = {(k, b): ds.search(table, b, kind=k) for k in ("measured", "proxy") for b in budgets}
    items += [(f"searched measured {b:g}", searched["measured", b]) for b in budgets]
    items += [(f"searched proxy {b:g}", searched["proxy", b]) for b in budgets]
    # controls: measured at the first budget, proxy at every budget, measured at the others
    order = [("measured", budgets[0])] + [("proxy", b) for b in budgets] + [("measured", b) for b in budgets[1:]]
    for kind, b in order:
        n = perms if kind == "measured" else proxy_perms
        controls = ds.random_permutations(searched[kind, b], table, n=n, seed=0, kind=kind)
        items += [(f"permuted {kind} {b:g} #{i}", r) for i, r in enumerate(controls)]
    items += [(f"uniform {LABELS[c]}", ds.uniform(table, c)) for c in table.candidates if c not in cheap]
    return items


def evaluate_all(net, items, eval_windows: int, out: Path, new: bool = True) -> dict[str, dict]:
    """Perplexity on ``eval_windows`` windows of every item not yet in
    ``evaluations.jsonl`` (none with ``new=False``: the recorded ones only)."""
    path = out / "evaluations.jsonl"
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec["eval_windows"] == eval_windows:
                done[rec["name"]] = rec
    windows = llm.corpus("eval", eval_windows)
    for name, result in items:
        if name in done:
            if done[name]["choices"] != list(result.choices):
                raise SystemExit(f"{name}: evaluations.jsonl holds a different configuration (scores changed?)")
            continue
        if not new:
            continue
        t = time.perf_counter()
        ppl = llm.perplexity(dmx.Model(net).transform(result.config), windows, progress=False)
        rec = {"name": name, "eval_windows": eval_windows, "bits": result.bits, "predicted": result.predicted,
               "perplexity": ppl, "seconds": time.perf_counter() - t,
               "choices": list(result.choices)}
        with path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        done[name] = rec
        print(f"{name:28s} bits {result.bits:.3f}  perplexity {ppl:.3f}  ({rec['seconds']:.0f} s)", flush=True)
    return done


def markdown(table: ds.ScoreTable, items, done: dict[str, dict], budgets: list[float]) -> str:
    """The results tables of docs/search.md."""
    lines = [f"Float32 perplexity {done['float32']['perplexity']:.2f}.", "",
             "| configuration | bits/weight | perplexity |", "|---|---:|---:|"]
    for name, result in items:
        if name in done and not name.startswith(("permuted", "float32")):
            lines.append(f"| {name} | {result.bits:.3f} | {done[name]['perplexity']:.2f} |")
    lines += ["", "| budget | scores | searched | best uniform ≤ budget | random permutations (median; all) |",
              "|---:|---|---:|---:|---|"]
    for b in budgets:
        for kind in ("measured", "proxy"):
            s = done.get(f"searched {kind} {b:g}")
            if s is None:
                continue
            uni = [done[f"uniform {LABELS[c]}"]["perplexity"] for c in table.candidates
                   if table.bits[table.index(c)] <= b and f"uniform {LABELS[c]}" in done]
            perm = [done[n]["perplexity"] for n, _ in items if n.startswith(f"permuted {kind} {b:g} #") and n in done]
            med = f"{statistics.median(perm):.2f}; " + ", ".join(f"{p:.2f}" for p in perm) if perm else "—"
            lines.append(f"| {b:g} | {kind} | {s['perplexity']:.2f} ({s['bits']:.3f} bits) | "
                         f"{min(uni):.2f} | {med} |")
    return "\n".join(lines)


def plots(table: ds.ScoreTable, items, done: dict[str, dict], budgets: list[float], figures: Path) -> None:
    """Heatmaps (measured, proxy), the Pareto curve and the per-layer bits at each budget."""
    figures.mkdir(parents=True, exist_ok=True)
    ds.plots.heatmap(table, figures / "smollm2_heatmap", kind="measured")
    ds.plots.heatmap(table, figures / "smollm2_heatmap_proxy", kind="proxy")
    with_metric = {n: dataclasses.replace(r, metric=done[n]["perplexity"]) for n, r in items if n in done}
    curve = [with_metric[n] for n in with_metric if n.startswith("searched measured")]
    proxy = [with_metric[n] for n in with_metric if n.startswith("searched proxy")]
    uniforms = [with_metric[n] for n in with_metric if n.startswith("uniform")]
    ds.plots.pareto_plot(curve, uniforms, figures / "smollm2_pareto", label="searched (measured scores)",
                         more=proxy, more_label="searched (proxy scores)")
    for b in budgets:
        name = f"searched measured {b:g}"
        if name in with_metric:
            ds.plots.bits_bars(with_metric[name], table, figures / f"smollm2_bits_{b:g}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="search_smollm2", help="score cache, tables and evaluations")
    parser.add_argument("--figures", default=None, help="where the plots go (default: --out)")
    parser.add_argument("--windows", type=int, default=2, help="evaluation windows of the measured scores")
    parser.add_argument("--calib", type=int, default=2, help="calibration windows of the proxy scores")
    parser.add_argument("--eval", type=int, default=64, help="evaluation windows of the configurations")
    parser.add_argument("--budgets", default="5,7", help="bits per weight (comma-separated)")
    parser.add_argument("--pareto", default="", help="more budgets for the Pareto curve only")
    parser.add_argument("--perms", type=int, default=5, help="random permutations per measured search")
    parser.add_argument("--proxy-perms", type=int, default=5, help="random permutations per proxy search")
    parser.add_argument("--no-eval", action="store_true", help="scores only")
    parser.add_argument("--report", action="store_true",
                        help="evaluate nothing new: tables and plots from evaluations.jsonl")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("DMX_THREADS", torch.get_num_threads())))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = llm.load_smollm2()
    table = scores(dmx.Model(net), args.windows, args.calib, out, timing=not args.report)
    print(f"Spearman(proxy, measured) = {table.spearman():.3f}", flush=True)
    if args.no_eval:
        return
    budgets = [float(b) for b in args.budgets.split(",") if b]
    items = plan(table, budgets, args.perms, args.proxy_perms)
    extra = [float(b) for b in args.pareto.split(",") if b]
    items += [(f"searched measured {b:g}", ds.search(table, b)) for b in extra]
    for b in budgets:
        (out / f"config_{b:g}.yaml").write_text(to_yaml(parse_config(ds.search(table, b).config)))
    done = evaluate_all(net, items, args.eval, out, new=not args.report)
    plots(table, items, done, budgets + extra, Path(args.figures or out))
    print(markdown(table, items, done, budgets))


if __name__ == "__main__":
    main()
