"""The classic CNNs' building blocks: VGG block, NiN block, Inception module, residual
basic and bottleneck blocks, each with a hand-written backward.

A block is made of ordinary layers; its backward calls theirs in reverse. Two rules
cover every graph here:

- a split (x feeds several paths) sums the paths' input gradients: dx = Σ_i f_i'(dy_i);
- a concatenation along channels splits the output gradient: dy_i = dy[:, o_i : o_i + C_i].

Names follow PyTorch (torchvision's ``BasicBlock``, ``Bottleneck``, ``Inception`` and
``BasicConv2d``), so the state_dict keys of a model built from them match torchvision's.
"""

from __future__ import annotations

from collections import OrderedDict

from xdl import backends
from xdl.nn.activation import ReLU
from xdl.nn.conv import Conv2d
from xdl.nn.module import Module, Sequential
from xdl.nn.normalization import BatchNorm2d
from xdl.nn.pooling import MaxPool2d


def _check_input(block, x, channels: int):
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{type(block).__name__}: expected input (N, {channels}, H, W), "
                         f"got {tuple(x.shape)}")


def _input_grad(module, grad, input_grad: bool):
    """``module.backward(grad)``, or only its parameter gradients when the input is data."""
    if input_grad:
        return module.backward(grad)
    module.backward_params(grad)
    return None


