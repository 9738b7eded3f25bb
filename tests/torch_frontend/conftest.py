"""Shared fixtures: the dmx.aware() switch, a trained digits CNN and MiniLM
(each built once per session)."""

from __future__ import annotations

import pytest
import torch

import torch_frontend as dmx


@pytest.fixture
def aware():
    """dmx.aware() on for the test, restored to off afterwards."""
    dmx.aware()
    yield dmx
    dmx.aware(False)


@pytest.fixture(autouse=True)
def _aware_off_by_default():
    dmx.aware(False)
    yield
    dmx.aware(False)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: these models are small, and on a shared 2-core
    machine two spinning OpenMP threads made training 50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def lenet():
    """``(net, (xtr, ytr, xte, yte))``: LeNet5 trained on the digits (seconds)."""
    from examples.digits_cnn import trained_lenet

    return trained_lenet(seed=0)


@pytest.fixture(scope="session")
def minilm():
    """``(net, batch)``: all-MiniLM-L6-v2 (offline) and a tokenized batch of
    four short sentences."""
    from examples.minilm import SENTENCES, load_minilm

    net, tokenizer = load_minilm()
    batch = dict(tokenizer(SENTENCES[:4], padding=True, return_tensors="pt"))
    return net, batch
