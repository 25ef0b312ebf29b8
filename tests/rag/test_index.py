"""The vector index (:mod:`mtsc_sdr.rag.index`): exact flat search against numpy, HNSW with
tombstones, replacement of an id that is there already, atomic files with a sidecar that says what
they match, rebuild or catch-up from the store, and one faiss thread for one query."""

from __future__ import annotations

import json
import logging

import faiss
import numpy as np
import pytest

from mtsc_sdr.rag import index as index_mod
from mtsc_sdr.rag.errors import KnowledgeBaseError
from mtsc_sdr.rag.index import INDEX_FILE, SIDECAR, VectorIndex, build, open_index, recorded_kind, sync
from mtsc_sdr.rag.store import Entry, Store

DIM = 16


def unit(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_flat_search_is_exact():
    data, queries = unit(500), unit(7, seed=1)
    ids = np.arange(1000, 1500, dtype=np.int64)
    index = VectorIndex("flat", DIM)
    index.add(ids, data)
    scores, got = index.search(queries, 10)
    truth = queries @ data.T                                         # (7, 500)
    want = np.argsort(-truth, axis=1)[:, :10]
    np.testing.assert_array_equal(got, ids[want])
    np.testing.assert_allclose(scores, np.take_along_axis(truth, want, axis=1), rtol=1e-5, atol=1e-6)
    one_scores, one_ids = index.search(queries[0], 3)                 # one query (dim,) works too
    np.testing.assert_array_equal(one_ids[0], got[0, :3])
    s, i = index.search(queries[:1], 600)                             # more than there is: padded
    assert (i[0, 500:] == -1).all() and np.isneginf(s[0, 500:]).all()


def test_adding_an_id_again_replaces_it_and_remove_removes():
    index = VectorIndex("flat", DIM)
    data = unit(10)
    index.add(np.arange(10), data)
    index.add(np.array([3]), data[7:8])                              # faiss alone would hold both
    assert index.ntotal == 10 and list(index.ids()) == list(range(10))
    _, got = index.search(data[7:8], 2)
    assert sorted(got[0]) == [3, 7]
    assert index.remove(np.array([3, 4, 99])) == 2
    assert index.ntotal == 8 and 3 not in index.ids()
    with pytest.raises(ValueError, match="same id twice"):
        index.add(np.array([20, 20]), data[:2])
    with pytest.raises(ValueError, match="shape"):
        index.add(np.array([21]), data[:2])


def test_hnsw_tombstones_and_compaction():
    data = unit(400, seed=2)
    index = VectorIndex("hnsw", DIM)
    index.add(np.arange(400), data)
    _, got = index.search(data[:50], 1)
    assert (got[:, 0] == np.arange(50)).mean() > 0.95                # approximate, but finds itself
    index.remove(np.arange(0, 60))
    assert index.tombstones == 60 and index.ntotal == 340
    _, got = index.search(data[:60], 5)
    assert not np.isin(got, np.arange(60)).any()                      # removed ids never come back
    index.remove(np.arange(60, 120))                                  # past a quarter: rebuilt without them
    assert index.tombstones == 0 and index.ntotal == 280 and list(index.ids()) == list(range(120, 400))
    _, got = index.search(data[200:201], 1)
    assert got[0, 0] == 200
    index.add(np.array([250]), data[0:1])                             # an id again: replaced
    assert index.ntotal == 280
    _, got = index.search(data[0:1], 1)
    assert got[0, 0] == 250


def test_save_load_and_why_a_file_is_refused(tmp_path):
    index = VectorIndex("flat", DIM)
    index.add(np.arange(20), unit(20))
    index.generation, index.store_id = 5, "s1"
    index.save(tmp_path)
    side = json.loads((tmp_path / SIDECAR).read_text())
    assert side["generation"] == 5 and side["vectors"] == 20 and side["kind"] == "flat" and recorded_kind(tmp_path) == "flat"
    assert not list(tmp_path.glob(".*.tmp"))
    args = dict(kind="flat", dim=DIM, store_id="s1", generation=5)
    loaded, why = VectorIndex.load(tmp_path, **args)
    assert why == "" and list(loaded.ids()) == list(range(20)) and loaded.generation == 5
    assert VectorIndex.load(tmp_path, **{**args, "generation": 6})[1] == "stale (generation 5, store at 6)"
    assert VectorIndex.load(tmp_path, **{**args, "store_id": "s2"})[1].startswith("for another store_id")
    assert VectorIndex.load(tmp_path, **{**args, "kind": "hnsw"})[1].startswith("for another kind")
    data = (tmp_path / INDEX_FILE).read_bytes()
    (tmp_path / INDEX_FILE).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert VectorIndex.load(tmp_path, **args)[1].startswith("corrupt")
    (tmp_path / INDEX_FILE).unlink()
    assert VectorIndex.load(tmp_path, **args)[1].startswith("unreadable")
    (tmp_path / SIDECAR).unlink()
    assert VectorIndex.load(tmp_path, **args) == (None, "missing")
    (tmp_path / f".{INDEX_FILE}.123.tmp").write_bytes(b"left by a killed saver")
    index.save(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))


