"""Attention: dot-product, scaled dot-product and additive (Bahdanau) attention, plus the
masked softmax and the forward/backward core that MultiheadAttention shares.

Masks follow PyTorch: a bool mask is True where a key must be ignored (weight exactly
0), a float mask is added to the scores (−inf ignores). A query whose keys are all
masked gets all-zero weights and a zero output instead of PyTorch's NaN.
"""

from __future__ import annotations

import math

from xdl import backends
from xdl.nn.linear import Linear
from xdl.nn.module import Module


def layer_name(layer: Module) -> str:
    """``Name(config)`` on one line, for error messages of composite layers."""
    return f"{type(layer).__name__}({layer.extra_repr()})"


def causal_mask(length: int, key_length: int, like):
    """The (L, S) bool mask that hides the future: True where key j > query i."""
    xp = backends.namespace(like)
    i = xp.arange(length, device=like.device)
    j = xp.arange(key_length, device=like.device)
    return xp.expand_dims(i, axis=1) < xp.expand_dims(j, axis=0)


def masked_softmax(xp, scores, mask=None, guard=False):
    """softmax over the last axis, with weight exactly 0 where ``mask`` is True.

    A row whose positions are all masked gets all-zero weights, not NaN; ``guard``
    asks for this care without a bool mask, for scores that may be −inf (from an
    additive mask). ``scores`` is a temporary: it may be overwritten.
    """
    if mask is None and not guard:         # in place: the scores are a temporary
        scores -= xp.max(scores, axis=-1, keepdims=True)
        e = xp.exp(scores)
        e /= xp.sum(e, axis=-1, keepdims=True)
        return e
    if mask is not None:
        scores = xp.where(mask, -math.inf, scores)
    peak = xp.max(scores, axis=-1, keepdims=True)
    peak = xp.where(peak == -math.inf, 0.0, peak)   # all masked: any finite shift
    e = xp.exp(scores - peak)                       # masked: exp(−inf) = 0
    total = xp.sum(e, axis=-1, keepdims=True)
    e /= xp.where(total == 0.0, 1.0, total)
    return e


def is_bool(xp, mask) -> bool:
    return mask.dtype == xp.bool


def check_mask(layer, name, mask, shapes, allowed) -> None:
    """Raise a clear error unless ``mask`` (when given) has one of the ``allowed`` shapes."""
    if mask is not None and tuple(mask.shape) not in allowed:
        raise ValueError(f"{layer_name(layer)}: expected {name} of shape {shapes}, "
                         f"got {tuple(mask.shape)}")


def combine_masks(xp, key_padding_mask, attn_mask, is_causal, length, key_length, like):
    """(bool mask or None, additive mask or None), both broadcastable to the scores
    (..., L, S): key_padding_mask already shaped (..., 1, S) to hide keys per batch
    entry, attn_mask (L, S) or (..., L, S) hides (bool) or shifts (float) scores,
    is_causal adds the causal mask."""
    hidden, additive = [], []
    for m in (key_padding_mask, attn_mask):
        if m is not None:
            (hidden if is_bool(xp, m) else additive).append(m)
    if is_causal:
        hidden.append(causal_mask(length, key_length, like))
    mask = None
    for m in hidden:
        mask = m if mask is None else xp.logical_or(mask, m)
    shift = None
    for m in additive:
        m = xp.astype(m, like.dtype)
        shift = m if shift is None else shift + m
    return mask, shift


def transposed_copy(xp, a):
    """A fresh row-major array holding aᵀ over the last two axes.

    Products are then plain A·B: OpenBLAS (NumPy's BLAS) multiplies the many small
    matrices of a batched A·Bᵀ erratically, at times a hundred times slower.
    """
    out = xp.empty(tuple(a.shape[:-2]) + (a.shape[-1], a.shape[-2]), dtype=a.dtype,
                   device=a.device)
    out[...] = xp.matrix_transpose(a)
    return out


def attention_forward(q, k, v, scale, mask=None, shift=None, dropout=0.0):
    """out = dropout(w) v, w = masked_softmax(scale·q kᵀ + shift) over the last two axes.

    q (..., L, d), k (..., S, d), v (..., S, dv). Returns (out, w_dropped, cache).
    """
    xp = backends.namespace(q)
    qs = q * scale
    scores = qs @ transposed_copy(xp, k)
    if shift is not None:
        scores += shift
    w = masked_softmax(xp, scores, mask, guard=shift is not None)
    keep = None
    if dropout > 0.0:
        keep = xp.astype(backends.uniform(tuple(w.shape), like=w) >= dropout, w.dtype)
        keep *= 1.0 / (1.0 - dropout)
        wd = w * keep
    else:
        wd = w
    return wd @ v, wd, (qs, k, v, w, wd, keep, scale)


