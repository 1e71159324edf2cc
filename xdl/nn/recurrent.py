"""Recurrent layers with backpropagation through time by hand: RNN, LSTM, GRU and
their one-step cells RNNCell, LSTMCell, GRUCell (PyTorch's names, parameters and gate
orders).

One layer in one direction, with x_t (N, I), h_t (N, H), G gates and
A_t = x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh (N, G·H):

    RNN  (G = 1)  h_t = φ(A_t),  φ = tanh or relu
    LSTM (G = 4)  [i f g o] = [σ σ tanh σ](A_t)
                  c_t = f ⊙ c_{t−1} + i ⊙ g          h_t = o ⊙ tanh(c_t)
    GRU  (G = 3)  [r z] = σ(A_t^{rz})
                  n = tanh(x_t W_inᵀ + b_in + r ⊙ (h_{t−1} W_hnᵀ + b_hn))
                  h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}

Backward, step t from last to first, with dh = dy_t + (dh_t from step t + 1):

    RNN   dA = dh ⊙ φ'  (1 − h_t² for tanh, [h_t > 0] for relu)
    LSTM  dc = dc_t + dh ⊙ o ⊙ (1 − tanh² c_t)
          d[i f g o] = [dc ⊙ g, dc ⊙ c_{t−1}, dc ⊙ i, dh ⊙ tanh c_t]
          dA = d[i f g o] ⊙ [i(1 − i), f(1 − f), 1 − g², o(1 − o)]     dc_{t−1} = dc ⊙ f
    GRU   dAⁿ = dh ⊙ (1 − z) ⊙ (1 − n²)      dz = dh ⊙ (h_{t−1} − n)
          dr = dAⁿ ⊙ (h_{t−1} W_hnᵀ + b_hn)    dA^{rz} = [dr, dz] ⊙ [r(1 − r), z(1 − z)]
          input side dA = [dA^{rz}, dAⁿ], hidden side dA_h = [dA^{rz}, r ⊙ dAⁿ]
    all   dh_{t−1} = dA_h W_hh (+ dh ⊙ z for the GRU), dA_h = dA for RNN and LSTM

and then, with the steps stacked (X (T·N, I), H_prev (T·N, H) the states h_{t−1}):

    dW_ih += dAᵀ X      dW_hh += dA_hᵀ H_prev      db_ih += Σ dA      db_hh += Σ dA_h
    dX = dA W_ih

so a layer costs one input product X W_ihᵀ for all steps, one h W_hhᵀ and one
dA_h W_hh per step, and three products after the loop. Every sigmoid is computed as
σ(a) = (1 + tanh(a/2)) / 2 with the sigmoid rows of the weights halved (exact in
floating point), so one tanh covers all of a step's gates.

Variable lengths (``lengths``, right-padded batches) use the mask m_t = [t < length]:
h_t = m_t ? h̃_t : h_{t−1} (and c_t likewise), y_t = m_t h_t. The backward splits dh
into m_t dh, which goes through the cell, and (1 − m_t) dh, which passes to h_{t−1}
unchanged, so padded steps give no parameter or input gradient.
"""

from __future__ import annotations

import math

from xdl import backends
from xdl.nn import init
from xdl.nn.activation import relu
from xdl.nn.module import Module

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# -- one layer, one direction, all time steps ---------------------------------------------


def _full(xp, n, value, like):
    return xp.full((n,), value, dtype=like.dtype, device=like.device)


def _gate_scale(mode, hidden, like):
    """Row factors s of A: 1/2 on sigmoid rows (σ(a) = (1 + tanh(s·a)) / 2), 1 on tanh
    rows; None for the plain RNN."""
    xp = backends.namespace(like)
    if mode == "LSTM":
        return xp.concat([_full(xp, 2 * hidden, 0.5, like), _full(xp, hidden, 1.0, like),
                          _full(xp, hidden, 0.5, like)])
    if mode == "GRU":
        return xp.concat([_full(xp, 2 * hidden, 0.5, like), _full(xp, hidden, 1.0, like)])
    return None


