"""The generative models of 《解剖深度学习原理》: GANs on points, the autoencoder and the
VAE on MNIST, and the MLP GAN, WGAN and DCGAN on MNIST with their classifier scores."""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
from tqdm.auto import tqdm

import xdl
from xdl import backends, checkpoint, data, nn, optim, training
from xdl.images import save_image_grid
from xdl.metrics import classifier_score
from xdl.models import (
    VAE,
    NegativeELBOLoss,
    create,
    interpolate_latents,
    mlp_autoencoder,
    mlp_gan,
)
from xdl.nn import no_grad
from xdl.plotting import plot_histograms_1d, plot_samples_2d
from xdl.recipes import recipe
from xdl.recipes.cnn import image_splits, nchw_images, train_cnn
from xdl.recipes.common import finish, run_record

# -- GANs on points ------------------------------------------------------------------------


def ring_of_gaussians(n: int, modes: int = 8, radius: float = 2.0, std: float = 0.05,
                      seed: int = 0):
    """``n`` points from ``modes`` Gaussians (σ = ``std``) evenly spaced on a circle;
    returns (points, centres)."""
    angles = 2 * np.pi * np.arange(modes) / modes
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    rng = np.random.default_rng(seed)
    points = centres[rng.integers(0, modes, n)] + std * rng.standard_normal((n, 2))
    return points.astype(np.float32), centres


def mode_coverage(samples: np.ndarray, centres: np.ndarray, std: float,
                  min_share: float = 0.01) -> dict:
    """Which modes the samples cover: a sample is *high quality* when it lies within 3σ
    of its nearest centre; a mode is covered when at least ``min_share`` of the samples
    are high-quality samples of it."""
    distances = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=2)
    nearest, closest = distances.argmin(axis=1), distances.min(axis=1)
    good = closest <= 3 * std
    counts = np.bincount(nearest[good], minlength=len(centres))
    return {"modes": len(centres), "modes_covered": int(np.sum(counts >= min_share * len(samples))),
            "high_quality_share": float(good.mean()), "samples_per_mode": counts.tolist()}


def _train_gan(gan, loader, epochs, d_optimizer, g_optimizer, progress, desc,
               on_epoch_end=None) -> dict:
    """``epochs`` passes of ``gan.train_step`` over ``loader``'s first arrays; returns the
    per-epoch mean losses (converted to host floats once per epoch)."""
    history = {"d_loss": [], "g_loss": [], "time": []}
    for epoch in range(epochs):
        began = time.perf_counter()
        d_sum = g_sum = 0.0
        d_count = g_count = 0
        for batch in tqdm(loader, desc=f"{desc} {epoch + 1}/{epochs}", disable=not progress,
                          leave=False, mininterval=0.5):
            losses = gan.train_step(batch[0], d_optimizer, g_optimizer)
            d_sum, d_count = d_sum + losses["d_loss"], d_count + 1
            if losses["g_loss"] is not None:
                g_sum, g_count = g_sum + losses["g_loss"], g_count + 1
        history["d_loss"].append(float(backends.to_numpy(d_sum)) / d_count)
        history["g_loss"].append(float(backends.to_numpy(g_sum)) / max(g_count, 1))
        history["time"].append(time.perf_counter() - began)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
    return history


def _adam(lr):
    """Builders of the D and G optimizers: Adam with β₁ = 0.5, as in the DCGAN paper."""
    return (lambda gan: optim.Adam(gan.discriminator.parameters(), lr=lr, betas=(0.5, 0.999)),
            lambda gan: optim.Adam(gan.generator.parameters(), lr=lr, betas=(0.5, 0.999)))


def _train_point_gan(config, settings, name, points, width: int, n_samples: int):
    """An MLP GAN (two hidden layers of ``width`` in G and D, latent size = the points'
    dimension, linear output) trained on ``points`` with Adam; returns ``n_samples``
    host samples and the history."""
    dim = points.shape[1]
    gan = mlp_gan(data_dim=dim, latent_dim=dim, g_hidden=(width, width),
                  d_hidden=(width, width), output="linear")
    loader = data.DataLoader(points, batch_size=settings["batch_size"], shuffle=True,
                             seed=config.seed, drop_last=True)
    optimizers = [build(gan) for build in _adam(settings["lr"])]
    history = _train_gan(gan, loader, settings["epochs"], *optimizers, config.progress, name)
    samples = gan.sample(n_samples, loader.arrays[0])
    return backends.to_numpy(samples).astype(np.float64), history


