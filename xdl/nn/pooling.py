"""Pooling over NCHW images: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, GlobalAvgPool2d.

A pooling window of kh×kw positions is read as kh·kw strided slices of the (padded)
input, one per kernel position k = (i, j) (:meth:`xdl.nn.functional.Window.slices`):

    x_k = x_p[:, :, i·d : i·d + s(OH − 1) + 1 : s,  j·d : j·d + s(OW − 1) + 1 : s]

so that x_k[n, c, oh, ow] is the k-th pixel of window (oh, ow). A pool is a K-term
element-wise reduction over these (N, C, OH, OW) slices — a Python loop over kernel
positions only — and its backward adds each term's gradient dx_k back into slice k of
dx (overlapping windows accumulate, as in col2im). No (…, kh·kw) stack of windows is
built. On a CPU the batch goes through in cache-sized chunks (``Backend.chunk_bytes``),
which keeps the K passes over each chunk in cache.

Measured on NumPy for the usual 2×2/2 pool, this beats im2col + argmax over the window
axis, and a reshape to (N, C, OH, kh, OW, kw) reduced over the two kernel axes (short
strided reductions, several times slower); the window-aligned case needs no special
path, since its slices already are a reshape's sub-arrays.

Output size per axis, as in PyTorch:
    OH = ⌊(H + 2p − d(kh − 1) − 1 + (s − 1 if ceil_mode else 0)) / s⌋ + 1,
less one in ceil mode when the last window would start past the input and its left
padding. Where ceil mode lets a window overhang the padded input, the overhang reads
−∞ (max) or 0 (avg).
"""

from __future__ import annotations

from xdl import backends
from xdl.nn.conv import batch_chunks
from xdl.nn.functional import Window, channels_first, channels_last, pad_spatial
from xdl.nn.module import Module, is_grad_enabled


def _check_input(layer, x):
    if x.ndim != 4:
        raise ValueError(f"{layer!r}: expected input of shape (N, C, H, W), "
                         f"got {tuple(x.shape)}")


def _pooled_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size along one axis."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1  # the last window must start inside the input or its left padding
    return out


def _sample_bytes(shape, dtype) -> int:
    """Bytes of one (C, H, W) sample: the unit the batch is chunked by."""
    itemsize = 8 if backends.dtype_name(dtype) == "float64" else 4
    return shape[1] * shape[2] * shape[3] * itemsize


