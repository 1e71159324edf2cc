"""Checkpoints: round trips across backends, rebuilding models, atomic writes, and
refusing files that are not (complete, current, pickle-free) xdl checkpoints."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from conftest import on

import xdl
from xdl import backends, checkpoint, nn, optim
from xdl.checkpoint import CheckpointError
from xdl.models import MLP

SIZES = [4, 8, 3]
HOST_BACKENDS = ["numpy", "torch", "array_api_strict"]
PAIRS = [(a, b) for a in HOST_BACKENDS for b in HOST_BACKENDS]


def _require(name):
    reason = backends.unavailable_reason(name)
    if reason is not None:
        pytest.skip(f"backend {name} unavailable: {reason}")


def _batch(backend, seed):
    rng = np.random.default_rng(seed)
    x = backend.asarray(rng.normal(size=(6, SIZES[0])), "float32")
    y = backend.asarray(rng.integers(0, SIZES[-1], size=6), "int64")
    return x, y


def _train_step(model, optimizer, backend, seed):
    loss_fn = nn.CrossEntropyLoss()
    x, y = _batch(backend, seed)
    optimizer.zero_grad()
    loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    optimizer.step()


def _trained(backend, seed=0, steps=2):
    """An MLP, its Adam optimizer after ``steps`` steps and a StepLR stepped 3 times."""
    xdl.manual_seed(seed)
    model = MLP(SIZES)
    optimizer = optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.9))
    schedule = optim.StepLR(optimizer, step_size=2, gamma=0.5)
    for step in range(steps):
        _train_step(model, optimizer, backend, seed=100 + step)
    for _ in range(3):
        schedule.step()
    return model, optimizer, schedule


def _host_state(model):
    return {k: backends.to_numpy(v).copy() for k, v in model.state_dict().items()}


def _assert_same_state(a, b, **tolerance):
    assert set(a) == set(b)
    for key in a:
        if tolerance:
            np.testing.assert_allclose(a[key], b[key], err_msg=key, **tolerance)
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture
def saved(tmp_path):
    """A real checkpoint written on numpy, and the model it holds."""
    with backends.use("numpy") as numpy_backend:
        model, optimizer, schedule = _trained(numpy_backend)
        path = tmp_path / "model.npz"
        checkpoint.save(path, model, optimizer, schedule=schedule, epoch=3, arch="mlp",
                        config={"sizes": SIZES})
    return path, model


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("source, target", PAIRS)
def test_round_trip_across_backends(tmp_path, source, target):
    _require(source)
    _require(target)
    with backends.use(source) as src:
        model, optimizer, schedule = _trained(src)
        path = checkpoint.save(tmp_path / "ckpt.npz", model, optimizer, schedule=schedule,
                               epoch=3, history={"loss": [1.0, 0.5]}, arch="mlp",
                               config={"sizes": SIZES})
    assert path == os.fspath(tmp_path / "ckpt.npz")

    with backends.use(target) as dst:
        xdl.manual_seed(123)  # other initial weights, so loading has to overwrite them
        fresh = MLP(SIZES)
        fresh_optimizer = optim.Adam(fresh.parameters(), lr=0.5)
        fresh_schedule = optim.StepLR(fresh_optimizer, step_size=2, gamma=0.5)
        assert not np.array_equal(_host_state(fresh)["0.weight"],
                                  _host_state(model)["0.weight"])
        loaded = checkpoint.load(path, fresh, fresh_optimizer, fresh_schedule)

        assert loaded.epoch == 3
        assert loaded.header["history"] == {"loss": [1.0, 0.5]}
        for p in fresh.parameters():
            assert backends.backend_of(p.data) == dst
            assert backends.dtype_name(p.data.dtype) == "float32"
        _assert_same_state(_host_state(fresh), _host_state(model))

        # optimizer: hyper-parameters, step counts and moment estimates
        assert fresh_optimizer.param_groups[0]["betas"] == (0.8, 0.9)
        assert fresh_optimizer.param_groups[0]["lr"] == pytest.approx(0.005, rel=1e-15)
        for p, q in zip(model.parameters(), fresh.parameters()):
            assert fresh_optimizer.state[q]["step"] == 2
            for name in ("exp_avg", "exp_avg_sq"):
                value = fresh_optimizer.state[q][name]
                assert backends.backend_of(value) == dst
                np.testing.assert_array_equal(backends.to_numpy(value),
                                              backends.to_numpy(optimizer.state[p][name]))
        # schedule
        assert fresh_schedule.last_epoch == 3
        assert fresh_schedule.base_lrs == [0.01]
        assert fresh_schedule.get_last_lr() == schedule.get_last_lr()

        _train_step(fresh, fresh_optimizer, dst, seed=7)
    before = _host_state(model)
    with backends.use(source) as src:
        _train_step(model, optimizer, src, seed=7)
    after = _host_state(model)
    assert not np.allclose(after["0.weight"], before["0.weight"], rtol=0, atol=1e-4)
    _assert_same_state(_host_state(fresh), after, rtol=1e-5, atol=1e-6)


def test_round_trip_keeps_float64(tmp_path, backend):
    model = MLP(SIZES).to(dtype="float64")
    path = checkpoint.save(tmp_path / "f64.npz", model)
    fresh = MLP(SIZES).to(dtype="float64")
    checkpoint.load(path, fresh)
    for p in fresh.parameters():
        assert backends.dtype_name(p.data.dtype) == "float64"
        assert backends.backend_of(p.data) == backend
    _assert_same_state(_host_state(fresh), _host_state(model))
    assert checkpoint.read(path).header["dtypes"]["0.weight"] == "float64"


def test_load_model_rebuilds_from_arch_and_config(tmp_path):
    with backends.use("numpy") as numpy_backend:
        xdl.manual_seed(5)
        model = MLP([3, 5, 7, 2], activation="tanh")
        path = checkpoint.save(tmp_path / "m.npz", model, arch="mlp",
                               config={"sizes": [3, 5, 7, 2], "activation": "tanh"})
        rebuilt = checkpoint.load_model(path)
        assert isinstance(rebuilt, MLP)
        assert [tuple(p.shape) for p in rebuilt.parameters()] == \
            [tuple(p.shape) for p in model.parameters()]
        _assert_same_state(_host_state(rebuilt), _host_state(model))
        x, _ = _batch(numpy_backend, 0)
        x = x[:, :3]
        np.testing.assert_array_equal(backends.to_numpy(rebuilt(x)),
                                      backends.to_numpy(model(x)))
        # the config's activation is used (relu would give other outputs)
        relu = MLP([3, 5, 7, 2]).load_state_dict(model.state_dict())
        assert not np.allclose(backends.to_numpy(relu(x)), backends.to_numpy(model(x)))


@pytest.mark.parametrize("name", HOST_BACKENDS)
def test_load_model_onto_a_backend_keeps_dtype(tmp_path, name):
    _require(name)
    with backends.use("numpy"):
        model = MLP(SIZES).to(dtype="float64")
        path = checkpoint.save(tmp_path / "m.npz", model, arch="mlp", config={"sizes": SIZES})
    rebuilt = checkpoint.load_model(path, backend=name)
    for p in rebuilt.parameters():
        assert backends.backend_of(p.data).name == name
        assert backends.dtype_name(p.data.dtype) == "float64"
    _assert_same_state(_host_state(rebuilt), _host_state(model))


def test_load_model_without_arch_is_refused(tmp_path):
    path = checkpoint.save(tmp_path / "noarch.npz", MLP(SIZES))
    with pytest.raises(CheckpointError, match="noarch.npz"):
        checkpoint.load_model(path)


# -- atomic write ---------------------------------------------------------------------------


def test_save_leaves_no_temporary_file(tmp_path, saved):
    path, _ = saved
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    checkpoint.save(path, MLP(SIZES))  # overwrite in place
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


def test_failed_write_keeps_previous_checkpoint(tmp_path, saved, monkeypatch):
    path, model = saved
    before = path.read_bytes()

    def savez_that_fails(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a checkpoint " * 64)
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.np, "savez", savez_that_fails)
    xdl.manual_seed(99)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, MLP(SIZES), arch="mlp", config={"sizes": SIZES})
    monkeypatch.undo()

    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    assert path.read_bytes() == before
    restored = MLP(SIZES)
    checkpoint.load(path, restored)
    _assert_same_state(_host_state(restored), _host_state(model))


# -- refused files ----------------------------------------------------------------------------


def _arrays_and_header(path):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(bytes(arrays.pop(checkpoint.HEADER_KEY)).decode("utf-8"))
    return arrays, header


def _header_array(header):
    return np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)


def _write_npz(path, arrays, header=None):
    if header is not None:
        arrays = {**arrays, checkpoint.HEADER_KEY: _header_array(header)}
    with open(path, "wb") as stream:
        np.savez(stream, **arrays)


UNPICKLED = []


def _record_unpickling():
    UNPICKLED.append(True)
    return "unpickled"


class _Trap:
    """Unpickling this object calls ``_record_unpickling``."""

    def __reduce__(self):
        return (_record_unpickling, ())


def _truncated(source, path):
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _random_bytes(source, path):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _empty(source, path):
    path.write_bytes(b"")


def _no_header(source, path):
    arrays, _ = _arrays_and_header(source)
    _write_npz(path, arrays)


def _newer_version(source, path):
    arrays, header = _arrays_and_header(source)
    _write_npz(path, arrays, {**header, "version": checkpoint.VERSION + 1})


def _other_format(source, path):
    arrays, header = _arrays_and_header(source)
    _write_npz(path, arrays, {**header, "format": "something-else"})


def _header_not_json(source, path):
    arrays, _ = _arrays_and_header(source)
    _write_npz(path, {**arrays, checkpoint.HEADER_KEY: np.frombuffer(b"\xff{not json",
                                                                       dtype=np.uint8)})


def _missing_array(source, path):
    arrays, header = _arrays_and_header(source)
    del arrays["model/2.bias"]
    _write_npz(path, arrays, header)


def _object_array(source, path):
    arrays, header = _arrays_and_header(source)
    arrays["model/0.weight"] = np.array([_Trap(), _Trap()], dtype=object)
    _write_npz(path, arrays, header)


@pytest.mark.parametrize("corrupt, reason", [
    (_truncated, None), (_random_bytes, None), (_empty, None),
    (_no_header, "not an xdl checkpoint"), (_newer_version, "newer"),
    (_other_format, "not an xdl checkpoint"), (_header_not_json, None),
    (_missing_array, "2.bias"), (_object_array, None),
], ids=lambda v: getattr(v, "__name__", "").strip("_") if callable(v) else str(v))
def test_refuses_files_that_are_not_checkpoints(tmp_path, saved, corrupt, reason):
    source, _ = saved
    path = tmp_path / f"bad{corrupt.__name__}.npz"
    corrupt(source, path)
    UNPICKLED.clear()
    with pytest.raises(CheckpointError, match=re.escape(path.name)) as info:
        checkpoint.read(path)
    if reason is not None:
        assert reason in str(info.value)
    model = MLP(SIZES)
    before = _host_state(model)
    with pytest.raises(CheckpointError, match=re.escape(path.name)):
        checkpoint.load(path, model)
    _assert_same_state(_host_state(model), before)
    with pytest.raises(CheckpointError, match=re.escape(path.name)):
        checkpoint.load_model(path)
    assert UNPICKLED == []


def test_object_array_trap_would_fire_if_unpickled(tmp_path, saved):
    """The trap used above is real: loading with pickles allowed does call it."""
    source, _ = saved
    path = tmp_path / "trap.npz"
    _object_array(source, path)
    UNPICKLED.clear()
    with np.load(path, allow_pickle=True) as archive:
        archive["model/0.weight"]
    assert UNPICKLED == [True, True]


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        checkpoint.read(tmp_path / "absent.npz")


def test_refuses_optimizer_of_another_type(saved):
    path, _ = saved
    model = MLP(SIZES)
    with pytest.raises(CheckpointError, match=r"Adam.*SGD|SGD.*Adam"):
        checkpoint.load(path, model, optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(CheckpointError, match="AdamW"):
        checkpoint.load(path, model, optim.AdamW(model.parameters()))


def test_refuses_optimizer_when_none_was_saved(tmp_path):
    model = MLP(SIZES)
    path = checkpoint.save(tmp_path / "weights-only.npz", model)
    with pytest.raises(CheckpointError, match="weights-only.npz"):
        checkpoint.load(path, model, optim.Adam(model.parameters()))


def test_load_into_other_architecture_names_the_key(saved):
    path, _ = saved
    with pytest.raises(ValueError, match=r"0\.weight.*\(6, 4\).*\(8, 4\)"):
        checkpoint.load(path, MLP([4, 6, 3]))


# -- Module.load_state_dict errors --------------------------------------------------------------


def _host_dict(model):
    return {k: v.copy() for k, v in _host_state(model).items()}


def test_load_state_dict_wrong_shape_names_key_and_shapes(backend):
    model = MLP(SIZES)
    before = _host_state(model)
    state = _host_dict(MLP(SIZES))
    state["0.weight"] = np.zeros((9, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"0\.weight") as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert "(8, 4)" in message and "(9, 4)" in message
    _assert_same_state(_host_state(model), before)  # nothing was loaded


def test_load_state_dict_missing_key(backend):
    model = MLP(SIZES)
    before = _host_state(model)
    state = _host_dict(MLP(SIZES))
    del state["2.bias"]
    with pytest.raises(ValueError, match=r"2\.bias"):
        model.load_state_dict(state)
    _assert_same_state(_host_state(model), before)


def test_load_state_dict_unexpected_key(backend):
    model = MLP(SIZES)
    before = _host_state(model)
    state = _host_dict(MLP(SIZES))
    state["4.weight"] = np.zeros((3, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"4\.weight"):
        model.load_state_dict(state)
    _assert_same_state(_host_state(model), before)


def test_load_state_dict_not_strict_loads_what_matches(backend):
    model = MLP(SIZES)
    source = MLP(SIZES)
    state = _host_dict(source)
    del state["2.bias"]
    state["4.weight"] = np.zeros((3, 3), dtype=np.float32)
    bias_before = _host_state(model)["2.bias"]
    model.load_state_dict(state, strict=False)
    got = _host_state(model)
    np.testing.assert_array_equal(got["0.weight"], state["0.weight"])
    np.testing.assert_array_equal(got["2.bias"], bias_before)


def test_load_state_dict_copies_instead_of_sharing(backend):
    """Training the source model afterwards must not change the loaded one."""
    source = MLP(SIZES)
    xdl.manual_seed(3)
    target = MLP(SIZES)
    target.load_state_dict(source.state_dict())
    loaded = _host_state(target)
    optimizer = optim.SGD(source.parameters(), lr=0.1)
    for p in source.parameters():
        p.grad = on(backend, np.ones(p.shape), "float32")
    optimizer.step()
    _assert_same_state(_host_state(target), loaded)
    assert not np.array_equal(_host_state(source)["0.weight"], loaded["0.weight"])


def test_atomic_writes_get_ordinary_file_permissions(tmp_path):
    import os
    import stat

    from xdl.checkpoint import write_atomically

    path = write_atomically(tmp_path / "file.bin", lambda stream: stream.write(b"x"))
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask
    assert open(path, "rb").read() == b"x"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]  # no temporary left