def _direction_forward(mode, params, x2, steps, batch, h0, c0, mask, reverse):
    """Run one layer in one direction over the time-major input ``x2`` (T·N, I).

    ``params`` = (weight_ih, weight_hh, bias_ih or None, bias_hh or None), Parameters.
    ``mask`` = (bool (T, N, 1), float (T, N, 1)) or None. Returns the states in time
    order Z (T + 1, N, H) — outputs and previous states are slices of it — the last
    state h and c, and what the backward needs.
    """
    xp = backends.namespace(x2)
    w_ih, w_hh, b_ih, b_hh = (None if p is None else p.data for p in params)
    hidden = w_hh.shape[1]
    scale = _gate_scale(mode, hidden, w_hh)
    bias = None
    if b_ih is not None:
        if mode == "GRU":  # b_hn stays inside r ⊙ (h W_hnᵀ + b_hn)
            bias = b_ih + xp.concat([b_hh[:2 * hidden], xp.zeros_like(b_hh[2 * hidden:])])
        else:
            bias = b_ih + b_hh
    if scale is not None:
        w_ih = w_ih * scale[:, None]
        w_hh = w_hh * scale[:, None]
        bias = None if bias is None else bias * scale
    projection = x2 @ xp.matrix_transpose(w_ih)
    if bias is not None:
        projection += bias
    projection = xp.reshape(projection, (steps, batch, -1))
    w_hh_t = xp.matrix_transpose(w_hh)
    order = range(steps - 1, -1, -1) if reverse else range(steps)

    h, c = h0, c0
    states, cells, extras = [], [c0], []
    if mode == "LSTM":
        offset = 1.0 - scale
    for t in order:
        a = h @ w_hh_t
        if mode == "GRU":
            p = projection[t, ...]
            rz = xp.tanh(a[:, :2 * hidden] + p[:, :2 * hidden])
            rz *= 0.5
            rz += 0.5
            r, z = rz[:, :hidden], rz[:, hidden:]
            hn = a[:, 2 * hidden:] if b_hh is None else a[:, 2 * hidden:] + b_hh[2 * hidden:]
            n = xp.tanh(p[:, 2 * hidden:] + r * hn)
            new_h = n + z * (h - n)
            extras.append((rz, n, hn))
        else:
            a += projection[t, ...]
            if mode == "LSTM":
                gates = xp.tanh(a)
                gates *= scale
                gates += offset
                i, f = gates[:, :hidden], gates[:, hidden:2 * hidden]
                g, o = gates[:, 2 * hidden:3 * hidden], gates[:, 3 * hidden:]
                new_c = f * c + i * g
                tanh_c = xp.tanh(new_c)
                new_h = o * tanh_c
                extras.append((gates, tanh_c))
            else:
                new_h = xp.tanh(a) if mode == "RNN_TANH" else relu(a)
        if mask is None:
            h = new_h
            if mode == "LSTM":
                c = new_c
        else:
            h = xp.where(mask[0][t, ...], new_h, h)
            if mode == "LSTM":
                c = xp.where(mask[0][t, ...], new_c, c)
        states.append(h)
        if mode == "LSTM":
            cells.append(c)
    z_states = xp.stack(states[::-1] + [h0] if reverse else [h0] + states)
    cache = (x2, z_states, cells, extras, mask, reverse, scale)
    return z_states, h, c, cache


def _outputs(z_states, reverse):
    """The outputs h_t in time order, (T, N, H), from the stacked states."""
    return z_states[:-1, ...] if reverse else z_states[1:, ...]


