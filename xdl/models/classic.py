"""Classic CNNs sized for 28×28 and 32×32 images: AlexNet, VGG, NiN and GoogLeNet.

Each keeps its original's layout and PyTorch names (torchvision's ``features`` /
``avgpool`` / ``classifier`` for AlexNet and VGG, GoogLeNet's ``conv1`` …
``inception5b``, ``fc``), with a first layer and pooling fit for small images and a
``width`` factor on every channel count. An adaptive or global average pool before the
classifier lets one model take both image sizes.
"""

from __future__ import annotations

from collections import OrderedDict

from xdl.models.registry import register
from xdl.nn.activation import ReLU
from xdl.nn.blocks import BasicConv2d, Inception, NiNBlock, VGGBlock
from xdl.nn.conv import Conv2d
from xdl.nn.dropout import Dropout
from xdl.nn.linear import Flatten, Linear
from xdl.nn.module import Sequential
from xdl.nn.pooling import AdaptiveAvgPool2d, GlobalAvgPool2d, MaxPool2d


def scaled(channels: int, width: float) -> int:
    """A channel count times ``width``, at least 1."""
    return max(1, int(round(channels * width)))


@register("alexnet_small")
class AlexNetSmall(Sequential):
    """AlexNet (Krizhevsky et al., 2012) for small images.

    features: conv 5×5 (c₁) → pool 3/2 → conv 5×5 (c₂) → pool 3/2 → conv 3×3 (c₃) →
    conv 3×3 (c₄) → conv 3×3 (c₅) → pool 3/2, ReLU after each conv, "same" padding
    (28 → 13 → 6 → 2); avgpool: adaptive to 2×2; classifier: dropout → FC ``hidden`` →
    ReLU → dropout → FC ``hidden`` → ReLU → FC classes. Channels are torchvision's
    (64, 192, 384, 256, 256) times ``width``; the first conv has stride 1 instead of the
    original's 11×11 / 4. Keys as torchvision's ``alexnet()``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: float = 0.5,
                 hidden: int = 512, dropout: float = 0.5):
        c1, c2, c3, c4, c5 = (scaled(c, width) for c in (64, 192, 384, 256, 256))
        features = Sequential(
            Conv2d(in_channels, c1, 5, padding=2), ReLU(), MaxPool2d(3, stride=2),
            Conv2d(c1, c2, 5, padding=2), ReLU(), MaxPool2d(3, stride=2),
            Conv2d(c2, c3, 3, padding=1), ReLU(),
            Conv2d(c3, c4, 3, padding=1), ReLU(),
            Conv2d(c4, c5, 3, padding=1), ReLU(), MaxPool2d(3, stride=2),
        )
        classifier = Sequential(
            Dropout(dropout), Linear(c5 * 2 * 2, hidden), ReLU(),
            Dropout(dropout), Linear(hidden, hidden), ReLU(),
            Linear(hidden, num_classes),
        )
        super().__init__(OrderedDict(features=features, avgpool=AdaptiveAvgPool2d(2),
                                     flatten=Flatten(), classifier=classifier))


@register("vgg_small")
class VGGSmall(Sequential):
    """VGG (Simonyan & Zisserman, 2015) for small images: :class:`VGGBlock` stages,
    each halving the image, → global average pool → FC ``hidden`` → ReLU → dropout →
    FC ``hidden`` → ReLU → dropout → FC classes.

    ``arch`` lists (convolutions, channels) per block; the default is VGG-11's first four
    stages, ((1, 64), (1, 128), (2, 256), (2, 512)), channels times ``width``
    (28 → 14 → 7 → 3 → 1). ``batch_norm`` puts BatchNorm2d after each convolution.
    Keys: ``features.<block>.<layer>``, ``classifier.0/3/6`` as torchvision's classifier.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: float = 0.5,
                 arch=((1, 64), (1, 128), (2, 256), (2, 512)), hidden: int = 512,
                 batch_norm: bool = False, dropout: float = 0.5):
        blocks, channels = [], in_channels
        for num_convs, out in arch:
            blocks.append(VGGBlock(num_convs, channels, scaled(out, width), batch_norm))
            channels = scaled(out, width)
        classifier = Sequential(
            Linear(channels, hidden), ReLU(), Dropout(dropout),
            Linear(hidden, hidden), ReLU(), Dropout(dropout),
            Linear(hidden, num_classes),
        )
        super().__init__(OrderedDict(features=Sequential(*blocks),
                                     avgpool=GlobalAvgPool2d(flatten=True),
                                     classifier=classifier))


