"""The Flax digits demo: BFP16 costs at most 1 point of test accuracy."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _demo():
    spec = importlib.util.spec_from_file_location("demo_flax", ROOT / "examples" / "demo_flax.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # flax dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results():
    demo = _demo()
    return demo.run(epochs=30, seed=0, configs=("lenet5.yaml", "bfp16_transformer.yaml", "sparse_2of4.yaml"))


def test_fp32_trains(results):
    assert results["FP32"] >= 95.0


@pytest.mark.parametrize("config", ["lenet5.yaml", "bfp16_transformer.yaml"])
def test_bfp16_within_one_point_of_fp32(results, config):
    assert abs(results[config] - results["FP32"]) <= 1.0


def test_sparse_model_still_classifies(results):
    # 2:4 pruning of every Linear weight without fine-tuning: a visible but bounded loss
    assert results["sparse_2of4.yaml"] >= 85.0