def _direction_backward(mode, params, cache, grad_states, dh, dc, input_grad):
    """Backpropagation through time of :func:`_direction_forward`.

    ``grad_states`` (T, N, H) is the gradient of the outputs (already masked) or None;
    ``dh``, ``dc`` (N, H) those of the last states, or None. Adds the parameter
    gradients and returns (dX (T·N, I) or None, dh_0, dc_0 or None).
    """
    x2, z_states, cells, extras, mask, reverse, scale = cache
    w_ih, w_hh, b_ih, b_hh = params
    xp = backends.namespace(z_states)
    steps, batch, hidden = z_states.shape[0] - 1, z_states.shape[1], z_states.shape[2]
    if dh is None and grad_states is None:
        dh = xp.zeros((batch, hidden), dtype=z_states.dtype, device=z_states.device)
    if mode == "LSTM":
        if dc is None:
            dc = xp.zeros((batch, hidden), dtype=z_states.dtype, device=z_states.device)
        slope_offset = 2.0 * scale - 1.0  # 0 on sigmoid rows, 1 on the tanh rows
    weight_hh = w_hh.data
    grads_in, grads_hidden = [], []
    for k in range(steps - 1, -1, -1):  # k: position in the forward's order, t: time
        t = steps - 1 - k if reverse else k
        h_t, h_prev = (t, t + 1) if reverse else (t + 1, t)  # their rows in z_states
        if grad_states is not None:
            dh = grad_states[t, ...] if dh is None else grad_states[t, ...] + dh
        if mask is not None:
            m = mask[1][t, ...]
            kept = dh * m
            dh, dh_pass = kept, dh - kept
            if mode == "LSTM":
                kept = dc * m
                dc, dc_pass = kept, dc - kept
        if mode == "LSTM":
            gates, tanh_c = extras[k]
            i, f = gates[:, :hidden], gates[:, hidden:2 * hidden]
            g, o = gates[:, 2 * hidden:3 * hidden], gates[:, 3 * hidden:]
            dc = dc + dh * o * (1.0 - tanh_c * tanh_c)
            d_gates = xp.concat([dc * g, dc * cells[k], dc * i, dh * tanh_c], axis=1)
            da = d_gates * (1.0 - gates) * (gates + slope_offset)
            dc = dc * f
            if mask is not None:
                dc = dc + dc_pass
            grads_in.append(da)
            dh_prev = da @ weight_hh
        elif mode == "GRU":
            rz, n, hn = extras[k]
            r, z = rz[:, :hidden], rz[:, hidden:]
            dh_z = dh * z
            da_n = (dh - dh_z) * (1.0 - n * n)
            dz = dh * (z_states[h_prev, ...] - n)
            da_rz = xp.concat([da_n * hn, dz], axis=1) * rz * (1.0 - rz)
            da_h = xp.concat([da_rz, da_n * r], axis=1)
            grads_in.append(da_n)
            grads_hidden.append(da_h)
            dh_prev = da_h @ weight_hh + dh_z
        else:
            h = z_states[h_t, ...]
            if mode == "RNN_TANH":
                da = dh * (1.0 - h * h)
            else:
                da = dh * xp.astype(h > 0, dh.dtype)
            grads_in.append(da)
            dh_prev = da @ weight_hh
        dh = dh_prev if mask is None else dh_prev + dh_pass


    def in_time_order(items):  # collected from the forward's last step to its first
        return items if reverse else items[::-1]

    if mode == "GRU":
        da_hidden = xp.stack(in_time_order(grads_hidden))
        da_input = xp.concat([da_hidden[..., :2 * hidden], xp.stack(in_time_order(grads_in))],
                             axis=-1)
    else:
        da_input = da_hidden = xp.stack(in_time_order(grads_in))
    da_input = xp.reshape(da_input, (steps * batch, -1))
    da_hidden = xp.reshape(da_hidden, (steps * batch, -1))
    previous = z_states[1:, ...] if reverse else z_states[:-1, ...]
    w_ih.accumulate(xp.matrix_transpose(da_input) @ x2)
    w_hh.accumulate(xp.matrix_transpose(da_hidden) @ xp.reshape(previous, (steps * batch, -1)))
    if b_ih is not None:
        b_ih.accumulate(xp.sum(da_input, axis=0))
        b_hh.accumulate(xp.sum(da_hidden, axis=0))
    dx = da_input @ w_ih.data if input_grad else None
    return dx, dh, (dc if mode == "LSTM" else None)


# -- shared set-up --------------------------------------------------------------------------


def _check_mode(name, mode, nonlinearity):
    if mode != "RNN":
        return mode
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{name}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


