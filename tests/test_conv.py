"""Convolutions: gradients by finite differences, values against PyTorch, chunking."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import on

from xdl import backends, nn
from xdl.backends import to_numpy
from xdl.gradcheck import gradcheck
from xdl.models import create
from xdl.nn import conv_dft
from xdl.nn.conv import Conv1d, Conv2d, ConvTranspose2d

CONV2D = {
    "3x3": ((2, 3, 3), {}, (2, 2, 5, 6)),
    "stride2-pad1": ((3, 4, 3), {"stride": 2, "padding": 1}, (2, 3, 7, 6)),
    "rect-kernel-dilation": ((2, 3, (3, 2)), {"dilation": 2, "padding": (1, 2)}, (1, 2, 8, 7)),
    "stride-rect": ((2, 2, 2), {"stride": (2, 3)}, (2, 2, 6, 7)),
    "groups": ((4, 6, 3), {"groups": 2, "padding": 1}, (2, 4, 5, 5)),
    "depthwise": ((3, 3, 3), {"groups": 3}, (1, 3, 4, 5)),
    "1x1-no-bias": ((3, 2, 1), {"bias": False}, (2, 3, 3, 3)),
    "batch1-kernel-equals-input": ((1, 2, 4), {}, (1, 1, 4, 4)),
    "wide-channels-last-path": ((16, 3, 3), {"stride": 2, "padding": 1}, (2, 16, 5, 4)),
    # stride 1: dx as a convolution with the flipped kernel, narrow and wide gradients
    "stride1-wide-input": ((16, 4, 3), {"padding": 1}, (2, 16, 5, 4)),
    "stride1-wide-output": ((8, 16, (3, 2)), {"padding": (2, 0), "dilation": (1, 2)},
                            (2, 8, 5, 6)),
    "padding-beyond-kernel": ((2, 3, 1), {"padding": 1}, (2, 2, 3, 4)),  # keeps col2im
}


@pytest.mark.parametrize("case", ["stride1-wide-input", "stride1-wide-output"])
def test_stride1_cases_take_the_convolution_path(case):
    from xdl.nn.conv import _convolution_is_cheaper, transposed_window

    (c, o, k), kwargs, shape = CONV2D[case]
    layer = Conv2d(c, o, k, **kwargs)
    out = layer.window.output_size(*shape[2:])
    assert transposed_window(layer.window) is not None
    assert _convolution_is_cheaper(shape, (shape[0], o) + tuple(out))


@pytest.mark.parametrize("case", CONV2D)
def test_conv2d_gradients(backend, rng, case):
    args, kwargs, shape = CONV2D[case]
    layer = Conv2d(*args, **kwargs).to(dtype="float64")
    assert gradcheck(layer, on(backend, rng.normal(size=shape))).ok


CONV_T = {
    "stride2-output-padding": ((3, 2, 3), {"stride": 2, "padding": 1, "output_padding": 1},
                               (2, 3, 3, 4)),
    "groups-dilation": ((4, 6, (3, 2)), {"stride": (2, 1), "groups": 2, "dilation": 2,
                                         "padding": (1, 0)}, (1, 4, 3, 4)),
    "dcgan-up": ((4, 2, 4), {"stride": 2, "padding": 1, "bias": False}, (2, 4, 3, 3)),
}


@pytest.mark.parametrize("case", CONV_T)
def test_conv_transpose2d_gradients(backend, rng, case):
    args, kwargs, shape = CONV_T[case]
    layer = ConvTranspose2d(*args, **kwargs).to(dtype="float64")
    assert gradcheck(layer, on(backend, rng.normal(size=shape))).ok


@pytest.mark.parametrize("kwargs", [{}, {"stride": 2, "padding": 1}, {"dilation": 2, "groups": 2}])
def test_conv1d_gradients(backend, rng, kwargs):
    layer = Conv1d(4, 2, 3, **kwargs).to(dtype="float64")
    assert gradcheck(layer, on(backend, rng.normal(size=(2, 4, 9)))).ok


def test_backward_params_matches_backward(backend, rng):
    for layer, shape in [(Conv2d(3, 4, 3, padding=1, groups=1), (2, 3, 5, 5)),
                         (Conv2d(3, 4, 5, padding=2, algorithm="dft"), (2, 3, 6, 7)),
                         (Conv2d(2, 8, 3, padding=1, algorithm="toeplitz"), (2, 2, 5, 17)),
                         (Conv1d(2, 3, 3), (2, 2, 6)),
                         (ConvTranspose2d(2, 3, 3, stride=2), (2, 2, 3, 3))]:
        layer.to(dtype="float64")
        x = on(backend, rng.normal(size=shape))
        g = on(backend, rng.normal(size=tuple(layer(x).shape)))
        layer.backward(g)
        full = [to_numpy(p.grad) for p in layer.parameters()]
        layer.zero_grad()
        layer(x)
        assert layer.backward_params(g) is None
        for p, expected in zip(layer.parameters(), full):
            np.testing.assert_allclose(to_numpy(p.grad), expected, rtol=1e-12)


def _torch_twin(torch, layer, torch_class, args, kwargs):
    """The PyTorch layer of the same configuration, with ``layer``'s weights."""
    twin = torch_class(*args, **kwargs).double()
    with torch.no_grad():
        twin.weight.copy_(torch.tensor(to_numpy(layer.weight.data)))
        if layer.bias is not None:
            twin.bias.copy_(torch.tensor(to_numpy(layer.bias.data)))
    return twin


