"""Retrieval figures: query latency and ingestion rate of a knowledge base, as data (no printing),
for a benchmark script to report.

:func:`retrieval_figures` measures, with the exact flat index and one faiss thread per query:

* ``faiss_search_ms``: one query vector against ``n_vectors`` random unit vectors of ``dim``
  (our exact flat index alone, :meth:`VectorIndex.search`, k = ``k``: the 8-bit pre-scan and the
  float32 rescoring); ``faiss_flatip_ms``: the same queries, interleaved with ours, on the peer, a
  bare ``faiss.IndexFlatIP`` of the same vectors (the plain exact scan), and ``flat_speedup`` the
  ratio of the two p50s; ``same_hits``: whether both returned the same ids for every query;
* ``kb_query_ms``: :meth:`KnowledgeBase.query` end to end on a store of those vectors (embedding
  one short query text with the embedder, the generation check, the search, reading the hits'
  rows from SQLite); ``embed_query_ms``: the embedding alone;
* ``ingest``: documents/s of :meth:`KnowledgeBase.add` of ``n_ingest`` short sentences
  (chunking, embedding, one transaction, index update).

Latencies are per call (``time.perf_counter``) after ``warmup`` calls, as p50 / p90 / p99 in ms
(:func:`mtsc_sdr.report.percentiles`). The store of random vectors is written through
:class:`~.store.Store` directly (embedding 100,000 texts would take minutes and measure the
embedder, not retrieval); it carries the embedder's identity, so the knowledge base opens it as its own.
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from mtsc_sdr.report import percentiles, row

from .embedder import Embedder, identity
from .index import VectorIndex
from .kb import KnowledgeBase
from .store import Entry, Store

_COLORS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")
_SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon")
_PLACES = ("left of", "right of", "above", "below", "next to", "far from", "behind", "inside")
_VERBS = ("sits", "moves", "glows", "turns", "rests", "spins", "fades", "waits")
QUERIES = ("where is the red circle?", "what is above the blue square?", "a green star next to a ring",
           "which shape glows?", "the yellow triangle moves left", "what color is the diamond?")


def sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` short distinct English sentences about shapes (8-11 words), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    while len(out) < n:
        c1, c2 = rng.choice(_COLORS, 2)
        s1, s2 = rng.choice(_SHAPES, 2)
        text = f"the {c1} {s1} {rng.choice(_VERBS)} {rng.choice(_PLACES)} the {c2} {s2} in scene {rng.integers(1000)}"
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _timed(fn, calls: int, warmup: int) -> list[float]:
    for i in range(warmup):
        fn(i)
    out = []
    for i in range(calls):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _search_latency(data: np.ndarray, queries: np.ndarray, k: int, warmup: int) -> tuple[list[float], list[float], bool]:
    """ms per single-query search of ``data`` (N, dim), one call per row of ``queries``, by our flat
    :class:`VectorIndex` and by a bare ``faiss.IndexFlatIP`` (one faiss thread), alternating query by
    query so that both see the same machine: ``(ours, faiss's, same ids for every query)``."""
    import faiss

    ours = VectorIndex("flat", data.shape[1])
    ours.add(np.arange(len(data), dtype=np.int64), data)
    peer = faiss.IndexFlatIP(data.shape[1])
    peer.add(data)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)               # ours sets one thread per query itself
    try:
        for i in range(warmup):
            ours.search(queries[i % len(queries)][None], k)
            peer.search(queries[i % len(queries)][None], k)
        times: tuple[list[float], list[float]] = ([], [])
        same = True
        for q in queries:
            got = []
            for fn, ms in ((ours.search, times[0]), (peer.search, times[1])):
                t0 = time.perf_counter()
                got.append(fn(q[None], k)[1])
                ms.append((time.perf_counter() - t0) * 1e3)
            same = same and np.array_equal(got[0], got[1])
    finally:
        faiss.omp_set_num_threads(threads)
    return times[0], times[1], same


