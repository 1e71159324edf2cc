"""Pooling over NCHW images: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, GlobalAvgPool2d.

A kh×kw window is the kw columns of kh rows, so max and average pooling run as two
one-axis passes: along the width over every row of the (padded) input, then along the
height over the width pass's result. Each pass reads the k strided slices of its axis,

    width:   r_j = x_p[:, :, :, j·d : j·d + s(OW − 1) + 1 : s]        (N, C, H_p, OW)
    height:  y_i = r[:, :, i·d : i·d + s(OH − 1) + 1 : s, :]          (N, C, OH, OW)

(:func:`_axis_slices`) and reduces them element-wise: kh + kw − 2 passes instead of the
kh·kw − 1 of reducing the window's positions one by one, the first of them over whole
rows. The backward scatters each pass's slice gradients back into its input: assigned
where the windows tile the axis, added where they overlap, as in col2im. No Python loop
runs over output positions and no (…, kh·kw) stack of windows is built. On a CPU the
batch goes through in cache-sized chunks (``Backend.chunk_bytes``), which keeps the
passes over each chunk in cache.

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


def _axis_slices(k: int, s: int, d: int, out: int) -> list[slice]:
    """The k slices of one axis of the padded input: slice i holds position i of every
    window, i·d, i·d + s, …, i·d + s(out − 1)."""
    return [slice(i * d, i * d + s * (out - 1) + 1, s) for i in range(k)]


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
        """The two passes of ``reduce``, chunk by chunk of the batch.

        ``reduce`` takes a list of one axis's slices and returns a tuple (result,
        *state); it runs along the width, then along the height. Returns (y, width
        pass's state, height pass's state), each joined along the batch axis,
        channels-last in memory.
        """
        top, bottom, left, right = pads
        rows, cols = self._slices(out_size)
        results = []
        for start, stop in batch_chunks(x, _sample_bytes(x.shape, x.dtype)):
            x_p = channels_first(pad_spatial(channels_last(x[start:stop, ...]), (top, left),
                                             self.pad_value, extra=(bottom - top, right - left)))
            r, *width_state = reduce([x_p[..., c] for c in cols])
            y, *height_state = reduce([r[:, :, h, ...] for h in rows])
            results.append((y, *width_state, *height_state))
        if len(results) > 1:
            xp = backends.namespace(x)
            results = [tuple(channels_first(xp.concat([channels_last(r) for r in parts],
                                                      axis=0))
                             for parts in zip(*results))]
        y, *state = results[0]
        return y, state[:len(width_state)], state[len(width_state):]

    def unpool(self, grad, unreduce, input_shape, pads, width_state, height_state):
        """dx (``input_shape``): the two passes' gradients scattered back, height first.

        ``unreduce(g, state, k)`` gives one pass's k slice gradients from the gradient
        g of its result and its state (a batch chunk of each). Chunk by chunk of the batch;
        dx is stored in memory like ``grad``, which is stored like the forward's input.
        """
        n, c, h, w = input_shape
        top, bottom, left, right = pads
        height, width = h + top + bottom, w + left + right
        rows, cols = self._slices(grad.shape[2:])
        dx = backends.empty_in_layout(input_shape, grad, grad.dtype)
        for start, stop in batch_chunks(grad, _sample_bytes(input_shape, grad.dtype)):
            part = slice(start, stop)
            d_r = self._scatter(
                unreduce(grad[part, ...], [s[part, ...] for s in height_state], len(rows)),
                rows, 0,
                backends.empty_in_layout((stop - start, c, height, grad.shape[3]), grad,
                                         grad.dtype))
            target, batch = (dx, part) if not any(pads) else (backends.empty_in_layout(
                (stop - start, c, height, width), grad, grad.dtype), slice(None))
            self._scatter(unreduce(d_r, [s[part, ...] for s in width_state], len(cols)),
                          cols, 1, target, batch)
            if any(pads):
                dx[part, ...] = target[:, :, top:top + h, left:left + w]
        return dx

    def _slices(self, out_size):
        """The height pass's row slices and the width pass's column slices."""
        w = self.window
        return tuple(_axis_slices(k, s, d, o) for k, s, d, o in
                     zip(w.kernel, w.stride, w.dilation, out_size))

    def _scatter(self, parts, slices, axis: int, target, batch=slice(None)):
        """``target`` (·, ·, H, W) with parts[k] put into slice k of spatial ``axis``
        (0: rows, 1: columns) of its ``batch`` rows: assigned where the windows tile the
        axis (each position in exactly one window), else added onto zeros."""
        w = self.window
        k, s, d = w.kernel[axis], w.stride[axis], w.dilation[axis]
        tiles = s == k and d == 1 and parts[0].shape[2 + axis] * s == target.shape[2 + axis]
        if not tiles:
            target[batch, ...] = 0.0
        for part, where in zip(parts, slices):
            region = ((batch, slice(None), slice(None), where) if axis == 1
                      else (batch, slice(None), where, slice(None)))
            if tiles:
                target[region] = part
            else:
                target[region] += part
        return target

    def extra_repr(self):
        w = self.window
        text = f"kernel_size={w.kernel}, stride={w.stride}, padding={w.padding}"
        if w.dilation != (1, 1):
            text += f", dilation={w.dilation}"
        return text + (", ceil_mode=True" if self.ceil_mode else "")


class MaxPool2d(_Pool2d):
    """Max pooling on NCHW input (PyTorch's arguments; the padding reads −∞).

    Each pass (along the width, then the height) scans its k slices in order and keeps
    the masks of where a slice beats every earlier one:

    forward:  y_0 = x_0,  b_k = [x_k > y_{k−1}],  y_k = max(y_{k−1}, x_k);  y = y_{k−1}
    backward: the gradient g of y goes to the last k with b_k (else to 0): from the
              last slice down, dx_k = rest·b_k, rest ← rest − dx_k;  dx_0 = rest

    so a window's gradient goes to the first maximum of its row, in the first row that
    holds the window's maximum: its first maximum in row-major window order, as in
    PyTorch (ties are common after a ReLU: all-zero windows). The masks are kept as
    bools, (kw − 1) at the width pass's size and (kh − 1) at the output's. Under
    no_grad the forward computes y only.
    """

    pad_value = float("-inf")

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 ceil_mode: bool = False):
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode)

    def forward(self, x):
        out_size, pads = self.geometry(x)
        track = is_grad_enabled()

        def reduce(slices):
            y, beats = max_scan(slices, track)
            return (y, *beats)

        y, width_beats, height_beats = self.pool(x, reduce, out_size, pads)
        self.save_for_backward(width_beats, height_beats, tuple(x.shape), pads)
        return y

    def backward(self, grad):
        width_beats, height_beats, input_shape, pads = self.saved
        if height_beats:
            grad = backends.same_layout(grad, height_beats[0])
        return self.unpool(grad, lambda g, beats, _: max_scan_backward(g, beats),
                           input_shape, pads, width_beats, height_beats)


def max_scan(slices, track: bool = True):
    """(y, beats): y = max_k slices[k], and with ``track`` the masks
    b_k = [slices[k] > max of slices[:k]] for k ≥ 1 (bools; an empty list without)."""
    xp = backends.namespace(slices[0])
    y, beats = slices[0], []
    for x_k in slices[1:]:
        if track:
            beats.append(x_k > y)
        y = xp.maximum(y, x_k)
    return y, beats


def max_scan_backward(g, beats, first: bool = True) -> list:
    """The slices' gradients for the gradient g of :func:`max_scan`'s y: g goes to the
    last k with b_k (the first maximum), else to slice 0. Without ``first`` the list
    leaves out slice 0's (g minus the others'), for a caller that only needs it
    through a linear map and takes it by linearity."""
    xp = backends.namespace(g)
    parts = []
    for k, b_k in enumerate(reversed(beats)):
        parts.append(g * xp.astype(b_k, g.dtype))
        if first or k < len(beats) - 1:
            g = g - parts[-1]
    parts.reverse()
    return [g, *parts] if first else parts


class AvgPool2d(_Pool2d):
    """Average pooling on NCHW input (PyTorch's arguments; the padding reads 0).

    forward:  y = Σ_k x_k / m  (summed along the width, then the height)
    backward: dx_k = dy / m  for every kernel position k (spread along the height,
              then the width)

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
            total = slices[0]
            for x_k in slices[1:]:
                total = total + x_k
            return (total,)

        total, _, _ = self.pool(x, reduce, out_size, pads)
        self.save_for_backward(divisor, tuple(x.shape), pads)
        return total / divisor

    def backward(self, grad):
        divisor, input_shape, pads = self.saved

        def unreduce(g, _, k):
            return [g] * k

        return self.unpool(grad / divisor, unreduce, input_shape, pads, [], [])

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
