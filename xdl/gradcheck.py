"""Numerical gradient check of any Module or loss against its hand-written backward.

The module's outputs y_k are projected on fixed random arrays R_k to a scalar
f = Σ_k Σ R_k ⊙ y_k. The analytic gradients come from ``backward(R_1, ...)``; the
numerical ones from central differences

    ∂f/∂x_j ≈ (f(x + ε e_j) − f(x − ε e_j)) / 2ε

for every element of every checked input and parameter. Element j passes when
|analytic − numeric| ≤ atol + rtol·max(|analytic|, |numeric|). Run it in float64
(``module.to(dtype="float64")``); the forward must be deterministic (dropout off).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdl import backends
from xdl.nn.module import Module, no_grad


class GradcheckError(AssertionError):
    """A backward pass disagrees with finite differences; the message says where."""


@dataclass
class GradcheckResult:
    """Outcome of :func:`gradcheck`: the worst element over everything checked."""

    ok: bool
    max_rel_error: float
    worst: str
    checked: list[str] = field(default_factory=list)

    def __str__(self):
        verdict = "ok" if self.ok else "FAILED"
        return (f"gradcheck {verdict}: worst relative error {self.max_rel_error:.3e} at "
                f"{self.worst} (checked {', '.join(self.checked)})")


def _flatten(structure):
    """Arrays of a nested tuple/list output, in order."""
    if isinstance(structure, (tuple, list)):
        return [leaf for item in structure for leaf in _flatten(item)]
    return [structure]


def _rebuild(structure, leaves):
    """``structure`` with its arrays replaced, in order, by ``leaves`` (an iterator)."""
    if isinstance(structure, (tuple, list)):
        return type(structure)(_rebuild(item, leaves) for item in structure)
    return next(leaves)


def _is_float(x) -> bool:
    return hasattr(x, "dtype") and "float" in backends.dtype_name(x.dtype)


def gradcheck(module: Module, *inputs, eps: float = 1e-6, rtol: float = 1e-5,
              atol: float = 1e-8, inputs_to_check=None, check_params: bool = True,
              samples: int | None = None, seed: int = 0,
              raise_on_failure: bool = True) -> GradcheckResult:
    """Check ``module.backward`` (input and parameter gradients) by finite differences.

    ``inputs_to_check`` lists input positions (default: every float input the
    backward returns a gradient for). ``samples`` checks that many seeded random
    elements of each array instead of all of them (for whole models). Raises
    :class:`GradcheckError` on failure unless ``raise_on_failure`` is False; returns
    a :class:`GradcheckResult`.
    """
    float_arrays = [x for x in inputs if _is_float(x)] + [p.data for p in module.parameters()]
    for array in float_arrays:
        if backends.dtype_name(array.dtype) != "float64":
            raise ValueError(f"gradcheck: {type(module).__name__} must run in float64 "
                             f"(module.to(dtype='float64') and float64 inputs), got "
                             f"{backends.dtype_name(array.dtype)}")
    outputs = module(*inputs)
    leaves = _flatten(outputs)
    rng = backends.host_generator(seed)
    projections = [
        backends.to_device(rng.standard_normal(tuple(y.shape)), backends.backend_of(y),
                           dtype=y.dtype)
        for y in leaves
    ]

    def objective(*args):
        with no_grad():
            ys = _flatten(module(*args))
        xp = backends.namespace(ys[0])
        return sum(xp.sum(y * r) for y, r in zip(ys, projections))

    module.zero_grad()
    grads = module.backward(*_as_grad_arguments(outputs, projections))
    grads = grads if isinstance(grads, tuple) else (grads,)

    if inputs_to_check is None:
        inputs_to_check = [i for i, x in enumerate(inputs)
                           if _is_float(x) and i < len(grads) and grads[i] is not None]
    comparisons = []
    for i in inputs_to_check:
        def evaluate_input(perturbed, i=i):
            args = list(inputs)
            args[i] = perturbed
            return objective(*args)

        _check_shape(module, f"input {i}", grads[i], inputs[i])
        chosen = _chosen_elements(inputs[i], samples, rng)
        numeric = _numeric_gradient(inputs[i], evaluate_input, eps, chosen)
        comparisons.append((f"input {i}", _select(grads[i], chosen), numeric, chosen,
                            tuple(inputs[i].shape)))
    if check_params:
        for name, param in module.named_parameters():
            original = param.data

            def evaluate_param(perturbed, param=param):
                param.data = perturbed
                return objective(*inputs)

            chosen = _chosen_elements(original, samples, rng)
            numeric = _numeric_gradient(original, evaluate_param, eps, chosen)
            param.data = original
            analytic = param.grad
            if analytic is None:
                analytic = backends.namespace(original).zeros_like(original)
            _check_shape(module, f"parameter {name}", analytic, original)
            comparisons.append((f"parameter {name}", _select(analytic, chosen), numeric,
                                chosen, tuple(original.shape)))
    result = _compare(comparisons, rtol, atol)
    if raise_on_failure and not result.ok:
        raise GradcheckError(f"{type(module).__name__}: {result}")
    return result


def _as_grad_arguments(outputs, projections):
    """backward's arguments: one gradient per output, nested like the outputs."""
    if isinstance(outputs, tuple):
        return _rebuild(outputs, iter(projections))
    return (projections[0],)


