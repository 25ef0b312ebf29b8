"""Errors raised by :mod:`mtsc_sdr.rag`.

Every error says which knowledge base (its path) and what was expected, and a refused write loses
nothing: validation happens before the write transaction, and a failed transaction rolls back.
"""

from __future__ import annotations


class KnowledgeBaseError(Exception):
    """Base class of every error raised by :mod:`mtsc_sdr.rag`: bad input (empty, oversized or
    duplicate documents, ids that are not strings), unknown ids, or a knowledge base that cannot
    be used as asked."""


class StoreError(KnowledgeBaseError):
    """The durable store (``store.sqlite``) is unreadable, corrupt or inconsistent; the message
    names the file. Nothing beside it (index files, lock file) is touched when this is raised at open."""


class EmbedderMismatch(KnowledgeBaseError):
    """A store opened with another embedder than the one that built it (name, weights sha256 or
    dimension differ): its vectors would not be comparable. The message names both."""


class EmbedderError(KnowledgeBaseError):
    """An embedder cannot be loaded: missing files, or weights whose sha256 is not the expected one."""


class LockTimeout(KnowledgeBaseError):
    """Another writer (process or thread) held the knowledge base's write lock for longer than the
    timeout."""
