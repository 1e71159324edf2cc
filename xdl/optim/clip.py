"""Gradient clipping, computed on the device (no host round-trip)."""

from __future__ import annotations

from xdl import backends


def clip_grad_norm_(parameters, max_norm: float, eps: float = 1e-6):
    """Scale all gradients by min(1, max_norm / (‖g‖₂ + eps)), ‖g‖₂ over all of them.

    Returns the total norm before clipping, as a 0-d device array.
    """
    grads = [p for p in parameters if p.grad is not None]
    if not grads:
        raise ValueError("clip_grad_norm_: no parameter has a gradient")
    xp = backends.namespace(grads[0].grad)
    total = xp.sqrt(sum(xp.sum(p.grad * p.grad) for p in grads))
    scale = xp.minimum(max_norm / (total + eps), 1.0)
    for p in grads:
        p.grad = p.grad * scale
    return total


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient element to [−clip_value, clip_value]."""
    for p in parameters:
        if p.grad is not None:
            p.grad = backends.namespace(p.grad).clip(p.grad, -clip_value, clip_value)
