"""The vector index of a knowledge base: a faiss index that is a *cache* of the store (:mod:`.store`).

* **Kinds**: ``flat`` (the default) is exact: inner product over the normalized embeddings
  (= cosine similarity), ``faiss.IndexFlatIP``, every query compared with every chunk. From
  ``prescan_min`` vectors on (20,000 by default) it is searched in two passes that return the same
  hits as the plain scan in about half its time (:class:`_Prescan`; 100,000 x 384: p50 3.1 ms
  against a bare ``IndexFlatIP``'s 6.1 ms in the same run, :mod:`.bench`): an 8-bit copy of the
  vectors is scanned for the best ``k`` + 256 with a proven bound on each score's error; every
  chunk that could be in the true top ``k`` is among them (else the query falls back to the plain
  scan), and they are scored again with the float32 vectors. The copy (a quarter of the float32
  index's memory) is built at the first search and kept in step with every add and remove; it is
  not saved (``index.faiss`` holds the float32 index).
  ``hnsw`` is approximate (``faiss.IndexHNSWFlat`` with the inner-product metric; ``M`` links per
  node, ``efConstruction`` / ``efSearch`` candidate lists), for stores where a flat scan gets too
  slow (hundreds of thousands of chunks and more); its recall is below 1. Both sit under a
  ``faiss.IndexIDMap2``, whose ids are the store's chunk ids (int64).
* **Updates in memory**: faiss accepts an id that is there already without a word (a second
  vector under the same id), so an upsert removes the old chunks' vectors first (``remove_ids``)
  and then adds the new ones. HNSW cannot delete a node: removed ids are kept in a tombstone set,
  filtered out of results (a search asks for ``k`` + tombstones), and the graph is rebuilt from its
  own live vectors when tombstones pass a quarter of it. A removed text's vector therefore stays
  in an HNSW index (memory, saved file) until that rebuild; the flat index drops it at once.
* **File**: ``index.faiss`` (``faiss.serialize_index``) beside ``index.json``, a small sidecar
  recording what it matches: the store's ``store_id`` and ``generation``, the kind, dimension,
  vector count and the sha256 of the index file. Both are written to a temporary file, fsynced
  and moved into place with ``os.replace`` (index first, sidecar second), so a reader sees a whole
  old or a whole new file, and a crash between the two leaves a sidecar whose sha256 does not
  match: rebuilt. On open, a missing, unreadable or corrupt file, or a stale one (another
  generation or store), is rebuilt from the store, with a log line (:func:`open_index`).
* **Catching up**: chunk ids are never reused by the store and a chunk id always names the same
  vector, so an index brought to the store's current state by comparing id sets is exact
  (:func:`sync`): another process's writes are taken in without a rebuild.
* **Threads**: faiss parallelizes a search with OpenMP. A single query runs with one thread
  (``faiss.omp_set_num_threads(1)``): faiss splits one query's scan across threads, and on a small
  CPU (2-6 cores, shared with the radio and the model) starting and joining the OpenMP team costs
  about what it gains, the scan being bound by memory bandwidth (100,000 x 384 float32 = 154 MB
  read per query by the plain scan, 38 MB by the pre-scan). Measured on a shared 2-core VM with
  the plain scan: one query p50 5.2 ms / p99 5.7-11 ms on one thread, 5.3-6.1 / 9.8-17 ms on two.
  A batch of queries is split by query and uses ``batch_threads``. The process's OpenMP setting
  is restored after each search.

faiss is imported when an index is made or read, not with this module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

KINDS = ("flat", "hnsw")
INDEX_FILE, SIDECAR = "index.faiss", "index.json"
FORMAT = 1
#: HNSW parameters: links per node, candidates while building and while searching (faiss's
#: defaults are 32 / 40 / 16; 80 and 64 give recall@10 above 0.95 on 384-d sentence vectors)
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 64
#: an HNSW index rebuilds itself without its tombstones when they pass this share (and count)
COMPACT_FRACTION, COMPACT_MIN = 0.25, 64
#: the largest HNSW parameters a sidecar may record (a corrupt one must not size an allocation)
_HNSW_PARAM_MAX = {"m": 1024, "ef_construction": 1 << 16, "ef_search": 1 << 16}
#: a flat index of at least this many vectors is searched with a pre-scan (below it a plain scan
#: takes a millisecond or two, and a pre-scan that would return most rows saves nothing)
PRESCAN_MIN = 20_000
#: rows the pre-scan returns beyond ``k``: room for every row whose score is within the pre-scan's
#: error of the k-th (random 384-d unit vectors, 100,000 of them: at most ~170 for k = 5); finding
#: 256 instead of 5 costs the scan no measurable time
PRESCAN_EXTRA = 256


def _faiss():
    import faiss

    return faiss


class VectorIndex:
    """Chunk vectors under their chunk ids, searchable by inner product.

    Args:
        kind: ``"flat"`` (exact) or ``"hnsw"`` (approximate).
        dim: vector dimension.
        batch_threads: OpenMP threads for a search of several queries (None: the machine's cores);
            a single query always uses one.
        prescan_min: a flat index of at least this many vectors is searched in two passes (same
            hits; see the module docstring); 0: always.

    Attributes:
        generation, store_id: the store state it matches (None: not known to match any).
    """

    def __init__(self, kind: str, dim: int, *, batch_threads: Optional[int] = None, prescan_min: int = PRESCAN_MIN,
                 hnsw_m: int = HNSW_M, ef_construction: int = HNSW_EF_CONSTRUCTION, ef_search: int = HNSW_EF_SEARCH):
        if kind not in KINDS:
            raise ValueError(f"index kind {kind!r}: expected one of {', '.join(KINDS)}")
        self.kind, self.dim = kind, int(dim)
        self.batch_threads = batch_threads or os.cpu_count() or 1
        self.prescan_min = int(prescan_min)
        self.hnsw = {"m": int(hnsw_m), "ef_construction": int(ef_construction), "ef_search": int(ef_search)}
        self.generation: Optional[int] = None
        self.store_id: Optional[str] = None
        self._dead: set[int] = set()
        self._index = self._new()
        self._prescan: Optional[_Prescan] = None    # flat only: made by the first search that uses it

    def __repr__(self) -> str:
        return f"VectorIndex({self.kind}, dim={self.dim}, vectors={self.ntotal}, generation={self.generation})"

    def _new(self):
        faiss = _faiss()
        if self.kind == "flat":
            inner = faiss.IndexFlatIP(self.dim)
        else:
            inner = faiss.IndexHNSWFlat(self.dim, self.hnsw["m"], faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.hnsw["ef_construction"]
            inner.hnsw.efSearch = self.hnsw["ef_search"]
        return faiss.IndexIDMap2(inner)   # faiss's wrapper keeps a reference to `inner`

    # -- contents ----------------------------------------------------------------------------------

    @property
    def ntotal(self) -> int:
        """Live vectors (tombstones not counted)."""
        return int(self._index.ntotal) - len(self._dead)

    @property
    def tombstones(self) -> int:
        """Removed vectors an HNSW index still holds (0 for flat)."""
        return len(self._dead)

    def _all_ids(self) -> np.ndarray:
        return self._row_ids().copy()

    def _row_ids(self) -> np.ndarray:
        """int64 (rows,): the id of each row, in the inner index's order; a view of faiss's memory,
        valid until the next add or remove."""
        id_map = self._index.id_map
        if id_map.size() == 0:
            return np.empty(0, dtype=np.int64)
        return _faiss().rev_swig_ptr(id_map.data(), id_map.size())

    def _rows(self) -> np.ndarray:
        """flat: float32 (rows, dim), the vectors in row order; a view of faiss's memory, valid
        until the next add or remove."""
        flat = _faiss().downcast_index(self._index.index)
        return _faiss().rev_swig_ptr(flat.get_xb(), flat.ntotal * self.dim).reshape(flat.ntotal, self.dim)

    def ids(self) -> np.ndarray:
        """int64 (N,): the live ids, ascending."""
        ids = np.sort(self._all_ids())
        if self._dead:
            ids = ids[~np.isin(ids, np.fromiter(self._dead, np.int64, len(self._dead)))]
        return ids

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors float32 (N, dim) under ids int64 (N,). An id present already is replaced
        (its old vector removed first: faiss itself would keep both)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (ids.size, self.dim):
            raise ValueError(f"index add: {ids.size} ids but vectors of shape {vectors.shape} (dim {self.dim})")
        if ids.size == 0:
            return
        if np.unique(ids).size != ids.size:
            raise ValueError("index add: the same id twice in one call")
        present = ids[np.isin(ids, self._all_ids())]
        if present.size:
            if self.kind == "flat":
                self.remove(present)
            else:                     # HNSW cannot delete: rebuild without them (never happens with store ids)
                self._rebuild_without(set(present.tolist()))
        self._index.add_with_ids(vectors, ids)
        if self._prescan is not None:
            if self._prescan.holds(vectors):
                self._prescan.add(vectors)
            else:                      # a component beyond its grid: made again, to fit, by the next search
                self._prescan = None

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids (absent ones are ignored); returns how many were there."""
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            return 0
        if self.kind == "flat":
            if self._prescan is not None:        # its rows are the flat index's: drop the same ones
                self._prescan.remove(np.flatnonzero(np.isin(self._row_ids(), ids)))
            return int(self._index.remove_ids(_faiss().IDSelectorBatch(ids)))
        live = set(ids[np.isin(ids, self._all_ids())].tolist()) - self._dead
        self._dead |= live
        if len(self._dead) >= COMPACT_MIN and len(self._dead) > COMPACT_FRACTION * self._index.ntotal:
            self._rebuild_without(set())
        return len(live)

    def _rebuild_without(self, drop: set[int]) -> None:
        """HNSW: a fresh graph of the live vectors, less ``drop`` (its own stored vectors; no store needed)."""
        faiss = _faiss()
        inner = faiss.downcast_index(self._index.index)
        vectors = inner.reconstruct_n(0, inner.ntotal)                     # (n, dim) in insertion order
        ids = self._all_ids()
        keep = ~np.isin(ids, np.fromiter(self._dead | drop, np.int64, len(self._dead | drop)))
        log.info("hnsw index: rebuilding its graph without %d removed vectors (%d left)",
                 int((~keep).sum()), int(keep.sum()))
        self._dead = set()
        self._index = self._new()
        if keep.any():
            self._index.add_with_ids(np.ascontiguousarray(vectors[keep]), ids[keep])

    def mark_dead(self, ids: np.ndarray) -> None:
        """HNSW after loading a saved index: these ids are removed (tombstones the file holds)."""
        self._dead |= set(np.asarray(ids, dtype=np.int64).tolist())

    # -- search ------------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries float32 (Q, dim), k -> (scores float32 (Q, k), ids int64 (Q, k)), best first;
        inner products (cosine similarity for normalized vectors). Rows with fewer than ``k``
        live vectors are padded with score -inf and id -1."""
        faiss = _faiss()
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dim:
            raise ValueError(f"index search: queries of dim {queries.shape[1]}, index dim {self.dim}")
        n = queries.shape[0]
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        ids = np.full((n, k), -1, dtype=np.int64)
        total = int(self._index.ntotal)
        if k <= 0 or total == 0 or n == 0:
            return scores, ids
        ask = min(total, k + len(self._dead))
        previous = faiss.omp_get_max_threads()
        threads = 1 if n == 1 else max(1, min(self.batch_threads, n))
        faiss.omp_set_num_threads(threads)
        try:
            if self.kind == "flat" and total >= max(self.prescan_min, k + PRESCAN_EXTRA + 1):
                self._search_prescanned(queries, k, scores, ids)
                return scores, ids
            got_scores, got_ids = self._index.search(queries, ask)
        finally:
            faiss.omp_set_num_threads(previous)
        if not self._dead:
            m = min(k, ask)
            scores[:, :m], ids[:, :m] = got_scores[:, :m], got_ids[:, :m]
            ids[ids < 0] = -1
            scores[ids < 0] = -np.inf
            return scores, ids
        dead = np.fromiter(self._dead, np.int64, len(self._dead))
        for row in range(n):
            keep = (got_ids[row] >= 0) & ~np.isin(got_ids[row], dead)
            s, i = got_scores[row][keep][:k], got_ids[row][keep][:k]
            scores[row, :s.size], ids[row, :i.size] = s, i
        return scores, ids

    def _search_prescanned(self, queries: np.ndarray, k: int, scores: np.ndarray, ids: np.ndarray) -> None:
        """Exact flat search in two passes, into ``scores`` / ``ids`` (Q, k); rows are > k + PRESCAN_EXTRA.

        Why it is exact: let ``a`` be pre-scan scores, ``s`` float32 ones, ``|a - s| <= eps`` for every
        row. The pre-scan's best ``k`` rows have ``s >= a_k - eps``, so the true k-th score is at
        least ``a_k - eps``, and a row of the true top ``k`` has ``a >= s - eps >= a_k - 2 eps``
        (the cut). The pre-scan returns its best ``m = k + PRESCAN_EXTRA`` rows; if the m-th is
        below the cut, every row above the cut is among them, and scoring them again with the
        float32 vectors gives the true top ``k``. If not, that query is searched by the plain scan.
        """
        if self._prescan is None:
            self._prescan = _Prescan(self._rows())
        approx, rows = self._prescan.search(queries, k + PRESCAN_EXTRA)      # (Q, m) each, best first
        cut = approx[:, k - 1] - 2 * self._prescan.error(queries)           # (Q,)
        vectors, row_ids = self._rows(), self._row_ids()
        plain = []
        for q in range(queries.shape[0]):
            if approx[q, -1] >= cut[q]:
                plain.append(q)
                continue
            candidates = rows[q][approx[q] >= cut[q]]
            exact = vectors[candidates] @ queries[q]                          # (candidates,)
            best = np.argsort(-exact, kind="stable")[:k]
            scores[q, :best.size], ids[q, :best.size] = exact[best], row_ids[candidates[best]]
        if plain:
            log.debug("flat index: %d of %d queries had too many rows near their k-th score for the "
                      "pre-scan; plain scan", len(plain), queries.shape[0])
            scores[plain], ids[plain] = self._index.search(queries[plain], k)

    # -- persistence -------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return _faiss().serialize_index(self._index).tobytes()

    def save(self, directory: str | Path) -> Path:
        """Write ``index.faiss`` and ``index.json`` into ``directory`` atomically (temporary files,
        fsync, ``os.replace``). Call it with the knowledge base's write lock held: one saver at a time.
        Leftover temporary files of a killed saver are removed."""
        directory = Path(directory)
        for stale in directory.glob(f".{INDEX_FILE}.*.tmp"):
            stale.unlink(missing_ok=True)
        for stale in directory.glob(f".{SIDECAR}.*.tmp"):
            stale.unlink(missing_ok=True)
        data = self.to_bytes()
        sidecar = {"format": FORMAT, "kind": self.kind, "dim": self.dim, "store_id": self.store_id,
                   "generation": self.generation, "vectors": int(self._index.ntotal), "live": self.ntotal,
                   "sha256": hashlib.sha256(data).hexdigest(), "hnsw": self.hnsw if self.kind == "hnsw" else None,
                   "faiss": _faiss().__version__}
        _atomic_write(directory / INDEX_FILE, data)
        _atomic_write(directory / SIDECAR, (json.dumps(sidecar, indent=1) + "\n").encode())
        return directory / INDEX_FILE

    @classmethod
    def load(cls, directory: str | Path, *, kind: str, dim: int, store_id: str, generation: int,
             batch_threads: Optional[int] = None,
             prescan_min: int = PRESCAN_MIN) -> tuple[Optional["VectorIndex"], str]:
        """The index saved in ``directory`` if it is whole and matches (kind, dim, store, generation):
        ``(index, "")``, else ``(None, why)``."""
        directory = Path(directory)
        file, side = directory / INDEX_FILE, directory / SIDECAR
        if not file.exists() and not side.exists():
            return None, "missing"
        try:
            meta = json.loads(side.read_text())
            data = file.read_bytes()
        except (OSError, ValueError) as exc:
            return None, f"unreadable ({exc})"
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            return None, f"unreadable ({SIDECAR} is not a format-{FORMAT} sidecar)"
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            return None, f"corrupt ({INDEX_FILE} does not have the sha256 {SIDECAR} records)"
        for key, want in (("kind", kind), ("dim", dim), ("store_id", store_id)):
            if meta.get(key) != want:
                return None, f"for another {key} ({meta.get(key)!r}, need {want!r})"
        if meta.get("generation") != generation:
            return None, f"stale (generation {meta.get('generation')}, store at {generation})"
        # the sha256 covers the index file, not the sidecar's other fields: check them as untrusted
        hnsw = meta.get("hnsw") or {}
        if not isinstance(hnsw, dict):
            return None, f"unreadable ({SIDECAR} hnsw is not an object)"
        params = {"m": hnsw.get("m", HNSW_M), "ef_construction": hnsw.get("ef_construction", HNSW_EF_CONSTRUCTION),
                  "ef_search": hnsw.get("ef_search", HNSW_EF_SEARCH)}
        for key, value in params.items():
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= _HNSW_PARAM_MAX[key]:
                return None, (f"unreadable ({SIDECAR} hnsw.{key} is {str(value)[:40]}, not an integer in "
                              f"1..{_HNSW_PARAM_MAX[key]})")
        index = cls(kind, dim, batch_threads=batch_threads, prescan_min=prescan_min, hnsw_m=params["m"],
                    ef_construction=params["ef_construction"], ef_search=params["ef_search"])
        faiss = _faiss()
        try:
            # already of its own class (IndexIDMap2); not passed through downcast_index, whose
            # new wrapper does not own the index: the owning one would be collected and free it
            loaded = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except Exception as exc:                     # faiss raises RuntimeError with its own message
            return None, f"corrupt ({exc})"
        if not isinstance(loaded, faiss.IndexIDMap2) or loaded.d != dim or loaded.ntotal != meta.get("vectors"):
            return None, "corrupt (not the index its sidecar describes)"
        inner = faiss.downcast_index(loaded.index)
        if (not isinstance(inner, faiss.IndexFlatIP if kind == "flat" else faiss.IndexHNSWFlat)
                or inner.metric_type != faiss.METRIC_INNER_PRODUCT):
            return None, f"corrupt ({INDEX_FILE} holds a {type(inner).__name__}, not the {kind} index its sidecar says)"
        if kind == "hnsw":
            inner.hnsw.efSearch = index.hnsw["ef_search"]
        index._index = loaded
        index.generation, index.store_id = generation, store_id
        return index, ""


class _Prescan:
    """The first pass of an exact flat search: an 8-bit copy of a flat index's vectors, row for row.

    Each component is one byte on a uniform grid of 255 steps over ``[-bound, bound]`` (faiss
    ``IndexScalarQuantizer``, ``QT_8bit_uniform``), so a scan reads a quarter of the float32 bytes;
    the scan is bound by memory bandwidth, and takes about half the time. faiss stores a
    component as the step it falls in and decodes it at the step's middle, so no decoded component
    is off by more than ``bound / 255``, and no pre-scan score by more than
    :meth:`error` = ``||q||_1 * bound * (1/255 + dim * 2**-22)`` (the second term: float32
    rounding of both sums). ``bound`` is the largest component magnitude, rounded up to 1/64; a
    vector with a larger component does not fit (:meth:`holds`) and the copy is made again.
    """

    GRID = 1 / 64

    def __init__(self, vectors: np.ndarray):
        """vectors float32 (rows, dim): the flat index's, in row order."""
        faiss = _faiss()
        self.dim = vectors.shape[1]
        peak = float(np.abs(vectors).max()) if vectors.size else 0.0
        self.bound = max(self.GRID, np.ceil(peak / self.GRID) * self.GRID)
        self.index = faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_8bit_uniform,
                                                faiss.METRIC_INNER_PRODUCT)
        self.index.sq.trained.push_back(-self.bound)             # the grid: its start and its width
        self.index.sq.trained.push_back(2 * self.bound)
        self.index.is_trained = True
        self.add(vectors)

    def holds(self, vectors: np.ndarray) -> bool:
        return not vectors.size or float(np.abs(vectors).max()) <= self.bound

    def add(self, vectors: np.ndarray) -> None:
        for start in range(0, len(vectors), 65_536):             # faiss encodes a copy: in slices
            self.index.add(np.ascontiguousarray(vectors[start:start + 65_536]))

    def remove(self, rows: np.ndarray) -> None:
        """Drop these rows (int64 positions); the others keep their order, as the flat index's do."""
        if rows.size:
            self.index.remove_ids(_faiss().IDSelectorBatch(rows.astype(np.int64)))

    def search(self, queries: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """queries float32 (Q, dim) -> (approximate scores (Q, m), rows int64 (Q, m)), best first."""
        return self.index.search(queries, m)

    def error(self, queries: np.ndarray) -> np.ndarray:
        """float64 (Q,): the most a pre-scan score of each query can differ from its float32 score."""
        l1 = np.abs(queries.astype(np.float64)).sum(axis=1)
        return l1 * self.bound * (1 / 255 + self.dim * 2.0 ** -22)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)                  # the rename itself survives a power loss
    finally:
        os.close(fd)