class _Pool2d(Module):
    """What MaxPool2d and AvgPool2d share: the window geometry, and a forward and a
    backward over cache-sized chunks of the batch (one chunk on GPUs)."""

    pad_value = 0.0

    def __init__(self, kernel_size, stride, padding, dilation, ceil_mode):
        super().__init__()
        self.window = Window.of(kernel_size, kernel_size if stride is None else stride,
                                padding, dilation)
        self.ceil_mode = bool(ceil_mode)
        name = type(self).__name__
        w = self.window
        for what, values in (("kernel_size", w.kernel), ("stride", w.stride),
                             ("dilation", w.dilation)):
            if min(values) < 1:
                raise ValueError(f"{name}: {what} must be positive, got {values}")
        if min(w.padding) < 0 or any(p > k // 2 for p, k in zip(w.padding, w.kernel)):
            raise ValueError(f"{name}: padding must be between 0 and half the kernel size "
                             f"{w.kernel}, got {w.padding}")
        # two windows share no pixel when the stride is at least the dilated kernel
        self.overlapping = any(s < d * (k - 1) + 1 for k, s, d in zip(w.kernel, w.stride,
                                                                      w.dilation))

    def geometry(self, x):
        """(OH, OW) and the padding (top, bottom, left, right) the windows read;
        bottom and right include ceil mode's overhang."""
        _check_input(self, x)
        w = self.window
        height, width = x.shape[2], x.shape[3]
        out = tuple(_pooled_size(size, k, s, p, d, self.ceil_mode)
                    for size, k, s, p, d in zip((height, width), w.kernel, w.stride,
                                                w.padding, w.dilation))
        if min(out) < 1:
            padded = (height + 2 * w.padding[0], width + 2 * w.padding[1])
            extent = tuple(d * (k - 1) + 1 for k, d in zip(w.kernel, w.dilation))
            raise ValueError(f"{self!r}: the window (extent {extent}) is bigger than the "
                             f"padded input {padded}; got input {tuple(x.shape)}")
        after = tuple(max(p, (o - 1) * s + d * (k - 1) + 1 - size - p)
                      for size, o, k, s, p, d in zip((height, width), out, w.kernel,
                                                     w.stride, w.padding, w.dilation))
        return out, (w.padding[0], after[0], w.padding[1], after[1])

    def pool(self, x, reduce, out_size, pads):
        """``reduce`` applied to the window slices x_k, chunk by chunk of the batch.

        ``reduce`` takes an iterator over one chunk's slices and returns a tuple of
        (n, C, OH, OW) arrays; the chunks' results are joined along the batch axis,
        channels-last in memory.
        """
        top, bottom, left, right = pads
        results = []
        for start, stop in batch_chunks(x, _sample_bytes(x.shape, x.dtype)):
            x_p = channels_first(pad_spatial(channels_last(x[start:stop, ...]), (top, left),
                                             self.pad_value, extra=(bottom - top, right - left)))
            results.append(reduce(x_p[:, :, rows, cols]
                                  for rows, cols in self.window.slices(*out_size)))
        if len(results) == 1:
            return results[0]
        xp = backends.namespace(x)
        return tuple(channels_first(xp.concat([channels_last(r) for r in parts], axis=0))
                     for parts in zip(*results))

    def unpool(self, grad, window_grads, input_shape, pads):
        """dx (``input_shape``) with window_grads(start, stop)[k] added into slice k.

        Chunk by chunk of the batch: dx_p[:, :, rows_k, cols_k] += dx_k for every kernel
        position k, then the padding is cut off. dx is stored in memory like ``grad``,
        which is stored like the forward's input.
        """
        n, c, h, w = input_shape
        top, bottom, left, right = pads
        dx = backends.empty_in_layout(input_shape, grad, grad.dtype)
        if not any(pads) and not self._windows_tile(grad.shape[2:], (h, w)):
            dx[...] = 0.0  # some pixels are in no window
        slices = list(self.window.slices(grad.shape[2], grad.shape[3]))
        for start, stop in batch_chunks(grad, _sample_bytes(input_shape, grad.dtype)):
            if any(pads):
                target = backends.empty_in_layout(
                    (stop - start, c, h + top + bottom, w + left + right), grad, grad.dtype)
                target[...] = 0.0
                batch = slice(None)
            else:
                target, batch = dx, slice(start, stop)
            for k, ((rows, cols), dx_k) in enumerate(zip(slices, window_grads(start, stop))):
                if self.overlapping and k > 0:
                    target[batch, :, rows, cols] += dx_k
                else:
                    target[batch, :, rows, cols] = dx_k
            if any(pads):
                dx[start:stop, ...] = target[:, :, top:top + h, left:left + w]
        return dx

    def _windows_tile(self, out_size, in_size) -> bool:
        """Whether the windows cover every input pixel exactly once."""
        w = self.window
        return w.stride == w.kernel and w.dilation == (1, 1) and all(
            o * s == size for o, s, size in zip(out_size, w.stride, in_size))

    def extra_repr(self):
        w = self.window
        text = f"kernel_size={w.kernel}, stride={w.stride}, padding={w.padding}"
        if w.dilation != (1, 1):
            text += f", dilation={w.dilation}"
        return text + (", ceil_mode=True" if self.ceil_mode else "")


class MaxPool2d(_Pool2d):
    """Max pooling on NCHW input (PyTorch's arguments; the padding reads −∞).

    forward:  y = max_k x_k,   a = the first k with x_k = y   (a per output pixel)
    backward: dx_k = dy · [a = k]   for every kernel position k, added into slice k

    Each window's gradient goes to one pixel, its first maximum in row-major window
    order, as in PyTorch (ties are common after a ReLU: all-zero windows). Under
    no_grad the forward computes y only.
    """

    pad_value = float("-inf")

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 ceil_mode: bool = False):
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode)

    def forward(self, x):
        out_size, pads = self.geometry(x)
        xp = backends.namespace(x)
        if not is_grad_enabled():
            def reduce(slices):
                y = next(slices)
                for x_k in slices:
                    y = xp.maximum(y, x_k)
                return (y,)

            return self.pool(x, reduce, out_size, pads)[0]
        index_dtype = xp.int8 if self.window.size <= 127 else xp.int32

        def reduce_with_argmax(slices):
            y, argmax = next(slices), None
            for k, x_k in enumerate(slices, start=1):
                # x_k > y where k beats every earlier position (so the first maximum
                # wins), and k is above every earlier argmax: max(a, k·[x_k > y]) records it
                beats = xp.astype(x_k > y, index_dtype)
                argmax = beats if argmax is None else xp.maximum(argmax, beats * k)
                y = xp.maximum(y, x_k)
            if argmax is None:  # a 1×1 window
                argmax = xp.zeros(y.shape, dtype=index_dtype, device=y.device)
            return y, argmax

        y, argmax = self.pool(x, reduce_with_argmax, out_size, pads)
        self.save_for_backward(argmax, tuple(x.shape), pads)
        return y

    def backward(self, grad):
        argmax, input_shape, pads = self.saved
        xp = backends.namespace(grad)
        grad = backends.same_layout(grad, argmax)

        def window_grads(start, stop):
            g, a = grad[start:stop, ...], argmax[start:stop, ...]
            return (g * xp.astype(a == k, g.dtype) for k in range(self.window.size))

        return self.unpool(grad, window_grads, input_shape, pads)


