"""Transformer layers (PyTorch's names and state_dict keys) and sinusoidal positional
encoding. Each backward calls the children's backward in reverse order and adds the
gradients where a residual connection splits the signal."""

from __future__ import annotations

import copy
import math

from xdl import backends
from xdl.nn.activation import activation as make_activation
from xdl.nn.attention import layer_name
from xdl.nn.dropout import Dropout
from xdl.nn.linear import Linear
from xdl.nn.module import Module, Sequential
from xdl.nn.multihead_attention import MultiheadAttention
from xdl.nn.normalization import LayerNorm


def _check_input(layer, name, x, d_model, batch_first):
    if x.ndim != 3 or x.shape[2] != d_model:
        layout = "N, L" if batch_first else "L, N"
        raise ValueError(f"{layer_name(layer)}: expected {name} of shape ({layout}, "
                         f"{d_model}), got {tuple(x.shape)}")


def _activation(layer, value):
    if isinstance(value, Module):
        return value
    if isinstance(value, str):
        return make_activation(value)
    raise TypeError(f"{type(layer).__name__}: activation must be a name such as 'relu' or a "
                    f"Module, got {type(value).__name__}")


class _FeedForward:
    """linear2(dropout(activation(linear1(x)))) → dropoutK, shared by both layers.

    It runs on the rows (N·L, d_model): NumPy multiplies a 3-D array by a matrix
    several times slower than the same rows as a 2-D array.
    """

    def _ff_block(self, x, out_dropout):
        xp = backends.namespace(x)
        rows = xp.reshape(x, (-1, x.shape[-1]))
        h = self.dropout(self.activation(self.linear1(rows)))
        return xp.reshape(out_dropout(self.linear2(h)), x.shape)

    def _ff_backward(self, grad, out_dropout):
        xp = backends.namespace(grad)
        g = xp.reshape(grad, (-1, grad.shape[-1]))
        g = self.linear2.backward(out_dropout.backward(g))
        g = self.linear1.backward(self.activation.backward(self.dropout.backward(g)))
        return xp.reshape(g, grad.shape)

    def _build_feed_forward(self, d_model, dim_feedforward, dropout, bias):
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)


