"""The classic CNNs: shapes on 28×28 and 32×32, torchvision's state_dict names,
parameter counts, whole-model gradients, the augmentation, the cosine schedule, and the
classic-cnn recipes end to end on fixture data, resumed and uninterrupted."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import on

import xdl
from xdl import backends, optim, recipes
from xdl.data import DataLoader, write_idx
from xdl.data.augment import RandomCropFlip, crop_and_flip
from xdl.flops import count_macs, count_parameters
from xdl.gradcheck import gradcheck
from xdl.models import (
    AlexNetSmall,
    GoogLeNetSmall,
    NiN,
    ResNet,
    VGGSmall,
    create,
    resnet,
)
from xdl.nn.normalization import BatchNorm2d

TINY = {
    "alexnet_small": lambda: AlexNetSmall(width=0.05, hidden=8, dropout=0.0),
    "vgg_small": lambda: VGGSmall(width=0.05, hidden=8, batch_norm=True, dropout=0.0),
    "nin": lambda: NiN(width=0.03, batch_norm=True, dropout=0.0),
    "googlenet_small": lambda: GoogLeNetSmall(width=0.05, dropout=0.0),
    "resnet20": lambda: resnet("resnet20", width=2),
    "resnet18-small": lambda: resnet("resnet18", width=2, stem="small"),
    "resnet50-small": lambda: resnet("resnet50", width=1, stem="small"),
}


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("size", [28, 32])
def test_model_output_shapes(backend, rng, name, size):
    model = TINY[name]()
    y = model(on(backend, rng.normal(size=(2, 1, size, size)), "float32"))
    assert tuple(y.shape) == (2, 10)


@pytest.mark.parametrize("name", ["resnet20", "googlenet_small", "nin", "vgg_small",
                                  "alexnet_small"])
def test_model_gradients(rng, name):
    """Whole models in float64 (5 seeded elements of each input and parameter), batch
    norm in eval mode with random shifts β. (Training-mode batch norm is checked block by
    block in test_blocks.py: in a whole net this narrow, a 1-channel branch at batch 2 is
    nearly constant, 1/σ is huge and finite differences lose their accuracy; and at
    β = 0 a channel a dead ReLU made constant would sit exactly on the next ReLU's kink.)
    NumPy only, whatever XDL_BACKEND says: the layers' gradchecks cover every backend."""
    xdl.manual_seed(0)
    with backends.use("numpy"):
        model = TINY[name]().to(dtype="float64").eval()
        for module in model.modules():
            if isinstance(module, BatchNorm2d):
                module.bias.data = rng.normal(size=module.bias.shape)
        size = 16 if name == "googlenet_small" else 28  # 16 → 8 → 4 → 2 through its pools
        assert gradcheck(model, rng.normal(size=(2, 1, size, size)), samples=5, atol=1e-6).ok


def test_models_train_a_step_on_device1(backend):
    """No host round-trip in a training step of a residual and an Inception network."""
    from xdl import nn

    for make in (TINY["resnet20"], TINY["googlenet_small"]):
        model = make()
        optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        loss_fn = nn.CrossEntropyLoss()
        x = on(backend, np.random.default_rng(0).random((4, 1, 28, 28)), "float32")
        loss_fn(model(x), on(backend, np.array([0, 1, 2, 3])))
        model.backward_params(loss_fn.backward())
        optimizer.step()


# torchvision's resnet18() (3 input channels, 1,000 classes): the 42 weights in its
# state_dict order with their shapes, and fc.bias. Every BatchNorm2d (a 1-D weight) also
# has bias, running_mean, running_var and num_batches_tracked: 122 keys in all.
RESNET18_WEIGHTS = """
conv1.weight (64,3,7,7)
bn1.weight (64,)
layer1.0.conv1.weight (64,64,3,3)
layer1.0.bn1.weight (64,)
layer1.0.conv2.weight (64,64,3,3)
layer1.0.bn2.weight (64,)
layer1.1.conv1.weight (64,64,3,3)
layer1.1.bn1.weight (64,)
layer1.1.conv2.weight (64,64,3,3)
layer1.1.bn2.weight (64,)
layer2.0.conv1.weight (128,64,3,3)
layer2.0.bn1.weight (128,)
layer2.0.conv2.weight (128,128,3,3)
layer2.0.bn2.weight (128,)
layer2.0.downsample.0.weight (128,64,1,1)
layer2.0.downsample.1.weight (128,)
layer2.1.conv1.weight (128,128,3,3)
layer2.1.bn1.weight (128,)
layer2.1.conv2.weight (128,128,3,3)
layer2.1.bn2.weight (128,)
layer3.0.conv1.weight (256,128,3,3)
layer3.0.bn1.weight (256,)
layer3.0.conv2.weight (256,256,3,3)
layer3.0.bn2.weight (256,)
layer3.0.downsample.0.weight (256,128,1,1)
layer3.0.downsample.1.weight (256,)
layer3.1.conv1.weight (256,256,3,3)
layer3.1.bn1.weight (256,)
layer3.1.conv2.weight (256,256,3,3)
layer3.1.bn2.weight (256,)
layer4.0.conv1.weight (512,256,3,3)
layer4.0.bn1.weight (512,)
layer4.0.conv2.weight (512,512,3,3)
layer4.0.bn2.weight (512,)
layer4.0.downsample.0.weight (512,256,1,1)
layer4.0.downsample.1.weight (512,)
layer4.1.conv1.weight (512,512,3,3)
layer4.1.bn1.weight (512,)
layer4.1.conv2.weight (512,512,3,3)
layer4.1.bn2.weight (512,)
fc.weight (1000,512)
fc.bias (1000,)
"""


def _torch_keys(listing):
    """{key: shape} from the listing, with the four entries every BatchNorm2d adds."""
    keys = {}
    words = listing.split()
    for name, shape in zip(words[::2], words[1::2]):
        keys[name] = tuple(int(n) for n in shape.strip("(,)").split(",") if n)
        if name.endswith(".weight") and len(keys[name]) == 1:
            module = name[:-len(".weight")]
            for buffer in ("bias", "running_mean", "running_var"):
                keys[f"{module}.{buffer}"] = keys[name]
            keys[f"{module}.num_batches_tracked"] = ()
    return keys


def test_resnet18_state_dict_matches_torchvision():
    model = resnet("resnet18", num_classes=1000, in_channels=3)
    expected = _torch_keys(RESNET18_WEIGHTS)
    assert len(expected) == 122
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    assert count_parameters(model) == 11_689_512  # torchvision's resnet18


def test_resnet34_and_50_match_torchvision_counts_and_names():
    assert count_parameters(resnet("resnet34", num_classes=1000, in_channels=3)) == 21_797_672
    model = resnet("resnet50", num_classes=1000, in_channels=3)
    assert count_parameters(model) == 25_557_032
    keys = model.state_dict()
    assert len(keys) == 320
    for key, shape in [("layer1.0.conv1.weight", (64, 64, 1, 1)),
                       ("layer1.0.conv3.weight", (256, 64, 1, 1)),
                       ("layer1.0.downsample.0.weight", (256, 64, 1, 1)),
                       ("layer2.0.conv2.weight", (128, 128, 3, 3)),
                       ("layer4.2.bn3.running_var", (2048,)), ("fc.weight", (1000, 2048))]:
        assert tuple(keys[key].shape) == shape
    assert "layer1.1.downsample.0.weight" not in keys


def test_resnet20_layout():
    model = resnet("resnet20")
    assert count_parameters(model) == 272_186  # 16-32-64 channels, projection shortcuts
    names = [name for name, _ in model.named_parameters()]
    assert names[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert "layer3.2.conv2.weight" in names and "layer4.0.conv1.weight" not in names
    assert "layer2.0.downsample.0.weight" in names and "layer2.1.downsample.0.weight" not in names
    assert names[-2:] == ["fc.weight", "fc.bias"]
    assert isinstance(create("resnet", layout="resnet20"), ResNet)


def test_alexnet_and_googlenet_names_follow_torchvision():
    params = [name for name, _ in AlexNetSmall().named_parameters()]
    assert params == [f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias")] \
        + [f"classifier.{i}.{p}" for i in (1, 4, 6) for p in ("weight", "bias")]
    keys = GoogLeNetSmall().state_dict()
    tops = {key.split(".")[0] for key in keys}
    assert tops == {"conv1", "conv2", "conv3", "fc"} | {
        f"inception{s}" for s in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")}
    assert {"inception3a.branch1.conv.weight", "inception3a.branch2.0.bn.running_mean",
            "inception5b.branch3.1.conv.weight", "inception4e.branch4.1.bn.bias"} <= set(keys)


def test_vgg_and_nin_names():
    params = [name for name, _ in VGGSmall().named_parameters()]
    assert params[:2] == ["features.0.0.weight", "features.0.0.bias"]
    assert "features.3.2.weight" in params  # block 4, second conv
    assert params[-6:] == [f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")]
    params = [name for name, _ in NiN().named_parameters()]
    assert params[:2] == ["0.0.weight", "0.0.bias"] and params[-2:] == ["7.4.weight", "7.4.bias"]


def test_flop_counts_from_shapes():
    model = resnet("resnet20")
    macs = count_macs(model, (1, 1, 28, 28))
    assert macs["conv1"] == 28 * 28 * 16 * 9
    assert macs["layer2.0.conv1"] == 14 * 14 * 32 * 16 * 9
    assert macs["layer2.0.downsample.0"] == 14 * 14 * 32 * 16
    assert macs["fc"] == 64 * 10
    assert macs["total"] == sum(v for k, v in macs.items() if k != "total")
    assert count_macs(model, (3, 1, 28, 28))["total"] == 3 * macs["total"]
    assert model.training  # the mode is restored


# -- augmentation ---------------------------------------------------------------------


def test_crop_and_flip_are_shifted_and_mirrored_windows(backend, rng):
    host = rng.normal(size=(3, 2, 6, 5))
    offsets = np.array([[0, 4], [2, 2], [4, 1]])
    flips = np.array([False, True, True])
    y = backends.to_numpy(crop_and_flip(on(backend, host), on(backend, offsets),
                                        backend.asarray(flips, "bool"), 2))
    padded = np.pad(host, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for n, ((a, b), flip) in enumerate(zip(offsets, flips)):
        window = padded[n, :, a:a + 6, b:b + 5]
        np.testing.assert_array_equal(y[n], window[:, :, ::-1] if flip else window)
    centred = crop_and_flip(on(backend, host), on(backend, np.full((3, 2), 2)),
                            backend.asarray(np.array([True] * 3), "bool"), 2)
    np.testing.assert_array_equal(backends.to_numpy(centred), host[:, :, :, ::-1])


def test_random_crop_flip_follows_the_seed(backend, rng):
    host = rng.normal(size=(16, 1, 8, 8))
    augment = RandomCropFlip(padding=2)
    x = on(backend, host, "float32")
    first = backends.to_numpy(augment(x, np.random.default_rng(5)))
    again = backends.to_numpy(augment(x, np.random.default_rng(5)))
    other = backends.to_numpy(augment(x, np.random.default_rng(6)))
    assert first.shape == host.shape and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    same_on_numpy = RandomCropFlip(padding=2)(host.astype(np.float32), np.random.default_rng(5))
    np.testing.assert_array_equal(first, same_on_numpy)  # one seed, one result, any backend
    assert np.all(RandomCropFlip(0, flip=False)(host, np.random.default_rng(0)) == host)


def test_loader_augments_reproducibly_per_epoch(backend, rng):
    images = rng.random((10, 1, 6, 6)).astype(np.float32)
    labels = np.arange(10)

    def epoch(e):
        loader = DataLoader(images, labels, batch_size=4, shuffle=True, seed=3,
                            backend=backend, transform=RandomCropFlip(1))
        loader.set_epoch(e)
        return [backends.to_numpy(x) for x, _ in loader]

    for a, b in zip(epoch(1), epoch(1)):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(epoch(0), epoch(1)))


def test_random_crop_flip_checks_its_input():
    with pytest.raises(ValueError, match=r"RandomCropFlip: expected a batch \(N, C, H, W\), "
                                         r"got \(6, 6\)"):
        RandomCropFlip()(np.zeros((6, 6)), np.random.default_rng(0))


# -- the schedule ---------------------------------------------------------------------


def test_cosine_annealing_follows_pytorch():
    """η_e = η_min + (η₀ − η_min)(1 + cos(πe/T)) / 2; values of torch's CosineAnnealingLR
    (T_max=4, eta_min=0.01, lr=0.1)."""
    from xdl.nn import Linear

    optimizer = optim.SGD(Linear(2, 2).parameters(), lr=0.1)
    schedule = optim.CosineAnnealingLR(optimizer, T_max=4, eta_min=0.01)
    rates = [schedule.get_last_lr()[0]]
    for _ in range(4):
        schedule.step()
        rates.append(schedule.get_last_lr()[0])
    np.testing.assert_allclose(rates, [0.1, 0.08681980515, 0.055, 0.02318019485, 0.01])
    restored = optim.CosineAnnealingLR(optim.SGD(Linear(2, 2).parameters(), lr=0.1), T_max=4,
                                       eta_min=0.01)
    restored.load_state_dict(schedule.state_dict())
    assert restored.get_last_lr() == schedule.get_last_lr()


# -- recipes --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fashion_dir(tmp_path_factory):
    """A Fashion-MNIST look-alike: 120 training and 40 test images, each class a bright
    square at its own place."""
    root = tmp_path_factory.mktemp("datasets")
    rng = np.random.default_rng(0)
    folder = root / "fashion-mnist"
    folder.mkdir()
    for prefix, n in (("train", 120), ("t10k", 40)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            row, col = divmod(int(label), 5)
            images[i, 4 + 10 * row:10 + 10 * row, 2 + 5 * col:6 + 5 * col] = 250
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


TINY_SETTINGS = {
    "alexnet-fashion": {"width": 0.05, "hidden": 8},
    "vgg-fashion": {"width": 0.05, "hidden": 8},
    "nin-fashion": {"width": 0.03},
    "inception-fashion": {"width": 0.05},
    "resnet-fashion": {"width": 2},
}


def _run(name, data_dir, out, epochs, resume=None, backend=None):
    recipe = recipes.get(name)
    config = recipes.RunConfig(epochs=epochs, batch_size=32, data_dir=str(data_dir),
                               out=str(out), progress=False, resume=resume)
    settings = {**recipe.settings(config), **TINY_SETTINGS[name]}
    xdl.manual_seed(config.seed)
    return recipe.run(config, settings)


@pytest.mark.parametrize("name", TINY_SETTINGS)
def test_classic_recipe_runs_end_to_end(name, fashion_dir, tmp_path):
    metrics = _run(name, fashion_dir, tmp_path, epochs=1)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["epochs_run"] == 1 and 0.0 <= saved["test_accuracy"] <= 1.0
    assert saved["parameters"] > 0 and saved["macs_per_image"] > 0
    assert saved["epoch_seconds"] > 0 and metrics["settings"]["padding"] == 2
    assert (tmp_path / "model.npz").exists()


def test_resumed_run_equals_an_uninterrupted_one(backend, fashion_dir, tmp_path):
    """Two epochs straight, or one epoch then a resumed second one: same weights, same
    history, same test accuracy (the shuffle and the augmentation depend on the epoch)."""
    straight = _run("resnet-fashion", fashion_dir, tmp_path / "straight", epochs=2)
    _run("resnet-fashion", fashion_dir, tmp_path / "resumed", epochs=1)
    resumed = _run("resnet-fashion", fashion_dir, tmp_path / "resumed", epochs=2,
                   resume=str(tmp_path / "resumed" / "model.npz"))
    assert resumed["epochs_run"] == 2
    for key in ("loss", "val_loss", "val_accuracy", "lr"):
        np.testing.assert_allclose(resumed["history"][key], straight["history"][key],
                                   rtol=1e-5)
    assert resumed["test_accuracy"] == straight["test_accuracy"]
    np.testing.assert_allclose(resumed["test_loss"], straight["test_loss"], rtol=1e-5)


def test_cli_accepts_resume(fashion_dir, tmp_path, monkeypatch):
    from xdl.cli import main

    recipe = recipes.get("resnet-fashion")
    monkeypatch.setattr(recipe, "defaults", {**recipe.defaults, **TINY_SETTINGS[
        "resnet-fashion"]})
    args = ["train", "resnet-fashion", "--batch-size", "32", "--data-dir", str(fashion_dir),
            "--out", str(tmp_path), "--no-progress"]
    assert main(args + ["--epochs", "1"]) == 0
    assert main(args + ["--epochs", "2", "--resume", str(tmp_path / "model.npz")]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and len(metrics["history"]["loss"]) == 2


def test_cli_refuses_resume_for_a_recipe_without_checkpoints(tmp_path, capsys):
    from xdl.cli import main

    assert main(["train", "softmax-spiral", "--resume", str(tmp_path / "model.npz"),
                 "--out", str(tmp_path), "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert "softmax-spiral cannot --resume" in error and "resnet-fashion" in error
    assert not (tmp_path / "metrics.json").exists()
