"""Conv2d → ReLU → MaxPool2d run as one computation on the Toeplitz product.

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
    dT_j = Rᵀ dY_j → dW,  dR = Σ_j dY_j T_jᵀ → dx   (as in the Toeplitz path)

:class:`ConvReLUPool` is the stage :class:`~xdl.nn.module.Sequential` runs in place
of the three layers when :func:`fuse` accepts them.
"""

from __future__ import annotations

from dataclasses import replace

from xdl import backends
from xdl.nn.activation import ReLU
from xdl.nn.conv import Conv2d, accumulate_parameter_grads, param_data
from xdl.nn.conv_toeplitz import Plan, band, band_backward, input_gradient, rows_matrix
from xdl.nn.functional import pad_spatial
from xdl.nn.module import is_grad_enabled, register_fusion
from xdl.nn.pooling import MaxPool2d, max_scan, max_scan_backward


def pool_bands(t, out_channels: int, plan: Plan, kw: int) -> list:
    """T (·, O·B), columns (o, x) → the kw bands T_j (·, B/kw·O), columns (x', o) with
    x = kw·x' + j."""
    xp = backends.namespace(t)
    t = xp.reshape(t, (t.shape[0], out_channels, plan.block // kw, kw))
    return [xp.reshape(xp.permute_dims(t[..., j], (0, 2, 1)), (t.shape[0], -1))
            for j in range(kw)]


def pool_bands_backward(d_bands, out_channels: int, plan: Plan):
    """dT (·, O·B), columns (o, x), from the gradients dT_j of :func:`pool_bands`."""
    xp = backends.namespace(d_bands[0])
    rows, kw = d_bands[0].shape[0], len(d_bands)
    dt = xp.stack([xp.reshape(d, (rows, plan.block // kw, out_channels)) for d in d_bands],
                  axis=-1)                                        # (·, B', O, kw)
    return xp.reshape(xp.permute_dims(dt, (0, 2, 1, 3)), (rows, out_channels * plan.block))


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
    m, width_beats = max_scan([r @ t_j for t_j in bands], track)   # (N·OH·nb, B'·O)
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
    n, o = x_shape[0], weight.shape[0]
    kh = pool_kernel[0]
    dz = _output_gradient(grad, tuple(z.shape))
    dp = dz * xp.astype(z > 0.0, dz.dtype)
    db = xp.sum(xp.reshape(xp.sum(xp.reshape(dp, (-1, z.shape[2])), axis=0), (-1, o)), axis=0)
    dm = xp.empty((n, z.shape[1], kh, z.shape[2]), dtype=grad.dtype, device=grad.device)
    for i, part in enumerate(max_scan_backward(dp, height_beats)):
        dm[:, :, i, :] = part
    dys = max_scan_backward(xp.reshape(dm, (-1, z.shape[2] // plan.blocks)), width_beats)
    r_t = xp.matrix_transpose(r)
    d_band = pool_bands_backward([r_t @ dy for dy in dys], o, plan)
    dw = band_backward(d_band, window, plan, tuple(weight.shape))
    if not input_grad:
        return None, dw, db
    d_rows = dys[0] @ xp.matrix_transpose(bands[0])
    for dy, t_j in zip(dys[1:], bands[1:]):
        d_rows = d_rows + dy @ xp.matrix_transpose(t_j)
    return input_gradient(d_rows, window, plan, x_shape), dw, db


class ConvReLUPool:
    """The stage that runs a Conv2d, a ReLU and a tiling MaxPool2d as one (see the
    module docstring); the three modules keep their parameters and state_dict names.

    The gradients are accumulated into the Conv2d's parameters; the three modules
    themselves save nothing, so backward goes through the Sequential that ran it.
    """

    def __init__(self, conv: Conv2d, relu: ReLU, pool: MaxPool2d):
        self.layers = (conv, relu, pool)
        self.conv, self.pool = conv, pool
        self.saved = None

    def __call__(self, x):
        """The three layers' output; their own saved states are cleared, since the
        stage holds what backward needs."""
        conv = self.conv
        conv.restore_saved_states([(layer, None) for layer in self.layers])
        y, self.saved = conv_relu_pool_forward(x, conv.weight.data, param_data(conv.bias),
                                               conv.window, self.pool.window.kernel)
        return y

    def _backward(self, grad, input_grad: bool):
        if self.saved is None:
            raise RuntimeError("Conv2d → ReLU → MaxPool2d: backward called without a "
                               "forward pass to differentiate (it ran under no_grad())")
        dx, dw, db = conv_relu_pool_backward(self.saved, grad, self.conv.weight.data,
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
    that takes the Toeplitz path, a ReLU and a MaxPool2d whose windows tile the
    convolution's output; else None."""
    if len(layers) < 3 or x.ndim != 4:
        return None
    conv, relu, pool = layers[:3]
    if not (type(conv) is Conv2d and type(relu) is ReLU and type(pool) is MaxPool2d):
        return None
    if x.shape[1] != conv.in_channels or conv.algorithm_for(tuple(x.shape)) != "toeplitz":
        return None
    out_size = conv.window.output_size(x.shape[2], x.shape[3])
    if min(out_size) < 1 or not _pool_tiles(pool, out_size):
        return None
    return ConvReLUPool(conv, relu, pool)


register_fusion(fuse)
