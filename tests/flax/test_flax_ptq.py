"""Post-training quantization in the Flax frontend (``dmxnum.flax.calibrate`` / ``gptq``).

Static scales: the configured model equals a hand-written Flax twin that casts
with scales computed by hand with ``dmxnum.ptq.observer`` (PyTorch layout), bit
for bit, eagerly and under ``jax.jit``. GPTQ: the stored kernels are on the grid
and equal ``dmxnum.ptq.gptq`` on Hessians computed by hand, module after module.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dmxnum
import dmxnum.flax as dfx
from dmxnum import ptq
from dmxnum.errors import ConfigError, NotCalibratedError

XP8 = "XP[8,0](CSN)"
NAMES = ("Dense_0", "Dense_1", "Dense_2")


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(64)(x))
        x = nn.relu(nn.Dense(64)(x))
        return nn.Dense(8)(x)


def _data(n: int, seed: int) -> jnp.ndarray:
    """Correlated inputs (a low-rank signal plus noise): where GPTQ beats rounding."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(99).standard_normal((6, 32))
    x = rng.standard_normal((n, 6)) @ mix + 0.1 * rng.standard_normal((n, 32))
    return jnp.asarray(x.astype(np.float32))


X_CAL = [_data(128, 1), _data(128, 2)]
X_TEST = _data(128, 3)  # the calibration shape: shares compiled casts


@pytest.fixture(scope="module")
def float_vars():
    return MLP().init(jax.random.key(0), X_CAL[0])


def _model(float_vars, slots):
    model = dfx.Model(MLP())
    model.init(jax.random.key(0), X_CAL[0])
    return model.transform({n: dict(slots) for n in NAMES})


def _dense(x, kernel, bias):
    """Flax's Dense on explicit parameters (the twin's product)."""
    return nn.Dense(kernel.shape[1]).apply({"params": {"kernel": kernel, "bias": bias}}, x)


def _twin(params, x, kernels=None, wfmt=None, s_w=None, ifmt=None, s_in=None, tap=None):
    """The MLP by hand: kernels replaced by ``kernels[i]`` (if given), then cast to
    ``wfmt`` in PyTorch layout (with scale ``s_w[i]``, stored as ``(out,)``, if given); inputs cast to ``ifmt`` with scale
    ``s_in[i]``; ``tap(i, x)`` sees each layer's input as the layer computes with it."""
    for i, n in enumerate(NAMES):
        k, b = params[n]["kernel"], params[n]["bias"]
        if kernels is not None:
            k = kernels[i]
        if wfmt is not None:  # cast in PyTorch layout (out, in), where the format's block axis is written
            k = dmxnum.cast(k.T, wfmt, scale=None if s_w is None else jnp.reshape(s_w[i], (-1, 1))).T
        if ifmt is not None:
            x = dmxnum.cast(x, ifmt, scale=s_in[i])
        if tap is not None:
            tap(i, x)
        x = _dense(x, k, b)
        if i < 2:
            x = jax.nn.relu(x)
    return x


# ---------------------------------------------------------------------- static scales
STATIC = {"weight_format": XP8, "weight_scale": "MINMAX{0}", "input_format": XP8, "input_scale": "MINMAX"}


@pytest.fixture(scope="module")
def calibrated(float_vars):
    model = _model(float_vars, STATIC)
    return model, dfx.calibrate(model, float_vars, X_CAL)


def test_forward_before_calibration_raises(float_vars):
    model = _model(float_vars, STATIC)
    for run in (model.apply, jax.jit(model.apply)):
        with pytest.raises(NotCalibratedError, match=r"Dense_0: weight_scale .*dmxnum\.flax\.calibrate"):
            run(float_vars, X_CAL[0])
    only_input = _model(float_vars, {"input_format": XP8, "input_scale": "MINMAX"})
    with pytest.raises(NotCalibratedError, match=r"Dense_0: input_scale = 'MINMAX'.*calibrate\(model, variables"):
        only_input.apply(float_vars, X_CAL[0])