@pytest.mark.parametrize("case", CONV2D)
def test_conv2d_matches_pytorch(backend, rng, case):
    args, kwargs, shape = CONV2D[case]
    torch = pytest.importorskip("torch")
    layer = Conv2d(*args, **kwargs).to(dtype="float64")
    twin = _torch_twin(torch, layer, torch.nn.Conv2d, args, kwargs)
    x = rng.normal(size=shape)
    expected = twin(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(to_numpy(layer(on(backend, x))), expected, atol=1e-12)


@pytest.mark.parametrize("case", CONV_T)
def test_conv_transpose2d_matches_pytorch(backend, rng, case):
    args, kwargs, shape = CONV_T[case]
    torch = pytest.importorskip("torch")
    layer = ConvTranspose2d(*args, **kwargs).to(dtype="float64")
    twin = _torch_twin(torch, layer, torch.nn.ConvTranspose2d, args, kwargs)
    x = rng.normal(size=shape)
    expected = twin(torch.tensor(x)).detach().numpy()
    out = layer(on(backend, x))
    assert tuple(out.shape) == expected.shape
    np.testing.assert_allclose(to_numpy(out), expected, atol=1e-12)


@pytest.mark.parametrize("channels, out_channels", [(3, 4), (3, 16), (16, 4)],
                         ids=["kernel-major", "kernel-major-nhwc-output", "channels-last"])
def test_chunked_batches_give_the_same_result(backend, rng, monkeypatch, channels,
                                              out_channels):
    """Tiny chunks (one sample each) must not change outputs or gradients, on both
    im2col layouts and both output layouts."""
    layer = Conv2d(channels, out_channels, 3, stride=2, padding=1).to(dtype="float64")
    x = on(backend, rng.normal(size=(5, channels, 7, 7)))
    g = on(backend, rng.normal(size=(5, out_channels, 4, 4)))
    whole_y = to_numpy(layer(x))
    whole_dx = to_numpy(layer.backward(g))
    whole_dw = to_numpy(layer.weight.grad)
    monkeypatch.setattr(backends.Backend, "chunk_bytes", property(lambda self: 1))
    layer.zero_grad()
    np.testing.assert_allclose(to_numpy(layer(x)), whole_y, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(layer.backward(g)), whole_dx, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(layer.weight.grad), whole_dw, rtol=1e-12)


def test_parameter_shapes_and_state_dict_follow_pytorch():
    assert Conv2d(3, 8, 5, groups=1).weight.shape == (8, 3, 5, 5)
    assert Conv2d(4, 8, 3, groups=2).weight.shape == (8, 2, 3, 3)
    assert ConvTranspose2d(4, 6, 3, groups=2).weight.shape == (4, 3, 3, 3)
    assert Conv1d(3, 5, 7).weight.shape == (5, 3, 7)
    assert list(nn.Sequential(Conv2d(1, 2, 3)).state_dict()) == ["0.weight", "0.bias"]


def test_clear_errors(backend):
    layer = Conv2d(3, 4, 5)
    with pytest.raises(ValueError, match=r"Conv2d.*C = 3.*\(2, 1, 8, 8\)"):
        layer(backend.asarray(np.zeros((2, 1, 8, 8)), "float32"))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        layer(backend.asarray(np.zeros((1, 3, 4, 4)), "float32"))
    with pytest.raises(ValueError, match="divisible by groups"):
        Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="output_padding"):
        ConvTranspose2d(2, 2, 3, stride=1, output_padding=1)


