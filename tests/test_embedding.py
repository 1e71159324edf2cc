"""Embedding: lookup, scatter-add gradient, padding_idx, from_pretrained."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import on

from xdl.backends import to_numpy
from xdl.gradcheck import gradcheck
from xdl.nn.embedding import Embedding


def test_gradients(backend):
    layer = Embedding(6, 3).to(dtype="float64")
    ids = on(backend, np.array([[0, 2, 2], [5, 0, 1]]))
    assert gradcheck(layer, ids).ok


def test_forward_is_a_row_lookup_of_any_shape(backend, rng):
    layer = Embedding(7, 4)
    host_ids = rng.integers(0, 7, size=(2, 3, 5))
    out = layer(on(backend, host_ids))
    assert tuple(out.shape) == (2, 3, 5, 4)
    np.testing.assert_array_equal(to_numpy(out), to_numpy(layer.weight.data)[host_ids])
    assert tuple(layer(on(backend, np.array(3))).shape) == (4,)


def test_repeated_ids_accumulate(backend):
    layer = Embedding(4, 2).to(dtype="float64")
    layer(on(backend, np.array([1, 3, 1, 1])))
    grad = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    assert layer.backward(on(backend, grad)) is None
    expected = np.array([[0, 0], [13.0, 16.0], [0, 0], [3.0, 4.0]])
    np.testing.assert_array_equal(to_numpy(layer.weight.grad), expected)
    layer.backward(on(backend, grad))  # a second backward adds
    np.testing.assert_array_equal(to_numpy(layer.weight.grad), 2 * expected)


def test_padding_idx_row_is_zero_and_gets_no_gradient(backend, rng):
    layer = Embedding(5, 3, padding_idx=-1).to(dtype="float64")
    assert layer.padding_idx == 4
    weight = to_numpy(layer.weight.data)
    assert not weight[4].any() and weight[:4].all()
    ids = on(backend, np.array([[4, 1], [4, 4]]))
    assert not to_numpy(layer(ids))[1].any()
    layer.backward(on(backend, rng.normal(size=(2, 2, 3))))
    grad = to_numpy(layer.weight.grad)
    assert not grad[4].any() and grad[1].all()


def test_from_pretrained(backend, rng):
    vectors = rng.normal(size=(5, 3))
    frozen = Embedding.from_pretrained(vectors)
    np.testing.assert_array_equal(to_numpy(frozen.weight.data), vectors)
    assert frozen.weight.requires_grad is False
    ids = on(backend, np.array([0, 4, 4]))
    np.testing.assert_array_equal(to_numpy(frozen(ids)), vectors[[0, 4, 4]])
    frozen.backward(on(backend, np.ones((3, 3))))
    assert frozen.weight.grad is None
    # a backend array is copied, never shared; padding_idx keeps its values
    source = on(backend, vectors, "float32")
    trained = Embedding.from_pretrained(source, freeze=False, padding_idx=2)
    assert trained.weight.data is not source and "float32" in str(trained.weight.data.dtype)
    np.testing.assert_array_equal(to_numpy(trained.weight.data)[2],
                                  vectors[2].astype(np.float32))
    trained(on(backend, np.array([2, 1])))
    trained.backward(on(backend, np.ones((2, 3)), "float32"))
    assert not to_numpy(trained.weight.grad)[2].any()
    np.testing.assert_array_equal(to_numpy(trained.weight.grad)[1], np.ones(3))


def test_matches_pytorch(backend, rng):
    torch = pytest.importorskip("torch")
    layer = Embedding(6, 3, padding_idx=0).to(dtype="float64")
    twin = torch.nn.Embedding(6, 3, padding_idx=0).double()
    twin.load_state_dict({"weight": torch.tensor(to_numpy(layer.weight.data))})
    ids = rng.integers(0, 6, size=(4, 5))
    grad = rng.normal(size=(4, 5, 3))
    out = twin(torch.tensor(ids))
    out.backward(torch.tensor(grad))
    np.testing.assert_array_equal(to_numpy(layer(on(backend, ids))), out.detach().numpy())
    layer.backward(on(backend, grad))
    np.testing.assert_allclose(to_numpy(layer.weight.grad), twin.weight.grad.numpy(),
                               rtol=1e-12, atol=1e-15)


def test_initialisation_and_state_dict():
    layer = Embedding(1000, 8, padding_idx=3)
    weight = to_numpy(layer.weight.data)
    assert weight.shape == (1000, 8) and not weight[3].any()
    assert abs(weight.std() - 1.0) < 0.05 and abs(weight.mean()) < 0.05
    assert list(layer.state_dict()) == ["weight"]


def test_clear_errors(backend):
    layer = Embedding(4, 2)
    with pytest.raises(TypeError, match=r"Embedding.*integer.*float"):
        layer(on(backend, np.zeros(3)))
    with pytest.raises(ValueError, match="padding_idx"):
        Embedding(4, 2, padding_idx=4)
    with pytest.raises(ValueError, match="2-D"):
        Embedding.from_pretrained(np.zeros(3))
