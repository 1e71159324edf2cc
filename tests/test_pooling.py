"""Pooling layers: gradients by finite differences, values and gradients against
torch.nn.functional, tie handling, batch chunking and error messages, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import on

from xdl import backends
from xdl.gradcheck import gradcheck
from xdl.nn import pooling
from xdl.nn.module import no_grad
from xdl.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d, MaxPool2d


def _host(x):
    return backends.to_numpy(x)


def _distinct(rng, shape):
    """Distinct values 0.1 apart in random order: no near-ties for finite differences."""
    size = int(np.prod(shape))
    return (rng.permutation(size).reshape(shape) - size / 2) * 0.1


# (constructor keyword arguments, input shape)
MAX_CASES = {
    "2x2": (dict(kernel_size=2), (2, 3, 6, 6)),
    "2x2-odd-cropped": (dict(kernel_size=2), (1, 2, 5, 7)),
    "3x3-s1-overlap": (dict(kernel_size=3, stride=1), (2, 2, 5, 6)),
    "3x3-s2-pad1-batch1": (dict(kernel_size=3, stride=2, padding=1), (1, 2, 7, 7)),
    "rect-dilated": (dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1),
                          dilation=(2, 1)), (2, 2, 7, 8)),
    "ceil": (dict(kernel_size=3, stride=2, ceil_mode=True), (2, 2, 8, 8)),
    "ceil-pad": (dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (1, 2, 6, 7)),
}

AVG_CASES = {
    "2x2": (dict(kernel_size=2), (2, 3, 6, 6)),
    "2x2-odd-cropped": (dict(kernel_size=2), (1, 2, 5, 7)),
    "3x3-s1-overlap": (dict(kernel_size=3, stride=1), (2, 2, 5, 6)),
    "3x3-s2-pad1": (dict(kernel_size=3, stride=2, padding=1), (1, 2, 7, 7)),
    "pad-exclude": (dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
                    (2, 2, 6, 7)),
    "rect": (dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1)), (2, 2, 5, 8)),
    "ceil": (dict(kernel_size=3, stride=2, ceil_mode=True), (2, 2, 8, 8)),
    "ceil-pad-exclude": (dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                              count_include_pad=False), (1, 2, 6, 7)),
}

ADAPTIVE_CASES = {
    "non-divisible": (dict(output_size=(3, 4)), (2, 2, 5, 7)),
    "divisible": (dict(output_size=(3, 2)), (2, 2, 6, 6)),
    "to-1x1": (dict(output_size=1), (2, 3, 4, 5)),
    "grow": (dict(output_size=(7, 3)), (1, 2, 4, 3)),
    "keep-width": (dict(output_size=(2, None)), (1, 2, 5, 3)),
}


@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool_gradients(backend, rng, case):
    kwargs, shape = MAX_CASES[case]
    assert gradcheck(MaxPool2d(**kwargs), on(backend, _distinct(rng, shape))).ok


@pytest.mark.parametrize("case", AVG_CASES)
def test_avg_pool_gradients(backend, rng, case):
    kwargs, shape = AVG_CASES[case]
    assert gradcheck(AvgPool2d(**kwargs), on(backend, rng.normal(size=shape))).ok


@pytest.mark.parametrize("case", ADAPTIVE_CASES)
def test_adaptive_avg_pool_gradients(backend, rng, case):
    kwargs, shape = ADAPTIVE_CASES[case]
    assert gradcheck(AdaptiveAvgPool2d(**kwargs), on(backend, rng.normal(size=shape))).ok


@pytest.mark.parametrize("flatten", [False, True])
def test_global_avg_pool(backend, rng, flatten):
    x = rng.normal(size=(2, 3, 4, 5))
    layer = GlobalAvgPool2d(flatten=flatten)
    y = _host(layer(on(backend, x)))
    assert y.shape == ((2, 3) if flatten else (2, 3, 1, 1))
    np.testing.assert_allclose(y.reshape(2, 3), x.mean(axis=(2, 3)), rtol=1e-12)
    assert gradcheck(layer, on(backend, x)).ok


def test_max_pool_ties_go_to_the_first_maximum(backend):
    # windows of a 2x2/2 pool: all zeros (as after a ReLU); max 1 at window positions
    # 1 and 2; max 3 at positions 0 and 3; max 2 at position 3 only
    x = np.array([[0., 0., 0., 1.],
                  [0., 0., 1., 0.],
                  [3., 0., 0., 0.],
                  [0., 3., 0., 2.]])[None, None]
    layer = MaxPool2d(2)
    y = layer(on(backend, x))
    np.testing.assert_array_equal(_host(y)[0, 0], [[0., 1.], [3., 2.]])
    dx = _host(layer.backward(on(backend, np.array([[[[1., 2.], [3., 4.]]]]))))
    expected = np.array([[1., 0., 0., 2.],
                         [0., 0., 0., 0.],
                         [3., 0., 0., 0.],
                         [0., 0., 0., 4.]])
    np.testing.assert_array_equal(dx[0, 0], expected)


def _torch_pool(torch, name, x, g, kwargs):
    """y and dx of torch.nn.functional's pool ``name`` for input x, output gradient g."""
    t = torch.from_numpy(x).requires_grad_()
    y = getattr(torch.nn.functional, name)(t, **kwargs)
    y.backward(torch.from_numpy(g(tuple(y.shape))))
    return y.detach().numpy(), t.grad.numpy()


