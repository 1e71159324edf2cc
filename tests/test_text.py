"""Text: character and word vocabularies, batches, and the sentiment, GloVe and IMDB readers.

Every fixture is written into pytest's ``tmp_path``; nothing here reads a shared data folder.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from xdl.data.idx import DatasetFileError
from xdl.data.text import (
    CharVocab,
    GloveVectors,
    Vocab,
    char_batches,
    read_glove,
    read_imdb,
    read_sentiment_csv,
    tokenize,
)

# ---------------------------------------------------------------- characters


def test_char_vocab_round_trip():
    vocab = CharVocab.from_text("hello world\n")
    assert vocab.chars == sorted(set("hello world\n"))
    assert len(vocab) == 9
    ids = vocab.encode("hold")
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [vocab.stoi[c] for c in "hold"])
    assert vocab.decode(ids) == "hold"
    assert vocab.decode(list(ids)) == "hold"
    with pytest.raises(KeyError, match="'z'"):
        vocab.encode("z")


def test_char_batches_shift_and_seed():
    data = np.arange(100, dtype=np.int64)
    batches = list(char_batches(data, seq_len=10, batch_size=4, seed=1, steps=3))
    assert len(batches) == 3
    for x, y in batches:
        assert x.shape == y.shape == (4, 10) and x.dtype == y.dtype == np.int64
        np.testing.assert_array_equal(y, x + 1)  # one ahead
        np.testing.assert_array_equal(np.diff(x, axis=1), 1)  # contiguous windows
        assert x.min() >= 0 and y.max() <= 99
    again = list(char_batches(data, 10, 4, 1, 3))
    for (x, _), (x2, _) in zip(batches, again):
        np.testing.assert_array_equal(x, x2)
    other = next(char_batches(data, 10, 4, seed=2, steps=1))[0]
    assert not np.array_equal(other, batches[0][0])


def test_char_batches_covers_last_window_and_errors():
    data = np.arange(6)
    starts = {int(x[0, 0]) for x, _ in char_batches(data, 5, 1, seed=0, steps=50)}
    assert starts == {0}  # only one window of 5 with a next character
    with pytest.raises(ValueError, match="too short"):
        next(char_batches(np.arange(5), 5, 1))
    with pytest.raises(ValueError, match=">= 1"):
        next(char_batches(np.arange(50), 0, 1))


# ---------------------------------------------------------------- words


def test_tokenize():
    assert tokenize("Don't stop -- it's 10/10...") == [
        "do", "n't", "stop", "-", "-", "it", "'s", "10", "/", "10", "...",
    ]  # fmt: skip
    assert tokenize("A  café, THE end!\n") == ["a", "café", ",", "the", "end", "!"]
    assert tokenize("   ") == []


def test_vocab_build_order_min_freq_max_size():
    lists = [["b", "a", "a"], ["c", "a", "b"], ["d"]]
    vocab = Vocab.build(lists)
    assert vocab.itos == ["<pad>", "<unk>", "a", "b", "c", "d"]  # by count, then alphabet
    assert vocab.pad_id == 0 and vocab.unk_id == 1 and len(vocab) == 6
    assert Vocab.build(lists, min_freq=2).itos == ["<pad>", "<unk>", "a", "b"]
    assert Vocab.build(lists, max_size=3).itos == ["<pad>", "<unk>", "a"]
    assert "a" in vocab and "z" not in vocab
    with pytest.raises(ValueError, match="max_size"):
        Vocab.build(lists, max_size=1)


def test_vocab_encode_decode_pad_batch():
    vocab = Vocab.build([["x", "y", "y"]])
    ids = vocab.encode(["y", "x", "unseen"])
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [2, 3, 1])
    assert vocab.decode(ids) == ["y", "x", "<unk>"]
    batch, lengths = vocab.pad_batch([["x"], ["y", "x", "y"], []])
    np.testing.assert_array_equal(batch, [[3, 0, 0], [2, 3, 2], [0, 0, 0]])
    np.testing.assert_array_equal(lengths, [1, 3, 0])
    assert batch.dtype == lengths.dtype == np.int64
    batch, lengths = vocab.pad_batch([["x"], ["y", "x", "y"]], max_len=2)
    np.testing.assert_array_equal(batch, [[3, 0], [2, 3]])
    np.testing.assert_array_equal(lengths, [1, 2])
    no_unk = Vocab.build([["x"]], specials=("<pad>",))
    with pytest.raises(KeyError, match="unknown token"):
        no_unk.encode(["z"])


# ---------------------------------------------------------------- sentiment CSV


def test_read_sentiment_csv_quoting_and_bom(tmp_path):
    path = tmp_path / "rt.csv"
    path.write_bytes(
        b'\xef\xbb\xbflabel,text\r\n1,A small movie.\r\n0,"Long, dull and ""smart"""\r\n'
        b'1,"two\nlines"\r\n'
    )
    texts, labels = read_sentiment_csv(path)
    assert texts == ["A small movie.", 'Long, dull and "smart"', "two\nlines"]
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [1, 0, 1])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("text,label\n1,x\n", "line 1: expected the header"),
        ("label,text\n", "no data rows"),
        ("label,text\n1,ok\nbad,x\n", "line 3: label is not an integer"),
        ("label,text\n1,a,b\n", "line 2: expected 2 fields"),
    ],
)
def test_read_sentiment_csv_errors(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DatasetFileError, match=match) as info:
        read_sentiment_csv(path)
    assert "bad.csv" in str(info.value)


