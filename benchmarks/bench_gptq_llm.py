"""GPTQ over every decoder ``Linear`` of SmolLM2-135M (MXFP4 weights), 128
calibration windows of 512 tokens (the corpus's calibration split), on this
machine's cores: the wall time of ``dmx.gptq`` (goal: at most 10 minutes on
2 cores) and the perplexity it gives on the 64 evaluation windows.

Not part of ``run_all`` (it takes minutes); run it alone::

    .venv/bin/python benchmarks/bench_gptq_llm.py [--calib 128] [--eval 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))


def main(calib: int = 128, evaluate: int = 64) -> dict:
    """Run GPTQ once, print and return ``{seconds, calib_windows, threads, perplexity}``."""
    import warnings

    import llm
    import torch_frontend as dmx
    from ptq_llm import DECODER, batches

    net = llm.load_smollm2()
    model = dmx.Model(net).transform(
        dmx.ConfigRule(module_types=["linear"], name_re=DECODER, config={"weight_format": "MXFP4_E2M1"})
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dmx.PTQWarning)
        dmx.gptq(model, batches(llm.corpus("calib", calib)), progress=False)
    seconds = time.perf_counter() - start
    out = {"seconds": round(seconds, 1), "calib_windows": calib, "threads": torch.get_num_threads()}
    if evaluate:
        out["perplexity"] = llm.perplexity(model, llm.corpus("eval", evaluate), progress=False)
    print(f"SmolLM2-135M GPTQ (MXFP4, 210 decoder Linears, {calib} x 512 tokens, "
          f"{out['threads']} threads): {seconds / 60:.1f} min" +
          (f"; perplexity {out['perplexity']:.2f} on {evaluate} windows" if evaluate else ""))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calib", type=int, default=128)
    parser.add_argument("--eval", type=int, default=64)
    a = parser.parse_args()
    main(a.calib, a.eval)
