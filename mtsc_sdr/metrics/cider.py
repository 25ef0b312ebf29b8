"""CIDEr-D, as computed by the COCO caption evaluation (``pycocoevalcap``'s ``Cider`` class).

Definition (Vedantam et al., CVPR 2015, with the "D" changes of the COCO evaluation server):

* n-grams of order 1..4 of a tokenised caption, each weighted by term frequency x IDF, where the
  document frequency of an n-gram is the number of *items* (images, clips) whose reference set
  contains it, over the references of the corpus being scored: ``idf = log(N) - log(max(1, df))``
  with ``N`` items. CIDEr is therefore a corpus metric: an item's score depends on the other items,
  and a single-item corpus scores 0 (every IDF is 0).
* per order, the cosine similarity between the candidate's and each reference's vectors, with the
  candidate's weights *clipped* by the reference's (``sum min(c, r) * r / (|c| |r|)``), times a
  Gaussian length penalty ``exp(-(l_c - l_r)^2 / (2 * 6^2))``; no stemming.
* averaged over references and over the 4 orders, times 10.

As in pycocoevalcap, the lengths in the penalty are counted in *bigrams* (``max(len - 1, 0)`` for
a caption of ``len`` tokens): this equals the token-length difference except when a caption is
empty. Our implementation is written here and is checked against ``pycocoevalcap.cider.Cider`` on
the same tokenised inputs in ``tests/metrics/test_text.py`` (corpus and per-item scores to 1e-6).

Scale: :func:`cider` returns pycocoevalcap's scale (a good caption set scores around 1; the
maximum is 10). Papers and our reports print CIDEr x 100 ("CIDEr 90"); ``score_task`` in
:mod:`mtsc_sdr.metrics` applies that factor (``CIDER_REPORT_SCALE``).

Tokenisation: the COCO evaluation runs the Stanford CoreNLP PTBTokenizer (Java) with lower-casing
and then drops punctuation tokens. :func:`coco_tokenize` is a pure-Python stand-in with the same
effect on ordinary captions: lower-case; clitics split as PTB does (``don't`` -> ``do n't``,
``dog's`` -> ``dog 's``); punctuation split off word edges and dropped (``. , ; : ? ! - -- ' " `
( ) [ ] { }``); other symbols (``$ % & #``) kept as their own tokens; hyphens, periods and commas
inside a word or number kept (``t-shirt``, ``3.5``, ``1,000``). Known differences from the Java
tokenizer: abbreviations keep no final period (``u.s.`` -> ``u.s``, PTB keeps ``u.s.``), and
PTB's rarer rewrites (``cannot`` -> ``can not``, ``gonna`` -> ``gon na``, unicode normalisation)
are not applied except ``cannot``. Scores on real COCO captions may therefore differ slightly from
leaderboard numbers; pass ``tokenize=False`` with captions tokenised by the official pipeline to
reproduce them exactly.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ._inputs import check_text_pairs

#: Tokens the COCO caption evaluation removes after PTB tokenisation (``-LRB-`` etc. are the PTB
#: spellings of brackets; our tokenizer never produces them, it drops the bracket characters).
_DROPPED_TOKENS = frozenset([".", "?", "!", ",", ":", ";", "-", "--", "...", "'", "''", "`", "``", '"',
                             "(", ")", "[", "]", "{", "}"])
_CLITIC_NT = re.compile(r"(\w)n't\b")
_CLITIC = re.compile(r"(\w)'(s|re|ve|ll|d|m)\b")
_CLITIC_TOKENS = frozenset(["n't", "'s", "'re", "'ve", "'ll", "'d", "'m"])


def coco_tokenize(text: str) -> list[str]:
    """Lower-cased PTB-style tokens of ``text`` with punctuation removed (see the module docstring)."""
    text = text.lower().replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = re.sub(r"\bcannot\b", "can not", text)
    text = _CLITIC_NT.sub(r"\1 n't", text)
    text = _CLITIC.sub(r"\1 '\2", text)
    tokens: list[str] = []
    for chunk in text.split():
        if chunk in _CLITIC_TOKENS:
            tokens.append(chunk)
            continue
        head: list[str] = []
        tail: list[str] = []
        while chunk and not chunk[0].isalnum():
            head.append(chunk[0])
            chunk = chunk[1:]
        while chunk and not chunk[-1].isalnum():
            tail.append(chunk[-1])
            chunk = chunk[:-1]
        pieces = head + ([chunk] if chunk else []) + tail[::-1]
        tokens.extend(p for p in pieces if p not in _DROPPED_TOKENS)
    return tokens


def _ngram_counts(tokens: list[str], n: int) -> Counter:
    counts: Counter = Counter()
    for k in range(1, n + 1):
        for i in range(len(tokens) - k + 1):
            counts[tuple(tokens[i:i + k])] += 1
    return counts


class _Vector:
    """TF-IDF weights of one caption, split by n-gram order, with per-order norms."""

    __slots__ = ("weights", "norms", "length")

    def __init__(self, counts: Counter, idf, n: int):
        self.weights: list[dict] = [{} for _ in range(n)]
        for gram, tf in counts.items():
            self.weights[len(gram) - 1][gram] = tf * idf(gram)
        self.norms = [math.sqrt(sum(w * w for w in order.values())) for order in self.weights]
        # pycocoevalcap counts the length in bigrams (see the module docstring)
        self.length = sum(counts[g] for g in self.weights[1]) if n > 1 else 0


def cider_scores(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    *,
    tokenize: bool = True,
    n: int = 4,
    sigma: float = 6.0,
) -> tuple[float, np.ndarray]:
    """CIDEr-D of a corpus and of each item, on pycocoevalcap's scale (x100 in reports).

    ``hypotheses[i]`` is one candidate caption for item ``i``; ``references[i]`` its reference
    captions (a string or a list). With ``tokenize=True`` every caption goes through
    :func:`coco_tokenize`; with ``tokenize=False`` captions are taken as already tokenised and
    split on whitespace (what pycocoevalcap's ``Cider.compute_score`` does).

    Returns ``(corpus_score, per_item_scores)``, the corpus score being the mean of the item scores.
    Raises ``ValueError`` for no items, mismatched lengths or an item without references.
    """
    hyps, refs = check_text_pairs(hypotheses, references, "cider")
    split = coco_tokenize if tokenize else str.split
    hyp_counts = [_ngram_counts(split(h), n) for h in hyps]
    ref_counts = [[_ngram_counts(split(r), n) for r in rs] for rs in refs]

    doc_freq: Counter = Counter()
    for rs in ref_counts:
        doc_freq.update(set().union(*rs))
    log_n_items = math.log(len(hyps))

    def idf(gram) -> float:
        return log_n_items - math.log(max(1.0, doc_freq[gram]))

    two_sigma_sq = 2.0 * sigma * sigma
    scores = np.zeros(len(hyps))
    for i, (hc, rcs) in enumerate(zip(hyp_counts, ref_counts)):
        cand = _Vector(hc, idf, n)
        total = 0.0
        for rc in rcs:
            ref = _Vector(rc, idf, n)
            penalty = math.exp(-((cand.length - ref.length) ** 2) / two_sigma_sq)
            for k in range(n):
                rw = ref.weights[k]
                dot = sum(min(w, rw.get(g, 0.0)) * rw.get(g, 0.0) for g, w in cand.weights[k].items())
                if cand.norms[k] != 0.0 and ref.norms[k] != 0.0:
                    dot /= cand.norms[k] * ref.norms[k]
                total += dot * penalty
        scores[i] = 10.0 * total / (n * len(rcs))
    return float(scores.mean()), scores


def cider(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    *,
    tokenize: bool = True,
) -> float:
    """Corpus CIDEr-D on pycocoevalcap's scale (about 1 for good captions; reports show x100)."""
    return cider_scores(hypotheses, references, tokenize=tokenize)[0]
