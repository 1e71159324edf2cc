"""Autoencoders: MLP and convolutional, and the sparse autoencoder's KL penalty.

An autoencoder maps x to a code h = encoder(x) and back to x̂ = decoder(h); training
minimises a reconstruction loss such as MSE(x̂, x). Backward is the decoder's backward
followed by the encoder's.
"""

from __future__ import annotations

import math

from xdl import backends
from xdl.models.registry import register
from xdl.nn import (
    Conv2d,
    ConvTranspose2d,
    Flatten,
    Linear,
    Module,
    Sequential,
    Sigmoid,
    Unflatten,
    activation,
)


def _mlp_stack(sizes, act: str, last_activation: Module | None) -> Sequential:
    """Linear layers over ``sizes`` with ``act`` between them and ``last_activation``
    (or nothing) after the last."""
    layers = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(fan_in, fan_out))
        if index < len(sizes) - 2:
            layers.append(activation(act))
    if last_activation is not None:
        layers.append(last_activation)
    return Sequential(*layers)


class AutoEncoder(Module):
    """x̂ = decoder(encoder(x)); backward: dx = encoder'(decoder'(dx̂)).

    ``encoder`` and ``decoder`` are any Modules; :func:`mlp_autoencoder` and
    :func:`conv_autoencoder` build the usual ones.
    """

    def __init__(self, encoder: Module, decoder: Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def encode(self, x):
        return self.encoder(x)

    def decode(self, code):
        return self.decoder(code)

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def backward(self, grad):
        return self.encoder.backward(self.decoder.backward(grad))

    def backward_params(self, grad) -> None:
        self.encoder.backward_params(self.decoder.backward(grad))


@register("mlp_autoencoder")
def mlp_autoencoder(in_features: int = 784, hidden=(512, 128), code: int = 32,
                    act: str = "relu", output: str = "sigmoid") -> AutoEncoder:
    """Encoder in → hidden… → code (linear code), decoder mirrored back to ``in_features``
    with a sigmoid output (pixels in [0, 1]) or ``output="linear"``."""
    sizes = [in_features, *hidden, code]
    last = Sigmoid() if output == "sigmoid" else None
    return AutoEncoder(_mlp_stack(sizes, act, None), _mlp_stack(sizes[::-1], act, last))


@register("conv_autoencoder")
def conv_autoencoder(channels: int = 1, side: int = 28, width: int = 16, code: int = 32,
                     output: str = "sigmoid") -> AutoEncoder:
    """Two stride-2 3×3 convolutions (side → side/2 → side/4), a linear code, and the
    mirror image with transposed convolutions. ``side`` must be divisible by 4."""
    if side % 4:
        raise ValueError(f"conv_autoencoder: side must be divisible by 4, got {side}")
    quarter = side // 4
    flat = 2 * width * quarter * quarter
    encoder = Sequential(
        Conv2d(channels, width, 3, stride=2, padding=1), activation("relu"),
        Conv2d(width, 2 * width, 3, stride=2, padding=1), activation("relu"),
        Flatten(), Linear(flat, code))
    layers = [
        Linear(code, flat), activation("relu"), Unflatten(1, (2 * width, quarter, quarter)),
        ConvTranspose2d(2 * width, width, 3, stride=2, padding=1, output_padding=1),
        activation("relu"),
        ConvTranspose2d(width, channels, 3, stride=2, padding=1, output_padding=1)]
    if output == "sigmoid":
        layers.append(Sigmoid())
    return AutoEncoder(encoder, Sequential(*layers))


class SparseAutoEncoder(AutoEncoder):
    """An autoencoder whose sigmoid code h ∈ (0, 1)^k is kept sparse by a KL penalty.

    With ρ̂_j = (1/N) Σ_n h_nj the mean activation of unit j over the batch:

        penalty = β Σ_j [ρ log(ρ/ρ̂_j) + (1 − ρ) log((1 − ρ)/(1 − ρ̂_j))]
        ∂penalty/∂h_nj = (β/N) (−ρ/ρ̂_j + (1 − ρ)/(1 − ρ̂_j))

    forward(x) returns (x̂, penalty); the training loss is recon(x̂, x) + penalty, and
    backward(dx̂, dpenalty=1.0) adds dpenalty · ∂penalty/∂h to the code's gradient before
    the encoder's backward. ``encoder`` must end in a sigmoid (as
    :func:`sparse_autoencoder` builds it).
    """

    def __init__(self, encoder: Module, decoder: Module, sparsity: float = 0.05,
                 beta: float = 3.0):
        super().__init__(encoder, decoder)
        if not 0.0 < sparsity < 1.0:
            raise ValueError(f"SparseAutoEncoder: sparsity must be in (0, 1), got {sparsity}")
        self.sparsity, self.beta = float(sparsity), float(beta)

    def forward(self, x):
        code = self.encoder(x)
        xp = backends.namespace(code)
        rho, rho_hat = self.sparsity, xp.mean(code, axis=0)
        penalty = self.beta * xp.sum(rho * xp.log(rho / rho_hat)
                                     + (1.0 - rho) * xp.log((1.0 - rho) / (1.0 - rho_hat)))
        self.save_for_backward(rho_hat, code.shape[0])
        return self.decoder(code), penalty

    def _code_grad(self, grad, penalty_grad):
        rho_hat, n = self.saved
        rho = self.sparsity
        dcode = self.decoder.backward(grad)
        return dcode + (penalty_grad * self.beta / n) * (-rho / rho_hat
                                                         + (1.0 - rho) / (1.0 - rho_hat))

    def backward(self, grad, penalty_grad=1.0):
        return self.encoder.backward(self._code_grad(grad, penalty_grad))

    def backward_params(self, grad, penalty_grad=1.0) -> None:
        self.encoder.backward_params(self._code_grad(grad, penalty_grad))

    def extra_repr(self):
        return f"sparsity={self.sparsity}, beta={self.beta}"


@register("sparse_autoencoder")
def sparse_autoencoder(in_features: int = 784, hidden=(), code: int = 196,
                       sparsity: float = 0.05, beta: float = 3.0,
                       act: str = "relu") -> SparseAutoEncoder:
    """MLP sparse autoencoder: in → hidden… → code (sigmoid) → …hidden → in (sigmoid)."""
    sizes = [in_features, *hidden, code]
    return SparseAutoEncoder(_mlp_stack(sizes, act, Sigmoid()),
                             _mlp_stack(sizes[::-1], act, Sigmoid()), sparsity, beta)


def reconstruction_mse(model: Module, loader) -> float:
    """Mean squared error per pixel of ``model``'s reconstructions over ``loader``'s
    first arrays, in eval mode, with nothing saved for backward."""
    from xdl.nn import no_grad

    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    with no_grad():
        for batch in loader:
            x = batch[0]
            out = model(x)
            recon = out[0] if isinstance(out, tuple) else out
            xp = backends.namespace(x)
            total = total + xp.sum((recon - x) ** 2)
            count += math.prod(x.shape)
    model.train(was_training)
    return float(backends.to_numpy(total)) / count
