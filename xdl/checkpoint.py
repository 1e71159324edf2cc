"""Checkpoints: a model's (and optimizer's) state as ``.npz`` plus a JSON header.

The file is a NumPy ``.npz`` archive holding

- ``model/<key>``: every entry of ``model.state_dict()`` (PyTorch's key names),
- ``optimizer/<index>/<name>``: the optimizer's per-parameter arrays,
- ``__header__``: UTF-8 JSON with the format version, the architecture name and
  config (to rebuild the model from :mod:`xdl.models`), the epoch, the optimizer's
  hyper-parameters and step counts, the schedule, the history and the dtypes.

No pickle anywhere (loaded with ``allow_pickle=False``), so a checkpoint cannot run
code. Arrays are stored on the host and load onto any backend. Writing goes to a
temporary file in the same folder, is flushed to disk, then renamed over the
target, so a crash never leaves a half-written checkpoint; a truncated or corrupt
file is refused with the reason.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field

import numpy as np

from xdl import backends

FORMAT = "xdl-checkpoint"
VERSION = 1
HEADER_KEY = "__header__"


class CheckpointError(ValueError):
    """The file is not a readable xdl checkpoint; the message says why."""


@dataclass
class Checkpoint:
    """What a checkpoint file holds, on the host."""

    header: dict
    model_state: dict
    optimizer_state: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def epoch(self):
        return self.header.get("epoch")


def save(path, model, optimizer=None, *, schedule=None, epoch=None, arch=None, config=None,
         history=None, extra=None) -> str:
    """Write ``model`` (and optionally optimizer, schedule, epoch, history) atomically."""
    arrays = {}
    dtypes = {}
    for key, value in model.state_dict().items():
        arrays[f"model/{key}"] = backends.to_numpy(value)
        dtypes[key] = backends.dtype_name(value.dtype)
    header = {
        "format": FORMAT, "version": VERSION, "arch": arch, "config": config or {},
        "epoch": epoch, "dtypes": dtypes, "history": history,
        "schedule": schedule.state_dict() if schedule is not None else None,
        "extra": extra or {}, "optimizer": None,
    }
    if optimizer is not None:
        state = optimizer.state_dict()
        scalars = {}
        for index, entries in state["state"].items():
            for name, value in entries.items():
                if isinstance(value, (int, float)):
                    scalars.setdefault(str(index), {})[name] = value
                else:
                    arrays[f"optimizer/{index}/{name}"] = backends.to_numpy(value)
        header["optimizer"] = {"type": type(optimizer).__name__,
                               "param_groups": state["param_groups"], "scalars": scalars}
    header["keys"] = sorted(arrays)
    arrays[HEADER_KEY] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    _write_atomically(os.fspath(path), arrays)
    return os.fspath(path)


def _write_atomically(path, arrays):
    write_atomically(path, lambda stream: np.savez(stream, **arrays), suffix=".npz")


def write_atomically(path, write, suffix: str = "") -> str:
    """Call ``write(stream)`` on a temporary file beside ``path``, flush it to disk and
    rename it to ``path``: a reader sees the old file or the whole new one, never a part."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 → what open() would give
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read(path) -> Checkpoint:
    """Read a checkpoint file into host arrays; refuses anything that is not one."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if HEADER_KEY not in archive.files:
                raise CheckpointError(f"{path}: not an xdl checkpoint (no {HEADER_KEY} entry)")
            header = json.loads(bytes(archive[HEADER_KEY]).decode("utf-8"))
            if header.get("format") != FORMAT:
                raise CheckpointError(f"{path}: not an xdl checkpoint (format "
                                      f"{header.get('format')!r})")
            if header.get("version", 0) > VERSION:
                raise CheckpointError(f"{path}: written by a newer xdl (format version "
                                      f"{header['version']}, this one reads {VERSION})")
            missing = sorted(set(header.get("keys", [])) - set(archive.files))
            if missing:
                raise CheckpointError(f"{path}: incomplete checkpoint, missing {missing}")
            arrays = {name: archive[name] for name in archive.files if name != HEADER_KEY}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError,
            UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({exc})") from exc
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    return Checkpoint(header=header, model_state=model_state,
                      optimizer_state=_optimizer_state(header, arrays),
                      extra=header.get("extra", {}))


def _optimizer_state(header, arrays):
    saved = header.get("optimizer")
    if saved is None:
        return None
    state: dict[int, dict] = {}
    for index, scalars in saved["scalars"].items():
        state.setdefault(int(index), {}).update(scalars)
    for key, value in arrays.items():
        if key.startswith("optimizer/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": saved["param_groups"]}


def load(path, model, optimizer=None, schedule=None) -> Checkpoint:
    """Load a checkpoint into ``model`` (and optimizer, schedule) on their backends."""
    checkpoint = read(path)
    model.load_state_dict(checkpoint.model_state)
    if optimizer is not None:
        if checkpoint.optimizer_state is None:
            raise CheckpointError(f"{path}: holds no optimizer state to resume from")
        saved_type = checkpoint.header["optimizer"]["type"]
        if saved_type != type(optimizer).__name__:
            raise CheckpointError(f"{path}: optimizer state is {saved_type}, "
                                  f"cannot load into {type(optimizer).__name__}")
        optimizer.load_state_dict(checkpoint.optimizer_state)
    if schedule is not None and checkpoint.header.get("schedule") is not None:
        schedule.load_state_dict(checkpoint.header["schedule"])
    return checkpoint


def load_model(path, backend=None):
    """Rebuild a model from the architecture name and config saved with it."""
    from xdl.models import create

    checkpoint = read(path)
    arch = checkpoint.header.get("arch")
    if arch is None:
        raise CheckpointError(f"{path}: saved without an architecture name; build the "
                              "model yourself and use xdl.checkpoint.load(path, model)")
    with backends.use(backends.resolve(backend)):
        model = create(arch, **checkpoint.header.get("config", {}))
    dtypes = set(checkpoint.header["dtypes"].values()) & {"float32", "float64", "float16"}
    if dtypes:
        model.to(dtype=dtypes.pop())
    return model.load_state_dict(checkpoint.model_state)
