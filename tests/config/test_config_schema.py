"""dmxnum.config: parsing, validation, rules and the YAML round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

import dmxnum
from dmxnum.config import (
    KIND_SLOTS,
    SLOTS,
    ConfigRule,
    apply_rules,
    parse_config,
    resolve,
    to_yaml,
    validate,
)
from dmxnum.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
BFP16 = "BFP[8|8]{64,-1}(SN)"

# a small model description: name -> (class name, kind)
MODULES = {
    "conv1": ("Conv2d", "conv"),
    "fc1": ("Linear", "linear"),
    "fc2": ("Linear", "linear"),
    "head.proj": ("Dense", "linear"),
    "ln": ("LayerNorm", "layer_norm"),
    "act": ("ReLU", "relu"),
    "block.softmax_0": ("softmax", "softmax"),
}


def test_slots_order_and_kinds():
    assert SLOTS == (
        "instance", "weight_sparseness", "weight_format", "weight_scale", "input_format",
        "input_scale", "multiplier_format", "residual_format", "approximation_function",
        "accum_format", "bias_format", "output_format",
    )
    for kind, slots in KIND_SLOTS.items():
        assert "instance" in slots and slots <= set(SLOTS), kind
    assert "weight_format" in KIND_SLOTS["linear"] and "accum_format" in KIND_SLOTS["conv"]
    assert "multiplier_format" in KIND_SLOTS["matmul"]
    assert "residual_format" in KIND_SLOTS["add"]
    assert KIND_SLOTS["module"] == {"instance", "input_format", "output_format"}


def test_parse_mapping_text_and_path_agree(tmp_path):
    text = f"fc1:\n  output_format: SAME\n  weight_format: {BFP16}\n  instance: Linear\n"
    path = tmp_path / "c.yaml"
    path.write_text(text)
    a = parse_config(text)
    assert a == parse_config(str(path)) == parse_config(path)
    assert a == parse_config({"fc1": {"instance": "Linear", "weight_format": BFP16, "output_format": "SAME"}})
    # slots come back in SLOTS order, values parsed
    assert list(a["fc1"]) == ["instance", "weight_format", "output_format"]
    assert a["fc1"]["weight_format"] == dmxnum.parse(BFP16)
    assert a["fc1"]["instance"] == "Linear"


def test_parsed_value_types():
    c = parse_config({"fc1": {"weight_sparseness": "BTOPK{2:4,-1}(U)", "accum_format": "FP16"}})
    assert c["fc1"]["weight_sparseness"] == dmxnum.parse_sparseness("BTOPK{2:4,-1}(U)")
    assert c["fc1"]["accum_format"] == dmxnum.parse("FP16")
    # an already parsed value is accepted
    fmt = dmxnum.parse(BFP16)
    assert parse_config({"fc1": {"input_format": fmt}})["fc1"]["input_format"] == fmt


def test_empty_configs():
    assert parse_config("") == {}
    assert parse_config({}) == {}
    assert parse_config({"fc1": None}) == {"fc1": {}}


@pytest.mark.parametrize(
    "config, fragments",
    [
        ({"fc1": {"weight_fromat": BFP16}}, ["fc1", "'weight_fromat'", "'weight_format'"]),
        ({"fc1": {"weight_format": "BFP[8|8]{64,-1}(QN)"}}, ["fc1", "weight_format", "BFP[8|8]{64,-1}(QN)"]),
        ({"fc1": {"weight_sparseness": "BTOPK{5:4,-1}(U)"}}, ["fc1", "weight_sparseness"]),
        ({"fc1": {"weight_sparseness": "BERN"}}, ["fc1", "BERN", "scores", "sparsify"]),
        ({"fc1": {"weight_format": None}}, ["fc1", "weight_format", "no value"]),
        ({"fc1": {"instance": 3}}, ["fc1", "instance"]),
        ({"fc1": [1, 2]}, ["fc1", "mapping"]),
        ("- a\n- b\n", ["mapping"]),
        ("fc1: {a: [}\n", ["not valid YAML"]),
        ({"rules": [{"module_type": ["Linear"], "config": {}}]}, ["'module_type'", "'module_types'"]),
        ({"rules": [{"name_re": "(", "config": {}}]}, ["name_re", "'('"]),
        ({"rules": [{"config": {"input_fmt": "SAME"}}]}, ["input_fmt", "input_format"]),
    ],
)
def test_parse_errors_name_key_and_suggestion(config, fragments):
    with pytest.raises(ConfigError) as info:
        parse_config(config)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        parse_config(str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="mapping, YAML text or a path"):
        parse_config(42)


@pytest.mark.parametrize(
    "config, fragments",
    [
        ({"fc3": {"input_format": "SAME"}}, ["'fc3'", "'fc1'", "'fc2'"]),
        ({"act": {"weight_format": BFP16}}, ["'act'", "ReLU", "'weight_format'", "input_format, output_format"]),
        ({"fc1": {"instance": "Conv2d"}}, ["'Conv2d'", "'fc1'", "Linear"]),
        ({"ln": {"approximation_function": "SOFTMAX(base2,float16)"}}, ["SOFTMAX(base2,float16)", "LAYERNORM"]),
        ({"block.softmax_0": {"approximation_function": "GELU(poly2,float16)"}}, ["GELU", "SOFTMAX"]),
        (
            {"rules": [{"name_re": "fc|act", "config": {"weight_format": BFP16}}]},
            ["'act'", "weight_format", "narrow the rule"],
        ),
    ],
)
def test_validate_errors(config, fragments):
    with pytest.raises(ConfigError) as info:
        validate(parse_config(config), MODULES)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_instance_equivalents():
    # Flax names are accepted for PyTorch modules and vice versa
    validate(parse_config({"fc1": {"instance": "Dense"}, "head.proj": {"instance": "Linear"}}), MODULES)
    validate(parse_config({"conv1": {"instance": "Conv"}}), MODULES)
    validate(parse_config({"block.softmax_0": {"instance": "softmax", "approximation_function": "NONE"}}), MODULES)


def test_rules_by_type_kind_and_regex_in_order():
    s = dmxnum.parse("FP16")
    bfp = dmxnum.parse(BFP16)
    config = parse_config({"fc1": {"output_format": "FP16"}})
    rules = [
        ConfigRule(module_types="Linear", config={"weight_format": BFP16}),  # Linear and Dense
        ConfigRule(module_types=("conv",), config={"input_format": "FP16"}),  # a kind
        ConfigRule(name_re=r"^fc\d$", config={"output_format": "SAME"}),  # overrides fc1's FP16
        ConfigRule(module_types=["relu"], name_re="nothing-matches", config={"input_format": "FP16"}),
    ]
    merged = apply_rules(config, rules, MODULES)
    assert merged == {
        "fc1": {"weight_format": bfp, "output_format": dmxnum.parse("SAME")},
        "fc2": {"weight_format": bfp, "output_format": dmxnum.parse("SAME")},
        "head.proj": {"weight_format": bfp},
        "conv1": {"input_format": s},
    }
    # slot order inside a module is SLOTS order whatever the merge order
    assert list(merged["fc1"]) == ["weight_format", "output_format"]


def test_rule_class_and_dense_names_select_each_other():
    r = ConfigRule(module_types="Dense", config={"input_format": "SAME"})
    assert r.select(MODULES) == ["fc1", "fc2", "head.proj"]
    assert ConfigRule(module_types="LayerNorm").select(MODULES) == ["ln"]
    assert ConfigRule().select(MODULES) == list(MODULES)


def test_in_file_rules_apply_where_they_stand():
    text = f"""
