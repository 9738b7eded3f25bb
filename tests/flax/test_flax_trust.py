"""dmxnum.flax never silently skips (issue 12): re-jit after transform, a
configuration given before the first init, rules, shape errors at transform,
the slot audit, ``dmx_report`` and mltools configuration files.

Models: the Flax LeNet-5 twin of ``flax_twins`` (modules conv1, relu1, mp1,
conv2, relu2, mp2, fc1, fc2, fc3; NHWC 8x8 input) and small modules below.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import flax.linen as nn
import flax_twins as tw
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dmxnum
import dmxnum.flax
from dmxnum.config import Report
from dmxnum.errors import ConfigError, ConfigWarning
from dmxnum.flax import ConfigRule, SlotNotAppliedWarning

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
LENET5 = CONFIGS / "lenet5.yaml"
MLTOOLS = CONFIGS / "mltools_lenet5.yaml"
KEY = jax.random.key(0)
X4 = jax.random.uniform(jax.random.key(1), (4, 8, 8, 1))
X6 = jax.random.uniform(jax.random.key(2), (6, 8, 8, 1))
BFP4 = "BFP[4|8]{8,-1}(SN)"
# light configurations (quick to compile) for the jit tests
OLD = {"fc1": {"weight_format": "FP16", "input_format": "FP16"}}
NEW = {"fc1": {"weight_format": "FP[1|4|3,7](_N)"}, "fc2": {"output_format": "BF16"}}
WEIGHTED = ("conv1", "conv2", "fc1", "fc2", "fc3")
FP16_FN = "FP[1|5|10,15](FN)"


def _bits(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def _same(a, b) -> bool:
    return np.array_equal(_bits(a), _bits(b))


def _lenet(config=None, x=X4):
    """A Flax LeNet model, initialised (same variables for every call), then transformed."""
    model = dmxnum.flax.Model(tw.FlaxLeNet())
    variables = model.init(KEY, x)
    if config is not None:
        model.transform(config)
    return model, variables


# ----------------------------------------------------------------------------- 1. jit after transform
def test_jit_after_transform_sees_the_new_configuration():
    model, v = _lenet(OLD)
    f = jax.jit(model.apply)
    y_old = f(v, X4)
    model.transform(NEW)
    y_new = jax.jit(model.apply)(v, X4)  # `f` is alive: its trace must not be reused
    expected = jax.jit(_lenet(OLD)[0].transform(NEW).apply)(v, X4)
    assert _same(y_new, expected)
    assert not _same(y_new, y_old)
    assert _same(jax.jit(model.__call__)(v, X4), expected)
    assert _same(model(v, X4), model.apply(v, X4))


def test_a_jitted_function_keeps_its_configuration_for_new_shapes():
    model, v = _lenet(OLD)
    f = jax.jit(model.apply)
    f(v, X4)
    model.transform(NEW)
    y6 = f(v, X6)  # a retrace for a new batch size: still OLD alone
    assert _same(y6, jax.jit(_lenet(OLD)[0].apply)(v, X6))
    assert not _same(y6, jax.jit(model.apply)(v, X6))
    assert model.apply == model.apply and hash(model.apply) == hash(model.apply)


# ----------------------------------------------------------------------------- 2. config before init
def test_transform_before_init_is_pending_and_equals_transform_after_init():
    early = dmxnum.flax.Model(tw.FlaxLeNet()).transform(LENET5)
    with pytest.raises(ConfigError, match=r"pending.*model\.init"):
        early.configuration
    v = early.init(KEY, X4)
    native = tw.FlaxLeNet().init(KEY, X4)  # init returns the plain module's variables
    assert all(_same(a, b) for a, b in zip(jax.tree_util.tree_leaves(v), jax.tree_util.tree_leaves(native)))
    late, _ = _lenet(LENET5)
    assert early.configuration == late.configuration
    y_late = late.apply(v, X4)
    assert _same(early.apply(v, X4), y_late)
    # pending until the first apply (no init at all, eager and under jit): weights *and*
    # activations cast, as when transformed after init
    lazy = dmxnum.flax.Model(tw.FlaxLeNet()).transform(LENET5)
    assert _same(lazy.apply(v, X4), y_late)
    eff = lazy.effective_variables(v)["params"]
    assert not _same(eff["fc1"]["kernel"], v["params"]["fc1"]["kernel"])
    lazy_jit = dmxnum.flax.Model(tw.FlaxLeNet()).transform(OLD)
    assert _same(jax.jit(lazy_jit.apply)(v, X4), jax.jit(_lenet(OLD)[0].apply)(v, X4))


def test_invalid_pending_configuration_raises_at_init_and_is_discarded():
    with pytest.raises(ConfigError, match=r"not a valid format"):  # malformed: at once
        dmxnum.flax.Model(tw.FlaxLeNet()).transform({"fc1": {"input_format": "BFP[99|8]{4,-1}(SN)"}})
    model = dmxnum.flax.Model(tw.FlaxLeNet()).transform(LENET5, {"name_re": "fc", "config": {"output_format": "FP16"}})
    model.transform({"fc4": {"input_format": "FP16"}})
    with pytest.raises(ConfigError, match=r"unknown module name 'fc4'.*'fc1'.*discarded"):
        model.init(KEY, X4)
    assert model.configuration == {}  # nothing of it applied in part
    v = tw.FlaxLeNet().init(KEY, X4)
    assert _same(model.apply(v, X4), tw.FlaxLeNet().apply(v, X4))


# ----------------------------------------------------------------------------- 3. rules
def test_a_rule_alone_and_rule_errors():
    model, _ = _lenet()
    model.transform(ConfigRule(module_types="Linear", config={"weight_format": BFP4}))
    assert list(model.configuration) == ["fc1", "fc2", "fc3"]
    before = model.configuration
    with pytest.raises(ConfigError, match=r"'Linaer'.*'Linear'"):
        model.transform(ConfigRule(module_types="Linaer", config={"weight_format": BFP4}))
    assert model.configuration == before
    with pytest.warns(ConfigWarning, match=r"selects no module"):
        model.transform(ConfigRule(name_re=r"^attn", config={"output_format": "FP16"}))
    assert model.configuration == before
    pending = dmxnum.flax.Model(tw.FlaxLeNet()).transform(ConfigRule(module_types="conv", config={"input_format": "FP16"}))
    pending.init(KEY, X4)
    assert list(pending.configuration) == ["conv1", "conv2"]


# ----------------------------------------------------------------------------- 4. shape errors
@pytest.mark.parametrize(
    "slots, match",
    [
        ({"fc1": {"weight_format": "BFP[8|8]{64,2}(SN)"}},
         r"fc1: weight_format = 'BFP\[8\|8\]\{64,2\}\(SN\)'.*\(120, 64\).*block axis 2 does not exist"),
        ({"fc3": {"weight_sparseness": "BTOPK{2:4,0}(U)"}},
         r"fc3: weight_sparseness.*group size M = 4 does not divide axis 0 of length 10"),
        ({"conv1": {"weight_format": "BFP[8|8]{8,-5}(SN)"}},
         r"conv1: weight_format.*PyTorch layout \(6, 1, 3, 3\).*axis -5 does not exist"),
        ({"fc2": {"bias_format": "BFP[8|8]{8,1}(SN)"}}, r"fc2: bias_format.*bias 'bias'.*axis 1 does not exist"),
    ],
    ids=["weight-axis", "n:m-group", "conv-axis", "bias-axis"],
)
def test_parameter_slots_that_do_not_fit_fail_at_transform(slots, match):
    model, _ = _lenet(LENET5)
    before = model.configuration
    with pytest.raises(ConfigError, match=match):
        model.transform(slots)
    assert model.configuration == before
    pending = dmxnum.flax.Model(tw.FlaxLeNet()).transform(slots)
    with pytest.raises(ConfigError, match=match):
        pending.init(KEY, X4)


def test_fitting_n_m_groups_pass_and_activation_errors_name_module_and_slot():
    model, v = _lenet({"fc3": {"weight_sparseness": "BTOPK{2:4,-1}(U)"}})  # in = 84 = 21 * 4
    model.apply(v, X4)
    model.transform({"fc1": {"input_format": "BFP[8|8]{8,2}(SN)"}})  # the input is (N, 64)
    with pytest.raises(ConfigError, match=r"fc1: input_format = 'BFP\[8\|8\]\{8,2\}\(SN\)'.*\(4, 64\).*axis 2"):
        model.apply(v, X4)


# ----------------------------------------------------------------------------- 5. slot audit
class Branchy(nn.Module):
    """``b`` runs only when asked; ``ids`` is an integer input to a plain module."""

    @nn.compact
    def __call__(self, x, use_b=False):
        y = nn.Dense(4, name="a")(x)
        if use_b:
            y = y + nn.Dense(4, name="b")(x)
        return y + Lookup(name="lookup")(jnp.zeros(x.shape[:1], jnp.int32))


class Lookup(nn.Module):
    @nn.compact
    def __call__(self, ids):
        return nn.Embed(3, 4, name="emb")(ids)


def test_slots_that_did_not_run_warn_once_per_configuration():
    model = dmxnum.flax.Model(Branchy())
    x = jnp.ones((2, 3))
    v = model.init(KEY, x, use_b=True)
    model.transform({
        "a": {"input_format": "FP16"},
        "b": {"input_format": "FP16", "weight_format": "FP16", "output_format": "SAME"},
        "lookup": {"input_format": "FP16"},
    })
    with pytest.warns(SlotNotAppliedWarning) as got:
        jax.jit(model.apply)(v, x)
    messages = sorted(str(w.message) for w in got if w.category is SlotNotAppliedWarning)
    assert len(messages) == 3
    assert messages[0].startswith("b: input_format = 'FP[1|5|10,15](_NI)' is configured but was not applied")
    assert "(the module was not called)" in messages[0]
    assert messages[1].startswith("b: weight_format")
    assert messages[2].startswith("lookup: input_format") and "not a floating array (int32)" in messages[2]
    assert model.dmx_report().missing == [("b", "weight_format"), ("b", "input_format"), ("lookup", "input_format")]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlotNotAppliedWarning)
        model.apply(v, x)  # once per slot
        model.apply(v, x, use_b=True)
    assert model.dmx_report()["b"].applied == ("weight_format", "input_format")
    model.transform({"a": {"output_format": "BF16"}})  # a new configuration: told again
    with pytest.warns(SlotNotAppliedWarning) as got:
        model.apply(v, x)
    assert sorted(str(w.message).split(" =")[0] for w in got) == [
        "b: input_format", "b: weight_format", "lookup: input_format",
    ]


@pytest.mark.parametrize("config", [LENET5, MLTOOLS], ids=["lenet5.yaml", "mltools_lenet5.yaml"])
def test_fully_applied_files_warn_nothing(config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        model, v = _lenet(config)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlotNotAppliedWarning)
        model.apply(v, X4)
        model.apply(v, X6)
    report = model.dmx_report()
    assert report.missing == [] and report.forwards == 2
    assert sum(len(r.applied) for r in report) == (10 if config == LENET5 else 17)


# ----------------------------------------------------------------------------- 6. dmx_report
def test_report_rows_and_sqnr_on_lenet():
    model, v = _lenet(LENET5)
    report = model.dmx_report(v, X4, reference=True)
    assert isinstance(report, Report)
    assert [r.name for r in report] == ["conv1", "relu1", "mp1", "conv2", "relu2", "mp2", "fc1", "fc2", "fc3"]
    for row in report:
        if row.name in WEIGHTED:
            assert row.configured == row.applied == ("weight_format", "input_format")
            assert row.bits == 8.125  # 8-bit mantissas + an 8-bit exponent per 64
            assert row.instance == ("Conv2d" if row.name.startswith("conv") else "Linear")
        else:
            assert row.configured == () and row.bits is None
        assert len(row.sqnr_db) == 1 and 25.0 < row.sqnr_db[0] < 60.0
    text = repr(model)
    assert text.startswith("dmxnum.flax.Model(FlaxLeNet, 9 configured)\ndmx report: 9 configured, 10/10 slots")
    assert "fc3" in str(model) and "SQNR dB" in text


def test_report_sqnr_is_inf_upstream_of_every_cast_and_per_call():
    model, v = _lenet({"conv1": {"output_format": "SAME"}, "fc3": {"input_format": BFP4}})
    report = model.dmx_report(v, X4, reference=True)
    assert report["conv1"].sqnr_db == (math.inf,) and report["conv1"].configured == ()
    assert math.isfinite(report["fc3"].sqnr_db[0]) and report["fc3"].applied == ("input_format",)

    class Twice(nn.Module):
        def setup(self):
            self.fc = nn.Dense(8)

        def __call__(self, x):
            return nn.softmax(self.fc(nn.relu(self.fc(x))))

    twice = dmxnum.flax.Model(Twice())
    x = jax.random.normal(KEY, (2, 8))
    tv = twice.init(KEY, x)
    twice.transform({"fc": {"output_format": BFP4}, "softmax_0": {"output_format": "FP[1|4|3,7](_N)"}})
    report = twice.dmx_report(tv, x, reference=True)
    first, second = report["fc"].sqnr_db
    assert math.isfinite(first) and math.isfinite(second) and first != second
    assert len(report["softmax_0"].sqnr_db) == 1 and report["softmax_0"].instance == "softmax"
    with pytest.raises(ValueError, match="needs the variables"):
        twice.dmx_report(reference=True)


# ----------------------------------------------------------------------------- 7. mltools files
def _explicit_mltools() -> dict:
    """``mltools_lenet5.yaml`` written out: lenet5.yaml's BFP16 plus IEEE float16 (FN) outputs."""
    bfp = {n: ("BFP[8|8]{64,1}(SN)" if n.startswith("conv") else "BFP[8|8]{64,-1}(SN)") for n in WEIGHTED}
    config = {n: {"weight_format": f, "input_format": f, "output_format": FP16_FN} for n, f in bfp.items()}
    config.update({n: {"output_format": FP16_FN} for n in ("mp1", "mp2")})
    return config