def _tied(rng, shape):
    """Small integers after a ReLU: many ties, many all-zero windows."""
    return np.maximum(rng.integers(-3, 3, size=shape), 0).astype(np.float64)


@pytest.mark.parametrize(("kind", "case"), [("max", c) for c in MAX_CASES]
                         + [("avg", c) for c in AVG_CASES]
                         + [("adaptive", c) for c in ADAPTIVE_CASES])
def test_values_and_gradients_match_torch(backend, rng, kind, case):
    torch = pytest.importorskip("torch")
    cases, layer_class, name = {
        "max": (MAX_CASES, MaxPool2d, "max_pool2d"),
        "avg": (AVG_CASES, AvgPool2d, "avg_pool2d"),
        "adaptive": (ADAPTIVE_CASES, AdaptiveAvgPool2d, "adaptive_avg_pool2d"),
    }[kind]
    kwargs, shape = cases[case]
    x = _tied(rng, shape) if kind == "max" else rng.normal(size=shape)
    grads = {}
    expected_y, expected_dx = _torch_pool(
        torch, name, x, lambda s: grads.setdefault(s, rng.normal(size=s)), kwargs)
    layer = layer_class(**kwargs)
    y = layer(on(backend, x))
    dx = layer.backward(on(backend, next(iter(grads.values()))))
    np.testing.assert_allclose(_host(y), expected_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_host(dx), expected_dx, rtol=1e-12, atol=1e-12)


def test_large_windows_and_float32_match_torch(backend, rng):
    torch = pytest.importorskip("torch")
    x = _tied(rng, (2, 3, 13, 17)).astype(np.float32)
    for layer, name, kwargs in [
        (MaxPool2d(12, stride=1), "max_pool2d", dict(kernel_size=12, stride=1)),
        (AvgPool2d((5, 7), stride=(3, 4), padding=2), "avg_pool2d",
         dict(kernel_size=(5, 7), stride=(3, 4), padding=2)),
    ]:
        expected_y, expected_dx = _torch_pool(
            torch, name, x, lambda s: np.ones(s, dtype=np.float32), kwargs)
        y = layer(on(backend, x, "float32"))
        assert backends.dtype_name(y.dtype) == "float32"
        dx = layer.backward(on(backend, np.ones(expected_y.shape), "float32"))
        assert backends.dtype_name(dx.dtype) == "float32"
        np.testing.assert_allclose(_host(y), expected_y, rtol=1e-5)
        np.testing.assert_allclose(_host(dx), expected_dx, rtol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: MaxPool2d(2), lambda: MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
    lambda: AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
], ids=["max-2x2", "max-pad-ceil", "avg-overlap-pad"])
def test_batch_chunks_give_the_same_result(backend, rng, monkeypatch, make):
    x = on(backend, _tied(rng, (5, 2, 7, 6)))
    layer = make()
    y_whole = _host(layer(x))
    g = on(backend, rng.normal(size=y_whole.shape))
    dx_whole = _host(layer.backward(g))
    monkeypatch.setattr(pooling, "batch_chunks",
                        lambda a, _: [(0, 2), (2, 3), (3, a.shape[0])])
    np.testing.assert_array_equal(_host(layer(x)), y_whole)
    np.testing.assert_array_equal(_host(layer.backward(g)), dx_whole)


