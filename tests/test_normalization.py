"""BatchNorm1d/2d, LayerNorm and Dropout2d: gradients by finite differences, running
statistics and outputs against PyTorch, state-dict keys, channel dropout, errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import on

import xdl
from xdl import backends
from xdl.backends import to_numpy
from xdl.gradcheck import gradcheck
from xdl.nn.dropout import Dropout2d
from xdl.nn.module import no_grad
from xdl.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm


def _randomize(layer, backend, rng):
    """Parameters away from their ones/zeros start, so that γ and β are really tested."""
    for param in layer.parameters():
        param.data = on(backend, rng.normal(size=param.shape))
    return layer


def _train_steps(layer, backend, rng, shape, steps=2):
    """A few training forwards on shifted data, so the running statistics are non-trivial."""
    for _ in range(steps):
        layer(on(backend, rng.normal(loc=1.5, scale=2.0, size=shape)))
    return layer


def _channels_last(backend, host_nchw):
    """An (N, C, H, W) view of channels-last memory, as a convolution returns it."""
    nhwc = on(backend, np.ascontiguousarray(np.transpose(host_nchw, (0, 2, 3, 1))))
    return backend.xp.permute_dims(nhwc, (0, 3, 1, 2))


def _images_innermost(backend, host_nchw):
    """An (N, C, H, W) view of (H, W, C, N) memory, as the real-form DFT convolution
    returns it."""
    hwcn = on(backend, np.ascontiguousarray(np.transpose(host_nchw, (2, 3, 1, 0))))
    return backend.xp.permute_dims(hwcn, (3, 2, 0, 1))


# -- gradients ----------------------------------------------------------------------

BN_CASES = {
    "1d-2d-input": (lambda: BatchNorm1d(3), (4, 3), "train"),
    "1d-3d-input": (lambda: BatchNorm1d(3), (2, 3, 4), "train"),
    "1d-eval": (lambda: BatchNorm1d(3), (2, 3, 4), "eval"),
    "2d-batch2": (lambda: BatchNorm2d(3), (2, 3, 3, 4), "train"),
    "2d-odd-sizes": (lambda: BatchNorm2d(5), (3, 5, 3, 1), "train"),
    "2d-batch1-spatial": (lambda: BatchNorm2d(2), (1, 2, 3, 3), "train"),
    "2d-eval": (lambda: BatchNorm2d(3), (3, 3, 2, 3), "eval"),
    "2d-no-affine": (lambda: BatchNorm2d(3, affine=False), (2, 3, 3, 2), "train"),
    "2d-no-affine-eval": (lambda: BatchNorm2d(3, affine=False), (2, 3, 3, 2), "eval"),
    "2d-no-running-stats": (lambda: BatchNorm2d(3, track_running_stats=False), (2, 3, 2, 3),
                            "train"),
    "2d-no-running-stats-eval": (lambda: BatchNorm2d(3, track_running_stats=False),
                                 (2, 3, 2, 3), "eval"),
    "2d-momentum-none": (lambda: BatchNorm2d(2, momentum=None), (2, 2, 3, 3), "train"),
}


@pytest.mark.parametrize("case", BN_CASES)
def test_batchnorm_gradients(backend, rng, case):
    make, shape, mode = BN_CASES[case]
    layer = _randomize(make().to(dtype="float64"), backend, rng)
    _train_steps(layer, backend, rng, shape)
    if mode == "eval":
        layer.eval()
    assert gradcheck(layer, on(backend, rng.normal(size=shape))).ok


def test_batchnorm2d_gradients_on_a_channels_last_view(backend, rng):
    layer = _randomize(BatchNorm2d(3).to(dtype="float64"), backend, rng)
    host = rng.normal(size=(2, 3, 3, 4))
    assert gradcheck(layer, _channels_last(backend, host)).ok


def test_conv_batchnorm_block_gradients(backend, rng):
    block = xdl.nn.Sequential(xdl.nn.Conv2d(2, 3, 3, padding=1), BatchNorm2d(3), xdl.nn.Tanh())
    block = _randomize(block.to(dtype="float64"), backend, rng)
    assert gradcheck(block, on(backend, rng.normal(size=(2, 2, 4, 3)))).ok


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_batchnorm2d_any_layout_gives_the_same_results(backend, rng, mode):
    host, g = rng.normal(size=(4, 3, 5, 6)), rng.normal(size=(4, 3, 5, 6))
    results = []
    for x in (on(backend, host), _channels_last(backend, host)):
        layer = _randomize(BatchNorm2d(3).to(dtype="float64"), backend,
                           np.random.default_rng(7))
        _train_steps(layer, backend, np.random.default_rng(8), (4, 3, 5, 6))
        layer.train(mode == "train")
        y = layer(x)
        dx = layer.backward(on(backend, g))
        results.append([to_numpy(a) for a in (y, dx, layer.weight.grad, layer.bias.grad)])
    for ours, reference in zip(*results):
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_batchnorm2d_with_the_images_innermost_gives_the_same_results(backend, rng, mode):
    host, g = rng.normal(size=(4, 3, 5, 6)), rng.normal(size=(4, 3, 5, 6))
    nchw, innermost = (_batchnorm_run(backend, x, on(backend, g), mode)
                       for x in (on(backend, host), _images_innermost(backend, host)))
    for ours, reference in zip(innermost, nchw):
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)


def _batchnorm_run(backend, x, g, mode):
    """y, dx, dγ and dβ of a BatchNorm2d seeded and trained as in the layout tests."""
    layer = _randomize(BatchNorm2d(3).to(dtype="float64"), backend, np.random.default_rng(7))
    _train_steps(layer, backend, np.random.default_rng(8), (4, 3, 5, 6))
    layer.train(mode == "train")
    y = layer(x)
    dx = layer.backward(g)
    return [to_numpy(a) for a in (y, dx, layer.weight.grad, layer.bias.grad)]


LN_CASES = {
    "one-axis": (lambda: LayerNorm(5), (3, 5)),
    "one-axis-3d-input": (lambda: LayerNorm(4), (2, 3, 4)),
    "two-axes": (lambda: LayerNorm((3, 4)), (2, 3, 4)),
    "no-affine": (lambda: LayerNorm(4, elementwise_affine=False), (3, 4)),
    "no-bias": (lambda: LayerNorm((2, 3), bias=False), (2, 2, 3)),
}


@pytest.mark.parametrize("case", LN_CASES)
def test_layernorm_gradients(backend, rng, case):
    make, shape = LN_CASES[case]
    layer = _randomize(make().to(dtype="float64"), backend, rng)
    assert gradcheck(layer, on(backend, rng.normal(size=shape))).ok


@pytest.mark.parametrize("make", [lambda: BatchNorm2d(3), lambda: BatchNorm2d(3).eval(),
                                  lambda: LayerNorm((3, 2))], ids=["bn-train", "bn-eval", "ln"])
def test_backward_params_gives_the_parameter_gradients_of_backward(backend, rng, make):
    layer = _randomize(make().to(dtype="float64"), backend, rng)
    x, g = on(backend, rng.normal(size=(2, 3, 3, 2))), on(backend, rng.normal(size=(2, 3, 3, 2)))
    layer(x)
    layer.backward(g)
    full = [to_numpy(p.grad) for p in layer.parameters()]
    layer.zero_grad()
    layer(x)
    assert layer.backward_params(g) is None
    for param, expected in zip(layer.parameters(), full):
        np.testing.assert_allclose(to_numpy(param.grad), expected, rtol=1e-12)


# -- PyTorch parity ------------------------------------------------------------------

def _torch_layer(torch, layer, theirs):
    """``theirs`` (a torch module) in float64 with ``layer``'s parameters."""
    theirs = theirs.double()
    with torch.no_grad():
        for name, param in layer.named_parameters():
            getattr(theirs, name).copy_(torch.from_numpy(to_numpy(param.data)))
    return theirs


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batchnorm2d_matches_torch(backend, rng, momentum):
    torch = pytest.importorskip("torch")
    ours = _randomize(BatchNorm2d(4, momentum=momentum).to(dtype="float64"), backend, rng)
    theirs = _torch_layer(torch, ours, torch.nn.BatchNorm2d(4, momentum=momentum))
    for _ in range(4):
        x = rng.normal(loc=2.0, scale=3.0, size=(5, 4, 3, 2))
        g = rng.normal(size=x.shape)
        y = ours(on(backend, x))
        dx = ours.backward(on(backend, g))
        tx = torch.tensor(x, requires_grad=True)
        ty = theirs(tx)
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(to_numpy(y), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(to_numpy(dx), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(to_numpy(getattr(ours, name)),
                                   getattr(theirs, name).numpy(), rtol=1e-12, err_msg=name)
    assert int(to_numpy(ours.num_batches_tracked)) == int(theirs.num_batches_tracked) == 4
    for name in ("weight", "bias"):
        np.testing.assert_allclose(to_numpy(getattr(ours, name).grad),
                                   getattr(theirs, name).grad.numpy(), rtol=1e-10,
                                   err_msg=name)
    ours.eval()
    theirs.eval()
    x = rng.normal(loc=2.0, scale=3.0, size=(3, 4, 2, 2))
    np.testing.assert_allclose(to_numpy(ours(on(backend, x))),
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 3), (3, 3, 4)], ids=["2d", "3d"])
def test_batchnorm1d_matches_torch(backend, rng, shape):
    torch = pytest.importorskip("torch")
    ours = _randomize(BatchNorm1d(3).to(dtype="float64"), backend, rng)
    theirs = _torch_layer(torch, ours, torch.nn.BatchNorm1d(3))
    for _ in range(3):
        x = rng.normal(loc=-1.0, scale=2.0, size=shape)
        np.testing.assert_allclose(to_numpy(ours(on(backend, x))),
                                   theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(to_numpy(getattr(ours, name)),
                                   getattr(theirs, name).numpy(), rtol=1e-12, err_msg=name)
    x = rng.normal(size=shape)
    np.testing.assert_allclose(to_numpy(ours.eval()(on(backend, x))),
                               theirs.eval()(torch.tensor(x)).detach().numpy(), rtol=1e-10,
                               atol=1e-12)


def test_batchnorm2d_loads_a_torch_state_dict(backend, rng):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(rng.normal(size=3)))
        theirs.bias.copy_(torch.tensor(rng.normal(size=3)))
        for _ in range(3):
            theirs(torch.tensor(rng.normal(loc=1.0, size=(4, 3, 2, 2)), dtype=torch.float32))
    ours = BatchNorm2d(3).load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert int(to_numpy(ours.num_batches_tracked)) == 3
    x = rng.normal(size=(2, 3, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(to_numpy(ours.eval()(on(backend, x, "float32"))),
                               theirs.eval()(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("case", ["one-axis-3d-input", "two-axes", "no-affine", "no-bias"])
def test_layernorm_matches_torch(backend, rng, case):
    torch = pytest.importorskip("torch")
    make, shape = LN_CASES[case]
    ours = _randomize(make().to(dtype="float64"), backend, rng)
    theirs = _torch_layer(torch, ours, torch.nn.LayerNorm(
        ours.normalized_shape, elementwise_affine=ours.weight is not None,
        bias=ours.bias is not None))
    x, g = rng.normal(loc=3.0, size=shape), rng.normal(size=shape)
    y = ours(on(backend, x))
    dx = ours.backward(on(backend, g))
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(to_numpy(y), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_numpy(dx), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, param in ours.named_parameters():
        np.testing.assert_allclose(to_numpy(param.grad), getattr(theirs, name).grad.numpy(),
                                   rtol=1e-10, atol=1e-12, err_msg=name)


# -- state, buffers, modes ------------------------------------------------------------

def test_state_dict_keys_are_pytorchs(backend, rng):
    layer = BatchNorm2d(3)
    assert list(layer.state_dict()) == [
        "weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    _train_steps(layer, backend, rng, (2, 3, 2, 2))  # buffers updated by assignment
    assert list(layer.state_dict()) == [
        "weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert list(BatchNorm1d(3, affine=False).state_dict()) == [
        "running_mean", "running_var", "num_batches_tracked"]
    assert list(BatchNorm2d(3, track_running_stats=False).state_dict()) == ["weight", "bias"]
    assert list(xdl.nn.Sequential(BatchNorm2d(2), LayerNorm(4)).state_dict()) == [
        "0.weight", "0.bias", "1.weight", "1.bias", "0.running_mean", "0.running_var",
        "0.num_batches_tracked"]
    assert list(LayerNorm((2, 3), bias=False).state_dict()) == ["weight"]
    assert list(LayerNorm(3, elementwise_affine=False).state_dict()) == []


def test_buffers_live_on_the_backend_and_keep_their_dtypes(backend, rng):
    layer = BatchNorm2d(3)
    state = layer.state_dict()
    assert backends.backend_of(state["running_mean"]) == backend
    assert backends.dtype_name(state["running_var"].dtype) == "float32"
    assert tuple(state["num_batches_tracked"].shape) == ()
    layer.to(dtype="float64")
    _train_steps(layer, backend, rng, (2, 3, 2, 2), steps=3)
    assert backends.dtype_name(layer.running_mean.dtype) == "float64"
    assert backends.dtype_name(layer.num_batches_tracked.dtype) == "int64"
    assert int(to_numpy(layer.num_batches_tracked)) == 3
    assert list(dict(layer.named_buffers())) == [
        "running_mean", "running_var", "num_batches_tracked"]


def test_eval_uses_running_stats_and_training_updates_them(backend, rng):
    layer = BatchNorm1d(2, momentum=None)
    batches = [rng.normal(loc=[1.0, -2.0], scale=[0.5, 3.0], size=(8, 2)) for _ in range(3)]
    for batch in batches:
        layer(on(backend, batch, "float32"))
    np.testing.assert_allclose(to_numpy(layer.running_mean),
                               np.mean([b.mean(axis=0) for b in batches], axis=0), rtol=1e-5)
    np.testing.assert_allclose(to_numpy(layer.running_var),
                               np.mean([b.var(axis=0, ddof=1) for b in batches], axis=0),
                               rtol=1e-5)
    frozen = to_numpy(layer.running_mean).copy()
    layer.eval()
    x = rng.normal(size=(1, 2))  # a batch of 1 is fine in evaluation
    y = to_numpy(layer(on(backend, x, "float32")))
    expected = (x - frozen) / np.sqrt(to_numpy(layer.running_var) + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    np.testing.assert_array_equal(to_numpy(layer.running_mean), frozen)


def test_without_running_stats_evaluation_normalises_by_the_batch(backend, rng):
    layer = BatchNorm2d(2, affine=False, track_running_stats=False).eval()
    x = rng.normal(loc=4.0, size=(3, 2, 2, 2))
    y = to_numpy(layer(on(backend, x)))
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-5, atol=1e-6)


def test_evaluation_under_no_grad_caches_nothing(backend, rng):
    layer = BatchNorm2d(2).eval()
    with no_grad():
        layer(on(backend, rng.normal(size=(2, 2, 2, 2)), "float32"))
    with pytest.raises(RuntimeError, match="without a forward pass"):
        layer.backward(on(backend, np.ones((2, 2, 2, 2)), "float32"))


# -- Dropout2d ----------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(40, 30, 2, 3), (40, 30, 5)], ids=["4d", "3d"])
def test_dropout2d_zeroes_whole_channels(backend, rng, shape):
    layer = Dropout2d(0.3)
    host = rng.uniform(1.0, 2.0, size=shape)
    y = to_numpy(layer(on(backend, host)))
    g = to_numpy(layer.backward(on(backend, np.ones(shape))))
    axes = tuple(range(2, len(shape)))
    kept = np.all(y != 0, axis=axes)
    assert np.array_equal(kept, np.any(y != 0, axis=axes))  # all or nothing per channel
    assert 0.62 < kept.mean() < 0.78  # 1200 channels kept with probability 0.7
    kept_full = np.broadcast_to(np.expand_dims(kept, axes), shape)
    np.testing.assert_allclose(y[kept_full], host[kept_full] / 0.7, rtol=1e-6)
    np.testing.assert_allclose(g[kept_full], 1 / 0.7, rtol=1e-6)  # the same mask
    assert np.all(g[~kept_full] == 0)


def test_dropout2d_is_the_identity_in_evaluation_and_with_p0(backend, rng):
    x = on(backend, rng.normal(size=(2, 3, 2, 2)))
    g = on(backend, rng.normal(size=(2, 3, 2, 2)))
    for layer in (Dropout2d(0.5).eval(), Dropout2d(0.0)):
        assert layer(x) is x
        assert layer.backward(g) is g


def test_dropout2d_masks_follow_the_seed(backend):
    x = on(backend, np.ones((8, 16, 2, 2)))
    masks = []
    for _ in range(2):
        xdl.manual_seed(3)
        masks.append(to_numpy(Dropout2d(0.5)(x)))
    np.testing.assert_array_equal(*masks)


# -- errors -------------------------------------------------------------------------

def test_batch_of_one_without_spatial_axes_cannot_train(backend):
    layer = BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3.*more than 1 value per channel"):
        layer(on(backend, np.ones((1, 3)), "float32"))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        BatchNorm2d(3, track_running_stats=False).eval()(on(backend, np.ones((1, 3, 1, 1))))


@pytest.mark.parametrize(("make", "shape", "message"), [
    (lambda: BatchNorm2d(3), (2, 4, 5, 5), r"BatchNorm2d\(3.*\(N, C, H, W\) with C = 3, "
                                            r"got \(2, 4, 5, 5\)"),
    (lambda: BatchNorm2d(3), (2, 3, 5), r"BatchNorm2d\(3.*got \(2, 3, 5\)"),
    (lambda: BatchNorm1d(3), (2, 3, 4, 5), r"BatchNorm1d\(3.*\(N, C\) or \(N, C, L\).*"
                                            r"got \(2, 3, 4, 5\)"),
    (lambda: BatchNorm1d(3), (4, 2), r"BatchNorm1d\(3.*C = 3, got \(4, 2\)"),
    (lambda: LayerNorm((3, 4)), (2, 4, 3), r"LayerNorm\(\(3, 4\).*\(\.\.\., 3, 4\), "
                                            r"got \(2, 4, 3\)"),
    (lambda: LayerNorm(4), (3,), r"LayerNorm\(\(4,\).*got \(3,\)"),
    (lambda: Dropout2d(0.5), (2, 3), r"Dropout2d\(p=0.5\).*\(N, C, H, W\) or \(N, C, L\), "
                                     r"got \(2, 3\)"),
], ids=["bn2d-channels", "bn2d-ndim", "bn1d-ndim", "bn1d-channels", "ln-shape", "ln-ndim",
        "dropout2d-ndim"])
def test_wrong_input_shapes_are_named(backend, make, shape, message):
    with pytest.raises(ValueError, match=message):
        make()(on(backend, np.ones(shape), "float32"))


def test_dropout2d_rejects_a_bad_rate():
    with pytest.raises(ValueError, match=r"Dropout2d: p must be in \[0, 1\), got 1.0"):
        Dropout2d(1.0)
