"""The DFT convolution of :mod:`xdl.nn.conv_dft` in real arithmetic.

Every complex value is carried as its real and imaginary parts on an axis of its own
("part", r/i) and every complex product as a real one. A complex matrix M applied to
data whose part axis sits next to the contracted axis is one real product with
[[Re M, −Im M], [Im M, Re M]]; with the part axis elsewhere, the four real products
Re/Im M times Re/Im data are combined after. With x in rows (c, n, h), everything is
stored as written (no intermediate is transposed):

    A = [Re Fw | Im Fw]ᵀ x                      (2F, C·N·H)          rows (part, f)
    P = [Re Fh | Im Fh]ᵀ A  (along h)           (2S_h, 2F·C·N)       P_{hw}: part h of Fh, w of A
    B = (P_rr − P_ii, P_ir + P_ri)              (S_h·F, 2C, N)       X̂ per bin, rows (part, c)
    Z = K B  per bin                            (S_h·F, 2O, N)       Ŷ, rows (part, o)
         K = [[Re Vᵀ, −Im Vᵀ], [Im Vᵀ, Re Vᵀ]] with V[c, o] = conj(Ŵ[o, c]) per bin
    Z[0, (r, o)] += S_h·S_w·b[o]                the bias, through the (0, 0) bin
    Q = Gw_block Z  (along f, per g)            (S_h, 2OW, O·N)
    y = [Re Gh; −Im Gh]ᵀ Q  (along g)           (OH, OW·O·N)         = Re(Ghᵀ Q), real

The backward is the transposed products in reverse order (every map is real linear):
dQ = Gh_realᵀ dy, dZ = Gw_blockᵀ dQ, dK = dZ Bᵀ, dB = Kᵀ dZ, db = S_h·S_w·Σ_n dZ[0, (r, o), n],
and dW from dK through the kernel's transform (one product, transposed). dx takes B's
two steps back without forming dP (whose four blocks are dB's parts with signs): along
g, U = Re Fh dB and V = Im Fh dB in one product (rows (h, U/V)); then along f,

    dx[h, w] = Σ_f Re Fw·(U_r + V_i) + Im Fw·(U_i − V_r)     (U_r: U's real part, …)

one product with the (W, 4F) matrix of these coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdl import backends
from xdl.nn.conv_dft_matrices import bias_scale, cached_matrices
from xdl.nn.functional import Window


@dataclass(frozen=True)
class _Transforms:
    """The real matrices of one geometry (see the module docstring). The input's rows
    and columns of Fh and Fw are those of the unpadded input (the padding is a phase
    shift, so x is never padded)."""

    fw: object       # (W, 2F)             [Re Fw | Im Fw], columns (part, f)
    fh: object       # (2S_h, H)           rows (part, g): Re Fh[h, g], Im Fh[h, g]
    kernel: object   # (2S_h·F, 2kh·kw)    rows (g, f, part), columns (part, i, j): the real form
                     #                     of conj(Fh[i, g]·Fw[j, f]), the kernel's transform
    gw: object       # (2OW, 2F)           Gw_block: rows (part, b), columns (f, part)
    gh: object       # (OH, 2S_h)          columns (g, part): Re Gh[g, a], −Im Gh[g, a]
    fh_back: object  # (2H, S_h)           rows (h, U/V): Re Fh[h, g], Im Fh[h, g]
    fw_back: object  # (W, 4F)             columns (U/V, f, part): the coefficients of dx


_cache: dict[tuple, _Transforms] = {}


def _block(z: complex, out_part: int, in_part: int) -> float:
    """Entry (out_part, in_part) of [[Re z, −Im z], [Im z, Re z]], the real form of
    multiplying by z (part 0 real, 1 imaginary)."""
    return (z.real, -z.imag, z.imag, z.real)[2 * out_part + in_part]


def _back_coefficient(z: complex, which: int, part: int) -> float:
    """The factor of U's (``which`` 0) or V's (1) real (``part`` 0) or imaginary (1)
    part in dx for z = Fw[w, f]: Re z·(U_r + V_i) + Im z·(U_i − V_r)."""
    return ((z.real, z.imag), (-z.imag, z.real))[which][part]


def _real_matrices(m: dict) -> dict:
    """The real matrices of :class:`_Transforms` from the complex ones (nested lists)."""
    parts = (0, 1)
    fw, fh, fw_k, fh_k, gw, gh = (m[name] for name in ("fw", "fh", "fw_k", "fh_k", "gw", "gh"))
    bins, s_h, taps = range(len(fw[0])), range(len(fh[0])), range(len(fh_k) * len(fw_k))
    kw = len(fw_k)
    return {
        "fw": [[z.real for z in row] + [z.imag for z in row] for row in fw],
        "fh": [[row[g].real if part == 0 else row[g].imag for row in fh]
               for part in parts for g in s_h],
        "kernel": [[_block((fh_k[tap // kw][g] * fw_k[tap % kw][f]).conjugate(), k_part, w_part)
                    for w_part in parts for tap in taps]
                   for g in s_h for f in bins for k_part in parts],
        "gw": [[_block(gw[f][b], qp, zp) for f in bins for zp in parts]
               for qp in parts for b in range(len(gw[0]))],
        "fh_back": [[row[g].real if which == 0 else row[g].imag for g in s_h]
                    for row in fh for which in parts],
        "fw_back": [[_back_coefficient(row[f], which, part)
                     for which in parts for f in bins for part in parts] for row in fw],
        "gh": [[gh[g][a].real if part == 0 else -gh[g][a].imag
                for g in s_h for part in parts] for a in range(len(gh[0]))],
    }


def _transforms(like, x_shape, window: Window) -> _Transforms:
    """The matrices for ``x_shape`` and ``window``, in ``like``'s dtype and device."""
    return cached_matrices(_cache, like, x_shape, window, _real_matrices,
                           backends.dtype_name(like.dtype), hold=_Transforms)


