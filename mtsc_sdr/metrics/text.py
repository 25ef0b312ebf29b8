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

References: each item has one string or a list of strings, and items may have different numbers
of references. sacrebleu wants reference *streams* (stream j holds reference j of every item); we
transpose and pad the short items with ``None``, which sacrebleu drops per item (an empty string
would instead count as an empty reference and change the brevity penalty).
"""

from __future__ import annotations

from collections.abc import Sequence

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
