"""Retrieval figures (:mod:`mtsc_sdr.rag.bench`) at a small size with the hash embedder: the
report's shape; the real figures come from a benchmark script on the packaged embedder."""

from __future__ import annotations

from mtsc_sdr.rag.bench import retrieval_figures, sentences
from tests.rag.fakes import HashEmbedder


def test_sentences_are_distinct_and_reproducible():
    s = sentences(300, seed=3)
    assert len(set(s)) == 300 and s == sentences(300, seed=3) and s != sentences(300, seed=4)
    assert all(8 <= len(t.split()) <= 12 for t in s)


def test_retrieval_figures(tmp_path):
    out = retrieval_figures(HashEmbedder(dim=24), n_vectors=3000, n_search=30, n_kb_queries=20, n_ingest=50,
                            warmup=2, workdir=tmp_path)
    for key in ("faiss_search_ms", "faiss_flatip_ms", "kb_query_ms", "embed_query_ms"):
        assert set(out[key]) == {"p50", "p90", "p99"} and 0 < out[key]["p50"] <= out[key]["p99"]
    assert out["same_hits"] is True and out["flat_speedup"] > 0
    assert out["ingest"]["documents"] == 50 and out["ingest"]["docs_per_s"] > 0
    assert out["config"]["n_vectors"] == 3000 and out["config"]["dim"] == 24 and out["config"]["index"] == "flat"
    assert {r["metric"] for r in out["rows"]} == {"latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "docs_per_s"}
    assert list(tmp_path.iterdir()) == []                     # its knowledge bases are removed
