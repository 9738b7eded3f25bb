"""DTensor casts, sparsity and logics (``torch.distributed``) equal the operation
on the full tensor bit for bit and keep the input's placements.

Two ``gloo`` processes on CPU (a 1-D mesh of 2 ranks) run every check of
``dtensor_checks.py`` once, rendezvousing through a ``FileStore`` in the
test's own ``tmp_path`` (parallel test workers do not collide).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dmxnum._dtensor import _shard_starts

WORKER = Path(__file__).with_name("dtensor_checks.py")
WORLD = 2


def test_dtensor_operations_match_full_tensor(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    env["PYTHONPATH"] = os.pathsep.join([str(WORKER.parents[2]), env.get("PYTHONPATH", "")])
    store = tmp_path / "store"
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(rank), str(WORLD), str(store), str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(WORLD)
    ]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=240)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for rank, p in enumerate(procs):
        assert p.returncode == 0, f"rank {rank} exited with {p.returncode}:\n{logs[rank][-4000:]}"
    from dtensor_checks import CHECKS  # noqa: E402 (the worker's check list)

    for rank in range(WORLD):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert not result["failed"], "\n".join(f"rank {rank} {k}:\n{v}" for k, v in result["failed"].items())
        assert result["passed"] == [fn.__name__ for fn in CHECKS]


@pytest.mark.parametrize(
    "length, splits, starts",
    [
        (128, [2], [0, 64]),
        (127, [2], [0, 64]),  # the last shard holds the partial final block
        (96, [2], [0, 48]),
        (3, [2], [0, 2]),
        (1, [2], [0]),  # an empty second shard
        (10, [2, 2], [0, 3, 5, 8]),  # nested sharding on a 2-D mesh
        (0, [2], []),
    ],
)
def test_shard_starts(length, splits, starts):
    assert _shard_starts(length, splits) == starts
