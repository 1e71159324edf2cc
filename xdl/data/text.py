"""Text: character and word vocabularies, batches, and readers for the text corpora.

Host-side NumPy throughout; ids are int64, word vectors float32.

* Characters (tiny-shakespeare): :class:`CharVocab` and :func:`char_batches`.
* Words (sentiment): :func:`tokenize`, :class:`Vocab` (``<pad>`` id 0, ``<unk>`` id 1),
  :func:`read_sentiment_csv` (Rotten Tomatoes snippets, ``label,text``),
  :func:`read_imdb` (the ``aclImdb/`` folder layout) and :func:`read_glove`
  (GloVe text vectors, plain or gzipped, optionally aligned to a :class:`Vocab`).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from xdl.data.idx import DatasetFileError

__all__ = [
    "CharVocab",
    "GloveVectors",
    "Vocab",
    "char_batches",
    "read_glove",
    "read_imdb",
    "read_sentiment_csv",
    "tokenize",
]

_GZIP_MAGIC = b"\x1f\x8b"


# ---------------------------------------------------------------- characters


class CharVocab:
    """The sorted distinct characters of a text; ``encode`` / ``decode`` map str <-> int64 ids."""

    def __init__(self, chars: Iterable[str]):
        self.chars: list[str] = sorted(set(chars))
        self.stoi: dict[str, int] = {ch: i for i, ch in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls(text)

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """``text`` as an int64 array of ids; a character not in the vocabulary is a KeyError."""
        try:
            return np.fromiter((self.stoi[ch] for ch in text), dtype=np.int64, count=len(text))
        except KeyError as exc:
            raise KeyError(
                f"CharVocab.encode: character {exc.args[0]!r} not in vocabulary"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[int(i)] for i in np.asarray(ids).reshape(-1))


def char_batches(
    encoded: np.ndarray,
    seq_len: int,
    batch_size: int,
    seed: int = 0,
    steps: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``steps`` batches ``(inputs, targets)``, each int64 ``(batch_size, seq_len)``.

    Every row is a window at a random start drawn with ``seed`` (uniform over all
    ``len(encoded) - seq_len`` starts); ``targets`` is the same window shifted one
    character ahead. ``steps=None`` yields forever.
    """
    data = np.asarray(encoded, dtype=np.int64).reshape(-1)
    if seq_len < 1 or batch_size < 1:
        raise ValueError(
            f"char_batches: seq_len and batch_size must be >= 1, got {seq_len}, {batch_size}"
        )
    if len(data) < seq_len + 1:
        raise ValueError(
            f"char_batches: a text of {len(data)} ids is too short for seq_len={seq_len}"
        )
    rng = np.random.default_rng(seed)
    offsets = np.arange(seq_len)
    step = 0
    while steps is None or step < steps:
        starts = rng.integers(0, len(data) - seq_len, size=batch_size)
        index = starts[:, None] + offsets
        yield data[index], data[index + 1]
        step += 1


# ---------------------------------------------------------------- words

# Penn-Treebank-style clitics, as in the GloVe vocabularies: "don't" -> "do", "n't";
# "it's" -> "it", "'s"; otherwise a word is a run of letters/digits, "..." is one token
# and any other character that is not white space is a token of its own.
_TOKEN = re.compile(r"[^\W_]+(?=n't\b)|n't\b|'(?:s|re|ve|ll|d|m)\b|[^\W_]+|\.\.\.|[^\w\s]|_")


def tokenize(text: str) -> list[str]:
    """Lowercase ``text`` and split it into word and punctuation tokens (GloVe-compatible).

    The regex, tried left to right at each position::

        [^\\W_]+(?=n't\\b) | n't\\b | '(?:s|re|ve|ll|d|m)\\b | [^\\W_]+ | \\.\\.\\. | [^\\w\\s] | _

    A word is a run of (Unicode) letters and digits; the clitics ``n't``, ``'s``, ``'re``,
    ``'ve``, ``'ll``, ``'d``, ``'m`` are split off as their own tokens, as the Stanford
    tokenizer behind GloVe does; ``...`` is one token; any other non-space character is
    a one-character token; white space separates and is dropped.
    ``tokenize("Don't stop -- it's 10/10...")`` gives
    ``["do", "n't", "stop", "-", "-", "it", "'s", "10", "/", "10", "..."]``.
    """
    return _TOKEN.findall(text.lower())