def test_calibrated_model_equals_hand_twin(calibrated, float_vars):
    model, v = calibrated
    params = float_vars["params"]
    assert "dmx_ptq" not in float_vars  # pure: the variables given are unchanged
    # weight scales: the PyTorch-layout observer on the transposed kernel, per output channel
    s_w = []
    for n in NAMES:
        s_t = ptq.observer("minmax", XP8, axis=0).update(np.asarray(params[n]["kernel"]).T).scale()
        assert s_t.shape == (params[n]["kernel"].shape[1], 1)
        stored = np.asarray(v["dmx_ptq"][n]["weight_scale"])
        assert stored.shape == (s_t.shape[0],)  # Flax layout: the kernel's last axis, leading ones dropped
        np.testing.assert_array_equal(stored, s_t[:, 0])
        s_w.append(jnp.asarray(stored))
    # input scales: per tensor, on the float inputs of the calibration run (weights cast, inputs not)
    obs = [ptq.observer("minmax", XP8) for _ in NAMES]
    for x in X_CAL:
        _twin(params, x, wfmt=XP8, s_w=s_w, tap=lambda i, t: obs[i].update(np.asarray(t)))
    s_in = [o.scale() for o in obs]
    for n, s in zip(NAMES, s_in):
        assert s.shape == () and np.asarray(v["dmx_ptq"][n]["input_scale"]) == s
    want = _twin(params, X_TEST, wfmt=XP8, s_w=s_w, ifmt=XP8, s_in=[jnp.asarray(s) for s in s_in])
    got = model.apply(v, X_TEST)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    np.testing.assert_array_equal(np.asarray(jax.jit(model.apply)(v, X_TEST)), np.asarray(got))
    report = model.dmx_report()
    assert report.missing == []
    assert set(report["Dense_1"].applied) == {"weight_format", "weight_scale", "input_format", "input_scale"}
    assert dfx.ptq_state(model, v) == {n: ("input_scale", "weight_scale") for n in NAMES}
    assert model.dmx_report(v, X_TEST)["Dense_0"].ptq == ("input_scale", "weight_scale")


def test_calibration_is_layout_exact_for_conv():
    """Conv: per-channel input (NCHW axis 1) and weight (OIHW axis 0) scales equal the
    PyTorch-layout observers' on the transposed tensors."""

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Conv(4, (3, 3), name="conv")(x)

    rng = np.random.default_rng(5)
    xs = [jnp.asarray(rng.standard_normal((2, 6, 6, 3)).astype(np.float32)) for _ in range(2)]
    model = dfx.Model(Net())
    v = model.init(jax.random.key(1), xs[0])
    model.transform({"conv": {"weight_format": XP8, "weight_scale": "PERCENTILE(99){0}",
                              "input_format": XP8, "input_scale": "MINMAX{1}"}})
    cal = dfx.calibrate(model, v, xs)
    kernel = np.asarray(v["params"]["conv"]["kernel"])  # HWIO
    s_w = ptq.observer("percentile", XP8, axis=0, p=99).update(kernel.transpose(3, 2, 0, 1)).scale()
    np.testing.assert_array_equal(np.asarray(cal["dmx_ptq"]["conv"]["weight_scale"]), s_w.reshape(-1))
    obs = ptq.observer("minmax", XP8, axis=1)
    for x in xs:
        obs.update(np.asarray(x).transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(np.asarray(cal["dmx_ptq"]["conv"]["input_scale"]), obs.scale().reshape(-1))
    got = model.apply(cal, xs[0])
    k = dmxnum.cast(jnp.asarray(kernel), XP8, scale=cal["dmx_ptq"]["conv"]["weight_scale"])
    xin = dmxnum.cast(xs[0], XP8, scale=cal["dmx_ptq"]["conv"]["input_scale"])
    want = nn.Conv(4, (3, 3)).apply({"params": {"kernel": k, "bias": v["params"]["conv"]["bias"]}}, xin)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


# ---------------------------------------------------------------------- GPTQ
def _hand_gptq(params, fmt, s_w=None):
    """Sequential GPTQ by hand: each layer's H from the inputs computed with the
    layers before it already quantized; the core on the transposed kernel."""
    kernels = [params[n]["kernel"] for n in NAMES]
    for i in range(len(NAMES)):
        h, rows = 0.0, 0
        for x in X_CAL:
            seen = {}
            _twin(params, x, kernels=kernels, wfmt=fmt, s_w=s_w,
                  tap=lambda j, t: seen.setdefault(j, np.asarray(t, np.float64)))
            h = h + seen[i].T @ seen[i]
            rows += seen[i].shape[0]
        scale = None if s_w is None else np.asarray(s_w[i]).reshape(-1, 1)
        r = ptq.gptq(np.asarray(params[NAMES[i]]["kernel"]).T, h * (2.0 / rows), fmt, scale=scale)
        kernels[i] = jnp.asarray(np.asarray(r.Wq).T)
    return kernels


def _mse(a, b):
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


def test_gptq_mxfp4_matches_core_and_beats_rounding(float_vars):
    fmt = "MXFP4_E2M1"
    model = _model(float_vars, {"weight_format": fmt})
    stats = {}
    v = dfx.gptq(model, float_vars, X_CAL, stats=stats)
    assert "dmx_ptq" not in float_vars
    assert set(stats) == set(NAMES) and all(loss <= rtn for loss, rtn, _ in stats.values())
    kernels = [v["dmx_ptq"][n]["kernel"] for n in NAMES]
    # on the grid: apply's weight cast maps the stored kernel to itself
    eff = model.effective_variables(v)["params"]
    for n, k in zip(NAMES, kernels):
        np.testing.assert_array_equal(np.asarray(eff[n]["kernel"]), np.asarray(k))
    # equal to the core on Hessians computed by hand, module after module
    for k, want in zip(kernels, _hand_gptq(float_vars["params"], fmt)):
        np.testing.assert_array_equal(np.asarray(k), np.asarray(want))
    # apply uses it: the output is the plain network's with those kernels
    got = jax.jit(model.apply)(v, X_TEST)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(_twin(float_vars["params"], X_TEST, kernels=kernels)))
    ref = MLP().apply(float_vars, X_TEST)
    rtn = model.apply(float_vars, X_TEST)
    assert _mse(got, ref) < _mse(rtn, ref)
    assert dfx.ptq_state(model, v) == {n: ("gptq",) for n in NAMES}


