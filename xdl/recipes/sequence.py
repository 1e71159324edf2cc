"""The recurrent chapters: sequence regression on the book's curve."""

from __future__ import annotations

import os
import time

import numpy as np

from xdl import backends, nn, optim, training
from xdl.data import DataLoader
from xdl.data.text import (
    CharVocab,
    Vocab,
    char_batches,
    read_glove,
    read_sentiment_csv,
    tokenize,
)
from xdl.data.timeseries import (
    Standardizer,
    book_curve,
    chronological_split,
    read_price_csv,
    sliding_windows,
)
from xdl.models import BiGRUClassifier, CharLanguageModel, SequenceRegressor, sample_text
from xdl.plotting import plot_prediction
from xdl.recipes import recipe
from xdl.recipes.common import finish, run_record


def _mse(model, loader) -> float:
    return training.evaluate(model, nn.MSELoss(), loader, metrics=())["loss"]


@recipe("rnn-curve", "《实战深度学习算法》 ch. 7: the recurrent network",
        "3-layer RNN (hidden 30) predicting sin(πx/3)+cos(πx/3)+sin(πx/1.5) + noise one "
        "step ahead from a window of 10", epochs=60, batch_size=32, lr=0.002)
def rnn_curve(config, settings):
    noise = 0.02
    _, y = book_curve(n=2000, step=0.1, noise=noise, seed=config.seed)
    inputs, targets = sliding_windows(y.astype(np.float32), window=10, horizon=1)
    train, val, test = chronological_split(len(targets), train=0.7, val=0.15)
    loaders = {name: DataLoader(inputs[part], targets[part].astype(np.float32),
                                batch_size=settings["batch_size"], shuffle=(name == "train"),
                                seed=config.seed)
               for name, part in (("train", train), ("val", val), ("test", test))}
    arch_config = {"input_size": 1, "hidden_size": 30, "num_layers": 3, "cell": "rnn"}
    model = SequenceRegressor(**arch_config)
    optimizer = optim.Adam(model.parameters(), lr=settings["lr"])
    schedule = optim.StepLR(optimizer, step_size=max(1, settings["epochs"] // 3), gamma=0.3)
    saver = training.ModelCheckpoint(os.path.join(config.out, "model.npz"),
                                     arch="sequence_regressor", config=arch_config)
    began = time.perf_counter()
    history = training.fit(model, nn.MSELoss(), optimizer, loaders["train"], settings["epochs"],
                           val_loader=loaders["val"], metrics=(), schedule=schedule,
                           callbacks=[saver], progress=config.progress)
    metrics = {
        **run_record("rnn-curve", config, settings, time.perf_counter() - began,
                     len(history["loss"])),
        "test_mse": _mse(model, loaders["test"]),
        "noise_variance": noise**2, "history": dict(history),
        "data": "2,000 points, step 0.1, windows of 10; chronological 70/15/15 split",
    }
    return finish(config.out, "rnn-curve", metrics, history)


@recipe("lstm-hs300", "《实战深度学习算法》 ch. 8: the LSTM on the CSI-300 index",
        "2-layer LSTM (hidden 64) predicting the next day's CSI-300 close from 20 days; "
        "RMSE and MAPE against the naive 'tomorrow = today' baseline",
        epochs=40, batch_size=32, lr=0.002)
def lstm_hs300(config, settings):
    prices = read_price_csv(_dataset_file(config, "hs300", "hs300_2005_2019_book_raw.csv"))
    close = prices["close"].astype(np.float64)
    window = 20
    train, val, test = chronological_split(len(close) - window, train=0.7, val=0.15)
    scaler = Standardizer().fit(close[:train.stop + window])  # training days only
    scaled = scaler.transform(close[:, None])[:, 0].astype(np.float32)
    inputs, targets = sliding_windows(scaled, window=window, horizon=1)
    loaders = {name: DataLoader(inputs[part], targets[part].astype(np.float32),
                                batch_size=settings["batch_size"], shuffle=(name == "train"),
                                seed=config.seed)
               for name, part in (("train", train), ("val", val), ("test", test))}
    arch_config = {"input_size": 1, "hidden_size": 64, "num_layers": 2, "cell": "lstm"}
    model = SequenceRegressor(**arch_config)
    optimizer = optim.Adam(model.parameters(), lr=settings["lr"])
    saver = training.ModelCheckpoint(os.path.join(config.out, "model.npz"),
                                     arch="sequence_regressor", config=arch_config)
    began = time.perf_counter()
    history = training.fit(model, nn.MSELoss(), optimizer, loaders["train"], settings["epochs"],
                           val_loader=loaders["val"], metrics=(), callbacks=[saver],
                           clip_grad_norm=1.0, progress=config.progress)
    predicted = scaler.inverse_transform(_predict(model, inputs[test])[:, None])[:, 0]
    actual = close[window:][test]
    yesterday = close[window - 1:-1][test]
    metrics = {
        **run_record("lstm-hs300", config, settings, time.perf_counter() - began,
                     len(history["loss"])),
        "history": dict(history),
        "data": "CSI-300 daily close 2005-01-04 … 2019-03-05 (the book's file); windows of 20 "
                "days; chronological 70/15/15 split; standardised on the training days",
        "test_days": int(len(actual)),
        "test_rmse": _rmse(predicted, actual), "test_mape": _mape(predicted, actual),
        "naive_rmse": _rmse(yesterday, actual), "naive_mape": _mape(yesterday, actual),
    }
    metrics["beats_naive"] = metrics["test_rmse"] < metrics["naive_rmse"]
    metrics["figure"] = plot_prediction(actual, predicted, yesterday,
                                        os.path.join(config.out, "prediction.png"))
    return finish(config.out, "lstm-hs300", metrics, history)


def _predict(model, inputs) -> np.ndarray:
    backend = backends.current()
    model.eval()
    with nn.no_grad():
        out = model(backend.asarray(inputs, "float32"))
    return backends.to_numpy(out)[:, 0].astype(np.float64)


def _rmse(predicted, actual) -> float:
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def _mape(predicted, actual) -> float:
    return float(100 * np.mean(np.abs(predicted - actual) / np.abs(actual)))


def _dataset_file(config, folder: str, name: str) -> str:
    """``<data dir>/<folder>/<name>`` from --data-dir or $XDL_DATA_DIR, or a clear error."""
    roots = [config.data_root(folder),
             os.path.join(os.environ["XDL_DATA_DIR"], folder)
             if os.environ.get("XDL_DATA_DIR") else None]
    for root in filter(None, roots):
        path = os.path.join(root, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{name} not found in {[r for r in roots if r]}: pass --data-dir "
                            f"(the folder holding {folder}/) or set XDL_DATA_DIR")


@recipe("bigru-sentiment", "《实战深度学习算法》 ch. 9: the bidirectional GRU",
        "BiGRU (hidden 64) over GloVe 50-d embeddings on the Rotten Tomatoes snippets",
        epochs=6, batch_size=64, lr=0.002)
def bigru_sentiment(config, settings):
    texts, labels = read_sentiment_csv(_dataset_file(config, "sentiment",
                                                     "rotten_tomatoes_snippets.csv"))
    tokens = [tokenize(text) for text in texts]
    keep = np.array([len(t) > 0 for t in tokens])
    tokens = [t for t, k in zip(tokens, keep) if k]
    labels = labels[keep]
    order = np.random.default_rng(config.seed).permutation(len(tokens))
    n_test = n_val = len(order) // 10
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val],
             "train": order[n_test + n_val:]}
    vocab = Vocab.build([tokens[i] for i in parts["train"]], min_freq=1)
    glove = read_glove(_dataset_file(config, "glove", "glove.6B.50d.top100k.txt.gz"), vocab,
                       seed=config.seed)
    loaders = {}
    for name, index in parts.items():
        ids, _ = vocab.pad_batch([tokens[i] for i in index], max_len=60)
        loaders[name] = DataLoader(ids, labels[index], batch_size=settings["batch_size"],
                                   shuffle=(name == "train"), seed=config.seed)
    arch_config = {"vocab_size": len(vocab), "embedding_dim": glove[1].shape[1],
                   "hidden_size": 64, "dropout": 0.5}
    model = BiGRUClassifier(**arch_config, pretrained=glove[1])
    model.to(dtype="float32")
    optimizer = optim.Adam(model.parameters(), lr=settings["lr"])
    saver = training.ModelCheckpoint(os.path.join(config.out, "model.npz"),
                                     arch="bigru_classifier", config=arch_config)
    began = time.perf_counter()
    history = training.fit(model, nn.CrossEntropyLoss(), optimizer, loaders["train"],
                           settings["epochs"], val_loader=loaders["val"], callbacks=[saver],
                           clip_grad_norm=5.0, progress=config.progress)
    test = training.evaluate(model, nn.CrossEntropyLoss(), loaders["test"])
    metrics = {
        **run_record("bigru-sentiment", config, settings, time.perf_counter() - began,
                     len(history["loss"])),
        "history": dict(history),
        "test_loss": test["loss"], "test_accuracy": test["accuracy"],
        "data": f"{len(tokens)} Rotten Tomatoes snippets, seeded 80/10/10 split; vocabulary "
                f"{len(vocab)} training tokens, {glove.found} of them in GloVe",
    }
    return finish(config.out, "bigru-sentiment", metrics, history)


