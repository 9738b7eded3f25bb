"""Demo: cast real tensors into a set of formats and measure the damage.

Two real tensors: scikit-learn's 8x8 digits images (pixel intensities,
scaled to [0, 1]) and the weight matrix of a logistic-regression classifier
trained on them (10 x 64). Each is cast with ``dmxnum.cast`` and the table
shows the format, its storage cost in bits per element (shared exponents and
scales amortized), the signal-to-quantization-noise ratio
``SQNR = 10 log10(sum x^2 / sum (x - cast(x))^2)`` and the largest absolute
error.

Run: ``.venv/bin/python examples/demo_formats.py``, or call ``run()``.
"""

from __future__ import annotations

import math

import numpy as np

import dmxnum

FORMATS = (
    "FP16", "BF16", "FP8_E4M3FN", "FP8_E5M2", "FP6_E3M2", "FP4_E2M1", "INT8", "XP[8,6](CSN)",
    "BFP16_64_LD", "BFP12_64_LD", "BFP[4|8]{16,-1}(SN)", "MXINT8", "MXFP8_E4M3", "MXFP6_E2M3", "MXFP4_E2M1",
    "MXFP4_E2M1(C)", "MXFP4_E2M1(E)", "MXFP4_E2M1(R)", "MXFP4[E2M1]{16,-1}", "NVFP4", "NVFP4(T)",
    "SBFP<XP[4,0](CSN)><FP[0|4|3,7](_N)>{16,-1}",
)


def tensors() -> dict[str, np.ndarray]:
    """The real tensors the demo casts: digits pixels and a trained weight matrix."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    pixels = (x / 16.0).astype(np.float32)
    weight = LogisticRegression(max_iter=2000).fit(pixels, y).coef_.astype(np.float32)
    return {"digits pixels (1797x64)": pixels, "trained weight (10x64)": weight}


def sqnr_db(x: np.ndarray, y: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB (inf when the cast is exact)."""
    noise = float(np.sum((x.astype(np.float64) - y.astype(np.float64)) ** 2))
    signal = float(np.sum(x.astype(np.float64) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)


def run() -> list[tuple[str, str, float, float, float]]:
    """Print the table; returns ``(tensor, format, bits/element, SQNR dB, max abs error)`` rows."""
    rows = []
    for name, t in tensors().items():
        print(f"\n{name}")
        print(f"{'format':48s} {'bits/elem':>9s} {'SQNR dB':>8s} {'max |err|':>10s}")
        for alias in FORMATS:
            fmt = dmxnum.parse(alias)
            y = np.asarray(dmxnum.cast(t, fmt))
            err = float(np.max(np.abs(y - t)))
            s = sqnr_db(t, y)
            rows.append((name, str(fmt), fmt.bits_per_element, s, err))
            print(f"{alias + ' = ' + str(fmt) if alias != str(fmt) else alias:48.48s} {fmt.bits_per_element:9.3f} {s:8.2f} {err:10.3g}")
    return rows


if __name__ == "__main__":
    run()