class AvgPool2d(_Pool2d):
    """Average pooling on NCHW input (PyTorch's arguments; the padding reads 0).

    forward:  y = Σ_k x_k / m,    backward: dx_k = dy / m  for every kernel position k

    m[oh, ow] is kh·kw, or with ``count_include_pad=False`` the number of input pixels
    in the window; where ceil mode lets a window overhang the padded input, m counts
    only the part inside it (as in PyTorch).
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def _divisor(self, x, out_size):
        """m: a Python float when every window counts kh·kw pixels, else (OH, OW)."""
        w = self.window
        counts = []
        for size, o, k, s, p in zip(x.shape[2:], out_size, w.kernel, w.stride, w.padding):
            axis = []
            for i in range(o):
                start, stop = i * s - p, min(i * s - p + k, size + p)
                if not self.count_include_pad:
                    start, stop = max(start, 0), min(stop, size)
                axis.append(stop - start)
            counts.append(axis)
        if all(c == k for axis, k in zip(counts, w.kernel) for c in axis):
            return float(w.size)
        xp = backends.namespace(x)
        rows = xp.asarray(counts[0], dtype=x.dtype, device=x.device)
        cols = xp.asarray(counts[1], dtype=x.dtype, device=x.device)
        return rows[:, None] * cols[None, :]

    def forward(self, x):
        out_size, pads = self.geometry(x)
        divisor = self._divisor(x, out_size)

        def reduce(slices):
            total = next(slices)
            for x_k in slices:
                total = total + x_k
            return (total / divisor,)

        (y,) = self.pool(x, reduce, out_size, pads)
        self.save_for_backward(divisor, tuple(x.shape), pads)
        return y

    def backward(self, grad):
        divisor, input_shape, pads = self.saved

        def window_grads(start, stop):
            share = grad[start:stop, ...] / divisor
            return (share for _ in range(self.window.size))

        return self.unpool(grad, window_grads, input_shape, pads)

    def extra_repr(self):
        text = super().extra_repr()
        return text + ("" if self.count_include_pad else ", count_include_pad=False")


def _adaptive_bins(size: int, out: int):
    """PyTorch's adaptive bins along one axis: [⌊i·size/out⌋, ⌈(i + 1)·size/out⌉)."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _bin_matrix(like, size: int, out: int):
    """(out, size) averaging matrix: row i is 1/|bin i| on bin i, 0 elsewhere."""
    weights = [[0.0] * size for _ in range(out)]
    for i, (start, stop) in enumerate(_adaptive_bins(size, out)):
        weights[i][start:stop] = [1.0 / (stop - start)] * (stop - start)
    return backends.namespace(like).asarray(weights, dtype=like.dtype, device=like.device)


