"""The DFT convolution of :mod:`xdl.nn.conv_dft` in complex arithmetic.

With x in rows (c, n, h), each step contracts one axis with one product and leaves the
next one's operand in place, so no intermediate is transposed:

    A = Fwᵀ x                  (F, C·N·H)        x cast to complex
    B = Fhᵀ A  (along h)       (S_h·F, C, N)     X̂ per bin
    Z = Vᵀ B   per bin         (S_h·F, O, N)     Vᵀ[o, c] = conj(Ŵ[o, c, g, f])
    Z[0, 0] += S_h·S_w·b
    Q = Gwᵀ Z  (along f)       (S_h, OW, O·N)
    y = Re(Ghᵀ Q) (along g)    (OH, OW·O·N)

Backward: the gradient of a complex value is ∂L/∂Re + i·∂L/∂Im, so a product M·z
passes back Mᴴ·dz and Re(·) passes back dy + 0i:

    dQ = conj(Gh) dy,  dZ = conj(Gw) dQ,  dVᵀ = dZ Bᴴ,  dB = Vᵀᴴ dZ,
    dA = conj(Fh) dB,  dx = Re(conj(Fw) dA),  db = S_h·S_w·Σ_n Re(dZ[0, 0]),

and dW from dVᵀ through the kernel's transform, the same two products transposed.
"""

from __future__ import annotations

from xdl import backends
from xdl.nn.conv_dft_matrices import bias_scale, cached_matrices
from xdl.nn.functional import Window

_cache: dict[tuple, dict] = {}


def _matrices(like, x_shape, window: Window) -> dict:
    """fw (W, F), fh (H, S_h), fw_k (kw, F), fh_k (kh, S_h), gw (F, OW), gh (S_h, OH),
    complex, on ``like``'s device."""
    dtype = "complex128" if backends.dtype_name(like.dtype) == "float64" else "complex64"
    return cached_matrices(_cache, like, x_shape, window, lambda m: m, dtype)


def _t(m):
    return backends.namespace(m).matrix_transpose(m)


def kernel_transform(weight, m: dict):
    """Vᵀ (S_h·F, O, C): Vᵀ[g·F + f, o, c] = conj(Ŵ[o, c, g, f])
    = Σ_{i, j} w[o, c, i, j]·conj(Fh[i, g])·conj(Fw[j, f]), along j, then along i."""
    xp = backends.namespace(weight)
    o, c, kh, kw = weight.shape
    taps = xp.reshape(xp.permute_dims(weight, (2, 3, 0, 1)), (kh, kw, o * c))
    rows = xp.conj(_t(m["fw_k"])) @ xp.astype(taps, m["fw_k"].dtype)          # (kh, F, O·C)
    v = xp.conj(_t(m["fh_k"])) @ xp.reshape(rows, (kh, -1))                    # (S_h, F·O·C)
    return xp.reshape(v, (-1, o, c))


def kernel_transform_backward(dv, m: dict, weight_shape):
    """dW (O, C, kh, kw) for the gradient dVᵀ of :func:`kernel_transform`'s output."""
    xp = backends.namespace(dv)
    o, c, kh, kw = weight_shape
    f = m["fw_k"].shape[1]
    drows = m["fh_k"] @ xp.reshape(dv, (m["fh_k"].shape[1], -1))             # (kh, F·O·C)
    dtaps = m["fw_k"] @ xp.reshape(drows, (kh, f, o * c))                      # (kh, kw, O·C)
    return xp.permute_dims(xp.reshape(xp.real(dtaps), (kh, kw, o, c)), (2, 3, 0, 1))


def forward(x, weight, bias, window: Window):
    """(y (OH, OW, O·N), saved) of the convolution."""
    xp = backends.namespace(x)
    n, c, h, w = x.shape
    o = weight.shape[0]
    m = _matrices(x, x.shape, window)
    f, s_h = m["fw"].shape[1], m["fh"].shape[1]
    rows = xp.reshape(xp.permute_dims(x, (1, 0, 2, 3)), (c * n * h, w))
    a = _t(m["fw"]) @ _t(xp.astype(rows, m["fw"].dtype))                      # (F, C·N·H)
    b = _t(m["fh"]) @ _t(xp.reshape(a, (-1, h)))                               # (S_h, F·C·N)
    b = xp.reshape(b, (s_h * f, c, n))
    v = kernel_transform(weight, m)
    z = v @ b                                                                  # (S_h·F, O, N)
    if bias is not None:
        z[0, ...] = z[0, ...] + xp.reshape(bias, (o, 1)) * bias_scale(x.shape, window)
    q = _t(m["gw"]) @ xp.reshape(z, (s_h, f, o * n))                           # (S_h, OW, O·N)
    y = xp.real(_t(m["gh"]) @ xp.reshape(q, (s_h, -1)))                        # (OH, OW·O·N)
    return xp.reshape(y, (m["gh"].shape[1], m["gw"].shape[1], o * n)), (b, v, tuple(x.shape))


def backward(saved, dy, weight, window: Window, input_grad: bool = True):
    """(dx or None, dW, db) for the gradient dy (OH, OW, O·N) of :func:`forward`'s
    output; dx is (N, C, H, W), stored (H, W, C, N)."""
    b, v, x_shape = saved
    xp = backends.namespace(dy)
    n, c, h, w = x_shape
    o, out_h, out_w = weight.shape[0], dy.shape[0], dy.shape[1]
    m = _matrices(dy, x_shape, window)
    f, s_h = m["fw"].shape[1], m["fh"].shape[1]
    dy = xp.astype(xp.reshape(dy, (out_h, -1)), m["gh"].dtype)
    dq = xp.conj(m["gh"]) @ dy                                                 # (S_h, OW·O·N)
    dz = xp.conj(m["gw"]) @ xp.reshape(dq, (s_h, out_w, o * n))                # (S_h, F, O·N)
    dz = xp.reshape(dz, (s_h * f, o, n))
    dw = kernel_transform_backward(dz @ xp.conj(_t(b)), m, tuple(weight.shape))
    db = xp.sum(xp.real(dz[0, ...]), axis=1) * bias_scale(x_shape, window)
    if not input_grad:
        return None, dw, db
    d_b = xp.reshape(xp.conj(_t(v)) @ dz, (s_h, -1))                           # (S_h, F·C·N)
    da = xp.conj(m["fh"]) @ d_b                                                # (H, F·C·N)
    dx = xp.conj(m["fw"]) @ xp.reshape(da, (h, f, c * n))                      # (H, W, C·N)
    return xp.permute_dims(xp.reshape(xp.real(dx), (h, w, c, n)), (3, 2, 0, 1)), dw, db
