"""One configuration file, two frameworks: PyTorch (torch_frontend) and Flax (dmxnum.flax).

Twin models with the same weights (``flax_twins``) are transformed by the same
configuration, written in PyTorch layouts. With the same values fed to every
configured layer, each layer's cast input and effective (sparsified, cast)
weight are bitwise identical in both frameworks, and equal to explicit core
calls in PyTorch layout. End to end, outputs agree within a stated tolerance
(see ``_quanta``): reassociation inside matmuls and convolutions may move a
value across a rounding boundary of a downstream cast.
"""

from __future__ import annotations

from pathlib import Path

import flax_twins as tw
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import dmxnum
import dmxnum.flax
import torch_frontend as dmx
from dmxnum.config import parse_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# Block axes deliberately on every axis meaning (PyTorch layouts): conv
# weights along O (0) and I (1), conv inputs along W (-1), H (2) and C (1),
# Linear weights along out (0) and in (-1); N:M sparsity along O and in.
LENET_MIXED = """
conv1:
  instance: Conv2d
  weight_format: BFP[4|8]{4,0}(SN)
  input_format: BFP[4|8]{4,-1}(SN)
  bias_format: FP[1|4|3,7](_N)
  output_format: BFP[6|8]{4,1}(SN)
mp1:
  instance: MaxPool2d
  input_format: BFP[6|8]{4,1}(SN)
conv2:
  weight_sparseness: BTOPK{2:4,0}(U)
  weight_format: MXFP8[E4M3]{4,1}
  input_format: MXINT8{4,2}
  accum_format: FP[1|5|10,15](_N)
fc1:
  weight_sparseness: BTOPK{2:4,-1}(M)
  weight_format: BFP[4|8]{16,0}(SN)
  input_format: MXFP4[E2M1]{32,-1}
  accum_format: BF16
fc2:
  weight_format: MXINT8{8,-1}
  input_format: XP[8,4](CSN)
  output_format: FP16
fc3:
  weight_format: BFP[8|8]{64,-1}(SN)
  input_format: BFP[8|8]{64,-1}(SN)
"""

BLOCK_COMMON = """
ln1:
  input_format: BFP[8|8]{16,-1}(SN)
  weight_format: FP16
  bias_format: BF16
  approximation_function: LAYERNORM(quake3,_,float16)
q:
  weight_format: BFP[6|8]{8,0}(SN)
  input_format: BFP[8|8]{16,-1}(SN)
  bias_format: BF16
k:
  weight_format: BFP[6|8]{8,-1}(SN)
  input_format: BFP[8|8]{16,-1}(SN)
  accum_format: FP16
v:
  weight_sparseness: BTOPK{2:4,-1}(U)
  weight_format: MXINT8{8,-1}
  input_format: BFP[8|8]{16,-1}(SN)
o:
  input_format: MXFP8[E4M3]{32,-1}
  weight_format: MXFP4[E2M1]{32,-1}
ln2:
  input_format: FP16
  output_format: BFP[8|8]{8,-1}(SN)
fc1:
  weight_format: BFP[8|8]{32,-1}(SN)
  input_format: BFP[8|8]{32,-1}(SN)
fc2:
  weight_format: BFP[8|8]{32,0}(SN)
  input_format: BFP[8|8]{32,-1}(SN)
gelu_0:
  input_format: FP16
  approximation_function: GELU(poly2,float16)
  output_format: BFP[8|8]{16,-1}(SN)
"""

# the fused attention: query blocks along T (-2), key/value along D (-1)
BLOCK_FUSED = BLOCK_COMMON + """
scaled_dot_product_attention_0:
  input_format: BFP[8|8]{8,-2}(SN)
  multiplier_format: BFP[8|8]{8,-1}(SN)
  approximation_function: SOFTMAX(base2,float16)
  output_format: BFP[8|8]{8,1}(SN)
"""

