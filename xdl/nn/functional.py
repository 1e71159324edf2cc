"""Sliding windows over images as strided slices: ``im2col`` and its adjoint ``col2im``.

For an input x of shape (N, C, H, W), a kernel kh×kw, stride s, padding p and
dilation d, the output has OH = ⌊(H + 2p − d(kh − 1) − 1) / s⌋ + 1 rows (OW likewise),
and kernel position (i, j) sees, for every output pixel at once, the strided slice

    x_p[:, i·d : i·d + s(OH − 1) + 1 : s,  j·d : j·d + s(OW − 1) + 1 : s, :]

of the zero-padded input x_p, held channels-last (N, H + 2p, W + 2p, C).
``im2col`` stacks these kh·kw slices — a Python loop over kernel positions only,
never over output positions — into cols of shape (N, OH, OW, kh·kw, C), so that
``reshape(cols, (N·OH·OW, kh·kw·C))`` is the matrix a convolution multiplies by its
weights. ``col2im_channels_last`` is the adjoint: it adds each slice back where it came from
(overlapping windows accumulate), which is both the input gradient of ``im2col``
and the forward pass of a transposed convolution.

Channels-last is the memory layout the matrix products want: a convolution's result
(N·OH·OW, O) *is* an (N, OH, OW, O) array, returned as an (N, O, OH, OW) view, and
the next layer's channels-last view of it costs no copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdl import backends


def pair(value) -> tuple[int, int]:
    """``3`` → (3, 3); ``(3, 2)`` stays."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"expected an int or a pair, got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


@dataclass(frozen=True)
class Window:
    """The geometry of a 2-D sliding window: kernel, stride, padding, dilation."""

    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)

    @classmethod
    def of(cls, kernel, stride=1, padding=0, dilation=1) -> Window:
        return cls(pair(kernel), pair(stride), pair(padding), pair(dilation))

    @property
    def size(self) -> int:
        """kh·kw, the number of kernel positions."""
        return self.kernel[0] * self.kernel[1]

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(OH, OW) = ⌊(H + 2p − d(k − 1) − 1) / s⌋ + 1 per axis."""
        return tuple(
            (size + 2 * p - d * (k - 1) - 1) // s + 1
            for size, k, s, p, d in zip((height, width), self.kernel, self.stride,
                                        self.padding, self.dilation)
        )

    def slices(self, out_h: int, out_w: int):
        """The (row slice, column slice) into the padded input for each kernel position."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        for i in range(kh):
            for j in range(kw):
                yield (slice(i * dh, i * dh + sh * (out_h - 1) + 1, sh),
                       slice(j * dw, j * dw + sw * (out_w - 1) + 1, sw))


def channels_last(x):
    """(N, C, H, W) → (N, H, W, C), a view."""
    return backends.namespace(x).permute_dims(x, (0, 2, 3, 1))


def channels_first(x):
    """(N, H, W, C) → (N, C, H, W), a view."""
    return backends.namespace(x).permute_dims(x, (0, 3, 1, 2))


def pad_spatial(x, padding: tuple[int, int], value: float = 0.0, axes=(1, 2),
                extra: tuple[int, int] = (0, 0)):
    """x with ``padding`` rows/columns of ``value`` on each side of its two spatial
    ``axes`` ((1, 2) for channels-last (N, H, W, C), (2, 3) for (·, ·, H, W)), and
    ``extra`` more after them (rows at the bottom, columns on the right)."""
    (ph, pw), (eh, ew) = padding, extra
    if ph == pw == eh == ew == 0:
        return x
    xp = backends.namespace(x)
    shape = list(x.shape)
    shape[axes[0]] += 2 * ph + eh
    shape[axes[1]] += 2 * pw + ew
    padded = xp.full(tuple(shape), value, dtype=x.dtype, device=x.device)
    inner = [slice(None)] * x.ndim
    inner[axes[0]] = slice(ph, ph + x.shape[axes[0]])
    inner[axes[1]] = slice(pw, pw + x.shape[axes[1]])
    padded[tuple(inner)] = x
    return padded


def im2col(x, window: Window, out_size=None, pad_value: float = 0.0):
    """Windows of x (N, C, H, W) as cols (N, OH, OW, kh·kw, C).

    ``out_size`` (OH, OW) defaults to :meth:`Window.output_size`; ``pad_value`` fills
    the padding (−inf for max pooling).
    """
    out_size = out_size or window.output_size(x.shape[2], x.shape[3])
    padded = pad_spatial(channels_last(x), window.padding, pad_value, axes=(1, 2))
    return backends.sliding_windows(padded, window.kernel, window.stride, window.dilation,
                                    out_size)


def col2im_channels_last(cols, window: Window, input_shape):
    """Adjoint of :func:`im2col` into a channels-last (N, H, W, C) array.

    dx_p[:, rows_k, cols_k, :] += cols[:, :, :, k, :]  for every kernel position k,
    then the padding is cut off. ``input_shape`` is (N, C, H, W).
    """
    xp = backends.namespace(cols)
    n, c, h, w = input_shape
    ph, pw = window.padding
    out_h, out_w = cols.shape[1], cols.shape[2]
    padded = xp.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=cols.dtype, device=cols.device)
    for k, (rows, columns) in enumerate(window.slices(out_h, out_w)):
        padded[:, rows, columns, :] += cols[:, :, :, k, :]
    return padded[:, ph:ph + h, pw:pw + w, :]


def im2col_kernel_major(x, window: Window, out_size=None):
    """Windows of x (N, C, H, W) as the matrix (C·kh·kw, N·OH·OW).

    Rows follow the weight's (c, i, j) order and columns the output's (n, a, b) order,
    so a convolution is W (O, C·kh·kw) @ this. The copy runs along image rows, which
    makes this layout the faster one for inputs with few channels (C = 1 images).
    """
    xp = backends.namespace(x)
    n, c = x.shape[0], x.shape[1]
    out_h, out_w = out_size or window.output_size(x.shape[2], x.shape[3])
    padded = pad_spatial(xp.permute_dims(x, (1, 0, 2, 3)), window.padding, axes=(2, 3))
    cols = backends.sliding_windows(padded, window.kernel, window.stride, window.dilation,
                                    (out_h, out_w), channels_last=False)
    return xp.reshape(cols, (c * window.size, n * out_h * out_w))


def col2im_kernel_major(cols, window: Window, input_shape, out_size):
    """Adjoint of :func:`im2col_kernel_major`: (C·kh·kw, N·OH·OW) summed into (N, C, H, W).

    dx_p[c, n, rows_k, cols_k] += cols[c, k, n]  for every kernel position k.
    """
    xp = backends.namespace(cols)
    n, c, h, w = input_shape
    ph, pw = window.padding
    out_h, out_w = out_size
    blocks = xp.reshape(cols, (c, window.size, n, out_h, out_w))
    padded = xp.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=cols.dtype, device=cols.device)
    for k, (rows, columns) in enumerate(window.slices(out_h, out_w)):
        padded[:, :, rows, columns] += blocks[:, k, ...]
    return xp.permute_dims(padded[:, :, ph:ph + h, pw:pw + w], (1, 0, 2, 3))
