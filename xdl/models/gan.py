"""Generative adversarial networks: GAN (Goodfellow et al., 2014), WGAN (Arjovsky et al.,
2017) and the DCGAN architecture (Radford et al., 2016), with hand-written backward.

The generator G maps noise z ~ N(0, I) to a sample; the discriminator (critic) D maps
a sample to one score per sample. The generator's gradient is the discriminator's
*input* gradient: dG(z) = D'(dL/dD(G(z))), which G's backward then takes to its
parameters. A training step runs G once, steps D on real and generated batches, then
steps G through the updated D.
"""

from __future__ import annotations

from xdl import backends
from xdl.models.registry import register
from xdl.nn import (
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Flatten,
    LeakyReLU,
    Linear,
    Module,
    ReLU,
    Sequential,
    Tanh,
    Unflatten,
    no_grad,
)
from xdl.nn.activation import sigmoid, softplus


class GAN(Module):
    """Generator and discriminator with the non-saturating losses on logits s = D(x):

        L_D = mean log(1 + e^{−s_real}) + mean log(1 + e^{s_fake})
              dL_D/ds_real = (σ(s_real) − 1)/N,   dL_D/ds_fake = σ(s_fake)/N
        L_G = mean log(1 + e^{−s_fake})
              dL_G/ds_fake = (σ(s_fake) − 1)/N

    :meth:`discriminator_loss` and :meth:`backward_discriminator` differentiate L_D
    (the two D passes are replayed with :meth:`Module.saved_states`);
    :meth:`generator_loss` and :meth:`backward_generator` differentiate L_G through D
    into G. :meth:`train_step` does one step of each.
    """

    def __init__(self, generator: Module, discriminator: Module, latent_dim: int):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim = int(latent_dim)

    # -- the two losses: values and their derivatives in the scores -----------------
    def _discriminator_terms(self, real_scores, fake_scores):
        """(L_D, dL/ds_real, dL/ds_fake)."""
        xp = backends.namespace(real_scores)
        n_real, n_fake = real_scores.shape[0], fake_scores.shape[0]
        loss = (xp.sum(softplus(-real_scores)) / n_real
                + xp.sum(softplus(fake_scores)) / n_fake)
        return (loss, (sigmoid(xp, real_scores) - 1.0) / n_real,
                sigmoid(xp, fake_scores) / n_fake)

    def _generator_terms(self, fake_scores):
        """(L_G, dL/ds_fake)."""
        xp = backends.namespace(fake_scores)
        n = fake_scores.shape[0]
        return (xp.sum(softplus(-fake_scores)) / n,
                (sigmoid(xp, fake_scores) - 1.0) / n)

    # -- sampling ----------------------------------------------------------------------
    def noise(self, n: int, like):
        """z ~ N(0, I) of shape (n, latent_dim) from the backend's generator, with
        ``like``'s backend, device and dtype."""
        return backends.normal((n, self.latent_dim), like=like)

    def forward(self, noise):
        """G(z)."""
        return self.generator(noise)

    def sample(self, n: int, like):
        """``n`` samples of G in eval mode, nothing saved for backward."""
        was_training = self.training
        self.eval()
        with no_grad():
            out = self.generator(self.noise(n, like))
        self.train(was_training)
        return out

    # -- the discriminator's loss --------------------------------------------------------
    def discriminator_loss(self, real, fake):
        """L_D on a real and a generated batch (D runs on each; both are kept)."""
        real_scores = self.discriminator(real)
        real_states = self.discriminator.saved_states()
        fake_scores = self.discriminator(fake)
        loss, d_real, d_fake = self._discriminator_terms(real_scores, fake_scores)
        self.save_for_backward(real_states, d_real, d_fake)
        return loss

    def backward_discriminator(self, grad=1.0, input_grads: bool = True):
        """Accumulate D's gradients of ``grad`` · L_D; returns (d real, d fake) (None,
        None without ``input_grads``)."""
        real_states, d_real, d_fake = self.saved
        backward = self.discriminator.backward if input_grads else \
            self.discriminator.backward_params
        fake_grad = backward(grad * d_fake)
        self.discriminator.restore_saved_states(real_states)
        return backward(grad * d_real), fake_grad

    # -- the generator's loss --------------------------------------------------------------
    def generator_loss(self, noise):
        """L_G of G(noise)."""
        return self._fooling_loss(self.generator(noise))

    def _fooling_loss(self, fake):
        loss, d_scores = self._generator_terms(self.discriminator(fake))
        self.save_for_backward(d_scores)
        return loss

    def backward_generator(self, grad=1.0):
        """Accumulate G's (and D's) gradients of ``grad`` · L_G; returns d noise."""
        (d_scores,) = self.saved
        return self.generator.backward(self.discriminator.backward(grad * d_scores))

    # -- one training step ---------------------------------------------------------------
    def train_step(self, real, d_optimizer, g_optimizer) -> dict:
        """One discriminator step on ``real`` and as many generated samples, then one
        generator step; returns the losses as device arrays."""
        fake = self.generator(self.noise(real.shape[0], real))
        d_loss = self._discriminator_step(real, fake, d_optimizer)
        return {"d_loss": d_loss, "g_loss": self._generator_step(fake, g_optimizer)}

    def _generator_step(self, fake, g_optimizer):
        """Step G on L_G of ``fake`` = G(z), whose forward G has just run (and saved)."""
        g_optimizer.zero_grad()
        loss = self._fooling_loss(fake)
        (d_scores,) = self.saved
        self.generator.backward_params(self.discriminator.backward(d_scores))
        g_optimizer.step()
        return loss

    def _discriminator_step(self, real, fake, d_optimizer):
        d_optimizer.zero_grad()
        loss = self.discriminator_loss(real, fake)
        self.backward_discriminator(input_grads=False)
        d_optimizer.step()
        return loss

    def extra_repr(self):
        return f"latent_dim={self.latent_dim}"