#: Training steps in one "epoch" of charrnn-shakespeare (the corpus is sampled at random).
CHAR_STEPS_PER_EPOCH = 250


class CharBatchLoader:
    """``steps`` random (inputs, flattened targets) windows of a character corpus on the
    current backend, reseeded per epoch so a run is reproducible and resumable."""

    def __init__(self, encoded, seq_len: int, batch_size: int, steps: int, seed: int):
        self.encoded, self.seq_len, self.batch_size = encoded, seq_len, batch_size
        self.steps, self.seed, self.epoch = steps, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return self.steps

    def __iter__(self):
        backend = backends.current()
        for inputs, targets in char_batches(self.encoded, self.seq_len, self.batch_size,
                                            seed=self.seed + 1000 * self.epoch,
                                            steps=self.steps):
            yield backend.asarray(inputs, "int64"), backend.asarray(targets.reshape(-1),
                                                                    "int64")


def shakespeare_splits(config):
    """tiny-shakespeare as (CharVocab, ids of the first 90% for training, ids of the last
    10% for validation)."""
    with open(_dataset_file(config, "shakespeare", "tiny-shakespeare.txt"),
              encoding="utf-8") as stream:
        text = stream.read()
    vocab = CharVocab.from_text(text)
    encoded = vocab.encode(text)
    split = int(0.9 * len(encoded))
    return vocab, encoded[:split], encoded[split:]