def test_hnsw_round_trip_keeps_its_parameters(tmp_path):
    index = VectorIndex("hnsw", DIM, hnsw_m=8, ef_search=20)
    index.add(np.arange(50), unit(50))
    index.generation, index.store_id = 1, "s"
    index.save(tmp_path)
    loaded, why = VectorIndex.load(tmp_path, kind="hnsw", dim=DIM, store_id="s", generation=1)
    assert why == "" and loaded.hnsw["m"] == 8 and loaded.hnsw["ef_search"] == 20
    inner = faiss.downcast_index(loaded._index.index)
    assert inner.hnsw.efSearch == 20 and loaded.ntotal == 50


def fill(store: Store, ids: range, seed: int = 0) -> None:
    vectors = unit(len(ids), seed)
    store.apply([Entry(f"d{i}", f"doc {i}", {}, [f"doc {i}"], vectors[j:j + 1]) for j, i in enumerate(ids)])


def test_open_index_rebuilds_and_sync_catches_up(tmp_path, caplog):
    store = Store.open(tmp_path / "store.sqlite", {"name": "t", "sha256": "0", "dim": DIM, "normalized": True})
    fill(store, range(30))
    with caplog.at_level(logging.INFO, logger="mtsc_sdr.rag"):
        index, why = open_index(tmp_path, store, "flat")
    assert why == "missing" and "rebuilding it from the store (30 chunks)" in caplog.text
    assert index.generation == 1 and np.array_equal(index.ids(), store.chunk_ids())
    index.save(tmp_path)
    assert open_index(tmp_path, store, "flat")[1] is None
    # another writer: removes some, replaces some, adds some
    store.apply(delete=[f"d{i}" for i in range(5)])
    with pytest.raises(KnowledgeBaseError, match="'d5' is already in"):
        fill(store, range(3, 40), seed=4)   # d5.. are stored: the whole write is refused
    assert store.generation() == 2
    store.apply([Entry("d7", "doc 7 v2", {}, ["doc 7 v2"], unit(1, seed=9))], replace=True)
    assert sync(index, store).startswith("generation 1 -> 3: -6 +1")
    assert np.array_equal(index.ids(), store.chunk_ids()) and sync(index, store) is None
    np.testing.assert_array_equal(index.search(unit(1, seed=9), 1)[1], [[store.chunk_ids()[-1]]])
    fresh = build(store, "flat")
    q = unit(5, seed=3)
    np.testing.assert_array_equal(fresh.search(q, 4)[1], index.search(q, 4)[1])
    with caplog.at_level(logging.INFO, logger="mtsc_sdr.rag"):
        assert open_index(tmp_path, store, "flat")[1] == "stale (generation 1, store at 3)"
    store.close()


