"""Ready models by family, and the registry the recipes and checkpoints use."""

from xdl.models.autoencoder import (
    AutoEncoder,
    SparseAutoEncoder,
    conv_autoencoder,
    mlp_autoencoder,
    reconstruction_mse,
    sparse_autoencoder,
)
from xdl.models.classic import (
    AlexNetSmall,
    GoogLeNetSmall,
    NiN,
    VGGSmall,
    alexnet_small,
    googlenet_small,
    nin,
    vgg_small,
)
from xdl.models.cnn import BookCNN, LeNet5
from xdl.models.gan import (
    GAN,
    WGAN,
    dcgan,
    dcgan_discriminator,
    dcgan_generator,
    interpolate_latents,
    mlp_discriminator,
    mlp_gan,
    mlp_generator,
)
from xdl.models.linear_models import MLP, Perceptron, SoftmaxRegression
from xdl.models.registry import create, names, register
from xdl.models.resnet import ResNet, resnet
from xdl.models.seq2seq import (
    AttentionSeq2Seq,
    Decoded,
    beam_search,
    greedy_decode,
    token_lists,
)
from xdl.models.sequence import SequenceRegressor, predict_recursive
from xdl.models.text import BiGRUClassifier, CharLanguageModel, sample_text
from xdl.models.transformer import TransformerLanguageModel, TransformerSeq2Seq
from xdl.models.vae import VAE, NegativeELBOLoss

__all__ = [
    "GAN", "MLP", "VAE", "WGAN", "AutoEncoder", "BiGRUClassifier", "BookCNN",
    "CharLanguageModel", "LeNet5", "NegativeELBOLoss", "Perceptron", "SequenceRegressor",
    "SoftmaxRegression", "SparseAutoEncoder", "conv_autoencoder", "create", "dcgan",
    "dcgan_discriminator", "dcgan_generator", "interpolate_latents", "mlp_autoencoder",
    "mlp_discriminator", "mlp_gan", "mlp_generator", "names", "predict_recursive",
    "reconstruction_mse", "register", "sample_text", "sparse_autoencoder",
    # the classic CNNs
    "AlexNetSmall", "GoogLeNetSmall", "NiN", "ResNet", "VGGSmall", "alexnet_small",
    "googlenet_small", "nin", "resnet", "vgg_small",
    # seq2seq and Transformer models
    "AttentionSeq2Seq", "Decoded", "TransformerLanguageModel", "TransformerSeq2Seq",
    "beam_search", "greedy_decode", "token_lists",
]
