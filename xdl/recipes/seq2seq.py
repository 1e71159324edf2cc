"""The sequence-to-sequence chapters: date normalisation with the attention GRU
encoder–decoder, English→French with the Transformer encoder–decoder, and a
decoder-only Transformer language model on tiny-shakespeare."""

from __future__ import annotations

import os
import time

import numpy as np

from xdl import backends, nn, optim, training
from xdl.data.dates import date_pairs
from xdl.data.translation import BOS, EOS, PAD, Seq2SeqVocab, read_pairs_tsv, teacher_forcing
from xdl.metrics_text import corpus_bleu
from xdl.models.seq2seq import AttentionSeq2Seq, beam_search, greedy_decode, token_lists
from xdl.models.transformer import TransformerSeq2Seq
from xdl.plotting import plot_attention
from xdl.recipes import recipe
from xdl.recipes.common import finish, run_record, save_model
from xdl.recipes.sequence import (
    CharBatchLoader,
    _dataset_file,
    shakespeare_splits,
    train_char_lm,
)

#: Pairs drawn for seq2seq-dates (training, held-out test).
DATE_PAIRS = (20000, 2000)
#: seq2seq-en-fr keeps the pairs whose sides both have at most this many characters.
EN_FR_MAX_CHARS = 60
#: seq2seq-en-fr: held-out pairs, and how many of them are translated for BLEU.
EN_FR_HELD_OUT, EN_FR_BLEU_PAIRS = 1000, 500
#: seq2seq-en-fr's model (a TransformerSeq2Seq).
EN_FR_MODEL = {"d_model": 128, "nhead": 4, "num_encoder_layers": 2, "num_decoder_layers": 2,
               "dim_feedforward": 512, "dropout": 0.1}
#: Training steps in one "epoch" of transformer-shakespeare (random windows).
TRANSFORMER_STEPS_PER_EPOCH = 250
#: transformer-shakespeare's model (the window length is ``context``).
TRANSFORMER_LM = {"d_model": 128, "nhead": 4, "num_layers": 2, "dim_feedforward": 512,
                  "dropout": 0.0, "context": 128}
#: Validation batches of transformer-shakespeare (charrnn-shakespeare's: 20 × 64 × 100).
TRANSFORMER_VAL_BATCHES = 20


