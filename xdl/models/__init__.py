"""Ready models by family, and the registry the recipes and checkpoints use."""

from xdl.models.linear_models import MLP, Perceptron, SoftmaxRegression
from xdl.models.registry import create, names, register

__all__ = ["MLP", "Perceptron", "SoftmaxRegression", "create", "names", "register"]
