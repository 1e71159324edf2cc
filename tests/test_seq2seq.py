"""The attention encoder–decoder: gradients of a whole teacher-forced loss step, greedy
decoding and beam search; the date generator, the seq2seq vocabulary, BLEU, and the
seq2seq recipes end to end on small fixtures."""

from __future__ import annotations

import datetime
import json
import math

import numpy as np
import pytest
from conftest import on

from xdl import backends, nn
from xdl.data.dates import FORMATS, WEEKDAYS, date_pairs, format_date, in_split
from xdl.data.translation import BOS, EOS, PAD, Seq2SeqVocab, read_pairs_tsv, teacher_forcing
from xdl.gradcheck import gradcheck
from xdl.metrics_text import corpus_bleu, tokenize_13a
from xdl.models import AttentionSeq2Seq, beam_search, greedy_decode, token_lists
from xdl.nn.module import Module

SRC = [[5, 6, 7, 8, 4], [4, 5, 6, 0, 0], [8, 7, 0, 0, 0]]
TGT_IN = [[1, 4, 5, 3], [1, 5, 0, 0], [1, 3, 4, 0]]
TGT_OUT = [[4, 5, 3, 2], [5, 2, 0, 0], [3, 4, 2, 0]]


class LossStep(Module):
    """gradcheck adapter: the mean cross-entropy of ``model(src, tgt_in)`` against the
    flattened targets (padding ignored), differentiated through the model."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.loss = nn.CrossEntropyLoss(ignore_index=PAD)

    def forward(self, *ids):
        xp = backends.namespace(ids[0])
        return self.loss(self.model(*ids[:-1]), xp.reshape(ids[-1], (-1,)))

    def backward(self, grad):
        self.model.backward(self.loss.backward(grad))
        return None


def ids(backend, rows):
    return on(backend, np.asarray(rows, dtype=np.int64))


def small_model(cell="gru", dtype="float64"):
    return AttentionSeq2Seq(9, 6, embedding_dim=3, hidden_size=4, cell=cell).to(dtype=dtype)


# -- the model ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_encoder_decoder_loss_step_gradients(backend, cell):
    """Every parameter of the encoder, attention, decoder cell, head and both embeddings,
    through backpropagation through time of the whole teacher-forced step."""
    model = small_model(cell)
    samples = None if backend.name == "numpy" else 5   # every element on numpy
    result = gradcheck(LossStep(model), ids(backend, SRC), ids(backend, TGT_IN),
                       ids(backend, TGT_OUT), samples=samples)
    assert result.ok
    assert len(result.checked) == len(list(model.parameters()))


def test_forward_shapes_attention_and_errors(backend):
    model = small_model(dtype="float32")
    logits = model(ids(backend, SRC), ids(backend, TGT_IN))
    assert tuple(logits.shape) == (3 * 4, 6)
    weights = backends.to_numpy(model.attention_weights)
    assert weights.shape == (3, 4, 5)
    np.testing.assert_allclose(weights.sum(axis=2), 1.0, rtol=1e-5)
    assert np.all(weights[1, :, 3:] == 0.0) and np.all(weights[2, :, 2:] == 0.0)  # padding
    with pytest.raises(ValueError, match=r"AttentionSeq2Seq: expected tgt_in .*\(3, T\)"):
        model(ids(backend, SRC), ids(backend, TGT_IN[:2]))
    with pytest.raises(ValueError, match=r"expected src as integer ids of shape \(N, length\)"):
        model(on(backend, np.zeros((3, 5))), ids(backend, TGT_IN))


def _sequence_log_prob(model, backend, src, tokens, eos):
    """Σ log p of ``tokens`` (cut after the first eos) by teacher forcing."""
    row = list(tokens)
    row = row[:row.index(eos) + 1] if eos in row else row
    model.eval()
    with nn.no_grad():
        logits = model(ids(backend, [src]), ids(backend, [[BOS] + row[:-1]]))
    logits = backends.to_numpy(logits).astype(np.float64)
    logp = logits - logits.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    return float(sum(logp[t, v] for t, v in enumerate(row)))


def assert_beam_width_one_is_greedy(model, src, max_len: int):
    """Beam search of width 1 returns greedy decoding's tokens and scores; returns greedy's."""
    greedy = greedy_decode(model, src, max_len, BOS, EOS)
    beam1 = beam_search(model, src, 1, max_len, BOS, EOS)
    np.testing.assert_array_equal(backends.to_numpy(beam1.tokens)[:, 0, :],
                                  backends.to_numpy(greedy.tokens))
    np.testing.assert_allclose(backends.to_numpy(beam1.scores)[:, 0],
                               backends.to_numpy(greedy.scores), rtol=1e-12)
    return greedy


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_beam_width_one_is_greedy_and_wider_beams_score_higher(backend, cell):
    model = small_model(cell)
    src = ids(backend, SRC)
    greedy = assert_beam_width_one_is_greedy(model, src, 6)
    beam = beam_search(model, src, 4, 6, BOS, EOS)
    scores = backends.to_numpy(beam.scores)
    assert scores.shape == (3, 4) and tuple(beam.tokens.shape) == (3, 4, 6)
    assert np.all(np.diff(scores, axis=1) <= 1e-12)                    # best first
    assert np.all(scores[:, 0] >= backends.to_numpy(greedy.scores) - 1e-12)
    best = backends.to_numpy(beam.tokens)[:, 0, :]
    for i in range(3):   # the reported score is the sequence's log-probability
        assert math.isclose(_sequence_log_prob(model, backend, SRC[i], best[i], EOS),
                            scores[i, 0], rel_tol=1e-9, abs_tol=1e-9)
    attention = backends.to_numpy(greedy.attention)
    assert attention.shape == (3, 6, 5)


def test_token_lists_cut_at_eos():
    tokens = np.array([[4, 5, EOS, EOS], [6, 6, 6, 6], [EOS, EOS, EOS, EOS]])
    assert token_lists(tokens, EOS) == [[4, 5], [6, 6, 6, 6], []]


def test_decoding_leaves_training_mode_and_saves_nothing(backend):
    model = small_model()
    greedy_decode(model, ids(backend, SRC), 3, BOS, EOS)
    assert model.training
    with pytest.raises(ValueError, match="beam_width must be >= 1"):
        beam_search(model, ids(backend, SRC), 0, 3, BOS, EOS)


def test_model_learns_to_copy_on_a_strict_device(backend):
    """A few teacher-forced Adam steps on a fixed batch lower the loss (and, on
    array_api_strict's device1, never round-trip to the host)."""
    from xdl import optim

    model = small_model(dtype="float32")
    step = LossStep(model)
    optimizer = optim.Adam(model.parameters(), lr=0.05)
    batch = [ids(backend, SRC), ids(backend, TGT_IN), ids(backend, TGT_OUT)]
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        losses.append(step(*batch))
        step.backward(None)
        optimizer.step()
    assert float(backends.to_numpy(losses[-1])) < 0.7 * float(backends.to_numpy(losses[0]))


# -- dates -------------------------------------------------------------------------------------


def test_date_pairs_are_deterministic_and_correct():
    pairs = date_pairs(300, seed=3)
    assert pairs == date_pairs(300, seed=3)
    assert pairs != date_pairs(300, seed=4)
    for source, target in pairs:
        day = datetime.date.fromisoformat(target)
        assert datetime.date(1950, 1, 1) <= day <= datetime.date(2049, 12, 31)
        assert in_split(day, "train")
        assert source in {format_date(day, f) for f in FORMATS}   # the target is its date
        for name in WEEKDAYS:          # any week-day name is the date's own
            if name in source or f"{name[:3]} " in source:
                assert name == WEEKDAYS[day.weekday()]
    assert all(in_split(datetime.date.fromisoformat(t), "test")
               for _, t in date_pairs(100, seed=0, split="test"))


def test_date_formats():
    day = datetime.date(2021, 3, 3)
    written = {format_date(day, f) for f in FORMATS}
    assert {"3 March 2021", "Mar 3, 21", "Wednesday, March 3, 2021", "3.3.2021",
            "3rd of March 2021", "03/03/21", "Wed 3 Mar 2021"} <= written
    assert len(written) == len(FORMATS)
    assert format_date(datetime.date(1999, 12, 11), "{dth} of {Month} {Y}") == \
        "11th of December 1999"
    assert format_date(datetime.date(2042, 1, 22), "{Mon} {dth}, {Y}") == "Jan 22nd, 2042"
    with pytest.raises(ValueError, match="split"):
        in_split(day, "val")


def test_seq2seq_vocab_and_teacher_forcing(tmp_path):
    vocab = Seq2SeqVocab.from_texts(["abc", "cab"])
    assert len(vocab) == 4 + 3
    assert vocab.decode(vocab.encode("cab")) == "cab"
    assert vocab.encode("z") == [3]
    tgt_in, tgt_out = teacher_forcing(vocab, ["ab", "c"])
    a, b, c = vocab.encode("abc")
    np.testing.assert_array_equal(tgt_in, [[BOS, a, b], [BOS, c, EOS]])
    np.testing.assert_array_equal(tgt_out, [[a, b, EOS], [c, EOS, PAD]])
    path = tmp_path / "pairs.tsv"
    path.write_text("Open\tOuvrir\n\nbad line\nClose file\tFermer le fichier\n",
                    encoding="utf-8")
    assert read_pairs_tsv(path) == [("Open", "Ouvrir"), ("Close file", "Fermer le fichier")]


# -- BLEU ----------------------------------------------------------------------------------------


def test_tokenize_13a():
    assert tokenize_13a("Hello, world!") == ["Hello", ",", "world", "!"]
    assert tokenize_13a("3.5 MB and 1,000 files.") == ["3.5", "MB", "and", "1,000", "files",
                                                       "."]
    assert tokenize_13a("12-3 well-known (x)") == ["12", "-", "3", "well-known", "(", "x",
                                                   ")"]
    assert tokenize_13a("a &amp; b") == ["a", "&", "b"]


@pytest.mark.parametrize("hypothesis, reference, expected", [
    ("the cat sat on the mat", "the cat sat on the mat", 100.0),
    # p = 5/6, 3/5, 2/4, 1/3, BP = 1
    ("the cat sat on the mat", "the cat sat on a mat", 100 * (5 / 6 * 3 / 5 * 2 / 4 / 3) ** 0.25),
    # all precisions 1, BP = exp(1 − 8/4)
    ("a b c d", "a b c d e f g h", 100 * math.exp(-1.0)),
    # p = 4/5, 2/4, then no 3- and 4-gram match: "exp" smoothing 1/(2·3), 1/(4·2)
    ("a b c d e", "a b x d e", 100 * (4 / 5 * 2 / 4 / 6 / 8) ** 0.25),
    ("x y", "a b c d", 0.0),
])
def test_bleu_hand_computed(hypothesis, reference, expected):
    assert math.isclose(corpus_bleu([hypothesis], [reference])["score"], expected,
                        rel_tol=1e-12, abs_tol=1e-12)


def test_bleu_is_a_corpus_statistic():
    """Counts are summed over sentences before the precisions are taken."""
    result = corpus_bleu(["a b c d", "e f"], ["a b c d", "e g"])
    # 1-grams 5/6, 2-grams 3/4, 3-grams 2/2, 4-grams 1/1
    assert math.isclose(result["score"], 100 * (5 / 6 * 3 / 4) ** 0.25, rel_tol=1e-12)
    assert result["hyp_length"] == result["ref_length"] == 6
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_bleu(["a", "b"], ["a"])


def test_bleu_matches_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    rng = np.random.default_rng(0)
    words = ["le", "fichier", "n'existe", "pas", ",", "3.5", "Mo", "(erreur)", "l’accès",
             "refusé.", "12-3", "&amp;", "de", "la", "mise", "à", "jour"]
    hyps, refs = [], []
    for _ in range(60):
        ref = list(rng.choice(words, size=rng.integers(1, 12)))
        hyp = [w for w in ref if rng.random() > 0.3] + list(rng.choice(words, rng.integers(3)))
        hyps.append(" ".join(hyp))
        refs.append(" ".join(ref))
    for count in (1, 5, 60):
        expected = sacrebleu.corpus_bleu(hyps[:count], [refs[:count]]).score
        assert math.isclose(corpus_bleu(hyps[:count], refs[:count])["score"], expected,
                            rel_tol=1e-9, abs_tol=1e-9)


# -- recipes -----------------------------------------------------------------------------------


def test_seq2seq_dates_recipe_runs(tmp_path, monkeypatch):
    import importlib

    from xdl.cli import main

    monkeypatch.setattr(importlib.import_module("xdl.recipes.seq2seq"), "DATE_PAIRS",
                        (256, 40))
    out = tmp_path / "dates"
    assert main(["train", "seq2seq-dates", "--epochs", "1", "--out", str(out),
                 "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and metrics["train_seconds"] > 0
    assert 0.0 <= metrics["test_exact_match"] <= 1.0
    assert metrics["samples"][0]["target"].count("-") == 2
    assert (out / "model.npz").exists()
    if metrics["attention_figure"] is not None:
        assert (out / "attention.png").exists()


def test_seq2seq_en_fr_recipe_runs_on_a_fixture(tmp_path, monkeypatch):
    import importlib

    from xdl.cli import main

    module = importlib.import_module("xdl.recipes.seq2seq")
    monkeypatch.setattr(module, "EN_FR_HELD_OUT", 10)
    monkeypatch.setattr(module, "EN_FR_MODEL", {"d_model": 16, "nhead": 2,
                                                "num_encoder_layers": 1,
                                                "num_decoder_layers": 1,
                                                "dim_feedforward": 32, "dropout": 0.1})
    (tmp_path / "translation").mkdir()
    rows = [f"Open file {i}\tOuvrir le fichier {i}" for i in range(30)] + \
        [f"Close window {i}\tFermer la fenêtre {i}" for i in range(30)]
    (tmp_path / "translation" / "en_fr_ui_strings.tsv").write_text("\n".join(rows) + "\n",
                                                                   encoding="utf-8")
    out = tmp_path / "en-fr"
    assert main(["train", "seq2seq-en-fr", "--epochs", "1", "--batch-size", "16",
                 "--data-dir", str(tmp_path), "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val_cross_entropy_nats"] > 0 and 0.0 <= metrics["bleu"] <= 100.0
    assert len(metrics["samples"]) == 5
    assert set(metrics["samples"][0]) == {"source", "predicted", "reference"}


def test_recipe_training_loop_and_translation_on_every_backend(backend):
    """train_seq2seq (bucketed batches, clipping, Adam) and translate, on each backend:
    array_api_strict's device1 rejects any host round-trip inside the epoch."""
    from xdl import optim
    from xdl.recipes.seq2seq import PairBatches, encode_pairs, train_seq2seq, translate

    pairs = date_pairs(48, seed=0)
    src_vocab = Seq2SeqVocab.from_texts(s for s, _ in pairs)
    tgt_vocab = Seq2SeqVocab("0123456789-")
    arrays = encode_pairs(src_vocab, tgt_vocab, pairs)
    train = PairBatches(*arrays, 16, shuffle=True, bucket=True)
    assert sorted(np.concatenate([backends.to_numpy(b[0])[:, 0] for b in train])) == \
        sorted(arrays[0][:, 0])                     # every pair once per epoch
    model = AttentionSeq2Seq(len(src_vocab), len(tgt_vocab), 4, 8)
    history = train_seq2seq(model, optim.Adam(model.parameters(), lr=0.01), train,
                            PairBatches(*arrays, 32, shuffle=False), epochs=2)
    assert history["loss"][1] < history["loss"][0] and np.isfinite(history["val_loss"][1])
    outputs = translate(model, src_vocab, tgt_vocab, [s for s, _ in pairs[:3]], 11,
                        beam_width=2)
    assert len(outputs) == 3 and all(set(o) <= set("0123456789-") for o in outputs)
