"""Knowledge bases for retrieval-augmented semantic communication: a client's private local base
and the base station's public global one are the same :class:`KnowledgeBase`.

* :mod:`.embedder` - :class:`Embedder` (the protocol) and :class:`SentenceEmbedder` (the packaged
  all-MiniLM-L6-v2, or another local BERT sentence model; offline, sha256-checked).
* :mod:`.store` - the durable store: SQLite in WAL mode, one transaction per write, a generation
  counter, the embedder's identity.
* :mod:`.index` - the faiss index (exact flat inner product, or HNSW), a cache of the store.
* :mod:`.adapter` - fitting a model's query adapter (the question's embedding, moved before it
  searches); :mod:`.loop` - retrieval in the training loop; :mod:`.augment` - retrieval at inference.
* :mod:`.kb` - :class:`KnowledgeBase`: add / upsert / remove / get / query, chunking, filters,
  the writers' lock.
* :mod:`.cli` - ``mtsc-sdr kb {add,remove,query,stats,rebuild}``; :mod:`.bench` - latency and
  ingestion figures.

Importing this package imports neither torch nor faiss: they come with the first embedder or index.
"""

from .embedder import Embedder, SentenceEmbedder
from .errors import EmbedderError, EmbedderMismatch, KnowledgeBaseError, LockTimeout, StoreError
from .kb import Document, Hit, KnowledgeBase, chunk_text

__all__ = ["Document", "Embedder", "EmbedderError", "EmbedderMismatch", "Hit", "KnowledgeBase", "KnowledgeBaseError",
           "LockTimeout", "SentenceEmbedder", "StoreError", "chunk_text"]
