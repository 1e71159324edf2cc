"""Residual networks (He et al., 2016): torchvision's ResNet-18/34/50 layouts, and the
narrow ResNet-20 of the paper's CIFAR-10 experiments for small images.

A :class:`ResNet` is a ``Sequential`` named as torchvision's (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.downsample.0``, ..., ``fc``), so its ``state_dict`` keys
are those of ``torchvision.models.resnet18()`` for the same layout.
"""

from __future__ import annotations

from collections import OrderedDict

from xdl.models.registry import register
from xdl.nn import init
from xdl.nn.activation import ReLU
from xdl.nn.blocks import BasicBlock, Bottleneck
from xdl.nn.conv import Conv2d
from xdl.nn.linear import Linear
from xdl.nn.module import Sequential
from xdl.nn.normalization import BatchNorm2d
from xdl.nn.pooling import GlobalAvgPool2d, MaxPool2d

BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}

#: name → (block, blocks per stage, base width, stem)
LAYOUTS = {
    "resnet18": ("basic", (2, 2, 2, 2), 64, "imagenet"),
    "resnet34": ("basic", (3, 4, 6, 3), 64, "imagenet"),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 64, "imagenet"),
    "resnet20": ("basic", (3, 3, 3), 16, "small"),
    "resnet56": ("basic", (9, 9, 9), 16, "small"),
}


class ResNet(Sequential):
    """Stem → stages of residual blocks → global average pool → ``fc``.

    Stage i has ``layers[i]`` blocks of width ``width``·2^i (times the block's expansion);
    stages after the first halve the image in their first block, whose shortcut is then
    a projection. Stems: ``"imagenet"`` is conv 7×7 / 2 → BN → ReLU → max-pool 3×3 / 2
    (torchvision's, for large images); ``"small"`` is conv 3×3 / 1 → BN → ReLU (for
    28×28 and 32×32 images). Convolutions start as He-normal (fan_out), as in
    torchvision; ``zero_init_residual`` zeroes each block's last BN scale, so every
    block starts as its shortcut.

    forward: y = fc(avgpool(layer_L(… layer_1(stem(x)))))   backward: the Sequential's.
    """

    def __init__(self, block: str = "basic", layers=(2, 2, 2, 2), num_classes: int = 10,
                 in_channels: int = 1, width: int = 64, stem: str = "imagenet",
                 zero_init_residual: bool = False):
        if block not in BLOCKS:
            raise ValueError(f"ResNet: block must be one of {sorted(BLOCKS)}, got {block!r}")
        if stem not in ("imagenet", "small"):
            raise ValueError(f"ResNet: stem must be 'imagenet' or 'small', got {stem!r}")
        block_type = BLOCKS[block]
        parts = OrderedDict()
        if stem == "imagenet":
            parts["conv1"] = Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        else:
            parts["conv1"] = Conv2d(in_channels, width, 3, padding=1, bias=False)
        parts["bn1"] = BatchNorm2d(width)
        parts["relu"] = ReLU()
        if stem == "imagenet":
            parts["maxpool"] = MaxPool2d(3, stride=2, padding=1)
        channels = width
        for stage, count in enumerate(layers):
            planes = width * 2**stage
            blocks = []
            for i in range(count):
                blocks.append(block_type(channels, planes, 2 if stage > 0 and i == 0 else 1))
                channels = planes * block_type.expansion
            parts[f"layer{stage + 1}"] = Sequential(*blocks)
        parts["avgpool"] = GlobalAvgPool2d(flatten=True)
        parts["fc"] = Linear(channels, num_classes)
        super().__init__(parts)
        self.num_features = channels
        for module in self.modules():
            if isinstance(module, Conv2d):
                init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)):
                    last = module.bn3 if isinstance(module, Bottleneck) else module.bn2
                    init.zeros_(last.weight)


@register("resnet")
def resnet(layout: str = "resnet20", num_classes: int = 10, in_channels: int = 1,
           width: int | None = None, stem: str | None = None,
           zero_init_residual: bool = False) -> ResNet:
    """A ResNet of a named layout (:data:`LAYOUTS`): ``"resnet18"``, ``"resnet34"``,
    ``"resnet50"`` (torchvision's; the ImageNet stem unless ``stem="small"``),
    ``"resnet20"``, ``"resnet56"`` (3 stages of 16, 32, 64 channels, the small stem).
    ``width`` overrides the first stage's width (the others double it)."""
    if layout not in LAYOUTS:
        raise ValueError(f"resnet: unknown layout {layout!r}; choose from {sorted(LAYOUTS)}")
    block, layers, base_width, base_stem = LAYOUTS[layout]
    return ResNet(block, layers, num_classes, in_channels, width or base_width,
                  stem or base_stem, zero_init_residual)
