"""Conv2d → ReLU → MaxPool2d run as one computation on the Toeplitz product, and the
stage that Sequential runs for the three layers on the Toeplitz and DFT paths.

The Toeplitz path (:mod:`xdl.nn.conv_toeplitz`) computes the convolution and its bias
as one product Y = R T with rows (n, a, β) (image, output row, block) and columns
(x, o) (column in the block, channel). When a max pool whose kh×kw windows tile the
output follows (kernel = stride), its windows read kw neighbouring columns of a block
and kh neighbouring rows a. Split T by column position j = x mod kw into kw bands T_j,
columns (x', o) with x = kw·x' + j, and order R's rows (i, n, a', β), a = kh·a' + i
(the plan's row groups); then both passes of :class:`~xdl.nn.pooling.MaxPool2d` are
scans over dense arrays (the bands' products, then the kh contiguous row groups), and
the ReLU runs on the pooled (kh·kw times smaller) array:

    Y_j = R T_j                     (N·OH·nb, B/kw·O)   for j < kw
    M = max_j Y_j                   masks b_w            (width pass)
    P = max_i M[(i, ·)]             (N·OH/kh·nb, B/kw·O)   masks b_h   (height pass)
    z = max(P, 0)  = y (N, O, OH/kh, OW/kw), stored channels-last

This equals ReLU and pooling after the convolution: max commutes with ReLU (both
non-decreasing, also in rounded arithmetic), and the gradient goes to each window's
first maximum, as MaxPool2d's does.

Backward, with dz the output gradient in z's layout: dP = dz·[z > 0], dM's row groups
(i, ·) ← dP routed by b_h, and dY_j = dM·[j wins] for j ≥ 1, dY_0 = dM − Σ_j dY_j
(b_w). dY_0 is never formed: the products are linear in it, so

    dT_j = Rᵀ dY_j (j ≥ 1),   dT_0 = Rᵀ dM − Σ_{j≥1} dT_j     → dW, db
    dR = dM T_0ᵀ + Σ_{j≥1} dY_j (T_j − T_0)ᵀ                  → dx

(no pass over the kw-times larger dY). The bands are separate products: one product
over all of T, columns ordered (j, x', o), runs faster (LeNet-5's first layer: about
310 against 2 × 190 µs), but NumPy then scans and writes its column blocks as strided
views, a row at a time, and the stage took longer overall (throwaway in-process A/B:
forward 719 against 683 µs, backward 832 against 719).

:class:`ConvReLUPool` is the stage :class:`~xdl.nn.module.Sequential` runs in place
of the three layers when :func:`fuse` accepts them; on the DFT path it runs
:mod:`xdl.nn.conv_dft_relu_pool` instead.
"""

from __future__ import annotations

from dataclasses import replace

from xdl import backends
from xdl.nn.activation import ReLU, relu
from xdl.nn.conv import Conv2d, accumulate_parameter_grads, param_data
from xdl.nn.conv_dft import IM2COL_COPY_COST
from xdl.nn.conv_dft_relu_pool import dft_relu_pool_backward, dft_relu_pool_forward
from xdl.nn.conv_toeplitz import (
    Plan,
    band,
    band_backward,
    estimated_costs,
    input_gradient,
    output_image,
    output_rows,
    rows_matrix,
    toeplitz_applies,
)
from xdl.nn.module import is_grad_enabled, register_fusion
from xdl.nn.pooling import MaxPool2d, max_scan, max_scan_backward


