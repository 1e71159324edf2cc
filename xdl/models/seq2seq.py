"""The attention encoder–decoder (Bahdanau et al.) and the decoding every seq2seq model
shares: greedy decoding and beam search.

Token conventions: ids are int64, ``padding_idx`` (0) pads on the right, the decoder
input at step t is the gold token t − 1 with ``bos`` first (teacher forcing), and the
target is the gold sequence followed by ``eos``; the loss is
``CrossEntropyLoss(ignore_index=padding_idx)`` on the logits (N·T, V) and the flattened
targets (N·T,).

Decoding protocol (:class:`AttentionSeq2Seq` and
:class:`xdl.models.transformer.TransformerSeq2Seq` implement it):

    encode(src) → state
    decode_step(state, tokens (B,)) → (logits (B, V), state, attention (B, S) or None)
    select_state(state, rows (B',)) → the state of the batch rows ``rows``

:func:`greedy_decode` and :func:`beam_search` run a fixed ``max_len`` steps on the
device (no host round-trip inside the loop) and return device arrays;
:func:`token_lists` cuts them at ``eos`` on the host.
"""

from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

from xdl import backends
from xdl.models.registry import register
from xdl.nn import GRU, LSTM, AdditiveAttention, Embedding, GRUCell, Linear, LSTMCell
from xdl.nn.activation import log_softmax
from xdl.nn.module import Module, no_grad


def check_ids(model, name, ids):
    """Raise a ValueError naming ``model`` unless ``ids`` is an integer (N, length) array."""
    if ids.ndim != 2 or "int" not in backends.dtype_name(ids.dtype):
        raise ValueError(f"{type(model).__name__}: expected {name} as integer ids of shape "
                         f"(N, length), got shape {tuple(ids.shape)} and dtype {ids.dtype}")


def check_targets(model, src, tgt_in):
    """Raise a ValueError unless ``tgt_in`` is integer ids with ``src``'s batch size."""
    check_ids(model, "tgt_in", tgt_in)
    if tgt_in.shape[0] != src.shape[0]:
        raise ValueError(f"{type(model).__name__}: expected tgt_in of shape "
                         f"({src.shape[0]}, T) to match src {tuple(src.shape)}, got "
                         f"{tuple(tgt_in.shape)}")