class PairBatches:
    """Batches (src, decoder input, flattened target) of padded host id arrays on the
    current backend, each trimmed to its longest row; shuffled per epoch with ``seed``.
    ``bucket``: within each run of 32 batches of the shuffled order, rows are sorted by
    length before they are cut into batches (less padding), and the batches shuffled."""

    def __init__(self, src, tgt_in, tgt_out, batch_size: int, shuffle: bool, seed: int = 0,
                 bucket: bool = False):
        self.src, self.tgt_in, self.tgt_out = src, tgt_in, tgt_out
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, 0
        self.bucket = bucket
        self.src_len = (src != PAD).sum(axis=1)
        self.tgt_len = (tgt_out != PAD).sum(axis=1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return -(-len(self.src) // self.batch_size)

    def __iter__(self):
        backend = backends.current()
        n = len(self.src)
        rng = np.random.default_rng(self.seed + 1000 * self.epoch)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        size = self.batch_size
        batches = [order[start:start + size] for start in range(0, n, size)]
        if self.bucket:
            run = 32 * size
            batches = []
            for start in range(0, n, run):
                part = order[start:start + run]
                part = part[np.argsort(self.src_len[part] + self.tgt_len[part], kind="stable")]
                batches += [part[i:i + size] for i in range(0, len(part), size)]
            if self.shuffle:
                batches = [batches[i] for i in rng.permutation(len(batches))]
        for rows in batches:
            s, t = int(self.src_len[rows].max()), int(self.tgt_len[rows].max())
            yield (backend.asarray(self.src[rows, :s], "int64"),
                   backend.asarray(self.tgt_in[rows, :t], "int64"),
                   backend.asarray(self.tgt_out[rows, :t].reshape(-1), "int64"))


def encode_pairs(src_vocab, tgt_vocab, pairs):
    """(src, decoder input, target) padded host arrays of (source, target) pairs."""
    src = src_vocab.batch([s for s, _ in pairs])
    tgt_in, tgt_out = teacher_forcing(tgt_vocab, [t for _, t in pairs])
    return src, tgt_in, tgt_out


def train_seq2seq(model, optimizer, train, val, epochs: int, clip: float = 1.0,
                  schedule=None, progress: bool = False) -> training.History:
    """Teacher-forced training with CrossEntropyLoss(ignore_index=<pad>); the history has
    the per-token training loss and validation loss (nats) of each epoch."""
    from tqdm.auto import tqdm

    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD)
    history = training.History()
    for epoch in range(epochs):
        began = time.perf_counter()
        train.set_epoch(epoch)
        model.train()
        total, count = 0.0, 0.0
        for src, tgt_in, tgt_out in tqdm(train, disable=not progress, mininterval=1.0,
                                         desc=f"epoch {epoch + 1}/{epochs}"):
            optimizer.zero_grad()
            loss = loss_fn(model(src, tgt_in), tgt_out)
            model.backward(loss_fn.backward())
            optim.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            tokens = _count(tgt_out, loss)
            total, count = total + loss * tokens, count + tokens
        logs = {"loss": training._host(total) / training._host(count),
                "lr": optimizer.param_groups[0]["lr"],
                "val_loss": evaluate_seq2seq(model, val)}
        logs["time"] = time.perf_counter() - began
        history.append(logs)
        if schedule is not None:
            schedule.step()
    return history


def _count(target, like):
    """The number of non-padding targets, a device scalar of ``like``'s dtype."""
    xp = backends.namespace(target)
    return xp.sum(xp.astype(target != PAD, like.dtype))


def evaluate_seq2seq(model, batches) -> float:
    """Mean teacher-forced cross-entropy per target token (nats), eos included."""
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0.0
    try:
        with nn.no_grad():
            for src, tgt_in, tgt_out in batches:
                logits = model(src, tgt_in)
                tokens = _count(tgt_out, logits)
                total = total + loss_fn(logits, tgt_out) * tokens
                count = count + tokens
    finally:
        model.train(was_training)
    return training._host(total) / training._host(count)


def translate(model, src_vocab, tgt_vocab, sources, max_len: int, beam_width: int = 1,
              batch_size: int = 100, with_attention: bool = False):
    """Decoded strings of ``sources`` (greedy, or beam search with ``beam_width`` > 1);
    with_attention also returns the greedy attention weights (host arrays)."""
    backend = backends.current()
    outputs, maps = [], []
    for start in range(0, len(sources), batch_size):
        chunk = sources[start:start + batch_size]
        src = backend.asarray(src_vocab.batch(chunk), "int64")
        if beam_width > 1:
            tokens = beam_search(model, src, beam_width, max_len, BOS, EOS).tokens[:, 0, :]
        else:
            decoded = greedy_decode(model, src, max_len, BOS, EOS)
            tokens = decoded.tokens
            if with_attention and decoded.attention is not None:
                maps.extend(backends.to_numpy(decoded.attention))
        outputs.extend(tgt_vocab.decode(ids) for ids in token_lists(tokens, EOS))
    return (outputs, maps) if with_attention else outputs


@recipe("seq2seq-dates", "Dive into Deep Learning ch. 10–11: seq2seq with attention",
        "GRU encoder (hidden 128) and GRU decoder with additive attention turning dates "
        "written 15 ways ('Mar 3, 21', 'Wednesday, March 3, 2021', ...) into ISO "
        "2021-03-03; held-out days never seen in training", epochs=5, batch_size=64,
        lr=0.003)
def seq2seq_dates(config, settings):
    train_pairs = date_pairs(DATE_PAIRS[0], seed=config.seed, split="train")
    test_pairs = date_pairs(DATE_PAIRS[1], seed=config.seed + 1, split="test")
    src_vocab = Seq2SeqVocab.from_texts(s for s, _ in train_pairs)
    tgt_vocab = Seq2SeqVocab("0123456789-")
    val_size = len(test_pairs) // 4
    train = PairBatches(*encode_pairs(src_vocab, tgt_vocab, train_pairs),
                        settings["batch_size"], shuffle=True, seed=config.seed)
    val = PairBatches(*encode_pairs(src_vocab, tgt_vocab, test_pairs[:val_size]), 256,
                      shuffle=False)
    arch_config = {"src_vocab_size": len(src_vocab), "tgt_vocab_size": len(tgt_vocab),
                   "embedding_dim": 32, "hidden_size": 128, "cell": "gru"}
    model = AttentionSeq2Seq(**arch_config)
    optimizer = optim.Adam(model.parameters(), lr=settings["lr"])
    schedule = optim.ExponentialLR(optimizer, gamma=0.8)
    began = time.perf_counter()
    history = train_seq2seq(model, optimizer, train, val, settings["epochs"], clip=1.0,
                            schedule=schedule, progress=config.progress)
    seconds = time.perf_counter() - began
    sources = [s for s, _ in test_pairs]
    predicted, maps = translate(model, src_vocab, tgt_vocab, sources, 12,
                                with_attention=True)
    correct = [p == t for p, (_, t) in zip(predicted, test_pairs)]
    beam = translate(model, src_vocab, tgt_vocab, sources[:500], 12, beam_width=3)
    os.makedirs(config.out, exist_ok=True)
    save_model(config.out, model, "attention_seq2seq", arch_config)
    example = 0
    source, output = sources[example], predicted[example]
    figure = plot_attention(maps[example][:len(output) + 1, :len(source)], list(source),
                            list(output) + ["<eos>"],
                            os.path.join(config.out, "attention.png"),
                            title="seq2seq-dates attention")
    metrics = {
        **run_record("seq2seq-dates", config, settings, seconds, len(history["loss"])),
        "history": dict(history),
        "test_exact_match": float(np.mean(correct)),
        "test_exact_match_beam3": float(np.mean([p == t for p, (_, t)
                                                 in zip(beam, test_pairs[:500])])),
        "val_cross_entropy_nats": history["val_loss"][-1],
        "samples": [{"source": s, "predicted": p, "target": t}
                    for (s, t), p in list(zip(test_pairs, predicted))[:8]],
        "errors": [{"source": s, "predicted": p, "target": t}
                   for (s, t), p, ok in zip(test_pairs, predicted, correct) if not ok][:10],
        "attention_figure": figure,
        "data": f"{len(train_pairs)} generated training pairs, {len(test_pairs)} held-out "
                f"pairs of days never seen in training (every tenth day), 15 formats, "
                f"1950–2049; greedy decoding (beam 3 on the first 500); the validation "
                f"loss, on the first {val_size} held-out pairs, is only monitored",
    }
    return finish(config.out, "seq2seq-dates", metrics, history)


@recipe("seq2seq-en-fr", "Attention is all you need: machine translation",
        "character-level English→French on software interface strings with a Transformer "
        "encoder–decoder (d_model 128, 2 + 2 layers); validation cross-entropy and BLEU",
        epochs=12, batch_size=64, lr=0.002)
def seq2seq_en_fr(config, settings):
    pairs = read_pairs_tsv(_dataset_file(config, "translation", "en_fr_ui_strings.tsv"))
    pairs = [(en, fr) for en, fr in pairs
             if len(en) <= EN_FR_MAX_CHARS and len(fr) <= EN_FR_MAX_CHARS]
    pairs = sorted(set(pairs))
    order = np.random.default_rng(config.seed).permutation(len(pairs))
    held_out = min(EN_FR_HELD_OUT, len(pairs) // 5)
    val_pairs = [pairs[i] for i in order[:held_out]]
    train_pairs = [pairs[i] for i in order[held_out:]]
    src_vocab = Seq2SeqVocab.from_texts(en for en, _ in train_pairs)
    tgt_vocab = Seq2SeqVocab.from_texts(fr for _, fr in train_pairs)
    train = PairBatches(*encode_pairs(src_vocab, tgt_vocab, train_pairs),
                        settings["batch_size"], shuffle=True, seed=config.seed, bucket=True)
    val = PairBatches(*encode_pairs(src_vocab, tgt_vocab, val_pairs), 200, shuffle=False,
                      bucket=True)
    arch_config = {"src_vocab_size": len(src_vocab), "tgt_vocab_size": len(tgt_vocab),
                   **EN_FR_MODEL, "max_len": EN_FR_MAX_CHARS + 16}
    model = TransformerSeq2Seq(**arch_config)
    optimizer = optim.Adam(model.parameters(), lr=settings["lr"])
    schedule = optim.ExponentialLR(optimizer, gamma=0.85)
    began = time.perf_counter()
    history = train_seq2seq(model, optimizer, train, val, settings["epochs"], clip=1.0,
                            schedule=schedule, progress=config.progress)
    seconds = time.perf_counter() - began
    scored = val_pairs[:EN_FR_BLEU_PAIRS]
    predicted = translate(model, src_vocab, tgt_vocab, [en for en, _ in scored],
                          EN_FR_MAX_CHARS + 10)
    bleu = corpus_bleu(predicted, [fr for _, fr in scored])
    os.makedirs(config.out, exist_ok=True)
    save_model(config.out, model, "transformer_seq2seq", arch_config)
    metrics = {
        **run_record("seq2seq-en-fr", config, settings, seconds, len(history["loss"])),
        "history": dict(history),
        "val_cross_entropy_nats": history["val_loss"][-1],
        "bleu": bleu["score"], "bleu_details": bleu,
        "samples": [{"source": en, "predicted": p, "reference": fr}
                    for (en, fr), p in list(zip(scored, predicted))[:5]],
        "data": f"{len(train_pairs)} training and {len(val_pairs)} held-out distinct pairs "
                f"with both sides at most {EN_FR_MAX_CHARS} characters (seeded split); "
                f"BLEU (sacrebleu-compatible, 13a) of greedy decoding on "
                f"{len(scored)} held-out pairs",
    }
    return finish(config.out, "seq2seq-en-fr", metrics, history)


@recipe("transformer-shakespeare", "Attention is all you need: a decoder-only Transformer",
        "2-layer pre-norm Transformer (d_model 128, 4 heads, context 128) character "
        "language model on tiny-shakespeare; an epoch is 250 steps of 32 windows",
        epochs=10, batch_size=32, lr=0.002)
def transformer_shakespeare(config, settings):
    from xdl.models.transformer import TransformerLanguageModel

    vocab, train_ids, val_ids = shakespeare_splits(config)
    context = TRANSFORMER_LM["context"]
    train = CharBatchLoader(train_ids, context, settings["batch_size"],
                            TRANSFORMER_STEPS_PER_EPOCH, config.seed)
    # the same validation characters as charrnn-shakespeare: 20 batches of 64 windows
    # of 100 characters from the last 10%
    val = CharBatchLoader(val_ids, min(100, context), 64, TRANSFORMER_VAL_BATCHES,
                          config.seed + 1)
    arch_config = {"vocab_size": len(vocab), **TRANSFORMER_LM}
    model = TransformerLanguageModel(**arch_config)
    optimizer = optim.AdamW(model.parameters(), lr=settings["lr"], weight_decay=0.01)
    return train_char_lm(config, settings, "transformer-shakespeare", model, "transformer_lm",
                         arch_config, optimizer, train, val, clip=1.0,
                         data="tiny-shakespeare: first 90% for training (windows of 128), last "
                              "10% for validation (20 batches of 64 windows of 100 characters, "
                              "as charrnn-shakespeare)", vocab=vocab)
