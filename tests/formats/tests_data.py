"""Deterministic edge-heavy float32 test data shared by the format tests."""

from __future__ import annotations

import numpy as np


def edge_heavy(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    kind = rng.integers(0, 6, n)
    raw = rng.integers(0, 2**32, n, dtype=np.uint32).view(np.float32)
    sub = (rng.integers(0, 2**23, n, dtype=np.uint32) | (rng.integers(0, 2, n, dtype=np.uint32) << 31)).view(np.float32)
    scale = np.float32(2.0) ** rng.integers(-149, 127, n).astype(np.float32)
    normal = (rng.standard_normal(n).astype(np.float32) * scale).astype(np.float32)
    ties = (rng.integers(-64, 64, n).astype(np.float32) + np.float32(0.5)) * np.float32(2.0) ** rng.integers(-20, 10, n).astype(np.float32)
    specials = rng.choice(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 3.4028235e38, -1.4e-45, 65504, 448, 6], np.float32), n)
    x = np.select([kind == 0, kind == 1, kind == 2, kind == 3, kind == 4], [raw, sub, normal, ties, specials], sub * 0 + normal)
    x = x.astype(np.float32)
    # make whole blocks finite and subnormal-only in a few rows so block paths see them too
    flat = x.reshape(shape[0], -1)
    flat[1] = sub[: flat.shape[1]]
    flat[2] = np.abs(normal[: flat.shape[1]])
    return flat.reshape(shape)
