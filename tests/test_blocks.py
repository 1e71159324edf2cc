"""The classic CNN blocks: float64 gradient checks on every backend (identity and
projection shortcuts, stride 1 and 2), backward_params, shapes and errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import on

from xdl import backends
from xdl.gradcheck import gradcheck
from xdl.nn.blocks import BasicBlock, BasicConv2d, Bottleneck, Inception, NiNBlock, VGGBlock

BLOCKS = {
    "basic-identity": (lambda: BasicBlock(3, 3), (1, 3, 5, 5), (1, 3, 5, 5)),
    "basic-projection-stride2": (lambda: BasicBlock(2, 4, stride=2), (1, 2, 6, 6),
                                 (1, 4, 3, 3)),
    "basic-projection-widen": (lambda: BasicBlock(2, 3), (1, 2, 4, 4), (1, 3, 4, 4)),
    "bottleneck-identity": (lambda: Bottleneck(8, 2), (1, 8, 4, 4), (1, 8, 4, 4)),
    "bottleneck-projection-stride2": (lambda: Bottleneck(3, 2, stride=2), (1, 3, 6, 6),
                                      (1, 8, 3, 3)),
    "inception": (lambda: Inception(3, 2, 2, 3, 1, 2, 2), (1, 3, 5, 5), (1, 9, 5, 5)),
    "nin": (lambda: NiNBlock(2, 3, 3, stride=2, padding=1), (1, 2, 6, 6), (1, 3, 3, 3)),
    "nin-bn": (lambda: NiNBlock(2, 3, 3, padding=1, batch_norm=True), (1, 2, 4, 4),
               (1, 3, 4, 4)),
    "vgg": (lambda: VGGBlock(2, 2, 3), (1, 2, 6, 6), (1, 3, 3, 3)),
    "vgg-bn": (lambda: VGGBlock(1, 2, 3, batch_norm=True), (1, 2, 4, 4), (1, 3, 2, 2)),
    "basic-conv2d": (lambda: BasicConv2d(2, 3, 3, stride=2, padding=1), (1, 2, 5, 5),
                     (1, 3, 3, 3)),
}


@pytest.mark.parametrize("name", BLOCKS)
def test_block_gradients(backend, rng, name):
    """The input gradient in full and 24 seeded elements of every parameter, batch 1,
    batch norm in training mode (the gradient flows through the batch statistics)."""
    make, shape, out_shape = BLOCKS[name]
    block = make().to(dtype="float64")
    x = on(backend, rng.normal(size=shape))
    assert tuple(block(x).shape) == out_shape
    assert gradcheck(block, x, samples=24).ok


@pytest.mark.parametrize("name", ["basic-projection-stride2", "bottleneck-identity",
                                  "inception", "vgg-bn"])
def test_block_gradients_in_eval_mode(backend, rng, name):
    make, shape, _ = BLOCKS[name]
    block = make().to(dtype="float64").eval()
    assert gradcheck(block, on(backend, rng.normal(size=shape)), samples=12).ok


@pytest.mark.parametrize("name", ["basic-identity", "bottleneck-projection-stride2",
                                  "inception", "nin-bn"])
def test_backward_params_matches_backward(backend, rng, name):
    """The path for data inputs accumulates the same parameter gradients."""
    make, shape, out_shape = BLOCKS[name]
    block = make().to(dtype="float64")
    x = on(backend, rng.normal(size=shape))
    grad = on(backend, rng.normal(size=out_shape))
    block(x)
    block.backward(grad)
    full = {k: backends.to_numpy(p.grad) for k, p in block.named_parameters()}
    block.zero_grad()
    block(x)
    assert block.backward_params(grad) is None
    for k, p in block.named_parameters():
        np.testing.assert_allclose(backends.to_numpy(p.grad), full[k], rtol=1e-12, atol=1e-14)


def test_residual_shortcut_is_identity_without_projection(backend, rng):
    """With F's last BN scaled to zero, y = relu(x) and dx = dy·[x > 0]."""
    block = BasicBlock(3, 3).to(dtype="float64")
    block.bn2.weight.data = block.bn2.weight.data * 0.0
    assert block.downsample is None
    x = on(backend, rng.normal(size=(2, 3, 4, 4)))
    dy = on(backend, rng.normal(size=(2, 3, 4, 4)))
    host_x = backends.to_numpy(x)
    np.testing.assert_allclose(backends.to_numpy(block(x)), np.maximum(host_x, 0), atol=1e-12)
    np.testing.assert_allclose(backends.to_numpy(block.backward(dy)),
                               backends.to_numpy(dy) * (host_x > 0), atol=1e-12)


def test_inception_concatenates_branches_in_order(rng):
    with backends.use("numpy"):  # host arrays, whatever XDL_BACKEND says
        block = Inception(3, 2, 2, 3, 1, 2, 2).to(dtype="float64").eval()
    x = rng.normal(size=(2, 3, 5, 5))
    y = block(x)
    assert block.out_channels == 9 and y.shape == (2, 9, 5, 5)
    np.testing.assert_array_equal(y[:, :2], block.branch1(x))
    np.testing.assert_array_equal(y[:, 2:5], block.branch2(x))
    np.testing.assert_array_equal(y[:, 5:7], block.branch3(x))
    np.testing.assert_array_equal(y[:, 7:], block.branch4(x))


def test_block_state_dict_names_follow_torchvision():
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    expected = {"conv1.weight", "conv2.weight", "downsample.0.weight"}
    expected |= {f"{m}.{b}" for m in ("bn1", "bn2", "downsample.1") for b in bn}
    assert set(BasicBlock(4, 8, stride=2).state_dict()) == expected
    assert "downsample.0.weight" not in BasicBlock(4, 4).state_dict()
    expected = {f"conv{i}.weight" for i in (1, 2, 3)} | {"downsample.0.weight"}
    expected |= {f"{m}.{b}" for m in ("bn1", "bn2", "bn3", "downsample.1") for b in bn}
    assert set(Bottleneck(4, 2, stride=2).state_dict()) == expected
    keys = set(Inception(4, 1, 1, 1, 1, 1, 1).state_dict())
    assert {"branch1.conv.weight", "branch2.1.bn.running_var", "branch3.1.conv.weight",
            "branch4.1.conv.weight", "branch4.1.bn.num_batches_tracked"} <= keys
    assert len(keys) == 6 * 6  # six BasicConv2d: conv.weight and five bn entries each


@pytest.mark.parametrize("make, shape, message", [
    (lambda: BasicBlock(3, 3), (1, 4, 5, 5), r"BasicBlock: expected input \(N, 3, H, W\), "
                                             r"got \(1, 4, 5, 5\)"),
    (lambda: Bottleneck(8, 2), (8, 4, 4), r"Bottleneck: expected input \(N, 8, H, W\)"),
    (lambda: Inception(3, 1, 1, 1, 1, 1, 1), (1, 2, 5, 5), "Inception: expected input"),
    (lambda: NiNBlock(2, 3, 3), (1, 3, 5, 5), "NiNBlock: expected input"),
    (lambda: VGGBlock(1, 2, 3), (1, 3, 4, 4), "VGGBlock: expected input"),
])
def test_blocks_name_the_expected_and_received_shapes(make, shape, message):
    with pytest.raises(ValueError, match=message):
        make()(np.zeros(shape, dtype=np.float32))
