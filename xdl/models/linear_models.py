"""The books' first models: the perceptron, softmax regression and the MLP."""

from __future__ import annotations

from xdl import backends
from xdl.models.registry import register
from xdl.nn import Dropout, Linear, Sequential
from xdl.nn.activation import activation as make_activation
from xdl.nn.linear import check_last_dim
from xdl.nn.module import Module


@register("perceptron")
class Perceptron(Module):
    """Rosenblatt's perceptron: score s = x·w + b, prediction sign(s) ∈ {−1, +1}.

    :meth:`learn` is the perceptron learning rule of the books' first chapter: for
    every misclassified sample (y·s ≤ 0), w ← w + η·y·x and b ← b + η·y. As a Module
    it also has forward/backward (d s/d w = x), so it trains with ``PerceptronLoss``.
    """

    def __init__(self, in_features: int):
        super().__init__()
        self.in_features = in_features
        self.linear = Linear(in_features, 1)

    def forward(self, x):
        return backends.namespace(x).reshape(self.linear(x), (-1,))

    def backward(self, grad):
        return self.linear.backward(backends.namespace(grad).reshape(grad, (-1, 1)))

    def backward_params(self, grad) -> None:
        self.linear.backward_params(backends.namespace(grad).reshape(grad, (-1, 1)))

    def predict(self, x):
        """±1 labels: +1 where the score is > 0."""
        xp = backends.namespace(x)
        positive = xp.astype(self.forward(x) > 0, x.dtype)
        return 2.0 * positive - 1.0

    def learn(self, x, y, lr: float = 1.0):
        """One pass of the rule over the samples of ``x`` in order; returns the mistake count.

        Samples are visited one at a time, as in the book, so each update sees the
        weights the previous one left. Returns a 0-d device array.
        """
        check_last_dim(self, x, self.in_features)
        xp = backends.namespace(x)
        weight, bias = self.linear.weight, self.linear.bias
        mistakes = xp.zeros((), dtype=x.dtype, device=x.device)
        for i in range(x.shape[0]):
            xi, yi = x[i:i + 1, :], y[i:i + 1]
            score = xi @ weight.data.T + bias.data
            wrong = xp.astype(yi * score[:, 0] <= 0, x.dtype)
            step = lr * wrong * yi
            weight.data = weight.data + step[:, None] * xi
            bias.data = bias.data + step
            mistakes = mistakes + wrong[0]
        return mistakes


@register("softmax_regression")
class SoftmaxRegression(Sequential):
    """Multinomial logistic regression: logits z = x Wᵀ + b (softmax is in the loss)."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__(Linear(in_features, num_classes))


@register("mlp")
class MLP(Sequential):
    """Multi-layer perceptron: ``sizes = [in, h1, ..., out]``.

    Linear → activation (→ Dropout) for each hidden layer, then a last Linear with no
    activation (the logits). ``activation``: relu, leaky_relu, elu, sigmoid or tanh.
    """

    def __init__(self, sizes, activation: str = "relu", dropout: float | None = None):
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least [in, out], got {sizes}")
        layers = []
        for fan_in, fan_out in zip(sizes[:-2], sizes[1:-1]):
            layers += [Linear(fan_in, fan_out), make_activation(activation)]
            if dropout:
                layers.append(Dropout(dropout))
        layers.append(Linear(sizes[-2], sizes[-1]))
        super().__init__(*layers)
