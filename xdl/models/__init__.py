"""Ready models by family, and the registry the recipes and checkpoints use."""

from xdl.models.cnn import BookCNN, LeNet5
from xdl.models.linear_models import MLP, Perceptron, SoftmaxRegression
from xdl.models.registry import create, names, register
from xdl.models.sequence import SequenceRegressor, predict_recursive
from xdl.models.text import BiGRUClassifier, CharLanguageModel, sample_text

__all__ = [
    "MLP", "BiGRUClassifier", "BookCNN", "CharLanguageModel", "LeNet5", "Perceptron",
    "SequenceRegressor", "SoftmaxRegression", "create", "names", "predict_recursive",
    "register", "sample_text",
]
