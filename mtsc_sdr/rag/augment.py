"""Retrieval at inference: each item with a question is sent with what the client's local
knowledge base and the base station's global one retrieve for its question.

The local snippets join the client's LAM encoder input (:attr:`TaskExample.local_context`); the
global ones condition the base station's LAM decoder (:attr:`TaskExample.global_context`); see
:mod:`mtsc_sdr.model.knowledge`. In the split system the two retrievals happen at the two ends:
the client queries its own base and never sends the snippets' text (only the symbols its encoder
makes of them); the base station queries its base with the question's embedding.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from mtsc_sdr.data import TaskExample

from .kb import KnowledgeBase


def snippets(base: Optional[KnowledgeBase], question: str, k: int) -> str:
    """The top ``k`` snippets of ``base`` for ``question``, best first, joined by a space ("" for
    no base or no hit)."""
    if base is None:
        return ""
    return " ".join(h.text for h in base.query(question, k=k))


def with_context(items: list[TaskExample], local: Optional[KnowledgeBase], glob: Optional[KnowledgeBase],
                 k: int = 2) -> list[TaskExample]:
    """``items`` with ``local_context`` / ``global_context`` retrieved for those with a question
    (one query per item and base, as a client and a base station make them item by item)."""
    return [replace(e, local_context=snippets(local, e.question, k), global_context=snippets(glob, e.question, k))
            if e.question else e for e in items]
