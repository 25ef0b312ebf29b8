"""Input checks shared by the text metrics: one place that names what is wrong."""

from __future__ import annotations

from collections.abc import Sequence


def check_text_pairs(hypotheses, references, metric: str) -> tuple[list[str], list[list[str]]]:
    """Validate ``hypotheses`` (one string per item) and ``references`` (per item: one string or a
    non-empty sequence of strings) and return them as ``list[str]`` and ``list[list[str]]``.

    Raises ``ValueError`` naming the problem: no items, different numbers of hypotheses and
    reference sets, an item without references, or a non-string where text was expected.
    """
    if isinstance(hypotheses, str) or not isinstance(hypotheses, Sequence):
        raise ValueError(
            f"{metric}: hypotheses must be a list of strings, got {type(hypotheses).__name__}"
        )
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise ValueError(
            f"{metric}: references must be a list (one entry per item), got {type(references).__name__}"
        )
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{metric}: {len(hypotheses)} hypotheses but {len(references)} reference sets; "
            "need one reference set per hypothesis"
        )
    if not hypotheses:
        raise ValueError(f"{metric}: no items to score (empty hypotheses and references)")
    hyps: list[str] = []
    refs: list[list[str]] = []
    for i, (h, r) in enumerate(zip(hypotheses, references)):
        if not isinstance(h, str):
            raise ValueError(f"{metric}: hypothesis {i} is {type(h).__name__}, not str")
        r_list = [r] if isinstance(r, str) else list(r) if isinstance(r, Sequence) else None
        if r_list is None:
            raise ValueError(
                f"{metric}: references[{i}] is {type(r).__name__}, not a string or list of strings"
            )
        if not r_list:
            raise ValueError(f"{metric}: item {i} has no reference")
        for j, s in enumerate(r_list):
            if not isinstance(s, str):
                raise ValueError(f"{metric}: reference {j} of item {i} is {type(s).__name__}, not str")
        hyps.append(h)
        refs.append(r_list)
    return hyps, refs