@recipe("gan-1d", "《解剖深度学习原理》 ch. 10: the GAN on real numbers",
        "an MLP GAN learning N(4, 1.25²) from 10,000 samples; mean, std and histogram",
        epochs=100, batch_size=128, lr=1e-3)
def gan_1d(config, settings):
    mean, std = 4.0, 1.25
    real = (mean + std * np.random.default_rng(config.seed).standard_normal((10000, 1))
            ).astype(np.float32)
    began = time.perf_counter()
    generated, history = _train_point_gan(config, settings, "gan-1d", real, 32, 10000)
    generated = generated[:, 0]
    within = np.abs(generated - mean) <= 3 * std
    os.makedirs(config.out, exist_ok=True)
    figure = plot_histograms_1d(real[:, 0], generated, os.path.join(config.out, "gan-1d.png"),
                                title="gan-1d: real against generated")
    metrics = {
        **run_record("gan-1d", config, settings, time.perf_counter() - began,
                     settings["epochs"]),
        "real_mean": mean, "real_std": std,
        "generated_mean": float(generated.mean()), "generated_std": float(generated.std()),
        "modes": 1, "modes_covered": int(within.mean() >= 0.9),
        "share_within_3_std": float(within.mean()), "figure": figure, "history": history,
    }
    return finish(config.out, "gan-1d", metrics)


@recipe("gan-2d", "《解剖深度学习原理》 ch. 10: the GAN on a ring of Gaussians",
        "an MLP GAN on 8 Gaussians (σ 0.05) on a circle of radius 2; modes covered and a "
        "scatter plot", epochs=100, batch_size=256, lr=1e-3)
def gan_2d(config, settings):
    std = 0.05
    points, centres = ring_of_gaussians(20000, std=std, seed=config.seed)
    began = time.perf_counter()
    generated, history = _train_point_gan(config, settings, "gan-2d", points, 128, 2500)
    os.makedirs(config.out, exist_ok=True)
    figure = plot_samples_2d(points[:2500], generated, centres,
                             os.path.join(config.out, "gan-2d.png"),
                             title="gan-2d: 8 Gaussians on a ring")
    metrics = {
        **run_record("gan-2d", config, settings, time.perf_counter() - began,
                     settings["epochs"]),
        **mode_coverage(generated, centres, std), "figure": figure, "history": history,
    }
    return finish(config.out, "gan-2d", metrics)


# -- autoencoder and VAE on MNIST --------------------------------------------------------------


def _flat_mnist(config):
    """MNIST as (N, 784) float32 in [0, 1]: the training and the test images."""
    root = config.data_root("mnist")
    train, _ = data.mnist(root=root, split="train")
    test, _ = data.mnist(root=root, split="test")
    return (train.reshape(len(train), -1).astype(np.float32) / 255,
            test.reshape(len(test), -1).astype(np.float32) / 255)


def _fit_unsupervised(config, settings, model, loss_fn, train, test, optimizer):
    """fit on ``train`` (input = target) and the test loss; (history, test loss)."""
    loader = data.DataLoader(train, batch_size=settings["batch_size"], shuffle=True,
                             seed=config.seed)
    test_loader = data.DataLoader(test, batch_size=1000)
    history = training.fit(model, loss_fn, optimizer, loader, settings["epochs"],
                           val_loader=test_loader, metrics=(), progress=config.progress)
    return history, training.evaluate(model, loss_fn, test_loader, metrics=())["loss"], \
        test_loader


@recipe("ae-mnist", "《解剖深度学习原理》 ch. 9: the autoencoder",
        "an MLP autoencoder 784-512-128-32 (and its mirror image) on MNIST; test MSE per "
        "pixel and reconstructions", epochs=20, batch_size=128, lr=1e-3)
