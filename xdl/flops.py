"""Counting a model's multiply-adds from the shapes one forward pass sees.

A Conv2d with output (N, O, OH, OW) and weight (O, C/G, kh, kw) costs
N·O·OH·OW·(C/G)·kh·kw multiply-adds; a Linear with input (…, in) and weight (out, in)
costs (number of rows)·in·out. Other layers (batch norm, activations, pooling) are
not counted, as in the usual tables; FLOPs ≈ 2 × multiply-adds.
"""

from __future__ import annotations

import math

from xdl import backends
from xdl.nn.conv import Conv2d
from xdl.nn.linear import Linear
from xdl.nn.module import no_grad


def count_parameters(model) -> int:
    """Number of trainable scalars."""
    return sum(math.prod(p.shape) for p in model.parameters())


def count_macs(model, input_shape, dtype: str = "float32") -> dict[str, int]:
    """Multiply-adds of each Conv2d and Linear (by dotted name) for one forward pass on
    zeros of ``input_shape`` (batch included), plus ``"total"``. The model runs in eval
    mode under no_grad; its mode is restored."""
    counted = {}
    layers = [(name, module) for name, module in model.named_modules()
              if isinstance(module, (Conv2d, Linear))]

    def counting(name, module):
        forward = module.forward

        def wrapped(x):
            y = forward(x)
            if isinstance(module, Conv2d):
                per_output = math.prod(module.weight.shape[1:])
            else:
                per_output = module.in_features
            counted[name] = counted.get(name, 0) + math.prod(y.shape) * per_output
            return y

        return wrapped

    was_training = model.training
    backend = backends.current()
    x = backend.xp.zeros(tuple(input_shape), dtype=backend.dtype(dtype), device=backend.device)
    try:
        for name, module in layers:
            object.__setattr__(module, "forward", counting(name, module))
        model.eval()
        with no_grad():
            model(x)
    finally:
        for _, module in layers:
            object.__delattr__(module, "forward")
        model.train(was_training)
    counted["total"] = sum(counted.values())
    return counted
