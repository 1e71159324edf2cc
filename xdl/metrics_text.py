"""Corpus BLEU as sacrebleu computes it by default (host-side, pure Python).

    BLEU = 100 · BP · exp(¼ Σ_{n=1..4} log p_n)
    p_n  = Σ_sentences clipped n-gram matches / Σ_sentences hypothesis n-grams
    BP   = 1 if c ≥ r else exp(1 − r / c)     (c, r: total hypothesis / reference tokens)

Clipping counts each hypothesis n-gram at most as often as it occurs in the reference
(with several references: the most in any one of them; r then sums, per sentence, the
reference length closest to the hypothesis', the shorter on a tie). A p_n with no
match is smoothed as sacrebleu's default "exp" method (mteval-v13a's): the k-th such
order gets 1 / (2^k · total_n); no match at all gives 0. Text is tokenised with
mteval-v13a's rules (sacrebleu's default "13a"): punctuation and symbols become tokens,
periods and commas too unless between digits, a dash after a digit is split off.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_RULES = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # symbols and punctuation
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),                 # . and , not after a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),                 # . and , not before a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),                      # - after a digit
]


def tokenize_13a(line: str) -> list[str]:
    """The tokens of ``line`` under mteval-v13a's rules (sacrebleu's "13a")."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        for entity, char in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
            line = line.replace(entity, char)
    line = f" {line} "
    for pattern, replacement in _RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def _ngrams(tokens: list[str], order: int) -> Counter:
    return Counter(tuple(tokens[i:i + order]) for i in range(len(tokens) - order + 1))


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]],
                max_order: int = 4) -> dict:
    """Corpus BLEU of ``hypotheses`` against ``references`` (one string, or a list of
    alternative strings, per hypothesis). Returns {"score" (0–100), "precisions"
    (percent per order), "brevity_penalty", "hyp_length", "ref_length"}."""
    if len(hypotheses) != len(references):
        raise ValueError(f"corpus_bleu: {len(hypotheses)} hypotheses but "
                         f"{len(references)} references")
    matches, totals = [0] * max_order, [0] * max_order
    hyp_length = ref_length = 0
    for hypothesis, refs in zip(hypotheses, references):
        refs = [refs] if isinstance(refs, str) else list(refs)
        hyp = tokenize_13a(hypothesis)
        ref_tokens = [tokenize_13a(r) for r in refs]
        hyp_length += len(hyp)
        ref_length += min((abs(len(r) - len(hyp)), len(r)) for r in ref_tokens)[1]
        for n in range(1, max_order + 1):
            counts = _ngrams(hyp, n)
            allowed = Counter()
            for r in ref_tokens:
                allowed |= _ngrams(r, n)
            matches[n - 1] += sum(min(c, allowed[g]) for g, c in counts.items())
            totals[n - 1] += max(0, len(hyp) - n + 1)
    penalty = 1.0
    if hyp_length < ref_length:
        penalty = math.exp(1.0 - ref_length / hyp_length) if hyp_length > 0 else 0.0
    precisions = [0.0] * max_order
    result = {"score": 0.0, "precisions": precisions, "brevity_penalty": penalty,
              "hyp_length": hyp_length, "ref_length": ref_length}
    if not any(matches):
        return result
    halving = 1.0
    for n in range(max_order):
        if totals[n] == 0:
            break
        if matches[n] == 0:
            halving *= 2.0
            precisions[n] = 100.0 / (halving * totals[n])
        else:
            precisions[n] = 100.0 * matches[n] / totals[n]
    if min(precisions) <= 0.0:
        return result
    log_mean = sum(math.log(p) for p in precisions) / max_order
    result["score"] = penalty * math.exp(log_mean)
    return result
