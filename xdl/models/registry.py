"""Model registry: architecture names → factories, used by recipes and checkpoints.

A checkpoint stores the architecture name and its config, so
``xdl.checkpoint.load_model(path)`` can rebuild the model before loading weights.
"""

from __future__ import annotations

from collections.abc import Callable

_MODELS: dict[str, Callable] = {}


def register(name: str):
    """Decorator: ``@register("mlp")`` makes ``create("mlp", **config)`` call the factory."""

    def decorate(factory):
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = factory
        return factory

    return decorate


def create(name: str, **config):
    """A new model of architecture ``name`` built with ``config``."""
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}: registered are {', '.join(sorted(_MODELS))}")
    return _MODELS[name](**config)


def names() -> list[str]:
    return sorted(_MODELS)