def test_gptq_static_scale_xp4_mse(float_vars):
    fmt = "XP[4,0](CSN)"
    model = _model(float_vars, {"weight_format": fmt, "weight_scale": "MSE{0}"})
    with pytest.raises(NotCalibratedError, match="calibrate"):
        dfx.gptq(model, float_vars, X_CAL)
    cal = dfx.calibrate(model, float_vars, X_CAL)
    v = dfx.gptq(model, cal, X_CAL)
    s_w = [cal["dmx_ptq"][n]["weight_scale"] for n in NAMES]
    kernels = [v["dmx_ptq"][n]["kernel"] for n in NAMES]
    for k, s in zip(kernels, s_w):
        np.testing.assert_array_equal(np.asarray(dmxnum.cast(k, fmt, scale=s)), np.asarray(k))
    for k, want in zip(kernels, _hand_gptq(float_vars["params"], fmt, s_w=s_w)):
        np.testing.assert_array_equal(np.asarray(k), np.asarray(want))
    got = model.apply(v, X_TEST)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(_twin(float_vars["params"], X_TEST, kernels=kernels)))
    ref = MLP().apply(float_vars, X_TEST)
    assert _mse(got, ref) < _mse(model.apply(cal, X_TEST), ref)


def test_gptq_module_selection_and_errors(float_vars):
    model = _model(float_vars, {"weight_format": "XP[6,0](CSN)"})
    v = dfx.gptq(model, float_vars, X_CAL[:1], modules=["Dense.1"])  # PyTorch spelling accepted
    assert set(v["dmx_ptq"]) == {"Dense_1"}
    v = dfx.gptq(model, float_vars, X_CAL[:1], modules=r"_[02]$")
    assert set(v["dmx_ptq"]) == {"Dense_0", "Dense_2"}
    with pytest.raises(ConfigError, match="cannot quantize module 'nope'"):
        dfx.gptq(model, float_vars, X_CAL, modules=["nope"])
    sparse = _model(float_vars, {"weight_format": "XP[6,0](CSN)", "weight_sparseness": "BTOPK{2:4,-1}(U)"})
    with pytest.raises(ConfigError, match="Dense_0: weight_sparseness .*refill"):
        dfx.gptq(sparse, float_vars, X_CAL)


def test_gptq_conv_matches_core_on_patches():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Conv(6, (3, 3), strides=(2, 1), padding="SAME", name="conv")(x)

    rng = np.random.default_rng(7)
    mix = rng.standard_normal((2, 8))
    xs = [jnp.asarray((rng.standard_normal((4, 7, 7, 2)) @ mix + 0.05 * rng.standard_normal((4, 7, 7, 8)))
                      .astype(np.float32)) for _ in range(2)]
    fmt = "MXFP4[E2M1]{8,1}"  # blocks along the input channels of the OIHW weight
    model = dfx.Model(Net())
    v = model.init(jax.random.key(2), xs[0])
    model.transform({"conv": {"weight_format": fmt}})
    out = dfx.gptq(model, v, xs)
    kq = out["dmx_ptq"]["conv"]["kernel"]
    eff = model.effective_variables(out)["params"]["conv"]["kernel"]
    np.testing.assert_array_equal(np.asarray(eff), np.asarray(kq))  # on the grid
    # H by hand: channel-major patches, as PyTorch's unfold orders them
    h, rows = 0.0, 0
    for x in xs:
        p = jax.lax.conv_general_dilated_patches(
            x, (3, 3), (2, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=jax.lax.Precision.HIGHEST,
        )
        p = np.asarray(p, np.float64).reshape(-1, p.shape[-1])
        h, rows = h + p.T @ p, rows + p.shape[0]
    w_t = np.asarray(v["params"]["conv"]["kernel"]).transpose(3, 2, 0, 1)  # HWIO -> OIHW
    want = ptq.gptq(w_t, h * (2.0 / rows), fmt)
    np.testing.assert_array_equal(np.asarray(kq), np.asarray(want.Wq).transpose(2, 3, 1, 0))
    # the patches really are the conv's columns: patches @ W^T is the conv
    y = np.asarray(p.reshape(4, 4, 7, -1) @ w_t.reshape(6, -1).T.astype(np.float64), np.float32)
    ref = Net().apply({"params": {"conv": {"kernel": v["params"]["conv"]["kernel"],
                                            "bias": jnp.zeros(6)}}}, xs[-1])
    np.testing.assert_allclose(y, np.asarray(ref), rtol=1e-4, atol=1e-4)
