"""Convolutions as im2col + one matrix product: Conv2d, Conv1d, ConvTranspose2d.

With X = im2col(x) as a matrix (N·OH·OW, kh·kw·C) (see :mod:`xdl.nn.functional`) and
the weight as W (O, kh·kw·C), a convolution is one matrix product

    Y = X Wᵀ + b          (Y is (N, OH, OW, O), returned as an (N, O, OH, OW) view)

so a convolution's output is stored NHWC (channels last) in memory; kernel-major ones
with few output channels store it (O, N, OH, OW) instead (see CHANNEL_MAJOR_BELOW), the
DFT path (:mod:`xdl.nn.conv_dft`) stores it (OH, OW, N, O) ((OH, OW, O, N) in its real
form) and the Toeplitz path (:mod:`xdl.nn.conv_toeplitz`) NHWC.
Max pooling and Flatten hand back gradients in the layout of what they saved, so the
element-wise backward passes meet one layout (mixed ones run several times slower).

and its backward, with dY the output gradient as (N·OH·OW, O):

    dW = dYᵀ X      db = Σ_rows dY      dX = dY W,   dx = col2im(dX)

(for stride 1 and one group, dx is computed as a convolution of dY with the flipped,
transposed kernel instead: see :func:`transposed_window`).

With G groups each of the G channel blocks has its own X_g, W_g (a batched product).
A transposed convolution is the adjoint map: its forward is a convolution's input
gradient and its backward a convolution's forward.

On a CPU the batch is processed in chunks whose im2col matrix fits in cache
(``Backend.chunk_bytes``): the products run faster and the matrix is never held
for the whole batch. The backward pass recomputes each chunk's im2col from the saved
input instead of keeping it, which costs a cheap copy and saves the largest
temporary of the layer.
"""

from __future__ import annotations

import math

from xdl import backends
from xdl.nn import init
from xdl.nn.conv_dft import dft_applies, dft_conv2d_backward, dft_conv2d_forward, dft_is_cheaper
from xdl.nn.conv_toeplitz import (
    toeplitz_applies,
    toeplitz_conv2d_backward,
    toeplitz_conv2d_forward,
    toeplitz_is_cheaper,
)
from xdl.nn.functional import (
    Window,
    channels_first,
    channels_last,
    col2im_channels_last,
    col2im_kernel_major,
    im2col,
    im2col_kernel_major,
    pair,
)
from xdl.nn.module import Module

# -- grouped channel matrices -----------------------------------------------------------


