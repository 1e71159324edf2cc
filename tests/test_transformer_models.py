"""The Transformer encoder–decoder and the decoder-only language model: gradients of a
whole loss step, decoding, causality, sampling, and transformer-shakespeare end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import on
from test_recipes import write_shakespeare
from test_seq2seq import SRC, TGT_IN, TGT_OUT, LossStep, assert_beam_width_one_is_greedy, ids

from xdl import backends
from xdl.data.translation import BOS, EOS
from xdl.gradcheck import gradcheck
from xdl.models import (
    TransformerLanguageModel,
    TransformerSeq2Seq,
    beam_search,
    greedy_decode,
    sample_text,
)


def small_seq2seq(dtype="float64", dropout=0.0, decoder_layers=2):
    return TransformerSeq2Seq(9, 6, d_model=4, nhead=2, num_encoder_layers=1,
                              num_decoder_layers=decoder_layers, dim_feedforward=6,
                              dropout=dropout).to(dtype=dtype)


def small_lm(dtype="float64", context=8):
    return TransformerLanguageModel(5, d_model=4, nhead=2, num_layers=2, dim_feedforward=6,
                                    dropout=0.0, context=context).to(dtype=dtype)


def _samples(backend):
    return None if backend.name == "numpy" else 4   # every element on numpy


def test_transformer_seq2seq_loss_step_gradients(backend):
    model = small_seq2seq(decoder_layers=2 if backend.name == "numpy" else 1)
    result = gradcheck(LossStep(model), ids(backend, SRC), ids(backend, TGT_IN),
                       ids(backend, TGT_OUT), samples=_samples(backend))
    assert result.ok and len(result.checked) == len(list(model.parameters()))


def test_transformer_language_model_loss_step_gradients(backend):
    model = small_lm()
    tokens = ids(backend, [[1, 2, 3, 4, 0], [0, 1, 1, 2, 4]])
    targets = ids(backend, [[2, 3, 4, 0, 1], [1, 1, 2, 4, 3]])
    result = gradcheck(LossStep(model), tokens, targets, samples=_samples(backend))
    assert result.ok and len(result.checked) == len(list(model.parameters()))


def test_transformer_beam_width_one_is_greedy(backend):
    model = small_seq2seq()
    src = ids(backend, SRC)
    greedy = assert_beam_width_one_is_greedy(model, src, 5)
    beam = beam_search(model, src, 3, 5, BOS, EOS)
    assert np.all(backends.to_numpy(beam.scores)[:, 0]
                  >= backends.to_numpy(greedy.scores) - 1e-12)
    assert greedy.attention is None


def test_decoding_matches_teacher_forcing(backend):
    """Feeding the greedy output back by teacher forcing gives the same logits: the
    prefix-rerunning decoder and the causal mask agree."""
    model = small_seq2seq()
    src = ids(backend, SRC)
    tokens = backends.to_numpy(greedy_decode(model, src, 4, BOS, EOS).tokens)
    tgt_in = np.concatenate([np.full((3, 1), BOS), tokens[:, :-1]], axis=1)
    model.eval()
    logits = backends.to_numpy(model(src, ids(backend, tgt_in))).reshape(3, 4, -1)
    np.testing.assert_array_equal(logits.argmax(axis=2), tokens)


def test_language_model_is_causal_and_keeps_a_window(backend):
    model = small_lm(context=6)
    model.eval()
    a = backends.to_numpy(model(ids(backend, [[1, 2, 3, 4]]))).reshape(4, -1)
    b = backends.to_numpy(model(ids(backend, [[1, 2, 0, 0]]))).reshape(4, -1)
    np.testing.assert_allclose(a[:2], b[:2], rtol=1e-12)     # the past ignores the future
    assert not np.allclose(a[2:], b[2:])
    model(ids(backend, [[1, 2, 3, 4]]))
    logits = model(ids(backend, [[0, 1, 2]]), model.state)
    assert tuple(model.state.shape) == (1, 6) and tuple(logits.shape) == (6, 5)
    np.testing.assert_array_equal(backends.to_numpy(model.state), [[2, 3, 4, 0, 1, 2]])
    with pytest.raises(ValueError, match=r"TransformerLanguageModel: expected at most "
                                         r"context = 6 ids per row, got shape \(1, 7\)"):
        model(ids(backend, [[1] * 7]))


def test_sample_text_with_the_transformer(backend):
    from xdl.data.text import CharVocab

    vocab = CharVocab("abcde")
    model = small_lm(dtype="float32", context=8)
    text = sample_text(model, vocab, "ab", 20, temperature=1.0, seed=1)
    assert text.startswith("ab") and len(text) == 22 and set(text) <= set("abcde")
    assert model.training


def test_transformer_shakespeare_runs_on_a_fixture_text(tmp_path, monkeypatch):
    import importlib

    from xdl.cli import main

    module = importlib.import_module("xdl.recipes.seq2seq")
    monkeypatch.setattr(module, "TRANSFORMER_STEPS_PER_EPOCH", 5)
    monkeypatch.setattr(module, "TRANSFORMER_VAL_BATCHES", 2)
    monkeypatch.setattr(module, "TRANSFORMER_LM", {"d_model": 16, "nhead": 2, "num_layers": 1,
                                                   "dim_feedforward": 32, "dropout": 0.1,
                                                   "context": 32})
    write_shakespeare(tmp_path, 60)
    out = tmp_path / "out"
    assert main(["train", "transformer-shakespeare", "--epochs", "1", "--batch-size", "2",
                 "--data-dir", str(tmp_path), "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and metrics["val_cross_entropy_nats"] > 0
    assert metrics["sample"].startswith("ROMEO:")
    assert (out / "model.npz").exists()


def test_transformer_seq2seq_rejects_mismatched_batches(backend):
    model = small_seq2seq()
    with pytest.raises(ValueError, match=r"TransformerSeq2Seq: expected tgt_in of shape "
                                         r"\(3, T\)"):
        model(ids(backend, SRC), ids(backend, TGT_IN[:1]))
    with pytest.raises(ValueError, match="expected src as integer ids"):
        model(on(backend, np.zeros((3, 5))), ids(backend, TGT_IN))
