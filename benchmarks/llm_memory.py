"""Peak resident memory of SmolLM2-135M inference, FP32 versus wrapped
(each in a fresh process): load, then one forward of 512 tokens in eval
mode without grad; the wrapped run uses configs/llm_bfp16.yaml (its cached
effective weights are the one extra copy it may keep)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, resource, sys, torch
sys.path.insert(0, {root!r})
from examples.llm import corpus, load_smollm2
import torch_frontend as dmx
net = load_smollm2(); ids = corpus("eval", 1)
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
model = net if {mode!r} == "fp32" else dmx.Model(net).transform({root!r} + "/configs/{config}.yaml")
with torch.no_grad():
    model(input_ids=ids, use_cache=False); model(input_ids=ids, use_cache=False)
import ctypes, gc, os
gc.collect()
ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed temporaries back to the OS: count what is kept
with open("/proc/self/statm") as f:
    current = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
print(json.dumps({{"loaded_mib": loaded, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "after_mib": current}}))
"""


def measure(mode: str, config: str = "llm_bfp16") -> dict:
    """Peak RSS (MiB) after loading and after two forwards, and the resident
    size after them, in a fresh process."""
    code = _CHILD.format(root=str(ROOT), mode=mode, config=config)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Print the memory of FP32 and of the wrapped BFP16 and MXFP4-weights models."""
    fp32 = measure("fp32")
    print(f"FP32: loaded {fp32['loaded_mib']:.0f} MiB, peak {fp32['peak_mib']:.0f} MiB, "
          f"resident after {fp32['after_mib']:.0f} MiB")
    for config in ("llm_bfp16", "llm_mxfp4_weights"):
        w = measure("wrapped", config)
        print(f"wrapped {config}: peak {w['peak_mib']:.0f} MiB (+{w['peak_mib'] - fp32['peak_mib']:.0f}), "
              f"resident after {w['after_mib']:.0f} MiB (+{w['after_mib'] - fp32['after_mib']:.0f})")


if __name__ == "__main__":
    main()
