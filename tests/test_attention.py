"""Attention and Transformer layers: gradients by finite differences (with and without
masks), values and gradients against PyTorch with the same weights, masked positions,
fully masked rows, positional encoding and error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import on

import xdl
from xdl.backends import to_numpy
from xdl.gradcheck import gradcheck
from xdl.nn import (
    AdditiveAttention,
    DotProductAttention,
    MultiheadAttention,
    PositionalEncoding,
    ScaledDotProductAttention,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from xdl.nn.module import Module

N, L, S, E = 2, 3, 5, 6


def bool_on(backend, host):
    return backend.asarray(np.asarray(host, dtype=bool), "bool")


def padding(n=N, s=S):
    """A key padding mask: the first sequence is full, the others lose their tail."""
    mask = np.zeros((n, s), dtype=bool)
    for i in range(1, n):
        mask[i, s - 1 - (i % (s - 1)):] = True
    return mask


class Call(Module):
    """gradcheck adapter: ``layer(*arrays, **kwargs)``; ``self_attention`` passes one
    array as query, key and value, ``cross`` (x, memory) as (x, memory, memory);
    ``shared`` uses backward_shared; ``first`` keeps only the first output."""

    def __init__(self, layer, self_attention=False, cross=False, shared=False, first=False,
                 reseed=None, **kwargs):
        super().__init__()
        self.layer, self.kwargs = layer, kwargs
        self.self_attention, self.cross = self_attention, cross
        self.shared, self.first = shared, first
        self.reseed = reseed

    def forward(self, *arrays):
        if self.reseed is not None:
            xdl.manual_seed(self.reseed)
        if self.self_attention:
            arrays = arrays * 3
        if self.cross:
            arrays = (arrays[0], arrays[1], arrays[1])
        out = self.layer(*arrays, **self.kwargs)
        return out[0] if self.first else out

    def backward(self, *grads):
        if self.shared:
            return self.layer.backward_shared(*grads)
        return self.layer.backward(*grads)


def _normal(backend, rng, *shape):
    return on(backend, rng.normal(size=shape))


# -- single-head attention ----------------------------------------------------------------

MASK_CASES = ["none", "padding", "causal", "padding+causal", "float-attn-mask",
              "bool-attn-mask"]


def _masks(backend, rng, case, lead=(N,), length=L, keys=S):
    kwargs = {}
    if "padding" in case:
        kwargs["key_padding_mask"] = bool_on(backend, padding(lead[0], keys))
    if "causal" in case:
        kwargs["is_causal"] = True
    if case == "float-attn-mask":
        kwargs["attn_mask"] = _normal(backend, rng, length, keys)
    if case == "bool-attn-mask":
        mask = rng.random((length, keys)) < 0.4
        mask[:, 0] = False
        kwargs["attn_mask"] = bool_on(backend, mask)
    return kwargs


@pytest.mark.parametrize("case", MASK_CASES)
@pytest.mark.parametrize("cls", [ScaledDotProductAttention, DotProductAttention])
def test_dot_product_attention_gradients(backend, rng, cls, case):
    q, k, v = (_normal(backend, rng, N, t, d) for t, d in ((L, 4), (S, 4), (S, 3)))
    layer = Call(cls(), **_masks(backend, rng, case))
    result = gradcheck(layer, q, k, v)
    assert result.checked == ["input 0", "input 1", "input 2"]


def test_attention_with_extra_batch_axes(backend, rng):
    q, k, v = (_normal(backend, rng, 2, 2, t, 3) for t in (L, S, S))
    kpm = bool_on(backend, padding(2, S)[:, None, :].repeat(2, axis=1))
    gradcheck(Call(ScaledDotProductAttention(scale=0.7), key_padding_mask=kpm,
                   is_causal=True), q, k, v)


def test_scaled_attention_values(backend, rng):
    q, k, v = (rng.normal(size=(N, t, 4)) for t in (L, S, S))
    out, w = ScaledDotProductAttention()(on(backend, q), on(backend, k), on(backend, v))
    s = q @ k.transpose(0, 2, 1) / 2.0
    expected_w = np.exp(s) / np.exp(s).sum(-1, keepdims=True)
    np.testing.assert_allclose(to_numpy(w), expected_w, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(out), expected_w @ v, rtol=1e-12)


@pytest.mark.parametrize("query_rank", [3, 2])
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "padding"])
def test_additive_attention_gradients(backend, rng, query_rank, masked):
    layer = AdditiveAttention(4, 3, 5, bias=True).to(dtype="float64")
    query = _normal(backend, rng, *((N, L, 4) if query_rank == 3 else (N, 4)))
    keys, values = _normal(backend, rng, N, S, 3), _normal(backend, rng, N, S, 2)
    kwargs = {"key_padding_mask": bool_on(backend, padding())} if masked else {}
    result = gradcheck(Call(layer, **kwargs), query, keys, values)
    assert len(result.checked) == 3 + 4


def test_additive_attention_values(backend, rng):
    layer = AdditiveAttention(4, 3, 5).to(dtype="float64")
    q, k, v = rng.normal(size=(N, 4)), rng.normal(size=(N, S, 3)), rng.normal(size=(N, S, 2))
    context, w = layer(on(backend, q), on(backend, k), on(backend, v))
    wq, wk = to_numpy(layer.query_proj.weight.data), to_numpy(layer.key_proj.weight.data)
    vvec = to_numpy(layer.score_proj.weight.data)[0]
    scores = np.tanh((q @ wq.T)[:, None, :] + k @ wk.T) @ vvec
    expected = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    np.testing.assert_allclose(to_numpy(w), expected, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(context), np.einsum("ns,nsd->nd", expected, v),
                               rtol=1e-12)
    assert list(layer.state_dict()) == ["query_proj.weight", "key_proj.weight",
                                        "score_proj.weight"]


def test_masked_positions_get_zero_weight(backend, rng):
    mask = padding()
    kpm = bool_on(backend, mask)
    q, k = _normal(backend, rng, N, L, E), _normal(backend, rng, N, S, E)
    hidden = np.broadcast_to(mask[:, None, :], (N, L, S))
    causal = np.triu(np.ones((L, S), dtype=bool), k=1)
    _, w = ScaledDotProductAttention()(q, k, k, key_padding_mask=kpm, is_causal=True)
    w = to_numpy(w)
    assert np.all(w[hidden | causal] == 0.0) and np.all(w[~(hidden | causal)] > 0.0)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-12)
    _, w = AdditiveAttention(E, E, 4).to(dtype="float64")(q, k, k, key_padding_mask=kpm)
    assert np.all(to_numpy(w)[hidden] == 0.0)
    _, w = MultiheadAttention(E, 3).to(dtype="float64")(q, k, k, key_padding_mask=kpm,
                                                        average_attn_weights=False)
    assert np.all(to_numpy(w)[np.broadcast_to(mask[:, None, None, :], (N, 3, L, S))] == 0.0)


def test_fully_masked_row_gives_zeros_not_nan(backend, rng):
    mask = np.zeros((N, S), dtype=bool)
    mask[1] = True                                   # every key of sequence 1 hidden
    q, k, v = (_normal(backend, rng, N, t, 4) for t in (L, S, S))
    layer = ScaledDotProductAttention()
    out, w = layer(q, k, v, key_padding_mask=bool_on(backend, mask))
    assert np.all(to_numpy(w)[1] == 0.0) and np.all(to_numpy(out)[1] == 0.0)
    grads = layer.backward(on(backend, np.ones((N, L, 4))), on(backend, np.ones((N, L, S))))
    for g in grads:
        assert np.all(np.isfinite(to_numpy(g)))
    assert np.all(to_numpy(grads[0])[1] == 0.0)
    float_mask = np.where(mask, -np.inf, 0.0)
    out, w = layer(q, k, v, key_padding_mask=on(backend, float_mask))
    assert np.all(to_numpy(out)[1] == 0.0) and np.all(np.isfinite(to_numpy(out)))
    gradcheck(Call(layer, key_padding_mask=bool_on(backend, mask)), q, k, v)


# -- multi-head attention -----------------------------------------------------------------

MHA_CASES = {
    "self-causal-padding": ({}, "self", {"padding": True, "is_causal": True}),
    "cross-shared-kv-padding": ({}, "cross", {"padding": True}),
    "separate-qkv-float-mask-per-head": ({}, "separate", {"head_mask": True}),
    "odd-sizes-batch-1-no-bias": ({"bias": False}, "separate-batch1", {}),
    "time-major-unaveraged": ({"batch_first": False}, "self", {"average": False}),
    "no-weights": ({}, "cross", {"need_weights": False}),
}


def _mha_inputs(backend, rng, kind, e, n=N):
    if kind == "self":
        return [_normal(backend, rng, n, L, e)]
    if kind == "cross":
        return [_normal(backend, rng, n, L, e), _normal(backend, rng, n, S, e)]
    return [_normal(backend, rng, n, L, e), _normal(backend, rng, n, S, e),
            _normal(backend, rng, n, S, e)]


def _mha_kwargs(backend, rng, options, heads, n=N, length=L, keys=S):
    kwargs = {}
    if options.get("padding"):
        kwargs["key_padding_mask"] = bool_on(backend, padding(n, keys))
    if options.get("is_causal"):
        kwargs["is_causal"] = True
    if options.get("head_mask"):
        kwargs["attn_mask"] = _normal(backend, rng, n * heads, length, keys)
    if options.get("average") is False:
        kwargs["average_attn_weights"] = False
    if options.get("need_weights") is False:
        kwargs["need_weights"] = False
    return kwargs


@pytest.mark.parametrize("case", MHA_CASES)
def test_multihead_attention_gradients(backend, rng, case):
    config, kind, options = MHA_CASES[case]
    e, heads, n = (5, 1, 1) if kind == "separate-batch1" else (E, 3, N)
    layer = MultiheadAttention(e, heads, **config).to(dtype="float64")
    inputs = _mha_inputs(backend, rng, kind.split("-")[0], e, n)
    if not layer.batch_first:
        inputs = [on(backend, to_numpy(x).transpose(1, 0, 2)) for x in inputs]
    kwargs = _mha_kwargs(backend, rng, options, heads, n, keys=L if kind == "self" else S)
    adapter = Call(layer, self_attention=kind == "self", cross=kind == "cross",
                   shared=kind in ("self", "cross"),
                   first=options.get("need_weights") is False, **kwargs)
    result = gradcheck(adapter, *inputs, samples=12)
    assert len(result.checked) == len(inputs) + len(list(layer.parameters()))


def test_multihead_backward_partials_sum_to_shared(backend, rng):
    layer = MultiheadAttention(E, 2).to(dtype="float64")
    x = _normal(backend, rng, N, L, E)
    out, w = layer(x, x, x, is_causal=True)
    g, gw = _normal(backend, rng, *out.shape), _normal(backend, rng, *w.shape)
    dq, dk, dv = layer.backward(g, gw)
    dx = layer.backward_shared(g, gw)
    np.testing.assert_allclose(to_numpy(dq + dk + dv), to_numpy(dx), rtol=1e-10, atol=1e-12)
    copies = [on(backend, to_numpy(x)) for _ in range(2)]       # distinct arrays: 3 products
    layer(x, *copies, is_causal=True)
    for fused, separate in zip((dq, dk, dv), layer.backward(g, gw)):
        np.testing.assert_allclose(to_numpy(fused), to_numpy(separate), rtol=1e-10, atol=1e-12)


def test_attention_dropout_gradients(backend, rng):
    """With the seed reset before each forward the dropout masks repeat, so the
    training-mode backward (which reuses the forward's masks) can be checked."""
    layer = MultiheadAttention(E, 2, dropout=0.4).to(dtype="float64")
    x = _normal(backend, rng, N, L, E)
    gradcheck(Call(layer, self_attention=True, shared=True, reseed=3), x, samples=10)
    layer.eval()
    out_eval, _ = layer(x, x, x)
    layer.train()
    xdl.manual_seed(3)
    out_train, _ = layer(x, x, x)
    assert not np.allclose(to_numpy(out_eval), to_numpy(out_train))


# -- Transformer layers ---------------------------------------------------------------------

@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
def test_encoder_layer_gradients(backend, rng, norm_first):
    layer = TransformerEncoderLayer(E, 2, dim_feedforward=7, dropout=0.0,
                                    norm_first=norm_first).to(dtype="float64")
    x = _normal(backend, rng, N, L + 1, E)
    adapter = Call(layer, src_key_padding_mask=bool_on(backend, padding(N, L + 1)),
                   is_causal=True)
    result = gradcheck(adapter, x, samples=8)
    assert len(result.checked) == 1 + 12


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
def test_decoder_layer_gradients(backend, rng, norm_first):
    layer = TransformerDecoderLayer(E, 3, dim_feedforward=5, dropout=0.1,
                                    norm_first=norm_first).to(dtype="float64").eval()
    tgt, memory = _normal(backend, rng, N, L, E), _normal(backend, rng, N, S, E)
    adapter = Call(layer, tgt_is_causal=True,
                   memory_key_padding_mask=bool_on(backend, padding()))
    result = gradcheck(adapter, tgt, memory, samples=6)
    assert len(result.checked) == 2 + len(list(layer.parameters())) == 2 + 18


def test_stacks_gradients(backend, rng):
    enc = TransformerEncoder(TransformerEncoderLayer(4, 2, 6, dropout=0.0), 2,
                             norm=xdl.nn.LayerNorm(4)).to(dtype="float64")
    dec = TransformerDecoder(TransformerDecoderLayer(4, 2, 6, dropout=0.0, norm_first=True),
                             2).to(dtype="float64")
    x, memory = _normal(backend, rng, 1, L, 4), _normal(backend, rng, 1, S, 4)
    gradcheck(enc, x, samples=4)
    gradcheck(Call(dec, tgt_is_causal=True), x, memory, samples=4)


def test_encoder_layer_dropout_gradients(backend, rng):
    layer = TransformerEncoderLayer(E, 2, dim_feedforward=8, dropout=0.3).to(dtype="float64")
    gradcheck(Call(layer, reseed=7), _normal(backend, rng, N, L, E), samples=5)


# -- positional encoding ----------------------------------------------------------------------

@pytest.mark.parametrize("d_model", [6, 5])
def test_positional_encoding(backend, rng, d_model):
    layer = PositionalEncoding(d_model, dropout=0.0)
    x = rng.normal(size=(N, 4, d_model))
    y = to_numpy(layer(on(backend, x)))
    pos, i = np.arange(4)[:, None], np.arange(d_model)[None, :]
    angle = pos / 10000.0 ** ((i - i % 2) / d_model)
    pe = np.where(i % 2 == 0, np.sin(angle), np.cos(angle))
    np.testing.assert_allclose(y, x + pe, rtol=1e-12, atol=1e-12)
    gradcheck(layer, on(backend, x))
    time_major = PositionalEncoding(d_model, dropout=0.0, batch_first=False)
    y = to_numpy(time_major(on(backend, x.transpose(1, 0, 2))))
    np.testing.assert_allclose(y, (x + pe).transpose(1, 0, 2), rtol=1e-12, atol=1e-12)
    assert not layer.state_dict()


def test_positional_encoding_dropout(backend, rng):
    layer = PositionalEncoding(4, dropout=0.5)
    x = on(backend, np.ones((N, 6, 4)), "float32")
    y = to_numpy(layer(x))
    assert np.any(y == 0.0) and y.dtype == np.float32
    g = to_numpy(layer.backward(on(backend, np.ones((N, 6, 4)), "float32")))
    np.testing.assert_array_equal(g, np.where(y == 0.0, 0.0, 2.0))


# -- against PyTorch --------------------------------------------------------------------------

def _torch():
    return pytest.importorskip("torch")


def _twin(torch, layer, twin):
    twin = twin.double()
    assert list(twin.state_dict()) == list(layer.state_dict())
    twin.load_state_dict({k: torch.tensor(to_numpy(v)) for k, v in layer.state_dict().items()})
    return twin


def _close(actual, expected):
    np.testing.assert_allclose(to_numpy(actual), expected.detach().numpy(), rtol=1e-9,
                               atol=1e-12)


def _compare_grads(layer, twin, mine, theirs):
    for a, b in zip(mine, theirs):
        _close(a, b.grad)
    for (name, p), (t_name, tp) in zip(layer.named_parameters(), twin.named_parameters()):
        assert name == t_name
        _close(p.grad, tp.grad)


@pytest.mark.parametrize("case", ["self-causal-padding", "cross-per-head-float-mask",
                                  "separate-time-major-unaveraged"])
def test_multihead_attention_matches_pytorch(backend, rng, case):
    torch = _torch()
    batch_first = "time-major" not in case
    layer = MultiheadAttention(E, 3, batch_first=batch_first).to(dtype="float64")
    twin = _twin(torch, layer, torch.nn.MultiheadAttention(E, 3, batch_first=batch_first))
    kind = case.split("-")[0]
    inputs = [rng.normal(size=(N, L, E))] + [rng.normal(size=(N, S if kind != "self" else L,
                                                              E))
                                             for _ in range({"self": 0, "cross": 1}.get(kind, 2))]
    if not batch_first:
        inputs = [x.transpose(1, 0, 2) for x in inputs]
    t_inputs = [torch.tensor(x, requires_grad=True) for x in inputs]
    keys = L if kind == "self" else S
    kw, t_kw = {}, {}
    if "padding" in case:
        kw["key_padding_mask"] = bool_on(backend, padding(N, keys))
        t_kw["key_padding_mask"] = torch.tensor(padding(N, keys))
    if "causal" in case:
        kw["is_causal"] = True
        t_kw["attn_mask"] = torch.triu(torch.ones(L, keys, dtype=torch.bool), 1)
    if "float-mask" in case:
        m = rng.normal(size=(N * 3, L, keys))
        kw["attn_mask"], t_kw["attn_mask"] = on(backend, m), torch.tensor(m)
    if "unaveraged" in case:
        kw["average_attn_weights"] = t_kw["average_attn_weights"] = False
    mine_in = [on(backend, x) for x in inputs]
    args = {"self": lambda a: (a[0], a[0], a[0]), "cross": lambda a: (a[0], a[1], a[1])}.get(
        kind, lambda a: tuple(a))
    out, w = layer(*args(mine_in), **kw)
    t_out, t_w = twin(*args(t_inputs), **t_kw)
    _close(out, t_out)
    _close(w, t_w)
    g, gw = rng.normal(size=tuple(out.shape)), rng.normal(size=tuple(w.shape))
    torch.autograd.backward([t_out, t_w], [torch.tensor(g), torch.tensor(gw)])
    grads = layer.backward_shared(on(backend, g), on(backend, gw))
    _compare_grads(layer, twin, grads if isinstance(grads, tuple) else (grads,), t_inputs)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
def test_encoder_layer_matches_pytorch(backend, rng, norm_first):
    torch = _torch()
    layer = TransformerEncoderLayer(E, 2, 7, dropout=0.0, norm_first=norm_first)
    layer = layer.to(dtype="float64")
    twin = _twin(torch, layer, torch.nn.TransformerEncoderLayer(
        E, 2, 7, dropout=0.0, batch_first=True, norm_first=norm_first))
    x = rng.normal(size=(N, L + 1, E))
    t_x = torch.tensor(x, requires_grad=True)
    causal = np.triu(np.ones((L + 1, L + 1), dtype=bool), 1)
    kpm = padding(N, L + 1)
    out = layer(on(backend, x), None, bool_on(backend, kpm), True)
    t_out = twin(t_x, torch.tensor(causal), torch.tensor(kpm), is_causal=True)
    _close(out, t_out)
    g = rng.normal(size=tuple(out.shape))
    t_out.backward(torch.tensor(g))
    _compare_grads(layer, twin, [layer.backward(on(backend, g))], [t_x])


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
def test_decoder_layer_matches_pytorch(backend, rng, norm_first):
    torch = _torch()
    layer = TransformerDecoderLayer(E, 3, 8, dropout=0.0, norm_first=norm_first)
    layer = layer.to(dtype="float64")
    twin = _twin(torch, layer, torch.nn.TransformerDecoderLayer(
        E, 3, 8, dropout=0.0, batch_first=True, norm_first=norm_first))
    tgt, memory = rng.normal(size=(N, L, E)), rng.normal(size=(N, S, E))
    t_tgt, t_memory = (torch.tensor(a, requires_grad=True) for a in (tgt, memory))
    kpm = padding()
    out = layer(on(backend, tgt), on(backend, memory), memory_key_padding_mask=bool_on(
        backend, kpm), tgt_is_causal=True)
    t_out = twin(t_tgt, t_memory, tgt_mask=torch.triu(torch.ones(L, L, dtype=torch.bool), 1),
                 memory_key_padding_mask=torch.tensor(kpm), tgt_is_causal=True)
    _close(out, t_out)
    g = rng.normal(size=tuple(out.shape))
    t_out.backward(torch.tensor(g))
    _compare_grads(layer, twin, layer.backward(on(backend, g)), [t_tgt, t_memory])


def test_stacks_match_pytorch(backend, rng):
    torch = _torch()
    enc = TransformerEncoder(TransformerEncoderLayer(4, 2, 6, dropout=0.0), 2,
                             norm=xdl.nn.LayerNorm(4)).to(dtype="float64")
    t_enc = _twin(torch, enc, torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, batch_first=True), 2,
        norm=torch.nn.LayerNorm(4), enable_nested_tensor=False))
    dec = TransformerDecoder(TransformerDecoderLayer(4, 2, 6, dropout=0.0), 2).to(
        dtype="float64")
    t_dec = _twin(torch, dec, torch.nn.TransformerDecoder(
        torch.nn.TransformerDecoderLayer(4, 2, 6, dropout=0.0, batch_first=True), 2))
    x, memory = rng.normal(size=(N, L, 4)), rng.normal(size=(N, S, 4))
    t_x, t_m = (torch.tensor(a, requires_grad=True) for a in (x, memory))
    out = dec(on(backend, x), enc(on(backend, memory)))
    t_out = t_dec(t_x, t_enc(t_m))
    _close(out, t_out)
    g = rng.normal(size=tuple(out.shape))
    t_out.backward(torch.tensor(g))
    dx, dmemory = dec.backward(on(backend, g))
    _close(dx, t_x.grad)
    _close(enc.backward(dmemory), t_m.grad)
    for layer, twin in ((enc, t_enc), (dec, t_dec)):
        _compare_grads(layer, twin, [], [])