def test_max_pool_under_no_grad_saves_nothing(backend, rng):
    layer = MaxPool2d(2)
    x = on(backend, _distinct(rng, (2, 2, 4, 4)))
    y = _host(layer(x))
    layer2 = MaxPool2d(2)
    with no_grad():
        np.testing.assert_array_equal(_host(layer2(x)), y)
    with pytest.raises(RuntimeError, match="MaxPool2d.backward called without"):
        layer2.backward(on(backend, np.ones(y.shape)))


@pytest.mark.parametrize(("layer", "shape", "message"), [
    (MaxPool2d(2), (3, 4, 4), r"MaxPool2d\(.*\): expected input of shape \(N, C, H, W\), "
                              r"got \(3, 4, 4\)"),
    (AvgPool2d(2), (2, 3, 4, 4, 1), r"AvgPool2d\(.*\): expected input .* got \(2, 3, 4, 4, 1\)"),
    (AdaptiveAvgPool2d(2), (4, 4), r"AdaptiveAvgPool2d\(.*\): expected .* got \(4, 4\)"),
    (GlobalAvgPool2d(), (2, 3), r"GlobalAvgPool2d\(.*\): expected .* got \(2, 3\)"),
    (MaxPool2d(5, padding=1), (1, 1, 2, 2),
     r"MaxPool2d\(.*\): the window \(extent \(5, 5\)\) is bigger than the padded input "
     r"\(4, 4\); got input \(1, 1, 2, 2\)"),
    (MaxPool2d(2, dilation=3), (1, 1, 3, 3), r"window \(extent \(4, 4\)\) is bigger"),
    (AvgPool2d((1, 4)), (1, 1, 5, 3), r"AvgPool2d.*window \(extent \(1, 4\)\)"),
])
def test_shape_errors_name_the_layer_and_shapes(backend, layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer(on(backend, np.zeros(shape)))


@pytest.mark.parametrize(("make", "message"), [
    (lambda: MaxPool2d(2, padding=2), r"MaxPool2d: padding .* half the kernel size"),
    (lambda: AvgPool2d(3, padding=(1, 2)), r"AvgPool2d: padding .* half the kernel size"),
    (lambda: MaxPool2d(0), r"MaxPool2d: kernel_size must be positive"),
    (lambda: AvgPool2d(2, stride=0), r"AvgPool2d: stride must be positive"),
    (lambda: AdaptiveAvgPool2d(0), r"AdaptiveAvgPool2d: output_size"),
    (lambda: AdaptiveAvgPool2d((1, 2, 3)), r"AdaptiveAvgPool2d: output_size"),
])
def test_bad_arguments_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_defaults_and_repr():
    pool = MaxPool2d(3)
    assert pool.window.stride == (3, 3)
    assert repr(pool) == "MaxPool2d(kernel_size=(3, 3), stride=(3, 3), padding=(0, 0))"
    assert "count_include_pad=False" in repr(AvgPool2d(2, count_include_pad=False))
    assert "ceil_mode=True" in repr(MaxPool2d(2, ceil_mode=True))
    assert repr(AdaptiveAvgPool2d((2, None))) == "AdaptiveAvgPool2d(output_size=(2, None))"
    assert list(MaxPool2d(2).parameters()) == []


@pytest.mark.parametrize("layer", [MaxPool2d(2), AvgPool2d(3, stride=2, padding=1)],
                         ids=["max", "avg-pad"])
def test_gradient_in_another_memory_layout_gives_the_same_dx(backend, rng, layer):
    """An NCHW-stored gradient against NHWC-stored saved arrays changes only the speed:
    dx is the same (and max pooling stores it like the forward's input)."""
    from xdl.nn.functional import channels_first

    x = channels_first(on(backend, _distinct(rng, (2, 6, 7, 3))))   # NHWC in memory
    y = layer(x)
    g_host = rng.normal(size=tuple(y.shape))
    dx_nhwc_grad = layer.backward(channels_first(on(backend, g_host.transpose(0, 2, 3, 1))))
    layer(x)
    dx_nchw_grad = layer.backward(on(backend, g_host))
    np.testing.assert_allclose(_host(dx_nchw_grad), _host(dx_nhwc_grad), rtol=1e-12)
    if isinstance(x, np.ndarray) and isinstance(layer, MaxPool2d):  # it saved argmax
        for dx in (dx_nhwc_grad, dx_nchw_grad):
            assert backends.stride_order(dx.shape, dx.strides) == (0, 2, 3, 1)
