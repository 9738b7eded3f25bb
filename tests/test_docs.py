"""Every ``python`` code block of the README and of ``docs/`` runs.

The blocks of one file run in order in one namespace, seeded with a small
fixture namespace for the names the prose leaves to the reader (``net``,
``x``, ``batch``, ``variables``, ...). A block that defines ``test_*``
functions has them called, so the documented property tests run too. The
docs cannot rot silently: a renamed function, a changed signature or a
configuration that no longer loads fails here.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(path: str) -> list[str]:
    """The ``python`` fenced blocks of ``path``, in order."""
    return _BLOCK.findall((ROOT / path).read_text())


def _torch_names() -> dict:
    import torch

    from examples.digits_cnn import LeNet5

    torch.manual_seed(0)
    x = torch.randn(4, 1, 8, 8)
    return {"net": LeNet5().eval(), "x": x, "example_x": x}


def _flax_names() -> dict:
    import jax
    import jax.numpy as jnp

    from examples.demo_flax import LeNet5 as FlaxLeNet5

    from flax import nnx

    from examples.nnx_digits import LeNet5 as NnxLeNet5

    module = FlaxLeNet5()
    batch = jnp.asarray(np.random.default_rng(0).standard_normal((4, 8, 8, 1)), jnp.float32)
    variables = module.init(jax.random.key(0), batch)
    return {
        "flax_module": module, "batch": batch, "variables": variables,
        "loss": lambda y: jnp.sum(y * y), "nnx_module": NnxLeNet5(nnx.Rngs(0)),
    }


def _testing_names() -> dict:
    from hypothesis import given, settings, strategies as st

    import dmxnum
    from dmxnum.testing import arrays_for, assert_bit_exact, formats

    return {
        "given": given, "st": st, "settings": settings, "formats": formats,
        "arrays_for": arrays_for, "assert_bit_exact": assert_bit_exact,
        "my_kernel": lambda x, fmt: dmxnum.cast(x, fmt),
    }


def namespace(path: str) -> dict:
    """The fixture names a file's blocks may use without defining them."""
    rng = np.random.default_rng(0)
    names: dict = {"__name__": f"docs_{Path(path).stem}"}
    names.update(_testing_names())
    if path in ("README.md", "docs/torch.md"):
        names.update(_torch_names())
    if path == "README.md":
        names.update(_flax_names())
    if path == "docs/flax.md":
        flax = _flax_names()
        names.update({"net": flax["flax_module"], "x": flax["batch"], "loss": flax["loss"]})
    if path == "docs/logics.md":
        names.update({
            "scores": rng.standard_normal((4, 16)).astype(np.float32),
            "h": rng.standard_normal((2, 768)).astype(np.float32),
            "w": rng.standard_normal(768).astype(np.float32),
            "b": rng.standard_normal(768).astype(np.float32),
        })
    if path == "docs/sparsity.md":
        w = rng.standard_normal((8, 16)).astype(np.float32)
        names.update({"w": w, "scores": np.abs(w)})
    return names


#: pages whose examples load SmolLM2: run in the worker of tests/llm (one
#: model in memory at a time under ``--dist loadgroup``)
_LLM_PAGES = {"docs/llm.md"}


@pytest.mark.parametrize(
    "path",
    [pytest.param(f, marks=pytest.mark.xdist_group("llm")) if f in _LLM_PAGES else f for f in FILES if blocks(f)],
)
def test_code_blocks_run(path, monkeypatch):
    import torch_frontend as dmx

    monkeypatch.chdir(ROOT)
    names = namespace(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", dmx.SlotNotAppliedWarning)
            for i, code in enumerate(blocks(path)):
                before = set(names)
                try:
                    exec(compile(code, f"{path}[block {i}]", "exec"), names)
                except Exception as err:  # pragma: no cover - the failure message
                    raise AssertionError(f"{path}, python block {i} failed: {err!r}\n{code}") from err
                for name in sorted(set(names) - before):
                    if name.startswith("test_") and callable(names[name]):
                        names[name]()
    finally:
        dmx.aware(False)


@pytest.mark.parametrize("path", FILES)
def test_every_python_fence_is_extracted(path):
    """No block escapes the extraction (an unterminated or indented fence
    would otherwise never run)."""
    text = (ROOT / path).read_text()
    assert len(blocks(path)) == len(re.findall(r"^```python$", text, re.M))