def ae_mnist(config, settings):
    train, test = _flat_mnist(config)
    arch_config = {"in_features": 784, "hidden": [512, 128], "code": 32}
    model = mlp_autoencoder(**arch_config)
    began = time.perf_counter()
    history, test_mse, test_loader = _fit_unsupervised(
        config, settings, model, nn.MSELoss(), train, test,
        optim.Adam(model.parameters(), lr=settings["lr"]))
    seconds = time.perf_counter() - began
    originals = test_loader.arrays[0][:16, ...]
    model.eval()
    with no_grad():
        reconstructions = model(originals)
    pair = backends.namespace(originals).concat([originals, reconstructions], axis=0)
    figure = save_image_grid(os.path.join(config.out, "reconstructions.png"),
                             _as_images(pair), rows=2)
    checkpoint.save(os.path.join(config.out, "model.npz"), model, arch="mlp_autoencoder",
                    config=arch_config)
    metrics = {
        **run_record("ae-mnist", config, settings, seconds, len(history["loss"])),
        "test_mse_per_pixel": test_mse,
        "figure": figure, "history": dict(history),
    }
    return finish(config.out, "ae-mnist", metrics)


def _as_images(flat):
    """(N, 784) → (N, 1, 28, 28) on the same backend."""
    return backends.namespace(flat).reshape(flat, (flat.shape[0], 1, 28, 28))


@recipe("vae-mnist", "《解剖深度学习原理》 ch. 9: the variational autoencoder",
        "a VAE 784-400-20 with a Bernoulli decoder on MNIST; test negative ELBO, samples, "
        "an interpolation and the manifold of a 2-D-latent VAE", epochs=20, batch_size=128,
        lr=1e-3)
def vae_mnist(config, settings):
    train, test = _flat_mnist(config)
    began = time.perf_counter()
    results = {}
    models = {}
    for latent in (20, 2):
        xdl.manual_seed(config.seed)
        model = VAE(784, (400,), latent)
        history, test_loss, test_loader = _fit_unsupervised(
            config, settings, model, NegativeELBOLoss(), train, test,
            optim.Adam(model.parameters(), lr=settings["lr"]))
        results[latent] = {"test_negative_elbo": test_loss, "history": dict(history)}
        models[latent] = model
        checkpoint.save(os.path.join(config.out, f"vae-{latent}d.npz"), model, arch="vae",
                        config={"in_features": 784, "hidden": [400], "latent": latent})
    seconds = time.perf_counter() - began
    like = test_loader.arrays[0]
    model = models[20].eval()
    with no_grad():
        samples = model.sample(64, like)
        mu, _ = model.encode(like[:2, ...])
        path = model.decode(interpolate_latents(mu[0, ...], mu[1, ...], 10))
        manifold = models[2].eval().decode(_latent_grid(15, like))
    figures = {
        "samples": save_image_grid(os.path.join(config.out, "samples.png"), _as_images(samples)),
        "interpolation": save_image_grid(os.path.join(config.out, "interpolation.png"),
                                         _as_images(path), rows=1),
        "manifold": save_image_grid(os.path.join(config.out, "manifold.png"),
                                    _as_images(manifold), rows=15, padding=0),
    }
    metrics = {
        **run_record("vae-mnist", config, settings, seconds, settings["epochs"]),
        "test_negative_elbo": results[20]["test_negative_elbo"],
        "test_negative_elbo_2d_latent": results[2]["test_negative_elbo"],
        "likelihood": "Bernoulli, pixel intensities in [0, 1] as targets",
        "figures": figures, "history": results[20]["history"],
        "history_2d_latent": results[2]["history"],
    }
    return finish(config.out, "vae-mnist", metrics)


def _latent_grid(side: int, like, extent: float = 2.5):
    """side² 2-D latent points on a square grid over [−extent, extent]², row by row
    (top row: largest z₂)."""
    axis = np.linspace(-extent, extent, side)
    z1, z2 = np.meshgrid(axis, axis[::-1])
    grid = np.stack([z1.ravel(), z2.ravel()], axis=1)
    return backends.to_device(grid, backends.backend_of(like), dtype=like.dtype)


# -- GANs on MNIST --------------------------------------------------------------------------


def _mnist_classifier(config, settings):
    """The cnn-mnist classifier: ``--classifier PATH`` if given, else a book CNN trained
    here by the cnn-mnist recipe for ``classifier_epochs`` epochs."""
    if config.classifier:
        return checkpoint.load_model(config.classifier), config.classifier
    from xdl.models import BookCNN

    out = os.path.join(config.out, "classifier")
    sub = dataclasses.replace(config, out=out)
    epochs = settings["classifier_epochs"]
    xdl.manual_seed(config.seed)
    model = BookCNN(batch_norm=False)
    train_cnn(sub, {"epochs": epochs, "batch_size": 128, "lr": 0.05}, "cnn-mnist", model,
               "book_cnn", {"batch_norm": False}, image_splits(data.mnist, sub, "mnist"),
               max(epochs - 1, 1))
    return model, os.path.join(out, "model.npz")


