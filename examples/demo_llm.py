"""Demo section: SmolLM2-135M perplexity under the LLM configs, on one
evaluation window (the full table, 64 windows, is in docs/llm.md)."""

from __future__ import annotations

from examples.llm import run_table


def run() -> None:
    """Print the perplexity table of the config files on one 512-token window."""
    print(run_table(1, progress=False, files_only=True))