def _t(m):
    return backends.namespace(m).matrix_transpose(m)


#: y (OH, OW, O·N) as (OH, OW, O, N) → (N, O, OH, OW)
TO_NCHW = (3, 2, 0, 1)


def kernel_transform(weight, t: _Transforms):
    """K (S_h·F, 2O, 2C): per bin the real form [[Re Vᵀ, −Im Vᵀ], [Im Vᵀ, Re Vᵀ]] of
    V[c, o] = conj(Ŵ[o, c, g, f]) = Σ_{i, j} conj(Fh[i, g]·Fw[j, f])·w[o, c, i, j].

    Each real block is linear in w, so K is one product, E Ω, with E = ``t.kernel``
    (rows (bin, block row), columns (block column, i, j)) and Ω the taps placed once per
    block column: Ω[(q, i, j), (o, q', c)] = [q = q']·w[o, c, i, j]. Its product is laid
    out (bin, (part, o), (part, c)) as it comes, so nothing is moved after it."""
    xp = backends.namespace(weight)
    o, c, kh, kw = weight.shape
    taps = xp.reshape(xp.permute_dims(weight, (2, 3, 0, 1)), (kh * kw, o, c))
    omega = xp.zeros((2, kh * kw, o, 2, c), dtype=weight.dtype, device=weight.device)
    omega[0, :, :, 0, :] = taps
    omega[1, :, :, 1, :] = taps
    k = t.kernel @ xp.reshape(omega, (2 * kh * kw, -1))          # (S_h·F·2, O·2·C)
    return xp.reshape(k, (-1, 2 * o, 2 * c))