fc1:
  input_format: FP16
rules:
  - module_types: [linear]
    config:
      input_format: {BFP16}
fc2:
  input_format: FP16
"""
    merged = resolve(text, (), MODULES)
    assert merged["fc1"]["input_format"] == dmxnum.parse(BFP16)  # the later rule wins
    assert merged["fc2"]["input_format"] == dmxnum.parse("FP16")  # the later entry wins
    assert merged["head.proj"]["input_format"] == dmxnum.parse(BFP16)


def test_base_configuration_is_extended_not_mutated():
    base = {"fc1": {"input_format": dmxnum.parse("FP16")}}
    merged = resolve({"fc1": {"output_format": "SAME"}}, (), MODULES, base)
    assert base == {"fc1": {"input_format": dmxnum.parse("FP16")}}
    assert merged == {"fc1": {"input_format": dmxnum.parse("FP16"), "output_format": dmxnum.parse("SAME")}}


def test_failed_apply_rules_changes_nothing():
    config = parse_config({"fc1": {"input_format": "SAME"}})
    before = dict(config)
    with pytest.raises(ConfigError):
        apply_rules(config, [ConfigRule(module_types="relu", config={"weight_format": BFP16})], MODULES)
    assert config == before


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_example_files_round_trip(path):
    config = parse_config(path)
    assert config
    text = to_yaml(config)
    assert parse_config(text) == config
    assert to_yaml(parse_config(text)) == text


def test_to_yaml_is_canonical():
    config = parse_config({"fc1": {"weight_format": "BFP16_64_LD", "output_format": "FP16"}})
    text = to_yaml(config)
    assert text == (
        "fc1:\n"
        f"  weight_format: {dmxnum.parse('BFP16_64_LD')}\n"
        f"  output_format: {dmxnum.parse('FP16')}\n"
    )


def test_rule_round_trip_and_hash():
    rule = ConfigRule(module_types=["linear"], name_re="fc", config={"input_format": BFP16})
    again = ConfigRule.from_mapping(rule.to_plain())
    assert again == rule and hash(again) == hash(rule)
