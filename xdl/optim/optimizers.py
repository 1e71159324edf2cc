"""First-order optimizers with PyTorch's names, defaults and update formulas.

Each optimizer holds ``param_groups`` (lists of parameters with their own
hyper-parameters, all Python numbers) and per-parameter ``state`` (device arrays and
a Python step count). ``step()`` updates ``Parameter.data`` in place from
``Parameter.grad``; parameters without a gradient are skipped. Notation below:
g the gradient, θ the parameter, η the learning rate, λ the weight decay, t the step.
"""

from __future__ import annotations

import math

from xdl import backends
from xdl.nn.module import Parameter


class Optimizer:
    """Base: parameter groups, ``zero_grad``, ``step``, ``state_dict``."""

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        for group in groups:
            self.add_param_group(group)
        self.state: dict[Parameter, dict] = {}

    def add_param_group(self, group: dict) -> None:
        """Add parameters with their own options (missing ones take the defaults)."""
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown options {sorted(unknown)}")
        merged = {**self.defaults, **group, "params": list(group["params"])}
        for param in merged["params"]:
            if not isinstance(param, Parameter):
                raise TypeError(f"{type(self).__name__}: expected Parameters, got "
                                f"{type(param).__name__}")
        self.param_groups.append(merged)

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for param in group["params"]:
                param.grad = None

    def step(self) -> None:
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state.setdefault(param, {"step": 0})
                state["step"] += 1
                self.update(param, param.grad, group, state)

    def update(self, param: Parameter, grad, group: dict, state: dict) -> None:
        """Apply one step to ``param.data``; subclasses implement their formula."""
        raise NotImplementedError

    # -- state --------------------------------------------------------------------
    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict:
        """{"state": {index: {name: array or number}}, "param_groups": [...]},
        parameters numbered in group order, as in PyTorch."""
        index = {p: i for i, p in enumerate(self._params())}
        return {
            "state": {index[p]: dict(s) for p, s in self.state.items() if p in index},
            "param_groups": [
                {**{k: v for k, v in g.items() if k != "params"},
                 "params": [index[p] for p in g["params"]]}
                for g in self.param_groups
            ],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and state; arrays move to each parameter's backend."""
        params = self._params()
        groups = state_dict["param_groups"]
        if [len(g["params"]) for g in groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the saved parameter "
                             "groups do not match this optimizer's")
        for group, saved in zip(self.param_groups, groups):
            group.update({k: _plain(v) for k, v in saved.items() if k != "params"})
        self.state = {}
        for key, saved in state_dict["state"].items():
            param = params[int(key)]
            self.state[param] = {
                name: (value if isinstance(value, (int, float))
                       else backends.copy_to(value, param.data))
                for name, value in saved.items()
            }

    def __repr__(self):
        options = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({options})"


def _plain(value):
    """JSON gives lists for tuples (Adam's betas); hyper-parameters stay tuples."""
    return tuple(value) if isinstance(value, list) else value


def _copy(x):
    return backends.namespace(x).asarray(x, copy=True)


def _with_weight_decay(param, grad, weight_decay):
    return grad if weight_decay == 0 else grad + weight_decay * param.data


class SGD(Optimizer):
    """Stochastic gradient descent with momentum μ and Nesterov's variant.

        g ← g + λθ
        b ← g (first step), else b ← μb + (1 − dampening)·g
        g ← g + μb (nesterov) or g ← b (momentum)
        θ ← θ − ηg
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def update(self, param, grad, group, state):
        grad = _with_weight_decay(param, grad, group["weight_decay"])
        mu = group["momentum"]
        if mu != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = buf = _copy(grad)
            else:
                buf = state["momentum_buffer"]
                buf *= mu
                buf += grad if group["dampening"] == 0 else (1.0 - group["dampening"]) * grad
            grad = grad + mu * buf if group["nesterov"] else buf
        param.data -= group["lr"] * grad


class Adagrad(Optimizer):
    """Adagrad: s ← s + g²;  θ ← θ − η_t·g / (√s + ε),  η_t = η / (1 + (t − 1)·lr_decay)."""

    def __init__(self, params, lr: float = 0.01, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps))

    def update(self, param, grad, group, state):
        xp = backends.namespace(param.data)
        grad = _with_weight_decay(param, grad, group["weight_decay"])
        if "sum" not in state:
            state["sum"] = xp.full(param.shape, group["initial_accumulator_value"],
                                   dtype=param.data.dtype, device=param.data.device)
        state["sum"] += grad * grad
        lr = group["lr"] / (1.0 + (state["step"] - 1) * group["lr_decay"])
        param.data -= lr * grad / (xp.sqrt(state["sum"]) + group["eps"])


class RMSprop(Optimizer):
    """RMSprop: v ← αv + (1 − α)g²;  θ ← θ − η·g / (√v + ε).

    centered: also ḡ ← αḡ + (1 − α)g and √v becomes √(v − ḡ²).
    momentum μ: b ← μb + g / (√v + ε);  θ ← θ − ηb.
    """

    def __init__(self, params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def update(self, param, grad, group, state):
        xp = backends.namespace(param.data)
        grad = _with_weight_decay(param, grad, group["weight_decay"])
        alpha = group["alpha"]
        if "square_avg" not in state:
            state["square_avg"] = xp.zeros_like(param.data)
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1.0 - alpha) * grad * grad
        if group["centered"]:
            if "grad_avg" not in state:
                state["grad_avg"] = xp.zeros_like(param.data)
            grad_avg = state["grad_avg"]
            grad_avg *= alpha
            grad_avg += (1.0 - alpha) * grad
            denom = xp.sqrt(square_avg - grad_avg * grad_avg) + group["eps"]
        else:
            denom = xp.sqrt(square_avg) + group["eps"]
        if group["momentum"] > 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = xp.zeros_like(param.data)
            buf = state["momentum_buffer"]
            buf *= group["momentum"]
            buf += grad / denom
            param.data -= group["lr"] * buf
        else:
            param.data -= group["lr"] * grad / denom


class Adadelta(Optimizer):
    """Adadelta: v ← ρv + (1 − ρ)g²;  Δ = √(u + ε) / √(v + ε) · g;
    u ← ρu + (1 − ρ)Δ²;  θ ← θ − ηΔ."""

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def update(self, param, grad, group, state):
        xp = backends.namespace(param.data)
        grad = _with_weight_decay(param, grad, group["weight_decay"])
        rho, eps = group["rho"], group["eps"]
        if "square_avg" not in state:
            state["square_avg"] = xp.zeros_like(param.data)
            state["acc_delta"] = xp.zeros_like(param.data)
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg *= rho
        square_avg += (1.0 - rho) * grad * grad
        delta = xp.sqrt(acc_delta + eps) / xp.sqrt(square_avg + eps) * grad
        acc_delta *= rho
        acc_delta += (1.0 - rho) * delta * delta
        param.data -= group["lr"] * delta


class Adam(Optimizer):
    """Adam: m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;
    θ ← θ − η·m̂ / (√v̂ + ε),  m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ).

    weight_decay adds λθ to g (L2, as PyTorch's Adam); see AdamW for decoupled decay.
    """

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    def update(self, param, grad, group, state):
        xp = backends.namespace(param.data)
        if self.decoupled:
            param.data *= 1.0 - group["lr"] * group["weight_decay"]
        else:
            grad = _with_weight_decay(param, grad, group["weight_decay"])
        beta1, beta2 = group["betas"]
        if "exp_avg" not in state:
            state["exp_avg"] = xp.zeros_like(param.data)
            state["exp_avg_sq"] = xp.zeros_like(param.data)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1.0 - beta1) * grad
        v *= beta2
        v += (1.0 - beta2) * grad * grad
        t = state["step"]
        step_size = group["lr"] / (1.0 - beta1**t)
        denom = xp.sqrt(v) / math.sqrt(1.0 - beta2**t) + group["eps"]
        param.data -= step_size * m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay: θ ← θ(1 − ηλ) before the Adam step."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