@register("attention_seq2seq")
class AttentionSeq2Seq(Module):
    """GRU (or LSTM) encoder and a GRU (or LSTM) decoder with additive attention.

    forward(src (N, S), tgt_in (N, T)) → logits (N·T, V_tgt), teacher forcing:
        e_s = E_src[src_s]          (H_enc, h_S) = RNN_enc(e, lengths = #non-pad of src)
        h_0 = h_S (LSTM: (h_S, c_S))
        for t = 1..T:
            c_t, a_t = attention(h_{t−1}, H_enc, H_enc, src padding masked)
            h_t = cell([E_tgt[y_{t−1}] ; c_t], h_{t−1})
            logits_t = W_o [h_t ; c_t] + b_o
    The attention weights a_t (N, S) of the last forward are kept in ``attention``
    (N, T, S).

    backward(dlogits) — backpropagation through time, the children's backward in
    reverse: d[h_t ; c_t] = W_oᵀ dlogits_t; from t = T down to 1, with dh carried from
    step t + 1,
        (dx_t, dh_{t−1}) = cell.backward(dh_t + dh)    dx_t = [de_t ; dc'_t]
        (dq, dk, dv) = attention.backward(dc_t + dc'_t)
        dh = dh_{t−1} + dq          dH_enc += dk + dv (summed over steps)
    then E_tgt gets de, the encoder gets (dH_enc, dh_S = dh) and E_src its input
    gradient. Returns None (ids have no gradient).
    Parameters: src_embedding, tgt_embedding, encoder (GRU or LSTM, one layer,
    batch_first), attention (AdditiveAttention), cell (GRUCell or LSTMCell), head.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, embedding_dim: int = 32,
                 hidden_size: int = 128, cell: str = "gru", padding_idx: int = 0):
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise ValueError(f"AttentionSeq2Seq: cell must be 'gru' or 'lstm', got {cell!r}")
        self.cell_type, self.padding_idx = cell, padding_idx
        self.hidden_size, self.embedding_dim = hidden_size, embedding_dim
        self.tgt_vocab_size = tgt_vocab_size
        self.src_embedding = Embedding(src_vocab_size, embedding_dim, padding_idx=padding_idx)
        self.tgt_embedding = Embedding(tgt_vocab_size, embedding_dim, padding_idx=padding_idx)
        rnn, step = (GRU, GRUCell) if cell == "gru" else (LSTM, LSTMCell)
        self.encoder = rnn(embedding_dim, hidden_size)
        self.attention = AdditiveAttention(hidden_size, hidden_size, hidden_size)
        self.cell = step(embedding_dim + hidden_size, hidden_size)
        self.head = Linear(2 * hidden_size, tgt_vocab_size)
        self.attention_weights = None

    # -- encoder ------------------------------------------------------------------------
    def encode(self, src):
        """The decoding state (h, c or None, H_enc, source padding mask) of ``src``."""
        check_ids(self, "src", src)
        xp = backends.namespace(src)
        pad = src == self.padding_idx
        lengths = xp.sum(xp.astype(xp.logical_not(pad), xp.int64), axis=1)
        memory, final = self.encoder(self.src_embedding(src), lengths=lengths)
        h, c = (final[0][0, ...], final[1][0, ...]) if self.cell_type == "lstm" \
            else (final[0, ...], None)
        return h, c, memory, pad

    # -- one decoder step ---------------------------------------------------------------
    def _step(self, embedded, h, c, memory, pad):
        context, weights = self.attention(h, memory, memory, pad)
        xp = backends.namespace(embedded)
        x = xp.concat([embedded, context], axis=1)
        if self.cell_type == "lstm":
            h, c = self.cell(x, (h, c))
        else:
            h = self.cell(x, h)
        return h, c, context, weights

    def decode_step(self, state, tokens):
        """(logits (B, V), next state, attention weights (B, S)) after feeding ``tokens``."""
        h, c, memory, pad = state
        xp = backends.namespace(tokens)
        h, c, context, weights = self._step(self.tgt_embedding(tokens), h, c, memory, pad)
        logits = self.head(xp.concat([h, context], axis=1))
        return logits, (h, c, memory, pad), weights

    def select_state(self, state, rows):
        xp = backends.namespace(rows)
        return tuple(None if s is None else xp.take(s, rows, axis=0) for s in state)

    # -- teacher forcing ----------------------------------------------------------------
    def forward(self, src, tgt_in):
        check_targets(self, src, tgt_in)
        xp = backends.namespace(src)
        h, c, memory, pad = self.encode(src)
        embedded = self.tgt_embedding(tgt_in)
        outputs, weights, steps = [], [], []
        for t in range(tgt_in.shape[1]):
            h, c, context, w = self._step(embedded[:, t, :], h, c, memory, pad)
            outputs.append(xp.concat([h, context], axis=1))
            weights.append(w)
            steps.append(self.attention.saved_states() + self.cell.saved_states())
        self.attention_weights = xp.stack(weights, axis=1)
        out = xp.stack(outputs, axis=1)                               # (N, T, 2H)
        self.save_for_backward(steps, tuple(out.shape), tuple(memory.shape))
        return self.head(xp.reshape(out, (-1, out.shape[2])))

    def backward(self, grad):
        steps, shape, memory_shape = self.saved
        xp = backends.namespace(grad)
        hidden = self.hidden_size
        d_out = xp.reshape(self.head.backward(grad), shape)
        d_memory = xp.zeros(memory_shape, dtype=grad.dtype, device=grad.device)
        dh = xp.zeros((shape[0], hidden), dtype=grad.dtype, device=grad.device)
        dc = xp.zeros_like(dh) if self.cell_type == "lstm" else None
        d_embedded = [None] * len(steps)
        for t in range(len(steps) - 1, -1, -1):
            self.restore_saved_states(steps[t])
            dh = dh + d_out[:, t, :hidden]
            if self.cell_type == "lstm":
                dx, (dh, dc) = self.cell.backward(dh, dc)
            else:
                dx, dh = self.cell.backward(dh)
            d_embedded[t] = dx[:, :self.embedding_dim]
            d_context = d_out[:, t, hidden:] + dx[:, self.embedding_dim:]
            dq, dk, dv = self.attention.backward(d_context)
            dh = dh + dq
            d_memory = d_memory + dk + dv
        self.tgt_embedding.backward(xp.stack(d_embedded, axis=1))
        d_state = (dh[None, ...], dc[None, ...]) if self.cell_type == "lstm" else dh[None, ...]
        self.src_embedding.backward(self.encoder.backward(d_memory, d_state))

    def extra_repr(self):
        return (f"embedding_dim={self.embedding_dim}, hidden_size={self.hidden_size}, "
                f"cell={self.cell_type!r}")


# -- decoding ---------------------------------------------------------------------------------


class Decoded(NamedTuple):
    """Decoder output on the device: ``tokens`` int64 (N, T) for greedy decoding,
    (N, K, T) best first for beam search, ``eos`` repeated after a sequence ends;
    ``scores`` the summed log-probabilities up to and including eos, (N,) or (N, K);
    ``attention`` (N, T, S) from greedy decoding of an attention model, else None."""

    tokens: object
    scores: object
    attention: object = None


@contextlib.contextmanager
def _decoding(model):
    """Eval mode and no_grad for the block; restores the mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            yield
    finally:
        model.train(was_training)


