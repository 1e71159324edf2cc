"""Transformer models: an encoder–decoder with the seq2seq decoding interface, and a
decoder-only character language model."""

from __future__ import annotations

from xdl import backends
from xdl.models.registry import register
from xdl.models.seq2seq import check_ids, check_targets
from xdl.nn import (
    Embedding,
    LayerNorm,
    Linear,
    PositionalEncoding,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from xdl.nn.module import Module


@register("transformer_seq2seq")
class TransformerSeq2Seq(Module):
    """Transformer encoder–decoder ("Attention is all you need"), pre-norm layers.

    forward(src (N, S), tgt_in (N, T)) → logits (N·T, V_tgt), teacher forcing:
        x = PE(E_src[src])       m = Encoder(x, source padding masked)
        y = PE(E_tgt[tgt_in])    z = Decoder(y, m, causal self-attention,
                                             source padding masked in cross-attention)
        logits = z W_oᵀ + b_o
    (embeddings are N(0, 1), so they are not scaled by √d_model.)
    backward(dlogits): dz = dlogits W_o; (dy, dm) = Decoder.backward(dz);
    dx = Encoder.backward(dm); the embeddings scatter-add PE's backward of dy and dx.
    Returns None (ids have no gradient).

    Decoding (see :mod:`xdl.models.seq2seq`): the state holds the memory, the source
    padding mask and the prefix decoded so far; each step reruns the decoder on the
    whole prefix (no key/value cache) and returns the last position's logits.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, d_model: int = 64,
                 nhead: int = 4, num_encoder_layers: int = 2, num_decoder_layers: int = 2,
                 dim_feedforward: int = 256, dropout: float = 0.1, max_len: int = 512,
                 padding_idx: int = 0):
        super().__init__()
        self.d_model, self.padding_idx = d_model, padding_idx
        self.src_embedding = Embedding(src_vocab_size, d_model, padding_idx=padding_idx)
        self.tgt_embedding = Embedding(tgt_vocab_size, d_model, padding_idx=padding_idx)
        self.src_position = PositionalEncoding(d_model, dropout, max_len)
        self.tgt_position = PositionalEncoding(d_model, dropout, max_len)
        self.encoder = TransformerEncoder(
            TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, norm_first=True),
            num_encoder_layers, norm=LayerNorm(d_model))
        self.decoder = TransformerDecoder(
            TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout, norm_first=True),
            num_decoder_layers, norm=LayerNorm(d_model))
        self.head = Linear(d_model, tgt_vocab_size)

    def encode(self, src):
        """The decoding state (memory (N, S, d), padding mask (N, S), empty prefix)."""
        check_ids(self, "src", src)
        xp = backends.namespace(src)
        pad = src == self.padding_idx
        memory = self.encoder(self.src_position(self.src_embedding(src)),
                              src_key_padding_mask=pad)
        prefix = xp.zeros((src.shape[0], 0), dtype=src.dtype, device=src.device)
        return memory, pad, prefix

    def _decode(self, tgt_in, memory, pad):
        y = self.tgt_position(self.tgt_embedding(tgt_in))
        return self.decoder(y, memory, memory_key_padding_mask=pad, tgt_is_causal=True)

    def decode_step(self, state, tokens):
        memory, pad, prefix = state
        xp = backends.namespace(tokens)
        prefix = xp.concat([prefix, xp.astype(tokens, prefix.dtype)[:, None]], axis=1)
        z = self._decode(prefix, memory, pad)
        return self.head(z[:, -1, :]), (memory, pad, prefix), None

    def select_state(self, state, rows):
        xp = backends.namespace(rows)
        return tuple(xp.take(s, rows, axis=0) for s in state)

    def forward(self, src, tgt_in):
        check_targets(self, src, tgt_in)
        xp = backends.namespace(src)
        memory, pad, _ = self.encode(src)
        z = self._decode(tgt_in, memory, pad)
        self.save_for_backward(tuple(z.shape))
        return self.head(xp.reshape(z, (-1, self.d_model)))

    def backward(self, grad):
        (shape,) = self.saved
        xp = backends.namespace(grad)
        dz = xp.reshape(self.head.backward(grad), shape)
        dy, dmemory = self.decoder.backward(dz)
        self.tgt_embedding.backward(self.tgt_position.backward(dy))
        self.src_embedding.backward(self.src_position.backward(self.encoder.backward(dmemory)))


@register("transformer_lm")
class TransformerLanguageModel(Module):
    """Decoder-only Transformer character language model (GPT-style, pre-norm).

    forward(ids (N, T), state=None) → logits (N·T', V), one row per position:
        h_0 = PE(E[ids])     h_l = Block_l(h_{l−1}, causal mask)     logits = LN(h_L) W_oᵀ + b_o
    where each block is a pre-norm TransformerEncoderLayer with causal self-attention,
    so position t sees ids ≤ t only. ``state`` (the previous window, as ``self.state``
    after a call) is prepended and the window cut to the last ``context`` ids (T' ≤
    context): :func:`xdl.models.sample_text` then samples from it as from the LSTM
    model. In training (state None) T' = T.
    backward(dlogits): the head's gradient through the final norm and the blocks in
    reverse, then PE's backward into the embedding's rows. Returns None.
    """

    def __init__(self, vocab_size: int, d_model: int = 128, nhead: int = 4,
                 num_layers: int = 4, dim_feedforward: int = 512, dropout: float = 0.1,
                 context: int = 128):
        super().__init__()
        self.vocab_size, self.d_model, self.context = vocab_size, d_model, context
        self.embedding = Embedding(vocab_size, d_model)
        self.position = PositionalEncoding(d_model, dropout, max_len=context)
        self.blocks = TransformerEncoder(
            TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, norm_first=True),
            num_layers, norm=LayerNorm(d_model))
        self.head = Linear(d_model, vocab_size)
        self.state = None

    def forward(self, ids, state=None):
        check_ids(self, "ids", ids)
        xp = backends.namespace(ids)
        if state is not None:
            ids = xp.concat([state, ids], axis=1)
            ids = ids[:, max(0, ids.shape[1] - self.context):]
        if ids.shape[1] > self.context:
            raise ValueError(f"TransformerLanguageModel: expected at most context = "
                             f"{self.context} ids per row, got shape {tuple(ids.shape)}")
        self.state = ids
        h = self.blocks(self.position(self.embedding(ids)), is_causal=True)
        self.save_for_backward(tuple(h.shape))
        return self.head(xp.reshape(h, (-1, self.d_model)))

    def backward(self, grad):
        (shape,) = self.saved
        xp = backends.namespace(grad)
        dh = xp.reshape(self.head.backward(grad), shape)
        self.embedding.backward(self.position.backward(self.blocks.backward(dh)))

    def extra_repr(self):
        return f"vocab_size={self.vocab_size}, d_model={self.d_model}, context={self.context}"
