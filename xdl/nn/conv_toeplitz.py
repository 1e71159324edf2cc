"""Convolution as one product with a banded (Toeplitz) weight matrix, block by block of
output columns.

Along the width, a convolution of an image row is a product with a banded matrix. Cut
each output row into blocks of B columns; block β starts at column x₀ = βB and reads
the L = s(B − 1) + d(kw − 1) + 1 input columns from s·x₀ on. With the padded input x_p
stored (N, H_p, C, W_p), its rows

    R[(n, a, β), (i, c, u)] = x_p[n, s·a + d·i, c, s·x₀ + u]        (u < L)

and the band T[(i, c, u), (o, x)] = Σ_j w[o, c, i, j] · [u = s·x + d·j]  (x < B),

    y[n, o, a, x₀ + x] = b[o] + (R T)[(n, a, β), (o, x)]

is one product (N·OH·nb, kh·C·L) @ (kh·C·L, O·B), nb = ⌈OW / B⌉ blocks per row. It
does L/kw times the multiply-adds of the direct sum (the zeros of the band), but R
copies only kh·L/B values per output pixel and input channel where im2col copies
kh·kw, and the product is O·B columns wide where im2col's is O: with few channels
(LeNet-5) im2col's copy and its narrow product dominate, and this path wins.
B = 1 is im2col itself; B = OW is one band per kernel row.

Backward, with dY as (N·OH·nb, O·B):

    dT = Rᵀ dY,        dW[o, c, i, j] = Σ_{u, x} dT[(i, c, u), (o, x)] · [u = s·x + d·j]
    dR = dY Tᵀ,        dx_p[n, s·a + d·i, c, s·x₀ + u] += dR[(n, a, β), (i, c, u)]
    db = Σ_rows dY     (summed over the B columns of each channel)

T and dW go through the 0/1 shift tensor S[j, u, x] = [u = s·x + d·j] as products,
T = w (O·C·kh, kw) @ S (kw, L·B) and dW = dT (O·C·kh, L·B) @ Sᵀ, so every step is an
array-API operation. R is kept from the forward for dW (it is about kw times smaller
than im2col's matrix).

Memory layout: y is stored (N, OH, O, OW), "NHCW", the layout R reads from. Element-wise
layers and max pooling keep it, so the next Toeplitz convolution's R copies runs of L
contiguous values.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdl import backends
from xdl.nn.conv_dft import IM2COL_COPY_COST
from xdl.nn.functional import Window, pad_spatial

#: A block holds at least this many output values per row (O·B columns): below it BLAS
#: runs the product well under its peak (measured on LeNet-5's layers, where O·B = 84
#: and 80 run at 175–190 GFLOP/s, against 60 for im2col's 6 columns).
MIN_BLOCK_COLUMNS = 64

#: BLAS runs a product less than this many columns wide at about width/this of its rate.
FULL_RATE_COLUMNS = 32

#: A value copied into R or im2col's matrix costs IM2COL_COPY_COST multiply-adds when
#: the copy moves contiguous runs of at least this many values; shorter runs cost
#: IM2COL_COPY_COST·FULL_RATE_RUN/run per value (R's runs are L long, the output's B).
FULL_RATE_RUN = 16

#: The Toeplitz path is taken when its estimated cost is at most 1/this of im2col's.
#: The constants were fitted to benchmarks/conv_algorithms.py and to LeNet-5's epoch
#: (benchmarks/cnn_epoch.py): the Toeplitz path wins on LeNet-5's first layer (6 output
#: channels: B = 14, L = 18) and loses where blocks are a few columns wide (the book
#: CNN's first layer, 3×3 layers of 16 channels), whose copies move short runs.
TOEPLITZ_SPEEDUP_NEEDED = 1.25


def toeplitz_applies(groups: int) -> bool:
    """The Toeplitz path computes one-group convolutions (any stride, padding, dilation)."""
    return groups == 1


def _product_cost(width: int) -> float:
    """Multiply-adds per row of a product ``width`` columns wide, slowed down below
    FULL_RATE_COLUMNS."""
    return width * max(1.0, FULL_RATE_COLUMNS / width)


def _copy_cost(run: int) -> float:
    return IM2COL_COPY_COST * max(1.0, FULL_RATE_RUN / run)


def estimated_costs(x_shape, out_channels: int, window: Window) -> dict[str, float]:
    """Per output pixel (all channels) and forward pass, in multiply-adds.

    im2col: kh·kw·C matrix rows' worth of product and copy. Toeplitz: kh·C·L/B rows of
    R (product O·B wide, copies in runs of L) and, with several blocks, the O output
    values moved into (N, OH, O, OW) in runs of B."""
    c, o = x_shape[1], out_channels
    (kh, kw) = window.kernel
    plan = Plan.of(x_shape, o, window)
    toeplitz = kh * c * plan.span / plan.block * (_product_cost(o * plan.block)
                                                  + _copy_cost(plan.span))
    if plan.blocks > 1:
        toeplitz += o * _copy_cost(plan.block)
    return {"im2col": kh * kw * c * (_product_cost(o) + IM2COL_COPY_COST),
            "toeplitz": toeplitz}


def toeplitz_is_cheaper(x_shape, out_channels: int, window: Window, groups: int) -> bool:
    """Whether the Toeplitz path applies and costs at most 1/TOEPLITZ_SPEEDUP_NEEDED of
    im2col."""
    if not toeplitz_applies(groups):
        return False
    costs = estimated_costs(x_shape, out_channels, window)
    return TOEPLITZ_SPEEDUP_NEEDED * costs["toeplitz"] <= costs["im2col"]


@dataclass(frozen=True)
class Plan:
    """The geometry of one Toeplitz convolution: blocks and the padded input they read."""

    out_h: int
    out_w: int
    block: int        # B, output columns per block
    blocks: int       # nb = ⌈OW / B⌉
    span: int         # L, input columns one block reads
    padded: tuple     # (H_p, W_p): the input padded, plus columns the last block overhangs

    @classmethod
    def of(cls, x_shape, out_channels: int, window: Window, block_multiple: int = 1) -> Plan:
        """As many blocks as keep each at least MIN_BLOCK_COLUMNS wide (O·B), at least
        one and at most OW, with B = ⌈OW / blocks⌉ rounded up to a multiple of
        ``block_multiple``."""
        _, _, h, w = x_shape
        out_h, out_w = window.output_size(h, w)
        blocks = max(1, out_w * out_channels // MIN_BLOCK_COLUMNS)
        blocks = min(blocks, out_w)
        block = -(-out_w // blocks)
        block = -(-block // block_multiple) * block_multiple
        blocks = -(-out_w // block)
        kw, sw, dw = window.kernel[1], window.stride[1], window.dilation[1]
        ph, pw = window.padding
        span = sw * (block - 1) + dw * (kw - 1) + 1
        width = max(w + 2 * pw, sw * block * (blocks - 1) + span)
        return cls(out_h, out_w, block, blocks, span, (h + 2 * ph, width))


_shift_cache: dict[tuple, object] = {}


def _shift(like, window: Window, plan: Plan):
    """S (kw, L·B): S[j, u·B + x] = [u = s·x + d·j], cached per backend, dtype, geometry."""
    key = (str(backends.backend_of(like)), backends.dtype_name(like.dtype), window, plan)
    if key not in _shift_cache:
        kw, sw, dw = window.kernel[1], window.stride[1], window.dilation[1]
        rows = [[0.0] * (plan.span * plan.block) for _ in range(kw)]
        for j in range(kw):
            for x in range(plan.block):
                rows[j][(sw * x + dw * j) * plan.block + x] = 1.0
        _shift_cache[key] = backends.backend_of(like).asarray(
            rows, backends.dtype_name(like.dtype))
    return _shift_cache[key]


def band(weight, window: Window, plan: Plan):
    """T (kh·C·L, O·B): T[(i, c, u), (o, x)] = Σ_j w[o, c, i, j]·[u = s·x + d·j]."""
    xp = backends.namespace(weight)
    o, c, kh, kw = weight.shape
    t = xp.reshape(weight, (o * c * kh, kw)) @ _shift(weight, window, plan)
    t = xp.permute_dims(xp.reshape(t, (o, c, kh, plan.span, plan.block)), (2, 1, 3, 0, 4))
    return xp.reshape(t, (kh * c * plan.span, o * plan.block))


def band_backward(d_band, window: Window, plan: Plan, weight_shape):
    """dW (O, C, kh, kw) for the gradient dT of :func:`band`'s output."""
    xp = backends.namespace(d_band)
    o, c, kh, kw = weight_shape
    dt = xp.reshape(d_band, (kh, c, plan.span, o, plan.block))
    dt = xp.reshape(xp.permute_dims(dt, (3, 1, 0, 2, 4)), (o * c * kh, plan.span * plan.block))
    dw = dt @ xp.matrix_transpose(_shift(d_band, window, plan))
    return xp.reshape(dw, weight_shape)