# the explicit attention: the internals by <path>.<op>_<i> name
BLOCK_EXPLICIT = BLOCK_COMMON + """
matmul_0:
  input_format: BFP[8|8]{8,-1}(SN)
  multiplier_format: BFP[8|8]{8,-2}(SN)
softmax_0:
  input_format: BFP[8|8]{8,-1}(SN)
  approximation_function: SOFTMAX(poly2,float16)
  output_format: FP[1|5|10,15](_N)
matmul_1:
  input_format: BFP[6|8]{8,-1}(SN)
  multiplier_format: BFP[8|8]{8,-2}(SN)
  output_format: BFP[8|8]{8,-1}(SN)
"""


def _bits(a) -> np.ndarray:
    a = np.asarray(a.detach().numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float32)
    return a.view(np.uint32)


def _assert_bitwise(a, b, what: str) -> None:
    a, b = _bits(a), _bits(b)
    assert a.shape == b.shape, what
    mismatch = np.flatnonzero(a != b)
    assert mismatch.size == 0, f"{what}: {mismatch.size} of {a.size} elements differ"


def _quanta(y: np.ndarray, bits: int) -> float:
    """One quantum of a ``bits``-bit-mantissa block format at the output's largest magnitude."""
    return float(2.0 ** (np.floor(np.log2(np.max(np.abs(y)))) - (bits - 2)))


def _core_expected(name: str, slots: dict, w: torch.Tensor, x: torch.Tensor):
    """Effective weight and cast input by explicit core calls, in PyTorch layout."""
    if "weight_sparseness" in slots:
        w = dmxnum.sparsify(w, slots["weight_sparseness"])
    if "weight_format" in slots:
        w = dmxnum.cast(w, slots["weight_format"])
    if "input_format" in slots:
        x = dmxnum.cast(x, slots["input_format"])
    return w, x


@pytest.fixture(autouse=True)
def _clean_feeds():
    yield
    for d in (tw.FEEDS_T, tw.FEEDS_F, tw.SEEN_T):
        d.clear()


def _twins_lenet():
    torch.manual_seed(0)
    tnet = tw.TorchLeNet().eval()
    return tnet, tw.FlaxLeNet(), tw.lenet_flax_params(tnet)


def _twins_block(explicit: bool):
    torch.manual_seed(1)
    tnet = tw.TorchBlock(explicit).eval()
    return tnet, tw.FlaxBlock(explicit), tw.block_flax_params(tnet)


