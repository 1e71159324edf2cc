"""Stride-1 convolution through the discrete Fourier transform, all as matrix products.

Zero-padded to S_h × S_w (S = size + 2·padding), a stride-1 cross-correlation

    y[n, o, a, b] = Σ_{c, i, j} w[o, c, i, j] · x_p[n, c, a + i, b + j]

is, bin by bin of the 2-D DFT over S_h × S_w (nothing wraps around into the kept
outputs, since a + i ≤ S_h − 1),

    Ŷ[n, o, g, f] = Σ_c X̂[n, c, g, f] · conj(Ŵ[o, c, g, f]),

so each of the S_h·F bins (F = S_w//2 + 1: x is real, half the width bins suffice) is
one complex (N, C) @ (C, O) product: C·O complex multiply-adds per bin instead of
C·O·kh·kw real ones per output pixel. The transforms are products with DFT matrices
(separable: along the width, then along the height, and back):

    Fw[w, f] = e^{−2πi·wf/S_w}  (S_w, F)         Fh[h, g] = e^{−2πi·hg/S_h}  (S_h, S_h)
    Gh[g, a] = e^{+2πi·ga/S_h} / S_h  (S_h, OH)   Gw[f, b] = c_f·e^{+2πi·fb/S_w} / S_w  (F, OW)

with c_f = 1 at f = 0 and f = S_w/2, else 2 (the bins left out are the conjugates of
those kept). Only the rows of Fh, Fw that meet the unpadded input are used: the
padding is a phase shift, so x is never padded.

The bias goes in through the (0, 0) bin, which the inverse transform spreads evenly
over the output (Gh[0, a]·Gw[0, b] = 1/(S_h·S_w)): N·O additions instead of a pass over
the output, and its gradient falls out of the bin's gradient.

Two forms compute this, both as array-API matrix products, each leaving the output as
y (OH, OW, ·) with the image and channel axes in the order its products give
(``TO_NCHW`` of each form turns it into (N, O, OH, OW)):

* :mod:`xdl.nn.conv_dft_complex` in complex arithmetic;
* :mod:`xdl.nn.conv_dft_real` with every complex value as a real and an imaginary part
  on an axis of their own: real input and output need no conversion and BLAS runs real
  products of these shapes faster, but each bin's kernel is a 2×2 block of real
  matrices (4·C·O values), which costs more than it saves once there are many channels.

:func:`uses_real_form` picks one; :func:`dft_is_cheaper` decides when the DFT beats
im2col (5×5 kernels, or few output channels, where im2col's window copy dominates).
"""

from __future__ import annotations

import math

from xdl import backends
from xdl.nn import conv_dft_complex, conv_dft_real
from xdl.nn.functional import Window

#: im2col copies C·kh·kw window values per output pixel and BLAS then reads them; one
#: copied value costs about as long as this many multiply-adds (a strided gather against
#: BLAS's rate), so layers with few output channels pay mostly for the copy.
IM2COL_COPY_COST = 32

#: The DFT path is taken when its estimated cost is at most 1/this of im2col's: its
#: transforms are products with a short inner dimension, which BLAS runs below its peak.
#: Both constants were fitted to benchmarks/conv_algorithms.py (the DFT is about 1.8×
#: faster on the book CNN's and LeNet-5's second convolutions, 2.1× on AlexNet's 5×5;
#: im2col stays ahead on 3×3 layers of 32 channels or fewer and on one-channel inputs).
DFT_SPEEDUP_NEEDED = 2.0


def dft_applies(window: Window, groups: int) -> bool:
    """The DFT path computes stride-1, undilated, one-group convolutions."""
    return groups == 1 and window.stride == (1, 1) and window.dilation == (1, 1)


def estimated_costs(x_shape, out_channels: int, window: Window) -> dict[str, int]:
    """Per sample and forward pass, in multiply-adds (a complex one counts as 4):
    im2col's product plus its window copy (IM2COL_COPY_COST per value), and the DFT's
    bin products plus its transforms of x (along the width, then the height) and back."""
    _, c, h, w = x_shape
    o = out_channels
    (kh, kw), (ph, pw) = window.kernel, window.padding
    s_h, s_w = h + 2 * ph, w + 2 * pw
    out_h, out_w = s_h - kh + 1, s_w - kw + 1
    f = s_w // 2 + 1
    return {"im2col": out_h * out_w * c * kh * kw * (o + IM2COL_COPY_COST),
            "dft": 4 * (s_h * f * c * o + c * f * h * (w + s_h) + o * s_h * out_w * (f + out_h))}