# -- shapes and errors ----------------------------------------------------------------------

def test_float32_by_default(backend, rng):
    layer = TransformerEncoderLayer(8, 2, 16)
    x = on(backend, rng.normal(size=(N, L, 8)), "float32")
    y = layer(x)
    assert "float32" in str(y.dtype) and tuple(y.shape) == (N, L, 8)
    assert "float32" in str(layer.backward(y).dtype)


def test_errors_name_layer_and_shapes(backend, rng):
    layer = MultiheadAttention(E, 2)
    x = on(backend, rng.normal(size=(N, L, E)), "float32")
    with pytest.raises(ValueError, match=r"MultiheadAttention\(embed_dim=6.*\(N, L, 6\).*"
                                         r"\(2, 3, 4\)"):
        layer(on(backend, np.zeros((N, L, 4))), x, x)
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(N, S\) = \(2, 3\), "
                                         r"got \(2, 4\)"):
        layer(x, x, x, key_padding_mask=bool_on(backend, np.zeros((N, 4))))
    with pytest.raises(ValueError, match=r"attn_mask .*got \(4, 4\)"):
        layer(x, x, x, attn_mask=bool_on(backend, np.zeros((4, 4))))
    with pytest.raises(ValueError, match="multiple of num_heads"):
        MultiheadAttention(6, 4)
    with pytest.raises(ValueError, match=r"ScaledDotProductAttention.*\(2, 3, 6\), "
                                         r"\(2, 3, 5\)"):
        ScaledDotProductAttention()(x, on(backend, np.zeros((N, L, 5))), x)
    with pytest.raises(ValueError, match=r"AdditiveAttention.*\(N, L, 4\) or \(N, 4\)"):
        AdditiveAttention(4, E, 3)(x, x, x)
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer.*src of shape "
                                         r"\(N, L, 8\), got \(2, 3, 6\)"):
        TransformerEncoderLayer(8, 2)(x)
    with pytest.raises(ValueError, match=r"TransformerDecoderLayer.*memory of shape"):
        TransformerDecoderLayer(E, 2)(x, on(backend, np.zeros((N, S, 4))))
    with pytest.raises(ValueError, match="exceeds max_len 2"):
        PositionalEncoding(E, max_len=2)(x)
    with pytest.raises(RuntimeError, match="without a forward pass"):
        MultiheadAttention(E, 2).backward(x)


