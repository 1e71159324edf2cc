"""The fused Conv2d → ReLU → MaxPool2d stage that Sequential runs on the Toeplitz and
DFT paths:
gradients by finite differences, agreement with the three layers run one by one, where
the fusion applies and where it does not, no_grad and saved-state handling, on every
backend."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import on

from xdl import backends
from xdl.gradcheck import gradcheck
from xdl.models import create
from xdl.nn import Conv2d, LeakyReLU, MaxPool2d, ReLU, Sequential, conv_dft, no_grad
from xdl.nn.conv_relu_pool import ConvReLUPool, fused_toeplitz_is_cheaper
from xdl.nn.conv_toeplitz import Plan
from xdl.nn.functional import Window

# (Conv2d arguments, MaxPool2d kernel, input shape); the convolution takes the Toeplitz
# path unless the arguments say otherwise
FUSED_CASES = {
    "lenet-conv1": ((1, 6, 5), dict(padding=2), 2, (2, 1, 12, 12)),
    "several-blocks-overhang": ((1, 6, 5), dict(padding=2), 2, (2, 1, 6, 26)),
    "channels-stride-dilation": ((2, 5, 3), dict(stride=2, padding=2, dilation=2), 2,
                                 (2, 2, 15, 19)),
    "rect-pool-no-bias": ((3, 4, 3), dict(bias=False), (3, 2), (1, 3, 11, 14)),
    "pool-3x3": ((2, 7, 3), dict(padding=1), 3, (2, 2, 9, 21)),
    "two-column-blocks": ((1, 32, 3), dict(padding=1), 2, (2, 1, 6, 8)),   # B = 2
    "dft-lenet-conv2": ((6, 16, 5), dict(algorithm="dft"), 2, (2, 6, 14, 14)),
    "dft-padding-rect-pool-no-bias": ((3, 4, 3), dict(padding=1, bias=False, algorithm="dft"),
                                      (2, 3), (2, 3, 8, 9)),
    "dft-pool-3x3-batch-1": ((2, 5, 5), dict(padding=2, algorithm="dft"), 3, (1, 2, 9, 12)),
}
# the DFT cases again in the DFT's complex form (the ones above take its real form)
FUSED_CASES.update({"dft-complex" + name[3:]: case for name, case in FUSED_CASES.items()
                    if name.startswith("dft-")})
DFT_FIRST_STAGES = ["lenet-conv1", "dft-lenet-conv2", "dft-complex-lenet-conv2"]


def _layers(case, monkeypatch, dtype="float64"):
    """The three layers of a case and its input shape; pins the DFT's form."""
    monkeypatch.setattr(conv_dft, "REAL_FORM_MAX_CHANNEL_PAIRS",
                        0 if case.startswith("dft-complex") else 10**9)
    args, kwargs, pool_kernel, shape = FUSED_CASES[case]
    conv = Conv2d(*args, **{"algorithm": "toeplitz", **kwargs}).to(dtype=dtype)
    return conv, ReLU(), MaxPool2d(pool_kernel), shape


def _fused_stage(model, conv):
    """The stage the model's last forward ran first, checked to be the fused one on the
    convolution's path."""
    stage = model.saved[0][0]
    assert isinstance(stage, ConvReLUPool) and stage.algorithm == conv.algorithm
    return stage


def _host(x):
    return backends.to_numpy(x)


