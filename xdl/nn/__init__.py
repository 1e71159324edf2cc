"""Layers, losses and containers, each with a hand-written forward and backward."""

from xdl.nn import init
from xdl.nn.activation import ELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, activation
from xdl.nn.attention import AdditiveAttention, DotProductAttention, ScaledDotProductAttention
from xdl.nn.conv import Conv1d, Conv2d, ConvTranspose2d
from xdl.nn.conv_relu_pool import ConvReLUPool  # registers the fused stage with Sequential
from xdl.nn.dropout import Dropout, Dropout2d
from xdl.nn.embedding import Embedding
from xdl.nn.linear import Flatten, Identity, Linear, Unflatten
from xdl.nn.losses import BCEWithLogitsLoss, CrossEntropyLoss, Loss, MSELoss, PerceptronLoss
from xdl.nn.module import Module, Parameter, Sequential, is_grad_enabled, no_grad
from xdl.nn.multihead_attention import MultiheadAttention
from xdl.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from xdl.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d, MaxPool2d
from xdl.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from xdl.nn.transformer import (
    PositionalEncoding,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d",
    "Conv1d", "Conv2d", "ConvReLUPool", "ConvTranspose2d", "CrossEntropyLoss", "Dropout",
    "Dropout2d", "ELU", "Embedding", "Flatten", "GRU", "GRUCell", "GlobalAvgPool2d",
    "Identity", "LSTM", "LSTMCell", "LayerNorm", "LeakyReLU", "Linear", "Loss", "MSELoss",
    "MaxPool2d", "Module", "Parameter", "PerceptronLoss", "RNN", "RNNCell", "ReLU",
    "Sequential", "Sigmoid", "Softmax", "Tanh", "Unflatten", "activation", "init",
    "is_grad_enabled", "no_grad",
    # attention and Transformer layers
    "AdditiveAttention", "DotProductAttention", "MultiheadAttention", "PositionalEncoding",
    "ScaledDotProductAttention", "TransformerDecoder", "TransformerDecoderLayer",
    "TransformerEncoder", "TransformerEncoderLayer",
]