# the DFT path: odd and even padded widths (the half spectrum's last bin), rectangular
# kernels and paddings, valid and same sizes, batch 1, 1×1 kernels
DFT_CASES = {
    "5x5-same": ((3, 4, 5), {"padding": 2}, (2, 3, 7, 6)),
    "rect-kernel-rect-padding": ((2, 3, (3, 2)), {"padding": (1, 0)}, (1, 2, 6, 9)),
    "valid-batch1": ((2, 2, 3), {}, (1, 2, 5, 5)),
    "even-kernel-no-bias": ((3, 2, 4), {"padding": (2, 1), "bias": False}, (2, 3, 8, 6)),
    "1x1": ((3, 2, 1), {}, (2, 3, 3, 4)),
}


# the Toeplitz path: one block and several (the last one overhanging the output), stride,
# dilation, rectangular kernels and paddings, batch 1, 1×1 kernels
TOEPLITZ_CASES = {
    "5x5-same-one-block": ((1, 6, 5), {"padding": 2}, (2, 1, 8, 9)),
    "blocks-overhang": ((2, 8, 3), {"padding": 1}, (2, 2, 5, 17)),
    "stride-dilation-blocks": ((3, 16, 3), {"stride": 2, "dilation": 2, "padding": 2},
                               (1, 3, 9, 21)),
    "rect-kernel-rect-padding": ((2, 3, (3, 2)), {"padding": (1, 0), "stride": (1, 2)},
                                 (2, 2, 6, 9)),
    "valid-no-bias": ((3, 2, 4), {"bias": False}, (1, 3, 6, 5)),
    "1x1": ((3, 2, 1), {}, (2, 3, 3, 4)),
    "padding-wider-than-kernel": ((2, 3, 2), {"stride": 3, "padding": 3}, (2, 2, 4, 7)),
}


# the DFT in both of its forms (real and complex arithmetic), and the Toeplitz path
ALGORITHM_CASES = {f"{algorithm}-{case}": (algorithm, cases[case])
                   for algorithm, cases in (("dft-real", DFT_CASES), ("dft-complex", DFT_CASES),
                                            ("toeplitz", TOEPLITZ_CASES))
                   for case in cases}


def pinned_algorithm(name: str, monkeypatch) -> str:
    """The Conv2d algorithm of a case; "dft-real" and "dft-complex" pin the DFT's form."""
    if not name.startswith("dft-"):
        return name
    monkeypatch.setattr(conv_dft, "REAL_FORM_MAX_CHANNEL_PAIRS",
                        10**9 if name == "dft-real" else 0)
    return "dft"


@pytest.mark.parametrize("case", ALGORITHM_CASES)
def test_conv2d_algorithm_gradients(backend, rng, case, monkeypatch):
    name, (args, kwargs, shape) = ALGORITHM_CASES[case]
    algorithm = pinned_algorithm(name, monkeypatch)
    layer = Conv2d(*args, **kwargs, algorithm=algorithm).to(dtype="float64")
    assert gradcheck(layer, on(backend, rng.normal(size=shape))).ok


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("case", ALGORITHM_CASES)
def test_conv2d_algorithm_matches_im2col(backend, rng, case, dtype, rtol, monkeypatch):
    """Outputs, input gradients and parameter gradients of each algorithm and im2col agree."""
    name, (args, kwargs, shape) = ALGORITHM_CASES[case]
    algorithm = pinned_algorithm(name, monkeypatch)
    im2col_layer, other_layer = (Conv2d(*args, **kwargs, algorithm=name)
                                 for name in ("im2col", algorithm))
    other_layer.load_state_dict(im2col_layer.state_dict())
    x = on(backend, rng.normal(size=shape), dtype)
    outputs = []
    for layer in (im2col_layer, other_layer):
        layer.to(dtype=dtype)
        y = layer(x)
        g = on(backend, np.linspace(-1, 1, int(np.prod(y.shape))).reshape(tuple(y.shape)),
               dtype)
        dx = layer.backward(g)
        outputs.append([to_numpy(a) for a in (y, dx, *[p.grad for p in layer.parameters()])])
    for got, expected in zip(*outputs[::-1]):
        scale = np.abs(expected).max()
        np.testing.assert_allclose(got, expected, rtol=0, atol=rtol * scale)


