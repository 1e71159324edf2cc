"""Every layer and loss against central finite differences, in float64, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import on

from xdl import nn
from xdl.gradcheck import GradcheckError, gradcheck
from xdl.models import MLP, Perceptron

LAYERS = {
    "linear": lambda: nn.Linear(5, 4),
    "linear-no-bias": lambda: nn.Linear(5, 4, bias=False),
    "relu": nn.ReLU,
    "leaky-relu": lambda: nn.LeakyReLU(0.2),
    "elu": lambda: nn.ELU(0.7),
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softmax-last": nn.Softmax,
    "softmax-dim0": lambda: nn.Softmax(dim=0),
    "flatten": nn.Flatten,
    "unflatten": lambda: nn.Unflatten(-1, (5, 1)),
    "identity": nn.Identity,
    "dropout-eval": lambda: nn.Dropout(0.5).eval(),
    "mlp": lambda: MLP([5, 6, 4], activation="tanh"),
    "mlp-elu-deep": lambda: MLP([5, 7, 6, 3], activation="elu"),
    "perceptron": lambda: Perceptron(5),
}


def _input(rng, shape):
    x = rng.normal(size=shape)
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU-family inputs away from the kink
    return x


SHAPES = {"batch3": (3, 5), "batch1": (1, 5), "3d": (2, 3, 5)}
LAYER_CASES = [(name, shape) for name in LAYERS for shape in SHAPES
               if not (name == "perceptron" and shape == "3d")]  # it scores 2-D batches


@pytest.mark.parametrize(("name", "shape"), LAYER_CASES)
def test_layer_gradients(backend, rng, name, shape):
    layer = LAYERS[name]().to(dtype="float64")
    result = gradcheck(layer, on(backend, _input(rng, SHAPES[shape])))
    assert result.ok


def test_linear_backward_accumulates_into_grad(backend, rng):
    layer = nn.Linear(3, 2).to(dtype="float64")
    x = on(backend, rng.normal(size=(4, 3)))
    g = on(backend, rng.normal(size=(4, 2)))
    layer(x)
    layer.backward(g)
    first = np.array(_host(layer.weight.grad))
    layer(x)
    layer.backward(g)
    np.testing.assert_allclose(_host(layer.weight.grad), 2 * first, rtol=1e-12)


def test_dropout_backward_uses_the_forward_mask(backend, rng):
    layer = nn.Dropout(0.4)
    x = on(backend, rng.uniform(1.0, 2.0, size=(50, 40)))
    y = _host(layer(x))
    g = _host(layer.backward(on(backend, np.ones((50, 40)))))
    kept = y != 0
    np.testing.assert_allclose(g[kept], 1 / 0.6)
    assert np.all(g[~kept] == 0)
    assert 0.5 < kept.mean() < 0.7


def _host(x):
    from xdl.backends import to_numpy

    return to_numpy(x)


LOSS_CASES = {
    "mse": (lambda: nn.MSELoss(), "regression"),
    "mse-sum": (lambda: nn.MSELoss(reduction="sum"), "regression"),
    "mse-none": (lambda: nn.MSELoss(reduction="none"), "regression"),
    "ce-labels": (lambda: nn.CrossEntropyLoss(), "labels"),
    "ce-sum": (lambda: nn.CrossEntropyLoss(reduction="sum"), "labels"),
    "ce-none": (lambda: nn.CrossEntropyLoss(reduction="none"), "labels"),
    "ce-ignore": (lambda: nn.CrossEntropyLoss(ignore_index=2), "labels"),
    "ce-smoothing": (lambda: nn.CrossEntropyLoss(label_smoothing=0.1), "labels"),
    "ce-probabilities": (lambda: nn.CrossEntropyLoss(), "probabilities"),
    "ce-spatial": (lambda: nn.CrossEntropyLoss(), "spatial"),
    "bce-logits": (lambda: nn.BCEWithLogitsLoss(), "binary"),
    "bce-logits-none": (lambda: nn.BCEWithLogitsLoss(reduction="none"), "binary"),
    "perceptron": (lambda: nn.PerceptronLoss(), "signs"),
}


def _loss_inputs(rng, kind):
    if kind == "regression":
        return rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    if kind == "labels":
        return rng.normal(size=(6, 4)) * 3, np.array([0, 1, 2, 3, 2, 1])
    if kind == "probabilities":
        p = rng.uniform(size=(5, 4))
        return rng.normal(size=(5, 4)), p / p.sum(axis=1, keepdims=True)
    if kind == "spatial":
        return rng.normal(size=(2, 3, 4)), rng.integers(0, 3, size=(2, 4))
    if kind == "binary":
        return rng.normal(size=(6,)) * 2, rng.uniform(size=(6,))
    scores = rng.normal(size=(8,))
    return scores, np.where(rng.uniform(size=8) < 0.5, -1.0, 1.0)


@pytest.mark.parametrize("name", LOSS_CASES)
def test_loss_gradients(backend, rng, name):
    make, kind = LOSS_CASES[name]
    pred, target = _loss_inputs(rng, kind)
    result = gradcheck(make(), on(backend, pred), on(backend, target))
    assert result.ok


def test_cross_entropy_matches_the_formula_and_is_stable(backend):
    logits = np.array([[1000.0, 0.0, -1000.0], [0.5, 0.25, -0.5]])
    labels = np.array([0, 2])
    loss = float(_host(nn.CrossEntropyLoss()(on(backend, logits), on(backend, labels))))
    z = logits[1] - logits[1].max()
    expected = (0.0 + -(z[2] - np.log(np.exp(z).sum()))) / 2
    assert np.isfinite(loss)
    assert loss == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_ignored_samples_get_no_gradient(backend, rng):
    loss_fn = nn.CrossEntropyLoss(ignore_index=-1)
    logits = on(backend, rng.normal(size=(4, 3)))
    value = loss_fn(logits, on(backend, np.array([0, -1, 2, -1])))
    grad = _host(loss_fn.backward())
    assert np.all(grad[[1, 3]] == 0)
    full = nn.CrossEntropyLoss()(on(backend, _host(logits)[[0, 2]]), on(backend, np.array([0, 2])))
    assert float(_host(value)) == pytest.approx(float(_host(full)), rel=1e-12)


def test_bce_with_logits_is_stable_for_large_logits(backend):
    logits = on(backend, np.array([800.0, -800.0]))
    target = on(backend, np.array([1.0, 0.0]))
    assert float(_host(nn.BCEWithLogitsLoss()(logits, target))) == pytest.approx(0.0, abs=1e-12)


def test_gradcheck_catches_a_wrong_term(backend, rng):
    class AlmostTanh(nn.Tanh):
        def backward(self, grad):
            (y,) = self.saved
            return grad * (1.0 - 1.001 * y * y)  # a 0.1% error in one term

    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(AlmostTanh(), on(backend, rng.normal(size=(3, 4))))


def test_gradcheck_catches_a_wrong_parameter_gradient(backend, rng):
    class HalfBiasGrad(nn.Linear):
        def backward(self, grad):
            dx = super().backward(grad)
            self.bias.grad = self.bias.grad * 0.5
            return dx

    with pytest.raises(GradcheckError, match="parameter bias"):
        gradcheck(HalfBiasGrad(3, 2).to(dtype="float64"), on(backend, rng.normal(size=(4, 3))))


def test_gradcheck_refuses_float32(backend, rng):
    with pytest.raises(ValueError, match="float64"):
        gradcheck(nn.Linear(3, 2), on(backend, rng.normal(size=(2, 3)), "float32"))


@pytest.mark.parametrize("make", [lambda: MLP([5, 6, 4]), lambda: Perceptron(5),
                                  lambda: nn.Sequential(nn.Tanh(), nn.Linear(5, 3))],
                         ids=["mlp", "perceptron", "activation-first"])
def test_backward_params_gives_the_parameter_gradients_of_backward(backend, rng, make):
    model = make().to(dtype="float64")
    x = on(backend, rng.normal(size=(4, 5)))
    out = model(x)
    g = on(backend, rng.normal(size=tuple(out.shape)))
    model.backward(g)
    full = {name: _host(p.grad) for name, p in model.named_parameters()}
    model.zero_grad()
    model(x)
    assert model.backward_params(g) is None
    for name, p in model.named_parameters():
        np.testing.assert_allclose(_host(p.grad), full[name], rtol=1e-12, err_msg=name)
