"""The durable store of a knowledge base: one SQLite file (``store.sqlite``) holding the documents,
their chunks and the chunks' embeddings. The vector index (:mod:`.index`) is a cache rebuilt from it.

Schema (``SCHEMA_VERSION`` 1)::

    meta      (key TEXT PRIMARY KEY, value TEXT)    schema_version, store_id (a uuid4 made at creation),
                                                    created_at, embedder_name, embedder_sha256,
                                                    embedder_dim, embedder_normalized, documents,
                                                    chunks, generation
    documents (id TEXT PRIMARY KEY, text TEXT, metadata TEXT (a JSON object), added_at TEXT (UTC ISO))
    chunks    (chunk_id INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT -> documents(id),
               position INTEGER (0, 1, ... within the document), text TEXT,
               embedding BLOB (float32 little-endian, dim * 4 raw bytes; never a pickle))

Design choices:

* **WAL journal, ``synchronous=FULL``**: readers never block the writer nor the writer them, and
  FULL makes SQLite fsync the WAL at every commit, so a write that returned survives a power
  loss, not only a killed process (NORMAL would keep the database consistent but could lose the
  last commits). Writes are rare beside queries and a document costs an embedding (milliseconds)
  anyway, so the fsync per transaction is cheap; durability is what the store is for.
* **One transaction per write** (``BEGIN IMMEDIATE`` ... ``COMMIT``, :meth:`Store.write`): a batch
  of adds, upserts or removals lands whole or not at all, also when the process is killed in the
  middle; every committed write increments ``generation`` (and stores the document and chunk
  counts), which tells an index (a cache) whether it is stale.
* **Chunk ids are never reused** (``AUTOINCREMENT``): an upsert writes its chunks under new ids,
  so a chunk id always names the same text and vector, and an index catches up with the store by
  comparing id sets.
* **Removal removes**: rows are deleted and ``PRAGMA secure_delete=ON`` (a per-connection setting,
  made at every open) overwrites the freed content with zeros, so a removed text does not linger
  in free pages; :meth:`Store.checkpoint` (``wal_checkpoint(TRUNCATE)``) then empties the WAL,
  which still holds the older page images until it is checkpointed.
* **Identity**: the store records the embedder that built it (name, weights sha256, dimension,
  normalization); opening it with another is refused (:class:`~.errors.EmbedderMismatch`).
* A file that is not an SQLite database, or not a store, is refused with
  :class:`~.errors.StoreError` before anything is written to it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import sqlite3
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from .errors import EmbedderMismatch, KnowledgeBaseError, StoreError

SCHEMA_VERSION = 1
#: what every SQLite file starts with
_SQLITE_HEADER = b"SQLite format 3\x00"
#: the largest embedding dimension a store may record (a corrupt one must not size an allocation)
MAX_DIM = 1 << 16
#: ids per ``IN (...)`` list (well under SQLite's limit on bound variables)
_IN_BATCH = 500

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE chunks (
    chunk_id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(id),
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    embedding BLOB NOT NULL,
    UNIQUE (doc_id, position)
);
"""


@dataclass
class Entry:
    """One document ready to be stored: its chunks already embedded.

    Attributes:
        id: document id; text: the whole document; metadata: a JSON-serializable dict.
        chunks: the chunk texts (at least one), in document order.
        vectors: float32 (len(chunks), dim), the chunks' embeddings.
    """

    id: str
    text: str
    metadata: dict[str, Any]
    chunks: list[str]
    vectors: np.ndarray


@dataclass
class StoredDocument:
    """A document as stored: id, text, metadata, ``added_at`` (UTC ISO 8601) and its chunk texts."""

    id: str
    text: str
    metadata: dict[str, Any]
    added_at: str
    chunks: list[str] = field(default_factory=list)


@dataclass
class WriteResult:
    """What one committed write changed.

    Attributes:
        generation: the store's generation after it.
        removed_chunk_ids: int64 (R,): chunks deleted (removed or replaced documents).
        added_chunk_ids: int64 (A,): chunks inserted; added_vectors: float32 (A, dim), their embeddings.
        removed_docs: ids of documents removed or replaced; added_docs: ids written.
    """

    generation: int
    removed_chunk_ids: np.ndarray
    added_chunk_ids: np.ndarray
    added_vectors: np.ndarray
    removed_docs: list[str]
    added_docs: list[str]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _describe(ident: dict) -> str:
    norm = "normalized" if ident["normalized"] else "not normalized"
    return f"{ident['name']} (sha256 {ident['sha256']}, {ident['dim']}-d, {norm})"


