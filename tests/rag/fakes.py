"""A deterministic stand-in embedder for the knowledge-base tests: bag of hashed words.

Each word (lower-cased, punctuation stripped) adds +-1 at a position its blake2b hash picks; the
sum is L2-normalized. Texts sharing words are close, texts sharing none are near orthogonal, and
nothing random or heavy is involved (no torch), so child processes start fast."""

from __future__ import annotations

import hashlib

import numpy as np


class HashEmbedder:
    """The :class:`mtsc_sdr.rag.embedder.Embedder` protocol, for tests."""

    normalized = True

    def __init__(self, dim: int = 32, name: str = "hash-words", salt: str = ""):
        self.dim, self.name, self.salt = dim, name, salt
        self.sha256 = hashlib.sha256(f"{name}/{dim}/{salt}".encode()).hexdigest()
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                word = word.strip(".,;:!?\"'()")
                if not word:
                    continue
                h = hashlib.blake2b((self.salt + word).encode(), digest_size=8).digest()
                out[row, int.from_bytes(h[:4], "little") % self.dim] += 1.0 if h[4] & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm == 0:            # no word: a fixed unit vector
                out[row, 0], norm = 1.0, 1.0
            out[row] /= norm
        return out


def versioned_text(doc_id: str, version: int) -> str:
    """A document text that says which id and version it is, 5 to ~400 words long (one chunk up
    to 100 words, several beyond): what the crash tests write, and check back word for word."""
    words = 5 + (version * 37) % 400
    return f"{doc_id} version {version} " + " ".join(f"w{(version * 7 + j) % 997}" for j in range(words))


def parse_version(text: str) -> tuple[str, int]:
    """``(doc_id, version)`` of a :func:`versioned_text`."""
    doc_id, word, version = text.split()[:3]
    assert word == "version", text[:60]
    return doc_id, int(version)
