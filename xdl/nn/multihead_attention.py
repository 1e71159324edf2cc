"""MultiheadAttention with PyTorch's parameters, masks and return values."""

from __future__ import annotations

import math

from xdl import backends
from xdl.nn import init
from xdl.nn.attention import (
    attention_backward,
    attention_forward,
    check_mask,
    combine_masks,
    layer_name,
)
from xdl.nn.linear import Linear
from xdl.nn.module import Module


class MultiheadAttention(Module):
    """Multi-head attention (PyTorch's ``nn.MultiheadAttention``), h = ``num_heads``
    heads of size d = E / h.

    forward(query (N, L, E), key (N, S, E), value (N, S, E), key_padding_mask=None,
    attn_mask=None, need_weights=True, is_causal=False, average_attn_weights=True)
    → (output (N, L, E), weights (N, L, S) averaged over heads, or (N, h, L, S), or
    None when ``need_weights`` is False):
        [Q | K | V] = [query W_qᵀ | key W_kᵀ | value W_vᵀ] + b_in, split into h heads
        P_i = softmax(Q_i K_iᵀ / √d + masks)     A_i = dropout(P_i) V_i
        output = [A_1 … A_h] W_oᵀ + b_o          weights = mean_i dropout(P_i)
    ``batch_first=True`` is the default here (PyTorch's is False; then inputs are
    (L, N, E)). Masks: key_padding_mask (N, S), attn_mask (L, S) or (N·h, L, S); bool
    True ignores the position (weight exactly 0), float is added to the scores;
    is_causal=True applies the causal mask itself (PyTorch needs attn_mask with it). A
    query with every key masked gets a zero attention output (PyTorch gives NaN).
    When query is key is value (self-attention) Q, K, V come from one matrix product.

    backward(grad_output, grad_weights=None) → (dquery, dkey, dvalue), the partial
    gradient of each argument; an array passed in several places gets their sum, which
    :meth:`backward_shared` computes directly. Per head (dropout's mask omitted), with
    dA from out_proj's backward, as in attention_backward:
        dP = dA Vᵀ (+ dweights / h)   dV = Pᵀ dA   dS = P ⊙ (dP − Σ_S P ⊙ dP)
        dQ = dS K / √d                dK = dSᵀ Q / √d
    then through the projections: d in_proj_weight += [dQ|dK|dV]ᵀ [query|key|value],
    dquery = dQ W_q, dkey = dK W_k, dvalue = dV W_v.

    Parameters (PyTorch's names and initialisation): in_proj_weight (3E, E) = [W_q; W_k;
    W_v] (Xavier uniform), in_proj_bias (3E,) (zeros), out_proj.weight (E, E),
    out_proj.bias (E,) (zeros). Not supported: kdim/vdim ≠ E, add_bias_kv, add_zero_attn.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = True):
        super().__init__()
        if embed_dim < 1 or num_heads < 1 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be a positive "
                             f"multiple of num_heads ({num_heads})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1), got {dropout}")
        self.embed_dim, self.num_heads = int(embed_dim), int(num_heads)
        self.head_dim = embed_dim // num_heads
        self.dropout, self.batch_first = float(dropout), bool(batch_first)
        self.in_proj_weight = init.xavier_uniform_(init.empty_parameter((3 * embed_dim,
                                                                         embed_dim)))
        self.in_proj_bias = init.empty_parameter((3 * embed_dim,)) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        if bias:
            init.zeros_(self.out_proj.bias)

    # -- forward ------------------------------------------------------------------------
    def forward(self, query, key, value, key_padding_mask=None, attn_mask=None,
                need_weights=True, is_causal=False, average_attn_weights=True):
        xp = backends.namespace(query)
        roles = _roles(query, key, value)
        self._check_inputs(query, key, value)
        if not self.batch_first:
            query, key, value = (xp.permute_dims(a, (1, 0, 2)) for a in (query, key, value))
        n, length, key_length = query.shape[0], query.shape[1], key.shape[1]
        h, d = self.num_heads, self.head_dim
        check_mask(self, "key_padding_mask", key_padding_mask, f"(N, S) = {(n, key_length)}",
                   [(n, key_length)])
        check_mask(self, "attn_mask", attn_mask,
                   f"(L, S) = {(length, key_length)} or (N·num_heads, L, S)",
                   [(length, key_length), (n * h, length, key_length)])
        if attn_mask is not None and attn_mask.ndim == 3:
            attn_mask = xp.reshape(attn_mask, (n, h, length, key_length))
        kpm = (None if key_padding_mask is None
               else xp.reshape(key_padding_mask, (n, 1, 1, key_length)))
        mask, shift = combine_masks(xp, kpm, attn_mask, is_causal, length, key_length, query)

        # 2-D (N·T, E) operands: NumPy multiplies a 3-D array by a matrix several
        # times slower than the same product on the flattened rows
        inputs = [xp.reshape(a, (a.shape[0] * a.shape[1], self.embed_dim))
                  for a in (query, key, value)]
        sizes = (length, key_length, key_length)
        projected = [self._project(xp, inputs[group[0]], group, n, sizes[group[0]])
                     for group in roles]
        q, k, v = (heads for group, p in zip(roles, projected) for heads in p)
        dropout = self.dropout if self.training else 0.0
        out, weights, cache = attention_forward(q, k, v, 1.0 / math.sqrt(d), mask, shift,
                                                dropout)
        out = xp.reshape(xp.permute_dims(out, (0, 2, 1, 3)), (n * length, self.embed_dim))
        output = xp.reshape(self.out_proj(out), (n, length, self.embed_dim))
        self.save_for_backward(roles, [inputs[group[0]] for group in roles], cache,
                               average_attn_weights)
        if not self.batch_first:
            output = xp.permute_dims(output, (1, 0, 2))
        if not need_weights:
            return output, None
        return output, (xp.mean(weights, axis=1) if average_attn_weights else weights)

    def _check_inputs(self, query, key, value):
        e = self.embed_dim
        layout = "N, L" if self.batch_first else "L, N"
        kv_layout = "N, S" if self.batch_first else "S, N"
        batch_axis = 0 if self.batch_first else 1
        if (query.ndim != 3 or key.ndim != 3 or value.ndim != 3 or query.shape[2] != e
                or key.shape[2] != e or value.shape[2] != e
                or key.shape[batch_axis] != query.shape[batch_axis]
                or key.shape[:2] != value.shape[:2]):
            raise ValueError(
                f"{layer_name(self)}: expected query ({layout}, {e}), key and value "
                f"({kv_layout}, {e}) with the same N, got {tuple(query.shape)}, "
                f"{tuple(key.shape)} and {tuple(value.shape)}")

    def _project(self, xp, x, group, n, t):
        """x W_rᵀ + b_r for the rows x (N·T, E) and the roles r in ``group`` (0 = q,
        1 = k, 2 = v) in one product, split into heads: one (N, h, T, d) array per role."""
        e, h, d = self.embed_dim, self.num_heads, self.head_dim
        rows = slice(group[0] * e, (group[-1] + 1) * e)
        y = x @ self.in_proj_weight.data[rows, :].T
        if self.in_proj_bias is not None:
            y += self.in_proj_bias.data[rows]
        y = xp.permute_dims(xp.reshape(y, (n, t, len(group), h, d)), (2, 0, 3, 1, 4))
        return [y[i, ...] for i in range(len(group))]

    # -- backward -----------------------------------------------------------------------
    def backward(self, grad_output, grad_weights=None):
        roles, grads, n = self._backward_projected(grad_output, grad_weights)
        w = self.in_proj_weight.data
        e = self.embed_dim
        result = []
        for group, g in zip(roles, grads):
            for i, role in enumerate(group):
                dx = g[:, i * e:(i + 1) * e] @ w[role * e:(role + 1) * e, :]
                result.append(self._to_layout(dx, n))
        return tuple(result)

    def backward_shared(self, grad_output, grad_weights=None):
        """The gradient of each distinct input array, each from one matrix product:
        dx after self-attention (query is key is value), (dquery, dmemory) after
        attention with key is value (cross-attention), else (dquery, dkey, dvalue)."""
        roles, grads, n = self._backward_projected(grad_output, grad_weights)
        e = self.embed_dim
        w = self.in_proj_weight.data
        result = tuple(self._to_layout(g @ w[group[0] * e:(group[-1] + 1) * e, :], n)
                       for group, g in zip(roles, grads))
        return result[0] if len(result) == 1 else result

    def _backward_projected(self, grad_output, grad_weights):
        """Accumulates every parameter gradient; returns the roles, per group of roles
        sharing an input d[Q|K|V] of that group as (N·T, len(group)·E), and N."""
        roles, inputs, cache, averaged = self.saved
        xp = backends.namespace(grad_output)
        h, d, e = self.num_heads, self.head_dim, self.embed_dim
        if not self.batch_first:
            grad_output = xp.permute_dims(grad_output, (1, 0, 2))
        n, length = grad_output.shape[0], grad_output.shape[1]
        g = self.out_proj.backward(xp.reshape(grad_output, (n * length, e)))
        g = xp.permute_dims(xp.reshape(g, (n, length, h, d)), (0, 2, 1, 3))
        if grad_weights is not None and averaged:
            grad_weights = xp.expand_dims(grad_weights, axis=1) * (1.0 / h)
        heads = attention_backward(cache, g, grad_weights)
        grads, dweight, dbias = [], [], []
        position = 0
        for group, x in zip(roles, inputs):
            parts = heads[position:position + len(group)]
            position += len(group)
            # (N, h, T, d) per role → (N, T, roles, h, d) → (N·T, roles·E)
            stacked = xp.permute_dims(xp.stack(parts, axis=0), (1, 3, 0, 2, 4))
            g2 = xp.reshape(stacked, (x.shape[0], len(group) * e))
            dweight.append(g2.T @ x)
            dbias.append(xp.sum(g2, axis=0))
            grads.append(g2)
        self.in_proj_weight.accumulate(dweight[0] if len(dweight) == 1
                                       else xp.concat(dweight, axis=0))
        if self.in_proj_bias is not None:
            self.in_proj_bias.accumulate(dbias[0] if len(dbias) == 1
                                         else xp.concat(dbias, axis=0))
        return roles, grads, n

    def _to_layout(self, grad, n):
        """Rows (N·T, E) back to the input's layout."""
        xp = backends.namespace(grad)
        grad = xp.reshape(grad, (n, grad.shape[0] // n, self.embed_dim))
        return grad if self.batch_first else xp.permute_dims(grad, (1, 0, 2))

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"dropout={self.dropout}, bias={self.in_proj_bias is not None}, "
                f"batch_first={self.batch_first}")


def _roles(query, key, value):
    """Groups of roles (0 = query, 1 = key, 2 = value) that share one input array."""
    if query is key and key is value:
        return ((0, 1, 2),)
    if key is value:
        return ((0,), (1, 2))
    return ((0,), (1,), (2,))