def _eos_only(xp, vocab, eos, like):
    """(V,) row: 0 at eos, −∞ elsewhere (a finished sequence can only repeat eos)."""
    columns = xp.arange(vocab, device=like.device)
    return xp.where(columns == eos, xp.asarray(0.0, dtype=like.dtype, device=like.device),
                    xp.asarray(-math.inf, dtype=like.dtype, device=like.device))


def greedy_decode(model, src, max_len: int, bos: int, eos: int) -> Decoded:
    """y_t = argmax_v log p(v | y_<t, src) for t = 1..max_len, fed back as the next input;
    after eos the sequence repeats eos and its score stops growing."""
    xp = backends.namespace(src)
    n = src.shape[0]
    with _decoding(model):
        state = model.encode(src)
        tokens = xp.full((n,), bos, dtype=xp.int64, device=src.device)
        finished = xp.zeros((n,), dtype=xp.bool, device=src.device)
        outputs, attention, score = [], [], None
        for _ in range(max_len):
            logits, state, weights = model.decode_step(state, tokens)
            logp = log_softmax(xp, logits, axis=1)
            if score is None:
                score = xp.zeros((n,), dtype=logp.dtype, device=logp.device)
                columns = xp.arange(logp.shape[1], device=logp.device)
            best = xp.argmax(logp, axis=1)
            step = xp.sum(xp.where(columns[None, :] == best[:, None], logp, 0.0), axis=1)
            tokens = xp.where(finished, xp.asarray(eos, dtype=best.dtype, device=best.device),
                              best)
            score = score + xp.where(finished, 0.0, step)
            finished = xp.logical_or(finished, tokens == eos)
            outputs.append(tokens)
            attention.append(weights)
    weights = None if attention[0] is None else xp.stack(attention, axis=1)
    return Decoded(xp.stack(outputs, axis=1), score, weights)


def beam_search(model, src, beam_width: int, max_len: int, bos: int, eos: int) -> Decoded:
    """Keep the ``beam_width`` = K best prefixes by summed log-probability: at each step
    every prefix k is extended by every token v, score_kv = score_k + log p(v | prefix_k),
    and the K best of the K·V candidates survive (a finished prefix only extends by eos
    at no cost). Returns all K sequences, best first; K = 1 is greedy decoding.
    Scores are not length-normalised."""
    if beam_width < 1:
        raise ValueError(f"beam_search: beam_width must be >= 1, got {beam_width}")
    xp = backends.namespace(src)
    n, k = src.shape[0], beam_width
    device = src.device
    batch = xp.arange(n, dtype=xp.int64, device=device)[:, None]
    with _decoding(model):
        state = model.encode(src)
        rows = xp.reshape(xp.broadcast_to(batch, (n, k)), (-1,))
        state = model.select_state(state, rows)
        tokens = xp.full((n * k,), bos, dtype=xp.int64, device=device)
        finished = xp.zeros((n * k,), dtype=xp.bool, device=device)
        history = xp.zeros((n * k, 0), dtype=xp.int64, device=device)
        scores = None
        for _ in range(max_len):
            logits, state, _ = model.decode_step(state, tokens)
            logp = log_softmax(xp, logits, axis=1)
            vocab = logp.shape[1]
            if scores is None:   # only the first copy of each source starts
                first = xp.arange(k, device=device) == 0
                scores = xp.broadcast_to(
                    xp.where(first, 0.0, xp.asarray(-math.inf, dtype=logp.dtype,
                                                    device=device))[None, :], (n, k))
                eos_row = _eos_only(xp, vocab, eos, logp)
            logp = xp.where(finished[:, None], eos_row[None, :], logp)
            candidates = xp.reshape(xp.reshape(scores, (-1, 1)) + logp, (n, k * vocab))
            order = xp.argsort(candidates, axis=1, descending=True, stable=True)[:, :k]
            flat = xp.reshape(order + batch * (k * vocab), (-1,))
            scores = xp.reshape(xp.take(xp.reshape(candidates, (-1,)), flat), (n, k))
            parent = xp.reshape(order // vocab + batch * k, (-1,))
            tokens = xp.reshape(order % vocab, (-1,))
            state = model.select_state(state, parent)
            finished = xp.logical_or(xp.take(finished, parent), tokens == eos)
            history = xp.concat([xp.take(history, parent, axis=0), tokens[:, None]], axis=1)
    return Decoded(xp.reshape(history, (n, k, max_len)), scores)


def token_lists(tokens, eos: int) -> list[list[int]]:
    """Host lists of ids, each cut before its first ``eos`` (tokens (N, T))."""
    host = backends.to_numpy(tokens).tolist()
    return [row[:row.index(eos)] if eos in row else row for row in host]
