"""Conv2d → ReLU → MaxPool2d run as one computation on the Toeplitz product, and the
stage that Sequential runs for the three layers on the Toeplitz and DFT paths.

The Toeplitz path (:mod:`xdl.nn.conv_toeplitz`) computes the convolution as one
product Y = R T with rows (n, a, β) (image, output row, block) and columns (o, x)
(channel, column in the block). When a max pool whose kh×kw windows tile the output
follows (kernel = stride), its windows read kw neighbouring columns of a block and
kh neighbouring rows a. Split T by column position j = x mod kw into kw bands T_j,
columns (x', o) with x = kw·x' + j, and read the rows as (n, a', i, β), a = kh·a' + i;
then both passes of :class:`~xdl.nn.pooling.MaxPool2d` are scans over dense arrays,
and the bias and the ReLU run on the pooled (kh·kw times smaller) array:

    Y_j = R T_j                     (N·OH·nb, B/kw·O)   for j < kw
    M = max_j Y_j                   masks b_w            (width pass)
    P = max_i M[(n, a', i, β)]      (N, OH/kh, nb·B/kw, O)  masks b_h   (height pass)
    z = max(P + b, 0)  = y (N, O, OH/kh, OW/kw), stored channels-last

This equals ReLU and pooling after the convolution: max commutes with adding a
per-channel constant and with ReLU (both non-decreasing, also in rounded arithmetic).
The gradient goes to each window's first maximum of the values before the bias, which
is the first maximum after it unless adding b rounds two different values to one.

Backward, with dz the output gradient in z's layout:

    dP = dz·[z > 0],  db = Σ dP
    dM rows (n, a', i, β) ← dP routed by b_h;  dY_j ← dM routed by b_w
    dT = Rᵀ [dY_0 | … | dY_{kw−1}] → dW,  dR = [dY_0 | …] [T_0 | …]ᵀ → dx

(one product over the bands side by side: BLAS runs it faster than kw narrower ones).

:class:`ConvReLUPool` is the stage :class:`~xdl.nn.module.Sequential` runs in place
of the three layers when :func:`fuse` accepts them; on the DFT path it runs
:mod:`xdl.nn.conv_dft_relu_pool` instead.
"""

from __future__ import annotations

from dataclasses import replace

from xdl import backends
from xdl.nn.activation import ReLU
from xdl.nn.conv import Conv2d, accumulate_parameter_grads, param_data
from xdl.nn.conv_dft_relu_pool import dft_relu_pool_backward, dft_relu_pool_forward
from xdl.nn.conv_toeplitz import Plan, band, band_backward, input_gradient, rows_matrix
from xdl.nn.functional import pad_spatial
from xdl.nn.module import is_grad_enabled, register_fusion
from xdl.nn.pooling import MaxPool2d, max_scan, max_scan_backward


