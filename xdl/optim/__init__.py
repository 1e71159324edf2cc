"""Optimizers, learning-rate schedules and gradient clipping."""

from xdl.optim.clip import clip_grad_norm_, clip_grad_value_
from xdl.optim.optimizers import SGD, Adadelta, Adagrad, Adam, AdamW, Optimizer, RMSprop
from xdl.optim.schedules import (
    CosineAnnealingLR,
    ExponentialLR,
    LRScheduler,
    PiecewiseConstantLR,
    StepLR,
)

__all__ = [
    "SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "CosineAnnealingLR", "ExponentialLR",
    "LRScheduler", "Optimizer", "PiecewiseConstantLR", "RMSprop", "StepLR", "clip_grad_norm_",
    "clip_grad_value_",
]