def _check_shape(module, label, gradient, value):
    if tuple(gradient.shape) != tuple(value.shape):
        raise GradcheckError(f"{type(module).__name__}: the gradient of {label} has shape "
                             f"{tuple(gradient.shape)}, expected {tuple(value.shape)}")


def _chosen_elements(x, samples, rng):
    """Flat indices to check: all of them, or ``samples`` seeded random ones."""
    size = 1
    for n in x.shape:
        size *= n
    if samples is None or samples >= size:
        return list(range(size))
    return sorted(int(j) for j in rng.choice(size, samples, replace=False))


def _select(x, chosen):
    """The ``chosen`` flat elements of ``x`` as a 1-D array."""
    xp = backends.namespace(x)
    flat = xp.reshape(x, (-1,))
    index = xp.asarray(chosen, dtype=xp.int64, device=flat.device)
    return xp.take(flat, index, axis=0)


def _numeric_gradient(x, evaluate, eps, chosen):
    """Central differences of ``evaluate`` around ``x`` at the ``chosen`` flat elements."""
    xp = backends.namespace(x)
    shape = tuple(x.shape)
    base = xp.reshape(xp.asarray(x, copy=True), (-1,))  # never written to
    flat = xp.asarray(base, copy=True)
    numeric = xp.zeros((len(chosen),), dtype=x.dtype, device=flat.device)
    for position, j in enumerate(chosen):
        flat[j] = base[j] + eps
        f_plus = evaluate(xp.reshape(flat, shape))
        flat[j] = base[j] - eps
        f_minus = evaluate(xp.reshape(flat, shape))
        flat[j] = base[j]
        numeric[position] = (f_plus - f_minus) / (2.0 * eps)
    return numeric


def _compare(comparisons, rtol, atol) -> GradcheckResult:
    worst_ratio, worst_rel, worst_where = -1.0, 0.0, "nothing"
    for label, analytic, numeric, chosen, shape in comparisons:
        a = backends.to_numpy(analytic).reshape(-1)
        n = backends.to_numpy(numeric).reshape(-1)
        if a.size == 0:
            continue
        error = abs(a - n)
        scale = abs(a).clip(min=abs(n))
        ratio = error / (atol + rtol * scale)
        j = int(ratio.argmax())
        if ratio[j] > worst_ratio:
            worst_ratio = float(ratio[j])
            worst_rel = float(error[j] / max(scale[j], 1e-300))
            index = tuple(int(k) for k in _unravel(chosen[j], shape))
            worst_where = (f"{label}{list(index)}: analytic {a[j]:.6e}, "
                           f"numeric {n[j]:.6e}")
    return GradcheckResult(worst_ratio <= 1.0, worst_rel, worst_where,
                           [c[0] for c in comparisons])


def _unravel(flat_index, shape):
    index = []
    for size in reversed(shape):
        index.append(flat_index % size)
        flat_index //= size
    return reversed(index)