def to_groups(a, groups: int):
    """(rows..., K, C) → (G, rows, K·C/G): channel block g of every row, as a matrix."""
    xp = backends.namespace(a)
    k, c = a.shape[-2], a.shape[-1]
    if groups == 1:
        return xp.reshape(a, (1, -1, k * c))
    split = xp.reshape(a, (-1, k, groups, c // groups))
    return xp.reshape(xp.permute_dims(split, (2, 0, 1, 3)), (groups, -1, k * (c // groups)))


def from_groups(m, shape):
    """Inverse of :func:`to_groups`: (G, rows, K·C/G) → ``shape`` = (rows..., K, C)."""
    xp = backends.namespace(m)
    groups = m.shape[0]
    if groups == 1:
        return xp.reshape(m, shape)
    k, c = shape[-2], shape[-1]
    split = xp.reshape(m, (groups, -1, k, c // groups))
    return xp.reshape(xp.permute_dims(split, (1, 2, 0, 3)), shape)


def group_matmul(a, b):
    """a @ b for (G, m, k) and (G, k, n) stacks; one plain 2-D product when G = 1 (the
    stacked product of NumPy is several times slower than its 2-D BLAS call)."""
    if a.shape[0] == 1:
        return (a[0, ...] @ b[0, ...])[None, ...]
    return a @ b


def batch_chunks(x, bytes_per_sample: int):
    """(start, stop) ranges over the batch so each chunk's temporaries fit the backend's
    ``chunk_bytes`` (one range where the backend wants no chunking, or the batch is empty)."""
    n = x.shape[0]
    limit = backends.backend_of(x).chunk_bytes
    step = n if limit is None else max(1, limit // max(bytes_per_sample, 1))
    return [(start, min(start + step, n)) for start in range(0, n, step)] if n else [(0, 0)]


def _itemsize(x) -> int:
    return 8 if backends.dtype_name(x.dtype) == "float64" else 4


def _concat(parts, axis=0):
    return parts[0] if len(parts) == 1 else backends.namespace(parts[0]).concat(parts, axis=axis)


# -- Conv2d as functions ------------------------------------------------------------------


def conv_weight_matrix(weight, groups: int):
    """weight (O, C/G, kh, kw) → W (G, O/G, kh·kw·C/G), columns in im2col's (k, c) order."""
    xp = backends.namespace(weight)
    out_channels = weight.shape[0]
    w = xp.permute_dims(weight, (0, 2, 3, 1))
    return xp.reshape(w, (groups, out_channels // groups, -1))


#: Inputs with fewer channels than this (and one group) use the kernel-major im2col,
#: whose copies run along image rows; wider ones the channels-last im2col, whose copies
#: run along channels. Measured on the book CNN and LeNet-5 (benchmarks/cnn_epoch.py).
KERNEL_MAJOR_BELOW = 16


def uses_kernel_major(channels: int, groups: int) -> bool:
    return groups == 1 and channels < KERNEL_MAJOR_BELOW


def conv2d_forward(x, weight, bias, window: Window, groups: int):
    """y = conv(x) with weight (O, C/G, kh, kw), chunk by chunk; returns y (N, O, OH, OW)."""
    if uses_kernel_major(x.shape[1], groups):
        return _forward_kernel_major(x, weight, bias, window)
    return _forward_channels_last(x, weight, bias, window, groups)


#: Kernel-major convolutions with fewer output channels than this store their output
#: channel-major, (O, N, OH, OW) in memory; wider ones store it NHWC. NumPy's
#: element-wise loops (bias, ReLU, pooling) run along the innermost axis in memory, and
#: LeNet-5's 6 channels make a short one (chosen on LeNet-5's epoch time).
CHANNEL_MAJOR_BELOW = 16


def _stores_channel_major(out_channels: int) -> bool:
    return out_channels < CHANNEL_MAJOR_BELOW


def _forward_kernel_major(x, weight, bias, window: Window):
    """With im2col as (C·kh·kw, N·OH·OW): Y = W im2col + b, stored (O, N, OH, OW), for
    few output channels, else Yᵀ = im2colᵀ Wᵀ + b, stored NHWC."""
    xp = backends.namespace(x)
    n, c = x.shape[0], x.shape[1]
    out_h, out_w = window.output_size(x.shape[2], x.shape[3])
    out_channels = weight.shape[0]
    w_matrix = xp.reshape(weight, (out_channels, -1))
    channel_major = _stores_channel_major(out_channels)
    parts = []
    for start, stop in batch_chunks(x, out_h * out_w * window.size * c * _itemsize(x)):
        cols = im2col_kernel_major(x[start:stop, ...], window, (out_h, out_w))
        parts.append(w_matrix @ cols if channel_major
                     else xp.matrix_transpose(cols) @ xp.matrix_transpose(w_matrix))
    if channel_major:
        y = xp.reshape(_concat(parts, axis=1), (out_channels, n, out_h, out_w))
        y = y if bias is None else y + xp.reshape(bias, (-1, 1, 1, 1))
        return xp.permute_dims(y, (1, 0, 2, 3))
    y = xp.reshape(_concat(parts), (n, out_h, out_w, out_channels))
    return channels_first(y if bias is None else y + bias)


def _backward_kernel_major(x, grad, weight, window: Window, input_grad: bool):
    """dWᵀ = im2col dYᵀ, dx = col2im(Wᵀ dY), with dY as (O, N·OH·OW), chunk by chunk.

    dY is taken in the layout the forward stored Y in, and dW is formed transposed, as
    the (C·kh·kw, O) product: with few output channels BLAS runs that shape about twice
    as fast as (O, N·OH·OW) @ (N·OH·OW, C·kh·kw)."""
    xp = backends.namespace(grad)
    n, c, h, w = x.shape
    out_h, out_w = grad.shape[2], grad.shape[3]
    out_channels = weight.shape[0]
    w_matrix = xp.reshape(weight, (out_channels, -1))
    dw_t, dx_parts = None, []
    for start, stop in batch_chunks(x, out_h * out_w * window.size * c * _itemsize(x)):
        cols = im2col_kernel_major(x[start:stop, ...], window, (out_h, out_w))
        chunk = grad[start:stop, ...]
        if _stores_channel_major(out_channels):
            grad_rows = xp.reshape(xp.permute_dims(chunk, (1, 0, 2, 3)), (out_channels, -1))
        else:
            grad_rows = xp.matrix_transpose(xp.reshape(channels_last(chunk), (-1, out_channels)))
        step = cols @ xp.matrix_transpose(grad_rows)
        dw_t = step if dw_t is None else dw_t + step
        if input_grad:
            dx_parts.append(col2im_kernel_major(xp.matrix_transpose(w_matrix) @ grad_rows,
                                                window, (stop - start, c, h, w),
                                                (out_h, out_w)))
    dx = _concat(dx_parts) if input_grad else None
    dw = xp.reshape(xp.matrix_transpose(dw_t), weight.shape)
    return dx, dw, xp.sum(grad, axis=(0, 2, 3))


def _forward_channels_last(x, weight, bias, window: Window, groups: int):
    """Y (N·OH·OW, O) = im2col (N·OH·OW, kh·kw·C) @ Wᵀ + b, per group."""
    xp = backends.namespace(x)
    n, c = x.shape[0], x.shape[1]
    out_h, out_w = window.output_size(x.shape[2], x.shape[3])
    out_channels = weight.shape[0]
    w_t = xp.matrix_transpose(conv_weight_matrix(weight, groups))
    parts = []
    for start, stop in batch_chunks(x, out_h * out_w * window.size * c * _itemsize(x)):
        cols = to_groups(im2col(x[start:stop, ...], window, (out_h, out_w)), groups)
        parts.append(from_groups(group_matmul(cols, w_t),
                                 (stop - start, out_h, out_w, 1, out_channels)))
    y = xp.reshape(_concat(parts), (n, out_h, out_w, out_channels))
    if bias is not None:
        y = y + bias
    return channels_first(y)


def conv2d_backward(x, grad, weight, window: Window, groups: int, input_grad: bool = True):
    """(dx or None, dW, db) of y = conv2d(x) for the output gradient ``grad``."""
    full_window = transposed_window(window) if input_grad and groups == 1 else None
    if full_window is not None and not _convolution_is_cheaper(x.shape, grad.shape):
        full_window = None
    col2im_grad = input_grad and full_window is None
    if uses_kernel_major(x.shape[1], groups):
        dx, dw, db = _backward_kernel_major(x, grad, weight, window, col2im_grad)
    else:
        dx, dw, db = _backward_channels_last(x, grad, weight, window, groups, col2im_grad)
    if full_window is not None:
        dx = conv2d_forward(grad, flipped_transpose(weight), None, full_window, 1)
    return dx, dw, db


def transposed_window(window: Window) -> Window | None:
    """For a stride-1 convolution, the window of its input gradient as a convolution:

        dx = conv(dy, W̃) with W̃[c, o, i, j] = W[o, c, kh−1−i, kw−1−j] (see
        :func:`flipped_transpose`), stride 1, dilation d and padding d(k − 1) − p,

    since x[h] reaches y[h − dk + p] through weight tap k. One product with inner size
    kh·kw·O replaces col2im's kh·kw overlapping adds (see ``COL2IM_COST_RATIO`` for
    when). None for strides > 1 or padding beyond d(k − 1), which keep col2im."""
    if window.stride != (1, 1):
        return None
    padding = tuple(d * (k - 1) - p for k, p, d in
                    zip(window.kernel, window.padding, window.dilation))
    if min(padding) < 0:
        return None
    return Window(window.kernel, (1, 1), padding, window.dilation)


#: dx as a convolution copies kh·kw·O values per input pixel into its window matrix;
#: col2im adds kh·kw·C values per output pixel, each add a read-modify-write. The
#: convolution wins while O·H·W ≤ this × C·OH·OW (measured: 2-3× faster for same-size
#: layers; slower for LeNet-5's 6 → 16 valid convolution, where O·H·W = 5.2 C·OH·OW).
COL2IM_COST_RATIO = 3


def _convolution_is_cheaper(x_shape, grad_shape) -> bool:
    (_, c, h, w), (_, o, out_h, out_w) = x_shape, grad_shape
    return o * h * w <= COL2IM_COST_RATIO * c * out_h * out_w


def flipped_transpose(weight):
    """W (O, C, kh, kw) → W̃ (C, O, kh, kw), both kernel axes reversed."""
    xp = backends.namespace(weight)
    return xp.permute_dims(xp.flip(weight, axis=(2, 3)), (1, 0, 2, 3))


def _backward_channels_last(x, grad, weight, window: Window, groups: int, input_grad: bool):
    """dW = dYᵀ im2col, dx = col2im(dY W), per group, chunk by chunk."""
    xp = backends.namespace(grad)
    n, c, h, w = x.shape
    out_h, out_w = grad.shape[2], grad.shape[3]
    w_matrix = conv_weight_matrix(weight, groups)
    dw = None
    dx_parts = []
    for start, stop in batch_chunks(x, out_h * out_w * window.size * c * _itemsize(x)):
        cols = to_groups(im2col(x[start:stop, ...], window, (out_h, out_w)), groups)
        grad_rows = to_groups(channels_last(grad[start:stop, ...])[:, :, :, None, :], groups)
        step = group_matmul(xp.matrix_transpose(grad_rows), cols)
        dw = step if dw is None else dw + step
        if input_grad:
            dcols = from_groups(group_matmul(grad_rows, w_matrix),
                                (stop - start, out_h, out_w, window.size, c))
            dx_parts.append(col2im_channels_last(dcols, window, (stop - start, c, h, w)))
    kh, kw = window.kernel
    dw = xp.permute_dims(xp.reshape(dw, (weight.shape[0], kh, kw, -1)), (0, 3, 1, 2))
    db = xp.sum(grad, axis=(0, 2, 3))
    dx = channels_first(_concat(dx_parts)) if input_grad else None
    return dx, dw, db


# -- layers -----------------------------------------------------------------------------------


def _check_input(layer, x, channels: int, ndim: int = 4):
    if x.ndim != ndim or x.shape[1] != channels:
        layout = "(N, C, H, W)" if ndim == 4 else "(N, C, L)"
        raise ValueError(f"{layer!r}: expected input {layout} with C = {channels}, "
                         f"got {tuple(x.shape)}")


def _check_groups(name, in_channels, out_channels, groups):
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels "
                         f"({out_channels}) must be divisible by groups ({groups})")


def _init_parameters(layer, weight_shape, fan_in: int, bias_size: int, bias: bool):
    """PyTorch's default: weight and bias ~ U(−1/√fan_in, 1/√fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)
    layer.weight = init.uniform_(init.empty_parameter(weight_shape), -bound, bound)
    layer.bias = (init.uniform_(init.empty_parameter((bias_size,)), -bound, bound)
                  if bias else None)


def accumulate_parameter_grads(layer, dw, db):
    """Add dW and db (when the layer has a bias) into the layer's parameter gradients."""
    layer.weight.accumulate(dw)
    if layer.bias is not None:
        layer.bias.accumulate(db)


def param_data(param):
    """The array of a Parameter, or None for a missing (bias) parameter."""
    return None if param is None else param.data


def _window_repr(layer, axes: int = 2) -> str:
    """PyTorch's repr of a convolution; ``axes`` = 1 shows a Conv1d's (width) sizes only."""
    kernel, stride, padding, dilation = (size[2 - axes:] for size in (
        layer.window.kernel, layer.window.stride, layer.window.padding, layer.window.dilation))
    text = (f"{layer.in_channels}, {layer.out_channels}, kernel_size={kernel}, "
            f"stride={stride}")
    if any(padding):
        text += f", padding={padding}"
    if dilation != (1,) * axes:
        text += f", dilation={dilation}"
    if layer.groups != 1:
        text += f", groups={layer.groups}"
    return text + ("" if layer.bias is not None else ", bias=False")


CONV2D_ALGORITHMS = ("auto", "im2col", "dft", "toeplitz")


class Conv2d(Module):
    """2-D convolution (cross-correlation, as in PyTorch) on NCHW input.

    y[n, o] = b[o] + Σ_{c ∈ group(o), i, j} w[o, c, i, j] · x_p[n, c, s·h + d·i, s·w + d·j]

    weight: (out_channels, in_channels / groups, kh, kw); bias: (out_channels,);
    both start as U(−1/√fan_in, 1/√fan_in) with fan_in = in/groups · kh · kw.
    ``algorithm``: "im2col" (see the module docstring), "dft" (stride 1, dilation 1, one
    group: products bin by bin of the discrete Fourier transform, see
    :mod:`xdl.nn.conv_dft`), "toeplitz" (one group: a product with a banded weight
    matrix, see :mod:`xdl.nn.conv_toeplitz`) or "auto", which takes the DFT where its
    estimated cost is at most half of im2col's (``conv_dft.dft_is_cheaper``), else the
    Toeplitz path where it is cheaper than im2col by ``TOEPLITZ_SPEEDUP_NEEDED``
    (``conv_toeplitz.toeplitz_is_cheaper``), else im2col.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding=0, dilation=1, groups: int = 1, bias: bool = True, *,
                 algorithm: str = "auto"):
        super().__init__()
        _check_groups("Conv2d", in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.window = Window.of(kernel_size, stride, padding, dilation)
        if algorithm not in CONV2D_ALGORITHMS:
            raise ValueError(f"Conv2d: algorithm must be one of {CONV2D_ALGORITHMS}, "
                             f"got {algorithm!r}")
        if algorithm == "dft" and not dft_applies(self.window, groups):
            raise ValueError(f"Conv2d: algorithm='dft' needs stride 1, dilation 1 and "
                             f"groups=1, got stride={self.window.stride}, "
                             f"dilation={self.window.dilation}, groups={groups}")
        if algorithm == "toeplitz" and not toeplitz_applies(groups):
            raise ValueError(f"Conv2d: algorithm='toeplitz' needs groups=1, got groups={groups}")
        self.algorithm = algorithm
        kh, kw = self.window.kernel
        _init_parameters(self, (out_channels, in_channels // groups, kh, kw),
                         in_channels // groups * kh * kw, out_channels, bias)

    def algorithm_for(self, x_shape) -> str:
        """The algorithm this layer runs on inputs of ``x_shape``."""
        if self.algorithm != "auto":
            return self.algorithm
        if dft_is_cheaper(x_shape, self.out_channels, self.window, self.groups):
            return "dft"
        if toeplitz_is_cheaper(x_shape, self.out_channels, self.window, self.groups):
            return "toeplitz"
        return "im2col"

    def forward(self, x):
        _check_input(self, x, self.in_channels)
        out_h, out_w = self.window.output_size(x.shape[2], x.shape[3])
        if out_h < 1 or out_w < 1:
            raise ValueError(f"{self!r}: input {tuple(x.shape)} is smaller than the kernel")
        weight, bias = self.weight.data, param_data(self.bias)
        algorithm = self.algorithm_for(tuple(x.shape))
        if algorithm == "im2col":
            self.save_for_backward(algorithm, x)
            return conv2d_forward(x, weight, bias, self.window, self.groups)
        forward = dft_conv2d_forward if algorithm == "dft" else toeplitz_conv2d_forward
        y, state = forward(x, weight, bias, self.window)
        self.save_for_backward(algorithm, state)
        return y

    def _backward(self, grad, input_grad: bool):
        algorithm, state = self.saved
        if algorithm == "im2col":
            dx, dw, db = conv2d_backward(state, grad, self.weight.data, self.window,
                                         self.groups, input_grad)
        else:
            backward = (dft_conv2d_backward if algorithm == "dft"
                        else toeplitz_conv2d_backward)
            dx, dw, db = backward(state, grad, self.weight.data, self.window, input_grad)
        accumulate_parameter_grads(self, dw, db)
        return dx

    def backward(self, grad):
        return self._backward(grad, True)

    def backward_params(self, grad) -> None:
        """dW and db only: the input gradient is skipped."""
        self._backward(grad, False)

    def extra_repr(self):
        text = _window_repr(self)
        return text if self.algorithm == "auto" else text + f", algorithm={self.algorithm!r}"


class Conv1d(Module):
    """1-D convolution on (N, C, L), computed as a Conv2d over a height-1 image.

    y[n, o, t] = b[o] + Σ_{c ∈ group(o), i} w[o, c, i] · x_p[n, c, s·t + d·i]

    weight: (out_channels, in_channels / groups, k); bias: (out_channels,).
    Backward: that of Conv2d with the weight viewed as (O, C/G, 1, k).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, bias: bool = True):
        super().__init__()
        _check_groups("Conv1d", in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.window = Window.of((1, kernel_size), (1, stride), (0, padding), (1, dilation))
        _init_parameters(self, (out_channels, in_channels // groups, kernel_size),
                         in_channels // groups * kernel_size, out_channels, bias)

    def _weight_4d(self):
        w = self.weight.data
        return backends.namespace(w).reshape(w, (w.shape[0], w.shape[1], 1, w.shape[2]))

    def forward(self, x):
        _check_input(self, x, self.in_channels, ndim=3)
        if self.window.output_size(1, x.shape[2])[1] < 1:
            raise ValueError(f"{self!r}: input {tuple(x.shape)} is shorter than the kernel")
        self.save_for_backward(x)
        y = conv2d_forward(x[:, :, None, :], self._weight_4d(), param_data(self.bias),
                           self.window, self.groups)
        return y[:, :, 0, :]

    def _backward(self, grad, input_grad):
        (x,) = self.saved
        xp = backends.namespace(grad)
        dx, dw, db = conv2d_backward(x[:, :, None, :], grad[:, :, None, :], self._weight_4d(),
                                     self.window, self.groups, input_grad)
        accumulate_parameter_grads(self, xp.reshape(dw, self.weight.shape), db)
        return None if dx is None else dx[:, :, 0, :]

    def backward(self, grad):
        return self._backward(grad, True)

    def backward_params(self, grad) -> None:
        self._backward(grad, False)

    def extra_repr(self):
        return _window_repr(self, axes=1)


class ConvTranspose2d(Module):
    """Transposed convolution ("deconvolution"): the adjoint of Conv2d's input map.

    Output size: OH = (H − 1)·s − 2p + d(kh − 1) + output_padding + 1 (OW likewise).
    weight: (in_channels, out_channels / groups, kh, kw), as in PyTorch; PyTorch's init.
    With X the input as (N·H·W, C_in) and W as (C_in, kh·kw·C_out) per group:
    forward:  y = col2im(X W) + b
    backward: dX = im2col(dy) Wᵀ,  dW = Xᵀ im2col(dy),  db = Σ dy
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding=0, output_padding=0, groups: int = 1, bias: bool = True,
                 dilation=1):
        super().__init__()
        _check_groups("ConvTranspose2d", in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.window = Window.of(kernel_size, stride, padding, dilation)
        self.output_padding = pair(output_padding)
        if any(op >= max(s, d) for op, s, d in zip(self.output_padding, self.window.stride,
                                                     self.window.dilation)):
            raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must be "
                             f"smaller than stride or dilation")
        kh, kw = self.window.kernel
        _init_parameters(self, (in_channels, out_channels // groups, kh, kw),
                         out_channels // groups * kh * kw, out_channels, bias)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        w = self.window
        return tuple(
            (size - 1) * s - 2 * p + d * (k - 1) + op + 1
            for size, k, s, p, d, op in zip((height, width), w.kernel, w.stride, w.padding,
                                            w.dilation, self.output_padding)
        )

    def _weight_matrix(self, xp):
        """weight (C_in, C_out/G, kh, kw) → (G, C_in/G, kh·kw·C_out/G), im2col's (k, c) order."""
        w = xp.permute_dims(self.weight.data, (0, 2, 3, 1))
        return xp.reshape(w, (self.groups, self.in_channels // self.groups, -1))

    def forward(self, x):
        _check_input(self, x, self.in_channels)
        xp = backends.namespace(x)
        n, _, h, w = x.shape
        out_h, out_w = self.output_size(h, w)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"{self!r}: output size {(out_h, out_w)} for input "
                             f"{tuple(x.shape)} is not positive")
        rows = to_groups(channels_last(x)[:, :, :, None, :], self.groups)
        cols = from_groups(group_matmul(rows, self._weight_matrix(xp)),
                           (n, h, w, self.window.size, self.out_channels))
        y = col2im_channels_last(cols, self.window, (n, self.out_channels, out_h, out_w))
        if self.bias is not None:
            y = y + self.bias.data
        self.save_for_backward(rows, tuple(x.shape))
        return channels_first(y)

    def _backward(self, grad, input_grad):
        rows, (n, c, h, w) = self.saved
        xp = backends.namespace(grad)
        cols = to_groups(im2col(grad, self.window, (h, w)), self.groups)
        dw = group_matmul(xp.matrix_transpose(rows), cols)
        kh, kw = self.window.kernel
        dw = xp.reshape(dw, (self.in_channels, kh, kw, -1))
        accumulate_parameter_grads(self, xp.permute_dims(dw, (0, 3, 1, 2)),
                                   xp.sum(grad, axis=(0, 2, 3)))
        if not input_grad:
            return None
        dx = group_matmul(cols, xp.matrix_transpose(self._weight_matrix(xp)))
        return channels_first(from_groups(dx, (n, h, w, 1, c))[:, :, :, 0, :])

    def backward(self, grad):
        return self._backward(grad, True)

    def backward_params(self, grad) -> None:
        self._backward(grad, False)

    def extra_repr(self):
        text = _window_repr(self)
        return text + (f", output_padding={self.output_padding}"
                       if self.output_padding != (0, 0) else "")
