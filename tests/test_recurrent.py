"""Recurrent layers: gradients by finite differences, values and gradients against
PyTorch, variable lengths, dropout between layers, PyTorch's parameter names."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import on

import xdl
from xdl.backends import to_numpy
from xdl.gradcheck import gradcheck
from xdl.nn.module import Module, no_grad
from xdl.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

SEQUENCES = {
    "rnn-tanh": (RNN, {}),
    "rnn-relu": (RNN, {"nonlinearity": "relu"}),
    "lstm": (LSTM, {}),
    "gru": (GRU, {}),
}
CELLS = {
    "rnn-tanh": (RNNCell, {}),
    "rnn-relu": (RNNCell, {"nonlinearity": "relu"}),
    "lstm": (LSTMCell, {}),
    "gru": (GRUCell, {}),
}
IN, H, N, T = 2, 3, 3, 4
LENGTHS = [4, 1, 3]


def _pairs(mode, state):
    """(h, c) for an LSTM's state, h otherwise."""
    return state if mode == "LSTM" else (state, None)


class CellUnderTest(Module):
    """gradcheck adapter: a cell's h and c as separate inputs, its input gradients flat."""

    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def forward(self, x, h=None, c=None):
        if self.cell.mode == "LSTM":
            return self.cell(x, None if h is None else (h, c))
        return self.cell(x, h)

    def backward(self, *grads):
        result = self.cell.backward(*grads)
        if not isinstance(result, tuple):
            return result
        dx, state = result
        return (dx, *state) if isinstance(state, tuple) else (dx, state)