class Vocab:
    """A word vocabulary: ``itos`` (id -> token) and ``stoi`` (token -> id).

    Built by :meth:`build`, the specials come first (``<pad>`` id 0, ``<unk>`` id 1 by
    default), then the tokens by decreasing count, ties in alphabetical order.
    ``pad_id`` / ``unk_id`` are the ids of ``"<pad>"`` / ``"<unk>"`` or None when absent.
    """

    def __init__(self, itos: Sequence[str]):
        self.itos: list[str] = list(itos)
        self.stoi: dict[str, int] = {tok: i for i, tok in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("Vocab: duplicate tokens")
        self.pad_id: int | None = self.stoi.get("<pad>")
        self.unk_id: int | None = self.stoi.get("<unk>")

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Iterable[str]],
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = ("<pad>", "<unk>"),
    ) -> Vocab:
        """Count the tokens; keep those seen at least ``min_freq`` times.

        ``max_size`` caps the whole vocabulary, specials included (the most frequent
        tokens are kept).
        """
        if max_size is not None and max_size < len(specials):
            raise ValueError(f"Vocab.build: max_size {max_size} < {len(specials)} specials")
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        special_set = set(specials)
        ranked = sorted(
            (tok for tok, c in counts.items() if c >= min_freq and tok not in special_set),
            key=lambda tok: (-counts[tok], tok),
        )
        if max_size is not None:
            ranked = ranked[: max_size - len(specials)]
        return cls([*specials, *ranked])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """Token ids, int64; unknown tokens get ``unk_id`` (KeyError if there is no ``<unk>``)."""
        if self.unk_id is None:
            try:
                return np.array([self.stoi[t] for t in tokens], dtype=np.int64)
            except KeyError as exc:
                raise KeyError(f"Vocab.encode: unknown token {exc.args[0]!r}, no <unk>") from None
        return np.array([self.stoi.get(t, self.unk_id) for t in tokens], dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in np.asarray(ids).reshape(-1)]

    def pad_batch(
        self, token_lists: Sequence[Sequence[str]], max_len: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Encode and pad: ``(ids int64 (N, L), lengths int64 (N,))``.

        ``L`` is ``max_len`` when given (longer lists are cut to their first ``max_len``
        tokens), else the longest list's length. Padding uses ``pad_id``; ``lengths``
        counts the real tokens of each row after cutting.
        """
        if self.pad_id is None:
            raise ValueError("Vocab.pad_batch: the vocabulary has no <pad> token")
        encoded = [self.encode(tokens) for tokens in token_lists]
        if max_len is not None:
            if max_len < 0:
                raise ValueError(f"Vocab.pad_batch: max_len must be >= 0, got {max_len}")
            encoded = [ids[:max_len] for ids in encoded]
        lengths = np.array([len(ids) for ids in encoded], dtype=np.int64)
        width = max_len if max_len is not None else int(lengths.max(initial=0))
        batch = np.full((len(encoded), width), self.pad_id, dtype=np.int64)
        for row, ids in enumerate(encoded):
            batch[row, : len(ids)] = ids
        return batch, lengths


# ---------------------------------------------------------------- corpora


def read_sentiment_csv(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read a ``label,text`` CSV (the Rotten Tomatoes snippets): ``(texts, labels int64)``.

    Quoted fields (commas, quotes, newlines inside a text) follow the csv module's
    rules; a UTF-8 BOM is skipped. Raises :class:`DatasetFileError` naming the file and
    line for a wrong header, a row without two fields, a label that is not an integer,
    or a file without rows.
    """
    name = os.fspath(path)
    texts: list[str] = []
    labels: list[int] = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header] != ["label", "text"]:
            raise DatasetFileError(
                f"{name}, line 1: expected the header 'label,text', got {header}"
            )
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != 2:
                raise DatasetFileError(
                    f"{name}, line {reader.line_num}: expected 2 fields, got {len(row)}"
                )
            try:
                labels.append(int(row[0]))
            except ValueError:
                raise DatasetFileError(
                    f"{name}, line {reader.line_num}: label is not an integer: {row[0]!r}"
                ) from None
            texts.append(row[1])
    if not texts:
        raise DatasetFileError(f"{name}: no data rows after the header")
    return texts, np.array(labels, dtype=np.int64)