def _uniform_parameter(shape, hidden_size):
    """U(−1/√H, 1/√H), PyTorch's initialisation of every recurrent weight and bias."""
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    return init.uniform_(init.empty_parameter(shape), -bound, bound)


def _check_state(layer, name, state, expected):
    if tuple(state.shape) != expected:
        raise ValueError(f"{layer!r}: expected {name} of shape {expected}, "
                         f"got {tuple(state.shape)}")
    return state


# -- cells --------------------------------------------------------------------------------


class _CellBase(Module):
    """One time step; parameters weight_ih (G·H, I), weight_hh (G·H, H), bias_ih,
    bias_hh (G·H,), all U(−1/√H, 1/√H). x is (N, I), states (N, H).

    A cell keeps what its last forward needs, so it differentiates one step: to unroll
    a sequence with backpropagation through time use RNN, LSTM or GRU.
    backward returns the gradient of what forward was given: dx, or (dx, dh) when hx
    was given (LSTMCell: (dx, (dh, dc))).
    """

    mode = "RNN"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh"):
        super().__init__()
        self.mode = _check_mode(type(self).__name__, self.mode, nonlinearity)
        self.input_size, self.hidden_size = input_size, hidden_size
        rows = GATES[self.mode] * hidden_size
        self.weight_ih = _uniform_parameter((rows, input_size), hidden_size)
        self.weight_hh = _uniform_parameter((rows, hidden_size), hidden_size)
        self.bias_ih = _uniform_parameter((rows,), hidden_size) if bias else None
        self.bias_hh = _uniform_parameter((rows,), hidden_size) if bias else None

    def _params(self):
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def _step(self, x, h, c):
        """(h', c' or None) of one step; saves the step for backward."""
        xp = backends.namespace(x)
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"{self!r}: expected input of shape (N, {self.input_size}), "
                             f"got {tuple(x.shape)}")
        shape = (x.shape[0], self.hidden_size)
        zeros = xp.zeros(shape, dtype=x.dtype, device=x.device)
        h = zeros if h is None else _check_state(self, "h", h, shape)
        if self.mode == "LSTM":
            c = zeros if c is None else _check_state(self, "c", c, shape)
        _, h_new, c_new, cache = _direction_forward(self.mode, self._params(), x, 1,
                                                    x.shape[0], h, c, None, False)
        return h_new, c_new, cache

    def _step_backward(self, grad_h, grad_c, input_grad):
        """(dx or None, dh, dc or None) of the saved step; adds the parameter gradients."""
        cache, _ = self.saved
        return _direction_backward(self.mode, self._params(), cache, None, grad_h, grad_c,
                                   input_grad)

    # forward and backward of the one-state cells (RNNCell, GRUCell)
    def forward(self, x, hx=None):
        h_new, _, cache = self._step(x, hx, None)
        self.save_for_backward(cache, hx is not None)
        return h_new

    def backward(self, grad):
        dx, dh, _ = self._step_backward(grad, None, True)
        return (dx, dh) if self.saved[1] else dx

    def backward_params(self, grad) -> None:
        self._step_backward(grad, None, False)

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.bias_ih is None:
            text += ", bias=False"
        if self.mode == "RNN_RELU":
            text += ", nonlinearity='relu'"
        return text