# ---------------------------------------------------------------- GloVe

GLOVE = "the 0.1 0.2 0.3\n, -1 0 1\ncat 0.5 0.25 -0.125\n"


@pytest.mark.parametrize("name", ["g.txt", "g.txt.gz"])
def test_read_glove_plain_and_gz(tmp_path, name):
    path = tmp_path / name
    data = GLOVE.encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    result = read_glove(path)
    words, vectors = result
    assert isinstance(result, GloveVectors)
    assert words == ["the", ",", "cat"] and result.found == 3
    assert vectors.dtype == np.float32 and vectors.shape == (3, 3)
    np.testing.assert_array_equal(vectors[2], np.float32([0.5, 0.25, -0.125]))


def test_read_glove_aligned_to_vocab(tmp_path):
    path = tmp_path / "g.txt.gz"
    path.write_bytes(gzip.compress(GLOVE.encode()))
    vocab = Vocab.build([["cat", "cat", "dog", "the"]])  # <pad> <unk> cat dog the
    result = read_glove(path, vocab=vocab, seed=5)
    words, matrix = result
    assert words == vocab.itos
    assert matrix.shape == (5, 3) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[0], 0.0)  # <pad>
    np.testing.assert_array_equal(matrix[2], np.float32([0.5, 0.25, -0.125]))
    np.testing.assert_array_equal(matrix[4], np.float32([0.1, 0.2, 0.3]))
    assert result.found == 2 and result.missing == ["<unk>", "dog"]
    assert 0 < np.abs(matrix[3]).max() < 1.0  # random N(0, 0.1^2)
    again = read_glove(path, vocab=vocab, seed=5).vectors
    np.testing.assert_array_equal(again, matrix)
    assert not np.array_equal(read_glove(path, vocab=vocab, seed=6).vectors[3], matrix[3])
    plain = read_glove(path, vocab=["the", "zebra"], dim=3)
    assert plain.found == 1 and plain.vectors.shape == (2, 3)


@pytest.mark.parametrize(
    ("text", "dim", "match"),
    [
        ("a 1 2\nb 1\n", None, "line 2: expected a word and 2 values"),
        ("a 1 x\n", None, "line 1: a value is not a number"),
        ("a 1 2\n", 3, "line 1: expected a word and 3 values"),
        ("\n", None, "no vectors"),
        ("lonely\n", None, "without a vector"),
    ],
)
def test_read_glove_errors(tmp_path, text, dim, match):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(DatasetFileError, match=match) as info:
        read_glove(path, dim=dim)
    assert "bad.txt" in str(info.value)


def test_read_glove_corrupt_gzip(tmp_path):
    path = tmp_path / "bad.txt.gz"
    path.write_bytes(gzip.compress(GLOVE.encode())[:-10])
    with pytest.raises(DatasetFileError, match="bad.txt.gz"):
        read_glove(path)


# ---------------------------------------------------------------- IMDB


def _imdb_tree(root):
    for split in ("train", "test"):
        for sub, names in (("pos", ["1_10.txt", "0_9.txt"]), ("neg", ["5_2.txt"])):
            folder = root / "aclImdb" / split / sub
            folder.mkdir(parents=True)
            for name in names:
                (folder / name).write_text(f"{split} {sub} {name} <br />é", encoding="utf-8")
    (root / "aclImdb" / "train" / "unsup").mkdir()


def test_read_imdb_layout(tmp_path):
    _imdb_tree(tmp_path)
    texts, labels = read_imdb(tmp_path / "aclImdb", split="train")
    assert texts == [
        "train pos 0_9.txt <br />é", "train pos 1_10.txt <br />é", "train neg 5_2.txt <br />é",
    ]  # fmt: skip
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [1, 1, 0])
    texts, labels = read_imdb(tmp_path, split="test")  # the folder holding aclImdb/
    assert texts[0].startswith("test pos") and len(labels) == 3


def test_read_imdb_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not available here"):
        read_imdb(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split"):
        read_imdb(tmp_path, split="unsup")
    (tmp_path / "train" / "pos").mkdir(parents=True)
    (tmp_path / "train" / "neg").mkdir(parents=True)
    with pytest.raises(DatasetFileError, match="no .txt reviews"):
        read_imdb(tmp_path)
