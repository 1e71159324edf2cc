"""The variational autoencoder (Kingma and Welling, 2014) and its loss, the negative ELBO.

Encoder: x → h → (μ, log σ²). Reparameterisation: z = μ + σ ⊙ ε with ε ~ N(0, I)
drawn by the backend's own generator. Decoder: z → the parameters of p(x | z)
(Bernoulli logits, or Gaussian means with a fixed standard deviation).
"""

from __future__ import annotations

import math

from xdl import backends
from xdl.models.autoencoder import _mlp_stack
from xdl.models.registry import register
from xdl.nn import Linear, Loss, Module, activation
from xdl.nn.activation import sigmoid, softplus

LIKELIHOODS = ("bernoulli", "gaussian")


class VAE(Module):
    """Gaussian encoder q(z|x) = N(μ, diag σ²), reparameterised sample, decoder.

    forward(x, noise=None) → (decoded, μ, log σ²) where decoded = decoder(z),
        z = μ + exp(½ log σ²) ⊙ ε, ε = ``noise`` or a fresh N(0, I) draw.
    backward(d decoded, dμ, d log σ²) with dz = decoder'(d decoded):
        dμ_total = dμ + dz
        d log σ²_total = d log σ² + dz ⊙ ε ⊙ ½ exp(½ log σ²)
        dx = encoder'([dμ_total, d log σ²_total])
    """

    def __init__(self, in_features: int = 784, hidden=(400,), latent: int = 20,
                 likelihood: str = "bernoulli", act: str = "relu"):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"VAE: likelihood must be one of {LIKELIHOODS}, got "
                             f"{likelihood!r}")
        self.in_features, self.latent, self.likelihood = in_features, latent, likelihood
        body = [in_features, *hidden]
        self.encoder = _mlp_stack(body, act, activation(act) if hidden else None)
        self.encoder.append(Linear(body[-1], 2 * latent))
        self.decoder = _mlp_stack([latent, *hidden[::-1], in_features], act, None)

    def encode(self, x):
        """(μ, log σ²) of q(z | x)."""
        out = self.encoder(x)
        return out[:, :self.latent], out[:, self.latent:]

    def decode(self, z):
        """The mean of p(x | z): σ(logits) for Bernoulli, the Gaussian mean otherwise."""
        out = self.decoder(z)
        return sigmoid(backends.namespace(out), out) if self.likelihood == "bernoulli" else out

    def sample(self, n: int, like):
        """``n`` images decoded from z ~ N(0, I) (``like`` gives backend and dtype)."""
        return self.decode(backends.normal((n, self.latent), like))

    def forward(self, x, noise=None):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"VAE: expected input (N, {self.in_features}), got "
                             f"{tuple(x.shape)}")
        mu, logvar = self.encode(x)
        xp = backends.namespace(mu)
        eps = backends.normal(mu.shape, like=mu) if noise is None else noise
        std = xp.exp(0.5 * logvar)
        self.save_for_backward(eps, std)
        return self.decoder(mu + std * eps), mu, logvar

    def _encoder_grad(self, grad, dmu, dlogvar):
        eps, std = self.saved
        dz = self.decoder.backward(grad)
        xp = backends.namespace(dz)
        return xp.concat([dmu + dz, dlogvar + dz * eps * (0.5 * std)], axis=1)

    def backward(self, grad, dmu, dlogvar):
        return self.encoder.backward(self._encoder_grad(grad, dmu, dlogvar))

    def backward_params(self, grad, dmu, dlogvar) -> None:
        self.encoder.backward_params(self._encoder_grad(grad, dmu, dlogvar))

    def extra_repr(self):
        return f"latent={self.latent}, likelihood={self.likelihood!r}"


register("vae")(VAE)


class NegativeELBOLoss(Loss):
    """−ELBO per sample, in nats: reconstruction − log p(x|z) plus KL(q(z|x) ‖ N(0, I)).

    loss_fn((decoded, μ, log σ²), x), summed over features and averaged over the batch
    ("mean"; "sum" sums over the batch):

        KL = −½ Σ_j (1 + log σ²_j − μ_j² − σ²_j)
        Bernoulli:  rec = Σ_i max(a_i, 0) − a_i x_i + log(1 + e^{−|a_i|})   (a: logits)
        Gaussian:   rec = Σ_i (x_i − m_i)² / 2s² + ½ log 2πs²   (s = ``std``)

    backward() → (d decoded, dμ, d log σ²):
        Bernoulli d a = σ(a) − x;  Gaussian d m = (m − x) / s²;
        dμ = μ;  d log σ² = ½ (σ² − 1);  each × 1/N for "mean".
    """

    def __init__(self, likelihood: str = "bernoulli", std: float = 1.0,
                 reduction: str = "mean"):
        if reduction == "none":
            raise ValueError("NegativeELBOLoss: reduction must be 'mean' or 'sum'")
        super().__init__(reduction)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"NegativeELBOLoss: likelihood must be one of {LIKELIHOODS}")
        self.likelihood, self.std = likelihood, float(std)

    def forward(self, outputs, x):
        decoded, mu, logvar = outputs
        if tuple(decoded.shape) != tuple(x.shape):
            raise ValueError(f"NegativeELBOLoss: expected the decoder output's shape "
                             f"{tuple(x.shape)}, got {tuple(decoded.shape)}")
        xp = backends.namespace(decoded)
        if self.likelihood == "bernoulli":
            rec = softplus(decoded) - decoded * x
        else:
            rec = (decoded - x) ** 2 / (2.0 * self.std ** 2) \
                + 0.5 * math.log(2.0 * math.pi * self.std ** 2)
        variance = xp.exp(logvar)
        kl = -0.5 * (1.0 + logvar - mu * mu - variance)
        per_sample = xp.sum(rec, axis=1) + xp.sum(kl, axis=1)
        loss, scale = self._reduce(xp, per_sample)
        self.save_for_backward(decoded, x, mu, variance, scale)
        return loss

    def backward(self, grad=None):
        decoded, x, mu, variance, scale = self.saved
        factor = self._upstream(grad, scale)
        xp = backends.namespace(decoded)
        if self.likelihood == "bernoulli":
            ddecoded = sigmoid(xp, decoded) - x
        else:
            ddecoded = (decoded - x) / self.std ** 2
        return ddecoded * factor, mu * factor, 0.5 * (variance - 1.0) * factor

    def extra_repr(self):
        return f"likelihood={self.likelihood!r}, reduction={self.reduction!r}"