def _windows(window: Window, plan: Plan):
    """(β, i, row slice, column slice) into x_p for every block β and kernel row i."""
    (kh, _), (sh, sw), (dh, _) = window.kernel, window.stride, window.dilation
    for beta in range(plan.blocks):
        start = sw * plan.block * beta
        for i in range(kh):
            yield (beta, i, slice(dh * i, dh * i + sh * (plan.out_h - 1) + 1, sh),
                   slice(start, start + plan.span))


def rows_matrix(x, window: Window, plan: Plan):
    """R (N·OH·nb, kh·C·L), from kh·nb strided copies of x_p."""
    xp = backends.namespace(x)
    n, c, w = x.shape[0], x.shape[1], x.shape[3]
    kh = window.kernel[0]
    overhang = plan.padded[1] - (w + 2 * window.padding[1])
    x_p = pad_spatial(xp.permute_dims(x, (0, 2, 1, 3)), window.padding, axes=(1, 3),
                      extra=(0, overhang))                        # (N, H_p, C, W_p)
    r = xp.empty((n, plan.out_h, plan.blocks, kh, c, plan.span), dtype=x.dtype,
                 device=x.device)
    for beta, i, rows, cols in _windows(window, plan):
        r[:, :, beta, i, ...] = x_p[:, rows, :, cols]
    return xp.reshape(r, (n * plan.out_h * plan.blocks, kh * c * plan.span))


