"""Optimizers, schedules and gradient clipping against independent references.

The reference updates below are plain NumPy written from the formulas in the
docstrings of ``xdl/optim/optimizers.py`` (PyTorch's update rules); when torch is
installed, ``torch.optim`` checks the references themselves.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import on

from xdl import backends, optim
from xdl.nn.module import Parameter

RTOL = 1e-10
STEPS = 5
SHAPES = [(3, 4), (4,)]


# -- fixed problem: initial parameters and per-step gradients ---------------------------


def initial_params():
    rng = np.random.default_rng(42)
    return [rng.normal(size=shape) for shape in SHAPES]


def step_grads(steps=STEPS, seed=7):
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=shape) for shape in SHAPES] for _ in range(steps)]


# -- NumPy references ---------------------------------------------------------------------


def ref_sgd(theta, g, s, t, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
            nesterov=False):
    g = g + weight_decay * theta
    if momentum != 0:
        if t == 1:
            s["b"] = g.copy()
        else:
            s["b"] = momentum * s["b"] + (1 - dampening) * g
        g = g + momentum * s["b"] if nesterov else s["b"]
    return theta - lr * g


def ref_adagrad(theta, g, s, t, lr, lr_decay=0.0, weight_decay=0.0,
                initial_accumulator_value=0.0, eps=1e-10):
    g = g + weight_decay * theta
    s.setdefault("sum", np.full_like(theta, initial_accumulator_value))
    s["sum"] = s["sum"] + g**2
    lr_t = lr / (1 + (t - 1) * lr_decay)
    return theta - lr_t * g / (np.sqrt(s["sum"]) + eps)


def ref_rmsprop(theta, g, s, t, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                centered=False):
    g = g + weight_decay * theta
    s["v"] = alpha * s.get("v", 0.0) + (1 - alpha) * g**2
    if centered:
        s["gbar"] = alpha * s.get("gbar", 0.0) + (1 - alpha) * g
        denom = np.sqrt(s["v"] - s["gbar"] ** 2) + eps
    else:
        denom = np.sqrt(s["v"]) + eps
    if momentum > 0:
        s["b"] = momentum * s.get("b", 0.0) + g / denom
        return theta - lr * s["b"]
    return theta - lr * g / denom


def ref_adadelta(theta, g, s, t, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    g = g + weight_decay * theta
    s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g**2
    delta = np.sqrt(s.get("u", 0.0) + eps) / np.sqrt(s["v"] + eps) * g
    s["u"] = rho * s.get("u", 0.0) + (1 - rho) * delta**2
    return theta - lr * delta


def ref_adam(theta, g, s, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
             decoupled=False):
    b1, b2 = betas
    if decoupled:
        theta = theta * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * theta
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g**2
    m_hat = s["m"] / (1 - b1**t)
    v_hat = s["v"] / (1 - b2**t)
    return theta - lr * m_hat / (np.sqrt(v_hat) + eps)


def ref_adamw(theta, g, s, t, **hp):
    return ref_adam(theta, g, s, t, decoupled=True, **hp)


REFERENCES = {"SGD": ref_sgd, "Adagrad": ref_adagrad, "RMSprop": ref_rmsprop,
              "Adadelta": ref_adadelta, "Adam": ref_adam, "AdamW": ref_adamw}

CONFIGS = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd_momentum": ("SGD", dict(lr=0.1, momentum=0.9)),
    "sgd_nesterov": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    "sgd_weight_decay_dampening": ("SGD", dict(lr=0.1, momentum=0.8, dampening=0.3,
                                               weight_decay=0.05)),
    "adagrad_lr_decay": ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    "adagrad_weight_decay_initial": ("Adagrad", dict(lr=0.1, weight_decay=0.05,
                                                     initial_accumulator_value=0.3, eps=1e-6)),
    "rmsprop": ("RMSprop", dict(lr=0.01, alpha=0.9)),
    "rmsprop_centered": ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True)),
    "rmsprop_momentum": ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5)),
    "rmsprop_centered_momentum_decay": ("RMSprop", dict(lr=0.01, alpha=0.8, eps=1e-4,
                                                        momentum=0.7, centered=True,
                                                        weight_decay=0.1)),
    "adadelta": ("Adadelta", dict(lr=1.0, rho=0.9)),
    "adadelta_weight_decay": ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1)),
    "adam": ("Adam", dict(lr=0.01, betas=(0.8, 0.95))),
    "adam_l2": ("Adam", dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    "adamw": ("AdamW", dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.1)),
}


def reference_run(kind, hp, params, grads):
    """Parameters after each step: a list (per step) of lists (per parameter)."""
    update = REFERENCES[kind]
    thetas = [p.copy() for p in params]
    states = [{} for _ in params]
    history = []
    for t, step in enumerate(grads, 1):
        thetas = [update(th, g, s, t, **hp) for th, g, s in zip(thetas, step, states)]
        history.append([th.copy() for th in thetas])
    return history


def make_params(backend, hosts):
    return [Parameter(on(backend, h)) for h in hosts]


def xdl_steps(optimizer, params, backend, grads):
    history = []
    for step in grads:
        for p, g in zip(params, step):
            p.grad = on(backend, g)
        optimizer.step()
        history.append([backends.to_numpy(p.data).copy() for p in params])
    return history


# -- the update rules ---------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_optimizer_matches_numpy_reference(backend, config):
    kind, hp = CONFIGS[config]
    hosts, grads = initial_params(), step_grads()
    params = make_params(backend, hosts)
    optimizer = getattr(optim, kind)(params, **hp)
    got = xdl_steps(optimizer, params, backend, grads)
    want = reference_run(kind, hp, hosts, grads)
    for t in range(STEPS):
        for got_p, want_p in zip(got[t], want[t]):
            np.testing.assert_allclose(got_p, want_p, rtol=RTOL, atol=0,
                                       err_msg=f"{config}, step {t + 1}")
    for p in params:
        assert backends.backend_of(p.data) == backend
        assert backends.dtype_name(p.data.dtype) == "float64"
    # the run actually moved the parameters
    assert not np.allclose(got[-1][0], hosts[0])


@pytest.mark.parametrize("config", CONFIGS)
def test_reference_and_xdl_match_torch_optim(config):
    torch = pytest.importorskip("torch")
    kind, hp = CONFIGS[config]
    hosts, grads = initial_params(), step_grads()
    tparams = [torch.nn.Parameter(torch.tensor(h, dtype=torch.float64)) for h in hosts]
    toptimizer = getattr(torch.optim, kind)(tparams, **hp)
    want = reference_run(kind, hp, hosts, grads)
    with backends.use("numpy") as numpy_backend:
        params = make_params(numpy_backend, hosts)
        got = xdl_steps(getattr(optim, kind)(params, **hp), params, numpy_backend, grads)
    for t, step in enumerate(grads):
        for p, g in zip(tparams, step):
            p.grad = torch.tensor(g, dtype=torch.float64)
        toptimizer.step()
        for i, p in enumerate(tparams):
            torch_value = p.detach().numpy()
            np.testing.assert_allclose(want[t][i], torch_value, rtol=RTOL, atol=1e-14,
                                       err_msg=f"reference vs torch, {config}, step {t + 1}")
            np.testing.assert_allclose(got[t][i], torch_value, rtol=RTOL, atol=1e-14,
                                       err_msg=f"xdl vs torch, {config}, step {t + 1}")


# -- parameter groups, skipped parameters, options -----------------------------------------


def test_parameter_groups_use_their_own_lr(backend):
    hosts, grads = initial_params(), step_grads(steps=1)
    a, b = make_params(backend, hosts)
    optimizer = optim.SGD([{"params": [a], "lr": 0.5}, {"params": [b]}], lr=0.01,
                          momentum=0.0)
    assert [g["lr"] for g in optimizer.param_groups] == [0.5, 0.01]
    assert optimizer.param_groups[1]["momentum"] == 0.0
    a.grad, b.grad = on(backend, grads[0][0]), on(backend, grads[0][1])
    optimizer.step()
    np.testing.assert_allclose(backends.to_numpy(a.data), hosts[0] - 0.5 * grads[0][0],
                               rtol=RTOL)
    np.testing.assert_allclose(backends.to_numpy(b.data), hosts[1] - 0.01 * grads[0][1],
                               rtol=RTOL)


def test_parameter_groups_adam_own_betas(backend):
    hosts, grads = initial_params(), step_grads(steps=3)
    a, b = make_params(backend, hosts)
    optimizer = optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.1, "betas": (0.5, 0.9)}],
                           lr=0.01)
    got = xdl_steps(optimizer, [a, b], backend, grads)
    want_a = reference_run("Adam", dict(lr=0.01), [hosts[0]], [[s[0]] for s in grads])
    want_b = reference_run("Adam", dict(lr=0.1, betas=(0.5, 0.9)), [hosts[1]],
                           [[s[1]] for s in grads])
    np.testing.assert_allclose(got[-1][0], want_a[-1][0], rtol=RTOL)
    np.testing.assert_allclose(got[-1][1], want_b[-1][0], rtol=RTOL)


def test_parameters_without_grad_are_skipped(backend):
    hosts, grads = initial_params(), step_grads()
    a, b = make_params(backend, hosts)
    optimizer = optim.Adam([a, b], lr=0.01)
    # b gets no gradient for the first two steps, then three
    for t, (ga, gb) in enumerate(grads):
        a.grad = on(backend, ga)
        b.grad = None if t < 2 else on(backend, gb)
        optimizer.step()
        if t < 2:
            np.testing.assert_array_equal(backends.to_numpy(b.data), hosts[1])
            assert b not in optimizer.state
    assert optimizer.state[a]["step"] == 5
    assert optimizer.state[b]["step"] == 3
    # b's bias correction counts only its own three steps
    want_b = reference_run("Adam", dict(lr=0.01), [hosts[1]], [[s[1]] for s in grads[2:]])
    np.testing.assert_allclose(backends.to_numpy(b.data), want_b[-1][0], rtol=RTOL)
    want_a = reference_run("Adam", dict(lr=0.01), [hosts[0]], [[s[0]] for s in grads])
    np.testing.assert_allclose(backends.to_numpy(a.data), want_a[-1][0], rtol=RTOL)


def test_zero_grad_sets_grads_to_none():
    a, b = (Parameter(np.ones(3)) for _ in range(2))
    optimizer = optim.SGD([a, b], lr=0.1)
    a.grad, b.grad = np.ones(3), np.ones(3)
    optimizer.zero_grad()
    assert a.grad is None and b.grad is None


def test_unknown_option_raises():
    p = Parameter(np.zeros(3))
    with pytest.raises(ValueError, match="betas"):
        optim.SGD([{"params": [p], "betas": (0.9, 0.99)}], lr=0.1)
    with pytest.raises(TypeError):
        optim.Adam([p], momentum=0.9)


def test_invalid_construction_raises():
    p = Parameter(np.zeros(3))
    with pytest.raises(ValueError):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(TypeError, match="Parameter"):
        optim.SGD([np.zeros(3)], lr=0.1)


# -- state_dict / load_state_dict ------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_state_dict_round_trip_continues_identically(backend, config):
    kind, hp = CONFIGS[config]
    hosts, grads = initial_params(), step_grads()
    params = make_params(backend, hosts)
    optimizer = getattr(optim, kind)(params, **hp)
    xdl_steps(optimizer, params, backend, grads[:3])
    saved = optimizer.state_dict()

    copies = [Parameter(on(backend, backends.to_numpy(p.data))) for p in params]
    fresh = getattr(optim, kind)(copies)  # default hyper-parameters: restored by loading
    fresh.load_state_dict(saved)
    for key, value in hp.items():
        assert fresh.param_groups[0][key] == value, key
    for p, c in zip(params, copies):
        assert fresh.state[c]["step"] == 3
        for name, value in optimizer.state[p].items():
            loaded = fresh.state[c][name]
            if isinstance(value, (int, float)):
                assert loaded == value
            else:
                assert backends.backend_of(loaded) == backend
                np.testing.assert_array_equal(backends.to_numpy(loaded),
                                              backends.to_numpy(value))

    got = xdl_steps(optimizer, params, backend, grads[3:])
    got_fresh = xdl_steps(fresh, copies, backend, grads[3:])
    for t in range(2):
        for a, b in zip(got[t], got_fresh[t]):
            np.testing.assert_array_equal(a, b, err_msg=f"{config}, step {4 + t}")
    want = reference_run(kind, hp, hosts, grads)
    for a, b in zip(got_fresh[-1], want[-1]):
        np.testing.assert_allclose(a, b, rtol=RTOL)


def test_state_dict_numbers_parameters_in_group_order():
    a, b, c = (Parameter(np.zeros(2)) for _ in range(3))
    optimizer = optim.SGD([{"params": [a, b]}, {"params": [c], "lr": 0.5}], lr=0.1,
                          momentum=0.9)
    c.grad = np.ones(2)
    optimizer.step()
    state = optimizer.state_dict()
    assert [g["params"] for g in state["param_groups"]] == [[0, 1], [2]]
    assert list(state["state"]) == [2]
    assert state["param_groups"][1]["lr"] == 0.5


def test_load_state_dict_refuses_other_group_layout():
    a, b = Parameter(np.zeros(2)), Parameter(np.zeros(2))
    saved = optim.SGD([a, b], lr=0.1).state_dict()
    with pytest.raises(ValueError):
        optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(saved)


# -- learning-rate schedules ---------------------------------------------------------------


def _lrs(schedule, epochs):
    values = [schedule.get_last_lr()]
    for _ in range(epochs):
        schedule.step()
        values.append(schedule.get_last_lr())
    return values


def _two_group_sgd(lr_a=0.1, lr_b=0.4):
    a, b = Parameter(np.zeros(2)), Parameter(np.zeros(2))
    return optim.SGD([{"params": [a], "lr": lr_a}, {"params": [b], "lr": lr_b}], lr=lr_a)


def test_step_lr_sequence():
    schedule = optim.StepLR(_two_group_sgd(), step_size=3, gamma=0.5)
    got = _lrs(schedule, 7)
    want = [[0.1 * 0.5 ** (e // 3), 0.4 * 0.5 ** (e // 3)] for e in range(8)]
    np.testing.assert_allclose(got, want, rtol=1e-15)
    assert schedule.last_epoch == 7


def test_exponential_lr_sequence():
    schedule = optim.ExponentialLR(_two_group_sgd(), gamma=0.9)
    got = _lrs(schedule, 6)
    want = [[0.1 * 0.9**e, 0.4 * 0.9**e] for e in range(7)]
    np.testing.assert_allclose(got, want, rtol=1e-15)


def test_piecewise_constant_lr_sequence():
    optimizer = _two_group_sgd()
    schedule = optim.PiecewiseConstantLR(optimizer, {2: 0.05, 5: 0.01, 4: 0.02})
    got = [lrs[0] for lrs in _lrs(schedule, 7)]
    assert got == [0.1, 0.1, 0.05, 0.05, 0.02, 0.01, 0.01, 0.01]
    # the table ignores the group's own initial rate once it applies
    assert optimizer.param_groups[1]["lr"] == 0.01
    with pytest.raises(ValueError):
        optim.PiecewiseConstantLR(_two_group_sgd(), {})


def test_schedule_changes_the_update_step():
    p = Parameter(np.zeros(1))
    optimizer = optim.SGD([p], lr=1.0)
    schedule = optim.StepLR(optimizer, step_size=1, gamma=0.1)
    schedule.step()
    p.grad = np.ones(1)
    optimizer.step()
    np.testing.assert_allclose(p.data, [-0.1], rtol=1e-15)


@pytest.mark.parametrize("make", [
    lambda opt: optim.StepLR(opt, step_size=2, gamma=0.3),
    lambda opt: optim.ExponentialLR(opt, gamma=0.8),
    lambda opt: optim.PiecewiseConstantLR(opt, {1: 0.05, 3: 0.007}),
], ids=["step", "exponential", "piecewise"])
def test_schedule_state_dict_round_trip(make):
    schedule = make(_two_group_sgd())
    for _ in range(3):
        schedule.step()
    saved = schedule.state_dict()
    assert saved["last_epoch"] == 3
    # a fresh optimizer with other initial rates takes the saved epoch and base rates
    resumed = make(_two_group_sgd(lr_a=0.9, lr_b=0.9))
    resumed.load_state_dict(saved)
    assert resumed.last_epoch == 3
    assert resumed.get_last_lr() == schedule.get_last_lr()
    np.testing.assert_allclose(_lrs(resumed, 4), _lrs(schedule, 4), rtol=1e-15)


# -- gradient clipping ---------------------------------------------------------------------


def _grads_with_norm(backend):
    rng = np.random.default_rng(3)
    hosts = [rng.normal(size=shape) for shape in SHAPES]
    params = [Parameter(on(backend, np.zeros(shape))) for shape in SHAPES]
    for p, g in zip(params, hosts):
        p.grad = on(backend, g)
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in hosts))
    return params, hosts, norm


def test_clip_grad_norm_scales_when_above(backend):
    params, hosts, norm = _grads_with_norm(backend)
    skipped = Parameter(on(backend, np.zeros(2)))
    max_norm = norm / 4
    total = optim.clip_grad_norm_(params + [skipped], max_norm)
    assert backends.backend_of(total) == backend
    assert tuple(total.shape) == ()
    np.testing.assert_allclose(backends.to_numpy(total), norm, rtol=1e-12)
    scale = max_norm / (norm + 1e-6)
    for p, g in zip(params, hosts):
        np.testing.assert_allclose(backends.to_numpy(p.grad), g * scale, rtol=1e-12)
    new_norm = math.sqrt(sum(float(np.sum(backends.to_numpy(p.grad) ** 2)) for p in params))
    assert new_norm == pytest.approx(max_norm, rel=1e-6)
    assert skipped.grad is None


def test_clip_grad_norm_leaves_small_gradients(backend):
    params, hosts, norm = _grads_with_norm(backend)
    total = optim.clip_grad_norm_(params, norm * 2)
    np.testing.assert_allclose(backends.to_numpy(total), norm, rtol=1e-12)
    for p, g in zip(params, hosts):
        np.testing.assert_array_equal(backends.to_numpy(p.grad), g)


def test_clip_grad_norm_without_gradients_raises():
    with pytest.raises(ValueError):
        optim.clip_grad_norm_([Parameter(np.zeros(2))], 1.0)


def test_clip_grad_value(backend):
    params, hosts, _ = _grads_with_norm(backend)
    skipped = Parameter(on(backend, np.zeros(2)))
    optim.clip_grad_value_(params + [skipped], 0.5)
    for p, g in zip(params, hosts):
        assert backends.backend_of(p.grad) == backend
        np.testing.assert_array_equal(backends.to_numpy(p.grad), np.clip(g, -0.5, 0.5))
    assert any(np.any(np.abs(g) > 0.5) for g in hosts)
    assert skipped.grad is None