class SequenceUnderTest(Module):
    """gradcheck adapter: h0 and c0 as separate inputs, lengths passed through, the
    input gradients flat (dx, dh0, dc0)."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x, h0=None, c0=None, lengths=None):
        hx = (h0, c0) if self.rnn.mode == "LSTM" and h0 is not None else h0
        return self.rnn(x, hx, lengths)

    def backward(self, grad_output, grad_state):
        result = self.rnn.backward(grad_output, grad_state)
        if not isinstance(result, tuple):
            return result
        dx, state = result
        return (dx, *state) if isinstance(state, tuple) else (dx, state)


def _layer(kind, table=SEQUENCES, **kwargs):
    cls, extra = table[kind]
    return cls(IN, H, **extra, **kwargs).to(dtype="float64")


def _states(backend, rng, layer, batch=N):
    """Random (h0, c0 or None) for ``layer`` on ``backend``."""
    shape = (layer.num_layers * layer.num_directions, batch, H)
    h0 = on(backend, rng.normal(size=shape))
    c0 = on(backend, rng.normal(size=shape)) if layer.mode == "LSTM" else None
    return h0, c0


# -- gradients by finite differences ------------------------------------------------------


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
@pytest.mark.parametrize("kind", CELLS)
def test_cell_gradients(backend, rng, kind, with_state):
    cell = _layer(kind, CELLS)
    x = on(backend, rng.normal(size=(N, IN)))
    inputs = [x]
    if with_state:
        inputs.append(on(backend, rng.normal(size=(N, H))))
        if cell.mode == "LSTM":
            inputs.append(on(backend, rng.normal(size=(N, H))))
    result = gradcheck(CellUnderTest(cell), *inputs)
    assert result.ok
    assert len(result.checked) == len(inputs) + 4  # every input and the four parameters


SEQUENCE_CASES = {
    "one-layer": ({"num_layers": 1}, False, None),
    "two-layer-bidir-state-time-major": (
        {"num_layers": 2, "bidirectional": True, "batch_first": False}, True, None),
    "two-layer-bidir-state-lengths": ({"num_layers": 2, "bidirectional": True}, True, LENGTHS),
}


@pytest.mark.parametrize("case", SEQUENCE_CASES)
@pytest.mark.parametrize("kind", SEQUENCES)
def test_sequence_gradients(backend, rng, kind, case):
    kwargs, with_state, lengths = SEQUENCE_CASES[case]
    rnn = _layer(kind, **kwargs)
    shape = (N, T, IN) if rnn.batch_first else (T, N, IN)
    h0, c0 = _states(backend, rng, rnn) if with_state else (None, None)
    inputs = (on(backend, rng.normal(size=shape)), h0, c0, lengths)
    result = gradcheck(SequenceUnderTest(rnn), *inputs, samples=5)
    assert result.ok
    expected_inputs = 1 + (with_state + (with_state and rnn.mode == "LSTM"))
    assert len(result.checked) == expected_inputs + len(list(rnn.parameters()))


def test_dropout_between_layers_gradients(backend, rng):
    """With the seed reset before every forward the dropout masks repeat, so the
    training-mode backward (which reuses the forward's masks) can be checked."""

    class Reseeded(SequenceUnderTest):
        def forward(self, *inputs):
            xdl.manual_seed(5)
            return super().forward(*inputs)

    lstm = _layer("lstm", num_layers=3, dropout=0.5)
    x = on(backend, rng.normal(size=(N, T, IN)))
    assert gradcheck(Reseeded(lstm), x, samples=4).ok


# -- values and gradients against PyTorch ----------------------------------------------------


def _torch_twin(torch, layer):
    """PyTorch's module of the same configuration, with ``layer``'s weights."""
    cls = {"RNN_TANH": torch.nn.RNN, "RNN_RELU": torch.nn.RNN, "LSTM": torch.nn.LSTM,
           "GRU": torch.nn.GRU}[layer.mode]
    extra = {"nonlinearity": "relu"} if layer.mode == "RNN_RELU" else {}
    if hasattr(layer, "num_layers"):
        twin = cls(layer.input_size, layer.hidden_size, num_layers=layer.num_layers,
                   bias=layer.bias, batch_first=layer.batch_first,
                   bidirectional=layer.bidirectional, **extra)
    else:
        cell_cls = {torch.nn.RNN: torch.nn.RNNCell, torch.nn.LSTM: torch.nn.LSTMCell,
                    torch.nn.GRU: torch.nn.GRUCell}[cls]
        twin = cell_cls(layer.input_size, layer.hidden_size,
                        bias=layer.bias_ih is not None, **extra)
    twin = twin.double()
    twin.load_state_dict({k: torch.tensor(to_numpy(v)) for k, v in layer.state_dict().items()})
    return twin


def _assert_close(actual, expected):
    np.testing.assert_allclose(to_numpy(actual), np.asarray(expected), rtol=1e-9, atol=1e-12)


TORCH_CASES = {
    "bidir-batch-first": ({"num_layers": 2, "bidirectional": True}, False, None),
    "time-major-state-no-bias": ({"num_layers": 2, "batch_first": False, "bias": False},
                                 True, None),
    "bidir-state-lengths": ({"num_layers": 2, "bidirectional": True}, True, LENGTHS),
}


@pytest.mark.parametrize("case", TORCH_CASES)
@pytest.mark.parametrize("kind", SEQUENCES)
def test_sequence_matches_pytorch(backend, rng, kind, case):
    torch = pytest.importorskip("torch")
    kwargs, with_state, lengths = TORCH_CASES[case]
    rnn = _layer(kind, **kwargs)
    twin = _torch_twin(torch, rnn)
    shape = (N, T, IN) if rnn.batch_first else (T, N, IN)
    x = rng.normal(size=shape)
    states = _states(backend, rng, rnn) if with_state else None
    hx = None if states is None else (states if rnn.mode == "LSTM" else states[0])
    t_x = torch.tensor(x, requires_grad=True)
    t_states = None if states is None else [torch.tensor(to_numpy(s), requires_grad=True)
                                            for s in states if s is not None]
    t_hx = None if t_states is None else (tuple(t_states) if rnn.mode == "LSTM"
                                          else t_states[0])
    t_input = t_x
    if lengths is not None:
        t_input = torch.nn.utils.rnn.pack_padded_sequence(
            t_x, lengths, batch_first=rnn.batch_first, enforce_sorted=False)
    t_out, t_final = twin(t_input, t_hx)
    if lengths is not None:
        t_out, _ = torch.nn.utils.rnn.pad_packed_sequence(
            t_out, batch_first=rnn.batch_first, total_length=T)

    out, final = rnn(on(backend, x), hx, lengths)
    _assert_close(out, t_out.detach().numpy())
    finals = _pairs(rnn.mode, final)
    t_finals = _pairs(rnn.mode, t_final)
    for mine, theirs in zip(finals, t_finals):
        if theirs is not None:
            _assert_close(mine, theirs.detach().numpy())

    g_out = rng.normal(size=tuple(out.shape))
    g_final = [rng.normal(size=tuple(f.shape)) for f in finals if f is not None]
    torch.autograd.backward([t_out] + [f for f in t_finals if f is not None],
                            [torch.tensor(g) for g in [g_out] + g_final])
    g_state = [on(backend, g) for g in g_final]
    result = rnn.backward(on(backend, g_out),
                          tuple(g_state) if rnn.mode == "LSTM" else g_state[0])
    if with_state:
        dx, d_state = result
        d_states = d_state if rnn.mode == "LSTM" else (d_state,)
        for mine, theirs in zip(d_states, t_states):
            _assert_close(mine, theirs.grad.numpy())
    else:
        dx = result
    _assert_close(dx, t_x.grad.numpy())
    for (name, param), (t_name, t_param) in zip(rnn.named_parameters(),
                                                twin.named_parameters()):
        assert name == t_name
        _assert_close(param.grad, t_param.grad.numpy())


@pytest.mark.parametrize("kind", CELLS)
def test_cell_matches_pytorch(backend, rng, kind):
    torch = pytest.importorskip("torch")
    cell = _layer(kind, CELLS)
    twin = _torch_twin(torch, cell)
    x, h, c = (rng.normal(size=s) for s in [(N, IN), (N, H), (N, H)])
    t_x, t_h, t_c = (torch.tensor(a, requires_grad=True) for a in (x, h, c))
    lstm = cell.mode == "LSTM"
    mine = cell(on(backend, x), (on(backend, h), on(backend, c)) if lstm else on(backend, h))
    theirs = twin(t_x, (t_h, t_c) if lstm else t_h)
    mine, theirs = (mine, theirs) if lstm else ((mine,), (theirs,))
    grads = [rng.normal(size=(N, H)) for _ in mine]
    for a, b in zip(mine, theirs):
        _assert_close(a, b.detach().numpy())
    torch.autograd.backward(list(theirs), [torch.tensor(g) for g in grads])
    dx, d_state = cell.backward(*(on(backend, g) for g in grads))
    _assert_close(dx, t_x.grad.numpy())
    for a, b in zip(d_state if lstm else (d_state,), (t_h, t_c)):
        _assert_close(a, b.grad.numpy())
    for param, t_param in zip(cell.parameters(), twin.parameters()):
        _assert_close(param.grad, t_param.grad.numpy())


# -- variable lengths ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SEQUENCES)
def test_lengths_padding_and_last_states(backend, rng, kind):
    """Padded steps give zero outputs and zero input gradients; h_n (and c_n) are the
    states at each sequence's last real step, as if it were run alone unpadded."""
    rnn = _layer(kind, num_layers=2, bidirectional=True)
    x = rng.normal(size=(N, T, IN))
    out, final = rnn(on(backend, x), None, np.asarray(LENGTHS))
    dx = to_numpy(rnn.backward(on(backend, rng.normal(size=tuple(out.shape))),
                               None if rnn.mode != "LSTM" else (None, None)))
    out = to_numpy(out)
    for n, length in enumerate(LENGTHS):
        assert not out[n, length:].any()
        assert not dx[n, length:].any()
        assert dx[n, :length].all()
        alone_out, alone_final = rnn(on(backend, x[n:n + 1, :length]))
        np.testing.assert_allclose(out[n:n + 1, :length], to_numpy(alone_out), atol=1e-13)
        for state, alone in zip(_pairs(rnn.mode, final), _pairs(rnn.mode, alone_final)):
            if state is not None:
                np.testing.assert_allclose(to_numpy(state)[:, n:n + 1], to_numpy(alone),
                                           atol=1e-13)


def test_full_lengths_equal_no_lengths(backend, rng):
    gru = _layer("gru", num_layers=2, bidirectional=True)
    x = on(backend, rng.normal(size=(N, T, IN)))
    lengths = on(backend, np.full(N, T))
    for with_lengths, without in zip(gru(x, None, lengths), gru(x)):
        np.testing.assert_allclose(to_numpy(with_lengths), to_numpy(without), atol=1e-14)


# -- dropout, backward_params, grad_output None ----------------------------------------------


def test_dropout_between_layers(backend, rng):
    x = on(backend, rng.normal(size=(N, T, IN)), "float32")
    plain = LSTM(IN, H, num_layers=2)
    with_dropout = LSTM(IN, H, num_layers=2, dropout=0.0).load_state_dict(plain.state_dict())
    assert np.array_equal(to_numpy(plain(x)[0]), to_numpy(with_dropout(x)[0]))
    dropped = LSTM(IN, H, num_layers=2, dropout=0.6).load_state_dict(plain.state_dict())
    train_out = to_numpy(dropped(x)[0])
    assert not np.allclose(train_out, to_numpy(plain(x)[0]))
    dropped.eval()
    np.testing.assert_array_equal(to_numpy(dropped(x)[0]), to_numpy(plain(x)[0]))
    # no dropout after the last layer: one layer is the same in training and eval
    single = GRU(IN, H, dropout=0.6)
    single_eval = to_numpy(single.eval()(x)[0])
    np.testing.assert_array_equal(to_numpy(single.train()(x)[0]), single_eval)


@pytest.mark.parametrize("kind", SEQUENCES)
def test_backward_params_matches_backward(backend, rng, kind):
    rnn = _layer(kind, num_layers=2, bidirectional=True)
    x = on(backend, rng.normal(size=(N, T, IN)))
    out, _ = rnn(x)
    g = on(backend, rng.normal(size=tuple(out.shape)))
    rnn.backward(g)
    full = [to_numpy(p.grad) for p in rnn.parameters()]
    rnn.zero_grad()
    rnn(x)
    assert rnn.backward_params(g) is None
    for p, expected in zip(rnn.parameters(), full):
        np.testing.assert_allclose(to_numpy(p.grad), expected, rtol=1e-12)


def test_gradient_of_last_state_only(backend, rng):
    """A classifier on h_n passes no output gradient: backward(None, dh_n)."""
    rnn = _layer("gru", num_layers=2)
    x = on(backend, rng.normal(size=(N, T, IN)))
    out, h_n = rnn(x)
    g_h = on(backend, rng.normal(size=tuple(h_n.shape)))
    dx = to_numpy(rnn.backward(None, g_h))
    grads = [to_numpy(p.grad) for p in rnn.parameters()]
    rnn.zero_grad()
    zeros = on(backend, np.zeros(tuple(out.shape)))
    np.testing.assert_allclose(to_numpy(rnn.backward(zeros, g_h)), dx, atol=1e-14)
    for p, expected in zip(rnn.parameters(), grads):
        np.testing.assert_allclose(to_numpy(p.grad), expected, atol=1e-14)


def test_float32_and_shapes(backend, rng):
    lstm = LSTM(IN, 5, num_layers=3, bidirectional=True, batch_first=False)
    x = on(backend, rng.normal(size=(T, N, IN)), "float32")
    out, (h_n, c_n) = lstm(x)
    assert tuple(out.shape) == (T, N, 10)
    assert tuple(h_n.shape) == tuple(c_n.shape) == (6, N, 5)
    assert "float32" in str(out.dtype)
    dx = lstm.backward(on(backend, np.ones((T, N, 10)), "float32"))
    assert tuple(dx.shape) == (T, N, IN) and "float32" in str(dx.dtype)


# -- parameters, names, errors -----------------------------------------------------------------


def test_state_dict_keys_and_shapes_follow_pytorch():
    lstm = LSTM(3, 4, num_layers=2, bidirectional=True)
    assert list(lstm.state_dict()) == [
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
        "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse",
        "bias_hh_l0_reverse",
        "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1",
        "weight_ih_l1_reverse", "weight_hh_l1_reverse", "bias_ih_l1_reverse",
        "bias_hh_l1_reverse",
    ]
    shapes = {k: tuple(v.shape) for k, v in lstm.state_dict().items()}
    assert shapes["weight_ih_l0"] == (16, 3) and shapes["weight_ih_l1_reverse"] == (16, 8)
    assert shapes["weight_hh_l1"] == (16, 4) and shapes["bias_hh_l0_reverse"] == (16,)
    assert list(GRU(3, 4, num_layers=2, bias=False).state_dict()) == [
        "weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"]
    assert GRU(3, 4).weight_hh_l0.shape == (12, 4)
    assert RNN(3, 4).weight_ih_l0.shape == (4, 3)
    for cell, rows in [(RNNCell(3, 4), 4), (LSTMCell(3, 4), 16), (GRUCell(3, 4), 12)]:
        assert list(cell.state_dict()) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
        assert cell.weight_ih.shape == (rows, 3) and cell.weight_hh.shape == (rows, 4)


def test_initialisation_is_uniform_in_one_over_sqrt_hidden():
    bound = 1 / np.sqrt(16)
    for layer in (LSTM(3, 16, num_layers=2), GRUCell(3, 16)):
        values = np.concatenate([to_numpy(p.data).ravel() for p in layer.parameters()])
        assert values.min() >= -bound and values.max() <= bound
        assert values.max() > 0.9 * bound and values.min() < -0.9 * bound


def test_clear_errors(backend):
    lstm = LSTM(3, 4, num_layers=2)
    x = on(backend, np.zeros((2, 5, 3)), "float32")
    with pytest.raises(ValueError, match=r"LSTM.*\(N, T, I\).*I = 3.*\(2, 5, 2\)"):
        lstm(on(backend, np.zeros((2, 5, 2)), "float32"))
    with pytest.raises(ValueError, match=r"h0 of shape \(2, 2, 4\).*\(1, 2, 4\)"):
        state = on(backend, np.zeros((1, 2, 4)), "float32")
        lstm(x, (state, state))
    with pytest.raises(ValueError, match="pair"):
        lstm(x, on(backend, np.zeros((2, 2, 4)), "float32"))
    with pytest.raises(ValueError, match=r"lengths must be 2 integers in \[0, 5\]"):
        lstm(x, None, [5, 6])
    with pytest.raises(ValueError, match="lengths must be 2 integers"):
        lstm(x, None, [5])
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        GRU(3, 4, dropout=1.0)
    with pytest.raises(ValueError, match=r"GRUCell.*\(N, 3\)"):
        GRUCell(3, 4)(x)
    with no_grad():
        lstm(x)
    with pytest.raises(RuntimeError, match="without a forward pass"):
        lstm.backward(on(backend, np.zeros((2, 5, 4)), "float32"))
