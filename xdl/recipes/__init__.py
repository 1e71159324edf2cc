"""Recipes: the books' experiments, each trained on real data by one command.

A recipe is a function ``run(config) -> dict`` registered with its name, the book
chapter it follows and its default hyper-parameters. ``xdl train NAME`` builds a
:class:`RunConfig` from the command line and writes what the run returns to
``metrics.json`` beside the checkpoint and the curves.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RunConfig:
    """The command line's settings; None means "the recipe's default"."""

    backend: str | None = None
    device: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    data_dir: str | None = None
    out: str = "runs"
    progress: bool = True
    classifier: str | None = None
    resume: str | None = None

    def data_root(self, name: str) -> str | None:
        """The folder of dataset ``name`` under ``--data-dir`` (None: the loader searches)."""
        return os.path.join(self.data_dir, name) if self.data_dir else None


@dataclass
class Recipe:
    name: str
    chapter: str
    summary: str
    run: Callable = field(repr=False)
    defaults: dict = field(default_factory=dict)
    #: whether ``--resume`` (RunConfig.resume) continues a run from its checkpoint
    resumable: bool = False

    def settings(self, config: RunConfig) -> dict:
        """The recipe's defaults overridden by what the command line set."""
        chosen = dict(self.defaults)
        for key in ("epochs", "batch_size", "lr"):
            if getattr(config, key) is not None:
                chosen[key] = getattr(config, key)
        return chosen


RECIPES: dict[str, Recipe] = {}


def recipe(name: str, chapter: str, summary: str, resumable: bool = False, **defaults):
    """Decorator registering ``run(config, settings) -> dict`` as recipe ``name``;
    ``resumable`` recipes honour ``config.resume``."""

    def decorate(run):
        RECIPES[name] = Recipe(name, chapter, summary, run, defaults, resumable)
        return run

    return decorate


def get(name: str) -> Recipe:
    _load_all()
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; `xdl recipes` lists them: "
                       f"{', '.join(sorted(RECIPES))}")
    return RECIPES[name]


def all_recipes() -> list[Recipe]:
    _load_all()
    return list(RECIPES.values())


def _load_all():
    from xdl.recipes import (  # noqa: F401  (registers their recipes)
        classic,
        classic_cnn,
        cnn,
        generative,
        seq2seq,
        sequence,
    )
