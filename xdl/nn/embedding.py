"""Embedding: a lookup table of learned vectors, indexed by integer ids."""

from __future__ import annotations

from xdl import backends
from xdl.nn import init
from xdl.nn.module import Module, Parameter


class Embedding(Module):
    """y[..., :] = W[idx[...], :] for an integer array idx of any shape → (*idx.shape, D).

    weight W: (num_embeddings, embedding_dim), N(0, 1) (PyTorch's default) with the
    row ``padding_idx`` (if given; negative counts from the end) zeroed.

    backward: dW[v] += Σ_{j: idx_j = v} dy_j (a scatter-add, so repeated ids
    accumulate), except for v = padding_idx, whose row gets no gradient; returns None
    (integer ids have no gradient). A frozen weight (``requires_grad`` False, as
    :meth:`from_pretrained` makes by default) skips the scatter-add.

    Ids are not range-checked: that needs a host round-trip. An id outside
    [0, num_embeddings) raises IndexError on NumPy and PyTorch (NumPy wraps negative
    ids around) and is undefined on other backends. Not supported: PyTorch's
    max_norm, scale_grad_by_freq and sparse gradients.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = self._check_padding_idx(padding_idx, num_embeddings)
        self.weight = init.normal_(init.empty_parameter((num_embeddings, embedding_dim)))
        self._zero_padding_row()

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True,
                        padding_idx: int | None = None) -> Embedding:
        """An Embedding whose weight is a copy of ``embeddings`` (num_embeddings, D): an
        array of any backend or a host NumPy array, moved to the current backend with
        its dtype kept (``.to(dtype=...)`` changes it). ``freeze`` sets
        ``weight.requires_grad`` False, so training leaves it unchanged. As in PyTorch,
        the ``padding_idx`` row keeps its given values (only its gradient is zero).
        """
        if len(tuple(embeddings.shape)) != 2:
            raise ValueError("Embedding.from_pretrained: expected a 2-D array "
                             f"(num_embeddings, embedding_dim), got shape "
                             f"{tuple(embeddings.shape)}")
        num, dim = (int(n) for n in embeddings.shape)
        layer = cls.__new__(cls)
        Module.__init__(layer)
        layer.num_embeddings, layer.embedding_dim = num, dim
        layer.padding_idx = cls._check_padding_idx(padding_idx, num)
        data = backends.to_device(embeddings, backends.current())
        if data is embeddings:  # never share memory with the caller's array
            data = backends.namespace(data).asarray(data, copy=True)
        layer.weight = Parameter(data, requires_grad=not freeze)
        return layer

    @staticmethod
    def _check_padding_idx(padding_idx, num_embeddings):
        if padding_idx is None:
            return None
        if not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(f"Embedding: padding_idx must be in [{-num_embeddings}, "
                             f"{num_embeddings}), got {padding_idx}")
        return padding_idx % num_embeddings

    def _zero_padding_row(self):
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx, ...] = 0.0

    def forward(self, indices):
        dtype = backends.dtype_name(indices.dtype)
        if "int" not in dtype:
            raise TypeError(f"{self!r}: expected an integer array of ids, got dtype {dtype}")
        xp = backends.namespace(self.weight.data, indices)
        flat = xp.reshape(indices, (-1,))
        self.save_for_backward(flat)
        rows = xp.take(self.weight.data, flat, axis=0)
        return xp.reshape(rows, tuple(indices.shape) + (self.embedding_dim,))

    def backward(self, grad):
        (flat,) = self.saved
        if not self.weight.requires_grad:
            return None
        xp = backends.namespace(grad)
        rows = xp.reshape(grad, (-1, self.embedding_dim))
        if self.padding_idx is not None:
            rows = rows * xp.astype(flat != self.padding_idx, rows.dtype)[:, None]
        weight = self.weight.data
        target = xp.zeros(tuple(weight.shape), dtype=rows.dtype, device=weight.device)
        self.weight.accumulate(backends.scatter_add(target, flat, rows))
        return None

    def extra_repr(self):
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        return text if self.padding_idx is None else text + f", padding_idx={self.padding_idx}"