def kernel_transform_backward(dk, t: _Transforms, weight_shape):
    """dW (O, C, kh, kw) for the gradient dK of :func:`kernel_transform`'s output:
    dΩ = Eᵀ dK, and each tap's gradient is the sum of its two places in Ω."""
    xp = backends.namespace(dk)
    o, c, kh, kw = weight_shape
    d_omega = _t(t.kernel) @ xp.reshape(dk, (t.kernel.shape[0], -1))  # (2·kh·kw, O·2·C)
    d_omega = xp.reshape(d_omega, (2, kh * kw, o, 2, c))
    d_taps = d_omega[0, :, :, 0, :] + d_omega[1, :, :, 1, :]          # (kh·kw, O, C)
    return xp.permute_dims(xp.reshape(d_taps, (kh, kw, o, c)), (2, 3, 0, 1))


def forward(x, weight, bias, window: Window):
    """(y (OH, OW, O·N), saved) of the convolution."""
    xp = backends.namespace(x)
    n, c, h, w = x.shape
    o = weight.shape[0]
    t = _transforms(x, x.shape, window)
    s_h, f = t.fh.shape[0] // 2, t.fw.shape[1] // 2
    rows = xp.reshape(xp.permute_dims(x, (1, 0, 2, 3)), (c * n * h, w))
    a = _t(t.fw) @ _t(rows)                                     # (2F, C·N·H)
    p = t.fh @ _t(xp.reshape(a, (-1, h)))                        # (2S_h, 2F·C·N)
    p = xp.reshape(p, (2, s_h, 2, f, c * n))
    b = xp.stack([p[0, :, 0, ...] - p[1, :, 1, ...], p[1, :, 0, ...] + p[0, :, 1, ...]],
                 axis=2)                                         # (S_h, F, 2, C·N)
    b = xp.reshape(b, (s_h * f, 2 * c, n))
    k = kernel_transform(weight, t)
    z = k @ b                                                    # (S_h·F, 2O, N)
    if bias is not None:
        z[0, :o, :] = z[0, :o, :] + xp.reshape(bias, (o, 1)) * bias_scale(x.shape, window)
    q = t.gw @ xp.reshape(z, (s_h, 2 * f, o * n))                # (S_h, 2OW, O·N)
    y = t.gh @ xp.reshape(q, (2 * s_h, -1))                      # (OH, OW·O·N)
    return xp.reshape(y, (t.gh.shape[0], t.gw.shape[0] // 2, o * n)), (b, k, tuple(x.shape))


def backward(saved, dy, weight, window: Window, input_grad: bool = True):
    """(dx or None, dW, db) for the gradient dy (OH, OW, O·N) of :func:`forward`'s
    output; dx is (N, C, H, W), stored (H, W, C, N)."""
    b, k, x_shape = saved
    xp = backends.namespace(dy)
    n, c, h, w = x_shape
    o, out_h, out_w = weight.shape[0], dy.shape[0], dy.shape[1]
    t = _transforms(dy, x_shape, window)
    s_h, f = t.fh.shape[0] // 2, t.fw.shape[1] // 2
    dq = _t(t.gh) @ xp.reshape(dy, (out_h, -1))                  # (2S_h, OW·O·N)
    dz = _t(t.gw) @ xp.reshape(dq, (s_h, 2 * out_w, o * n))      # (S_h, 2F, O·N)
    dz = xp.reshape(dz, (s_h * f, 2 * o, n))
    dw = kernel_transform_backward(dz @ _t(b), t, tuple(weight.shape))
    db = xp.sum(dz[0, :o, :], axis=1) * bias_scale(x_shape, window)
    if not input_grad:
        return None, dw, db
    d_b = _t(k) @ dz                                             # dB (S_h·F, 2C, N)
    uv = t.fh_back @ xp.reshape(d_b, (s_h, -1))                  # (2H, F·2·C·N)
    dx = t.fw_back @ xp.reshape(uv, (h, 4 * f, c * n))           # (H, W, C·N)
    return xp.permute_dims(xp.reshape(dx, (h, w, c, n)), (3, 2, 0, 1)), dw, db