class RNNCell(_CellBase):
    """h' = φ(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh), φ = tanh or relu (G = 1).

    forward(x, hx=None) → h' (hx None: zeros). backward(dh') → dx, or (dx, dh) when hx
    was given, with dA = dh' ⊙ φ', dx = dA W_ih, dh = dA W_hh, dW_ih += dAᵀ x,
    dW_hh += dAᵀ h, db_ih += Σ dA, db_hh += Σ dA.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh"):
        super().__init__(input_size, hidden_size, bias, nonlinearity)


class LSTMCell(_CellBase):
    """[i f g o] = [σ σ tanh σ](x W_ihᵀ + b_ih + h W_hhᵀ + b_hh) (G = 4),
    c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c').

    forward(x, hx=None) with hx = (h, c) → (h', c'). backward(dh', dc'=None) → dx, or
    (dx, (dh, dc)) when hx was given (formulas in the module docstring).
    """

    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(input_size, hidden_size, bias)

    def forward(self, x, hx=None):
        if hx is not None and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise ValueError(f"{self!r}: hx must be a pair (h, c), got {type(hx).__name__}")
        h, c = (None, None) if hx is None else hx
        h_new, c_new, cache = self._step(x, h, c)
        self.save_for_backward(cache, hx is not None)
        return h_new, c_new

    def backward(self, grad_h, grad_c=None):
        dx, dh, dc = self._step_backward(grad_h, grad_c, True)
        return (dx, (dh, dc)) if self.saved[1] else dx

    def backward_params(self, grad_h, grad_c=None) -> None:
        self._step_backward(grad_h, grad_c, False)


class GRUCell(_CellBase):
    """[r z] = σ(x W_{i,rz}ᵀ + b_{i,rz} + h W_{h,rz}ᵀ + b_{h,rz}) (G = 3),
    n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h.

    forward(x, hx=None) → h'. backward(dh') → dx, or (dx, dh) when hx was given
    (formulas in the module docstring).
    """

    mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(input_size, hidden_size, bias)


# -- multi-layer sequence modules ---------------------------------------------------------


class _RNNBase(Module):
    """Common to RNN, LSTM and GRU: num_layers stacked recurrent layers over a whole
    sequence, optionally bidirectional (D = 2), with dropout between layers.

    Parameters, registered in PyTorch's order so that ``state_dict`` keys equal
    PyTorch's: for each layer k and direction (suffix "" or "_reverse"),
    weight_ih_l{k} (G·H, I or D·H), weight_hh_l{k} (G·H, H), bias_ih_l{k},
    bias_hh_l{k} (G·H,), all U(−1/√H, 1/√H).

    forward(x, hx=None, lengths=None) → (output, h_n) (LSTM: (output, (h_n, c_n)))
        x: (N, T, I) with ``batch_first=True`` (the default here; PyTorch's default is
        False), else (T, N, I). output: (N, T, D·H) or (T, N, D·H), the last layer's
        states, directions concatenated. hx, h_n, c_n: (num_layers·D, N, H), index
        layer·D + direction; hx None means zeros.
        lengths: per batch element, the number of real steps of a right-padded batch
        (a sequence of ints, or an integer array; PyTorch's pack_padded_sequence, without
        its sorting). Each sequence's states stop at its last real step (so h_n is that
        state, and the reverse direction starts there), outputs at padded steps are zero
        and no gradient flows from or through them.
    backward(grad_output, grad_h_n=None) (LSTM: grad_state = (grad_h_n, grad_c_n), any
        part None; grad_output None when only h_n is used) → dx, or (dx, dh0)
        (LSTM: (dx, (dh0, dc0))) when hx was given.
        backward_params skips the first layer's input gradient.

    Dropout (training mode, p > 0) multiplies each layer's output but the last by a
    fresh mask m / (1 − p), m ~ Bernoulli(1 − p), the backward by the same mask.
    Not supported: PyTorch's proj_size, unbatched (2-D) input, PackedSequence objects.
    """

    mode = "RNN"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = True, dropout: float = 0.0,
                 bidirectional: bool = False, nonlinearity: str = "tanh"):
        super().__init__()
        name = type(self).__name__
        self.mode = _check_mode(name, self.mode, nonlinearity)
        if num_layers < 1 or hidden_size < 1 or input_size < 1:
            raise ValueError(f"{name}: input_size, hidden_size and num_layers must be "
                             f"positive, got {input_size}, {hidden_size}, {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.num_directions = 2 if bidirectional else 1
        rows = GATES[self.mode] * hidden_size
        for layer in range(num_layers):
            inputs = input_size if layer == 0 else hidden_size * self.num_directions
            for suffix in self._suffixes():
                setattr(self, f"weight_ih_l{layer}{suffix}",
                        _uniform_parameter((rows, inputs), hidden_size))
                setattr(self, f"weight_hh_l{layer}{suffix}",
                        _uniform_parameter((rows, hidden_size), hidden_size))
                if bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}",
                            _uniform_parameter((rows,), hidden_size))
                    setattr(self, f"bias_hh_l{layer}{suffix}",
                            _uniform_parameter((rows,), hidden_size))

    def _suffixes(self):
        return ("", "_reverse")[:self.num_directions]

    def _params(self, layer, direction):
        suffix = self._suffixes()[direction]
        return tuple(getattr(self, f"{kind}_l{layer}{suffix}", None)
                     for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    # -- forward ------------------------------------------------------------------------
    def forward(self, x, hx=None, lengths=None):
        xp = backends.namespace(x)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            layout = "(N, T, I)" if self.batch_first else "(T, N, I)"
            raise ValueError(f"{self!r}: expected input of shape {layout} with I = "
                             f"{self.input_size}, got {tuple(x.shape)}")
        x_tm = xp.permute_dims(x, (1, 0, 2)) if self.batch_first else x
        steps, batch = x_tm.shape[0], x_tm.shape[1]
        h0, c0 = self._initial_state(hx, batch, x)
        mask = self._mask(lengths, steps, batch, x)
        layer_input = xp.reshape(x_tm, (steps * batch, self.input_size))
        caches, drop_masks, h_n, c_n = [], [], [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                z_states, h_last, c_last, cache = _direction_forward(
                    self.mode, self._params(layer, direction), layer_input, steps, batch,
                    h0[index, ...], None if c0 is None else c0[index, ...], mask,
                    direction == 1)
                outputs.append(_outputs(z_states, direction == 1))
                caches.append(cache)
                h_n.append(h_last)
                c_n.append(c_last)
            output = outputs[0] if len(outputs) == 1 else xp.concat(outputs, axis=-1)
            if mask is not None:
                output = output * mask[1]
            if layer < self.num_layers - 1 and self.training and self.dropout > 0.0:
                keep = backends.uniform(tuple(output.shape), like=output) >= self.dropout
                drop = xp.astype(keep, output.dtype) * (1.0 / (1.0 - self.dropout))
                output = output * drop
                drop_masks.append(drop)
            else:
                drop_masks.append(None)
            layer_input = xp.reshape(output, (steps * batch, -1))
        self.save_for_backward(caches, drop_masks, mask, hx is not None, (steps, batch))
        if self.batch_first:
            output = xp.permute_dims(output, (1, 0, 2))
        h_n = xp.stack(h_n)
        if self.mode == "LSTM":
            return output, (h_n, xp.stack(c_n))
        return output, h_n

    def _initial_state(self, hx, batch, x):
        """(h0, c0 or None), each (num_layers·D, N, H); zeros for a missing hx."""
        xp = backends.namespace(x)
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if hx is None:
            zeros = xp.zeros(shape, dtype=x.dtype, device=x.device)
            return zeros, (zeros if self.mode == "LSTM" else None)
        if self.mode == "LSTM":
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise ValueError(f"{self!r}: hx must be a pair (h0, c0), got "
                                 f"{type(hx).__name__}")
            return (_check_state(self, "h0", hx[0], shape),
                    _check_state(self, "c0", hx[1], shape))
        return _check_state(self, "hx", hx, shape), None

    def _mask(self, lengths, steps, batch, x):
        """(bool, float) masks [t < length_n] of shape (T, N, 1), or None."""
        if lengths is None:
            return None
        xp = backends.namespace(x)
        if hasattr(lengths, "shape"):
            if tuple(lengths.shape) != (batch,) or "int" not in backends.dtype_name(
                    lengths.dtype):
                raise ValueError(f"{self!r}: lengths must be {batch} integers (one per "
                                 f"sequence), got an array of shape {tuple(lengths.shape)} "
                                 f"and dtype {lengths.dtype}")
            lengths = backends.to_device(lengths, backends.backend_of(x))
        else:
            lengths = [int(n) for n in lengths]
            if len(lengths) != batch or any(not 0 <= n <= steps for n in lengths):
                raise ValueError(f"{self!r}: lengths must be {batch} integers in [0, {steps}] "
                                 f"(one per sequence), got {lengths}")
            lengths = xp.asarray(lengths, dtype=xp.int64, device=x.device)
        time = xp.arange(steps, dtype=lengths.dtype, device=x.device)
        keep = (time[:, None] < lengths[None, :])[:, :, None]
        return keep, xp.astype(keep, x.dtype)

    # -- backward -----------------------------------------------------------------------
    def backward(self, grad_output, grad_h_n=None):
        return self._backward(grad_output, grad_h_n, True)

    def backward_params(self, grad_output, grad_h_n=None) -> None:
        """As backward, without the first layer's input gradient dA W_ih."""
        self._backward(grad_output, grad_h_n, False)

    def _backward(self, grad_output, grad_state, input_grad):
        caches, drop_masks, mask, state_given, (steps, batch) = self.saved
        grad_h, grad_c = (grad_state if self.mode == "LSTM" and grad_state is not None
                          else (grad_state, None))
        grad = grad_output
        if grad is not None:
            xp = backends.namespace(grad)
            if self.batch_first:
                grad = xp.permute_dims(grad, (1, 0, 2))
            if mask is not None:
                grad = grad * mask[1]
        hidden, directions = self.hidden_size, self.num_directions
        dh0 = [None] * len(caches)
        dc0 = [None] * len(caches)
        for layer in range(self.num_layers - 1, -1, -1):
            need_dx = input_grad or layer > 0
            dx = None
            for direction in range(directions):
                index = layer * directions + direction
                part = None if grad is None else grad[..., direction * hidden:
                                                      (direction + 1) * hidden]
                d_input, dh0[index], dc0[index] = _direction_backward(
                    self.mode, self._params(layer, direction), caches[index], part,
                    None if grad_h is None else grad_h[index, ...],
                    None if grad_c is None else grad_c[index, ...], need_dx)
                if need_dx:
                    dx = d_input if dx is None else dx + d_input
            if not need_dx:
                break
            xp = backends.namespace(dx)
            grad = xp.reshape(dx, (steps, batch, -1))
            if layer > 0 and drop_masks[layer - 1] is not None:
                grad = grad * drop_masks[layer - 1]
        if not input_grad:
            return None
        dx = xp.permute_dims(grad, (1, 0, 2)) if self.batch_first else grad
        if not state_given:
            return dx
        if self.mode == "LSTM":
            return dx, (xp.stack(dh0), xp.stack(dc0))
        return dx, xp.stack(dh0)

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            text += ", nonlinearity='relu'"
        if not self.bias:
            text += ", bias=False"
        if not self.batch_first:
            text += ", batch_first=False"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text


