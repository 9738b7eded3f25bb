"""Run every benchmark in turn (``make bench``)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

MODULES = ["bench_formats", "bench_nvfp4", "bench_sparsity", "bench_logics", "bench_torch", "bench_flax", "bench_flax_sites", "bench_compile", "bench_llm"]

if __name__ == "__main__":
    for name in MODULES:
        print(f"\n===== {name} =====", flush=True)
        importlib.import_module(name).main()