def attention_backward(cache, grad_out, grad_weights=None):
    """Gradients of attention_forward, given d out and d w_dropped (or None):
        d wd = dout vᵀ (+ d w_dropped)      dv = wdᵀ dout      dw = d wd ⊙ keep
        ds = w ⊙ (dw − Σ_S w ⊙ dw)          dq = scale · ds k   dk = dsᵀ (scale · q)
    (masked positions have w = 0, hence ds = 0).
    """
    qs, k, v, w, wd, keep, scale = cache
    xp = backends.namespace(grad_out)
    dw = grad_out @ transposed_copy(xp, v)
    if grad_weights is not None:
        dw += grad_weights
    dv = xp.matrix_transpose(wd) @ grad_out
    if keep is not None:
        dw *= keep
    dw -= xp.sum(w * dw, axis=-1, keepdims=True)
    dw *= w                                        # now ds, the scores' gradient
    dq = dw @ k
    dq *= scale
    dk = xp.matrix_transpose(dw) @ qs
    return dq, dk, dv


class ScaledDotProductAttention(Module):
    """Scaled dot-product attention ("Attention is all you need"), one head.

    forward(query (N, L, E), key (N, S, E), value (N, S, Ev), key_padding_mask=None,
    attn_mask=None, is_causal=False) → (output (N, L, Ev), weights (N, L, S)):
        s = c·q kᵀ (+ float masks)     w = softmax_S(s), w = 0 where a bool mask is True
        output = dropout(w) v          (c = ``scale``, default 1/√E; weights returned
                                        after dropout, as PyTorch's attention layers do)
    Any leading batch axes are allowed: q (..., L, E). key_padding_mask (..., S), True
    ignores a key; attn_mask (L, S) or (..., L, S), bool (True ignores) or float
    (added); is_causal hides keys j > i. A query with every key masked gets zero
    weights and a zero output (PyTorch gives NaN).

    backward(grad_output, grad_weights=None) → (dq, dk, dv):
        dw = dout vᵀ (+ dweights)    dv = wᵀ dout    ds = w ⊙ (dw − Σ_S w ⊙ dw)
        dq = c·ds k                  dk = c·dsᵀ q     (dropout's mask applied to dw)
    """

    def __init__(self, dropout: float = 0.0, scale: float | None = None):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{type(self).__name__}: dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        self.scale = None if scale is None else float(scale)

    def forward(self, query, key, value, key_padding_mask=None, attn_mask=None,
                is_causal=False):
        xp = backends.namespace(query)
        if (query.ndim < 2 or key.ndim != query.ndim or value.ndim != query.ndim
                or key.shape[-1] != query.shape[-1] or key.shape[:-2] != query.shape[:-2]
                or value.shape[:-1] != key.shape[:-1]):
            raise ValueError(
                f"{layer_name(self)}: expected query (..., L, E), key (..., S, E) and value "
                f"(..., S, Ev) with the same leading axes, got {tuple(query.shape)}, "
                f"{tuple(key.shape)} and {tuple(value.shape)}")
        lead, length, key_length = tuple(query.shape[:-2]), query.shape[-2], key.shape[-2]
        check_mask(self, "key_padding_mask", key_padding_mask, str(lead + (key_length,)),
                   [lead + (key_length,)])
        check_mask(self, "attn_mask", attn_mask,
                   f"{(length, key_length)} or {lead + (length, key_length)}",
                   [(length, key_length), lead + (length, key_length)])
        kpm = None if key_padding_mask is None else xp.expand_dims(key_padding_mask, axis=-2)
        mask, shift = combine_masks(xp, kpm, attn_mask, is_causal, length, key_length, query)
        scale = 1.0 / math.sqrt(query.shape[-1]) if self.scale is None else self.scale
        dropout = self.dropout if self.training else 0.0
        out, weights, cache = attention_forward(query, key, value, scale, mask, shift, dropout)
        self.save_for_backward(cache)
        return out, weights

    def backward(self, grad_output, grad_weights=None):
        (cache,) = self.saved
        return attention_backward(cache, grad_output, grad_weights)

    def extra_repr(self):
        return f"dropout={self.dropout}, scale={self.scale}"