def pool_bands(t, out_channels: int, plan: Plan, kw: int):
    """T (·, O·B), columns (o, x) → [T_0 | … | T_{kw−1}] (·, O·B): the bands T_j
    (·, B/kw·O), columns (x', o) with x = kw·x' + j, side by side."""
    xp = backends.namespace(t)
    t = xp.reshape(t, (t.shape[0], out_channels, plan.block // kw, kw))
    return xp.reshape(xp.permute_dims(t, (0, 3, 2, 1)), (t.shape[0], -1))


def pool_bands_backward(d_bands, out_channels: int, plan: Plan, kw: int):
    """dT (·, O·B), columns (o, x), from the gradient of :func:`pool_bands`'s output."""
    xp = backends.namespace(d_bands)
    rows = d_bands.shape[0]
    dt = xp.reshape(d_bands, (rows, kw, plan.block // kw, out_channels))
    return xp.reshape(xp.permute_dims(dt, (0, 3, 2, 1)), (rows, out_channels * plan.block))


def pooled_plan(plan: Plan, pool_kernel) -> Plan:
    """The geometry of the pooled output in the same blocks: OH/kh rows, B/kw columns."""
    kh, kw = pool_kernel
    return replace(plan, out_h=plan.out_h // kh, out_w=plan.out_w // kw,
                   block=plan.block // kw)


def _tiled_bias(bias, columns: int):
    """b[o] at every column (x', o) of a row of ``columns`` values."""
    xp = backends.namespace(bias)
    o = bias.shape[0]
    return xp.reshape(xp.broadcast_to(bias, (columns // o, o)), (columns,))


def conv_relu_pool_forward(x, weight, bias, window, pool_kernel):
    """(y, saved): y = maxpool(relu(conv(x))) (N, O, OH/kh, OW/kw), stored channels-last
    in memory; ``saved`` is None under no_grad."""
    xp = backends.namespace(x)
    n, o = x.shape[0], weight.shape[0]
    kh, kw = pool_kernel
    plan = Plan.of(x.shape, o, window, block_multiple=kw)
    pooled = pooled_plan(plan, pool_kernel)
    track = is_grad_enabled()
    r = rows_matrix(x, window, plan)
    bands = pool_bands(band(weight, window, plan), o, plan, kw)
    width = bands.shape[1] // kw
    m, width_beats = max_scan([r @ bands[:, j * width:(j + 1) * width] for j in range(kw)],
                              track)                              # (N·OH·nb, B'·O)
    m = xp.reshape(m, (n, pooled.out_h, kh, -1))
    p, height_beats = max_scan([m[:, :, i, :] for i in range(kh)], track)
    if bias is not None:
        p = p + _tiled_bias(bias, p.shape[-1])
    z = xp.maximum(p, 0.0)                                        # (N, OH', nb·B'·O)
    y = xp.reshape(z, (n, pooled.out_h, plan.blocks * pooled.block, o))[:, :, :pooled.out_w, :]
    saved = (r, bands, plan, tuple(x.shape), width_beats, height_beats, z) if track else None
    return xp.permute_dims(y, (0, 3, 1, 2)), saved


def _output_gradient(grad, z_shape):
    """dz in z's layout (N, OH', nb·B'·O) from grad (N, O, OH', OW'); zeros where the
    last block overhangs."""
    xp = backends.namespace(grad)
    g = xp.permute_dims(grad, (0, 2, 3, 1))                       # (N, OH', OW', O)
    overhang = z_shape[-1] // g.shape[3] - g.shape[2]
    return xp.reshape(pad_spatial(g, (0, 0), extra=(0, overhang)), z_shape)


def conv_relu_pool_backward(saved, grad, weight, window, pool_kernel, input_grad=True):
    """(dx or None, dW, db) of :func:`conv_relu_pool_forward` for the output gradient."""
    r, bands, plan, x_shape, width_beats, height_beats, z = saved
    xp = backends.namespace(grad)
    o = weight.shape[0]
    dz = _output_gradient(grad, tuple(z.shape))
    dp = dz * xp.astype(z > 0.0, dz.dtype)
    db = xp.sum(xp.reshape(xp.sum(xp.reshape(dp, (-1, z.shape[2])), axis=0), (-1, o)), axis=0)
    dm = xp.stack(max_scan_backward(dp, height_beats), axis=2)   # (N, OH', kh, nb·B'·O)
    dm = xp.reshape(dm, (-1, z.shape[2] // plan.blocks))
    dy = xp.stack(max_scan_backward(dm, width_beats), axis=1)     # (N·OH·nb, kw, B'·O)
    dy = xp.reshape(dy, (dm.shape[0], -1))
    d_band = pool_bands_backward(xp.matrix_transpose(r) @ dy, o, plan, pool_kernel[1])
    dw = band_backward(d_band, window, plan, tuple(weight.shape))
    if not input_grad:
        return None, dw, db
    d_rows = dy @ xp.matrix_transpose(bands)
    return input_gradient(d_rows, window, plan, x_shape), dw, db


#: The fused computation, (forward, backward), for each convolution algorithm it covers.
FUSED_PATHS = {
    "toeplitz": (conv_relu_pool_forward, conv_relu_pool_backward),
    "dft": (dft_relu_pool_forward, dft_relu_pool_backward),
}


class ConvReLUPool:
    """The stage that runs a Conv2d, a ReLU and a tiling MaxPool2d as one (see the
    module docstring) on the convolution's ``algorithm`` (a key of FUSED_PATHS); the
    three modules keep their parameters and state_dict names.

    The gradients are accumulated into the Conv2d's parameters; the three modules
    themselves save nothing, so backward goes through the Sequential that ran it.
    """

    def __init__(self, conv: Conv2d, relu: ReLU, pool: MaxPool2d, algorithm: str = "toeplitz"):
        self.layers = (conv, relu, pool)
        self.conv, self.pool = conv, pool
        self.algorithm = algorithm
        self._forward, self._backward_pass = FUSED_PATHS[algorithm]
        self.saved = None

    def __call__(self, x):
        """The three layers' output; their own saved states are cleared, since the
        stage holds what backward needs."""
        conv = self.conv
        conv.restore_saved_states([(layer, None) for layer in self.layers])
        y, self.saved = self._forward(x, conv.weight.data, param_data(conv.bias),
                                      conv.window, self.pool.window.kernel)
        return y

    def _backward(self, grad, input_grad: bool):
        if self.saved is None:
            raise RuntimeError("Conv2d → ReLU → MaxPool2d: backward called without a "
                               "forward pass to differentiate (it ran under no_grad())")
        dx, dw, db = self._backward_pass(self.saved, grad, self.conv.weight.data,
                                         self.conv.window, self.pool.window.kernel,
                                         input_grad)
        accumulate_parameter_grads(self.conv, dw, db)
        return dx

    def backward(self, grad):
        return self._backward(grad, True)

    def backward_params(self, grad) -> None:
        self._backward(grad, False)


def _pool_tiles(pool, out_size) -> bool:
    """Whether ``pool``'s windows tile an (OH, OW) output exactly (kernel = stride, no
    padding or dilation, the sizes divisible by the kernel)."""
    w = pool.window
    return (w.stride == w.kernel and w.padding == (0, 0) and w.dilation == (1, 1)
            and all(size % k == 0 for size, k in zip(out_size, w.kernel)))


def fuse(layers, x):
    """A :class:`ConvReLUPool` for ``layers[:3]`` on input ``x`` when they are a Conv2d
    that takes a path of FUSED_PATHS, a ReLU and a MaxPool2d whose windows tile the
    convolution's output; else None."""
    if len(layers) < 3 or x.ndim != 4:
        return None
    conv, relu, pool = layers[:3]
    if not (type(conv) is Conv2d and type(relu) is ReLU and type(pool) is MaxPool2d):
        return None
    if x.shape[1] != conv.in_channels:
        return None
    algorithm = conv.algorithm_for(tuple(x.shape))
    out_size = conv.window.output_size(x.shape[2], x.shape[3])
    if algorithm not in FUSED_PATHS or min(out_size) < 1 or not _pool_tiles(pool, out_size):
        return None
    return ConvReLUPool(conv, relu, pool, algorithm)


register_fusion(fuse)
