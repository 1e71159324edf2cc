"""Text models of the recurrent chapters: the bidirectional GRU classifier."""

from __future__ import annotations

from xdl import backends
from xdl.models.registry import register
from xdl.models.sequence import top_state_grad
from xdl.nn import GRU, LSTM, Dropout, Embedding, Linear
from xdl.nn.module import Module


@register("bigru_classifier")
class BiGRUClassifier(Module):
    """Embedding → bidirectional GRU → [h_forward; h_backward] → dropout → linear.

    Token ids (N, L) are right-padded with ``padding_idx``; each sequence's length is
    the number of other tokens, so the GRU never reads the padding and h_forward,
    h_backward are the states after the last real token and after the first one.
    backward: the head's gradient splits into the two final states, the GRU turns it
    into gradients of the embedded tokens, and the embedding scatter-adds them into
    its rows. ``pretrained`` (V, D) initialises the embedding (trainable unless
    ``freeze``).
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 50, hidden_size: int = 64,
                 num_classes: int = 2, dropout: float = 0.5, padding_idx: int = 0,
                 pretrained=None, freeze: bool = False):
        super().__init__()
        self.padding_idx, self.hidden_size = padding_idx, hidden_size
        self.embedding = (Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
                          if pretrained is None else
                          Embedding.from_pretrained(pretrained, freeze=freeze,
                                                    padding_idx=padding_idx))
        self.gru = GRU(embedding_dim, hidden_size, bidirectional=True)
        self.dropout = Dropout(dropout)
        self.head = Linear(2 * hidden_size, num_classes)

    def forward(self, ids):
        xp = backends.namespace(ids)
        lengths = xp.sum(xp.astype(ids != self.padding_idx, xp.int64), axis=1)
        _, h_n = self.gru(self.embedding(ids), lengths=lengths)
        features = xp.concat([h_n[-2, ...], h_n[-1, ...]], axis=1)
        self.save_for_backward(tuple(h_n.shape))
        return self.head(self.dropout(features))

    def backward(self, grad):
        (shape,) = self.saved
        xp = backends.namespace(grad)
        d_features = self.dropout.backward(self.head.backward(grad))
        h = self.hidden_size
        d_top = xp.stack([d_features[:, :h], d_features[:, h:]], axis=0)
        self.embedding.backward(self.gru.backward(None, top_state_grad(d_top, shape[0])))

    def backward_params(self, grad) -> None:
        self.backward(grad)


@register("char_lm")
class CharLanguageModel(Module):
    """Character language model: embedding → LSTM → linear logits for the next character.

    forward(ids (N, T)) → logits (N·T, V), one row per position, so that
    ``CrossEntropyLoss()(logits, reshape(targets, (-1,)))`` is the mean per-character
    cross-entropy in nats. backward: the head's gradient goes through the LSTM (BPTT)
    into the embedding's rows.
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 64, hidden_size: int = 256,
                 num_layers: int = 2, dropout: float = 0.2):
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = Embedding(vocab_size, embedding_dim)
        self.lstm = LSTM(embedding_dim, hidden_size, num_layers, dropout=dropout)
        self.head = Linear(hidden_size, vocab_size)
        self.state = None

    def forward(self, ids, state=None):
        xp = backends.namespace(ids)
        output, self.state = self.lstm(self.embedding(ids), state)
        self.save_for_backward(tuple(output.shape))
        return self.head(xp.reshape(output, (-1, output.shape[2])))

    def backward(self, grad):
        (shape,) = self.saved
        xp = backends.namespace(grad)
        d_output = xp.reshape(self.head.backward(grad), shape)
        self.embedding.backward(self.lstm.backward(d_output))

    def backward_params(self, grad) -> None:
        self.backward(grad)


def sample_text(model: CharLanguageModel, vocab, prime: str, length: int,
                temperature: float = 0.8, seed: int = 0) -> str:
    """``prime`` continued by ``length`` characters drawn from softmax(logits / T).

    Lower temperatures T pick likelier characters; the LSTM state carries over
    from one character to the next. Runs in eval mode under no_grad.
    """
    import random

    from xdl.nn import no_grad

    backend = backends.current()
    xp = backend.xp
    rng = random.Random(seed)
    was_training = model.training
    model.eval()
    text = prime
    try:
        with no_grad():
            logits = model(backend.asarray(vocab.encode(prime)[None, :], "int64"))
            for _ in range(length):
                scaled = logits[-1, :] / temperature
                probs = backends.to_numpy(xp.exp(scaled - xp.max(scaled)))
                probs = probs / probs.sum()
                index = rng.choices(range(len(probs)), weights=probs.tolist())[0]
                text += vocab.decode([index])
                logits = model(backend.asarray([[index]], "int64"), model.state)
    finally:
        model.train(was_training)
    return text
