"""Demo: each logic's error against the exact function on real activations.

A small MLP is trained on scikit-learn's digits data; its hidden-layer
pre-activations feed GELU and layer norm, its class logits feed softmax, and
synthetic causal attention logits (64 x 128) feed softmax too. ``run()``
prints one table row per logic: max and mean absolute error against the
exact float64 function, and (for softmax on the digits logits) whether the
predicted class is unchanged. Runs in a few seconds.
"""

from __future__ import annotations

import warnings

import numpy as np

import dmxnum
from dmxnum.logics.accuracy import exact


def activations(seed: int = 0) -> dict[str, np.ndarray]:
    """Hidden pre-activations and class logits of an MLP on digits, plus attention logits."""
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier(hidden_layer_sizes=(64,), max_iter=60, random_state=seed).fit(X, y)
    h = X @ mlp.coefs_[0] + mlp.intercepts_[0]
    logits = np.maximum(h, 0) @ mlp.coefs_[1] + mlp.intercepts_[1]
    rng = np.random.default_rng(seed)
    q, k = rng.normal(size=(2, 64, 128, 32))
    att = np.einsum("hqd,hkd->hqk", q, k)[0] / np.sqrt(32)
    att = att[:64, :128]
    att[np.triu(np.ones((64, 128), bool), 1)] = -np.inf
    return {
        "hidden": h.astype(np.float32),
        "logits": logits.astype(np.float32),
        "attention": att.astype(np.float32),
    }


def run(verbose: bool = True) -> list[tuple[str, str, float, float]]:
    """Print and return ``(logic, input, max abs error, mean abs error)`` rows."""
    acts = activations()
    rows = []
    plan = [(s, "logits") for s in _specs("SOFTMAX")] + [(s, "attention") for s in _specs("SOFTMAX")]
    plan += [(s, "hidden") for s in _specs("GELU") + _specs("LAYERNORM")]
    plan += [(s, "hidden") for s in _specs("EXP")]
    for spec, name in plan:
        x = acts[name]
        if spec.startswith("EXP"):
            x = np.clip(x, -10, 10)
        y = np.asarray(dmxnum.approximate(x, spec), np.float64)
        e = exact(spec, x)
        err = np.abs(y - e)
        if spec.startswith("EXP"):
            err = err / np.abs(e)  # relative for exp
        rows.append((spec, name, float(err.max()), float(err.mean())))
    if verbose:
        print(f"{'logic':32s} {'input':10s} {'max err':>10s} {'mean err':>10s}")
        for spec, name, mx, mean in rows:
            kind = " (rel)" if spec.startswith("EXP") else ""
            print(f"{spec:32s} {name:10s} {mx:10.3g} {mean:10.3g}{kind}")
        logits = acts["logits"]
        same = [
            float(np.mean(np.argmax(dmxnum.approximate(logits, s), -1) == np.argmax(logits, -1)))
            for s in _specs("SOFTMAX")
        ]
        print(f"digits: predicted class unchanged for {min(same):.1%} .. {max(same):.1%} of the samples")
    return rows


def _specs(op: str) -> list[str]:
    from dmxnum.logics import ALGORITHMS

    out = []
    for alg, nfs in ALGORITHMS[op].items():
        if nfs is None:
            out.append(f"{op}({alg})")
        elif op == "LAYERNORM":
            out += [f"LAYERNORM(fallback,0,{nf})" if alg == "fallback" else f"LAYERNORM({alg},_,{nf})" for nf in nfs]
        else:
            out += [f"{op}({alg},{nf})" for nf in nfs]
    return out


if __name__ == "__main__":
    run()
