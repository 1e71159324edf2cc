"""Conv2d → ReLU → MaxPool2d run as one computation on the DFT path.

:func:`~xdl.nn.conv_dft.dft_conv2d_rows` leaves the convolution (bias included, through
the (0, 0) bin) as y (OH, OW, N·O) (images and channels in the order its form gives,
:func:`~xdl.nn.conv_dft.to_nchw_axes`): the output rows and columns are the outer axes,
so a max pool whose kh×kw windows tile the output reads whole (N·O)-long runs. With
y viewed as (OH/kh, kh, OW/kw, kw, N·O), one scan over the kh·kw window positions
in row-major order (:func:`~xdl.nn.pooling.max_scan`, masks b_k) gives

    P = max_{i, j} y[:, i, :, j, :]      (OH', OW', N·O)
    z = max(P, 0)                        stored (N, O, OH', OW') in memory (a Flatten
                                         after it is a view, the next layer reads rows)

which equals ReLU and pooling after the convolution (max commutes with ReLU, a
non-decreasing function), for kh·kw times fewer ReLU values and without the passes
over the full-size output that separate layers make.

Backward, with dz the output gradient:

    dP = dz·[z > 0]  (moved to (OH', OW', N·O));   dy[:, i, :, j, :] ← dP routed by b_k;
    then :func:`~xdl.nn.conv_dft.dft_conv2d_rows_backward`.
"""

from __future__ import annotations

from xdl import backends
from xdl.nn.activation import relu
from xdl.nn.conv_dft import (
    dft_conv2d_rows,
    dft_conv2d_rows_backward,
    rows_of,
    split_rows,
    to_nchw_axes,
)
from xdl.nn.module import is_grad_enabled
from xdl.nn.pooling import max_scan, max_scan_backward


def dft_relu_pool_forward(x, weight, bias, window, pool_kernel):
    """(y, saved): y = maxpool(relu(conv(x))) (N, O, OH/kh, OW/kw), stored NCHW;
    ``saved`` is None under no_grad."""
    xp = backends.namespace(x)
    n, o = x.shape[0], weight.shape[0]
    kh, kw = pool_kernel
    y, conv_saved = dft_conv2d_rows(x, weight, bias, window)       # (OH, OW, ·)
    pooled_h, pooled_w = y.shape[0] // kh, y.shape[1] // kw
    y = xp.reshape(y, (pooled_h, kh, pooled_w, kw, n * o))
    track = is_grad_enabled()
    p, beats = max_scan([y[:, i, :, j, :] for i in range(kh) for j in range(kw)], track)
    axes = to_nchw_axes(x.shape[1], o)
    z = xp.permute_dims(split_rows(relu(p), n, o, axes), axes)
    z = xp.reshape(xp.reshape(z, (n, o * pooled_h * pooled_w)), z.shape)   # stored NCHW
    saved = (conv_saved, beats, z) if track else None
    return z, saved


def dft_relu_pool_backward(saved, grad, weight, window, pool_kernel, input_grad=True):
    """(dx or None, dW, db) of :func:`dft_relu_pool_forward` for the output gradient."""
    conv_saved, beats, z = saved
    xp = backends.namespace(grad)
    n, o, pooled_h, pooled_w = z.shape
    kh, kw = pool_kernel
    axes = to_nchw_axes(weight.shape[1], o)
    dz = grad * xp.astype(z > 0.0, grad.dtype)
    dp = rows_of(dz, axes)                                        # (OH', OW', N·O)
    dy = xp.empty((pooled_h, kh, pooled_w, kw, n * o), dtype=dp.dtype, device=dp.device)
    parts = iter(max_scan_backward(dp, beats))
    for i in range(kh):
        for j in range(kw):
            dy[:, i, :, j, :] = next(parts)
    dy = xp.reshape(dy, (pooled_h * kh, pooled_w * kw, n * o))
    return dft_conv2d_rows_backward(conv_saved, dy, weight, window, input_grad)
