"""A knowledge base: documents in a durable store (:mod:`.store`), their chunks' vectors in a faiss
index that caches it (:mod:`.index`), embedded by an :class:`~.embedder.Embedder`.

One class serves both roles of retrieval-augmented semantic communication: a client's private
*local* base and the base station's public *global* one. A knowledge base is a directory::

    store.sqlite   documents, chunks, embeddings, identity and generation (the truth)
    index.faiss    the vector index (a cache: rebuilt when missing, corrupt or stale)
    index.json     what the index matches (store id, generation, sha256)
    lock           the writers' lock file (``fcntl.flock``)

Quick start::

    from mtsc_sdr.rag import KnowledgeBase
    with KnowledgeBase.open("kb/") as kb:                  # the packaged all-MiniLM-L6-v2 embeds
        kb.add([{"id": "d1", "text": "A red circle is left of a blue square.", "metadata": {"scene": 3}}])
        kb.query("where is the red circle?", k=3)          # [Hit(doc_id='d1', score=0.71, ...)]
        kb.query_vectors(kb.embedder.embed(["where is the red circle?"]), k=3)   # [[Hit(...)]]: embedded already

Design choices:

* **Chunks**: a document of more than :data:`CHUNK_WORDS` words is cut into windows of that many
  words overlapping by :data:`CHUNK_OVERLAP` (about 130 WordPiece tokens, inside the embedder's
  256); a shorter one is one chunk. A query ranks chunks and returns one hit per document, its best
  chunk.
* **Filters**: ``where={"key": value, ...}`` keeps documents whose metadata has these values
  (equality). The index is searched for more chunks than ``k`` and the results filtered, the search
  growing (x4) until ``k`` documents pass or every chunk was seen.
* **Validation before anything is written**: documents that are empty or only whitespace, larger
  than :data:`MAX_TEXT_BYTES` (UTF-8), ids that are not non-empty strings, the same id twice in one
  call, metadata that is not a JSON object, and (without ``upsert``) an id stored already are
  refused with :class:`~.errors.KnowledgeBaseError`; nothing stored is lost.
* **Writers**: embedding happens first, outside every lock; then one writer at a time across
  processes (``fcntl.flock`` on ``lock``, waited for up to ``lock_timeout_s``, else
  :class:`~.errors.LockTimeout`) and threads (a ``threading.Lock``) runs one store transaction and
  updates the in-memory index (upsert: old vectors removed, then new ones added).
* **Readers** see committed state: each query compares the store's generation with its index's,
  and takes in other writers' changes (another object or process on the same directory) before
  searching, inside the same read snapshot it reads the hits from.
* **The index file** is saved (under the write lock) after a rebuild and at :meth:`close` when it
  changed; a process that dies leaves a stale file, rebuilt at the next open.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .embedder import Embedder, identity
from .errors import KnowledgeBaseError, LockTimeout
from .index import KINDS, VectorIndex, build, open_index, recorded_kind, sync
from .store import Entry, Store, StoredDocument, WriteResult

log = logging.getLogger(__name__)

#: words per chunk, and words shared by consecutive chunks
CHUNK_WORDS, CHUNK_OVERLAP = 100, 20
#: the largest document text accepted, in UTF-8 bytes (1 MB: a long report; split larger ones)
MAX_TEXT_BYTES = 1_000_000
#: the longest document id, in characters
MAX_ID_CHARS = 512
#: seconds a writer waits for another one before :class:`LockTimeout`
LOCK_TIMEOUT_S = 30.0
STORE_FILE, LOCK_FILE = "store.sqlite", "lock"

_MISSING = object()


@dataclass(frozen=True)
class Document:
    """A document to add: ``id`` (non-empty str), ``text`` (non-empty str), ``metadata`` (a
    JSON-serializable dict; ``where`` filters compare its values)."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Hit:
    """One retrieved document: its best chunk for the query.

    Attributes:
        doc_id: the document's id; text: the chunk's text; score: inner product of the query and
            chunk vectors (cosine similarity in [-1, 1] for a normalized embedder), higher is closer;
        metadata: the document's metadata; position: the chunk's place in the document (0, 1, ...);
        chunk_id: the store's id of the chunk.
    """

    doc_id: str
    text: str
    score: float
    metadata: dict[str, Any]
    position: int
    chunk_id: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DocumentLike = Union[Document, Mapping[str, Any]]


