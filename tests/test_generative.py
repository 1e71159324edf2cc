"""Autoencoders, VAE, GAN, WGAN and DCGAN: gradients of each model's loss (float64,
finite differences, through the reparameterisation and through D into G), training
steps and reproducibility on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import on

import xdl
from xdl import backends, nn, optim
from xdl.gradcheck import gradcheck
from xdl.models import (
    GAN,
    VAE,
    WGAN,
    NegativeELBOLoss,
    conv_autoencoder,
    dcgan,
    dcgan_discriminator,
    dcgan_generator,
    interpolate_latents,
    mlp_autoencoder,
    mlp_discriminator,
    mlp_gan,
    mlp_generator,
    sparse_autoencoder,
)


class VAEObjective(nn.Module):
    """−ELBO of a VAE with the noise ε given, so finite differences see one function."""

    def __init__(self, vae, likelihood):
        super().__init__()
        self.vae, self.loss_fn = vae, NegativeELBOLoss(likelihood, std=0.7)

    def forward(self, x, noise):
        return self.loss_fn(self.vae(x, noise), x)

    def backward(self, grad):
        return self.vae.backward(*self.loss_fn.backward(grad))


class DiscriminatorObjective(nn.Module):
    def __init__(self, gan):
        super().__init__()
        self.gan = gan

    def forward(self, real, fake):
        return self.gan.discriminator_loss(real, fake)

    def backward(self, grad):
        return self.gan.backward_discriminator(grad)


class GeneratorObjective(nn.Module):
    def __init__(self, gan):
        super().__init__()
        self.gan = gan

    def forward(self, noise):
        return self.gan.generator_loss(noise)

    def backward(self, grad):
        return self.gan.backward_generator(grad)


def _small_gan(wasserstein=False):
    return mlp_gan(data_dim=5, latent_dim=3, g_hidden=(6,), d_hidden=(7,),
                   wasserstein=wasserstein)


def _small_dcgan():
    return dcgan(latent_dim=4, width=2)


AUTOENCODERS = {
    "mlp": (lambda: mlp_autoencoder(12, (7,), 3), (3, 12)),
    "mlp-linear-output": (lambda: mlp_autoencoder(12, (7, 5), 3, output="linear"), (1, 12)),
    "conv": (lambda: conv_autoencoder(1, 8, 2, 3), (2, 1, 8, 8)),
}


@pytest.mark.parametrize("name", AUTOENCODERS)
def test_autoencoder_gradients(backend, rng, name):
    build, shape = AUTOENCODERS[name]
    model = build().to(dtype="float64")
    assert gradcheck(model, on(backend, rng.uniform(size=shape))).ok


def test_sparse_autoencoder_gradients_include_the_kl_penalty(backend, rng):
    model = sparse_autoencoder(10, (6,), 4, sparsity=0.1, beta=2.0).to(dtype="float64")
    x = on(backend, rng.uniform(size=(5, 10)))
    recon, penalty = model(x)
    assert float(backends.to_numpy(penalty)) > 0.0
    assert gradcheck(model, x).ok


def test_sparse_penalty_matches_its_formula(backend, rng):
    model = sparse_autoencoder(6, (), 3, sparsity=0.2, beta=1.5).to(dtype="float64")
    x = on(backend, rng.uniform(size=(4, 6)))
    _, penalty = model(x)
    code = backends.to_numpy(model.encoder(x))
    rho_hat = code.mean(axis=0)
    expected = 1.5 * np.sum(0.2 * np.log(0.2 / rho_hat) + 0.8 * np.log(0.8 / (1 - rho_hat)))
    np.testing.assert_allclose(backends.to_numpy(penalty), expected, rtol=1e-12)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_vae_loss_gradients_through_the_reparameterisation(backend, rng, likelihood):
    vae = VAE(9, (6,), 3, likelihood=likelihood).to(dtype="float64")
    objective = VAEObjective(vae, likelihood)
    x = on(backend, rng.uniform(size=(4, 9)))
    noise = on(backend, rng.normal(size=(4, 3)))
    assert gradcheck(objective, x, noise, inputs_to_check=[]).ok


def test_vae_without_hidden_layers_and_batch_one(backend, rng):
    objective = VAEObjective(VAE(5, (), 2).to(dtype="float64"), "bernoulli")
    x = on(backend, rng.uniform(size=(1, 5)))
    assert gradcheck(objective, x, on(backend, rng.normal(size=(1, 2))),
                     inputs_to_check=[]).ok


def test_negative_elbo_matches_its_formula(backend, rng):
    logits, mu, logvar = rng.normal(size=(3, 4)), rng.normal(size=(3, 2)), rng.normal(
        size=(3, 2))
    x = rng.uniform(size=(3, 4))
    loss = NegativeELBOLoss()(tuple(on(backend, a) for a in (logits, mu, logvar)),
                              on(backend, x))
    p = 1 / (1 + np.exp(-logits))
    rec = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=1)
    kl = -0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar), axis=1)
    np.testing.assert_allclose(backends.to_numpy(loss), np.mean(rec + kl), rtol=1e-10)


@pytest.mark.parametrize("wasserstein", [False, True])
def test_discriminator_loss_gradients(backend, rng, wasserstein):
    gan = _small_gan(wasserstein).to(dtype="float64")
    real = on(backend, rng.normal(size=(4, 5)))
    fake = on(backend, rng.normal(size=(3, 5)))
    assert gradcheck(DiscriminatorObjective(gan), real, fake).ok


@pytest.mark.parametrize("wasserstein", [False, True])
def test_generator_loss_gradients_flow_through_d_into_g(backend, rng, wasserstein):
    gan = _small_gan(wasserstein).to(dtype="float64")
    result = gradcheck(GeneratorObjective(gan), on(backend, rng.normal(size=(4, 3))))
    assert result.ok
    assert any(name.startswith("parameter gan.generator") for name in result.checked)


def test_dcgan_losses_gradients_with_batch_norm(backend):
    # a seed whose LeakyReLU inputs keep clear of the kink by more than the step ε
    rng = np.random.default_rng(3)
    gan = _small_dcgan().to(dtype="float64")
    real = on(backend, rng.uniform(-1, 1, size=(3, 1, 28, 28)))
    fake = on(backend, rng.uniform(-1, 1, size=(2, 1, 28, 28)))
    assert gradcheck(DiscriminatorObjective(gan), real, fake, samples=20).ok
    assert gradcheck(GeneratorObjective(gan), on(backend, rng.normal(size=(3, 4))),
                     samples=20).ok


def test_dcgan_shapes_and_errors(backend, rng):
    generator, discriminator = dcgan_generator(8, 2), dcgan_discriminator(2)
    z = on(backend, rng.normal(size=(2, 8)), "float32")
    images = generator(z)
    assert tuple(images.shape) == (2, 1, 28, 28)
    assert tuple(discriminator(images).shape) == (2, 1)
    with pytest.raises(ValueError, match="Unflatten"):
        generator(on(backend, rng.normal(size=(2, 5)), "float32"))


def _train_steps(gan, real, steps, lr):
    d_opt = optim.Adam(gan.discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    g_opt = optim.Adam(gan.generator.parameters(), lr=lr, betas=(0.5, 0.999))
    return [gan.train_step(real, d_opt, g_opt) for _ in range(steps)]


@pytest.mark.parametrize("build", [_small_gan, _small_dcgan], ids=["mlp", "dcgan"])
def test_gan_training_step_updates_both_networks(backend, rng, build):
    gan = build()
    shape = (4, 5) if isinstance(gan.generator[0], nn.Linear) else (4, 1, 28, 28)
    real = on(backend, rng.uniform(-1, 1, size=shape), "float32")
    g_before = [backends.to_numpy(p.data).copy() for p in gan.generator.parameters()]
    d_before = [backends.to_numpy(p.data).copy() for p in gan.discriminator.parameters()]
    losses = _train_steps(gan, real, 2, 1e-2)
    assert all(np.isfinite(backends.to_numpy(v)) for step in losses for v in step.values())
    for before, param in zip(g_before, gan.generator.parameters()):
        assert not np.allclose(before, backends.to_numpy(param.data))
    for before, param in zip(d_before, gan.discriminator.parameters()):
        assert not np.allclose(before, backends.to_numpy(param.data))


def test_wgan_clips_the_critic_and_steps_g_every_n_critic(backend, rng):
    gan = mlp_gan(5, 3, (6,), (7,), wasserstein=True, clip_value=0.05, n_critic=3)
    real = on(backend, rng.normal(size=(4, 5)), "float32")
    d_opt = optim.RMSprop(gan.discriminator.parameters(), lr=0.5)
    g_opt = optim.RMSprop(gan.generator.parameters(), lr=5e-3)
    g_before = backends.to_numpy(gan.generator[0].weight.data).copy()
    steps = [gan.train_step(real, d_opt, g_opt) for _ in range(3)]
    assert [s["g_loss"] is None for s in steps] == [True, True, False]
    for param in gan.discriminator.parameters():
        assert np.max(np.abs(backends.to_numpy(param.data))) <= 0.05 + 1e-7
    assert not np.allclose(g_before, backends.to_numpy(gan.generator[0].weight.data))


def test_vae_and_autoencoder_training_steps(backend, rng):
    x = on(backend, rng.uniform(size=(6, 12)), "float32")
    vae, loss_fn = VAE(12, (8,), 2), NegativeELBOLoss()
    opt = optim.Adam(vae.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        losses.append(float(backends.to_numpy(loss_fn(vae(x), x))))
        vae.backward_params(*loss_fn.backward())
        opt.step()
    assert losses[-1] < losses[0]
    ae, mse = mlp_autoencoder(12, (8,), 3), nn.MSELoss()
    opt = optim.Adam(ae.parameters(), lr=1e-2)
    first = None
    for _ in range(5):
        opt.zero_grad()
        loss = float(backends.to_numpy(mse(ae(x), x)))
        first = loss if first is None else first
        ae.backward_params(mse.backward())
        opt.step()
    assert loss < first


def test_same_seed_same_samples(backend):
    like = backend.asarray(np.zeros(1), "float32")

    def samples():
        xdl.manual_seed(7)
        gan = mlp_gan(5, 3, (6,), (7,))
        return backends.to_numpy(gan.sample(4, like))

    first, second = samples(), samples()
    np.testing.assert_array_equal(first, second)
    xdl.manual_seed(7)
    vae = VAE(5, (4,), 2)
    a = backends.to_numpy(vae.sample(3, like))
    xdl.manual_seed(7)
    vae = VAE(5, (4,), 2)
    np.testing.assert_array_equal(a, backends.to_numpy(vae.sample(3, like)))


def test_gan_sample_leaves_no_cached_state_and_restores_mode(backend):
    gan = _small_dcgan()
    like = backend.asarray(np.zeros(1), "float32")
    out = gan.sample(3, like)
    assert tuple(out.shape) == (3, 1, 28, 28)
    assert gan.training
    assert all(m._saved is None for m in gan.modules())


def test_latent_interpolation_end_points(backend, rng):
    start, end = on(backend, rng.normal(size=4)), on(backend, rng.normal(size=4))
    for spherical in (False, True):
        path = backends.to_numpy(interpolate_latents(start, end, 5, spherical))
        assert path.shape == (5, 4)
        np.testing.assert_allclose(path[0], backends.to_numpy(start), atol=1e-12)
        np.testing.assert_allclose(path[-1], backends.to_numpy(end), atol=1e-12)


def test_gan_composes_any_modules():
    gan = GAN(mlp_generator(2, (4,), 3, output="linear"), mlp_discriminator(3, (4,)), 2)
    wgan = WGAN(mlp_generator(2, (4,), 3), mlp_discriminator(3, (4,)), 2, n_critic=2)
    assert "generator.0.weight" in gan.state_dict()
    assert "discriminator.2.bias" in wgan.state_dict()
