"""Image grids saved as PNG with nothing but NumPy and zlib (no matplotlib needed).

A PNG is the 8-byte signature and three chunks: IHDR (width, height, bit depth 8,
colour type 0 = grey or 2 = RGB), IDAT (the zlib-compressed rows, each prefixed by
filter byte 0) and IEND; each chunk is length, type, data and the CRC-32 of type +
data. Host-side I/O: arrays of any backend are copied to the host first.
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

from xdl import backends
from xdl.checkpoint import write_atomically

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def write_png(path, image) -> str:
    """Write a uint8 image, (H, W) grey or (H, W, 3) RGB, as a PNG file (atomically)."""
    pixels = np.asarray(image)
    if pixels.dtype != np.uint8:
        raise ValueError(f"write_png: expected uint8 pixels, got {pixels.dtype}")
    if pixels.ndim == 2:
        colour = 0
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        colour = 2
    else:
        raise ValueError(f"write_png: expected an (H, W) or (H, W, 3) image, got "
                         f"{pixels.shape}")
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    data = (PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9))
            + _chunk(b"IEND", b""))
    return write_atomically(path, lambda stream: stream.write(data), suffix=".png")


def read_png(path) -> np.ndarray:
    """Read a PNG written by :func:`write_png` (8-bit grey or RGB, no interlace, filter 0
    rows); other PNGs are refused with the reason."""
    with open(path, "rb") as stream:
        data = stream.read()
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError(f"{path}: not a PNG file (bad signature)")
    position, header, compressed = len(PNG_SIGNATURE), None, b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind = data[position + 4:position + 8]
        payload = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", payload)
        elif kind == b"IDAT":
            compressed += payload
        position += 12 + length
    if header is None:
        raise ValueError(f"{path}: PNG without an IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (0, 2) or interlace:
        raise ValueError(f"{path}: only 8-bit grey or RGB, non-interlaced PNGs are read")
    channels = 3 if colour == 2 else 1
    raw = np.frombuffer(zlib.decompress(compressed), np.uint8)
    rows = raw.reshape(height, 1 + width * channels)
    if np.any(rows[:, 0] != 0):
        raise ValueError(f"{path}: only PNG rows with filter type 0 are read")
    pixels = rows[:, 1:]
    return pixels.reshape(height, width, 3) if channels == 3 else pixels.reshape(height, width)


def image_grid(images, rows: int | None = None, padding: int = 2,
               value_range=(0.0, 1.0)) -> np.ndarray:
    """Tile images (N, H, W), (N, 1, H, W) or (N, 3, H, W), any backend, into one uint8
    picture with ``padding`` black pixels between tiles. Values in ``value_range`` map
    to 0–255 (clipped); ``rows`` defaults to a near-square layout."""
    pictures = backends.to_numpy(images).astype(np.float64)
    if pictures.ndim == 4:
        if pictures.shape[1] not in (1, 3):
            raise ValueError(f"image_grid: expected 1 or 3 channels, got {pictures.shape}")
        pictures = np.moveaxis(pictures, 1, -1)
        if pictures.shape[-1] == 1:
            pictures = pictures[..., 0]
    if pictures.ndim not in (3, 4):
        raise ValueError(f"image_grid: expected (N, H, W) or (N, C, H, W) images, got "
                         f"{pictures.shape}")
    low, high = value_range
    scaled = np.clip((pictures - low) / (high - low), 0.0, 1.0)
    pixels = np.round(scaled * 255).astype(np.uint8)
    n, h, w = pixels.shape[:3]
    columns = math.ceil(math.sqrt(n)) if rows is None else math.ceil(n / rows)
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * (h + padding) + padding, columns * (w + padding) + padding)
                    + pixels.shape[3:], np.uint8)
    for index in range(n):
        r, c = divmod(index, columns)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[top:top + h, left:left + w] = pixels[index]
    return grid


def save_image_grid(path, images, rows: int | None = None, padding: int = 2,
                    value_range=(0.0, 1.0)) -> str:
    """:func:`image_grid` written to ``path`` as PNG."""
    return write_png(path, image_grid(images, rows, padding, value_range))