@pytest.mark.parametrize("case", FUSED_CASES)
def test_fused_stage_gradients(backend, rng, case, monkeypatch):
    conv, relu, pool, shape = _layers(case, monkeypatch)
    model = Sequential(conv, relu, pool)
    x = on(backend, rng.normal(size=shape))
    model(x)
    _fused_stage(model, conv)
    assert gradcheck(model, x).ok


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("case", FUSED_CASES)
def test_fused_stage_matches_the_three_layers(backend, rng, case, dtype, rtol, monkeypatch):
    """Output, input gradient, dW and db of the stage and of the layers one by one."""
    conv, relu, pool, shape = _layers(case, monkeypatch, dtype)
    model = Sequential(conv, relu, pool)
    x = on(backend, rng.normal(size=shape), dtype)
    results = []
    for run in (lambda: model(x), lambda: pool(relu(conv(x)))):
        conv.zero_grad()
        y = run()
        g = on(backend, np.linspace(-1, 1, int(np.prod(y.shape))).reshape(tuple(y.shape)),
               dtype)
        dx = (model.backward(g) if len(results) == 0
              else conv.backward(relu.backward(pool.backward(g))))
        results.append([_host(a) for a in (y, dx, *[p.grad for p in conv.parameters()])])
    _fused_stage(model, conv)
    for fused, separate in zip(*results):
        np.testing.assert_allclose(fused, separate, rtol=0,
                                   atol=rtol * max(np.abs(separate).max(), 1.0))


@pytest.mark.parametrize("case", FUSED_CASES)
def test_an_empty_batch_through_the_fused_stage(backend, case, monkeypatch):
    """N = 0: an empty output of the layers' shape, an empty dx, zero dW and db."""
    conv, relu, pool, shape = _layers(case, monkeypatch)
    model = Sequential(conv, relu, pool)
    expected = (0,) + tuple(model(on(backend, np.zeros(shape))).shape[1:])
    conv.zero_grad()
    y = model(on(backend, np.zeros((0,) + shape[1:])))
    _fused_stage(model, conv)
    assert tuple(y.shape) == expected
    assert tuple(model.backward(on(backend, np.zeros(expected))).shape) == (0,) + shape[1:]
    for param in conv.parameters():
        np.testing.assert_array_equal(_host(param.grad), 0.0)


@pytest.mark.parametrize("case", DFT_FIRST_STAGES)
def test_backward_params_of_a_fused_first_stage(backend, rng, case, monkeypatch):
    conv, relu, pool, shape = _layers(case, monkeypatch)
    model = Sequential(conv, relu, pool)
    x = on(backend, rng.normal(size=shape))
    y = model(x)
    _fused_stage(model, conv)
    g = on(backend, rng.normal(size=tuple(y.shape)))
    model.backward_params(g)
    fused = [_host(p.grad) for p in conv.parameters()]
    conv.zero_grad()
    pool(relu(conv(x)))
    conv.backward_params(relu.backward(pool.backward(g)))
    for got, expected in zip(fused, (_host(p.grad) for p in conv.parameters())):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def _toeplitz(kernel, padding):
    return Conv2d(1, 6, kernel, padding=padding, algorithm="toeplitz")


@pytest.mark.parametrize("layers, why", [
    (lambda: [Conv2d(1, 6, 5, padding=2, algorithm="im2col"), ReLU(), MaxPool2d(2)],
     "im2col convolution"),
    (lambda: [_toeplitz(5, 2), LeakyReLU(), MaxPool2d(2)], "not a ReLU"),
    (lambda: [_toeplitz(5, 2), ReLU(), MaxPool2d(2, stride=1)], "overlapping windows"),
    (lambda: [_toeplitz(5, 2), ReLU(), MaxPool2d(2, padding=1)], "padded pool"),
    (lambda: [_toeplitz(4, 1), ReLU(), MaxPool2d(2)], "odd output size"),
    (lambda: [_toeplitz(5, 2), MaxPool2d(2), ReLU()], "pool before ReLU"),
    (lambda: [Conv2d(1, 6, 4, padding=1, algorithm="dft"), ReLU(), MaxPool2d(2)],
     "odd output size, DFT path"),
    (lambda: [Conv2d(1, 6, 5, padding=2, algorithm="dft"), ReLU(), MaxPool2d(3, stride=2)],
     "overlapping windows, DFT path"),
])
def test_the_layers_run_one_by_one_where_the_fusion_does_not_apply(backend, rng, layers,
                                                                    why):
    model = Sequential(*layers()).to(dtype="float64")
    x = on(backend, rng.normal(size=(2, 1, 12, 12)))
    y = model(x)
    assert not any(isinstance(stage, ConvReLUPool) for stage in model.saved[0]), why
    separate = x
    for layer in model:
        separate = layer(separate)
    np.testing.assert_array_equal(_host(y), _host(separate))


