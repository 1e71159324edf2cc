"""The books' convolutional networks: the book CNN (with and without batch norm), LeNet-5.

Each is a ``Sequential`` of a ``features`` block and a ``classifier`` block, so its
``state_dict`` keys read ``features.0.weight``, ``classifier.1.weight``, ... as a
PyTorch model built the same way.
"""

from __future__ import annotations

from collections import OrderedDict

from xdl.models.registry import register
from xdl.nn import (
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    Sequential,
)
from xdl.nn.activation import activation as make_activation


@register("book_cnn")
class BookCNN(Sequential):
    """conv 5×5×32 → max-pool 2 → conv 5×5×64 → max-pool 2 → FC 512 → classes.

    ReLU after each convolution and the hidden FC layer; "same" padding, so 28×28
    inputs give 7×7×64 = 3,136 features. ``batch_norm=True`` puts BatchNorm2d between
    each convolution and its ReLU (the convolution then has no bias); ``dropout``
    is applied before the last layer.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 batch_norm: bool = False, dropout: float = 0.5):
        side = image_size // 4
        features = []
        for c_in, c_out in ((in_channels, 32), (32, 64)):
            features.append(Conv2d(c_in, c_out, 5, padding=2, bias=not batch_norm))
            if batch_norm:
                features.append(BatchNorm2d(c_out))
            features += [make_activation("relu"), MaxPool2d(2)]
        classifier = [Flatten(), Linear(64 * side * side, 512), make_activation("relu")]
        if dropout:
            classifier.append(Dropout(dropout))
        classifier.append(Linear(512, num_classes))
        super().__init__(OrderedDict(features=Sequential(*features),
                                     classifier=Sequential(*classifier)))


@register("lenet5")
class LeNet5(Sequential):
    """LeNet-5 (LeCun et al., 1998) for 28×28 digits.

    conv 5×5×6 (padding 2) → pool 2 → conv 5×5×16 → pool 2 → FC 120 → FC 84 → classes.
    ``activation`` and ``pool`` ("max" or "avg") choose between the modern variant
    (ReLU, max pooling; the default) and the original's flavour (tanh/sigmoid, average
    pooling).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 activation: str = "relu", pool: str = "max"):
        if pool not in ("max", "avg"):
            raise ValueError(f"LeNet5: pool must be 'max' or 'avg', got {pool!r}")
        pooling = MaxPool2d if pool == "max" else AvgPool2d
        features = Sequential(
            Conv2d(in_channels, 6, 5, padding=2), make_activation(activation), pooling(2),
            Conv2d(6, 16, 5), make_activation(activation), pooling(2),
        )
        classifier = Sequential(
            Flatten(), Linear(16 * 5 * 5, 120), make_activation(activation),
            Linear(120, 84), make_activation(activation), Linear(84, num_classes),
        )
        super().__init__(OrderedDict(features=features, classifier=classifier))
