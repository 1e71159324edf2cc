"""Character vocabularies with special tokens, padded id batches for seq2seq models, and
the tab-separated sentence-pair reader."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]


class Seq2SeqVocab:
    """Ids 0–3 are <pad>, <bos>, <eos>, <unk>; then the sorted distinct characters.

    A character not in the vocabulary encodes as <unk>; ``decode`` drops the specials.
    """

    def __init__(self, chars: Iterable[str]):
        self.chars: list[str] = SPECIALS + sorted(set(chars))
        self.stoi: dict[str, int] = {ch: i for i, ch in enumerate(self.chars)}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Seq2SeqVocab:
        return cls(ch for text in texts for ch in text)

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(ch, UNK) for ch in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i] for i in ids if i >= len(SPECIALS))

    def batch(self, texts: Sequence[str], bos: bool = False, eos: bool = False) -> np.ndarray:
        """int64 (len(texts), longest) ids, right-padded with <pad>, optionally framed by
        <bos> and <eos>."""
        rows = [([BOS] if bos else []) + self.encode(t) + ([EOS] if eos else []) for t in texts]
        out = np.full((len(rows), max(len(r) for r in rows)), PAD, dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, :len(r)] = r
        return out


def teacher_forcing(vocab: Seq2SeqVocab, targets: Sequence[str]):
    """(decoder input, target): "<bos> y_1 … y_n" and "y_1 … y_n <eos>", padded."""
    framed = vocab.batch(targets, bos=True, eos=True)
    return framed[:, :-1].copy(), framed[:, 1:].copy()


def read_pairs_tsv(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(source, target) pairs of a UTF-8 ``source<TAB>target`` file; other lines skipped."""
    pairs = []
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2 and parts[0].strip() and parts[1].strip():
                pairs.append((parts[0].strip(), parts[1].strip()))
    return pairs
