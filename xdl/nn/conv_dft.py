"""Stride-1 convolution through the discrete Fourier transform, all as matrix products.

Zero-padded to S_h × S_w (S = size + 2·padding), a stride-1 cross-correlation

    y[n, o, a, b] = Σ_{c, i, j} w[o, c, i, j] · x_p[n, c, a + i, b + j]

is, bin by bin of the 2-D DFT over S_h × S_w (nothing wraps around into the kept
outputs, since a + i ≤ S_h − 1),

    Ŷ[n, o, g, f] = Σ_c X̂[n, c, g, f] · conj(Ŵ[o, c, g, f]),

so each of the S_h·F bins (F = S_w//2 + 1: x is real, half the width bins suffice) is
one complex (N, C) @ (C, O) product: C·O complex multiply-adds per bin instead of
C·O·kh·kw real ones per output pixel. The transforms are products with DFT matrices
(separable: along the width, then along the height), so every step is a matmul on any
array-API backend:

    Fw[w, f] = e^{−2πi·wf/S_w}  (S_w, F)         Fh[h, g] = e^{−2πi·hg/S_h}  (S_h, S_h)
    Gh[g, a] = e^{+2πi·ga/S_h} / S_h  (S_h, OH)   Gw[f, b] = c_f·e^{+2πi·fb/S_w} / S_w  (F, OW)

with c_f = 1 at f = 0 and f = S_w/2, else 2 (the bins left out are the conjugates of
those kept). Then

    forward:  A = x_p Fw,  B = Fhᵀ A (along h),  Z = B V with V[g, f] = conj(Ŵ[g, f]) as
              (C, O),  Z[0, 0] += S_h·S_w·b,  U = Ghᵀ Z (along g),  y = Re(U Gw)
    backward: the gradient of a complex value is ∂L/∂Re + i·∂L/∂Im, so a product M·z
              passes back Mᴴ·dz and Re(·) passes back dy + 0i:
              dU = dy Gwᴴ,  dZ = conj(Gh) dU,  dV = Bᴴ dZ,  dB = dZ Vᴴ,
              dA = conj(Fh) dB,  dx_p = Re(dA Fwᴴ),  db = S_h·S_w·Σ_n Re(dZ[0, 0]),
              and dW from dV through the kernel's transform Ŵ = Fh[:kh]ᵀ (w Fw[:kw]).

The bias goes in through the (0, 0) bin, which the inverse transform spreads evenly
over the output (Gh[0, a]·Gw[0, b] = 1/(S_h·S_w)): N·O additions instead of a pass over
the output, and its gradient falls out of dZ.

:func:`dft_is_cheaper` decides when this beats im2col (5×5 kernels, or few output
channels, where im2col's window copy dominates).
"""

from __future__ import annotations

import cmath
from dataclasses import dataclass

from xdl import backends
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


@dataclass(frozen=True)
class _Transforms:
    """DFT matrices of one geometry: rows of Fw and Fh for the unpadded input (the
    padding is a phase shift, so x is never padded) and for the kernel, Gw and Gh."""

    fw_x: object   # (W, F)     Fw[pw + w, f]
    fh_x: object   # (H, S_h)   Fh[ph + h, g]
    fw_k: object   # (kw, F)    Fw[j, f]
    fh_k: object   # (kh, S_h)  Fh[i, g]
    gw: object     # (F, OW)
    gh: object     # (S_h, OH)


_cache: dict[tuple, _Transforms] = {}


def _dft_matrix(rows, columns, size: int, sign: int, scale=lambda row: 1.0):
    """[scale(r)·e^{sign·2πi·(r·k mod size)/size}] for r in rows, k in columns."""
    return [[scale(r) * cmath.exp(sign * 2j * cmath.pi * ((r * k) % size) / size)
             for k in columns] for r in rows]