def recorded_kind(directory: str | Path) -> Optional[str]:
    """The kind ``index.json`` in ``directory`` records, or None."""
    try:
        kind = json.loads((Path(directory) / SIDECAR).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None
    return kind if kind in KINDS else None


def build(store: "Store", kind: str, **params: Any) -> VectorIndex:
    """A fresh index of every chunk of ``store`` (one read snapshot)."""
    index = VectorIndex(kind, store.dim, **params)
    with store.read():
        index.generation, index.store_id = store.generation(), store.store_id
        for ids, vectors in store.iter_embeddings():
            index.add(ids, vectors)
    return index


def sync(index: VectorIndex, store: "Store") -> Optional[str]:
    """Bring ``index`` to the store's committed state by comparing id sets (chunk ids are never
    reused): remove the ids the store no longer has, add the chunks it lacks. Returns what it
    did (None: it matched already). Runs in one read snapshot (the caller's, when inside one)."""
    with store.read():
        generation = store.generation()
        if index.generation == generation and index.store_id == store.store_id:
            return None
        if index.store_id != store.store_id:
            raise ValueError(f"index of store {index.store_id} used with store {store.store_id}")
        have, want = index.ids(), store.chunk_ids()
        gone, new = np.setdiff1d(have, want, assume_unique=True), np.setdiff1d(want, have, assume_unique=True)
        index.remove(gone)
        index.add(new, store.embeddings(new))
        before, index.generation = index.generation, generation
    return f"generation {before} -> {generation}: -{gone.size} +{new.size} chunks"


def open_index(directory: str | Path, store: "Store", kind: str, **params: Any) -> tuple[VectorIndex, Optional[str]]:
    """The index of ``store`` saved in ``directory`` if it is whole and current, else one rebuilt
    from the store: ``(index, why it was rebuilt or None)``. A rebuild is logged (warning when the
    file was unreadable or corrupt, info otherwise); the caller saves it.

    The saved ids are checked against the store's: a flat index must hold exactly the store's
    chunks; an HNSW one may hold more (its tombstones, marked dead again)."""
    with store.read():
        generation = store.generation()
        index, why = VectorIndex.load(directory, kind=kind, dim=store.dim, store_id=store.store_id,
                                      generation=generation, batch_threads=params.get("batch_threads"),
                                      prescan_min=params.get("prescan_min", PRESCAN_MIN))
        if index is not None:
            have, want = index.ids(), store.chunk_ids()
            extra = np.setdiff1d(have, want, assume_unique=True)
            if np.setdiff1d(want, have, assume_unique=True).size or (extra.size and kind == "flat"):
                index, why = None, "corrupt (its ids are not the store's chunks)"
            else:
                index.mark_dead(extra)
        if index is None:
            level = logging.WARNING if why.startswith(("corrupt", "unreadable")) else logging.INFO
            log.log(level, "knowledge base index %s: %s; rebuilding it from the store (%s chunks)",
                    Path(directory) / INDEX_FILE, why, store.counts()["chunks"])
            index = build(store, kind, **params)
            return index, why
    return index, None