def chunk_text(text: str, words: int = CHUNK_WORDS, overlap: int = CHUNK_OVERLAP) -> list[str]:
    """``text`` as chunks of at most ``words`` whitespace-separated words, consecutive chunks
    sharing ``overlap`` words; a text of at most ``words`` words is one chunk (itself, stripped)."""
    if not 0 <= overlap < words:
        raise ValueError(f"chunking: need 0 <= overlap < words, got {overlap}, {words}")
    tokens = text.split()
    if len(tokens) <= words:
        return [text.strip()]
    chunks, start = [], 0
    while True:
        chunks.append(" ".join(tokens[start:start + words]))
        if start + words >= len(tokens):
            return chunks
        start += words - overlap


def _check_id(doc_id: Any, where: str) -> str:
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise KnowledgeBaseError(f"{where}: a document id must be a non-empty string, got {doc_id!r}")
    if len(doc_id) > MAX_ID_CHARS:
        raise KnowledgeBaseError(f"{where}: document id of {len(doc_id)} characters (at most {MAX_ID_CHARS})")
    return doc_id


def _no_duplicates(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    twice = sorted({i for i in ids if i in seen or seen.add(i)})
    if twice:
        raise KnowledgeBaseError(f"{what}: the same id more than once in one call: {', '.join(map(repr, twice[:8]))}")


def as_documents(docs: Union[DocumentLike, Iterable[DocumentLike]], what: str = "add") -> list[Document]:
    """Validate documents (one, or an iterable of :class:`Document` or mappings with ``id``,
    ``text`` and optional ``metadata``) before anything is written.

    Raises:
        KnowledgeBaseError: naming the document (its place in the call and id) and what is wrong.
    """
    if isinstance(docs, (Document, Mapping)):
        docs = [docs]
    elif isinstance(docs, (str, bytes)) or not isinstance(docs, Iterable):
        raise KnowledgeBaseError(f"{what}: expected documents (Document or {{'id', 'text', 'metadata'}} mappings), "
                                 f"got {type(docs).__name__}")
    out = []
    for n, doc in enumerate(docs):
        if isinstance(doc, Mapping):
            unknown = set(doc) - {"id", "text", "metadata"}
            if unknown:
                raise KnowledgeBaseError(f"{what}: document {n}: unknown keys {sorted(map(str, unknown))} "
                                         f"(a document has id, text, metadata)")
            doc = Document(doc.get("id"), doc.get("text"), doc.get("metadata"))
        elif not isinstance(doc, Document):
            raise KnowledgeBaseError(f"{what}: document {n} is a {type(doc).__name__}, not a Document or mapping")
        where = f"{what}: document {n} ({doc.id!r})"
        _check_id(doc.id, f"{what}: document {n}")
        if not isinstance(doc.text, str):
            raise KnowledgeBaseError(f"{where}: text must be a string, got {type(doc.text).__name__}")
        if not doc.text.strip():
            raise KnowledgeBaseError(f"{where}: text is empty or only whitespace")
        try:
            size = len(doc.text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise KnowledgeBaseError(f"{where}: text is not valid Unicode ({exc.reason})") from None
        if size > MAX_TEXT_BYTES:
            raise KnowledgeBaseError(f"{where}: text of {size} bytes exceeds the limit of {MAX_TEXT_BYTES} "
                                     f"(UTF-8); split it into several documents")
        metadata = {} if doc.metadata is None else doc.metadata
        if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
            raise KnowledgeBaseError(f"{where}: metadata must be a dict with string keys, got {metadata!r:.80}")
        try:
            metadata = json.loads(json.dumps(dict(metadata), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise KnowledgeBaseError(f"{where}: metadata is not JSON-serializable ({exc})") from None
        out.append(Document(doc.id, doc.text, metadata))
    _no_duplicates([d.id for d in out], what)
    return out


def _as_ids(ids: Union[str, Iterable[str]], what: str) -> list[str]:
    if isinstance(ids, str):
        ids = [ids]
    elif not isinstance(ids, Iterable):
        raise KnowledgeBaseError(f"{what}: expected document ids, got {type(ids).__name__}")
    out = [_check_id(i, what) for i in ids]
    _no_duplicates(out, what)
    return out


def _check_query(k: Any, where: Any, what: str) -> None:
    """A query's ``k`` (a positive int) and ``where`` (None or a dict with string keys)."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise KnowledgeBaseError(f"{what}: k must be a positive integer, got {k!r}")
    if where is not None and (not isinstance(where, Mapping) or not all(isinstance(key, str) for key in where)):
        raise KnowledgeBaseError(f"{what}: where must be a dict of metadata values, got {where!r}")


class _WriterLock:
    """One writer at a time: a ``threading.Lock`` (threads of this object) and ``fcntl.flock`` on
    the lock file (processes, and other objects of this process: each has its own open file)."""

    def __init__(self, path: Path, timeout_s: float):
        self.path, self.timeout_s = path, timeout_s
        self._thread = threading.Lock()
        self._fd: Optional[int] = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def acquire(self, timeout_s: Optional[float] = None) -> None:
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        if not self._thread.acquire(timeout=max(timeout_s, 0.0)):
            raise LockTimeout(f"knowledge base {self.path.parent}: another thread kept the write lock for "
                              f"{timeout_s:g} s")
        delay = 0.002
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self._thread.release()
                    raise LockTimeout(f"knowledge base {self.path.parent}: another process kept the write lock "
                                      f"({self.path}) for {timeout_s:g} s") from None
                time.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
                delay = min(delay * 2, 0.05)
            except BaseException:
                self._thread.release()
                raise

    def release(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread.release()

    def __enter__(self) -> "_WriterLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class KnowledgeBase:
    """A knowledge base directory, open. Use :meth:`open`; close it (or use ``with``) to save its
    index. Safe to use from several threads; several processes may open the same directory.

    Attributes:
        path: its directory; embedder: the :class:`~.embedder.Embedder` it embeds with.
    """

    def __init__(self, path: Path, embedder: Embedder, store: Store, lock: _WriterLock, index: VectorIndex):
        self.path, self.embedder, self._store, self._lock, self._index = path, embedder, store, lock, index
        self._state = threading.RLock()          # the store connection and the index
        self._saved_generation: Optional[int] = None
        self._closed = False

    # -- opening and closing -----------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, embedder: Optional[Embedder] = None, *, create: bool = True,
             index: Optional[str] = None, lock_timeout_s: float = LOCK_TIMEOUT_S,
             batch_threads: Optional[int] = None) -> "KnowledgeBase":
        """Open the knowledge base in directory ``path`` (made when ``create``).

        Args:
            embedder: what embeds documents and queries; None: the packaged all-MiniLM-L6-v2
                (:class:`~.embedder.SentenceEmbedder`). A store built by another embedder is refused.
            index: ``"flat"`` (exact) or ``"hnsw"`` (approximate, for large stores); None: the kind
                its saved index has, else flat. Another kind than the saved one rebuilds the index.
            lock_timeout_s: how long a write waits for another writer.
            batch_threads: faiss threads for a query of several texts (a single one uses one).

        Raises:
            KnowledgeBaseError: no knowledge base there and not ``create``; StoreError: the store
                is unreadable or corrupt (nothing is touched); EmbedderMismatch: another embedder.
        """
        path = Path(path)
        if index is not None and index not in KINDS:
            raise KnowledgeBaseError(f"index kind {index!r}: expected one of {', '.join(KINDS)}")
        if not (path / STORE_FILE).exists() and not create:
            raise KnowledgeBaseError(f"no knowledge base at {path} (no {STORE_FILE}); create it with create=True "
                                     f"or `mtsc-sdr kb add`")
        if path.exists() and not path.is_dir():
            raise KnowledgeBaseError(f"knowledge base path {path} is a file, not a directory")
        if embedder is None:
            from .embedder import SentenceEmbedder

            embedder = SentenceEmbedder()
        path.mkdir(parents=True, exist_ok=True)
        store = Store.open(path / STORE_FILE, identity(embedder), create=create, busy_timeout_s=lock_timeout_s)
        try:
            lock = _WriterLock(path / LOCK_FILE, lock_timeout_s)
            kind = index or recorded_kind(path) or "flat"
            vectors, rebuilt = open_index(path, store, kind, batch_threads=batch_threads)
        except BaseException:
            store.close()
            raise
        kb = cls(path, embedder, store, lock, vectors)
        if rebuilt is None:
            kb._saved_generation = vectors.generation
        else:
            kb._save_index(timeout_s=min(lock_timeout_s, 2.0))
        return kb

    def close(self) -> None:
        """Save the index if it changed since it was last saved (skipped, with a log line, when
        another writer holds the lock), and close the store. Idempotent."""
        if self._closed:
            return
        try:
            if self._index.generation != self._saved_generation:
                self._save_index(timeout_s=min(self._lock.timeout_s, 5.0))
        finally:
            self._closed = True
            self._store.close()
            self._lock.close()

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KnowledgeBase({str(self.path)!r}, embedder={self.embedder.name!r}, index={self._index!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise KnowledgeBaseError(f"knowledge base {self.path} is closed")

    def _save_index(self, timeout_s: float) -> bool:
        try:
            self._lock.acquire(timeout_s)
        except LockTimeout:
            log.info("knowledge base %s: another writer holds the lock; index not saved (rebuilt at next open)",
                     self.path)
            return False
        try:
            with self._state:
                with self._store.read():        # saved only when it matches the committed store
                    sync(self._index, self._store)
                    self._index.save(self.path)
                self._saved_generation = self._index.generation
            return True
        finally:
            self._lock.release()

    # -- writing -----------------------------------------------------------------------------------

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self.embedder.embed(texts), dtype=np.float32)
        if vectors.shape != (len(texts), self._store.dim) or not np.isfinite(vectors).all():
            raise KnowledgeBaseError(f"embedder {self.embedder.name} returned {vectors.shape} vectors "
                                     f"(expected ({len(texts)}, {self._store.dim}), finite)")
        return vectors

    def _entries(self, docs: list[Document]) -> list[Entry]:
        """Chunk and embed (outside every lock)."""
        chunks = [chunk_text(d.text) for d in docs]
        flat = [c for doc_chunks in chunks for c in doc_chunks]
        vectors = self._embed(flat)
        out, start = [], 0
        for doc, doc_chunks in zip(docs, chunks):
            out.append(Entry(doc.id, doc.text, doc.metadata, doc_chunks, vectors[start:start + len(doc_chunks)]))
            start += len(doc_chunks)
        return out

    def _write(self, put: list[Entry], delete: list[str], *, replace: bool, missing_ok: bool) -> WriteResult:
        with self._lock:
            with self._state:
                res = self._store.apply(put, delete, replace=replace, missing_ok=missing_ok)
                if self._index.generation == res.generation - 1:   # in step before this write: apply it
                    self._index.remove(res.removed_chunk_ids)
                    self._index.add(res.added_chunk_ids, res.added_vectors)
                    self._index.generation = res.generation
                else:                                              # another writer came between
                    sync(self._index, self._store)
                if res.removed_docs and not self._store.checkpoint():
                    log.warning("knowledge base %s: a reader kept the WAL from being emptied; removed text stays "
                                "in %s-wal until the next checkpoint", self.path, STORE_FILE)
        return res

    def add(self, docs: Union[DocumentLike, Iterable[DocumentLike]], *, upsert: bool = False) -> int:
        """Add documents (one transaction for all); returns how many were written.

        Raises:
            KnowledgeBaseError: invalid documents, or an id stored already and not ``upsert``
                (nothing is written).
        """
        self._check_open()
        what = "upsert" if upsert else "add"
        docs = as_documents(docs, what)
        if not docs:
            return 0
        if not upsert:
            with self._state:
                stored = self._store.existing([d.id for d in docs])
            if stored:
                raise KnowledgeBaseError(f"add: already in {self.path}: {', '.join(map(repr, sorted(stored)[:8]))} "
                                         f"(use upsert to replace)")
        return len(self._write(self._entries(docs), [], replace=upsert, missing_ok=True).added_docs)

    def upsert(self, docs: Union[DocumentLike, Iterable[DocumentLike]]) -> int:
        """Add documents, replacing stored ones of the same id (their old chunks and vectors go)."""
        return self.add(docs, upsert=True)

    def remove(self, ids: Union[str, Iterable[str]], *, missing_ok: bool = False) -> int:
        """Remove documents (one transaction); their text is deleted from the store file and its WAL.
        Returns how many were removed.

        Raises:
            KnowledgeBaseError: an id is not stored (unless ``missing_ok``; nothing is removed then).
        """
        self._check_open()
        ids = _as_ids(ids, "remove")
        if not ids:
            return 0
        return len(self._write([], ids, replace=False, missing_ok=missing_ok).removed_docs)

    # -- reading -----------------------------------------------------------------------------------

    def get(self, doc_id: str) -> Optional[StoredDocument]:
        """The stored document (text, metadata, added_at, chunks) or None."""
        self._check_open()
        _check_id(doc_id, "get")
        with self._state:
            return self._store.get(doc_id)

    def __contains__(self, doc_id: str) -> bool:
        return self.get(doc_id) is not None

    def __len__(self) -> int:
        return self.stats()["documents"]

    def query(self, texts: Union[str, list[str]], k: int = 5,
              where: Optional[Mapping[str, Any]] = None) -> Union[list[Hit], list[list[Hit]]]:
        """The ``k`` documents closest to a query text (one hit per document: its best chunk), best
        first; for a list of texts, one such list per text.

        Args:
            where: metadata equality filter: only documents whose metadata has all these values.

        Returns:
            list of :class:`Hit` (fewer than ``k`` when fewer documents match), or a list of such lists.
        """
        self._check_open()
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        if not all(isinstance(t, str) and t.strip() for t in batch):
            raise KnowledgeBaseError("query: texts must be non-empty strings")
        _check_query(k, where, "query")
        if not batch:
            return []
        results = self._search_committed(self._embed(batch), k, where)   # embedded outside the locks
        return results[0] if single else results

    def query_vectors(self, vectors: np.ndarray, k: int = 5,
                      where: Optional[Mapping[str, Any]] = None) -> list[list[Hit]]:
        """:meth:`query` for queries already embedded (by this base's embedder: the same identity,
        :func:`~.embedder.identity`), e.g. a question embedded once for two bases, or received
        as a vector from a peer that has the text.

        Args:
            vectors: float (Q, dim) (any real float dtype; searched as float32), finite; unit
                rows for cosine scores (the index ranks by inner product).
            k, where: as :meth:`query`.

        Returns:
            one list of :class:`Hit` per row, best first ([] for Q = 0).

        Raises:
            KnowledgeBaseError: ``vectors`` not a finite real float array of shape (Q, dim).
        """
        self._check_open()
        _check_query(k, where, "query_vectors")
        arr = np.asarray(vectors)
        dim = self._store.dim
        if arr.ndim != 2 or arr.shape[1] != dim or arr.dtype.kind != "f":
            raise KnowledgeBaseError(f"query_vectors: expected a real float array of shape (Q, {dim}), got "
                                     f"{arr.dtype} {arr.shape}")
        if not np.isfinite(arr).all():
            raise KnowledgeBaseError("query_vectors: vectors must be finite (NaN or infinity given)")
        if len(arr) == 0:
            return []
        return self._search_committed(np.ascontiguousarray(arr, dtype=np.float32), k, where)

    def _search_committed(self, vectors: np.ndarray, k: int, where: Optional[Mapping[str, Any]]) -> list[list[Hit]]:
        """Search float32 (Q, dim) vectors in the committed state: the index caught up with the
        store, then searched and its hits read, inside one read snapshot."""
        with self._state:
            with self._store.read():                                   # one snapshot: index and rows agree
                changed = sync(self._index, self._store)
                if changed:
                    log.debug("knowledge base %s: index caught up with the store (%s)", self.path, changed)
                return self._search(vectors, k, dict(where or {}))

    def _search(self, vectors: np.ndarray, k: int, where: dict[str, Any]) -> list[list[Hit]]:
        live = self._index.ntotal
        if live == 0:
            return [[] for _ in range(len(vectors))]
        first = min(live, max(4 * k, 16))
        rows: dict[int, tuple] = {}        # chunk id -> (doc_id, position, text, metadata JSON)
        metas: dict[str, dict] = {}
        scores, ids = self._index.search(vectors, first)               # (Q, first) each
        out = []
        for q in range(len(vectors)):
            s, i, ask = scores[q], ids[q], first
            while True:
                hits = self._hits(s, i, k, where, rows, metas)
                if len(hits) >= k or ask >= live:
                    break
                ask = min(live, ask * 4)
                s, i = (a[0] for a in self._index.search(vectors[q:q + 1], ask))
            out.append(hits)
        return out

    def _hits(self, scores: np.ndarray, ids: np.ndarray, k: int, where: dict[str, Any],
              rows: dict[int, tuple], metas: dict[str, dict]) -> list[Hit]:
        wanted = [int(c) for c in ids if c >= 0 and int(c) not in rows]
        rows.update(self._store.chunk_rows(wanted))
        hits: list[Hit] = []
        seen: set[str] = set()
        for score, cid in zip(scores, ids):
            row = rows.get(int(cid))
            if cid < 0 or row is None or row[0] in seen:
                continue
            doc_id, position, text, meta_json = row
            seen.add(doc_id)
            meta = metas.get(doc_id)
            if meta is None:
                meta = metas[doc_id] = self._store.metadata(doc_id, meta_json)
            if all(meta.get(key, _MISSING) == value for key, value in where.items()):
                hits.append(Hit(doc_id, text, float(score), meta, int(position), int(cid)))
                if len(hits) == k:
                    break
        return hits

    # -- maintenance -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts, identity and index state: ``{"path", "documents", "chunks", "generation",
        "store_id", "created_at", "embedder": {...}, "index": {"kind", "vectors", "tombstones",
        "generation", "saved_generation"}, "store_bytes", "limits": {...}}``."""
        self._check_open()
        with self._state:
            meta = self._store.meta()
            return {"path": str(self.path), "documents": int(meta["documents"]), "chunks": int(meta["chunks"]),
                    "generation": int(meta["generation"]), "store_id": meta["store_id"],
                    "created_at": meta.get("created_at"), "embedder": dict(self._store.identity),
                    "index": {"kind": self._index.kind, "vectors": self._index.ntotal,
                              "tombstones": self._index.tombstones, "generation": self._index.generation,
                              "saved_generation": self._saved_generation},
                    "store_bytes": self._store.file_bytes(),
                    "limits": {"max_text_bytes": MAX_TEXT_BYTES, "chunk_words": CHUNK_WORDS,
                               "chunk_overlap": CHUNK_OVERLAP}}

    def rebuild(self, kind: Optional[str] = None) -> VectorIndex:
        """Rebuild the index from the store (of ``kind``, default its current kind) and save it."""
        self._check_open()
        kind = kind or self._index.kind
        if kind not in KINDS:
            raise KnowledgeBaseError(f"index kind {kind!r}: expected one of {', '.join(KINDS)}")
        with self._lock:
            with self._state:
                index = build(self._store, kind, batch_threads=self._index.batch_threads)
                index.save(self.path)
                self._index, self._saved_generation = index, index.generation
        log.info("knowledge base %s: %s index rebuilt (%d vectors)", self.path, kind, index.ntotal)
        return index

    def check(self) -> list[str]:
        """Consistency problems of the store, and of the index against it (empty: all consistent)."""
        self._check_open()
        with self._state:
            with self._store.read():
                problems = self._store.check()
                sync(self._index, self._store)
                if not np.array_equal(self._index.ids(), self._store.chunk_ids()):
                    problems.append("the index does not hold exactly the store's chunks")
        return problems
