"""SmolLM2-135M, loaded once per test session (about 15-40 s), and its
corpus. Every test module here carries the ``llm`` xdist group
(``pytestmark``), so that ``make test`` (``--dist loadgroup``) runs them in
one worker and loads the model once."""

from __future__ import annotations

import pytest
import torch

import torch_frontend as dmx


@pytest.fixture(scope="session")
def smollm2():
    """``(net, tokenizer)``: the float32 model in eval mode."""
    from examples.llm import load_smollm2

    return load_smollm2(with_tokenizer=True)


@pytest.fixture(scope="session")
def eval_windows(smollm2):
    """The first evaluation window (512 tokens)."""
    from examples.llm import corpus

    return corpus("eval", 1, tokenizer=smollm2[1])


@pytest.fixture(autouse=True)
def _aware_and_one_thread():
    """dmx.aware() on, one intra-op thread (the other xdist worker runs in
    parallel on a 2-core machine); both restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    dmx.aware()
    yield
    dmx.aware(False)
    torch.set_num_threads(threads)
