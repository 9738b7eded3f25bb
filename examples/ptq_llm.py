"""Post-training quantization of SmolLM2-135M: GPTQ, calibrated scales, SmoothQuant.

Every row configures the ``Linear`` modules of the decoder layers (the tied
LM head stays float), applies its PTQ steps on calibration windows of the
corpus (``examples/llm.py``: windows 64-219, disjoint from the evaluation
windows 0-63) and measures perplexity on the evaluation windows::

    python examples/ptq_llm.py --eval 64 --calib 128 --rows mxfp4_rtn,mxfp4_gptq

Results are appended, one JSON object per row, to ``--out`` (default
``ptq_llm.jsonl``); ``docs/ptq.md`` holds the table they gave.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import llm  # noqa: E402

import torch_frontend as dmx  # noqa: E402
from dmxnum.errors import PTQWarning  # noqa: E402

DECODER = r"layers\."
INT8 = "XP[8,0](CSN)"
INT4 = "XP[4,0](CSN)"


def _weights(fmt: str, scale: str | None = None) -> dict:
    slots = {"weight_format": fmt}
    if scale:
        slots["weight_scale"] = scale
    return slots


def _w8a8() -> dict:
    return {"weight_format": INT8, "weight_scale": "MINMAX{0}", "input_format": INT8, "input_scale": "MINMAX"}


#: the weight row whose largest value (about 2.19, 61 times the row's median)
#: drives SmolLM2's massive activations in hidden channel 100: per-channel
#: MSE clips it to half
SUPER_WEIGHT_ROW = "model.layers.1.mlp.down_proj"

#: row -> (description, slots of every decoder Linear, steps[, overrides]); a
#: step is "gptq", "calibrate" or ("smoothquant", alpha); overrides: {module: slots}
ROWS: dict[str, tuple] = {
    "mxfp4_rtn": ("MXFP4 weights, round to nearest", _weights("MXFP4_E2M1"), ()),
    "mxfp4_gptq": ("MXFP4 weights, GPTQ", _weights("MXFP4_E2M1"), ("gptq",)),
    "nvfp4_rtn": ("NVFP4 weights, round to nearest", _weights("NVFP4"), ()),
    "nvfp4_gptq": ("NVFP4 weights, GPTQ", _weights("NVFP4"), ("gptq",)),
    "bfp12_rtn": ("BFP12 weights, round to nearest", _weights("BFP[4|8]{64,-1}(SN)"), ()),
    "bfp12_gptq": ("BFP12 weights, GPTQ", _weights("BFP[4|8]{64,-1}(SN)"), ("gptq",)),
    "int4_minmax_rtn": ("INT4 weights MINMAX{0}, round to nearest", _weights(INT4, "MINMAX{0}"), ("calibrate",)),
    "int4_mse_rtn": ("INT4 weights MSE{0}, round to nearest", _weights(INT4, "MSE{0}"), ("calibrate",)),
    "int4_mse_gptq": ("INT4 weights MSE{0}, GPTQ", _weights(INT4, "MSE{0}"), ("calibrate", "gptq")),
    "int4_mse_rtn_super": (f"INT4 weights MSE{{0}}, MINMAX{{0}} on {SUPER_WEIGHT_ROW}, round to nearest",
                           _weights(INT4, "MSE{0}"), ("calibrate",), {SUPER_WEIGHT_ROW: {"weight_scale": "MINMAX{0}"}}),
    "w8a8": ("INT8 W (MINMAX{0}) + A (MINMAX), no smoothing", _w8a8(), ("calibrate",)),
    **{
        f"w8a8_sq{a}": (f"INT8 W + A, SmoothQuant alpha={a}", _w8a8(), (("smoothquant", a), "calibrate"))
        for a in (0.3, 0.5, 0.7, 0.85)
    },
}


def batches(windows, size: int = 4) -> list[dict]:
    """Calibration batches: ``size`` windows per call, as keyword arguments."""
    return [{"input_ids": windows[i : i + size], "use_cache": False} for i in range(0, windows.shape[0], size)]


def run_row(net, name: str, eval_windows, calib_windows, progress: bool = True) -> dict:
    """Configure, apply the row's PTQ steps and measure; returns the row's record."""
    desc, slots, steps, *rest = ROWS[name]
    model = dmx.Model(net).transform(dmx.ConfigRule(module_types=["linear"], name_re=DECODER, config=slots))
    if rest:
        model.transform(rest[0])  # per-module overrides, on top of the rule
    calib = batches(calib_windows)
    seconds = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTQWarning)
        for step in steps:
            start = time.perf_counter()
            if step == "gptq":
                dmx.gptq(model, calib, progress=progress)
            elif step == "calibrate":
                dmx.calibrate(model, calib, progress=progress)
            else:
                dmx.smoothquant(model, calib, alpha=step[1], progress=progress)
            seconds[step if isinstance(step, str) else step[0]] = round(time.perf_counter() - start, 1)
    ppl = llm.perplexity(model, eval_windows, progress=progress)
    return {"row": name, "description": desc, "perplexity": ppl, "eval_windows": int(eval_windows.shape[0]),
            "calib_windows": int(calib_windows.shape[0]), "seconds": seconds}


#: row -> the round-to-nearest row it is compared with
BASELINES = {
    "mxfp4_gptq": "mxfp4_rtn", "nvfp4_gptq": "nvfp4_rtn", "bfp12_gptq": "bfp12_rtn",
    "int4_mse_gptq": "int4_mse_rtn", **{f"w8a8_sq{a}": "w8a8" for a in (0.3, 0.5, 0.7, 0.85)},
}


def markdown(records: list[dict]) -> str:
    """The perplexity table of ``records`` (this script's JSON lines; the last
    record of each row counts): perplexity, change against FP32 and, for a
    PTQ row, the share of its round-to-nearest row's gap to FP32 it closes."""
    rows = {r["row"]: r for r in records}
    fp32 = rows["fp32"]["perplexity"]
    lines = ["| configuration | calibration windows | perplexity | vs FP32 | gap closed |", "|---|---:|---:|---:|---:|",
             f"| FP32 | - | {fp32:.2f} | | |"]
    for name, r in rows.items():
        if name == "fp32":
            continue
        ppl = r["perplexity"]
        base = rows.get(BASELINES.get(name, ""))
        closed = f"{100 * (base['perplexity'] - ppl) / (base['perplexity'] - fp32):.0f} %" if base else ""
        steps = r.get("seconds", {})
        uses_data = "gptq" in steps or "smoothquant" in steps or "input_scale" in str(ROWS[name][1])
        windows = r["calib_windows"] if uses_data else "-"
        lines.append(f"| {r['description']} | {windows} | {ppl:.2f} | {100 * (ppl / fp32 - 1):+.1f} % | {closed} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", type=int, default=64, help="evaluation windows (of 64)")
    parser.add_argument("--calib", type=int, default=128, help="calibration windows (of 156)")
    parser.add_argument("--rows", default="all", help="comma-separated rows, 'fp32' included, or 'all'")
    parser.add_argument("--out", default="ptq_llm.jsonl")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--table", action="store_true", help="print the Markdown table of --out and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown([json.loads(line) for line in Path(args.out).read_text().splitlines() if line.strip()]))
        return
    rows = ["fp32", *ROWS] if args.rows == "all" else args.rows.split(",")
    unknown = [r for r in rows if r != "fp32" and r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; rows: fp32, {', '.join(ROWS)}")
    net = llm.load_smollm2()
    eval_windows = llm.corpus("eval", args.eval)
    calib_windows = llm.corpus("calib", args.calib)
    for name in rows:
        if name == "fp32":
            record = {"row": "fp32", "description": "FP32", "eval_windows": args.eval,
                      "perplexity": llm.perplexity(net, eval_windows, progress=not args.quiet)}
        else:
            record = run_row(net, name, eval_windows, calib_windows, progress=not args.quiet)
        print(json.dumps(record), flush=True)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
