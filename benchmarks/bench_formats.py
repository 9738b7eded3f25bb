"""Benchmark: every format family's cast on standard-normal float32, as a ratio
to ``x * 2`` on the same array, backend and mode.

What is measured (the statistic of the performance issue): for each format,
shape (2048 x 2048 and 4096 x 1024) and mode (``jax.jit``, ``torch.compile``,
PyTorch eager), after warm-up, 21 back-to-back pairs, each one call of the
cast and then one call of ``x * 2`` (jitted or compiled likewise, on the same
array); the ratio of each pair, and their median with the min-max range of
the 21 pair ratios. Timing each cast right next to its baseline cancels most
of the load changes of a shared machine. Stochastic casts are timed with
``random_bits`` given; drawing the random words (``jax.random.bits``,
``torch.randint``) is reported apart, as a ratio to the same baselines.

Targets (the class comes from ``dmxnum.parse``, see ``target``), on the
median:

- ``jax.jit``: deterministic FP/XP <= 1.3x; deterministic blocked formats
  (BFP, MXINT, MXFP, SBFP) along the last axis <= 2x; blocked along another
  axis <= 2.5x; stochastic formats <= 2.5x;
- ``torch.compile``: <= 3x for every format;
- PyTorch eager: <= 30x for every format.

Output: one line per format and shape while running, then the baselines in
ms and a Markdown table (each cell "median (min-max)" and a mark, ``✓`` or
``✗ > limit``).

Run (``make bench`` runs it with the defaults through ``run_all.py``)::

    .venv/bin/python benchmarks/bench_formats.py                  # everything
    .venv/bin/python benchmarks/bench_formats.py --json bench_formats.json
    .venv/bin/python benchmarks/bench_formats.py "MXFP4[E2M1]{32,-1}" "XP[8,3](CSS)"
    .venv/bin/python benchmarks/bench_formats.py --modes jit --pairs 31
    .venv/bin/python benchmarks/bench_formats.py --quick          # smoke test

Shorthands given as arguments time only those formats; ``--modes`` picks
among ``jit,compile,eager``; ``--pairs N`` changes the number of pairs;
``--shapes 2048x2048,4096x1024`` the shapes; ``--quick`` is 256 x 256 and
512 x 128 with 5 pairs (not for reporting); ``--json PATH`` writes the raw
results (format, class, shape, mode, median, min, max, limit, pass, and every
pair's ratio) with the baselines, to regenerate the docs from.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import paired_times, ratio_summary, table  # noqa: E402

FORMATS = [
    "FP16", "BF16", "FP8_E4M3FN", "FP4_E2M1", "FP[1|5|2,15](_S)",
    "XP[8,3](CSN)", "XP[8,3](CSS)",
    "BFP[8|8]{64,-1}(SN)", "BFP[8|8]{64,0}(SN)", "BFP[8|8]{64,-1}(SS)",
    "MXINT8{32,-1}", "MXFP8[E4M3]{32,-1}", "MXFP4[E2M1]{32,-1}",
    "MXINT8{32,0}", "MXFP8[E4M3]{32,0}", "MXFP4[E2M1]{32,0}",
    "SBFP<XP[8,0](CSN)><FP[1|8|3,127](_N)>{16,-1}", "SBFP<XP[8,0](CSS)><FP[1|8|3,127](_N)>{16,-1}",
]

SHAPES = [(2048, 2048), (4096, 1024)]
QUICK_SHAPES = [(256, 256), (512, 128)]
PAIRS, QUICK_PAIRS = 21, 5
MODES = {"jit": "jax.jit", "compile": "torch.compile", "eager": "torch eager"}

# jax.jit limits per target class; torch.compile and eager have one limit each.
JIT_LIMITS = {"FP/XP": 1.3, "blocked, last axis": 2.0, "blocked, other axis": 2.5, "stochastic": 2.5}
COMPILE_LIMIT, EAGER_LIMIT = 3.0, 30.0


def target_class(fmt: str, ndim: int = 2) -> str:
    """The issue's target class of ``fmt`` for arrays of ``ndim`` dimensions.

    Stochastic formats form one class whatever their blocking; deterministic
    blocked formats split by whether they block along the last axis.
    """
    import dmxnum

    spec = dmxnum.parse(fmt)
    if spec.stochastic:
        return "stochastic"
    if spec.blocked:
        return "blocked, last axis" if spec.axis % ndim == ndim - 1 else "blocked, other axis"
    return "FP/XP"


def target(fmt: str, ndim: int = 2) -> dict[str, float]:
    """Limit on the median ratio to ``x * 2`` for ``fmt``, per mode (``jit``, ``compile``, ``eager``)."""
    return {"jit": JIT_LIMITS[target_class(fmt, ndim)], "compile": COMPILE_LIMIT, "eager": EAGER_LIMIT}


def _shape(text: str) -> tuple[int, int]:
    rows, cols = text.lower().split("x")
    return int(rows), int(cols)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Cast / x*2 ratios per format, shape and mode (median of back-to-back pairs).")
    p.add_argument("formats", nargs="*", metavar="FORMAT", help="shorthands to time (default: FORMATS)")
    p.add_argument("--quick", action="store_true", help="256x256 and 512x128, 5 pairs (smoke test)")
    p.add_argument("--pairs", type=int, default=None, help=f"pairs per cell (default {PAIRS}; {QUICK_PAIRS} with --quick)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of jit,compile,eager")
    p.add_argument("--shapes", default=None, help="comma-separated RxC shapes (default 2048x2048,4096x1024)")
    p.add_argument("--json", metavar="PATH", default=None, help="write the raw results to PATH")
    args = p.parse_args(argv)
    chosen = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in MODES]
    if unknown or not chosen:
        p.error(f"--modes: unknown {unknown}; choose among {','.join(MODES)}")
    args.modes = [m for m in MODES if m in chosen]  # the table's column order
    if args.shapes:
        args.shapes = [_shape(s) for s in args.shapes.split(",")]
    else:
        args.shapes = QUICK_SHAPES if args.quick else SHAPES
    if args.pairs is None:
        args.pairs = QUICK_PAIRS if args.quick else PAIRS
    args.formats = args.formats or FORMATS
    return args


def _cell(res: dict) -> str:
    digits = 1 if res["limit"] >= 10 else 2
    mark = "✓" if res["pass"] else f"✗ > {res['limit']:g}x"
    return f"{res['median']:.{digits}f} ({res['min']:.{digits}f}-{res['max']:.{digits}f}) {mark}"


def main(argv: list[str] | None = None) -> list[dict]:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    warnings.filterwarnings("ignore")
    import jax
    import jax.numpy as jnp
    import torch

    import dmxnum

    modes, pairs = args.modes, args.pairs
    ready = lambda r: r.block_until_ready()  # noqa: E731
    twice_jit = jax.jit(lambda v: v * 2)

    # Arrays per shape: standard-normal float32 and, for stochastic casts, 32-bit random words.
    data = {}
    for shape in args.shapes:
        x_np = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        words_np = np.random.default_rng(1).integers(0, 2**32, shape, dtype=np.uint32)
        data[shape] = (jnp.asarray(x_np), jnp.asarray(words_np), torch.from_numpy(x_np), torch.from_numpy(words_np.view(np.int32)))

    base_times: dict[tuple, list[float]] = {(s, m): [] for s in args.shapes for m in modes}
    results: list[dict] = []
    for fmt in args.formats:
        stochastic = dmxnum.parse(fmt).stochastic
        cls, limits = target_class(fmt), target(fmt)
        jit_cast = jax.jit(lambda v, w, f=fmt: dmxnum.cast(v, f, random_bits=w))
        if "compile" in modes:
            torch._dynamo.reset()
            comp_cast = torch.compile(lambda v, w, f=fmt: dmxnum.cast(v, f, random_bits=w), dynamic=False)
            twice_comp = torch.compile(lambda v: v * 2, dynamic=False)
        for shape in args.shapes:
            xj, wj, xt, wt = data[shape]
            wj, wt = (wj, wt) if stochastic else (None, None)
            line = []
            for mode in modes:
                if mode == "jit":
                    times = paired_times(lambda: jit_cast(xj, wj), lambda: twice_jit(xj), pairs=pairs, sync=ready)
                elif mode == "compile":
                    times = paired_times(lambda: comp_cast(xt, wt), lambda: twice_comp(xt), pairs=pairs, warmup=3)
                else:
                    times = paired_times(lambda: dmxnum.cast(xt, fmt, random_bits=wt), lambda: xt * 2, pairs=pairs)
                base_times[shape, mode] += [b for _, b in times]
                res = {"format": fmt, "target_class": cls, "shape": list(shape), "mode": mode, **ratio_summary(times),
                       "limit": limits[mode], "pairs": pairs}
                res["pass"] = res["median"] <= res["limit"]
                results.append(res)
                line.append(f"{mode} {_cell(res)}")
            print(f"{fmt} {shape[0]}x{shape[1]}: " + "; ".join(line), flush=True)

    # Drawing the random words, apart: ratios to the same baselines, for each shape.
    draws = []
    if any(dmxnum.parse(f).stochastic for f in args.formats):
        key = jax.random.key(0)
        gen = torch.Generator().manual_seed(0)
        for shape in args.shapes:
            xj, _, xt, _ = data[shape]
            if "jit" in modes:
                s = ratio_summary(paired_times(lambda: jax.random.bits(key, shape, jnp.uint32), lambda: twice_jit(xj),
                                               pairs=pairs, sync=ready))
                draws.append({"draw": "jax.random.bits", "baseline": "jit x*2", "shape": list(shape), **s})
            if "eager" in modes or "compile" in modes:
                s = ratio_summary(paired_times(
                    lambda: torch.randint(-(2**31), 2**31, shape, dtype=torch.int32, generator=gen), lambda: xt * 2, pairs=pairs))
                draws.append({"draw": "torch.randint", "baseline": "eager x*2", "shape": list(shape), **s})

    baselines = [{"shape": list(s), "mode": m, "median_ms": statistics.median(t) * 1e3, "min_ms": min(t) * 1e3,
                  "max_ms": max(t) * 1e3} for (s, m), t in base_times.items() if t]
    print(f"\nmedian of {pairs} back-to-back pairs (cast, then x * 2) on standard-normal float32, per cell; "
          "baselines x * 2 (median, min-max over all pairs):")
    for b in baselines:
        print(f"  {b['shape'][0]}x{b['shape'][1]} {MODES[b['mode']]}: {b['median_ms']:.3f} ms "
              f"({b['min_ms']:.3f}-{b['max_ms']:.3f})")
    if draws:
        print("random words (not included above):")
        for d in draws:
            print(f"  {d['shape'][0]}x{d['shape'][1]} {d['draw']}: {d['median']:.1f}x {d['baseline']} "
                  f"({d['min']:.1f}-{d['max']:.1f})")

    by_key = {(r["format"], tuple(r["shape"]), r["mode"]): r for r in results}
    limit_note = {"jit": "", "compile": f" (<= {COMPILE_LIMIT:g}x)", "eager": f" (<= {EAGER_LIMIT:g}x)"}
    header = ["format", "target class", "shape"] + [f"{MODES[m]} / x*2{limit_note[m]}" for m in modes]
    rows = []
    for fmt in args.formats:
        cls = target_class(fmt)
        for shape in args.shapes:
            rows.append([f"`{fmt}`".replace("|", "\\|"), f"{cls} (jit <= {JIT_LIMITS[cls]:g}x)", f"{shape[0]}x{shape[1]}"]
                        + [_cell(by_key[fmt, shape, m]) for m in modes])
    failed = [r for r in results if not r["pass"]]
    print()
    print(table(rows, header))
    print(f"\n{len(results) - len(failed)}/{len(results)} cells within target"
          + (": over target " + ", ".join(f"{r['format']} {r['shape'][0]}x{r['shape'][1]} {r['mode']} "
                                          f"{r['median']:.2f}x > {r['limit']:g}x" for r in failed) if failed else ""))

    if args.json:
        out = {"statistic": f"median of {pairs} back-to-back pairs (cast, then x * 2), ratio per pair",
               "pairs": pairs, "shapes": [list(s) for s in args.shapes], "modes": modes,
               "versions": {"jax": jax.__version__, "torch": torch.__version__, "numpy": np.__version__},
               "baselines": baselines, "random_words": draws, "results": results}
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"raw results written to {args.json}")
    return results


if __name__ == "__main__":
    main()