def read_imdb(root: str | os.PathLike, split: str = "train") -> tuple[list[str], np.ndarray]:
    """Read the IMDB reviews from the ``aclImdb`` folder layout: ``(texts, labels int64)``.

    ``root`` is the ``aclImdb`` folder (or a folder holding one); the reviews are
    ``root/<split>/pos/*.txt`` (label 1) then ``root/<split>/neg/*.txt`` (label 0), each
    folder in sorted file-name order. Texts are returned as stored (including any
    ``<br />``). The corpus is not in the shared data folder: a missing folder raises
    FileNotFoundError saying where to put it.
    """
    if split not in ("train", "test"):
        raise ValueError(f"read_imdb: split must be 'train' or 'test', got {split!r}")
    base = Path(root)
    if not (base / split).is_dir() and (base / "aclImdb" / split).is_dir():
        base = base / "aclImdb"
    texts: list[str] = []
    labels: list[int] = []
    for sub, label in (("pos", 1), ("neg", 0)):
        folder = base / split / sub
        if not folder.is_dir():
            raise FileNotFoundError(
                f"read_imdb: {folder} not found: the IMDB corpus (aclImdb) is not available "
                f"here. Download aclImdb_v1.tar.gz from "
                f"https://ai.stanford.edu/~amaas/data/sentiment/ and extract it so that "
                f"{base}/{{train,test}}/{{pos,neg}}/*.txt exist"
            )
        files = sorted(folder.glob("*.txt"))
        if not files:
            raise DatasetFileError(f"{folder}: no .txt reviews in the folder")
        for file in files:
            try:
                texts.append(file.read_text(encoding="utf-8"))
            except UnicodeDecodeError as exc:
                raise DatasetFileError(f"{file}: not UTF-8 text ({exc})") from exc
            labels.append(label)
    return texts, np.array(labels, dtype=np.int64)


class GloveVectors(tuple):
    """What :func:`read_glove` returns: a 2-tuple ``(words, vectors)`` that unpacks as such,
    plus the attributes ``found`` (how many words got a GloVe vector) and ``missing``
    (the vocabulary words without one, specials included, ``<pad>`` excluded; empty
    when no vocabulary was given)."""

    found: int
    missing: list[str]

    def __new__(
        cls, words: list[str], vectors: np.ndarray, found: int, missing: list[str]
    ) -> GloveVectors:
        self = super().__new__(cls, (words, vectors))
        self.found = found
        self.missing = missing
        return self

    @property
    def words(self) -> list[str]:
        return self[0]

    @property
    def vectors(self) -> np.ndarray:
        return self[1]


def read_glove(
    path: str | os.PathLike,
    vocab: Vocab | Sequence[str] | None = None,
    dim: int | None = None,
    seed: int = 0,
) -> GloveVectors:
    """Read GloVe text vectors (``word v1 ... vD`` a line; plain or gzip, by magic bytes).

    Without ``vocab``: every word in file order and a float32 ``(N, D)`` matrix.
    With ``vocab`` (a :class:`Vocab` or a list of words, index = id): ``words`` is the
    vocabulary and ``vectors`` a float32 ``(len(vocab), D)`` matrix aligned to its ids:
    a word found in the file gets its vector, a missing one a draw from N(0, 0.1^2)
    (seeded with ``seed``), ``<pad>`` zeros. The result unpacks as ``words, vectors`` and
    carries ``.found`` / ``.missing`` (see :class:`GloveVectors`). ``dim``, when given,
    is checked against the file. Raises :class:`DatasetFileError` naming the file and
    line for a row with the wrong number of values or a value that is not a number.
    """
    name = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetFileError(f"{name}: corrupt gzip stream ({exc})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetFileError(f"{name}: not UTF-8 text ({exc})") from exc

    itos = None if vocab is None else list(vocab.itos if isinstance(vocab, Vocab) else vocab)
    wanted = None if itos is None else {w: i for i, w in enumerate(itos)}
    words: list[str] = []
    rows: list[np.ndarray] = []
    for lineno, line in enumerate(io.StringIO(text), start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        parts = line.rstrip(" ").split(" ")
        if dim is None:
            dim = len(parts) - 1
            if dim < 1:
                raise DatasetFileError(f"{name}, line {lineno}: a word without a vector")
        if len(parts) < dim + 1:
            raise DatasetFileError(
                f"{name}, line {lineno}: expected a word and {dim} values, "
                f"got {len(parts) - 1} values"
            )
        word = " ".join(parts[:-dim])  # a few GloVe sets have words with spaces
        if wanted is not None and word not in wanted:
            continue
        try:
            vector = np.array(parts[-dim:], dtype=np.float32)
        except ValueError:
            raise DatasetFileError(f"{name}, line {lineno}: a value is not a number") from None
        words.append(word)
        rows.append(vector)
    if dim is None:
        raise DatasetFileError(f"{name}: no vectors in the file")
    table = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)

    if itos is None or wanted is None:
        return GloveVectors(words, table, len(words), [])
    matrix = np.random.default_rng(seed).normal(0.0, 0.1, size=(len(itos), dim))
    matrix = matrix.astype(np.float32)
    found = np.zeros(len(itos), dtype=bool)
    for word, vector in zip(words, rows):
        if not found[wanted[word]]:  # the first occurrence wins
            matrix[wanted[word]] = vector
            found[wanted[word]] = True
    pad = wanted.get("<pad>")
    if pad is not None:
        matrix[pad] = 0.0
    missing = [w for i, w in enumerate(itos) if not found[i] and w != "<pad>"]
    return GloveVectors(list(itos), matrix, int(found.sum()), missing)