def dft_is_cheaper(x_shape, out_channels: int, window: Window, groups: int) -> bool:
    """Whether the DFT path applies and costs at most 1/DFT_SPEEDUP_NEEDED of im2col."""
    if not dft_applies(window, groups):
        return False
    costs = estimated_costs(x_shape, out_channels, window)
    return DFT_SPEEDUP_NEEDED * costs["dft"] <= costs["im2col"]


#: The real form is used up to this many (input, output) channel pairs: its per-bin
#: 2×2 blocks cost 4·C·O values to build and to reduce each step. Measured with
#: benchmarks/cnn_epoch.py: it makes LeNet-5's second convolution (C·O = 96) faster and
#: the book CNN's (C·O = 2048) slower than the complex form, at batch 32 and 128.
REAL_FORM_MAX_CHANNEL_PAIRS = 512


def uses_real_form(in_channels: int, out_channels: int) -> bool:
    """Whether the real form (rather than the complex one) computes this layer."""
    return in_channels * out_channels <= REAL_FORM_MAX_CHANNEL_PAIRS


def _form(in_channels: int, out_channels: int):
    return conv_dft_real if uses_real_form(in_channels, out_channels) else conv_dft_complex


def to_nchw_axes(in_channels: int, out_channels: int) -> tuple:
    """The axes that turn :func:`dft_conv2d_rows`'s y, split into (OH, OW, ·, ·), into
    (N, O, OH, OW)."""
    return _form(in_channels, out_channels).TO_NCHW


def dft_conv2d_rows(x, weight, bias, window: Window):
    """(y, saved): y = conv(x) as (OH, OW, N·O) or (OH, OW, O·N) (see
    :func:`to_nchw_axes`), and what :func:`dft_conv2d_rows_backward` needs."""
    return _form(x.shape[1], weight.shape[0]).forward(x, weight, bias, window)


def dft_conv2d_rows_backward(saved, dy, weight, window: Window, input_grad: bool = True):
    """(dx or None, dW, db) of :func:`dft_conv2d_rows` for the gradient dy of its
    output, in its layout; dx is (N, C, H, W)."""
    return _form(weight.shape[1], weight.shape[0]).backward(saved, dy, weight, window,
                                                            input_grad)


def split_rows(y, n: int, o: int, axes: tuple):
    """y (OH, OW, ·) as (OH, OW, ·, ·), its last axis split into the image and channel
    axes in the order ``axes`` (:func:`to_nchw_axes`) says."""
    sizes = (n, o)
    return backends.namespace(y).reshape(
        y, (y.shape[0], y.shape[1], sizes[axes.index(2)], sizes[axes.index(3)]))


def rows_of(a, axes: tuple):
    """An (N, O, OH, OW) array as (OH, OW, ·), the layout of :func:`dft_conv2d_rows`'s
    output (``axes`` from :func:`to_nchw_axes`); a copy unless it is stored so."""
    xp = backends.namespace(a)
    a = xp.permute_dims(a, tuple(axes.index(k) for k in range(4)))
    return xp.reshape(a, (a.shape[0], a.shape[1], math.prod(a.shape[2:])))


def dft_conv2d_forward(x, weight, bias, window: Window):
    """(y, saved): y = conv(x) (N, O, OH, OW), stored (OH, OW, ·, ·) in memory as the
    form leaves it, and what :func:`dft_conv2d_backward` needs."""
    xp = backends.namespace(x)
    axes = to_nchw_axes(x.shape[1], weight.shape[0])
    y, saved = dft_conv2d_rows(x, weight, bias, window)
    return xp.permute_dims(split_rows(y, x.shape[0], weight.shape[0], axes), axes), saved


def dft_conv2d_backward(saved, grad, weight, window: Window, input_grad: bool = True):
    """(dx or None, dW, db) of :func:`dft_conv2d_forward` for the output gradient."""
    dy = rows_of(grad, to_nchw_axes(weight.shape[1], weight.shape[0]))
    return dft_conv2d_rows_backward(saved, dy, weight, window, input_grad)