def retrieval_figures(embedder: Optional[Embedder] = None, *, n_vectors: int = 100_000, n_search: int = 1000,
                      n_kb_queries: int = 300, n_ingest: int = 2000, k: int = 5, warmup: int = 20, seed: int = 0,
                      workdir: Optional[str | Path] = None) -> dict[str, Any]:
    """Measure retrieval latency and ingestion (see the module docstring).

    Args:
        embedder: embeds queries and ingested sentences; None: the packaged all-MiniLM-L6-v2 with
            one torch thread. Its ``dim`` sizes the random vectors.
        n_vectors: vectors (chunks) in the searched index and store.
        n_search, n_kb_queries: timed calls of the faiss search and of ``KnowledgeBase.query``.
        n_ingest: sentences added in one ``add`` call for the ingestion rate.
        workdir: where the knowledge bases are written (default: a temporary directory, removed after).

    Returns:
        ``{"config", "versions", "faiss_search_ms", "faiss_flatip_ms", "flat_speedup", "same_hits",
        "kb_query_ms", "embed_query_ms", "store_fill_s", "index_open_s",
        "ingest": {"documents", "seconds", "docs_per_s"}, "rows"}``; latencies as
        ``{"p50", "p90", "p99"}`` in ms, ``rows`` the same figures as report rows.
    """
    import faiss

    if embedder is None:
        from .embedder import SentenceEmbedder

        embedder = SentenceEmbedder()
    rng = np.random.default_rng(seed)
    dim = int(embedder.dim)
    data = _unit(rng, n_vectors, dim)                                   # (n_vectors, dim)
    queries = _unit(rng, n_search, dim)                                 # (n_search, dim)

    search_ms, flatip_ms, same_hits = _search_latency(data, queries, k, warmup)

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        (root / "kb").mkdir()
        t0 = time.perf_counter()
        store = Store.open(root / "kb" / "store.sqlite", identity(embedder))
        try:
            for start in range(0, n_vectors, 10_000):
                stop = min(start + 10_000, n_vectors)
                store.apply([Entry(f"v{i}", f"vector {i}", {}, [f"vector {i}"], data[i:i + 1])
                             for i in range(start, stop)])
        finally:
            store.close()
        fill_s = time.perf_counter() - t0
        del data
        t0 = time.perf_counter()
        with KnowledgeBase.open(root / "kb", embedder, index="flat") as kb:
            open_s = time.perf_counter() - t0
            embed_ms = _timed(lambda i: embedder.embed([QUERIES[i % len(QUERIES)]]), n_kb_queries, warmup)
            query_ms = _timed(lambda i: kb.query(QUERIES[i % len(QUERIES)], k=k), n_kb_queries, warmup)
        texts = sentences(n_ingest, seed)
        with KnowledgeBase.open(root / "ingest", embedder, index="flat") as kb:
            t0 = time.perf_counter()
            kb.add([{"id": f"s{i}", "text": t} for i, t in enumerate(texts)])
            ingest_s = time.perf_counter() - t0

    figures = {"faiss_search_ms": percentiles(search_ms), "faiss_flatip_ms": percentiles(flatip_ms),
               "kb_query_ms": percentiles(query_ms), "embed_query_ms": percentiles(embed_ms)}
    ingest = {"documents": n_ingest, "seconds": round(ingest_s, 3), "docs_per_s": round(n_ingest / ingest_s, 1)}
    rows = [row("mtsc", "retrieval", "none", None, f"latency_ms_{p}", v, unit="ms", stage=stage)
            for stage, fig in figures.items() for p, v in fig.items()]
    rows.append(row("mtsc", "retrieval", "none", None, "docs_per_s", ingest["docs_per_s"], stage="ingest"))
    speedup = round(figures["faiss_flatip_ms"]["p50"] / figures["faiss_search_ms"]["p50"], 2)
    return {"config": {"embedder": identity(embedder), "n_vectors": n_vectors, "dim": dim, "k": k, "index": "flat",
                       "faiss_threads_per_query": 1, "n_search": n_search, "n_kb_queries": n_kb_queries,
                       "n_ingest": n_ingest, "warmup": warmup, "seed": seed,
                       "embedder_threads": getattr(embedder, "threads", None)},
            "versions": {"faiss": faiss.__version__, "python": platform.python_version()},
            **figures, "flat_speedup": speedup, "same_hits": same_hits, "store_fill_s": round(fill_s, 3), "index_open_s": round(open_s, 3), "ingest": ingest,
            "rows": rows}
