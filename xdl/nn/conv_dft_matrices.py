"""The DFT matrices of a convolution's geometry, shared by the complex and the real
form of :mod:`xdl.nn.conv_dft` (see there for what each matrix is)."""

from __future__ import annotations

import cmath

from xdl import backends
from xdl.nn.functional import Window


def _dft_matrix(rows, columns, size: int, sign: int, scale=lambda row: 1.0):
    """[scale(r)·e^{sign·2πi·(r·k mod size)/size}] for r in rows, k in columns."""
    return [[scale(r) * cmath.exp(sign * 2j * cmath.pi * ((r * k) % size) / size)
             for k in columns] for r in rows]


def dft_matrices(x_shape, window: Window) -> dict[str, list]:
    """The complex matrices of a geometry as nested lists: fw (W, F) and fh (H, S_h) for
    the unpadded input's columns and rows, fw_k (kw, F) and fh_k (kh, S_h) for the
    kernel's, gw (F, OW) and gh (S_h, OH)."""
    (h, w), (kh, kw), (ph, pw) = x_shape[2:], window.kernel, window.padding
    s_h, s_w = h + 2 * ph, w + 2 * pw
    bins = range(s_w // 2 + 1)

    def inverse_weight(f):  # c_f / S_w: the bins left out are conjugates of these
        return (1.0 if f == 0 or 2 * f == s_w else 2.0) / s_w

    return {
        "fw": _dft_matrix(range(pw, pw + w), bins, s_w, -1),
        "fh": _dft_matrix(range(ph, ph + h), range(s_h), s_h, -1),
        "fw_k": _dft_matrix(range(kw), bins, s_w, -1),
        "fh_k": _dft_matrix(range(kh), range(s_h), s_h, -1),
        "gw": _dft_matrix(bins, range(s_w - kw + 1), s_w, 1, inverse_weight),
        "gh": _dft_matrix(range(s_h), range(s_h - kh + 1), s_h, 1, lambda _: 1.0 / s_h),
    }


def cached_matrices(cache: dict, like, x_shape, window: Window, build, dtype: str,
                    hold=dict):
    """``hold(**arrays)``, the arrays being ``build(dft_matrices(…))``'s nested lists as
    arrays of ``dtype`` on ``like``'s backend and device; built once per backend, dtype
    and geometry."""
    owner = backends.backend_of(like)
    key = (str(owner), dtype, tuple(x_shape[2:]), window)
    if key not in cache:
        cache[key] = hold(**{name: owner.asarray(m, dtype)
                             for name, m in build(dft_matrices(x_shape, window)).items()})
    return cache[key]


def bias_scale(x_shape, window: Window) -> float:
    """S_h·S_w: what adding b to every output pixel adds to the (0, 0) bin."""
    (h, w), (ph, pw) = x_shape[2:], window.padding
    return float((h + 2 * ph) * (w + 2 * pw))
