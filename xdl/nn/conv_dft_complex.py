"""The DFT convolution of :mod:`xdl.nn.conv_dft` in complex arithmetic.

With x in rows (n, c, h), each step contracts one axis with one product and leaves the
next one's operand in place, so no intermediate is transposed:

    A = Fwᵀ x                  (F, N·C·H)        x cast to complex
    B = Fhᵀ A  (along h)       (S_h·F, N, C)     X̂ per bin
    Z = B V    per bin         (S_h·F, N, O)     V[c, o] = conj(Ŵ[o, c, g, f])
    Z[0, 0] += S_h·S_w·b
    Q = Gwᵀ Z  (along f)       (S_h, OW, N·O)
    y = Re(Ghᵀ Q) (along g)    (OH, OW·N·O)      stored (OH, OW, N, O): channels last,
                                                 as batch norm and pooling read fastest

Backward: the gradient of a complex value is ∂L/∂Re + i·∂L/∂Im, so a product M·z
passes back Mᴴ·dz and Re(·) passes back dy + 0i:

    dQ = conj(Gh) dy,  dZ = conj(Gw) dQ,  dV = Bᴴ dZ,  dB = dZ Vᴴ,
    dA = conj(Fh) dB,  dx = Re(conj(Fw) dA),  db = S_h·S_w·Σ_n Re(dZ[0, 0]),

and dW from dV through the kernel's transform, the same two products transposed.
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


#: y (OH, OW, N·O) as (OH, OW, N, O) → (N, O, OH, OW)
TO_NCHW = (2, 3, 0, 1)


def kernel_transform(weight, m: dict):
    """V (S_h·F, C, O): V[g·F + f, c, o] = conj(Ŵ[o, c, g, f])
    = Σ_{i, j} w[o, c, i, j]·conj(Fh[i, g])·conj(Fw[j, f]), along j, then along i."""
    xp = backends.namespace(weight)
    o, c, kh, kw = weight.shape
    taps = xp.reshape(xp.permute_dims(weight, (2, 3, 1, 0)), (kh, kw, c * o))
    rows = xp.conj(_t(m["fw_k"])) @ xp.astype(taps, m["fw_k"].dtype)          # (kh, F, C·O)
    v = xp.conj(_t(m["fh_k"])) @ xp.reshape(rows, (kh, -1))                    # (S_h, F·C·O)
    return xp.reshape(v, (-1, c, o))


def kernel_transform_backward(dv, m: dict, weight_shape):
    """dW (O, C, kh, kw) for the gradient dV of :func:`kernel_transform`'s output."""
    xp = backends.namespace(dv)
    o, c, kh, kw = weight_shape
    f = m["fw_k"].shape[1]
    drows = m["fh_k"] @ xp.reshape(dv, (m["fh_k"].shape[1], -1))             # (kh, F·C·O)
    dtaps = m["fw_k"] @ xp.reshape(drows, (kh, f, c * o))                      # (kh, kw, C·O)
    return xp.permute_dims(xp.reshape(xp.real(dtaps), (kh, kw, c, o)), (3, 2, 0, 1))


def forward(x, weight, bias, window: Window):
    """(y (OH, OW, N·O), saved) of the convolution."""
    xp = backends.namespace(x)
    n, c, h, w = x.shape
    o = weight.shape[0]
    m = _matrices(x, x.shape, window)
    f, s_h = m["fw"].shape[1], m["fh"].shape[1]
    rows = xp.astype(xp.reshape(x, (n * c * h, w)), m["fw"].dtype)
    a = _t(m["fw"]) @ _t(rows)                                                 # (F, N·C·H)
    b = _t(m["fh"]) @ _t(xp.reshape(a, (-1, h)))                               # (S_h, F·N·C)
    b = xp.reshape(b, (s_h * f, n, c))
    v = kernel_transform(weight, m)
    z = b @ v                                                                  # (S_h·F, N, O)
    if bias is not None:
        z[0, ...] = z[0, ...] + bias * bias_scale(x.shape, window)
    q = _t(m["gw"]) @ xp.reshape(z, (s_h, f, n * o))                           # (S_h, OW, N·O)
    y = xp.real(_t(m["gh"]) @ xp.reshape(q, (s_h, -1)))                        # (OH, OW·N·O)
    return xp.reshape(y, (m["gh"].shape[1], m["gw"].shape[1], n * o)), (b, v, tuple(x.shape))


def backward(saved, dy, weight, window: Window, input_grad: bool = True):
    """(dx or None, dW, db) for the gradient dy (OH, OW, N·O) of :func:`forward`'s
    output; dx is (N, C, H, W), stored (H, W, N, C)."""
    b, v, x_shape = saved
    xp = backends.namespace(dy)
    n, c, h, w = x_shape
    o, out_h, out_w = weight.shape[0], dy.shape[0], dy.shape[1]
    m = _matrices(dy, x_shape, window)
    f, s_h = m["fw"].shape[1], m["fh"].shape[1]
    dy = xp.astype(xp.reshape(dy, (out_h, -1)), m["gh"].dtype)
    dq = xp.conj(m["gh"]) @ dy                                                 # (S_h, OW·N·O)
    dz = xp.conj(m["gw"]) @ xp.reshape(dq, (s_h, out_w, n * o))                # (S_h, F, N·O)
    dz = xp.reshape(dz, (s_h * f, n, o))
    dw = kernel_transform_backward(xp.conj(_t(b)) @ dz, m, tuple(weight.shape))
    db = xp.sum(xp.real(dz[0, ...]), axis=0) * bias_scale(x_shape, window)
    if not input_grad:
        return None, dw, db
    d_b = xp.reshape(dz @ xp.conj(_t(v)), (s_h, -1))                           # (S_h, F·N·C)
    da = xp.conj(m["fh"]) @ d_b                                                # (H, F·N·C)
    dx = xp.conj(m["fw"]) @ xp.reshape(da, (h, f, n * c))                      # (H, W, N·C)
    return xp.permute_dims(xp.reshape(xp.real(dx), (h, w, n, c)), (2, 3, 0, 1)), dw, db
