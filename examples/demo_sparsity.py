"""Demo: prune a trained classifier's weight matrix 2:4 and 4:8 by magnitude.

Trains scikit-learn's ``LogisticRegression`` on the 8x8 digits data (about a
second), then sparsifies its weight (10 classes x 64 pixels) along the input
axis with ``BTOPK{2:4,-1}`` and ``BTOPK{4:8,-1}`` (and unstructured
``TOPK{0.5}`` for comparison), and prints the density, the relative
Frobenius error ``||W - W_s|| / ||W||`` and the test accuracy of the pruned
classifier. It also checks that NumPy, JAX and PyTorch give the same pruned
weight bit for bit, and that the compressed 2:4 storage round-trips.

Run: ``.venv/bin/python examples/demo_sparsity.py``, or call ``run()`` (from ``make demo``).
"""

from __future__ import annotations

import numpy as np

from dmxnum.sparsity import compress_nm, decompress_nm, is_sparse, sparsify

PATTERNS = ("DENSE", "BTOPK{2:4,-1}(U)", "BTOPK{4:8,-1}(U)", "TOPK{0.5}(U)")


def _train():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(x_train, y_train)
    return clf, x_test, y_test


def run() -> list[dict[str, float | str]]:
    """Train, prune and print the table; returns its rows."""
    clf, x_test, y_test = _train()
    w = clf.coef_.astype(np.float32)  # (10, 64)
    b = clf.intercept_.astype(np.float32)
    rows = []
    for pattern in PATTERNS:
        ws = sparsify(w, pattern)
        assert is_sparse(ws, pattern)
        density = float(np.count_nonzero(ws)) / ws.size
        error = float(np.linalg.norm(w - ws) / np.linalg.norm(w))
        accuracy = float(np.mean(np.argmax(x_test @ ws.T + b, axis=1) == y_test))
        rows.append({"pattern": pattern, "density": density, "rel_frobenius_error": error, "accuracy": accuracy})

    print(f"digits LogisticRegression weight {w.shape}, pruned by magnitude along the input axis")
    print(f"{'pattern':<18} {'density':>8} {'rel. Frobenius error':>21} {'test accuracy':>14}")
    for r in rows:
        print(f"{r['pattern']:<18} {r['density']:>8.3f} {r['rel_frobenius_error']:>21.4f} {r['accuracy']:>14.4f}")

    # same result on every backend, and the compressed 2:4 storage is exact
    import jax.numpy as jnp
    import torch

    ref = sparsify(w, "BTOPK{2:4,-1}(U)")
    same_jax = np.array_equal(np.asarray(sparsify(jnp.asarray(w), "BTOPK{2:4,-1}(U)")).view(np.uint32), ref.view(np.uint32))
    same_torch = np.array_equal(sparsify(torch.from_numpy(w), "BTOPK{2:4,-1}(U)").numpy().view(np.uint32), ref.view(np.uint32))
    values, indices = compress_nm(w, 2, 4, -1)
    exact = np.array_equal(decompress_nm(values, indices, 2, 4, -1), ref)
    print(
        f"2:4 on JAX == NumPy: {same_jax}; on PyTorch == NumPy: {same_torch}; "
        f"compressed 2:4: values {values.shape} {values.dtype} + indices {indices.shape} {indices.dtype}, "
        f"decompress == sparsify: {exact}"
    )
    return rows


if __name__ == "__main__":
    run()
