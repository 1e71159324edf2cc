"""Sequence models of the recurrent chapters: a regressor for time series."""

from __future__ import annotations

from xdl import backends
from xdl.models.registry import register
from xdl.nn import GRU, LSTM, RNN, Linear
from xdl.nn.module import Module

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


def top_state_grad(d_top, rows: int):
    """The gradient of a recurrent layer's h_n (rows, N, H) when only its last
    ``d_top.shape[0]`` rows (the top layer's directions) feed the head: zeros, then d_top."""
    xp = backends.namespace(d_top)
    zeros = xp.zeros((rows - d_top.shape[0],) + tuple(d_top.shape[1:]), dtype=d_top.dtype,
                     device=d_top.device)
    return xp.concat([zeros, d_top], axis=0)


@register("sequence_regressor")
class SequenceRegressor(Module):
    """A recurrent layer over a window (N, T, input_size), then a linear head from the
    top layer's last state to ``horizon`` values:

        h_T = top layer's state after step T      y = h_T W_headᵀ + b_head

    backward: dh_T = dy W_head, the only gradient the recurrent layer receives (its
    other final states and its per-step outputs get none).
    ``cell`` is "rnn" (tanh), "lstm" or "gru"; ``horizon`` > 1 predicts several steps
    at once (direct multi-step prediction); :func:`predict_recursive` feeds one-step
    predictions back instead.
    """

    def __init__(self, input_size: int = 1, hidden_size: int = 30, num_layers: int = 1,
                 cell: str = "rnn", horizon: int = 1, dropout: float = 0.0):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"SequenceRegressor: cell must be one of {sorted(CELLS)}, "
                             f"got {cell!r}")
        self.cell, self.horizon = cell, horizon
        self.rnn = CELLS[cell](input_size, hidden_size, num_layers, dropout=dropout)
        self.head = Linear(hidden_size, horizon)

    def forward(self, x):
        _, state = self.rnn(x)
        h_n = state[0] if self.cell == "lstm" else state
        self.save_for_backward(tuple(h_n.shape))
        return self.head(h_n[-1, ...])

    def _state_grad(self, grad):
        (shape,) = self.saved
        d_h = top_state_grad(self.head.backward(grad)[None, ...], shape[0])
        return (d_h, None) if self.cell == "lstm" else d_h

    def backward(self, grad):
        return self.rnn.backward(None, self._state_grad(grad))

    def backward_params(self, grad) -> None:
        self.rnn.backward_params(None, self._state_grad(grad))


def predict_recursive(model: SequenceRegressor, window, steps: int):
    """Multi-step prediction by feeding each one-step prediction back in.

    ``window`` is (N, T, 1); returns (N, steps). Runs under evaluation semantics
    (the caller puts the model in eval mode and no_grad as needed).
    """
    xp = backends.namespace(window)
    predictions = []
    for _ in range(steps):
        step = model(window)[:, :1]
        predictions.append(step)
        window = xp.concat([window[:, 1:, :], step[:, :, None]], axis=1)
    return xp.concat(predictions, axis=1)
