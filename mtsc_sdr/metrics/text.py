"""BLEU-4 through sacrebleu, on its 0-100 scale.

Settings (sacrebleu's defaults, kept so numbers compare with other sacrebleu users; the signature
is ``nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|version:...``):

* tokenisation ``13a`` (the mteval-v13a.pl tokenizer: splits punctuation off words),
* case-sensitive (``lowercase=False``); pass ``lowercase=True`` for case-insensitive BLEU,
* corpus BLEU: n-gram matches and lengths are summed over all items before the precisions and the
  brevity penalty are taken (not a mean of sentence scores); smoothing ``exp`` (sacrebleu's
  default, which only matters when some n-gram order has no match at all in the whole corpus),
* sentence BLEU (:func:`sentence_bleu`): ``exp`` smoothing and effective order, as sacrebleu
  recommends for single sentences.
* per-item statistics (:func:`bleu_item_stats`, :func:`bleu_from_stats`): the counts corpus BLEU
  sums over items, so the corpus BLEU of any subset or bootstrap resample of the items is one sum
  away -- what sacrebleu's own paired bootstrap does, and what a standard error of corpus BLEU needs.

References: each item has one string or a list of strings, and items may have different numbers
of references. sacrebleu wants reference *streams* (stream j holds reference j of every item); we
transpose and pad the short items with ``None``, which sacrebleu drops per item (an empty string
would instead count as an empty reference and change the brevity penalty).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._inputs import check_text_pairs

# sacrebleu (~0.1 s) is imported when BLEU is computed: `run` imports the metrics for every report.


def _reference_streams(refs: list[list[str]]) -> list[list[str | None]]:
    n_streams = max(len(r) for r in refs)
    return [[r[j] if j < len(r) else None for r in refs] for j in range(n_streams)]


def bleu(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    *,
    lowercase: bool = False,
    tokenize: str = "13a",
) -> float:
    """Corpus BLEU-4 on 0-100 (sacrebleu, ``13a`` tokenisation, ``exp`` smoothing).

    ``hypotheses[i]`` is scored against ``references[i]`` (one string or a list of any length).
    An empty hypothesis is allowed (it adds no matches and lowers the brevity penalty).
    Raises ``ValueError`` for no items, mismatched lengths or an item without references.
    """
    from sacrebleu.metrics import BLEU

    hyps, refs = check_text_pairs(hypotheses, references, "bleu")
    metric = BLEU(lowercase=lowercase, tokenize=tokenize)
    return float(metric.corpus_score(hyps, _reference_streams(refs)).score)


def sentence_bleu(
    hypothesis: str,
    references: str | Sequence[str],
    *,
    lowercase: bool = False,
    tokenize: str = "13a",
) -> float:
    """BLEU-4 of one sentence on 0-100 (sacrebleu, ``exp`` smoothing, effective order)."""
    from sacrebleu.metrics import BLEU

    hyps, refs = check_text_pairs([hypothesis], [references], "sentence_bleu")
    metric = BLEU(lowercase=lowercase, tokenize=tokenize, effective_order=True)
    return float(metric.sentence_score(hyps[0], refs[0]).score)


#: Columns of :func:`bleu_item_stats`: hypothesis length, closest reference length, matching
#: 1..4-grams, hypothesis 1..4-grams (sacrebleu's segment statistics for BLEU-4).
BLEU_STATS_COLUMNS = 10


def bleu_item_stats(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    *,
    lowercase: bool = False,
    tokenize: str = "13a",
) -> np.ndarray:
    """Per-item BLEU-4 statistics, int64 (N, :data:`BLEU_STATS_COLUMNS`), as :func:`bleu` counts
    them (same settings, same arguments). ``bleu_from_stats(stats.sum(0)) == bleu(...)``; summing
    over a subset or a resample of the rows gives that subset's corpus BLEU without tokenising again.
    sacrebleu's significance tests use the same statistics (``Metric._extract_corpus_statistics``)."""
    from sacrebleu.metrics import BLEU

    hyps, refs = check_text_pairs(hypotheses, references, "bleu_item_stats")
    metric = BLEU(lowercase=lowercase, tokenize=tokenize)
    stats = metric._extract_corpus_statistics(hyps, _reference_streams(refs))
    return np.asarray(stats, dtype=np.int64).reshape(len(hyps), BLEU_STATS_COLUMNS)


def bleu_from_stats(stats: np.ndarray) -> float | np.ndarray:
    """Corpus BLEU-4 on 0-100 of summed :func:`bleu_item_stats` rows: one row (10,) -> float, a stack
    (B, 10) -> float64 (B,) (one corpus each, e.g. bootstrap resamples). Smoothing as :func:`bleu`."""
    from sacrebleu.metrics import BLEU

    metric = BLEU()
    arr = np.asarray(stats)
    if arr.shape[-1] != BLEU_STATS_COLUMNS or arr.ndim not in (1, 2):
        raise ValueError(f"bleu_from_stats: want shape ({BLEU_STATS_COLUMNS},) or (B, {BLEU_STATS_COLUMNS}), "
                         f"got {arr.shape}")
    one = lambda r: float(metric._compute_score_from_stats([int(v) for v in r]).score)   # noqa: E731
    return one(arr) if arr.ndim == 1 else np.array([one(r) for r in arr], dtype=np.float64)
