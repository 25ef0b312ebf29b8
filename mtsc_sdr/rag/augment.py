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
from typing import Callable, Optional

import numpy as np

from mtsc_sdr.data import TaskExample

from .kb import KnowledgeBase


def retrieval_k_of(cfg, retrieval_k: Optional[int] = None) -> int:
    """The snippets each base gives a question item of a model of config ``cfg``: ``retrieval_k``
    when given (``--retrieval-k``), else the k the model was trained with (``cfg.retrieval_k``).

    Raises:
        ValueError: ``retrieval_k`` is not a positive integer (names ``--retrieval-k``).
    """
    if retrieval_k is None:
        return int(cfg.retrieval_k)
    if not isinstance(retrieval_k, int) or retrieval_k < 1:
        raise ValueError(f"--retrieval-k must be a positive integer, got {retrieval_k!r}")
    return retrieval_k


def open_for_model(path, cfg) -> KnowledgeBase:
    """The existing knowledge base at ``path`` (``create=False``) for a model of config ``cfg``:
    what ``--kb`` opens on either side of the link.

    Raises:
        ValueError: the model takes no retrieved context (``context_tokens`` 0).
        KnowledgeBaseError: nothing there, or a base that cannot be opened.
    """
    if not cfg.context_tokens:
        raise ValueError(f"--kb {path}: the checkpoint's model takes no retrieved context (context_tokens 0); "
                         "use a model trained with retrieval (model.context_tokens > 0), or leave out --kb")
    return KnowledgeBase.open(path, create=False)


#: (question embeddings float32 (Q, dim), the embedder's sha256) -> the vectors that search a base:
#: a model's :meth:`~mtsc_sdr.model.split.ClientModel.retrieval_query`
QueryMap = Callable[[np.ndarray, str], np.ndarray]


def question_vector(embedder, question: str, query: Optional[QueryMap] = None) -> np.ndarray:
    """The vector float32 (1, dim) that searches a base of ``embedder`` for ``question``: its
    embedding, mapped by ``query`` (the model's query adapter, :data:`QueryMap`); None: the plain
    embedding."""
    vector = embedder.embed([question])
    return vector if query is None else query(vector, str(embedder.sha256))


def hits(base: KnowledgeBase, question: str, k: int, query: Optional[QueryMap] = None) -> list:
    """The top ``k`` :class:`~.kb.Hit` of ``base`` for ``question``, best first, searched with
    :func:`question_vector`."""
    return base.query_vectors(question_vector(base.embedder, question, query), k=k)[0]


def snippets(base: Optional[KnowledgeBase], question: str, k: int, query: Optional[QueryMap] = None) -> str:
    """The texts of :func:`hits`, joined by a space ("" for no base or no hit)."""
    if base is None:
        return ""
    return " ".join(h.text for h in hits(base, question, k, query))


def with_context(items: list[TaskExample], local: Optional[KnowledgeBase], glob: Optional[KnowledgeBase],
                 k: int = 2, query: Optional[QueryMap] = None) -> list[TaskExample]:
    """``items`` with ``local_context`` / ``global_context`` retrieved for those with a question
    (one query per item and base, as a client and a base station make them item by item), the
    questions mapped by ``query`` (:func:`snippets`)."""
    return [replace(e, local_context=snippets(local, e.question, k, query),
                    global_context=snippets(glob, e.question, k, query))
            if e.question else e for e in items]