def _spread_mean_grad(grad, shape):
    """dx[n, c, h, w] = dy[n, c] / (H·W): the gradient of the mean over an image."""
    xp = backends.namespace(grad)
    n, c, h, w = shape
    share = xp.reshape(grad, (n, c, 1, 1)) / float(h * w)
    return xp.asarray(xp.broadcast_to(share, shape), copy=True)


class AdaptiveAvgPool2d(Module):
    """Average over PyTorch's adaptive bins, for any input size: output (N, C, OH, OW).

    Bin i of an axis of length H covers [⌊i·H/OH⌋, ⌈(i + 1)·H/OH⌉) (bins may overlap
    by one pixel). With A (OH, H) and B (OW, W) the bin-averaging matrices
    (A[i, h] = 1/|bin i| for h in bin i):
        forward:  y = A x Bᵀ      backward: dx = Aᵀ dy B
    Equal bins (H % OH = W % OW = 0) are computed as AvgPool2d with kernel = stride =
    (H/OH, W/OW), and a 1×1 output as the mean over the image (GlobalAvgPool2d).
    ``output_size`` is an int or a pair; None in the pair keeps that input size.
    """

    def __init__(self, output_size):
        super().__init__()
        size = (tuple(output_size) if isinstance(output_size, (tuple, list))
                else (output_size, output_size))
        if len(size) != 2 or any(o is not None and (not isinstance(o, int) or o < 1)
                                 for o in size):
            raise ValueError(f"AdaptiveAvgPool2d: output_size must be a positive int or a "
                             f"pair of positive ints or None, got {output_size!r}")
        self.output_size = size

    def forward(self, x):
        _check_input(self, x)
        xp = backends.namespace(x)
        n, c, height, width = x.shape
        out_h, out_w = (size if o is None else o
                        for size, o in zip((height, width), self.output_size))
        if (out_h, out_w) == (1, 1):
            self.save_for_backward("mean", tuple(x.shape))
            return xp.mean(x, axis=(2, 3), keepdims=True)
        if height % out_h == 0 and width % out_w == 0:
            pool = AvgPool2d((height // out_h, width // out_w))
            self.save_for_backward("pool", pool)
            return pool(x)
        rows, cols = _bin_matrix(x, height, out_h), _bin_matrix(x, width, out_w)
        self.save_for_backward("matrices", (rows, cols))
        return rows @ x @ xp.matrix_transpose(cols)

    def backward(self, grad):
        how, state = self.saved
        if how == "mean":
            return _spread_mean_grad(grad, state)
        if how == "pool":
            return state.backward(grad)
        rows, cols = state
        return backends.namespace(grad).matrix_transpose(rows) @ grad @ cols

    def extra_repr(self):
        return f"output_size={self.output_size}"


class GlobalAvgPool2d(Module):
    """Mean over the whole image: (N, C, H, W) → (N, C, 1, 1), or (N, C) with ``flatten``.

    forward:  y[n, c] = Σ_{h, w} x[n, c, h, w] / (H·W)
    backward: dx[n, c, h, w] = dy[n, c] / (H·W)
    """

    def __init__(self, flatten: bool = False):
        super().__init__()
        self.flatten = bool(flatten)

    def forward(self, x):
        _check_input(self, x)
        self.save_for_backward(tuple(x.shape))
        return backends.namespace(x).mean(x, axis=(2, 3), keepdims=not self.flatten)

    def backward(self, grad):
        (shape,) = self.saved
        return _spread_mean_grad(grad, shape)

    def extra_repr(self):
        return "flatten=True" if self.flatten else ""
