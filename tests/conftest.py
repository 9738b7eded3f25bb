"""Shared pytest configuration: Hypothesis profiles and backend fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# the repository root, so tests can import the shared models in examples/
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# CI=true: many examples; locally: fewer (override with HYPOTHESIS_PROFILE).
settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def run_on_8_devices():
    """``run(script, marker)``: run the Python ``script`` in a subprocess with
    8 simulated CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=8``,
    set before JAX starts) and assert that it exits cleanly and prints ``marker``;
    returns its stdout."""

    def run(script: str, marker: str) -> str:
        env = dict(os.environ)
        env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
        env["JAX_PLATFORMS"] = "cpu"
        proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert marker in proc.stdout
        return proc.stdout

    return run
