"""The ``torch.ops.dmxnum`` operators (``dmxnum.torch_ops``): ``cast``,
``sparsify`` and ``approximate`` equal the ordinary ``dmxnum`` calls bit for
bit (and the exact reference), keep straight-through / clipped gradients,
never alias their input, raise the library's errors, and survive
``torch.export`` (strict and non-strict, decompositions, save/load) and
``torch.compile`` as named ``dmxnum.*`` nodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import dmxnum
import dmxnum.torch_ops
from dmxnum import reference
from dmxnum.errors import ShorthandError
from dmxnum.testing import arrays_for, assert_bit_exact, formats
from dmxnum.testing.assertions import same_bits, to_numpy
from dmxnum.testing.backends import to_backend

OPS = torch.ops.dmxnum
WORDS = st.one_of(st.just(0), st.just(2**32 - 1), st.just(0x80000000), st.integers(0, 2**32 - 1))


def _bits_equal(a: torch.Tensor, b: torch.Tensor) -> None:
    """Same shape, dtype and int32 bit patterns (NaN payloads included)."""
    assert a.shape == b.shape and a.dtype == b.dtype == torch.float32, (a.shape, b.shape, a.dtype, b.dtype)
    ia, ib = a.detach().view(torch.int32), b.detach().view(torch.int32)
    assert torch.equal(ia, ib), (torch.nonzero(ia != ib)[:4].tolist(), a[ia != ib][:4], b[ia != ib][:4])


def _words_for(data: st.DataObject, fmt, shape) -> tuple[np.ndarray | None, torch.Tensor | None]:
    if not fmt.stochastic:
        return None, None
    words = data.draw(hnp.arrays(np.uint32, shape, elements=WORDS), label="words")
    return words, to_backend(words, "torch")  # int32 words holding the same bits


# ----------------------------------------------------------------------------- cast: values
@given(data=st.data())
def test_cast_op_equals_cast_and_reference(data: st.DataObject) -> None:
    fmt = data.draw(formats(families=("SAME", "XP", "FP", "BFP", "MXINT", "MXFP", "SBFP", "NVFP4")), label="fmt")
    x = data.draw(arrays_for(fmt), label="x")
    words, tw = _words_for(data, fmt, x.shape)
    xt = to_backend(x, "torch")
    out = OPS.cast(xt, str(fmt), None, tw)
    _bits_equal(out, dmxnum.cast(xt, fmt, random_bits=tw))
    assert_bit_exact(out, fmt, x, random_bits=words)
    assert out is not xt
    assert torch.equal(xt.view(torch.int32), torch.from_numpy(x.view(np.int32)))  # input untouched


@given(data=st.data())
def test_cast_op_stochastic_formats(data: st.DataObject) -> None:
    fmt = data.draw(formats(families=("XP", "FP", "BFP", "SBFP"), roundings="S"), label="fmt")
    assert fmt.stochastic
    x = data.draw(arrays_for(fmt, max_elements=128), label="x")
    words, tw = _words_for(data, fmt, x.shape)
    assert tw is not None and tw.dtype == torch.int32
    xt = torch.from_numpy(x.copy())
    out = OPS.cast(xt, str(fmt), random_bits=tw)
    _bits_equal(out, dmxnum.cast(xt, fmt, random_bits=tw))
    assert_bit_exact(out, fmt, x, random_bits=words)


def _scales() -> st.SearchStrategy[np.float32]:
    """Positive normal float32 scales: powers of two and arbitrary values in [2^-8, 2^8]."""
    lo, hi = int(np.float32(2.0**-8).view(np.uint32)), int(np.float32(2.0**8).view(np.uint32))
    bits = st.one_of(st.integers(lo >> 23, hi >> 23).map(lambda e: e << 23), st.integers(lo, hi))
    return bits.map(lambda b: np.array(b, np.uint32).view(np.float32)[()])


@given(data=st.data())
def test_cast_op_with_static_scale(data: st.DataObject) -> None:
    fmt = data.draw(formats(families=("XP", "FP")), label="fmt")
    x = data.draw(arrays_for(fmt, max_elements=128), label="x")
    s = np.array(data.draw(_scales(), label="s"), np.float32)  # per tensor (0-d)
    words, tw = _words_for(data, fmt, x.shape)
    xt, st_ = torch.from_numpy(x.copy()), torch.from_numpy(s.copy())
    out = OPS.cast(xt, str(fmt), st_, tw)
    _bits_equal(out, dmxnum.cast(xt, fmt, random_bits=tw, scale=st_))
    want = reference.cast(x, fmt, random_bits=words, scale=s)
    ok = same_bits(to_numpy(out), want)
    assert ok.all(), (str(fmt), float(s), np.argwhere(~ok)[:4].tolist())


def test_cast_op_with_per_channel_scale() -> None:
    fmt = "FP[1|4|3,7](_N)"
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((5, 8)) * 300).astype(np.float32)
    s = np.array([[0.5], [1.0], [3.0], [2.0**-6], [100.0]], np.float32)
    out = OPS.cast(torch.from_numpy(x), fmt, torch.from_numpy(s))
    _bits_equal(out, dmxnum.cast(torch.from_numpy(x), fmt, scale=torch.from_numpy(s)))
    want = reference.cast(x, fmt, scale=s)
    assert same_bits(to_numpy(out), want).all()
    # the scale changes the result (else this case would not test it)
    assert not same_bits(to_numpy(out), reference.cast(x, fmt)).all()


@given(data=st.data())
def test_cast_op_every_applicable_path(data: st.DataObject) -> None:
    fmt = data.draw(formats(), label="fmt")
    names = [p[0] for p in dmxnum.kernel_paths(fmt, "torch") if p[1]]
    assert names
    path = data.draw(st.sampled_from(names), label="path")
    x = data.draw(arrays_for(fmt, max_elements=128), label="x")
    words, tw = _words_for(data, fmt, x.shape)
    xt = torch.from_numpy(x.copy())
    out = OPS.cast(xt, str(fmt), None, tw, "ste", path)
    _bits_equal(out, dmxnum.cast(xt, fmt, random_bits=tw, path=path))
    assert_bit_exact(out, fmt, x, random_bits=words)


def test_cast_op_inapplicable_or_unknown_path_raises() -> None:
    fmt = "FP[1|4|3,7](_N)"
    x = torch.ones(4)
    with pytest.raises(ValueError, match="fp.native"):  # names the applicable paths
        OPS.cast(x, fmt, path="no.such.path")
    inapplicable = [p[0] for p in dmxnum.kernel_paths("BFP[8|8]{16,-1}(SN)", "torch") if not p[1]]
    assert inapplicable
    with pytest.raises(ValueError, match="bfp"):
        OPS.cast(torch.ones(2, 16), "BFP[8|8]{16,-1}(SN)", path=inapplicable[0])


# ----------------------------------------------------------------------------- cast: gradients
X_GRAD = [-1000.0, -241.0, -240.0, -100.0, -0.0, 0.3, 7.5, 239.0, 240.0, 241.0, 250.0, 1e30]


def test_cast_op_straight_through_gradient() -> None:
    x = torch.tensor(X_GRAD, requires_grad=True)
    OPS.cast(x, "FP[1|4|3,7](FN)").sum().backward()
    assert torch.equal(x.grad, torch.ones(len(X_GRAD)))


def test_cast_op_clip_gradient() -> None:
    fmt = dmxnum.parse("FP[1|4|3,7](FN)")
    assert fmt.max_value == 240.0
    x = torch.tensor(X_GRAD, requires_grad=True)
    y = OPS.cast(x, str(fmt), gradient="clip")
    _bits_equal(y, dmxnum.cast(x.detach(), fmt))
    y.sum().backward()
    want = torch.tensor([0.0 if abs(v) > 240.0 else 1.0 for v in X_GRAD])
    assert torch.equal(x.grad, want)
    assert want.sum() == 7  # both kinds of element present


def test_cast_op_gradient_through_stochastic_and_scale() -> None:
    x = torch.linspace(-3, 3, 24, requires_grad=True)
    words = torch.arange(24, dtype=torch.int32) * 0x0ABCDEF1
    OPS.cast(x, "XP[4,1](CSS)", torch.tensor(0.5), words).sum().backward()
    assert torch.equal(x.grad, torch.ones(24))


# ----------------------------------------------------------------------------- sparsify / approximate
@pytest.mark.parametrize("spec", ["BTOPK{2:4,-1}(U)", "BTOPK{1:3,0}(M)", "TOPK{0.5}(M)", "TOPK{0.25}(U)"])
def test_sparsify_op_equals_sparsify(spec: str) -> None:
    w = torch.from_numpy(np.random.default_rng(1).standard_normal((6, 8)).astype(np.float32))
    w[0, 0], w[1, 1] = float("nan"), -0.0
    out = OPS.sparsify(w, spec)
    want = dmxnum.sparsify(w, spec)
    _bits_equal(out, want)
    assert int((out != 0).sum()) < w.numel()  # it dropped something
    # with explicit scores
    scores = torch.from_numpy(np.random.default_rng(2).random((6, 8)).astype(np.float32))
    _bits_equal(OPS.sparsify(w, spec, scores), dmxnum.sparsify(w, spec, scores))


def test_sparsify_op_bernoulli() -> None:
    rng = np.random.default_rng(3)
    w = torch.from_numpy(rng.standard_normal((5, 7)).astype(np.float32))
    p = torch.from_numpy(rng.random((5, 7)).astype(np.float32))
    words = to_backend(rng.integers(0, 2**32, (5, 7), dtype=np.uint32), "torch")
    out = OPS.sparsify(w, "BERN", p, words)
    _bits_equal(out, dmxnum.sparsify(w, "BERN", p, random_bits=words))
    # SPEC: element i kept iff (r_i >> 8) * 2^-24 < p_i
    r = words.numpy().view(np.uint32).astype(np.float64)
    keep = np.floor(r / 256) * 2.0**-24 < p.numpy()
    assert np.array_equal(out.numpy(), np.where(keep, w.numpy(), 0).astype(np.float32))


def test_sparsify_op_gradient() -> None:
    w = torch.tensor([[4.0, -1.0, 0.5, 3.0]], requires_grad=True)
    OPS.sparsify(w, "BTOPK{2:4,-1}(M)").sum().backward()
    assert torch.equal(w.grad, torch.tensor([[1.0, 0.0, 0.0, 1.0]]))
    w.grad = None
    OPS.sparsify(w, "BTOPK{2:4,-1}(U)").sum().backward()
    assert torch.equal(w.grad, torch.ones(1, 4))


def _x(shape, seed=4, scale=3.0) -> torch.Tensor:
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32))


@pytest.mark.parametrize("spec", ["SOFTMAX(base2,float16)", "SOFTMAX(poly2,float32)", "SOFTMAX(ibert)"])
@pytest.mark.parametrize("axis", [-1, 0])
def test_approximate_op_softmax(spec: str, axis: int) -> None:
    x = _x((4, 6))
    out = OPS.approximate(x, spec, axis)
    _bits_equal(out, dmxnum.approximate(x, spec, axis=axis))
    sums = out.sum(dim=axis)
    assert torch.allclose(sums, torch.ones_like(sums), atol=0.05)


def test_approximate_op_softmax_axes_differ() -> None:
    x = _x((4, 6))
    a, b = OPS.approximate(x, "SOFTMAX(base2,float16)", 0), OPS.approximate(x, "SOFTMAX(base2,float16)")
    assert not torch.equal(a, b)


@pytest.mark.parametrize("spec", ["GELU(poly2,float16)", "GELU(ibert)"])
def test_approximate_op_gelu(spec: str) -> None:
    x = _x((3, 10))
    out = OPS.approximate(x, spec)
    _bits_equal(out, dmxnum.approximate(x, spec))
    assert torch.allclose(out, torch.nn.functional.gelu(x), atol=0.05)


@pytest.mark.parametrize("spec", ["LAYERNORM(quake3,_,float16)", "LAYERNORM(legacy,_,float32)"])
def test_approximate_op_layernorm(spec: str) -> None:
    x = _x((3, 2, 8), scale=5.0)
    weight, bias = _x((2, 8), seed=5, scale=1.0), _x((2, 8), seed=6, scale=1.0)
    out = OPS.approximate(x, spec, -1, [2, 8], weight, bias)
    _bits_equal(out, dmxnum.approximate(x, spec, normalized_shape=(2, 8), weight=weight, bias=bias))
    exact = torch.nn.functional.layer_norm(x, (2, 8), weight, bias)
    assert torch.allclose(out, exact, atol=0.05)
    # default normalized_shape: the last dimension
    _bits_equal(OPS.approximate(x, spec), dmxnum.approximate(x, spec))


# ----------------------------------------------------------------------------- no aliasing
def test_identity_results_are_fresh_tensors() -> None:
    x = _x((3, 4))
    for out in (OPS.cast(x, "SAME"), OPS.sparsify(x, "DENSE"), OPS.approximate(x, "NONE")):
        assert out is not x
        assert out.data_ptr() != x.data_ptr()
        _bits_equal(out, x)
    # the library calls themselves do return the input
    assert dmxnum.cast(x, "SAME") is x and dmxnum.sparsify(x, "DENSE") is x and dmxnum.approximate(x, "NONE") is x


def test_identity_op_output_is_independent() -> None:
    x = _x((3, 4))
    before = x.clone()
    out = OPS.cast(x, "SAME")
    out.add_(1.0)
    _bits_equal(x, before)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("bad", ["FP[1|4|3", "XYZ", "BFP[8|8]{4,5}(N)"])
def test_cast_op_malformed_shorthand(bad: str) -> None:
    with pytest.raises(ShorthandError) as info:
        OPS.cast(torch.ones(3, 4), bad)
    assert isinstance(info.value, ValueError)
    assert repr(bad) in str(info.value)


def test_sparsify_and_approximate_ops_malformed_spec() -> None:
    with pytest.raises(ValueError) as info:
        OPS.sparsify(torch.ones(4), "BTOPK{2:4")
    assert "BTOPK{2:4" in str(info.value)
    with pytest.raises(ShorthandError) as info2:
        OPS.approximate(torch.ones(4), "SOFTMAX(nope)")
    assert "SOFTMAX(nope)" in str(info2.value)


@pytest.mark.parametrize("fmt", ["BFP[8|8]{4,5}(SN)", "MXINT8{4,3}", "MXFP8[E4M3]{4,-3}"])
def test_cast_op_block_axis_out_of_range(fmt: str) -> None:
    axis = fmt.rsplit(",", 1)[1].split("}")[0]
    with pytest.raises(ValueError, match=f"block axis {axis}") as info:
        OPS.cast(torch.ones(3, 4), fmt)
    assert dmxnum.parse(fmt).__str__() in str(info.value)


def test_sparsify_op_block_axis_out_of_range() -> None:
    with pytest.raises(ValueError, match="axis"):
        OPS.sparsify(torch.ones(3, 4), "BTOPK{2:4,2}(U)")


def test_cast_op_stochastic_without_words_raises() -> None:
    with pytest.raises(ValueError):
        OPS.cast(torch.ones(4), "XP[8,4](CSS)")


# ----------------------------------------------------------------------------- torch.export
W_FMT = str(dmxnum.parse("MXINT8{8,-1}"))
X_FMT = str(dmxnum.parse("FP[1|4|3,7](_N)"))
LOGIC = "SOFTMAX(base2,float16)"


class _Quantized(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(_x((16, 8), seed=7, scale=0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.ops.dmxnum.cast(self.weight, W_FMT)
        h = torch.ops.dmxnum.cast(x, X_FMT)
        return torch.ops.dmxnum.approximate(h @ w.t(), LOGIC, -1)


def _dmx_nodes(gm: torch.fx.GraphModule) -> list[torch.fx.Node]:
    return [n for n in gm.graph.nodes if n.op == "call_function" and str(n.target).startswith("dmxnum.")]


@pytest.fixture(scope="module")
def exported():
    torch.manual_seed(0)
    m, x = _Quantized(), _x((4, 8), seed=8, scale=4.0)
    with torch.no_grad():
        eager = m(x)
    programs = {strict: torch.export.export(m, (x,), strict=strict) for strict in (False, True)}
    return m, x, eager, programs


def _check_nodes(gm) -> None:
    casts = [n for n in gm.graph.nodes if n.op == "call_function" and n.target is torch.ops.dmxnum.cast.default]
    assert sorted(n.args[1] for n in casts) == sorted([W_FMT, X_FMT])
    approx = [n for n in gm.graph.nodes
              if n.op == "call_function" and n.target is torch.ops.dmxnum.approximate.default]
    assert [n.args[1] for n in approx] == [LOGIC]


@pytest.mark.parametrize("strict", [False, True])
def test_export_keeps_named_dmxnum_nodes(exported, strict: bool) -> None:
    m, x, eager, programs = exported
    ep = programs[strict]
    _check_nodes(ep.graph_module)
    _bits_equal(ep.module()(x), eager)
    # eager equals the library calls
    want = dmxnum.approximate(dmxnum.cast(x, X_FMT) @ dmxnum.cast(m.weight.detach(), W_FMT).t(), LOGIC)
    _bits_equal(eager, want)


@pytest.mark.parametrize("strict", [False, True])
def test_export_decompositions(exported, strict: bool) -> None:
    _, x, eager, programs = exported
    kept = programs[strict].run_decompositions(dmxnum.torch_ops.decompositions())
    _check_nodes(kept.graph_module)
    _bits_equal(kept.module()(x), eager)


def test_export_default_decompositions_inline_dmxnum_ops(exported) -> None:
    # the default table lowers the (CompositeImplicitAutograd) dmxnum ops to core ATen: no dmxnum node
    # is left, and the result does not change (one program suffices: lowering takes seconds)
    _, x, eager, programs = exported
    assert _dmx_nodes(programs[False].graph_module)
    lowered = programs[False].run_decompositions()
    assert _dmx_nodes(lowered.graph_module) == []
    assert all(n.target.namespace == "aten" for n in lowered.graph.nodes if n.op == "call_function"
               and isinstance(n.target, torch._ops.OpOverload))
    _bits_equal(lowered.module()(x), eager)


def test_decompositions_table_omits_only_dmxnum_ops() -> None:
    table = dmxnum.torch_ops.decompositions()
    default = torch.export.default_decompositions()
    for op in dmxnum.torch_ops.ops():
        assert op in default  # the default table would inline them...
        assert op not in table  # ...this one keeps them
    assert set(default) - set(table) <= set(dmxnum.torch_ops.ops())
    assert len(table) > 0


def test_export_save_load_round_trip(exported, tmp_path) -> None:
    _, x, eager, programs = exported
    path = tmp_path / "quantized.pt2"
    torch.export.save(programs[False], path)
    loaded = torch.export.load(path)
    _check_nodes(loaded.graph_module)
    _bits_equal(loaded.module()(x), eager)


def test_export_stochastic_cast_keeps_words_input() -> None:
    class M(torch.nn.Module):
        def forward(self, x, r):
            return torch.ops.dmxnum.cast(x, "XP[8,4](CSS)", None, r)

    x, r = _x((3, 5)), torch.arange(15, dtype=torch.int32).reshape(3, 5) * 0x1234567
    ep = torch.export.export(M(), (x, r), strict=False)
    node, = [n for n in ep.graph.nodes if n.op == "call_function" and n.target is torch.ops.dmxnum.cast.default]
    assert node.args[1] == "XP[8,4](CSS)"
    _bits_equal(ep.module()(x, r), dmxnum.cast(x, "XP[8,4](CSS)", random_bits=r))


# ----------------------------------------------------------------------------- torch.compile
def test_compile_aot_eager_fullgraph_values_and_gradient() -> None:
    torch._dynamo.reset()
    fmt = "FP[1|4|3,7](_N)"

    def f(x, r):
        return torch.ops.dmxnum.cast(x, fmt) * 2 + torch.ops.dmxnum.cast(x, "XP[6,2](CSS)", None, r)

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    x = _x((5, 7), seed=9, scale=20.0)
    r = torch.from_numpy(np.random.default_rng(9).integers(0, 2**32, (5, 7), dtype=np.uint32).view(np.int32))
    _bits_equal(compiled(x, r), f(x, r))
    _bits_equal(compiled(x, r), dmxnum.cast(x, fmt) * 2 + dmxnum.cast(x, "XP[6,2](CSS)", random_bits=r))
    xg = x.clone().requires_grad_()
    compiled(xg, r).sum().backward()
    assert torch.equal(xg.grad, torch.full((5, 7), 3.0))
