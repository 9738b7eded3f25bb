"""NVFP4 single and two level equal torchao 0.18's ``nvfp4_quantize``
dequantized as torchao does it (``NVFP4Tensor.dequantize``: the unpacked E2M1
values times ``get_hp_scales()``, the E4M3 block scale times the tensor
scale, ``fl32(g * s)``), bit for bit on finite float32 data (block size 16,
2-d arrays whose last dimension is a multiple of 16). A test oracle, not a
dependency."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dmxnum

# torchao is a declared test dependency (the test extra): a missing one fails loudly
from torchao.prototype.mx_formats import nvfp4_tensor  # noqa: E402
from torchao.prototype.mx_formats.kernels import f4_unpacked_to_f32, unpack_uint4  # noqa: E402


def torchao_nvfp4(x: torch.Tensor, two_level: bool) -> torch.Tensor:
    """torchao's quantize-dequantize of a 2-d float32 ``x`` (blocks of 16 along the last axis)."""
    g = None
    if two_level:
        g = nvfp4_tensor.per_tensor_amax_to_scale(torch.max(torch.abs(x)))
    scales, packed = nvfp4_tensor.nvfp4_quantize(x, 16, g)
    q = f4_unpacked_to_f32(unpack_uint4(packed.contiguous().view(torch.uint8)))
    hp_scales = scales.to(torch.float32) if g is None else g * scales.to(torch.float32)  # get_hp_scales
    m, k = x.shape
    return (q.view(m, k // 16, 16) * hp_scales.view(m, k // 16, 1)).view(m, k)


def finite_edge_data(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Finite data whose rows span binades 2^-100 .. 2^100, with E2M1 ties and
    grid points after scaling, the block-scale clamp edges, zeros, -0 and
    subnormals (the tensor scale stays above torchao's unclamped range)."""
    rng = np.random.default_rng(seed)
    exps = rng.integers(-100, 100, (shape[0], 1))
    base = rng.standard_normal(shape) * 2.0**exps
    ties = (rng.integers(-12, 12, shape) + 0.5) * 2.0 ** (exps - rng.integers(0, 4, shape))
    grid = (rng.choice(np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5]), shape)
            * rng.choice([-1, 1], shape) * 2.0**exps)
    special = rng.choice(np.array([0.0, -0.0, 6 * 2.0**-6, 6 * 2.0**-7, 2688.0, 6 * 0.875 * 2.0**-6, 6.75,
                                   1e-40, -1e-45, 3e38]), shape)
    kind = rng.integers(0, 8, shape)
    x = np.select([kind < 3, kind < 5, kind < 7], [base, ties, grid], special)
    return np.clip(x, -3e38, 3e38).astype(np.float32)


CASES = [("normal", (32, 64)), ("normal", (8, 16)), ("edge", (16, 64)), ("edge", (64, 32)), ("edge", (4, 256))]


@pytest.mark.parametrize("two_level", [False, True], ids=["single", "two_level"])
@pytest.mark.parametrize(("kind", "shape"), CASES)
def test_nvfp4_equals_torchao(two_level: bool, kind: str, shape: tuple[int, int]) -> None:
    for seed in range(12):
        if kind == "normal":
            x = (np.random.default_rng(seed).standard_normal(shape) * 10.0 ** (seed - 2)).astype(np.float32)
        else:
            x = finite_edge_data(shape, seed)
        xt = torch.from_numpy(x)
        want = torchao_nvfp4(xt, two_level).numpy()
        got = dmxnum.cast(xt, "NVFP4(T)" if two_level else "NVFP4").numpy()
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (kind, shape, seed)


def test_dequantizing_as_q_times_s_then_g_differs() -> None:
    """Why the oracle multiplies by ``fl32(g * s)``: ``(q * s) * g`` rounds twice
    and differs on a few percent of random elements."""
    x = torch.from_numpy((np.random.default_rng(0).standard_normal((64, 256)) * 3).astype(np.float32))
    g = nvfp4_tensor.per_tensor_amax_to_scale(torch.max(torch.abs(x)))
    scales, packed = nvfp4_tensor.nvfp4_quantize(x, 16, g)
    q = f4_unpacked_to_f32(unpack_uint4(packed.contiguous().view(torch.uint8))).view(64, 16, 16)
    twice = ((q * scales.to(torch.float32).view(64, 16, 1)) * g).view(64, 256)
    ours = dmxnum.cast(x, "NVFP4(T)")
    assert not torch.equal(twice, ours)
    assert torch.equal(torchao_nvfp4(x, True), ours)