def test_mltools_file_on_flax_equals_the_explicit_casts():
    model = dmxnum.flax.Model(tw.FlaxLeNet())
    v = model.init(KEY, X4)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        model.transform(MLTOOLS)
    config_warnings = [w for w in got if issubclass(w.category, ConfigWarning)]
    assert len(config_warnings) == 1 and "state_dict_url" in str(config_warnings[0].message)
    explicit, _ = _lenet(_explicit_mltools())
    y, state = model.apply(v, X4, capture_intermediates=True, mutable=["intermediates"])
    assert _same(y, explicit.apply(v, X4))
    inter = state["intermediates"]
    for name in ("conv1", "mp1", "conv2", "mp2", "fc1", "fc2", "fc3"):
        out = inter[name]["__call__"][-1]  # RecConv/RecDense: the outer call, after the cast
        assert _same(out, dmxnum.cast(out, FP16_FN)), f"{name} output is on the float16 grid"
    eff = model.effective_variables(v)["params"]
    w = np.asarray(v["params"]["conv2"]["kernel"]).transpose(3, 2, 0, 1)  # HWIO -> OIHW
    expected = np.asarray(dmxnum.cast(w, "BFP[8|8]{64,1}(SN)")).transpose(2, 3, 1, 0)
    assert _same(eff["conv2"]["kernel"], expected)


def test_mltools_file_matches_pytorch():
    import test_cross_framework as xf
    import torch

    tnet, fnet, fvars = xf._twins_lenet()
    x = torch.from_numpy(np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        y_t, y_f = xf._check_layers(tnet, fnet, fvars, MLTOOLS, x, xf.LENET_INPUTS, xf.LENET_KINDS)
    assert np.max(np.abs(y_t - y_f)) <= 2 * xf._quanta(y_t, 8)
