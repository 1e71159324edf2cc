"""Ready models: whole-model gradients, shapes, registry, and the perceptron rule."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import on

import xdl
from xdl import backends, data
from xdl.gradcheck import gradcheck
from xdl.models import MLP, BookCNN, LeNet5, Perceptron, create

MODELS = {
    "book-cnn": (lambda: BookCNN(image_size=12, dropout=0.0), (2, 1, 12, 12)),
    "book-cnn-bn": (lambda: BookCNN(image_size=12, batch_norm=True, dropout=0.0),
                    (3, 1, 12, 12)),
    "lenet5": (lambda: LeNet5(activation="tanh"), (2, 1, 28, 28)),
    "lenet5-avg": (lambda: LeNet5(activation="sigmoid", pool="avg"), (1, 1, 28, 28)),
}


@pytest.mark.parametrize("name", MODELS)
def test_model_gradients(backend, rng, name):
    """Input gradient in full; 12 seeded elements of every parameter."""
    make, shape = MODELS[name]
    model = make().to(dtype="float64")
    result = gradcheck(model, on(backend, rng.normal(size=shape)), samples=12)
    assert result.ok


def test_book_cnn_layout_and_state_dict_names():
    model = BookCNN()
    assert [name for name, _ in model.named_parameters()] == [
        "features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
        "classifier.1.weight", "classifier.1.bias", "classifier.4.weight", "classifier.4.bias",
    ]
    assert model.classifier[1].weight.shape == (512, 3136)
    bn = BookCNN(batch_norm=True)
    assert "features.1.running_mean" in bn.state_dict()
    assert "features.0.bias" not in bn.state_dict()  # the convolution before BN has none


def test_lenet5_parameter_count():
    count = sum(int(np.prod(p.shape)) for p in LeNet5().parameters())
    assert count == 61706  # LeCun et al.'s LeNet-5 with 6-16 feature maps, 28x28 padded


def test_registry_builds_each_model():
    assert isinstance(create("book_cnn", batch_norm=True), BookCNN)
    assert isinstance(create("lenet5"), LeNet5)
    assert isinstance(create("mlp", sizes=[4, 3]), MLP)
    with pytest.raises(KeyError, match="unknown model 'resnet9000'"):
        create("resnet9000")


def test_perceptron_rule_converges_on_separable_data(backend):
    x, y = data.linearly_separable_3d(n=200, margin=0.5, seed=0)
    xdl.manual_seed(0)
    model = Perceptron(3)
    xs, ys = on(backend, x, "float32"), on(backend, y.astype(float), "float32")
    mistakes = [float(backends.to_numpy(model.learn(xs, ys, lr=1.0))) for _ in range(50)]
    assert mistakes[0] > 0 and 0 in mistakes
    assert np.all(backends.to_numpy(model.predict(xs)) == y)


def test_perceptron_rule_is_sgd_on_the_perceptron_loss(backend, rng):
    """One misclassified sample: learn() and SGD(lr) on PerceptronLoss agree."""
    from xdl import nn, optim

    xdl.manual_seed(1)
    rule = Perceptron(4).to(dtype="float64")
    sgd = Perceptron(4).to(dtype="float64")
    sgd.load_state_dict(rule.state_dict())
    x = on(backend, rng.normal(size=(1, 4)))
    score = float(backends.to_numpy(rule(x))[0])
    y = on(backend, np.array([-1.0 if score > 0 else 1.0]))
    rule.learn(x, y, lr=0.5)
    loss_fn = nn.PerceptronLoss(reduction="sum")
    optimizer = optim.SGD(sgd.parameters(), lr=0.5)
    loss_fn(sgd(x), y)
    sgd.backward(loss_fn.backward())
    optimizer.step()
    for a, b in zip(rule.parameters(), sgd.parameters()):
        np.testing.assert_allclose(backends.to_numpy(a.data), backends.to_numpy(b.data))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_sequence_regressor_gradients(backend, rng, cell):
    from xdl.models import SequenceRegressor

    model = SequenceRegressor(2, 5, num_layers=2, cell=cell, horizon=3).to(dtype="float64")
    assert gradcheck(model, on(backend, rng.normal(size=(3, 4, 2))), samples=10).ok


def test_recursive_prediction_feeds_predictions_back(backend, rng):
    from xdl.models import SequenceRegressor, predict_recursive

    model = SequenceRegressor(1, 4).to(dtype="float64")
    window = on(backend, rng.normal(size=(2, 5, 1)))
    predicted = backends.to_numpy(predict_recursive(model, window, 2))
    first = backends.to_numpy(model(window))[:, 0]
    shifted = np.concatenate([backends.to_numpy(window)[:, 1:, 0], first[:, None]], axis=1)
    second = backends.to_numpy(model(on(backend, shifted[:, :, None])))[:, 0]
    np.testing.assert_allclose(predicted, np.stack([first, second], axis=1), rtol=1e-12)


def test_bigru_classifier_gradients(backend):
    from xdl.models import BiGRUClassifier

    model = BiGRUClassifier(12, 4, 3, dropout=0.0).to(dtype="float64")
    ids = on(backend, np.array([[3, 4, 5, 0], [6, 7, 0, 0], [1, 2, 3, 4]]))
    assert gradcheck(model, ids, samples=8).ok


def test_bigru_classifier_ignores_padding(backend, rng):
    from xdl.models import BiGRUClassifier

    model = BiGRUClassifier(10, 4, 3, dropout=0.0).to(dtype="float64")
    short = backends.to_numpy(model(on(backend, np.array([[3, 4, 5]]))))
    padded = backends.to_numpy(model(on(backend, np.array([[3, 4, 5, 0, 0]]))))
    np.testing.assert_allclose(padded, short, rtol=1e-12)


def test_char_language_model_gradients(backend, rng):
    from xdl.models import CharLanguageModel

    model = CharLanguageModel(7, 4, 5, 2, dropout=0.0).to(dtype="float64")
    assert gradcheck(model, on(backend, rng.integers(0, 7, (2, 3))), samples=6).ok


def test_sampling_follows_the_seed_and_the_vocabulary(backend):
    from xdl.data import CharVocab
    from xdl.models import CharLanguageModel, sample_text

    vocab = CharVocab.from_text("to be or not to be")
    model = CharLanguageModel(len(vocab), 4, 8, 1)
    first = sample_text(model, vocab, "to", 20, temperature=0.5, seed=3)
    assert first == sample_text(model, vocab, "to", 20, temperature=0.5, seed=3)
    assert first.startswith("to") and len(first) == 22 and set(first) <= set(vocab.chars)
