"""Demo section: SmolLM2-135M perplexity under the LLM configs, on the
first 256 tokens of one evaluation window, to stay under a minute (the full
table, 64 windows of 512 tokens, is in docs/llm.md)."""

from __future__ import annotations

from examples.llm import run_table


def run() -> None:
    """Print the perplexity table of the config files on 256 tokens of one window."""
    print(run_table(1, progress=False, files_only=True, length=256))
