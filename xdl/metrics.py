"""Scores of generated samples computed with a trained classifier.

The classifier score of a set of images is the inception score (Salimans et al., 2016)
with an MNIST classifier in place of Inception: with p(y | x) the classifier's softmax
and p(y) its mean over the images,

    IS = exp( mean_x KL(p(y | x) ‖ p(y)) ) = exp( H(p(y)) − mean_x H(p(y | x)) ),

between 1 (every image gets the same prediction, or no prediction is confident) and
the number of classes (each image confidently one class, all classes equally often).
Its two halves are reported with it: the mean confidence mean_x max_y p(y | x) and the
entropy of the histogram of predicted classes (log 10 ≈ 2.303 nats when uniform).
"""

from __future__ import annotations

import numpy as np

from xdl import backends
from xdl.nn import no_grad
from xdl.nn.activation import softmax


def class_probabilities(classifier, images, batch_size: int = 500) -> np.ndarray:
    """The classifier's softmax over ``images`` (any backend), in eval mode, on the host."""
    was_training = classifier.training
    classifier.eval()
    parts = []
    try:
        with no_grad():
            n = images.shape[0]
            for start in range(0, n, batch_size):
                logits = classifier(images[start:min(start + batch_size, n), ...])
                parts.append(softmax(backends.namespace(logits), logits, axis=1))
    finally:
        classifier.train(was_training)
    return np.concatenate([backends.to_numpy(p) for p in parts]).astype(np.float64)


def classifier_score(classifier, images, batch_size: int = 500) -> dict:
    """Inception score of ``images`` under ``classifier`` and its two halves (module doc).

    ``images`` must be what the classifier was trained on (for the book CNN: (N, 1, 28,
    28) floats in [0, 1]).
    """
    probs = class_probabilities(classifier, images, batch_size)
    tiny = np.finfo(np.float64).tiny
    marginal = probs.mean(axis=0)
    kl = np.sum(probs * (np.log(probs + tiny) - np.log(marginal + tiny)), axis=1)
    predicted = probs.argmax(axis=1)
    histogram = np.bincount(predicted, minlength=probs.shape[1]) / len(predicted)
    class_entropy = -np.sum(histogram * np.log(np.where(histogram > 0, histogram, 1.0)))
    return {
        "inception_score": float(np.exp(kl.mean())),
        "mean_confidence": float(probs.max(axis=1).mean()),
        "class_entropy": float(class_entropy),
        "class_histogram": [float(h) for h in histogram],
        "samples": int(len(predicted)),
    }