def test_auto_takes_the_dft_where_it_is_estimated_at_most_half_im2cols_cost(rng):
    from xdl.nn.conv_dft import dft_is_cheaper
    from xdl.nn.functional import Window

    same5 = Window.of(5, 1, 2, 1)
    assert dft_is_cheaper((32, 32, 14, 14), 64, same5, 1)            # the book CNN's conv 2
    assert not dft_is_cheaper((32, 1, 28, 28), 32, same5, 1)         # its conv 1: C = 1
    assert dft_is_cheaper((64, 6, 14, 14), 16, Window.of(5), 1)      # LeNet-5's conv 2
    assert not dft_is_cheaper((64, 1, 28, 28), 6, same5, 1)          # LeNet-5's conv 1
    assert not dft_is_cheaper((8, 16, 28, 28), 16, Window.of(3, 1, 1, 1), 1)  # ResNet 3×3
    assert not dft_is_cheaper((8, 32, 14, 14), 64, Window.of(3, 1, 1, 1), 1)  # VGG 3×3
    assert not dft_is_cheaper((32, 32, 14, 14), 64, Window.of(5, 2, 2, 1), 1)  # stride 2
    with backends.use("numpy"):
        layer = Conv2d(32, 64, 5, padding=2)
    layer(rng.normal(size=(1, 32, 14, 14)).astype(np.float32))
    assert layer.saved[0] == "dft"  # kept the transformed input, not x
    layer.backward_params(np.ones((1, 64, 14, 14), np.float32))
    assert layer.weight.grad.shape == (64, 32, 5, 5)


def test_the_dft_takes_its_real_form_for_few_channels():
    assert conv_dft.uses_real_form(6, 16)          # LeNet-5's conv 2
    assert not conv_dft.uses_real_form(32, 64)     # the book CNN's conv 2


def test_auto_takes_the_toeplitz_path_where_im2cols_product_is_narrow(rng):
    from xdl.nn.conv_relu_pool import ConvReLUPool
    from xdl.nn.conv_toeplitz import toeplitz_is_cheaper
    from xdl.nn.functional import Window

    same5 = Window.of(5, 1, 2, 1)
    assert toeplitz_is_cheaper((64, 1, 28, 28), 6, same5, 1)          # LeNet-5's conv 1
    assert not toeplitz_is_cheaper((32, 1, 28, 28), 32, same5, 1)     # the book CNN's conv 1
    assert not toeplitz_is_cheaper((8, 32, 14, 14), 64, Window.of(3, 1, 1, 1), 1)  # VGG 3×3
    assert not toeplitz_is_cheaper((64, 6, 14, 14), 6, Window.of(5), 2)  # two groups
    with backends.use("numpy"):
        lenet = create("lenet5")
    x = rng.normal(size=(2, 1, 28, 28)).astype(np.float32)
    assert lenet.features[0].algorithm_for(tuple(x.shape)) == "toeplitz"
    assert lenet.features[3].algorithm_for((2, 6, 14, 14)) == "dft"   # the DFT comes first
    lenet(x)
    first_stage = lenet.features.saved[0][0]      # conv 1 → ReLU → pool on the Toeplitz path
    assert isinstance(first_stage, ConvReLUPool) and first_stage.conv is lenet.features[0]


def test_conv2d_algorithm_errors():
    with pytest.raises(ValueError, match="algorithm='dft' needs stride 1, dilation 1"):
        Conv2d(3, 4, 3, stride=2, algorithm="dft")
    with pytest.raises(ValueError, match="algorithm='toeplitz' needs groups=1"):
        Conv2d(4, 4, 3, groups=2, algorithm="toeplitz")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        Conv2d(3, 4, 3, algorithm="fft")
    assert "algorithm='dft'" in repr(Conv2d(3, 4, 3, algorithm="dft"))


@pytest.mark.parametrize("make", [
    lambda nn: nn.Conv1d(3, 4, 3, stride=2, padding=1, dilation=2, bias=False),
    lambda nn: nn.Conv1d(3, 4, 3),
    lambda nn: nn.Conv2d(3, 4, (3, 2), padding=(0, 1), groups=1),
    lambda nn: nn.Conv2d(4, 6, 3, stride=2, dilation=2, groups=2),
    lambda nn: nn.ConvTranspose2d(3, 4, 3, stride=2, output_padding=1),
])
def test_convolution_reprs_are_pytorchs(make):
    torch = pytest.importorskip("torch")
    assert repr(make(nn)) == repr(make(torch.nn))