@pytest.mark.parametrize("case", DFT_FIRST_STAGES)
def test_fused_stage_under_no_grad(backend, rng, case, monkeypatch):
    conv, relu, pool, shape = _layers(case, monkeypatch)
    model = Sequential(conv, relu, pool)
    x = on(backend, rng.normal(size=shape))
    with no_grad():
        y = model(x)
    np.testing.assert_allclose(_host(y), _host(pool(relu(conv(x)))), rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="without a forward pass"):
        model.backward(y)


@pytest.mark.parametrize("case", DFT_FIRST_STAGES)
def test_saved_states_restore_a_fused_stage(backend, rng, case, monkeypatch):
    """Two forwards, then the first one's backward after restoring its states (as a GAN's
    discriminator does), give the gradients of that forward alone."""
    conv, relu, pool, shape = _layers(case, monkeypatch)
    model = Sequential(conv, relu, pool)
    first, second = (on(backend, rng.normal(size=shape)) for _ in range(2))
    g = on(backend, rng.normal(size=tuple(model(first).shape)))
    alone = _host(model.backward(g))
    model(first)
    states = model.saved_states()
    model(second)
    model.restore_saved_states(states)
    np.testing.assert_allclose(_host(model.backward(g)), alone, rtol=1e-12, atol=1e-12)


def test_a_fused_stage_leaves_no_stale_state_in_its_layers(backend, rng, monkeypatch):
    conv, relu, pool, shape = _layers("lenet-conv1", monkeypatch)
    x = on(backend, rng.normal(size=shape))
    pool(relu(conv(x)))                         # the layers on their own save state ...
    Sequential(conv, relu, pool)(x)             # ... which the fused stage replaces
    with pytest.raises(RuntimeError, match="without a forward pass"):
        conv.backward(on(backend, rng.normal(size=(shape[0], 6, 12, 12))))


def test_auto_fuses_on_the_toeplitz_path_where_im2col_would_run_layer_by_layer(rng):
    """The book CNN's conv 1 runs im2col on its own (``algorithm_for``), but followed by
    a ReLU and a tiling max pool the fused Toeplitz stage is estimated cheaper."""
    book_conv1 = Conv2d(1, 32, 5, padding=2)
    assert book_conv1.algorithm_for((32, 1, 28, 28)) == "im2col"
    assert fused_toeplitz_is_cheaper((32, 1, 28, 28), book_conv1, (2, 2))
    assert not fused_toeplitz_is_cheaper((64, 16, 28, 28), Conv2d(16, 32, 3, padding=1),
                                         (2, 2))
    assert not fused_toeplitz_is_cheaper((64, 8, 28, 28), Conv2d(8, 32, 3, groups=2),
                                         (2, 2))
    with backends.use("numpy"):
        book = create("book_cnn")
    book(rng.normal(size=(2, 1, 28, 28)).astype(np.float32))
    first, second = book.features.saved[0]
    assert (first.algorithm, first.conv) == ("toeplitz", book.features[0])
    assert (second.algorithm, second.conv) == ("dft", book.features[3])
    explicit = Sequential(Conv2d(1, 32, 5, padding=2, algorithm="im2col"), ReLU(),
                          MaxPool2d(2))
    explicit(rng.normal(size=(2, 1, 28, 28)))
    assert not any(isinstance(stage, ConvReLUPool) for stage in explicit.saved[0])


def test_a_toeplitz_plan_refuses_row_groups_that_do_not_divide_its_rows():
    window = Window.of(5, padding=2)
    assert Plan.of((2, 1, 12, 12), 6, window, row_groups=3).row_groups == 3
    with pytest.raises(ValueError, match="5 row groups do not divide 12 output rows"):
        Plan.of((2, 1, 12, 12), 6, window, row_groups=5)
