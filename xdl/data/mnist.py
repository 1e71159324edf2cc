"""MNIST and Fashion-MNIST: 28x28 grey images in 10 classes, 60,000 train and 10,000 test.

Both come as four IDX files with the standard names (``.gz`` or not)::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz

The loaders look for a split's two files in the first folder that has them, in this order:

1. ``root=`` when given;
2. ``$XDL_DATA_DIR/<name>`` (``<name>`` is ``mnist`` or ``fashion-mnist``);
3. ``~/.cache/xdl/<name>``;
4. the system dataset folder (``/usr/share/datasets/<name>``; Debian's
   ``dataset-fashion-mnist`` package installs there);
5. a download from the canonical source into ``~/.cache/xdl/<name>`` (unless
   ``download=False``), checked against the published MD5 of each file.

Offline, the error lists every folder searched and says where to put the files.

MNIST: LeCun, Cortes and Burges, CC BY-SA 3.0. Fashion-MNIST: Xiao, Rasul and
Vollgraf (Zalando Research), MIT licence.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xdl.data.idx import DatasetFileError, read_idx

__all__ = ["fashion_mnist", "mnist"]

_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_TIMEOUT_S = 60


@dataclass(frozen=True)
class _Source:
    name: str
    url: str
    md5: dict[str, str]


_MNIST = _Source(
    name="mnist",
    url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
)
_FASHION = _Source(
    name="fashion-mnist",
    url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
)

# System-wide dataset folders, searched after the user's own; by dataset name.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "mnist": (Path("/usr/share/datasets/mnist"),),
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}


def mnist(
    root: str | os.PathLike | None = None, split: str = "train", *, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST handwritten digits: ``(images uint8 (N, 28, 28), labels int64 (N,))``.

    ``split`` is ``"train"`` (N = 60,000) or ``"test"`` (N = 10,000). See the module
    docstring for where the files are looked for.
    """
    return _load(_MNIST, root, split, download)


def fashion_mnist(
    root: str | os.PathLike | None = None, split: str = "train", *, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST clothing images: ``(images uint8 (N, 28, 28), labels int64 (N,))``.

    ``split`` is ``"train"`` (N = 60,000) or ``"test"`` (N = 10,000). Labels: 0 T-shirt/top,
    1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt, 7 sneaker, 8 bag,
    9 ankle boot.
    """
    return _load(_FASHION, root, split, download)


def _load(
    source: _Source, root: str | os.PathLike | None, split: str, download: bool
) -> tuple[np.ndarray, np.ndarray]:
    if split not in _SPLITS:
        raise ValueError(f"{source.name}: split must be 'train' or 'test', got {split!r}")
    stems = _SPLITS[split]
    folders = _search_folders(source.name, root)
    for folder in folders:
        paths = [_find(folder, stem) for stem in stems]
        if all(p is not None for p in paths):
            return _read_pair(*paths)
    if not download:
        raise FileNotFoundError(_missing_message(source, folders, "downloads are off"))
    cache = _cache_dir(source.name)
    try:
        paths = [_download(source, stem + ".gz", cache) for stem in stems]
    except OSError as exc:  # URLError, timeouts and checksum failures are OSErrors
        raise FileNotFoundError(
            _missing_message(source, folders, f"the download failed: {exc}")
        ) from exc
    return _read_pair(*paths)


def _search_folders(name: str, root: str | os.PathLike | None) -> list[Path]:
    folders = []
    if root is not None:
        folders.append(Path(root).expanduser())
    env = os.environ.get("XDL_DATA_DIR")
    if env:
        folders.append(Path(env).expanduser() / name)
    folders.append(_cache_dir(name))
    folders.extend(SYSTEM_DIRS.get(name, ()))
    return folders


def _cache_dir(name: str) -> Path:
    return Path.home() / ".cache" / "xdl" / name


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / (stem + ".gz"), folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetFileError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28), "
            f"got {images.dtype} of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetFileError(
            f"{labels_path}: expected uint8 labels of shape (N,), "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    if labels.shape[0] != images.shape[0]:
        raise DatasetFileError(
            f"{labels_path}: {labels.shape[0]} labels for the {images.shape[0]} images "
            f"in {images_path}"
        )
    if labels.size and labels.max() >= 10:
        raise DatasetFileError(f"{labels_path}: label {labels.max()} out of range 0..9")
    return images, labels.astype(np.int64)


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
        return response.read()


def _download(source: _Source, filename: str, folder: Path) -> Path:
    """Download one file into ``folder``; it only appears there once its MD5 matches."""
    url = source.url + filename
    data = _fetch(url)
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if digest != source.md5[filename]:
        raise OSError(f"{url}: checksum mismatch: MD5 {digest}, expected {source.md5[filename]}")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / filename
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=filename + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return target


def _missing_message(source: _Source, folders: list[Path], why: str) -> str:
    searched = "\n".join(f"  {folder}" for folder in folders)
    files = "\n".join(f"  {name}" for name in source.md5)
    return (
        f"{source.name}: dataset files not found, and {why}.\n"
        f"Searched these folders:\n{searched}\n"
        f"Put the four files (gzipped or not)\n{files}\n"
        f"into {_cache_dir(source.name)}, or into any folder and pass it as root=, "
        f"or into $XDL_DATA_DIR/{source.name} with XDL_DATA_DIR set. "
        f"They are published at {source.url}"
    )