def _transforms(like, x_shape, window: Window) -> _Transforms:
    """The DFT matrices for ``x_shape`` and ``window``, complex, on ``like``'s device."""
    complex_dtype = "complex128" if backends.dtype_name(like.dtype) == "float64" else "complex64"
    owner = backends.backend_of(like)
    key = (str(owner), complex_dtype, tuple(x_shape[2:]), window)
    if key not in _cache:
        (h, w), (kh, kw), (ph, pw) = x_shape[2:], window.kernel, window.padding
        s_h, s_w = h + 2 * ph, w + 2 * pw
        out_h, out_w = s_h - kh + 1, s_w - kw + 1
        bins = range(s_w // 2 + 1)

        def inverse_weight(f):  # c_f / S_w: the bins left out are conjugates of these
            return (1.0 if f == 0 or 2 * f == s_w else 2.0) / s_w

        host = {
            "fw_x": _dft_matrix(range(pw, pw + w), bins, s_w, -1),
            "fh_x": _dft_matrix(range(ph, ph + h), range(s_h), s_h, -1),
            "fw_k": _dft_matrix(range(kw), bins, s_w, -1),
            "fh_k": _dft_matrix(range(kh), range(s_h), s_h, -1),
            "gw": _dft_matrix(bins, range(out_w), s_w, 1, inverse_weight),
            "gh": _dft_matrix(range(s_h), range(out_h), s_h, 1, lambda _: 1.0 / s_h),
        }
        _cache[key] = _Transforms(**{name: owner.asarray(m, complex_dtype)
                                     for name, m in host.items()})
    return _cache[key]


def _t(m):
    return backends.namespace(m).matrix_transpose(m)


def _conj_t(m):
    return backends.namespace(m).conj(_t(m))


def kernel_transform(weight, t: _Transforms):
    """V (S_h·F, C, O): V[g·F + f, c, o] = conj(Ŵ[o, c, g, f])
    = Σ_{i, j} w[o, c, i, j]·conj(Fh[i, g])·conj(Fw[j, f]), along j, then along i."""
    xp = backends.namespace(weight)
    o, c, kh, kw = weight.shape
    taps = xp.reshape(xp.permute_dims(weight, (2, 3, 1, 0)), (kh, kw, c * o))
    rows = _conj_t(t.fw_k) @ xp.astype(taps, t.fw_k.dtype)                 # (kh, F, C·O)
    v = _conj_t(t.fh_k) @ xp.reshape(rows, (kh, -1))                        # (S_h, F·C·O)
    return xp.reshape(v, (-1, c, o))


def kernel_transform_backward(dv, t: _Transforms, weight_shape):
    """dW (O, C, kh, kw) for the gradient dV of :func:`kernel_transform`'s output."""
    xp = backends.namespace(dv)
    o, c, kh, kw = weight_shape
    f = t.fw_k.shape[1]
    drows = t.fh_k @ xp.reshape(dv, (t.fh_k.shape[1], -1))                 # (kh, F·C·O)
    dtaps = t.fw_k @ xp.reshape(drows, (kh, f, c * o))                      # (kh, kw, C·O)
    return xp.permute_dims(xp.reshape(xp.real(dtaps), (kh, kw, c, o)), (3, 2, 0, 1))


def dft_conv2d_rows(x, weight, bias, window: Window):
    """(y, saved): y = conv(x) as (OH, OW, N·O), and what :func:`dft_conv2d_rows_backward`
    needs. Each step contracts one axis with one product and leaves the next one's
    operand in place, so no intermediate is transposed."""
    xp = backends.namespace(x)
    n, c, h, w = x.shape
    o = weight.shape[0]
    t = _transforms(x, x.shape, window)
    f, s_h = t.fw_x.shape[1], t.fh_x.shape[1]
    rows = xp.astype(xp.reshape(x, (n * c * h, w)), t.fw_x.dtype)
    a = _t(t.fw_x) @ _t(rows)                                                  # (F, N·C·H)
    b = _t(t.fh_x) @ _t(xp.reshape(a, (f * n * c, h)))                         # (S_h, F·N·C)
    b = xp.reshape(b, (s_h * f, n, c))
    v = kernel_transform(weight, t)
    z = xp.reshape(b @ v, (s_h, f, n * o))                                     # (S_h, F, N·O)
    if bias is not None:
        z[0, 0, :] = z[0, 0, :] + _dc_bias(bias, n, s_h * (w + 2 * window.padding[1]))
    q = _t(t.gw) @ z                                                           # (S_h, OW, N·O)
    y = xp.real(_t(t.gh) @ xp.reshape(q, (s_h, -1)))                           # (OH, OW·N·O)
    return xp.reshape(y, (t.gh.shape[1], t.gw.shape[1], n * o)), (b, v, tuple(x.shape))


def dft_conv2d_forward(x, weight, bias, window: Window):
    """(y, saved): y = conv(x) (N, O, OH, OW), stored (OH, OW, N, O) in memory, and what
    :func:`dft_conv2d_backward` needs."""
    xp = backends.namespace(x)
    y, saved = dft_conv2d_rows(x, weight, bias, window)
    y = xp.reshape(y, (y.shape[0], y.shape[1], x.shape[0], weight.shape[0]))
    return xp.permute_dims(y, (2, 3, 0, 1)), saved


def _dc_bias(bias, n: int, bins: int):
    """What adding b to every output pixel adds to the (0, 0) bin of Ẑ for each image:
    S_h·S_w·b (the inverse transform spreads that bin evenly: Gh[0, a]·Gw[0, b] =
    1/(S_h·S_w)), as (N·O,)."""
    xp = backends.namespace(bias)
    return xp.reshape(xp.broadcast_to(bias * float(bins), (n, bias.shape[0])), (-1,))


def dft_conv2d_backward(saved, grad, weight, window: Window, input_grad: bool = True):
    """(dx or None, dW, db) of :func:`dft_conv2d_forward` for the output gradient."""
    xp = backends.namespace(grad)
    dy = xp.reshape(xp.permute_dims(grad, (2, 3, 0, 1)), (grad.shape[2], grad.shape[3], -1))
    return dft_conv2d_rows_backward(saved, dy, weight, window, input_grad)


def dft_conv2d_rows_backward(saved, dy, weight, window: Window, input_grad: bool = True):
    """(dx or None, dW, db) of :func:`dft_conv2d_rows` for the gradient dy (OH, OW, N·O)
    of its output; dx is (N, C, H, W), stored (H, W, N, C) in memory."""
    b, v, x_shape = saved
    xp = backends.namespace(dy)
    n, c, h, w = x_shape
    o, (out_h, out_w) = weight.shape[0], dy.shape[:2]
    t = _transforms(dy, x_shape, window)
    f, s_h = t.fw_x.shape[1], t.fh_x.shape[1]
    dy = xp.astype(xp.reshape(dy, (out_h, -1)), t.gh.dtype)
    dq = xp.conj(t.gh) @ dy                                                   # (S_h, OW·N·O)
    dz = xp.conj(t.gw) @ xp.reshape(dq, (s_h, out_w, n * o))                  # (S_h, F, N·O)
    dz = xp.reshape(dz, (s_h * f, n, o))
    dw = kernel_transform_backward(_conj_t(b) @ dz, t, tuple(weight.shape))
    db = xp.sum(xp.real(dz[0, ...]), axis=0) * float(s_h * (w + 2 * window.padding[1]))
    if not input_grad:
        return None, dw, db
    db_bins = xp.reshape(dz @ _conj_t(v), (s_h, f * n * c))                   # (S_h, F·N·C)
    da = xp.conj(t.fh_x) @ db_bins                                            # (H, F·N·C)
    dx = xp.conj(t.fw_x) @ xp.reshape(da, (h, f, n * c))                      # (H, W, N·C)
    dx = xp.reshape(xp.real(dx), (h, w, n, c))
    return xp.permute_dims(dx, (2, 3, 0, 1)), dw, db