def _gan_on_mnist(config, settings, name, arch, arch_config, d_optimizer, g_optimizer,
                  flat: bool):
    """Train the GAN ``create(arch, **arch_config)`` on MNIST scaled to [−1, 1]; sample
    grid, checkpoint every epoch and the classifier score of 1,000 samples next to that
    of 1,000 real test images. The optimizers are built by ``d_optimizer(gan)`` and
    ``g_optimizer(gan)``."""
    gan = create(arch, **arch_config)
    d_optimizer, g_optimizer = d_optimizer(gan), g_optimizer(gan)
    root = config.data_root("mnist")
    images, _ = data.mnist(root=root, split="train")
    test, _ = data.mnist(root=root, split="test")
    real = nchw_images(images) * 2.0 - 1.0
    if flat:
        real = real.reshape(len(real), -1)
    loader = data.DataLoader(real, batch_size=settings["batch_size"], shuffle=True,
                             seed=config.seed, drop_last=True)
    path = os.path.join(config.out, "model.npz")
    os.makedirs(config.out, exist_ok=True)
    like = loader.arrays[0]
    fixed_noise = gan.noise(64, like)

    def save(epoch):
        checkpoint.save(path, gan, arch=arch, config=arch_config, epoch=epoch)

    began = time.perf_counter()
    history = _train_gan(gan, loader, settings["epochs"], d_optimizer, g_optimizer,
                         config.progress, name, on_epoch_end=save)
    seconds = time.perf_counter() - began
    gan.eval()
    with no_grad():
        grid = gan.generator(fixed_noise)
        samples = backends.namespace(like).concat(
            [gan.generator(gan.noise(500, like)) for _ in range(2)], axis=0)
    gan.train()
    as_images = backends.namespace(samples).reshape(samples, (-1, 1, 28, 28))
    figure = save_image_grid(os.path.join(config.out, "samples.png"),
                             backends.namespace(grid).reshape(grid, (-1, 1, 28, 28)),
                             value_range=(-1.0, 1.0))
    classifier, classifier_path = _mnist_classifier(config, settings)
    real_test = backends.to_device(nchw_images(test[:1000]), backends.backend_of(like),
                                   dtype=like.dtype)
    metrics = {
        **run_record(name, config, settings, seconds, settings["epochs"]),
        "figure": figure, "classifier": classifier_path,
        "generated_score": classifier_score(classifier, (as_images + 1.0) / 2.0),
        "real_test_score": classifier_score(classifier, real_test), "history": history,
    }
    return finish(config.out, name, metrics)


@recipe("gan-mnist", "《解剖深度学习原理》 ch. 10: the GAN on MNIST",
        "an MLP GAN (G 100-256-512-1024-784, D 784-512-256-1) on MNIST; samples and "
        "classifier score", epochs=20, batch_size=64, lr=2e-4, classifier_epochs=2)
def gan_mnist(config, settings):
    return _gan_on_mnist(config, settings, "gan-mnist", "mlp_gan", {}, *_adam(settings["lr"]),
                         flat=True)


@recipe("wgan-mnist", "《解剖深度学习原理》 ch. 10: the Wasserstein GAN",
        "the MLP GAN as a WGAN: weight clipping 0.01, 5 critic steps per generator step, "
        "RMSprop; samples and classifier score", epochs=20, batch_size=64, lr=5e-5,
        classifier_epochs=2)
def wgan_mnist(config, settings):
    lr = settings["lr"]
    return _gan_on_mnist(config, settings, "wgan-mnist", "mlp_gan", {"wasserstein": True},
                         lambda gan: optim.RMSprop(gan.discriminator.parameters(), lr=lr),
                         lambda gan: optim.RMSprop(gan.generator.parameters(), lr=lr),
                         flat=True)


@recipe("dcgan-mnist", "《解剖深度学习原理》 ch. 10: DCGAN",
        "DCGAN (transposed-convolution generator with batch norm, 64-32-1 channels; "
        "strided-convolution discriminator, 32-64 channels) on MNIST; samples and classifier "
        "score", epochs=20, batch_size=64, lr=2e-4, classifier_epochs=2)
def dcgan_mnist(config, settings):
    return _gan_on_mnist(config, settings, "dcgan-mnist", "dcgan", {"width": 16},
                         *_adam(settings["lr"]), flat=False)