def _check_layers(tnet, fnet, fvars, config, x_t, layer_inputs, kinds):
    """Feed the same values to every layer; compare cast inputs and effective weights."""
    dmx.aware()
    tmodel = dmx.Model(tnet)
    tmodel.trace(x_t)
    tmodel.transform(config)
    x_f = jnp.asarray(x_t.numpy().transpose(0, 2, 3, 1)) if x_t.ndim == 4 else jnp.asarray(x_t.numpy())
    fmodel = dmxnum.flax.Model(fnet)
    fmodel.trace(x_f)
    fmodel.transform(config)
    parsed = parse_config(config)
    rng = np.random.default_rng(7)
    for name, shape in layer_inputs.items():
        v = (rng.standard_normal(shape) * rng.choice([1e-3, 1.0, 40.0], size=shape)).astype(np.float32)
        tw.FEEDS_T[name] = torch.from_numpy(v)
        fv = v.transpose(0, 2, 3, 1) if kinds[name] == "conv" else v
        tw.FEEDS_F[name] = jnp.asarray(fv)
    handles = tw.record_torch(tnet, tuple(layer_inputs))
    try:
        with torch.no_grad():
            tmodel(x_t)
    finally:
        for h in handles:
            h.remove()
    _, state = jax.jit(lambda v, x: fmodel.apply(v, x, mutable=["intermediates"]))(fvars, x_f)
    effective = fmodel.effective_variables(fvars)["params"]
    checked_inputs = 0
    for name in layer_inputs:
        kind = kinds[name]
        t_in, t_w = tw.SEEN_T[name]
        slots = parsed.get(name, {})
        w0 = getattr(tnet, name).weight.detach()
        e_w, e_in = _core_expected(name, slots, w0, tw.FEEDS_T[name])
        weight = "scale" if kind == "layer_norm" else "kernel"
        f_w = tw.to_torch_layout(name, "weight", effective[name][weight], kind)
        _assert_bitwise(t_w, f_w, f"{name} effective weight (torch vs flax)")
        _assert_bitwise(e_w, f_w, f"{name} effective weight (core, PyTorch layout)")
        _assert_bitwise(e_in, t_in, f"{name} cast input (core vs torch)")
        if name not in state["intermediates"]:
            # an approximation replaced the layer's computation: it never ran
            assert "approximation_function" in str(fmodel.configuration.get(name, {}).keys())
            continue
        f_in, f_w_seen = tw.seen_flax(state, name)
        f_in = tw.to_torch_layout(name, "input", f_in, kind)
        _assert_bitwise(f_w, tw.to_torch_layout(name, "weight", f_w_seen, kind), f"{name} weight seen")
        _assert_bitwise(t_in, f_in, f"{name} cast input (torch vs flax)")
        checked_inputs += 1
    assert checked_inputs >= len(layer_inputs) - 2
    tw.FEEDS_T.clear()
    tw.FEEDS_F.clear()
    with torch.no_grad():
        y_t = tmodel(x_t).numpy()
    y_f = np.asarray(jax.jit(fmodel.apply)(fvars, x_f))
    return y_t, y_f


LENET_INPUTS = {"conv1": (4, 1, 8, 8), "conv2": (4, 6, 4, 4), "fc1": (4, 64), "fc2": (4, 120), "fc3": (4, 84)}
LENET_KINDS = {"conv1": "conv", "conv2": "conv", "fc1": "linear", "fc2": "linear", "fc3": "linear"}


@pytest.mark.parametrize(
    "config, bits, tol_quanta",
    [(CONFIGS / "lenet5.yaml", 8, 2), (LENET_MIXED, 4, 4)],
    ids=["lenet5.yaml", "mixed-axes"],
)
def test_lenet_same_casts_in_both_frameworks(config, bits, tol_quanta):
    """Tolerance: ``tol_quanta`` quanta of the coarsest ``bits``-bit block format in the file,
    at the logits' largest magnitude."""
    tnet, fnet, fvars = _twins_lenet()
    x = torch.from_numpy(np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32))
    y_t, y_f = _check_layers(tnet, fnet, fvars, config, x, LENET_INPUTS, LENET_KINDS)
    tol = tol_quanta * _quanta(y_t, bits)
    assert np.max(np.abs(y_t - y_f)) <= tol


BLOCK_INPUTS = {n: (2, 8, tw.D_MODEL) for n in ("ln1", "q", "k", "v", "o", "ln2", "fc1")}
BLOCK_INPUTS["fc2"] = (2, 8, tw.FF)
BLOCK_KINDS = {n: ("layer_norm" if n.startswith("ln") else "linear") for n in BLOCK_INPUTS}


@pytest.mark.parametrize(
    "explicit, config",
    [(False, BLOCK_FUSED), (True, BLOCK_EXPLICIT), (False, CONFIGS / "approx_logics.yaml")],
    ids=["fused", "explicit", "approx_logics.yaml"],
)
def test_transformer_block_same_casts_in_both_frameworks(explicit, config):
    """Tolerance: 4 quanta of BFP[6|8] (the coarsest activation format) at the output's magnitude."""
    tnet, fnet, fvars = _twins_block(explicit)
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 8, tw.D_MODEL)).astype(np.float32))
    y_t, y_f = _check_layers(tnet, fnet, fvars, config, x, BLOCK_INPUTS, BLOCK_KINDS)
    assert np.max(np.abs(y_t - y_f)) <= 4 * _quanta(y_t, 6)