class TransformerEncoderLayer(_FeedForward, Module):
    """Self-attention and a feed-forward block, each with a residual connection and
    layer normalisation (PyTorch's ``nn.TransformerEncoderLayer``).

    forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False), with
    SA(x) = dropout1(self_attn(x, x, x)) and FF(x) = dropout2(linear2(dropout(act(linear1(x))))):
        post-norm (default):  x₁ = norm1(x + SA(x))        y = norm2(x₁ + FF(x₁))
        pre-norm (norm_first): x₁ = x + SA(norm1(x))       y = x₁ + FF(norm2(x₁))
    backward, with each block's backward written J_B(g):
        post-norm: r = J_norm2(dy)  dx₁ = r + J_FF(r)   r = J_norm1(dx₁)  dx = r + J_SA(r)
        pre-norm:  dx₁ = dy + J_norm2(J_FF(dy))         dx = dx₁ + J_norm1(J_SA(dx₁))
    where J_SA sums the query, key and value gradients (one product, backward_shared).

    Input (N, L, d_model) with ``batch_first=True`` (the default here; PyTorch's is
    False: (L, N, d_model)). Masks as MultiheadAttention's; is_causal=True applies the
    causal mask. ``activation``: a name of xdl.nn.activation ("relu", "tanh", ...) or
    a Module ("gelu" is not available: the array API has no erf).
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation="relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = True, norm_first: bool = False, bias: bool = True):
        super().__init__()
        self.d_model, self.batch_first, self.norm_first = d_model, batch_first, norm_first
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first)
        self._build_feed_forward(d_model, dim_feedforward, dropout, bias)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(self, activation)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        _check_input(self, "src", src, self.d_model, self.batch_first)
        masks = (src_key_padding_mask, src_mask, is_causal)
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), *masks)
            return x + self._ff_block(self.norm2(x), self.dropout2)
        x = self.norm1(x + self._sa_block(x, *masks))
        return self.norm2(x + self._ff_block(x, self.dropout2))

    def _sa_block(self, x, key_padding_mask, attn_mask, is_causal):
        out, _ = self.self_attn(x, x, x, key_padding_mask, attn_mask, need_weights=False,
                                is_causal=is_causal)
        return self.dropout1(out)

    def _sa_backward(self, grad):
        return self.self_attn.backward_shared(self.dropout1.backward(grad))

    def backward(self, grad):
        if self.norm_first:
            grad = grad + self.norm2.backward(self._ff_backward(grad, self.dropout2))
            return grad + self.norm1.backward(self._sa_backward(grad))
        r = self.norm2.backward(grad)
        r = self.norm1.backward(r + self._ff_backward(r, self.dropout2))
        return r + self._sa_backward(r)

    def extra_repr(self):
        return (f"d_model={self.d_model}, nhead={self.self_attn.num_heads}, "
                f"dim_feedforward={self.linear1.out_features}, norm_first={self.norm_first}")


class TransformerDecoderLayer(_FeedForward, Module):
    """Self-attention, cross-attention over the encoder's output (memory) and a
    feed-forward block, each with a residual connection and layer normalisation
    (PyTorch's ``nn.TransformerDecoderLayer``).

    forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False), with
    SA(x) = dropout1(self_attn(x, x, x)), CA(x, m) = dropout2(multihead_attn(x, m, m)),
    FF(x) = dropout3(linear2(dropout(act(linear1(x))))):
        post-norm: x₁ = norm1(x + SA(x))   x₂ = norm2(x₁ + CA(x₁, m))   y = norm3(x₂ + FF(x₂))
        pre-norm:  x₁ = x + SA(norm1(x))   x₂ = x₁ + CA(norm2(x₁), m)   y = x₂ + FF(norm3(x₂))
    backward(dy) → (dtgt, dmemory), the blocks' backward in reverse, gradients added at
    each residual split (as in TransformerEncoderLayer); dmemory = d key + d value of
    the cross-attention.

    As in PyTorch, the target is only masked as asked: pass tgt_is_causal=True (which
    here applies the causal mask itself, no tgt_mask needed) or a tgt_mask for
    autoregressive decoding. ``batch_first=True`` is the default here (PyTorch: False).
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation="relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = True, norm_first: bool = False, bias: bool = True):
        super().__init__()
        self.d_model, self.batch_first, self.norm_first = d_model, batch_first, norm_first
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first)
        self._build_feed_forward(d_model, dim_feedforward, dropout, bias)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation(self, activation)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        _check_input(self, "tgt", tgt, self.d_model, self.batch_first)
        _check_input(self, "memory", memory, self.d_model, self.batch_first)
        self_masks = (tgt_key_padding_mask, tgt_mask, tgt_is_causal)
        cross_masks = (memory_key_padding_mask, memory_mask, memory_is_causal)
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), *self_masks)
            x = x + self._mha_block(self.norm2(x), memory, *cross_masks)
            return x + self._ff_block(self.norm3(x), self.dropout3)
        x = self.norm1(x + self._sa_block(x, *self_masks))
        x = self.norm2(x + self._mha_block(x, memory, *cross_masks))
        return self.norm3(x + self._ff_block(x, self.dropout3))

    def _sa_block(self, x, key_padding_mask, attn_mask, is_causal):
        out, _ = self.self_attn(x, x, x, key_padding_mask, attn_mask, need_weights=False,
                                is_causal=is_causal)
        return self.dropout1(out)

    def _mha_block(self, x, memory, key_padding_mask, attn_mask, is_causal):
        out, _ = self.multihead_attn(x, memory, memory, key_padding_mask, attn_mask,
                                     need_weights=False, is_causal=is_causal)
        return self.dropout2(out)

    def _sa_backward(self, grad):
        return self.self_attn.backward_shared(self.dropout1.backward(grad))

    def _mha_backward(self, grad):
        """(dx, dmemory) of the cross-attention block."""
        return self.multihead_attn.backward_shared(self.dropout2.backward(grad))

    def backward(self, grad):
        if self.norm_first:
            grad = grad + self.norm3.backward(self._ff_backward(grad, self.dropout3))
            dx, dmemory = self._mha_backward(grad)
            grad = grad + self.norm2.backward(dx)
            return grad + self.norm1.backward(self._sa_backward(grad)), dmemory
        r = self.norm3.backward(grad)
        r = self.norm2.backward(r + self._ff_backward(r, self.dropout3))
        dx, dmemory = self._mha_backward(r)
        r = self.norm1.backward(r + dx)
        return r + self._sa_backward(r), dmemory

    def extra_repr(self):
        return (f"d_model={self.d_model}, nhead={self.self_attn.num_heads}, "
                f"dim_feedforward={self.linear1.out_features}, norm_first={self.norm_first}")


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` applied in turn, then ``norm`` if given
    (PyTorch's ``nn.TransformerEncoder``; keys ``layers.{i}.…`` and ``norm.…``).

    forward(src, mask=None, src_key_padding_mask=None, is_causal=False): x_{i+1} =
    layer_i(x_i), y = norm(x_n).  backward: the layers' backward in reverse order.
    """

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm=None):
        super().__init__()
        self.layers = Sequential(*(copy.deepcopy(encoder_layer) for _ in range(num_layers)))
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        for layer in self.layers:
            x = layer(x, mask, src_key_padding_mask, is_causal)
        return x if self.norm is None else self.norm(x)

    def backward(self, grad):
        if self.norm is not None:
            grad = self.norm.backward(grad)
        for layer in reversed(list(self.layers)):
            grad = layer.backward(grad)
        return grad


class TransformerDecoder(Module):
    """``num_layers`` copies of ``decoder_layer`` applied in turn, each attending to the
    same memory, then ``norm`` if given (PyTorch's ``nn.TransformerDecoder``).

    forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False).
    backward(dy) → (dtgt, dmemory), dmemory summed over the layers.
    """

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm=None):
        super().__init__()
        self.layers = Sequential(*(copy.deepcopy(decoder_layer) for _ in range(num_layers)))
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                      memory_key_padding_mask, tgt_is_causal, memory_is_causal)
        return x if self.norm is None else self.norm(x)

    def backward(self, grad):
        if self.norm is not None:
            grad = self.norm.backward(grad)
        dmemory = None
        for layer in reversed(list(self.layers)):
            grad, dm = layer.backward(grad)
            dmemory = dm if dmemory is None else dmemory + dm
        return grad, dmemory


class PositionalEncoding(Module):
    """Adds the sinusoidal position code of "Attention is all you need", then dropout.

    forward(x (N, L, d_model), or (L, N, d_model) with batch_first=False):
        PE[pos, 2i] = sin(pos / 10000^(2i/d))   PE[pos, 2i+1] = cos(pos / 10000^(2i/d))
        y = dropout(x + PE[:L])
    backward: dx = dropout'(dy) (the identity without dropout).
    PE is computed on the input's device and dtype (no parameters, no state_dict entry);
    sequences longer than ``max_len`` raise.
    """

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000,
                 batch_first: bool = True):
        super().__init__()
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        self.dropout = Dropout(dropout)

    def encoding(self, length: int, like):
        """PE[:length] as a (length, d_model) array on ``like``'s device and dtype."""
        xp = backends.namespace(like)
        pairs = (self.d_model + 1) // 2
        pos = xp.astype(xp.arange(length, device=like.device), like.dtype)
        two_i = xp.astype(xp.arange(pairs, device=like.device), like.dtype) * 2.0
        rate = xp.exp(two_i * (-math.log(10000.0) / self.d_model))
        angle = xp.expand_dims(pos, axis=1) * xp.expand_dims(rate, axis=0)
        pe = xp.stack([xp.sin(angle), xp.cos(angle)], axis=2)      # (L, pairs, 2)
        return xp.reshape(pe, (length, 2 * pairs))[:, :self.d_model]

    def forward(self, x):
        _check_input(self, "input", x, self.d_model, self.batch_first)
        length = x.shape[1] if self.batch_first else x.shape[0]
        if length > self.max_len:
            raise ValueError(f"{layer_name(self)}: sequence length {length} exceeds "
                             f"max_len {self.max_len}")
        pe = self.encoding(length, x)
        if not self.batch_first:
            pe = backends.namespace(x).expand_dims(pe, axis=1)
        return self.dropout(x + pe)

    def backward(self, grad):
        return self.dropout.backward(grad)

    def extra_repr(self):
        return f"d_model={self.d_model}, max_len={self.max_len}"