class RNN(_RNNBase):
    """Elman RNN, h_t = φ(x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh), φ = tanh or relu
    (``nonlinearity``), G = 1. Backward formulas: the module docstring.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = True,
                 dropout: float = 0.0, bidirectional: bool = False):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, nonlinearity)


class LSTM(_RNNBase):
    """Long short-term memory, gates [i f g o] (G = 4), c_t = f ⊙ c_{t−1} + i ⊙ g,
    h_t = o ⊙ tanh(c_t); hx = (h0, c0), forward → (output, (h_n, c_n)),
    backward(grad_output, (grad_h_n, grad_c_n)) → dx or (dx, (dh0, dc0)).
    Backward formulas: the module docstring.
    """

    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = True, dropout: float = 0.0,
                 bidirectional: bool = False):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional)

    def backward(self, grad_output, grad_state=None):
        return self._backward(grad_output, grad_state, True)

    def backward_params(self, grad_output, grad_state=None) -> None:
        self._backward(grad_output, grad_state, False)


class GRU(_RNNBase):
    """Gated recurrent unit, gates [r z n] (G = 3), exactly PyTorch's formulation:
    n = tanh(x_t W_inᵀ + b_in + r ⊙ (h_{t−1} W_hnᵀ + b_hn)), h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}.
    Backward formulas: the module docstring.
    """

    mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = True, dropout: float = 0.0,
                 bidirectional: bool = False):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional)


for _sequence_class in (RNN, LSTM, GRU):
    _sequence_class.__doc__ += "\n    " + _RNNBase.__doc__