def test_one_query_runs_on_one_faiss_thread_and_the_setting_is_restored(monkeypatch):
    calls = []
    real = faiss.omp_set_num_threads
    monkeypatch.setattr(faiss, "omp_set_num_threads", lambda n: (calls.append(n), real(n)))
    before = faiss.omp_get_max_threads()
    index = VectorIndex("flat", DIM, batch_threads=2)
    index.add(np.arange(100), unit(100))
    index.search(unit(1), 5)
    assert calls == [1, before]
    calls.clear()
    index.search(unit(8), 5)
    assert calls == [2, before] and faiss.omp_get_max_threads() == before
    assert index_mod.KINDS == ("flat", "hnsw")


def search_truth(ids: np.ndarray, data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The ids of the k best inner products of each query, by numpy."""
    return ids[np.argsort(-(queries @ data.T), axis=1, kind="stable")[:, :k]]


def test_prescanned_flat_search_is_exact_through_adds_and_removes(caplog):
    data, queries = unit(3000, seed=4), unit(20, seed=5)
    ids = np.arange(3000, dtype=np.int64) * 7 + 1
    index = VectorIndex("flat", DIM, prescan_min=0)
    index.add(ids, data)
    scores, got = index.search(queries, 10)
    assert index._prescan is not None                               # the two-pass path ran
    np.testing.assert_array_equal(got, search_truth(ids, data, queries, 10))
    truth = queries @ data.T                                        # (20, 3000)
    np.testing.assert_allclose(scores, -np.sort(-truth, axis=1)[:, :10], rtol=1e-5, atol=1e-6)
    prescan = index._prescan
    keep = np.ones(3000, bool)
    keep[::3] = False
    index.remove(ids[~keep])                                        # rows leave the copy too
    index.add(ids[:3], data[10:13])                                 # re-adding removed ids (new vectors)
    assert index._prescan is prescan and prescan.index.ntotal == index.ntotal
    live_ids = np.concatenate([ids[keep], ids[:3]])
    live = np.concatenate([data[keep], data[10:13]])
    np.testing.assert_array_equal(index.search(queries, 10)[1], search_truth(live_ids, live, queries, 10))
    # a vector with a component beyond the 8-bit grid: the copy is made again, to fit it
    big = np.zeros((1, DIM), np.float32)
    big[0, 0] = 4 * prescan.bound
    index.add(np.array([5]), big)
    assert index._prescan is None
    q = np.eye(DIM, dtype=np.float32)[:1]
    assert index.search(q, 1)[1][0, 0] == 5 and index._prescan.bound >= 4 * prescan.bound
    # near-ties: more rows within the pre-scan's error of the k-th score than it returns
    crowd = np.repeat(data[:1], 600, axis=0) + 1e-3 * unit(600, seed=6)
    index.add(np.arange(10_000, 10_600), crowd)
    with caplog.at_level(logging.DEBUG, logger="mtsc_sdr.rag"):
        got = index.search(data[:1], 10)[1]
    assert "plain scan" in caplog.text
    all_ids = np.concatenate([live_ids, [5], np.arange(10_000, 10_600)])
    all_vectors = np.concatenate([live, big, crowd])
    np.testing.assert_array_equal(got, search_truth(all_ids, all_vectors, data[:1], 10))


def test_prescan_error_bound_holds():
    data, queries = unit(2000, seed=7), unit(50, seed=8)
    index = VectorIndex("flat", DIM, prescan_min=0)
    index.add(np.arange(2000), data)
    index.search(queries[:1], 1)
    approx, rows = index._prescan.search(queries, 2000)            # every row's approximate score
    exact = np.take_along_axis(queries @ data.T, rows, axis=1)
    bound = index._prescan.error(queries)                           # (50,)
    assert (np.abs(approx - exact) <= bound[:, None]).all() and bound.max() < 0.05