class WGAN(GAN):
    """Wasserstein GAN with weight clipping: D is a critic with unbounded scores s.

        L_D = mean s_fake − mean s_real      dL/ds_real = −1/N,  dL/ds_fake = 1/N
        L_G = −mean s_fake                   dL/ds_fake = −1/N

    −L_D estimates the Wasserstein-1 distance while D stays K-Lipschitz, which
    clipping every critic weight to [−c, c] after each critic step enforces.
    :meth:`train_step` steps the critic on every call and the generator on every
    ``n_critic``-th call (the paper's RMSprop with lr 5e-5, c = 0.01, n_critic = 5).
    """

    def __init__(self, generator: Module, critic: Module, latent_dim: int,
                 clip_value: float = 0.01, n_critic: int = 5):
        super().__init__(generator, critic, latent_dim)
        self.clip_value, self.n_critic = float(clip_value), int(n_critic)
        self.critic_steps = 0

    def _discriminator_terms(self, real_scores, fake_scores):
        xp = backends.namespace(real_scores)
        n_real, n_fake = real_scores.shape[0], fake_scores.shape[0]
        loss = xp.sum(fake_scores) / n_fake - xp.sum(real_scores) / n_real
        return (loss, xp.full(real_scores.shape, -1.0 / n_real, dtype=real_scores.dtype,
                              device=real_scores.device),
                xp.full(fake_scores.shape, 1.0 / n_fake, dtype=fake_scores.dtype,
                        device=fake_scores.device))

    def _generator_terms(self, fake_scores):
        xp = backends.namespace(fake_scores)
        n = fake_scores.shape[0]
        return (-xp.sum(fake_scores) / n,
                xp.full(fake_scores.shape, -1.0 / n, dtype=fake_scores.dtype,
                        device=fake_scores.device))

    def clip_critic(self) -> None:
        """w ← clip(w, −c, c) for every critic parameter."""
        for param in self.discriminator.parameters():
            param.data = backends.namespace(param.data).clip(
                param.data, -self.clip_value, self.clip_value)

    def train_step(self, real, d_optimizer, g_optimizer) -> dict:
        """A critic step (then clipping); every ``n_critic``-th call also a generator
        step. ``g_loss`` is None on the calls without one."""
        with no_grad():
            fake = self.generator(self.noise(real.shape[0], real))
        d_loss = self._discriminator_step(real, fake, d_optimizer)
        self.clip_critic()
        self.critic_steps += 1
        g_loss = None
        if self.critic_steps % self.n_critic == 0:
            fake = self.generator(self.noise(real.shape[0], real))
            g_loss = self._generator_step(fake, g_optimizer)
        return {"d_loss": d_loss, "g_loss": g_loss}

    def extra_repr(self):
        return f"{super().extra_repr()}, clip_value={self.clip_value}, n_critic={self.n_critic}"


