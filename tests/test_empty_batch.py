"""An empty batch (N = 0) goes through every convolution, pooling and normalisation
layer and the CNN models as in PyTorch: an empty output of the shape a full batch
would give, an empty input gradient and zero parameter gradients, on every backend and
every convolution algorithm."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import on

from xdl.backends import to_numpy
from xdl.models import create
from xdl.nn import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    ConvTranspose2d,
    Dropout2d,
    GlobalAvgPool2d,
    LayerNorm,
    Linear,
    MaxPool2d,
    conv_dft,
)

# name: (layer factory, input shape with N = 0)
LAYERS = {
    "conv-im2col": (lambda: Conv2d(3, 4, 3, padding=1, algorithm="im2col"), (0, 3, 7, 6)),
    "conv-im2col-stride-dilation": (
        lambda: Conv2d(3, 4, 3, stride=2, dilation=2, padding=2, algorithm="im2col"),
        (0, 3, 9, 8)),
    "conv-im2col-groups": (lambda: Conv2d(4, 6, 3, groups=2, algorithm="im2col"),
                           (0, 4, 5, 5)),
    "conv-im2col-wide": (lambda: Conv2d(16, 3, 3, stride=2, padding=1, algorithm="im2col"),
                         (0, 16, 5, 4)),
    "conv-toeplitz": (lambda: Conv2d(1, 6, 5, padding=2, algorithm="toeplitz"),
                      (0, 1, 12, 12)),
    "conv-toeplitz-stride": (lambda: Conv2d(2, 5, 3, stride=2, padding=1,
                                            algorithm="toeplitz"), (0, 2, 9, 11)),
    "conv-dft-real": (lambda: Conv2d(3, 4, 5, padding=2, algorithm="dft"), (0, 3, 9, 8)),
    "conv-dft-complex": (lambda: Conv2d(6, 16, 5, algorithm="dft"), (0, 6, 14, 14)),
    "conv-transpose": (lambda: ConvTranspose2d(3, 4, 3, stride=2, output_padding=1),
                       (0, 3, 5, 6)),
    "conv1d": (lambda: Conv1d(3, 4, 3, stride=2, padding=1), (0, 3, 11)),
    "max-pool": (lambda: MaxPool2d(2), (0, 3, 8, 8)),
    "max-pool-padded-overlapping": (lambda: MaxPool2d(3, stride=2, padding=1), (0, 3, 9, 8)),
    "avg-pool-ceil": (lambda: AvgPool2d(3, stride=2, padding=1, ceil_mode=True),
                      (0, 3, 8, 9)),
    "adaptive-avg-pool": (lambda: AdaptiveAvgPool2d((3, 2)), (0, 3, 7, 5)),
    "global-avg-pool": (lambda: GlobalAvgPool2d(), (0, 3, 4, 4)),
    "batch-norm-2d": (lambda: BatchNorm2d(3), (0, 3, 4, 5)),
    "batch-norm-1d": (lambda: BatchNorm1d(3), (0, 3)),
    "layer-norm": (lambda: LayerNorm(5), (0, 3, 5)),
    "linear": (lambda: Linear(3, 4), (0, 3)),
    "dropout-2d": (lambda: Dropout2d(0.5), (0, 3, 4, 4)),
}


def _full_batch_shape(backend, layer, shape):
    """The output shape of ``layer`` on a batch of two of ``shape``'s samples."""
    layer.eval()
    shape = tuple(layer(on(backend, np.zeros((2,) + shape[1:]))).shape)
    layer.train()
    return shape


def _assert_empty_pass(backend, layer, shape):
    """Forward and backward on an empty batch: shapes as for a full one, zero gradients."""
    expected = (0,) + _full_batch_shape(backend, layer, shape)[1:]
    layer.zero_grad()
    y = layer(on(backend, np.zeros(shape)))
    assert tuple(y.shape) == expected
    dx = layer.backward(on(backend, np.zeros(expected)))
    assert tuple(dx.shape) == shape
    for name, param in layer.named_parameters():
        assert param.grad is not None, name
        np.testing.assert_array_equal(to_numpy(param.grad), 0.0, err_msg=name)


@pytest.mark.parametrize("case", LAYERS)
def test_an_empty_batch_passes_through_the_layer(backend, case, monkeypatch):
    # 3 → 4 channels (12 pairs) takes the DFT's real form, 6 → 16 (96) its complex one
    monkeypatch.setattr(conv_dft, "REAL_FORM_MAX_CHANNEL_PAIRS", 16)
    factory, shape = LAYERS[case]
    layer = factory().to(dtype="float64")
    if case.startswith("conv-dft"):
        uses_real = conv_dft.uses_real_form(layer.in_channels, layer.out_channels)
        assert uses_real == case.endswith("real")
    _assert_empty_pass(backend, layer, shape)


@pytest.mark.parametrize("case", ["conv-im2col", "conv-toeplitz", "conv-dft-real",
                                  "conv-transpose", "conv1d"])
def test_backward_params_of_an_empty_batch_gives_zero_gradients(backend, case):
    factory, shape = LAYERS[case]
    layer = factory().to(dtype="float64")
    y = layer(on(backend, np.zeros(shape)))
    layer.backward_params(on(backend, np.zeros(tuple(y.shape))))
    for param in layer.parameters():
        np.testing.assert_array_equal(to_numpy(param.grad), 0.0)


def test_batch_norm_keeps_its_running_statistics_on_an_empty_batch(backend, rng):
    """PyTorch counts the batch and leaves the running mean and variance as they were."""
    bn = BatchNorm2d(3).to(dtype="float64")
    bn(on(backend, rng.normal(size=(4, 3, 2, 2))))
    mean, var = to_numpy(bn.running_mean), to_numpy(bn.running_var)
    bn(on(backend, np.zeros((0, 3, 2, 2))))
    np.testing.assert_array_equal(to_numpy(bn.running_mean), mean)
    np.testing.assert_array_equal(to_numpy(bn.running_var), var)
    assert int(to_numpy(bn.num_batches_tracked)) == 2
    bn.eval()
    assert tuple(bn(on(backend, np.zeros((0, 3, 2, 2)))).shape) == (0, 3, 2, 2)


@pytest.mark.parametrize("name, config", [("book_cnn", {}), ("book_cnn", {"batch_norm": True}),
                                          ("lenet5", {})])
def test_an_empty_batch_passes_through_the_cnn_models(backend, name, config):
    model = create(name, **config).to(dtype="float64")
    _assert_empty_pass(backend, model, (0, 1, 28, 28))