class DotProductAttention(ScaledDotProductAttention):
    """Dot-product attention: ScaledDotProductAttention with scale 1 (s = q kᵀ)."""

    def __init__(self, dropout: float = 0.0):
        super().__init__(dropout, scale=1.0)


class AdditiveAttention(Module):
    """Additive (Bahdanau) attention.

    forward(query (N, L, Eq) or (N, Eq), keys (N, S, Ek), values (N, S, Ev),
    key_padding_mask=None) → (context (N, L, Ev) or (N, Ev), weights (N, L, S) or (N, S)):
        z = tanh(W_q q + W_k k (+ b))      s = vᵀ z      w = softmax_S(s)      c = w V
    key_padding_mask (N, S) bool, True ignores a key (weight 0; an all-masked row gives
    zero weights and a zero context).
    Parameters: query_proj.weight W_q (H, Eq), key_proj.weight W_k (H, Ek) (and
    key_proj.bias b with ``bias=True``), score_proj.weight v (1, H).

    backward(grad_context, grad_weights=None) → (dq, dk, dvalues):
        dw = dc Vᵀ (+ dweights)    dvalues = wᵀ dc    ds = w ⊙ (dw − Σ_S w ⊙ dw)
        dz = ds vᵀ ⊙ (1 − z²)      dv += Σ ds z       dW_q += (Σ_S dz)ᵀ q
        dW_k += (Σ_L dz)ᵀ k        dq = (Σ_S dz) W_q   dk = (Σ_L dz) W_k
    """

    def __init__(self, query_size: int, key_size: int, hidden_size: int, bias: bool = False):
        super().__init__()
        self.query_proj = Linear(query_size, hidden_size, bias=False)
        self.key_proj = Linear(key_size, hidden_size, bias=bias)
        self.score_proj = Linear(hidden_size, 1, bias=False)

    def forward(self, query, keys, values, key_padding_mask=None):
        xp = backends.namespace(query)
        single = query.ndim == 2
        q = xp.expand_dims(query, axis=1) if single else query
        eq, ek = self.query_proj.in_features, self.key_proj.in_features
        if (q.ndim != 3 or keys.ndim != 3 or values.ndim != 3 or q.shape[2] != eq
                or keys.shape[2] != ek or keys.shape[0] != q.shape[0]
                or values.shape[:2] != keys.shape[:2]):
            raise ValueError(
                f"{layer_name(self)}: expected query (N, L, {eq}) or (N, {eq}), keys "
                f"(N, S, {ek}) and values (N, S, Ev), got {tuple(query.shape)}, "
                f"{tuple(keys.shape)} and {tuple(values.shape)}")
        n, s = keys.shape[0], keys.shape[1]
        check_mask(self, "key_padding_mask", key_padding_mask, "(N, S)", [(n, s)])
        qh = self.query_proj(q)                                   # (N, L, H)
        kh = self.key_proj(keys)                                  # (N, S, H)
        z = xp.tanh(xp.expand_dims(qh, axis=2) + xp.expand_dims(kh, axis=1))
        scores = xp.squeeze(self.score_proj(z), axis=3)           # (N, L, S)
        mask = None
        if key_padding_mask is not None:
            mask = xp.expand_dims(key_padding_mask, axis=1)
        w = masked_softmax(xp, scores, mask)
        context = w @ values
        self.save_for_backward(single, z, w, values)
        if single:
            return xp.squeeze(context, axis=1), xp.squeeze(w, axis=1)
        return context, w

    def backward(self, grad_context, grad_weights=None):
        single, z, w, values = self.saved
        xp = backends.namespace(grad_context)
        if single:
            grad_context = xp.expand_dims(grad_context, axis=1)
            if grad_weights is not None:
                grad_weights = xp.expand_dims(grad_weights, axis=1)
        dw = grad_context @ transposed_copy(xp, values)
        if grad_weights is not None:
            dw += grad_weights
        dvalues = xp.matrix_transpose(w) @ grad_context
        ds = w * (dw - xp.sum(w * dw, axis=-1, keepdims=True))
        dz = self.score_proj.backward(xp.expand_dims(ds, axis=3))
        dz *= 1.0 - z * z
        dq = self.query_proj.backward(xp.sum(dz, axis=2))
        dk = self.key_proj.backward(xp.sum(dz, axis=1))
        return (xp.squeeze(dq, axis=1) if single else dq), dk, dvalues

    def extra_repr(self):
        return (f"query_size={self.query_proj.in_features}, "
                f"key_size={self.key_proj.in_features}, "
                f"hidden_size={self.query_proj.out_features}, "
                f"bias={self.key_proj.bias is not None}")