def test_module_repr_and_names():
    layer = TransformerDecoderLayer(8, 2, 16)
    names = [name for name, _ in layer.named_modules()]
    for expected in ("self_attn", "self_attn.out_proj", "multihead_attn", "linear1", "dropout",
                     "linear2", "norm1", "norm2", "norm3", "dropout1", "dropout2", "dropout3"):
        assert expected in names
    assert math.isclose(layer.self_attn.dropout, 0.1)


def test_time_major_layers_match_batch_first(backend, rng):
    x, memory = rng.normal(size=(N, L, E)), rng.normal(size=(N, S, E))
    for cls, args in ((TransformerEncoderLayer, (x,)), (TransformerDecoderLayer, (x, memory))):
        layer = cls(E, 2, 8, dropout=0.0).to(dtype="float64")
        time_major = cls(E, 2, 8, dropout=0.0, batch_first=False).to(dtype="float64")
        time_major.load_state_dict(layer.state_dict())
        out = to_numpy(layer(*(on(backend, a) for a in args)))
        out_tm = time_major(*(on(backend, a.transpose(1, 0, 2)) for a in args))
        np.testing.assert_allclose(to_numpy(out_tm).transpose(1, 0, 2), out, rtol=1e-12,
                                   atol=1e-12)
        g = rng.normal(size=out.shape)
        grads = layer.backward(on(backend, g))
        grads_tm = time_major.backward(on(backend, g.transpose(1, 0, 2)))
        for a, b in zip(grads if isinstance(grads, tuple) else (grads,),
                        grads_tm if isinstance(grads_tm, tuple) else (grads_tm,)):
            np.testing.assert_allclose(to_numpy(b).transpose(1, 0, 2), to_numpy(a),
                                       rtol=1e-10, atol=1e-12)
