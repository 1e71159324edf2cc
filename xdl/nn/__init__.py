"""Layers, losses and containers, each with a hand-written forward and backward."""

from xdl.nn import init
from xdl.nn.activation import ELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, activation
from xdl.nn.dropout import Dropout
from xdl.nn.linear import Flatten, Identity, Linear
from xdl.nn.losses import BCEWithLogitsLoss, CrossEntropyLoss, Loss, MSELoss, PerceptronLoss
from xdl.nn.module import Module, Parameter, Sequential, is_grad_enabled, no_grad

__all__ = [
    "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout", "ELU", "Flatten", "Identity",
    "LeakyReLU", "Linear", "Loss", "MSELoss", "Module", "Parameter", "PerceptronLoss",
    "ReLU", "Sequential", "Sigmoid", "Softmax", "Tanh", "activation", "init",
    "is_grad_enabled", "no_grad",
]