def toeplitz_conv2d_forward(x, weight, bias, window: Window):
    """(y, saved): y = conv(x) (N, O, OH, OW), stored (N, OH, O, OW) in memory."""
    xp = backends.namespace(x)
    n, o = x.shape[0], weight.shape[0]
    plan = Plan.of(x.shape, o, window)
    r = rows_matrix(x, window, plan)
    t = band(weight, window, plan)
    y = r @ t                                                     # (N·OH·nb, O·B)
    if plan.blocks == 1:
        y = xp.reshape(y, (n, plan.out_h, o, plan.out_w))
    else:
        y = xp.reshape(y, (n, plan.out_h, plan.blocks, o, plan.block))
        y = xp.reshape(xp.permute_dims(y, (0, 1, 3, 2, 4)),
                       (n, plan.out_h, o, plan.blocks * plan.block))[..., :plan.out_w]
    if bias is not None:
        y = y + xp.reshape(bias, (o, 1))
    return xp.permute_dims(y, (0, 2, 1, 3)), (r, t, plan, tuple(x.shape))


def _output_rows(grad, plan: Plan):
    """dY (N·OH·nb, O·B) from grad (N, O, OH, OW); zeros where the last block overhangs."""
    xp = backends.namespace(grad)
    n, o = grad.shape[0], grad.shape[1]
    g = xp.permute_dims(grad, (0, 2, 1, 3))                       # (N, OH, O, OW)
    if plan.blocks == 1:
        return xp.reshape(g, (n * plan.out_h, o * plan.out_w))
    g = pad_spatial(g, (0, 0), axes=(1, 3), extra=(0, plan.blocks * plan.block - plan.out_w))
    g = xp.reshape(g, (n, plan.out_h, o, plan.blocks, plan.block))
    return xp.reshape(xp.permute_dims(g, (0, 1, 3, 2, 4)), (-1, o * plan.block))


def toeplitz_conv2d_backward(saved, grad, weight, window: Window, input_grad: bool = True):
    """(dx or None, dW, db) of :func:`toeplitz_conv2d_forward` for the output gradient."""
    r, t, plan, x_shape = saved
    xp = backends.namespace(grad)
    o = weight.shape[0]
    dy = _output_rows(grad, plan)
    db = channel_sums(dy, o)
    dw = band_backward(xp.matrix_transpose(r) @ dy, window, plan, tuple(weight.shape))
    if not input_grad:
        return None, dw, db
    return input_gradient(dy @ xp.matrix_transpose(t), window, plan, x_shape), dw, db


def channel_sums(rows, channels: int):
    """Σ over the rows and the block columns of each channel of (·, O·B) ``rows``."""
    xp = backends.namespace(rows)
    return xp.sum(xp.reshape(xp.sum(rows, axis=0), (channels, -1)), axis=1)


def input_gradient(d_rows, window: Window, plan: Plan, x_shape):
    """dx (N, C, H, W) from dR = dY Tᵀ (N·OH·nb, kh·C·L), summed back into the padded
    input: kh·nb strided adds."""
    xp = backends.namespace(d_rows)
    n, c, h, w = x_shape
    ph, pw = window.padding
    kh = window.kernel[0]
    dr = xp.reshape(d_rows, (n, plan.out_h, plan.blocks, kh, c, plan.span))
    dx = xp.zeros((n, plan.padded[0], c, plan.padded[1]), dtype=dr.dtype, device=dr.device)
    for beta, i, rows, cols in _windows(window, plan):
        dx[:, rows, :, cols] += dr[:, :, beta, i, ...]
    return xp.permute_dims(dx[:, ph:ph + h, :, pw:pw + w], (0, 2, 1, 3))
