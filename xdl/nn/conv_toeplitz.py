"""Convolution as one product with a banded (Toeplitz) weight matrix, block by block of
output columns.

Along the width, a convolution of an image row is a product with a banded matrix. Cut
each output row into blocks of B columns; block β starts at column x₀ = βB and reads
the L = s(B − 1) + d(kw − 1) + 1 input columns from s·x₀ on. With the padded input x_p
stored channels-last (N, H_p, W_p, C), its rows

    R[(n, a, β), (i, u, c)] = x_p[n, s·a + d·i, s·x₀ + u, c]        (u < L)

(for each kernel row i one run of L·C contiguous values of x_p), and the band

    T[(i, u, c), (x, o)] = Σ_j w[o, c, i, j] · [u = s·x + d·j]        (x < B),

    y[n, a, x₀ + x, o] = b[o] + (R T)[(n, a, β), (x, o)]

is one product (N·OH·nb, kh·L·C) @ (kh·L·C, B·O), nb = ⌈OW / B⌉ blocks per row, whose
rows are y channels-last (N, OH, nb·B, O) as they stand (``Plan.row_groups`` g > 1
orders the rows (q, n, a', β) with a = g·a' + q instead, for a pooling stage). The bias
rides in the product: R gets a column of ones and T a row T[1, (x, o)] = b[o], so no
pass over y adds it, and its gradient is the matching row of dT; zero columns of R and
rows of T then round the inner dimension up to ``depth`` (see ROWS_MULTIPLE). The
product does L/kw times the multiply-adds of the direct sum (the zeros of the band), but
R copies only kh·L/B values per output pixel and input channel where im2col copies
kh·kw, and it is O·B columns wide where im2col's is O: with few channels (LeNet-5)
im2col's copy and its narrow product dominate, and this path wins. B = 1 is im2col
itself; B = OW is one band per kernel row.

Backward, with dY as (N·OH·nb, B·O) and T₀ the band without its bias row:

    dT = Rᵀ dY,        dW[o, c, i, j] = Σ_{u, x} dT[(i, u, c), (x, o)] · [u = s·x + d·j]
                       db[o] = Σ_x dT[1, (x, o)]
    dR = dY T₀ᵀ,       dx_p[n, s·a + d·i, s·x₀ + u, c] += dR[(n, a, β), (i, u, c)]

T and dW go through the 0/1 shift tensor S[j, u, x] = [u = s·x + d·j] as products,
T = w (O·C·kh, kw) @ S (kw, L·B) and dW = dT (O·C·kh, L·B) @ Sᵀ, so every step is an
array-API operation. R is kept from the forward for dW (it is about kw times smaller
than im2col's matrix).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdl import backends
from xdl.nn.conv_dft import IM2COL_COPY_COST
from xdl.nn.functional import Window, channels_first, channels_last, pad_spatial

#: A block holds at least this many output values per row (O·B columns): below it BLAS
#: runs the product well under its peak (measured on LeNet-5's layers, where O·B = 84
#: and 80 run at 175–190 GFLOP/s, against 60 for im2col's 6 columns).
MIN_BLOCK_COLUMNS = 64

#: BLAS runs a product less than this many columns wide at about width/this of its rate.
FULL_RATE_COLUMNS = 32

#: A value copied into R or im2col's matrix costs IM2COL_COPY_COST multiply-adds when
#: the copy moves contiguous runs of at least this many values; shorter runs cost
#: IM2COL_COPY_COST·FULL_RATE_RUN/run per value.
FULL_RATE_RUN = 16

#: The Toeplitz path is taken when its estimated cost is at most 1/this of im2col's.
#: The constants were fitted to benchmarks/conv_algorithms.py and to LeNet-5's epoch
#: (benchmarks/cnn_epoch.py): the Toeplitz path wins on LeNet-5's first layer (6 output
#: channels: B = 14, L = 18) and loses where blocks are a few columns wide (the book
#: CNN's first layer, 3×3 layers of 16 channels), whose copies move short runs.
TOEPLITZ_SPEEDUP_NEEDED = 1.25

#: The product's inner dimension (R's columns: kh·L·C values, the bias's ones, then
#: zeros) is rounded up to a multiple of this. BLAS splits dT = Rᵀ dY over R's columns
#: between its threads and runs whole micro-tiles faster: on LeNet-5's first layer
#: (kh·L·C + 1 = 91 → 96) the fused stage's forward and dW took 5% less time with two
#: OpenBLAS threads (in-process A/B against 91, 100 rounds), for 5% more multiply-adds.
ROWS_MULTIPLE = 16


def toeplitz_applies(groups: int) -> bool:
    """The Toeplitz path computes one-group convolutions (any stride, padding, dilation)."""
    return groups == 1


def _product_cost(width: int) -> float:
    """Multiply-adds per row of a product ``width`` columns wide, slowed down below
    FULL_RATE_COLUMNS."""
    return width * max(1.0, FULL_RATE_COLUMNS / width)


def _copy_cost(run: int) -> float:
    return IM2COL_COPY_COST * max(1.0, FULL_RATE_RUN / run)


def estimated_costs(x_shape, out_channels: int, window: Window,
                    block_multiple: int = 1) -> dict[str, float]:
    """Per output pixel (all channels) and forward pass, in multiply-adds: im2col's
    kh·kw·C matrix rows' worth of product and copy; the Toeplitz path's kh·C·L/B rows
    of R (a product O·B wide, copies in runs of L) and, with several blocks, O output
    values moved in runs of B. (Fitted before R was read channels-last and the output
    came out channels-last without a move; kept so that ``auto`` decides as measured.)
    "toeplitz-pooled" is the Toeplitz path without that move, as the fused Conv2d →
    ReLU → MaxPool2d stage runs it (:mod:`xdl.nn.conv_relu_pool`, its blocks a multiple
    of ``block_multiple``, the pool's width)."""
    c, o = x_shape[1], out_channels
    (kh, kw) = window.kernel
    plan = Plan.of(x_shape, o, window, block_multiple=block_multiple)
    product = kh * c * plan.span / plan.block * (_product_cost(o * plan.block)
                                                 + _copy_cost(plan.span))
    moved = o * _copy_cost(plan.block) if plan.blocks > 1 else 0.0
    return {"im2col": kh * kw * c * (_product_cost(o) + IM2COL_COPY_COST),
            "toeplitz": product + moved, "toeplitz-pooled": product}


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
    row_groups: int = 1   # g: the rows of R and Y are ordered (q, n, a', β), a = g·a' + q

    @classmethod
    def of(cls, x_shape, out_channels: int, window: Window, block_multiple: int = 1,
           row_groups: int = 1) -> Plan:
        """As many blocks as keep each at least MIN_BLOCK_COLUMNS wide (O·B), at least
        one and at most OW, with B = ⌈OW / blocks⌉ rounded up to a multiple of
        ``block_multiple``. ``row_groups`` g (dividing OH) orders the product's rows
        (q, n, a', β) with a = g·a' + q instead of (n, a, β), so that the rows of each
        q are one contiguous group (a pooling window's g rows, for the fused stage)."""
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
        if out_h % row_groups:
            raise ValueError(f"Toeplitz plan: {row_groups} row groups do not divide "
                             f"{out_h} output rows")
        return cls(out_h, out_w, block, blocks, span, (h + 2 * ph, width), row_groups)

    @property
    def group_rows(self) -> int:
        """OH/g, the output rows a' of one row group."""
        return self.out_h // self.row_groups

    def band_rows(self, window: Window, channels: int) -> int:
        """kh·L·C, the rows of T that hold the kernel (R's columns that hold x_p)."""
        return window.kernel[0] * self.span * channels

    def depth(self, window: Window, channels: int) -> int:
        """The product's inner dimension: kh·L·C, one for the bias, rounded up to a
        multiple of ROWS_MULTIPLE."""
        rows = self.band_rows(window, channels) + 1
        return -(-rows // ROWS_MULTIPLE) * ROWS_MULTIPLE


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


def band(weight, bias, window: Window, plan: Plan):
    """T (depth, B·O): T[(i, u, c), (x, o)] = Σ_j w[o, c, i, j]·[u = s·x + d·j], below it
    the bias row T[1, (x, o)] = b[o] (zeros without a bias), then rows of zeros."""
    xp = backends.namespace(weight)
    o, c, kh, kw = weight.shape
    t = xp.reshape(weight, (o * c * kh, kw)) @ _shift(weight, window, plan)
    t = xp.permute_dims(xp.reshape(t, (o, c, kh, plan.span, plan.block)), (2, 3, 1, 4, 0))
    t = xp.reshape(t, (kh * plan.span * c, plan.block * o))
    if bias is None:
        bias = xp.zeros((o,), dtype=t.dtype, device=t.device)
    bias_row = xp.reshape(xp.broadcast_to(bias, (plan.block, o)), (1, plan.block * o))
    zeros = xp.zeros((plan.depth(window, c) - t.shape[0] - 1, t.shape[1]), dtype=t.dtype,
                     device=t.device)
    return xp.concat([t, bias_row, zeros], axis=0)


def band_backward(d_band, window: Window, plan: Plan, weight_shape):
    """(dW (O, C, kh, kw), db (O,)) for the gradient dT of :func:`band`'s output."""
    xp = backends.namespace(d_band)
    o, c, kh, kw = weight_shape
    rows = plan.band_rows(window, c)
    dt = xp.reshape(d_band[:rows, :], (kh, plan.span, c, plan.block, o))
    dt = xp.reshape(xp.permute_dims(dt, (4, 2, 0, 1, 3)), (o * c * kh, plan.span * plan.block))
    dw = xp.reshape(dt @ xp.matrix_transpose(_shift(d_band, window, plan)), weight_shape)
    return dw, xp.sum(xp.reshape(d_band[rows, :], (plan.block, o)), axis=0)


def _windows(window: Window, plan: Plan):
    """(q, β, i, row slice, column slice) into x_p for every row group q, block β and
    kernel row i: the input rows s·(g·a' + q) + d·i for a' < OH/g."""
    (kh, _), (sh, sw), (dh, _) = window.kernel, window.stride, window.dilation
    g, count = plan.row_groups, plan.group_rows
    for q in range(g):
        for beta in range(plan.blocks):
            start = sw * plan.block * beta
            for i in range(kh):
                first = dh * i + sh * q
                yield (q, beta, i, slice(first, first + sh * g * (count - 1) + 1, sh * g),
                       slice(start, start + plan.span))


def _row_copies(window: Window, plan: Plan):
    """(q, i, length, phase, period, first_row) for each copy that builds R: row group q's
    kernel rows i … i + length − 1 for the output rows a' = period·a'' + phase.

    R's row (q, n, a', β) reads the input rows s·(g·a' + q) + d·i. Undilated, a row's kh
    kernel rows are kh consecutive rows of the block's strip, so one run of kh·L·C
    values; dilated, each kernel row is a run of its own. Rows a' ``period`` apart, with
    period·s·g ≥ the run's rows, start period·s·g strip rows apart and do not overlap,
    so the strip cut into pieces of that many rows holds them as one strided slice
    starting at ``first_row``. A copy costs mostly per run, so runs of kh·L·C values
    instead of L·C build R about 1.4× faster on LeNet-5's pooled first layer (12 copies
    of 90-value runs instead of 20 of 18-value runs; throwaway A/B); a dilated kernel
    gains nothing and pays for the strips' copy."""
    (kh, _), (sh, _), (dh, _) = window.kernel, window.stride, window.dilation
    step = sh * plan.row_groups
    runs = [(0, kh)] if dh == 1 else [(i, 1) for i in range(kh)]
    for q in range(plan.row_groups):
        for i, length in runs:
            period = -(-length // step)
            for phase in range(min(period, plan.group_rows)):
                yield q, i, length, phase, period, step * phase + sh * q + dh * i


def _strips(x, window: Window, plan: Plan, rows: int) -> list:
    """For each block β, its strip of the padded input x_p[:, :rows, s·B·β + u, :] for
    u < L (zeros where it reads padding), channels-last, as (N, rows·L·C). Each strip is
    cut from x directly rather than from :func:`pad_spatial`'s x_p, which would add a
    pass over the input whenever there are several blocks."""
    xp = backends.namespace(x)
    n, c, h, w = x.shape
    (ph, pw), sw = window.padding, window.stride[1]
    image = channels_last(x)
    strips = []
    for beta in range(plan.blocks):
        left = sw * plan.block * beta - pw                       # strip column 0 in x
        first, last = max(left, 0), min(left + plan.span, w)
        strip = xp.zeros((n, rows, plan.span, c), dtype=x.dtype, device=x.device)
        height = max(0, min(h, rows - ph))
        strip[:, ph:ph + height, first - left:last - left, :] = image[:, :height, first:last, :]
        strips.append(xp.reshape(strip, (n, rows * plan.span * c)))
    return strips


def rows_matrix(x, window: Window, plan: Plan):
    """R (N·OH·nb, depth), rows (q, n, a', β): per block its strip of x_p
    (:func:`_strips`), from which each copy of :func:`_row_copies` takes a strided
    slice, then a column of ones (the bias's) and columns of zeros."""
    xp = backends.namespace(x)
    n, c = x.shape[0], x.shape[1]
    run = plan.span * c
    width = plan.band_rows(window, c)
    step = window.stride[0] * plan.row_groups
    count = plan.group_rows
    copies = list(_row_copies(window, plan))

    def pieces(phase, period):   # a'' < ⌈(OH/g − phase)/period⌉
        return -(-(count - phase) // period)

    rows = max(first + pieces(phase, period) * period * step
               for _, _, _, phase, period, first in copies)
    depth = plan.depth(window, c)
    r = xp.empty((plan.row_groups, n, count, plan.blocks, depth), dtype=x.dtype,
                 device=x.device)
    for beta, strip in enumerate(_strips(x, window, plan, rows)):
        for q, i, length, phase, period, first in copies:
            k, piece = pieces(phase, period), period * step * run
            source = xp.reshape(strip[:, first * run:first * run + k * piece], (n, k, piece))
            r[q, :, phase::period, beta, i * run:(i + length) * run] = source[..., :length * run]
    r[..., width] = 1.0
    r[..., width + 1:] = 0.0
    return xp.reshape(r, (n * plan.out_h * plan.blocks, depth))


def toeplitz_conv2d_forward(x, weight, bias, window: Window):
    """(y, saved): y = conv(x) (N, O, OH, OW), stored channels-last in memory."""
    n, o = x.shape[0], weight.shape[0]
    plan = Plan.of(x.shape, o, window)
    r = rows_matrix(x, window, plan)
    t = band(weight, bias, window, plan)
    return output_image(r @ t, plan, n, o), (r, t, plan, tuple(x.shape))


def output_image(rows, plan: Plan, n: int, o: int):
    """y (N, O, OH, OW), a channels-last view, from output rows (N·OH·nb, B·O) (or any
    array of that size in that order); the columns the last block overhangs dropped."""
    y = backends.namespace(rows).reshape(rows, (n, plan.out_h, plan.blocks * plan.block, o))
    return channels_first(y[:, :, :plan.out_w, :])


def output_rows(grad, plan: Plan):
    """dY (N·OH·nb, B·O) from grad (N, O, OH, OW), the inverse of :func:`output_image`;
    zeros where the last block overhangs."""
    xp = backends.namespace(grad)
    g = pad_spatial(channels_last(grad), (0, 0),
                    extra=(0, plan.blocks * plan.block - plan.out_w))   # (N, OH, nb·B, O)
    n, o = grad.shape[0], grad.shape[1]
    return xp.reshape(g, (n * plan.out_h * plan.blocks, plan.block * o))


def toeplitz_conv2d_backward(saved, grad, weight, window: Window, input_grad: bool = True):
    """(dx or None, dW, db) of :func:`toeplitz_conv2d_forward` for the output gradient."""
    r, t, plan, x_shape = saved
    xp = backends.namespace(grad)
    dy = output_rows(grad, plan)
    dw, db = band_backward(xp.matrix_transpose(r) @ dy, window, plan, tuple(weight.shape))
    if not input_grad:
        return None, dw, db
    t = t[:plan.band_rows(window, x_shape[1]), :]
    return input_gradient(dy @ xp.matrix_transpose(t), window, plan, x_shape), dw, db


def input_gradient(d_rows, window: Window, plan: Plan, x_shape):
    """dx (N, C, H, W), stored channels-last, from dR = dY T₀ᵀ (N·OH·nb, kh·L·C), rows
    (q, n, a', β), summed back into the padded input: g·kh·nb strided adds."""
    xp = backends.namespace(d_rows)
    n, c, h, w = x_shape
    ph, pw = window.padding
    run = plan.span * c
    count = plan.group_rows
    dr = xp.reshape(d_rows, (plan.row_groups, n, count, plan.blocks,
                             plan.band_rows(window, c)))
    dx = xp.zeros((n, plan.padded[0], plan.padded[1], c), dtype=dr.dtype, device=dr.device)
    for q, beta, i, rows, cols in _windows(window, plan):
        dx[:, rows, cols, :] += xp.reshape(dr[q, :, :, beta, i * run:(i + 1) * run],
                                           (n, count, plan.span, c))
    return channels_first(dx[:, ph:ph + h, pw:pw + w, :])
