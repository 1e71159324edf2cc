"""Parameter initialisers (PyTorch's names: the trailing ``_`` means in place).

Every draw is made on the host from :func:`xdl.backends.host_rng` in float64 and then
moved to the parameter's backend and dtype, so one seed gives the same initial
weights on every backend.

For a weight of shape (out, in, *kernel): fan_in = in·∏kernel, fan_out = out·∏kernel.

- Xavier/Glorot uniform: U(−a, a), a = gain·√(6 / (fan_in + fan_out))
- Xavier/Glorot normal:  N(0, σ²), σ = gain·√(2 / (fan_in + fan_out))
- He/Kaiming uniform:    U(−b, b), b = gain·√(3 / fan),  gain = √(2 / (1 + a²)) for leaky ReLU
- He/Kaiming normal:     N(0, σ²), σ = gain / √fan
"""

from __future__ import annotations

import math

from xdl import backends
from xdl.nn.module import Parameter

DEFAULT_DTYPE = "float32"


def empty_parameter(shape, dtype=None) -> Parameter:
    """A zero-filled Parameter on the current backend (float32 unless ``dtype``)."""
    backend = backends.current()
    data = backend.xp.zeros(tuple(shape), dtype=backend.dtype(dtype or DEFAULT_DTYPE),
                            device=backend.device)
    return Parameter(data)


def _fill(param: Parameter, host_values) -> Parameter:
    param.data = backends.to_device(host_values, backends.backend_of(param.data),
                                    dtype=param.data.dtype)
    return param


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel), or (n, n) for a vector."""
    if len(shape) < 2:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for ``nonlinearity`` (PyTorch's table)."""
    if nonlinearity in ("linear", "identity", "sigmoid", "conv1d", "conv2d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1.0 + slope**2))
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def uniform_(param: Parameter, low: float = 0.0, high: float = 1.0) -> Parameter:
    return _fill(param, backends.host_rng().uniform(low, high, param.shape))


def normal_(param: Parameter, mean: float = 0.0, std: float = 1.0) -> Parameter:
    return _fill(param, backends.host_rng().normal(mean, std, param.shape))


def constant_(param: Parameter, value: float) -> Parameter:
    backend = backends.backend_of(param.data)
    param.data = backend.xp.full(param.shape, value, dtype=param.data.dtype,
                                 device=backend.device)
    return param


def zeros_(param: Parameter) -> Parameter:
    return constant_(param, 0.0)


def ones_(param: Parameter) -> Parameter:
    return constant_(param, 1.0)


def xavier_uniform_(param: Parameter, gain: float = 1.0) -> Parameter:
    fan_in, fan_out = fans(param.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(param, -bound, bound)


def xavier_normal_(param: Parameter, gain: float = 1.0) -> Parameter:
    fan_in, fan_out = fans(param.shape)
    return normal_(param, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_std(param, a, mode, nonlinearity):
    fan_in, fan_out = fans(param.shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(param: Parameter, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Parameter:
    bound = math.sqrt(3.0) * _kaiming_std(param, a, mode, nonlinearity)
    return uniform_(param, -bound, bound)


def kaiming_normal_(param: Parameter, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Parameter:
    return normal_(param, 0.0, _kaiming_std(param, a, mode, nonlinearity))


# The books' names for the same schemes.
glorot_uniform_ = xavier_uniform_
glorot_normal_ = xavier_normal_
he_uniform_ = kaiming_uniform_
he_normal_ = kaiming_normal_