def pool_bands(t, plan: Plan, kw: int) -> list:
    """[T_0, …, T_{kw−1}] of T (·, B·O), columns (x, o): the bands (·, B/kw·O), columns
    (x', o) with x = kw·x' + j."""
    xp = backends.namespace(t)
    rows, o = t.shape[0], t.shape[1] // plan.block
    t = xp.reshape(t, (rows, plan.block // kw, kw, o))
    return [xp.reshape(t[:, :, j, :], (rows, plan.block // kw * o)) for j in range(kw)]


def pool_bands_backward(d_bands: list, plan: Plan):
    """dT (·, B·O), columns (x, o), from the gradients of :func:`pool_bands`'s bands."""
    xp = backends.namespace(d_bands[0])
    rows, kw = d_bands[0].shape[0], len(d_bands)
    o = d_bands[0].shape[1] // (plan.block // kw)
    dt = xp.stack([xp.reshape(d, (rows, plan.block // kw, o)) for d in d_bands], axis=2)
    return xp.reshape(dt, (rows, plan.block * o))


def pooled_plan(plan: Plan, pool_kernel) -> Plan:
    """The geometry of the pooled output in the same blocks: OH/kh rows, B/kw columns,
    rows (n, a', β)."""
    kh, kw = pool_kernel
    return replace(plan, out_h=plan.out_h // kh, out_w=plan.out_w // kw,
                   block=plan.block // kw, row_groups=1)


def conv_relu_pool_forward(x, weight, bias, window, pool_kernel):
    """(y, saved): y = maxpool(relu(conv(x))) (N, O, OH/kh, OW/kw), stored channels-last
    in memory; ``saved`` is None under no_grad."""
    n, o = x.shape[0], weight.shape[0]
    kh, kw = pool_kernel
    plan = Plan.of(x.shape, o, window, block_multiple=kw, row_groups=kh)
    pooled = pooled_plan(plan, pool_kernel)
    track = is_grad_enabled()
    r = rows_matrix(x, window, plan)
    bands = pool_bands(band(weight, bias, window, plan), plan, kw)
    m, width_beats = max_scan([r @ t_j for t_j in bands], track)     # (N·OH·nb, B'·O)
    group = m.shape[0] // kh
    p, height_beats = max_scan([m[i * group:(i + 1) * group, :] for i in range(kh)], track)
    z = relu(p)                                                       # (N·OH'·nb, B'·O)
    saved = (r, bands, plan, tuple(x.shape), width_beats, height_beats, z) if track else None
    return output_image(z, pooled, n, o), saved


def conv_relu_pool_backward(saved, grad, weight, window, pool_kernel, input_grad=True):
    """(dx or None, dW, db) of :func:`conv_relu_pool_forward` for the output gradient."""
    r, bands, plan, x_shape, width_beats, height_beats, z = saved
    xp = backends.namespace(grad)
    pooled = pooled_plan(plan, pool_kernel)
    dz = output_rows(grad, pooled)                                # (N·OH'·nb, B'·O)
    dp = dz * xp.astype(z > 0.0, dz.dtype)
    dm = xp.concat(max_scan_backward(dp, height_beats), axis=0)   # (N·OH·nb, B'·O)
    d_wins = max_scan_backward(dm, width_beats, first=False)      # dY_j, j ≥ 1
    r_t = xp.matrix_transpose(r)
    d_bands = [r_t @ d for d in d_wins]
    d_first = r_t @ dm
    for d in d_bands:
        d_first = d_first - d
    dw, db = band_backward(pool_bands_backward([d_first, *d_bands], plan), window, plan,
                           tuple(weight.shape))
    if not input_grad:
        return None, dw, db
    rows = plan.band_rows(window, x_shape[1])
    first = bands[0][:rows, :]
    d_rows = dm @ xp.matrix_transpose(first)
    for d, t_j in zip(d_wins, bands[1:]):
        d_rows = d_rows + d @ xp.matrix_transpose(t_j[:rows, :] - first)
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


#: Passes over the convolution's output that the fused stage saves against an im2col
#: Conv2d, a ReLU and a MaxPool2d run one by one: ReLU's forward and backward run on the
#: pooled array, and pooling's scan dense bands instead of strided windows. A pass costs
#: about one copied value (IM2COL_COPY_COST multiply-adds). Fitted with
#: benchmarks/fused_stage.py (forward + backward, 2×2 pool, 2 threads; the passes the
#: rule needs to fuse in brackets): the fused stage took 0.52–0.63 of the time of the
#: layers one by one with 1 or 3 input channels (−1.9 to 1.7), 0.80 and 0.88 for 6 and 8
#: → 32 at 3×3 (3.4, 4.5), 0.98 for 12 → 32 (6.8) and 1.12 for 16 → 32 (9.0).
FUSION_SAVED_PASSES = 6


def fused_toeplitz_is_cheaper(x_shape, conv: Conv2d, pool_kernel) -> bool:
    """Whether the fused stage on the Toeplitz path is estimated to cost less than the
    im2col convolution, the ReLU and the pool one by one: its product and R's copies
    (``conv_toeplitz.estimated_costs``' "toeplitz-pooled") against im2col's plus
    FUSION_SAVED_PASSES passes over the O output values of a pixel."""
    if not toeplitz_applies(conv.groups):
        return False
    costs = estimated_costs(x_shape, conv.out_channels, conv.window,
                            block_multiple=pool_kernel[1])
    saved = conv.out_channels * FUSION_SAVED_PASSES * IM2COL_COPY_COST
    return costs["toeplitz-pooled"] <= costs["im2col"] + saved


def _pool_tiles(pool, out_size) -> bool:
    """Whether ``pool``'s windows tile an (OH, OW) output exactly (kernel = stride, no
    padding or dilation, the sizes divisible by the kernel)."""
    w = pool.window
    return (w.stride == w.kernel and w.padding == (0, 0) and w.dilation == (1, 1)
            and all(size % k == 0 for size, k in zip(out_size, w.kernel)))


def fuse(layers, x):
    """A :class:`ConvReLUPool` for ``layers[:3]`` on input ``x`` when they are a Conv2d
    that takes a path of FUSED_PATHS, a ReLU and a MaxPool2d whose windows tile the
    convolution's output; else None. A Conv2d whose ``auto`` takes im2col is fused on
    the Toeplitz path where :func:`fused_toeplitz_is_cheaper`."""
    if len(layers) < 3 or x.ndim != 4:
        return None
    conv, relu, pool = layers[:3]
    if not (type(conv) is Conv2d and type(relu) is ReLU and type(pool) is MaxPool2d):
        return None
    if x.shape[1] != conv.in_channels:
        return None
    out_size = conv.window.output_size(x.shape[2], x.shape[3])
    if min(out_size) < 1 or not _pool_tiles(pool, out_size):
        return None
    algorithm = conv.algorithm_for(tuple(x.shape))
    if (algorithm == "im2col" and conv.algorithm == "auto"
            and fused_toeplitz_is_cheaper(tuple(x.shape), conv, pool.window.kernel)):
        algorithm = "toeplitz"
    if algorithm not in FUSED_PATHS:
        return None
    return ConvReLUPool(conv, relu, pool, algorithm)


register_fusion(fuse)
