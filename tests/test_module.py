"""Module bookkeeping: registration, names, buffers, modes, moves and errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import on

from xdl import backends, nn
from xdl.nn import init


class Counter(nn.Module):
    """A module with a float buffer and an integer buffer, like BatchNorm's."""

    def __init__(self):
        super().__init__()
        self.scale = init.ones_(init.empty_parameter((3,)))
        backend = backends.current()
        self.register_buffer("running", backend.xp.zeros((3,), dtype=backend.xp.float32,
                                                         device=backend.device))
        self.register_buffer("seen", backend.xp.zeros((), dtype=backend.xp.int64,
                                                      device=backend.device))

    def forward(self, x):
        return x * self.scale.data


def test_state_dict_uses_pytorch_names_with_buffers(backend):
    model = nn.Sequential(nn.Linear(3, 3), Counter())
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.scale", "1.running", "1.seen"]
    assert [name for name, _ in model.named_buffers()] == ["1.running", "1.seen"]
    assert len(list(model.buffers())) == 2


def test_to_moves_buffers_and_keeps_integer_dtypes(backend):
    with backends.use("numpy"):
        model = Counter()
    model.to(backend, dtype="float64")
    assert backends.backend_of(model.running) == backend
    assert backends.dtype_name(model.running.dtype) == "float64"
    assert backends.dtype_name(model.seen.dtype) == "int64"


def test_load_state_dict_restores_buffers(backend):
    source, target = Counter(), Counter()
    source.running = backend.asarray(np.array([1.0, 2.0, 3.0]), "float32")  # stays a buffer
    target.load_state_dict(source.state_dict())
    np.testing.assert_array_equal(backends.to_numpy(target.running), [1, 2, 3])


def test_train_and_eval_reach_every_child():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5)))
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_reassigning_an_attribute_unregisters_it():
    layer = nn.Linear(2, 2)
    layer.bias = None
    assert [name for name, _ in layer.named_parameters()] == ["weight"]


def test_sequential_indexing_len_append_and_repr():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    model.append(nn.Linear(3, 2))
    assert len(model) == 3 and isinstance(model[-1], nn.Linear)
    assert "(0): Linear(in_features=4, out_features=3, bias=True)" in repr(model)


def test_forgetting_super_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.weight = None

    with pytest.raises(AttributeError, match="must call super"):
        Broken()


def test_linear_rejects_the_wrong_input_width(backend):
    layer = nn.Linear(784, 10)
    with pytest.raises(ValueError, match=r"Linear\(in_features=784.*\(\.\.\., 784\).*\(2, 100\)"):
        layer(backend.asarray(np.zeros((2, 100)), "float32"))


def test_backward_before_forward_is_a_clear_error(backend):
    with pytest.raises(RuntimeError, match="Linear.backward called without a forward"):
        nn.Linear(2, 2).backward(backend.asarray(np.zeros((1, 2)), "float32"))


def test_initialisers_follow_their_formulas():
    import xdl

    xdl.manual_seed(0)
    weight = init.empty_parameter((400, 300))
    bound = np.sqrt(6 / 700)
    values = backends.to_numpy(init.xavier_uniform_(weight).data)
    assert values.max() <= bound and values.min() >= -bound
    assert values.std() == pytest.approx(bound / np.sqrt(3), rel=0.02)
    he = backends.to_numpy(init.kaiming_normal_(weight, nonlinearity="relu").data)
    assert he.std() == pytest.approx(np.sqrt(2 / 300), rel=0.02)
    assert backends.to_numpy(init.zeros_(weight).data).max() == 0
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        init.calculate_gain("swish")


def test_reassigning_keeps_the_state_dict_order(backend):
    model = Counter()
    model.running = backend.asarray(np.ones(3), "float32")
    model.scale = init.zeros_(init.empty_parameter((3,)))
    assert list(model.state_dict()) == ["scale", "running", "seen"]


def test_flatten_gives_the_gradient_back_in_the_inputs_memory_layout(backend, rng):
    from xdl.nn.functional import channels_first

    x = channels_first(on(backend, rng.normal(size=(2, 3, 4, 5))))  # (2, 5, 3, 4), NHWC
    flatten = nn.Flatten()
    y = flatten(x)
    g = rng.normal(size=tuple(y.shape))
    dx = flatten.backward(on(backend, g))
    np.testing.assert_array_equal(backends.to_numpy(dx), g.reshape(2, 5, 3, 4))
    if isinstance(x, np.ndarray):
        assert backends.stride_order(dx.shape, dx.strides) == (0, 2, 3, 1)