@register("nin")
class NiN(Sequential):
    """Network in Network (Lin et al., 2014) for small images, no fully connected layer:

    NiN block 5×5 (c₁) → pool 3/2 → NiN block 5×5 (c₂) → pool 3/2 → NiN block 3×3 (c₃) →
    pool 3/2 → dropout → NiN block 3×3 (classes) → global average pool = the logits.

    Channels (96, 256, 384) times ``width``; "same" padding (28 → 13 → 6 → 2).
    Children are numbered 0–8 as in a PyTorch ``nn.Sequential`` of the same layers.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: float = 0.5,
                 batch_norm: bool = False, dropout: float = 0.5):
        c1, c2, c3 = (scaled(c, width) for c in (96, 256, 384))
        super().__init__(
            NiNBlock(in_channels, c1, 5, padding=2, batch_norm=batch_norm),
            MaxPool2d(3, stride=2),
            NiNBlock(c1, c2, 5, padding=2, batch_norm=batch_norm), MaxPool2d(3, stride=2),
            NiNBlock(c2, c3, 3, padding=1, batch_norm=batch_norm), MaxPool2d(3, stride=2),
            Dropout(dropout),
            NiNBlock(c3, num_classes, 3, padding=1, batch_norm=batch_norm),
            GlobalAvgPool2d(flatten=True),
        )


#: GoogLeNet's nine Inception modules: (name, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5,
#: pool_proj) at full width, with the max-pools between the stages.
INCEPTIONS = (
    ("inception3a", 64, 96, 128, 16, 32, 32), ("inception3b", 128, 128, 192, 32, 96, 64),
    ("maxpool3", 3), ("inception4a", 192, 96, 208, 16, 48, 64),
    ("inception4b", 160, 112, 224, 24, 64, 64), ("inception4c", 128, 128, 256, 24, 64, 64),
    ("inception4d", 112, 144, 288, 32, 64, 64), ("inception4e", 256, 160, 320, 32, 128, 128),
    ("maxpool4", 2), ("inception5a", 256, 160, 320, 32, 128, 128),
    ("inception5b", 384, 192, 384, 48, 128, 128),
)


@register("googlenet_small")
class GoogLeNetSmall(Sequential):
    """GoogLeNet (Szegedy et al., 2015) for small images, without auxiliary classifiers.

    conv1 3×3 (64) → conv2 1×1 (64) → conv3 3×3 (192) → maxpool2 3/2 → inception3a, 3b →
    maxpool3 3/2 → inception4a–4e → maxpool4 2/2 → inception5a, 5b → global average
    pool → dropout → fc (28 → 14 → 7 → 4). Every conv is conv → BN → ReLU
    (:class:`BasicConv2d`); channels are the paper's times ``width``. The first conv has
    stride 1 and no max-pool follows it (torchvision: 7×7 / 2 and ``maxpool1``); the other
    names are torchvision's ``googlenet(aux_logits=False)``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: float = 0.25,
                 dropout: float = 0.2):
        c64, c192 = scaled(64, width), scaled(192, width)
        parts = OrderedDict(
            conv1=BasicConv2d(in_channels, c64, 3, padding=1),
            conv2=BasicConv2d(c64, c64, 1),
            conv3=BasicConv2d(c64, c192, 3, padding=1),
            maxpool2=MaxPool2d(3, stride=2, ceil_mode=True),
        )
        channels = c192
        for name, *sizes in INCEPTIONS:
            if name.startswith("maxpool"):
                parts[name] = MaxPool2d(sizes[0], stride=2, ceil_mode=True)
                continue
            module = Inception(channels, *(scaled(c, width) for c in sizes))
            parts[name] = module
            channels = module.out_channels
        parts["avgpool"] = GlobalAvgPool2d(flatten=True)
        parts["dropout"] = Dropout(dropout)
        parts["fc"] = Linear(channels, num_classes)
        super().__init__(parts)


def alexnet_small(**config) -> AlexNetSmall:
    return AlexNetSmall(**config)


def vgg_small(**config) -> VGGSmall:
    return VGGSmall(**config)


def nin(**config) -> NiN:
    return NiN(**config)


def googlenet_small(**config) -> GoogLeNetSmall:
    return GoogLeNetSmall(**config)
