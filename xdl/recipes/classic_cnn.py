"""Classic CNN architectures on Fashion-MNIST: AlexNet, VGG, NiN, GoogLeNet (Inception)
and ResNet, each with random-crop and flip augmentation, a cosine learning-rate
schedule and a checkpoint per epoch (``xdl train resnet-fashion --resume
runs/resnet-fashion/model.npz`` continues an interrupted run)."""

from __future__ import annotations

from xdl import data, models, nn, optim
from xdl.data.augment import RandomCropFlip
from xdl.flops import count_macs, count_parameters
from xdl.recipes import recipe
from xdl.recipes.cnn import image_splits
from xdl.recipes.common import finish, train_classifier

CHAPTER = "Classic CNN architectures (issue 7)"

#: The settings that configure the architecture, per recipe (the rest are the fit's).
ARCH_KEYS = ("layout", "width", "batch_norm", "dropout", "hidden")


def train_classic(config, settings, name: str, arch: str) -> dict:
    """SGD (Nesterov momentum 0.9, weight decay 5e-4) with cosine annealing over the
    epochs, random crops (``padding``) and horizontal flips of the training images."""
    arch_config = {k: settings[k] for k in ARCH_KEYS if k in settings}
    model = models.create(arch, **arch_config)
    dataset = image_splits(data.fashion_mnist, config, "fashion-mnist")
    optimizer = optim.SGD(model.parameters(), lr=settings["lr"], momentum=0.9, nesterov=True,
                          weight_decay=settings.get("weight_decay", 5e-4))
    schedule = optim.CosineAnnealingLR(optimizer, T_max=settings["epochs"])
    side = dataset["train"][0].shape[-1]
    extra = {
        "parameters": count_parameters(model),
        "macs_per_image": count_macs(model, (1,) + dataset["train"][0].shape[1:])["total"],
        "image_size": side,
    }
    metrics = train_classifier(config, name, model, arch, arch_config, nn.CrossEntropyLoss(),
                               optimizer, dataset, settings, schedule,
                               train_transform=RandomCropFlip(settings["padding"]), extra=extra)
    times = metrics["history"].get("time", [])
    metrics["epoch_seconds"] = round(sum(times) / len(times), 2) if times else None
    return finish(config.out, name, metrics)


@recipe("alexnet-fashion", CHAPTER,
        "AlexNet (5 convs, 3 FC, dropout; half width) on Fashion-MNIST with augmentation",
        resumable=True, epochs=15, batch_size=128, lr=0.01, width=0.5, hidden=512, dropout=0.5,
        padding=2)
def alexnet_fashion(config, settings):
    return train_classic(config, settings, "alexnet-fashion", "alexnet_small")


@recipe("vgg-fashion", CHAPTER,
        "VGG-11's first four stages with batch norm (half width) on Fashion-MNIST",
        resumable=True, epochs=15, batch_size=128, lr=0.05, width=0.5, batch_norm=True, hidden=512,
        dropout=0.5, padding=2)
def vgg_fashion(config, settings):
    return train_classic(config, settings, "vgg-fashion", "vgg_small")


@recipe("nin-fashion", CHAPTER,
        "Network in Network (NiN blocks with batch norm, global average pooling)",
        resumable=True, epochs=15, batch_size=128, lr=0.05, width=0.5, batch_norm=True, dropout=0.5,
        padding=2)
def nin_fashion(config, settings):
    return train_classic(config, settings, "nin-fashion", "nin")


@recipe("inception-fashion", CHAPTER,
        "GoogLeNet's nine Inception modules at quarter width on Fashion-MNIST",
        resumable=True, epochs=15, batch_size=128, lr=0.05, width=0.25, dropout=0.2, padding=2)
def inception_fashion(config, settings):
    return train_classic(config, settings, "inception-fashion", "googlenet_small")


@recipe("resnet-fashion", CHAPTER,
        "ResNet-20 (3 stages of 3 basic blocks, 16-32-64 channels) on Fashion-MNIST",
        resumable=True, epochs=15, batch_size=128, lr=0.1, layout="resnet20", width=16, padding=2)
def resnet_fashion(config, settings):
    return train_classic(config, settings, "resnet-fashion", "resnet")
