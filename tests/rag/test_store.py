"""The durable store (:mod:`mtsc_sdr.rag.store`): schema and identity, one transaction per write,
the generation counter, raw float32 embeddings, removal that leaves no text in the file, and
refusal of files that are not stores."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from mtsc_sdr.rag.errors import EmbedderMismatch, KnowledgeBaseError, StoreError
from mtsc_sdr.rag.store import Entry, Store

IDENT = {"name": "hash-words", "sha256": "ab" * 32, "dim": 4, "normalized": True}


def entry(doc_id: str, text: str, n_chunks: int = 1, seed: int = 0, **metadata) -> Entry:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n_chunks, 4)).astype(np.float32)
    return Entry(doc_id, text, metadata, [f"{text} part {i}" for i in range(n_chunks)], vectors)


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "store.sqlite", IDENT)
    yield s
    s.close()


def test_new_store_records_identity_and_pragmas(store, tmp_path):
    meta = store.meta()
    assert (meta["embedder_name"], meta["embedder_sha256"], meta["embedder_dim"], meta["embedder_normalized"]) == \
        ("hash-words", "ab" * 32, "4", "1")
    assert store.counts() == {"documents": 0, "chunks": 0, "generation": 0} and len(store.store_id) == 32
    conn = sqlite3.connect(tmp_path / "store.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert store._conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2        # FULL


def test_writes_count_generations_and_store_raw_float32(store, tmp_path):
    res = store.apply([entry("a", "alpha", 2, seed=1, k="v"), entry("b", "beta")])
    assert res.generation == 1 and list(res.added_chunk_ids) == [1, 2, 3] and res.added_docs == ["a", "b"]
    assert store.counts() == {"documents": 2, "chunks": 3, "generation": 1}
    blob = sqlite3.connect(tmp_path / "store.sqlite").execute(
        "SELECT embedding FROM chunks WHERE chunk_id = 2").fetchone()[0]
    want = entry("a", "alpha", 2, seed=1).vectors[1]
    assert len(blob) == 16 and np.array_equal(np.frombuffer(blob, "<f4"), want)
    np.testing.assert_array_equal(store.embeddings([2, 1]), entry("a", "alpha", 2, seed=1).vectors[::-1])
    doc = store.get("a")
    assert doc.metadata == {"k": "v"} and doc.chunks == ["alpha part 0", "alpha part 1"]
    res = store.apply([entry("a", "alpha two", 1)], replace=True)
    assert res.generation == 2 and list(res.removed_chunk_ids) == [1, 2] and list(res.added_chunk_ids) == [4]
    assert list(store.chunk_ids()) == [3, 4]                                  # ids are never reused
    res = store.apply(delete=["b", "zzz"])
    assert res.generation == 3 and res.removed_docs == ["b"] and list(res.removed_chunk_ids) == [3]
    assert store.counts() == {"documents": 1, "chunks": 1, "generation": 3} and store.check() == []
    batches = list(store.iter_embeddings(batch=1))
    assert [list(i) for i, _ in batches] == [[4]]
    with pytest.raises(KeyError):
        store.embeddings([3])


def test_a_failed_write_changes_nothing(store):
    store.apply([entry("a", "alpha"), entry("b", "beta")])
    before = (store.counts(), store.document_ids(), list(store.chunk_ids()))
    with pytest.raises(KnowledgeBaseError, match="'b' is already in"):
        store.apply([entry("c", "gamma", 3), entry("b", "beta again")])
    with pytest.raises(KnowledgeBaseError, match="not in .*'x'"):
        store.apply(delete=["a", "x"], missing_ok=False)
    with pytest.raises(KnowledgeBaseError, match="vectors of shape"):
        store.apply([Entry("d", "delta", {}, ["delta"], np.zeros((1, 3), np.float32))])
    with pytest.raises(RuntimeError, match="boom"):
        with store.write():
            store.insert(entry("e", "epsilon"))
            raise RuntimeError("boom")
    assert (store.counts(), store.document_ids(), list(store.chunk_ids())) == before
    with pytest.raises(RuntimeError, match="inside `with store.write"):
        store.insert(entry("f", "phi"))


def test_removed_text_is_gone_from_the_file(tmp_path):
    path = tmp_path / "store.sqlite"
    store = Store.open(path, IDENT)
    secret = "SECRET-" + "private note about the patient " * 40                # spills to an overflow page
    store.apply([entry("keep", "public text"), Entry("gone", secret, {"owner": "SECRET-OWNER"},
                                                     [secret[:500], secret[500:]], np.ones((2, 4), np.float32))])
    store.checkpoint()
    assert b"SECRET-" in path.read_bytes()
    store.apply(delete=["gone"])
    assert store.checkpoint()
    for file in tmp_path.iterdir():
        assert b"SECRET" not in file.read_bytes(), file.name
    assert store.get("keep").text == "public text"
    store.close()
    assert b"SECRET" not in path.read_bytes()


def test_another_embedder_is_refused_naming_both(tmp_path):
    Store.open(tmp_path / "s.sqlite", IDENT).close()
    for key, value in (("name", "other"), ("sha256", "cd" * 32), ("dim", 8)):
        with pytest.raises(EmbedderMismatch) as err:
            Store.open(tmp_path / "s.sqlite", {**IDENT, key: value})
        assert "hash-words" in str(err.value) and "ab" * 32 in str(err.value) and str(value) in str(err.value)


def test_files_that_are_not_stores_are_refused_untouched(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"hello, I am a text file" * 100)
    with pytest.raises(StoreError, match="not an SQLite database"):
        Store.open(bad, IDENT)
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    data = other.read_bytes()
    with pytest.raises(StoreError, match="not a knowledge base store .*no table chunks, documents, meta"):
        Store.open(other, IDENT)
    assert other.read_bytes() == data and sorted(p.name for p in tmp_path.iterdir()) == ["bad.sqlite", "other.sqlite"]
    with pytest.raises(StoreError, match="no knowledge base store"):
        Store.open(tmp_path / "missing.sqlite", IDENT, create=False)


def test_an_interrupted_creation_is_completed(tmp_path):
    path = tmp_path / "s.sqlite"
    conn = sqlite3.connect(path)                 # a database file with no table yet (killed before the schema)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    assert path.stat().st_size > 0
    with pytest.raises(StoreError, match="empty SQLite database"):
        Store.open(path, IDENT, create=False)
    store = Store.open(path, IDENT)
    assert store.counts()["generation"] == 0
    store.close()


def test_check_finds_inconsistencies(store):
    store.apply([entry("a", "alpha", 3)])
    assert store.check() == []
    store._conn.execute("DELETE FROM chunks WHERE position = 1")
    store._conn.execute("UPDATE meta SET value = '9' WHERE key = 'documents'")
    problems = store.check()
    assert any("meta counts 9 documents" in p for p in problems)
    assert any("document 'a': 2 chunks at positions up to 2" in p for p in problems)