class VGGBlock(Sequential):
    """VGG block (Simonyan & Zisserman, 2015): ``num_convs`` × (conv 3×3, padding 1 →
    [BatchNorm2d] → ReLU), then max-pool 2×2 / 2, which halves the image.

    forward: y = pool(relu(conv(... relu(conv(x)))))
    backward: that of the Sequential, in reverse. Children are numbered like
    torchvision's VGG ``features`` (``0`` conv, ``1`` ReLU, ..., the pool last).
    """

    def __init__(self, num_convs: int, in_channels: int, out_channels: int,
                 batch_norm: bool = False):
        if num_convs < 1:
            raise ValueError(f"VGGBlock: num_convs must be >= 1, got {num_convs}")
        layers = []
        for i in range(num_convs):
            layers.append(Conv2d(in_channels if i == 0 else out_channels, out_channels, 3,
                                 padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(BatchNorm2d(out_channels))
            layers.append(ReLU())
        layers.append(MaxPool2d(2))
        super().__init__(*layers)
        self.in_channels, self.out_channels = in_channels, out_channels

    def forward(self, x):
        _check_input(self, x, self.in_channels)
        return super().forward(x)


class NiNBlock(Sequential):
    """Network-in-Network block (Lin et al., 2014): conv k×k → ReLU → conv 1×1 → ReLU →
    conv 1×1 → ReLU; the two 1×1 convolutions are a per-pixel MLP across channels.
    ``batch_norm`` puts a BatchNorm2d before each ReLU (the convolutions then have no bias).

    forward: y = relu(W₃ ∗ relu(W₂ ∗ relu(W₁ ∗ x)))      backward: the Sequential's.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding=0, batch_norm: bool = False):
        layers = []
        for i, k in enumerate((kernel_size, 1, 1)):
            layers.append(Conv2d(in_channels if i == 0 else out_channels, out_channels, k,
                                 stride=stride if i == 0 else 1,
                                 padding=padding if i == 0 else 0, bias=not batch_norm))
            if batch_norm:
                layers.append(BatchNorm2d(out_channels))
            layers.append(ReLU())
        super().__init__(*layers)
        self.in_channels, self.out_channels = in_channels, out_channels

    def forward(self, x):
        _check_input(self, x, self.in_channels)
        return super().forward(x)


class BasicConv2d(Sequential):
    """conv (no bias) → BatchNorm2d (eps 0.001) → ReLU, named ``conv``, ``bn`` as in
    torchvision's GoogLeNet. forward: y = relu(bn(W ∗ x)); backward: the Sequential's."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding=0):
        super().__init__(OrderedDict(
            conv=Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                        padding=padding, bias=False),
            bn=BatchNorm2d(out_channels, eps=0.001),
            relu=ReLU(),
        ))


class Inception(Module):
    """Inception module (Szegedy et al., 2015): four branches on the same input,
    concatenated along channels.

        branch1: 1×1 conv → ``ch1x1``
        branch2: 1×1 conv → ``ch3x3red``, 3×3 conv → ``ch3x3``
        branch3: 1×1 conv → ``ch5x5red``, 5×5 conv → ``ch5x5``
        branch4: max-pool 3×3 / 1 (padding 1), 1×1 conv → ``pool_proj``

    Every conv is a :class:`BasicConv2d` (conv, batch norm, ReLU); the image size is kept.
    (torchvision's GoogLeNet uses a 3×3 conv in branch3; this one has the paper's 5×5.)

    forward:  y = concat(b₁(x), b₂(x), b₃(x), b₄(x))   along axis 1, at offsets o_i
    backward: dy_i = dy[:, o_i : o_i + C_i],   dx = Σ_i b_i'(dy_i)
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int,
                 ch5x5red: int, ch5x5: int, pool_proj: int):
        super().__init__()
        self.in_channels = in_channels
        self.branch1 = BasicConv2d(in_channels, ch1x1, 1)
        self.branch2 = Sequential(BasicConv2d(in_channels, ch3x3red, 1),
                                  BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = Sequential(BasicConv2d(in_channels, ch5x5red, 1),
                                  BasicConv2d(ch5x5red, ch5x5, 5, padding=2))
        self.branch4 = Sequential(MaxPool2d(3, stride=1, padding=1),
                                  BasicConv2d(in_channels, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def branches(self):
        return (self.branch1, self.branch2, self.branch3, self.branch4)

    def forward(self, x):
        _check_input(self, x, self.in_channels)
        outputs = [branch(x) for branch in self.branches()]
        self.save_for_backward([y.shape[1] for y in outputs])
        return backends.namespace(x).concat(outputs, axis=1)

    def _backward(self, grad, input_grad: bool):
        (sizes,) = self.saved
        dx, offset = None, 0
        for branch, size in zip(self.branches(), sizes):
            d = _input_grad(branch, grad[:, offset:offset + size, ...], input_grad)
            offset += size
            if input_grad:
                dx = d if dx is None else dx + d
        return dx

    def backward(self, grad):
        return self._backward(grad, True)

    def backward_params(self, grad) -> None:
        self._backward(grad, False)

    def extra_repr(self):
        return f"{self.in_channels} → {self.out_channels}"


def projection(in_channels: int, out_channels: int, stride: int) -> Sequential:
    """The projection shortcut: conv 1×1 / stride (no bias) → BatchNorm2d
    (torchvision's ``downsample``: keys ``downsample.0``, ``downsample.1``)."""
    return Sequential(Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                      BatchNorm2d(out_channels))


class _Residual(Module):
    """y = relu(F(x) + S(x)), S the identity or the projection ``downsample``.

    backward: dz = relu'(dy);  dx = F'(dz) + S'(dz)   (S' = identity: dx = F'(dz) + dz)
    """

    expansion = 1

    def _setup(self, in_channels, channels, stride):
        self.in_channels, self.stride = in_channels, stride
        out = channels * self.expansion
        self.out_channels = out
        needs_projection = stride != 1 or in_channels != out
        self.downsample = projection(in_channels, out, stride) if needs_projection else None
        self.relu = ReLU()

    def residual_layers(self):
        raise NotImplementedError

    def forward(self, x):
        _check_input(self, x, self.in_channels)
        z = x
        for layer in self.residual_layers():
            z = layer(z)
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(z + shortcut)

    def _backward(self, grad, input_grad: bool):
        dz = self.relu.backward(grad)
        layers = self.residual_layers()
        d = dz
        for layer in reversed(layers[1:]):
            d = layer.backward(d)
        dx = _input_grad(layers[0], d, input_grad)
        if self.downsample is None:
            return dx + dz if input_grad else None
        d_shortcut = _input_grad(self.downsample, dz, input_grad)
        return dx + d_shortcut if input_grad else None

    def backward(self, grad):
        return self._backward(grad, True)

    def backward_params(self, grad) -> None:
        self._backward(grad, False)

    def extra_repr(self):
        return f"{self.in_channels} → {self.out_channels}, stride={self.stride}"


class BasicBlock(_Residual):
    """ResNet basic block (He et al., 2016): two 3×3 convolutions with batch norm.

        F(x) = bn2(conv2(relu(bn1(conv1(x)))))      conv1 has the stride
        y = relu(F(x) + S(x))

    S is the identity, or, when ``stride`` ≠ 1 or the channel count changes, the
    projection conv 1×1 / stride → BN (``downsample``). Output: ``channels`` channels.
    backward: dz = dy·[y > 0];  dx = F'(dz) + S'(dz), F' running conv1 … bn2 in reverse.
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(channels)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(channels)
        self._setup(in_channels, channels, stride)

    def residual_layers(self):
        return [self.conv1, self.bn1, self.relu1, self.conv2, self.bn2]


class Bottleneck(_Residual):
    """ResNet bottleneck block: 1×1 reduce → 3×3 (with the stride, as torchvision's
    "ResNet v1.5") → 1×1 expand to 4·``channels``, batch norm after each.

        F(x) = bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))))
        y = relu(F(x) + S(x))

    S as in :class:`BasicBlock` (projection when the stride or the width changes).
    backward: dz = dy·[y > 0];  dx = F'(dz) + S'(dz).
    """

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = BatchNorm2d(channels)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = BatchNorm2d(channels)
        self.relu2 = ReLU()
        self.conv3 = Conv2d(channels, channels * self.expansion, 1, bias=False)
        self.bn3 = BatchNorm2d(channels * self.expansion)
        self._setup(in_channels, channels, stride)

    def residual_layers(self):
        return [self.conv1, self.bn1, self.relu1, self.conv2, self.bn2, self.relu2,
                self.conv3, self.bn3]