@recipe("charrnn-shakespeare", "《实战深度学习算法》 ch. 8: the character-level LSTM",
        "2-layer LSTM (hidden 256) language model on tiny-shakespeare; an epoch is 250 "
        "steps of 64 windows of 100 characters", epochs=5, batch_size=64, lr=0.003)
def charrnn_shakespeare(config, settings):
    vocab, train_ids, val_ids = shakespeare_splits(config)
    train = CharBatchLoader(train_ids, 100, settings["batch_size"], CHAR_STEPS_PER_EPOCH,
                            config.seed)
    val = CharBatchLoader(val_ids, 100, settings["batch_size"], 20, config.seed + 1)
    arch_config = {"vocab_size": len(vocab), "embedding_dim": 64, "hidden_size": 256,
                   "num_layers": 2, "dropout": 0.2}
    model = CharLanguageModel(**arch_config)
    optimizer = optim.Adam(model.parameters(), lr=settings["lr"])
    return train_char_lm(config, settings, "charrnn-shakespeare", model, "char_lm", arch_config,
                         optimizer, train, val, clip=5.0,
                         data="tiny-shakespeare: first 90% for training, last 10% for "
                              "validation (20 batches of 64 windows of 100 characters)",
                         vocab=vocab)


def train_char_lm(config, settings, name, model, arch, arch_config, optimizer, train, val,
                  clip: float, data: str, vocab) -> dict:
    """fit a character language model (rate × 0.8 per epoch, gradient norm clipped at
    ``clip``, a checkpoint per epoch); metrics with the validation cross-entropy and a
    400-character sample primed with "ROMEO:"."""
    schedule = optim.ExponentialLR(optimizer, gamma=0.8)
    saver = training.ModelCheckpoint(os.path.join(config.out, "model.npz"), arch=arch,
                                     config=arch_config)
    began = time.perf_counter()
    history = training.fit(model, nn.CrossEntropyLoss(), optimizer, train, settings["epochs"],
                           val_loader=val, metrics=(), schedule=schedule, callbacks=[saver],
                           clip_grad_norm=clip, progress=config.progress)
    metrics = {
        **run_record(name, config, settings, time.perf_counter() - began,
                     len(history["loss"])),
        "history": dict(history),
        "val_cross_entropy_nats": history["val_loss"][-1],
        "sample": sample_text(model, vocab, "ROMEO:", 400, temperature=0.8, seed=config.seed),
        "data": data,
    }
    return finish(config.out, name, metrics, history)