# -- architectures --------------------------------------------------------------------------

def mlp_generator(latent_dim: int, hidden, out_features: int, output: str = "tanh"):
    """z → Linear → LeakyReLU(0.2) … → Linear → tanh (or linear) output."""
    sizes = [latent_dim, *hidden]
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [Linear(fan_in, fan_out), LeakyReLU(0.2)]
    layers.append(Linear(sizes[-1], out_features))
    if output == "tanh":
        layers.append(Tanh())
    return Sequential(*layers)


def mlp_discriminator(in_features: int, hidden):
    """x → Linear → LeakyReLU(0.2) … → Linear → one score (a logit, or a critic value)."""
    sizes = [in_features, *hidden]
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [Linear(fan_in, fan_out), LeakyReLU(0.2)]
    layers.append(Linear(sizes[-1], 1))
    return Sequential(*layers)


@register("mlp_gan")
def mlp_gan(data_dim: int = 784, latent_dim: int = 100, g_hidden=(256, 512, 1024),
            d_hidden=(512, 256), output: str = "tanh", wasserstein: bool = False,
            clip_value: float = 0.01, n_critic: int = 5) -> GAN:
    """The MLP GAN (or WGAN) of the books, for flattened images in [−1, 1] or points."""
    generator = mlp_generator(latent_dim, g_hidden, data_dim, output)
    discriminator = mlp_discriminator(data_dim, d_hidden)
    if wasserstein:
        return WGAN(generator, discriminator, latent_dim, clip_value, n_critic)
    return GAN(generator, discriminator, latent_dim)


def dcgan_generator(latent_dim: int = 100, width: int = 32, channels: int = 1):
    """z (N, latent) → (N, 4w, 7, 7) → (N, 2w, 14, 14) → (N, channels, 28, 28) in [−1, 1]:
    transposed convolutions, batch norm and ReLU, tanh output."""
    return Sequential(
        Unflatten(1, (latent_dim, 1, 1)),
        ConvTranspose2d(latent_dim, 4 * width, 7, bias=False), BatchNorm2d(4 * width), ReLU(),
        ConvTranspose2d(4 * width, 2 * width, 4, stride=2, padding=1, bias=False),
        BatchNorm2d(2 * width), ReLU(),
        ConvTranspose2d(2 * width, channels, 4, stride=2, padding=1), Tanh())


def dcgan_discriminator(width: int = 32, channels: int = 1):
    """(N, channels, 28, 28) → (N, 2w, 14, 14) → (N, 4w, 7, 7) → one logit: strided
    convolutions, batch norm and LeakyReLU(0.2), no pooling."""
    return Sequential(
        Conv2d(channels, 2 * width, 4, stride=2, padding=1), LeakyReLU(0.2),
        Conv2d(2 * width, 4 * width, 4, stride=2, padding=1, bias=False),
        BatchNorm2d(4 * width), LeakyReLU(0.2),
        Flatten(), Linear(4 * width * 7 * 7, 1))


@register("dcgan")
def dcgan(latent_dim: int = 100, width: int = 32, channels: int = 1) -> GAN:
    """DCGAN for 28×28 images: :func:`dcgan_generator` against :func:`dcgan_discriminator`."""
    return GAN(dcgan_generator(latent_dim, width, channels),
               dcgan_discriminator(width, channels), latent_dim)


def interpolate_latents(start, end, steps: int, spherical: bool = False):
    """``steps`` latent vectors from ``start`` to ``end`` (each (latent,), same backend):
    z_t = (1 − t) z₀ + t z₁, or the spherical interpolation
    z_t = sin((1 − t)Ω)/sin Ω · z₀ + sin(tΩ)/sin Ω · z₁ with cos Ω = ẑ₀·ẑ₁."""
    xp = backends.namespace(start)
    t = xp.reshape(xp.linspace(0.0, 1.0, steps, dtype=start.dtype, device=start.device),
                   (steps, 1))
    if not spherical:
        return (1.0 - t) * start + t * end
    unit0 = start / xp.sqrt(xp.sum(start * start))
    unit1 = end / xp.sqrt(xp.sum(end * end))
    omega = xp.acos(xp.clip(xp.sum(unit0 * unit1), -1.0, 1.0))
    return (xp.sin((1.0 - t) * omega) * start + xp.sin(t * omega) * end) / xp.sin(omega)