class Store:
    """An open store. Use :meth:`open`; every method is safe to call from several threads (one
    connection, guarded by a lock); several processes may open the same file.

    Reads that must agree with each other run inside :meth:`read` (one snapshot); writes inside
    :meth:`write` (one transaction). Methods called outside either run in their own short transaction.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, busy_timeout_s: float):
        self.path, self._conn, self.busy_timeout_s = path, conn, busy_timeout_s
        self._lock = threading.RLock()
        self._depth = 0          # nesting of read()/write() on this connection
        self.last_generation: Optional[int] = None   # the generation the last write() of this object committed
        meta = self.meta()
        self.store_id: str = meta["store_id"]
        self.identity: dict = {"name": meta["embedder_name"], "sha256": meta["embedder_sha256"],
                               "dim": self._meta_int(meta, "embedder_dim"), "normalized": meta["embedder_normalized"] == "1"}
        self.dim: int = self.identity["dim"]
        if not 1 <= self.dim <= MAX_DIM:
            raise StoreError(f"knowledge base store {path}: embedder_dim {self.dim} is outside 1..{MAX_DIM}")

    # -- opening -----------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, identity: dict, *, create: bool = True, busy_timeout_s: float = 30.0) -> "Store":
        """Open (or create) the store at ``path`` for the embedder ``identity``
        (``{"name", "sha256", "dim", "normalized"}``, :func:`~.embedder.identity`).

        Raises:
            StoreError: the file is not an SQLite database or not a store of this schema (nothing
                is written to it), or ``create`` is False and it does not exist.
            EmbedderMismatch: the store was built by another embedder (name, sha256 or dim differ).
        """
        path = Path(path)
        exists = path.exists() and path.stat().st_size > 0
        if not exists and not create:
            raise StoreError(f"no knowledge base store at {path}")
        if exists:
            _check_header(path)
        try:
            conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open knowledge base store {path}: {exc}") from None
        try:
            # Read the schema before any pragma or write: a damaged or foreign database is refused
            # as it is (a read changes nothing, and closing the connection removes the -wal / -shm
            # files it opened).
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            missing = {"meta", "documents", "chunks"} - tables
            if tables and missing:
                raise StoreError(f"{path} is an SQLite database but not a knowledge base store (no table "
                                 f"{', '.join(sorted(missing))}); it was left as it is")
            if not tables and not create:     # a creation interrupted before its first commit
                raise StoreError(f"no knowledge base store at {path} (an empty SQLite database)")
            if tables:
                _check_schema(conn, path)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("PRAGMA foreign_keys=ON")
            _create(conn, identity)          # no-op when the tables are there
            store = cls(path, conn, busy_timeout_s)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            # UnicodeDecodeError: SQLite's own message quotes the damaged bytes (a schema that does
            # not parse), which Python's sqlite3 fails to decode instead of raising the error
            conn.close()
            raise StoreError(f"knowledge base store {path} is unreadable or corrupt ({exc}); it was left as it is") \
                from None
        except BaseException:
            conn.close()
            raise
        want = {"name": str(identity["name"]), "sha256": str(identity["sha256"]), "dim": int(identity["dim"]),
                "normalized": bool(identity["normalized"])}
        if any(store.identity[k] != want[k] for k in ("name", "sha256", "dim")):
            store.close()
            raise EmbedderMismatch(f"knowledge base store {path} was built with embedder {_describe(store.identity)}; "
                                   f"it cannot be used with {_describe(want)} (vectors of two embedders are not "
                                   f"comparable: open it with its own embedder, or build a new knowledge base)")
        return store

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- transactions ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def read(self) -> Iterator["Store"]:
        """One read snapshot: everything read inside sees the same committed state (nests)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self._execute("BEGIN")
            self._depth = 1
            try:
                yield self
            finally:
                self._depth = 0
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def write(self) -> Iterator["Store"]:
        """One write transaction (``BEGIN IMMEDIATE``): committed whole, with ``generation``
        incremented and the counts refreshed, when the block ends normally; rolled back whole when
        it raises. Not nestable."""
        with self._lock:
            if self._depth:
                raise RuntimeError("Store.write() inside another transaction")
            self._execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self
                gen = self.generation() + 1
                docs = self._conn.execute("SELECT count(*) FROM documents").fetchone()[0]
                chunks = self._conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
                self._conn.executemany("UPDATE meta SET value = ? WHERE key = ?",
                                       [(str(gen), "generation"), (str(docs), "documents"), (str(chunks), "chunks")])
                self._execute("COMMIT")
                self.last_generation = gen
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self._sqlite_errors():
            return self._conn.execute(sql, params)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._sqlite_errors():       # rows are read (and their text decoded) while fetching
            return self._conn.execute(sql, params).fetchall()

    def _row(self, sql: str, params: Sequence[Any] = ()) -> Optional[tuple]:
        with self._sqlite_errors():
            return self._conn.execute(sql, params).fetchone()

    @contextlib.contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        """SQLite's errors as this module's: locked (KnowledgeBaseError), anything else StoreError."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise KnowledgeBaseError(f"knowledge base store {self.path} stayed locked by another process "
                                         f"for {self.busy_timeout_s:g} s: {exc}") from None
            raise StoreError(f"knowledge base store {self.path}: {exc}") from None
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:   # see open: a message quoting bad bytes
            raise StoreError(f"knowledge base store {self.path} is unreadable or corrupt: {exc}") from None

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._rows(sql, params)

    def _in_batches(self, sql: str, ids: Sequence[Any]) -> list[tuple]:
        """Rows of ``sql`` (which holds one ``{}`` for the placeholders) for ``ids``, in batches."""
        rows: list[tuple] = []
        with self.read():
            for start in range(0, len(ids), _IN_BATCH):
                part = list(ids[start:start + _IN_BATCH])
                rows += self._rows(sql.format(",".join("?" * len(part))), part)
        return rows

    # -- metadata ----------------------------------------------------------------------------------

    def _meta_int(self, meta: dict, key: str) -> int:
        """``meta[key]`` (a meta table value) as an int; StoreError when it is not one."""
        value = meta[key]
        try:
            return int(value) if isinstance(value, (int, str)) else int(str(value, "ascii"))
        except (TypeError, ValueError):
            raise StoreError(f"knowledge base store {self.path}: meta {key!r} is {value!r:.40}, not an integer") from None

    def _meta_value(self, key: str) -> str:
        row = self._row("SELECT value FROM meta WHERE key = ?", (key,))
        if row is None:
            raise StoreError(f"knowledge base store {self.path} has no {key!r} in its meta table")
        return row[0]

    def meta(self) -> dict[str, str]:
        """The meta table as a dict of strings."""
        rows = self._query("SELECT key, value FROM meta")
        meta = dict(rows)
        missing = [k for k in ("schema_version", "store_id", "embedder_name", "embedder_sha256", "embedder_dim",
                               "embedder_normalized", "generation", "documents", "chunks") if k not in meta]
        if missing:
            raise StoreError(f"{self.path} is not a knowledge base store: its meta table lacks {', '.join(missing)}")
        if self._meta_int(meta, "schema_version") != SCHEMA_VERSION:
            raise StoreError(f"knowledge base store {self.path} has schema version {meta['schema_version']}; "
                             f"this code reads version {SCHEMA_VERSION}")
        return meta

    def generation(self) -> int:
        """The number of writes committed since the store was created."""
        with self._lock:
            return self._meta_int({"generation": self._meta_value("generation")}, "generation")

    def counts(self) -> dict[str, int]:
        """``{"documents", "chunks", "generation"}`` as recorded by the last committed write."""
        meta = self.meta()
        return {k: self._meta_int(meta, k) for k in ("documents", "chunks", "generation")}

    # -- reading -----------------------------------------------------------------------------------

    def existing(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` that are stored."""
        return {r[0] for r in self._in_batches("SELECT id FROM documents WHERE id IN ({})", list(ids))}

    def get(self, doc_id: str) -> Optional[StoredDocument]:
        """The document ``doc_id`` with its chunk texts, or None."""
        with self.read():
            row = self._row("SELECT id, text, metadata, added_at FROM documents WHERE id = ?", (doc_id,))
            if row is None:
                return None
            chunks = [r[0] for r in self._rows("SELECT text FROM chunks WHERE doc_id = ? ORDER BY position",
                                               (doc_id,))]
        return StoredDocument(row[0], row[1], self.metadata(row[0], row[2]), row[3], chunks)

    def metadata(self, doc_id: Any, text: Any) -> dict[str, Any]:
        """A document's stored metadata (a JSON object); StoreError when it is not one."""
        try:
            value = json.loads(text)
        except (TypeError, ValueError, RecursionError):
            value = None
        if not isinstance(value, dict):
            raise StoreError(f"knowledge base store {self.path}: document {doc_id!r:.80}: metadata is not a JSON object")
        return value

    def document_ids(self) -> list[str]:
        """Every stored document id, sorted."""
        return [r[0] for r in self._query("SELECT id FROM documents ORDER BY id")]

    def chunk_ids(self) -> np.ndarray:
        """int64 (C,): every chunk id, ascending."""
        rows = self._query("SELECT chunk_id FROM chunks ORDER BY chunk_id")
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def _vectors(self, blobs: Sequence[bytes]) -> np.ndarray:
        out = np.empty((len(blobs), self.dim), dtype=np.float32)
        for i, blob in enumerate(blobs):
            if not isinstance(blob, bytes) or len(blob) != 4 * self.dim:
                size = f"{len(blob)} bytes" if isinstance(blob, bytes) else f"type {type(blob).__name__}"
                raise StoreError(f"knowledge base store {self.path}: an embedding of {size}, "
                                 f"expected {4 * self.dim} bytes ({self.dim} float32)")
            out[i] = np.frombuffer(blob, dtype="<f4")
        return out

    def embeddings(self, chunk_ids: Sequence[int]) -> np.ndarray:
        """float32 (len(chunk_ids), dim): the embeddings of these chunks, in that order.

        Raises:
            KeyError: a chunk id is not stored.
        """
        ids = [int(i) for i in chunk_ids]
        found = dict(self._in_batches("SELECT chunk_id, embedding FROM chunks WHERE chunk_id IN ({})", ids))
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(f"chunks not in {self.path}: {missing[:8]}")
        return self._vectors([found[i] for i in ids])

    def iter_embeddings(self, batch: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every chunk's ``(ids int64 (B,), vectors float32 (B, dim))`` in batches of ``batch``, ascending
        ids. Call it inside :meth:`read` for one snapshot."""
        last = -1
        while True:
            rows = self._query("SELECT chunk_id, embedding FROM chunks WHERE chunk_id > ? ORDER BY chunk_id LIMIT ?",
                               (last, batch))
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            yield ids, self._vectors([r[1] for r in rows])
            last = int(ids[-1])

    def chunk_rows(self, chunk_ids: Sequence[int]) -> dict[int, tuple[str, int, str, str]]:
        """chunk id -> ``(doc_id, position, chunk text, document metadata JSON)`` for those stored."""
        rows = self._in_batches("SELECT c.chunk_id, c.doc_id, c.position, c.text, d.metadata FROM chunks c "
                                "JOIN documents d ON d.id = c.doc_id WHERE c.chunk_id IN ({})",
                                [int(i) for i in chunk_ids])
        bad = next((r for r in rows if not isinstance(r[2], int) or not isinstance(r[3], str)), None)
        if bad is not None:
            raise StoreError(f"knowledge base store {self.path}: chunk {bad[0]} has position {bad[2]!r:.40} and "
                             f"text of type {type(bad[3]).__name__} (expected an integer and a string)")
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    # -- writing (inside write()) ------------------------------------------------------------------

    def _in_write(self) -> None:
        if not self._depth:
            raise RuntimeError("Store: writes go inside `with store.write():`")

    def insert(self, entry: Entry) -> np.ndarray:
        """Insert one document and its chunks (inside :meth:`write`); returns its chunk ids, int64 (C,).

        Raises:
            KnowledgeBaseError: the id is stored already, or the vectors do not fit the chunks.
        """
        self._in_write()
        vectors = np.ascontiguousarray(entry.vectors, dtype="<f4")
        if vectors.shape != (len(entry.chunks), self.dim) or not entry.chunks:
            raise KnowledgeBaseError(f"document {entry.id!r}: {len(entry.chunks)} chunks but vectors of shape "
                                     f"{vectors.shape} (expected ({len(entry.chunks)}, {self.dim}))")
        try:
            self._conn.execute("INSERT INTO documents (id, text, metadata, added_at) VALUES (?, ?, ?, ?)",
                               (entry.id, entry.text, json.dumps(entry.metadata, sort_keys=True), _now()))
        except sqlite3.IntegrityError:
            raise KnowledgeBaseError(f"document {entry.id!r} is already in {self.path} (use upsert to replace it)") \
                from None
        ids = np.empty(len(entry.chunks), dtype=np.int64)
        for pos, (text, vec) in enumerate(zip(entry.chunks, vectors)):
            cur = self._conn.execute("INSERT INTO chunks (doc_id, position, text, embedding) VALUES (?, ?, ?, ?)",
                                     (entry.id, pos, text, vec.tobytes()))
            ids[pos] = cur.lastrowid
        return ids

    def delete(self, doc_ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """Delete documents and their chunks (inside :meth:`write`); ids not stored are skipped.
        Returns (the ids deleted, their chunk ids int64 (R,))."""
        self._in_write()
        doc_ids = list(doc_ids)
        chunk_ids = [r[0] for r in self._in_batches("SELECT chunk_id FROM chunks WHERE doc_id IN ({})", doc_ids)]
        present = sorted(self.existing(doc_ids))
        for start in range(0, len(present), _IN_BATCH):
            part = present[start:start + _IN_BATCH]
            marks = ",".join("?" * len(part))
            self._conn.execute(f"DELETE FROM chunks WHERE doc_id IN ({marks})", part)
            self._conn.execute(f"DELETE FROM documents WHERE id IN ({marks})", part)
        return present, np.asarray(sorted(chunk_ids), dtype=np.int64)

    def apply(self, put: Sequence[Entry] = (), delete: Sequence[str] = (), *, replace: bool = False,
              missing_ok: bool = True) -> WriteResult:
        """One write transaction: delete the documents ``delete``, then store ``put`` (replacing
        stored ones of the same ids when ``replace``, else refusing them). All or nothing.

        Raises:
            KnowledgeBaseError: an id of ``put`` is stored and ``replace`` is False, or an id of
                ``delete`` is not stored and not ``missing_ok`` (nothing is written).
        """
        empty = np.zeros(0, dtype=np.int64)
        with self.write():
            removed_docs, removed = self.delete(list(delete)) if delete else ([], empty)
            if not missing_ok and len(removed_docs) < len(set(delete)):
                missing = sorted(set(delete) - set(removed_docs))
                raise KnowledgeBaseError(f"remove: not in {self.path}: {', '.join(map(repr, missing[:8]))}"
                                         f"{' ...' if len(missing) > 8 else ''} (nothing was removed)")
            if replace and put:
                replaced_docs, replaced = self.delete([e.id for e in put])
                removed_docs += replaced_docs
                removed = np.concatenate([removed, replaced])
            added = [self.insert(e) for e in put]
        added_ids = np.concatenate(added) if added else empty
        vectors = (np.concatenate([np.asarray(e.vectors, np.float32) for e in put]) if put
                   else np.zeros((0, self.dim), np.float32))
        return WriteResult(int(self.last_generation), removed, added_ids, vectors, removed_docs, [e.id for e in put])

    # -- maintenance -------------------------------------------------------------------------------

    def checkpoint(self, wait_s: float = 2.0) -> bool:
        """Copy the WAL into the database file and truncate it (``wal_checkpoint(TRUNCATE)``),
        waiting at most ``wait_s`` for readers of other connections; True when it completed (False:
        a reader kept it from finishing; the next checkpoint, automatic or not, completes it)."""
        with self._lock:
            self._conn.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
            try:
                busy, _, _ = self._row("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        return busy == 0

    def check(self) -> list[str]:
        """Consistency problems of the committed state (empty: consistent): recorded counts vs
        rows, documents without chunks, chunks without documents, gaps in chunk positions,
        embeddings of the wrong size, metadata that is not a JSON object, and SQLite's own
        ``quick_check``."""
        problems: list[str] = []
        with self.read():
            quick = [r[0] for r in self._rows("PRAGMA quick_check")]
            if quick != ["ok"]:
                problems += [f"quick_check: {q}" for q in quick]
            meta = self.meta()
            docs = self._row("SELECT count(*) FROM documents")[0]
            chunks = self._row("SELECT count(*) FROM chunks")[0]
            if self._meta_int(meta, "documents") != docs or self._meta_int(meta, "chunks") != chunks:
                problems.append(f"meta counts {meta['documents']} documents / {meta['chunks']} chunks, "
                                f"rows {docs} / {chunks}")
            for (doc_id,) in self._rows("SELECT id FROM documents WHERE id NOT IN "
                                        "(SELECT doc_id FROM chunks)"):
                problems.append(f"document {doc_id!r} has no chunks")
            for (cid, doc_id) in self._rows("SELECT chunk_id, doc_id FROM chunks WHERE doc_id NOT IN "
                                            "(SELECT id FROM documents)"):
                problems.append(f"chunk {cid} belongs to no document ({doc_id!r})")
            for (doc_id, n, top) in self._rows("SELECT doc_id, count(*), max(position) FROM chunks "
                                               "GROUP BY doc_id"):
                if top != n - 1:
                    problems.append(f"document {doc_id!r}: {n} chunks at positions up to {top}")
            for (cid, size) in self._rows("SELECT chunk_id, length(embedding) FROM chunks WHERE "
                                          "length(embedding) != ?", (4 * self.dim,)):
                problems.append(f"chunk {cid}: embedding of {size} bytes, expected {4 * self.dim}")
            for (doc_id, metadata) in self._rows("SELECT id, metadata FROM documents"):
                try:
                    self.metadata(doc_id, metadata)
                except StoreError:
                    problems.append(f"document {doc_id!r}: metadata is not a JSON object")
        return problems

    def file_bytes(self) -> int:
        """Bytes of the database file and its WAL."""
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _check_header(path: Path) -> None:
    """Refuse a file that is not an SQLite database before SQLite opens it."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(f"cannot read knowledge base store {path}: {exc}") from None
    if head != _SQLITE_HEADER:
        raise StoreError(f"{path} is not a knowledge base store (not an SQLite database: it starts with "
                         f"{head[:16]!r}); it was left as it is")


#: each table's CREATE statement as :func:`_create` makes it (whitespace collapsed)
_SCHEMA_SQL = {statement.split()[2]: " ".join(statement.split())
               for statement in _SCHEMA.strip().split(";") if statement.strip()}


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a store whose tables are not exactly the ones :func:`_create` makes: a damaged or
    edited schema (a column that lost ``INTEGER PRIMARY KEY`` holds NULL chunk ids, one that lost
    ``NOT NULL`` NULL text) would otherwise fail wherever a row is used."""
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                        "AND name IN ('meta', 'documents', 'chunks')").fetchall()
    found = {name: " ".join(str(sql).split()) for name, sql in rows}
    for name, want in _SCHEMA_SQL.items():
        if found.get(name) != want:
            raise StoreError(f"{path}: table {name} is not the one a knowledge base store (schema "
                             f"{SCHEMA_VERSION}) has; it was left as it is")


def _create(conn: sqlite3.Connection, identity: dict) -> None:
    """Create the tables and the meta rows in one transaction, unless they are there."""
    if conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'meta'").fetchone()[0]:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'meta'").fetchone()[0]:
            conn.execute("ROLLBACK")       # another process created it meanwhile
            return
        for statement in _SCHEMA.strip().split(";"):
            if statement.strip():
                conn.execute(statement)
        meta = {"schema_version": SCHEMA_VERSION, "store_id": uuid.uuid4().hex, "created_at": _now(),
                "embedder_name": identity["name"], "embedder_sha256": identity["sha256"],
                "embedder_dim": int(identity["dim"]), "embedder_normalized": int(bool(identity["normalized"])),
                "documents": 0, "chunks": 0, "generation": 0}
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [(k, str(v)) for k, v in meta.items()])
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
