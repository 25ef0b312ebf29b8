"""The knowledge base (:mod:`mtsc_sdr.rag.kb`) with the deterministic hash embedder
(tests/rag/fakes.py): adding, replacing, removing, querying with filters, validation that loses
nothing, an index rebuilt from the store, writers serialized across threads and processes, and a
store that stays whole when its writer is killed at random moments."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mtsc_sdr.rag import Document, EmbedderMismatch, KnowledgeBase, KnowledgeBaseError, LockTimeout, StoreError
from mtsc_sdr.rag.kb import CHUNK_OVERLAP, CHUNK_WORDS, MAX_TEXT_BYTES, as_documents, chunk_text
from mtsc_sdr.rag.store import Store
from tests.rag.fakes import HashEmbedder, parse_version, versioned_text

ROOT = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


@pytest.fixture
def kb(tmp_path):
    with KnowledgeBase.open(tmp_path / "kb", HashEmbedder()) as base:
        yield base


SCENES = [
    {"id": "s1", "text": "A red circle is left of a blue square.", "metadata": {"scene": 1, "room": "lab"}},
    {"id": "s2", "text": "The dog barks at the yellow car.", "metadata": {"scene": 2, "room": "street"}},
    {"id": "s3", "text": "A green triangle sits above the red circle.", "metadata": {"scene": 3, "room": "lab"}},
]


# -- chunking and validation ---------------------------------------------------------------------

def test_chunks_are_word_windows_that_overlap():
    assert chunk_text("  a short one \n") == ["a short one"]
    words = [f"w{i}" for i in range(250)]
    chunks = chunk_text(" ".join(words))
    step = CHUNK_WORDS - CHUNK_OVERLAP
    assert [c.split()[0] for c in chunks] == [f"w{i}" for i in range(0, 250 - CHUNK_OVERLAP, step)]
    assert all(len(c.split()) <= CHUNK_WORDS for c in chunks) and chunks[-1].split()[-1] == "w249"
    assert chunks[0].split()[-CHUNK_OVERLAP:] == chunks[1].split()[:CHUNK_OVERLAP]
    assert chunk_text(" ".join(words[:CHUNK_WORDS])) == [" ".join(words[:CHUNK_WORDS])]


@pytest.mark.parametrize("docs, message", [
    ([{"id": "a", "text": ""}], "empty"),
    ([{"id": "a", "text": " \n\t "}], "empty"),
    ([{"id": "a", "text": "x" * (MAX_TEXT_BYTES + 1)}], "exceeds the limit"),
    ([{"id": 7, "text": "seven"}], "non-empty string"),
    ([{"id": "", "text": "nothing"}], "non-empty string"),
    ([{"id": "a", "text": "one"}, {"id": "a", "text": "two"}], "more than once"),
    ([{"id": "a", "text": "t", "metadata": ["not", "a", "dict"]}], "metadata must be a dict"),
    ([{"id": "a", "text": "t", "metadata": {"x": float("nan")}}], "JSON"),
    ([{"id": "a", "text": "t", "meta": {}}], "unknown keys"),
    ([{"id": "a", "text": b"bytes"}], "must be a string"),
    ("just a string", "expected documents"),
])
def test_bad_documents_are_refused_and_nothing_stored_is_lost(kb, docs, message):
    kb.add(SCENES)
    before = kb.stats()
    with pytest.raises(KnowledgeBaseError, match=message):
        kb.add([{"id": "ok", "text": "a fine document"}, *docs] if isinstance(docs, list) else docs)
    with pytest.raises(KnowledgeBaseError, match=message):
        kb.upsert(docs)
    after = kb.stats()
    assert (after["documents"], after["chunks"], after["generation"]) == \
        (before["documents"], before["chunks"], before["generation"])
    assert "ok" not in kb and kb.get("s1").text == SCENES[0]["text"]


def test_documents_as_dataclasses_or_mappings():
    docs = as_documents([Document("a", "one"), {"id": "b", "text": "two", "metadata": {"k": (1, 2)}}])
    assert docs == [Document("a", "one", {}), Document("b", "two", {"k": [1, 2]})]
    assert as_documents({"id": "c", "text": "three"}) == [Document("c", "three", {})]


# -- add / upsert / remove / query ---------------------------------------------------------------

def test_add_query_get(kb):
    assert kb.add(SCENES) == 3
    hits = kb.query("where is the red circle", k=2)
    assert [h.doc_id for h in hits][0] in ("s1", "s3") and len(hits) == 2
    assert hits[0].score >= hits[1].score and -1.0 <= hits[1].score <= hits[0].score <= 1.0 + 1e-6
    assert hits[0].metadata["room"] == "lab" and hits[0].position == 0
    doc = kb.get("s2")
    assert doc.text == SCENES[1]["text"] and doc.metadata == {"scene": 2, "room": "street"} and doc.chunks == [doc.text]
    assert kb.get("nope") is None and len(kb) == 3
    many = kb.query(["dog barks", "green triangle"], k=1)
    assert [h[0].doc_id for h in many] == ["s2", "s3"]
    assert kb.query("dog", k=10)[0].doc_id == "s2" and len(kb.query("dog", k=10)) == 3


def test_adding_a_stored_id_is_refused_unless_upsert(kb):
    kb.add(SCENES)
    with pytest.raises(KnowledgeBaseError, match="already in .* 's2'.*upsert"):
        kb.add([{"id": "new", "text": "new text"}, {"id": "s2", "text": "another dog"}])
    assert "new" not in kb and kb.get("s2").text == SCENES[1]["text"]


def test_upsert_replaces_text_vectors_and_metadata(kb):
    kb.add(SCENES)
    vectors = kb.stats()["index"]["vectors"]
    assert kb.upsert({"id": "s2", "text": "A purple hexagon spins slowly.", "metadata": {"scene": 9}}) == 1
    assert kb.stats()["index"]["vectors"] == vectors            # old vectors gone, new ones in
    assert kb.stats()["documents"] == 3
    assert kb.query("dog barks yellow car", k=3, where={"scene": 2}) == []
    hit = kb.query("purple hexagon", k=1)[0]
    assert (hit.doc_id, hit.text, hit.metadata) == ("s2", "A purple hexagon spins slowly.", {"scene": 9})
    texts = {h.text for h in kb.query("the dog barks at the yellow car", k=3)}
    assert SCENES[1]["text"] not in texts
    assert kb.check() == []


def test_upsert_of_a_long_document_replaces_every_chunk(kb):
    long_text = " ".join(f"alpha{i}" for i in range(330))
    kb.add({"id": "long", "text": long_text})
    assert kb.stats()["chunks"] == len(chunk_text(long_text)) == 4
    kb.upsert({"id": "long", "text": "now it is short"})
    assert kb.stats()["chunks"] == 1 and kb.stats()["index"]["vectors"] == 1
    assert [h.text for h in kb.query("alpha5 alpha6", k=5)] == ["now it is short"]


def test_hits_are_per_document_best_chunk(kb):
    kb.add([{"id": "long", "text": " ".join(["filler"] * 150 + ["zebra", "stripes"] + ["filler"] * 150)},
            {"id": "other", "text": "zebra crossing"}])
    hits = kb.query("zebra stripes", k=5)
    assert sorted(h.doc_id for h in hits) == ["long", "other"]
    best = next(h for h in hits if h.doc_id == "long")
    assert "zebra stripes" in best.text and best.position in (1, 2)


def test_remove(kb):
    kb.add(SCENES)
    assert kb.remove(["s1", "s3"]) == 2
    assert "s1" not in kb and [h.doc_id for h in kb.query("red circle", k=5)] == ["s2"]
    assert kb.stats()["index"]["vectors"] == 1
    with pytest.raises(KnowledgeBaseError, match="not in .*'s1'.*nothing was removed"):
        kb.remove(["s2", "s1"])
    assert "s2" in kb
    assert kb.remove(["s1", "s2"], missing_ok=True) == 1 and len(kb) == 0
    assert kb.query("anything", k=3) == []
    with pytest.raises(KnowledgeBaseError, match="more than once"):
        kb.remove(["x", "x"])
    with pytest.raises(KnowledgeBaseError, match="non-empty string"):
        kb.remove([3])


def test_removed_text_leaves_no_trace_in_the_directory(tmp_path):
    path = tmp_path / "kb"
    secret = "PRIVATE-MEMO " + "the patient in room twelve " * 50
    with KnowledgeBase.open(path, HashEmbedder()) as base:
        base.add([{"id": "memo", "text": secret, "metadata": {"who": "PRIVATE-NAME"}}, SCENES[0]])
        base.upsert({"id": "s1", "text": "PRIVATE-OLD replaced below"})
        base.upsert({"id": "s1", "text": "a public text"})
        base.remove("memo")                                     # checkpoints the WAL itself
        for file in path.iterdir():
            assert b"PRIVATE" not in file.read_bytes(), file.name
    for file in path.iterdir():
        assert b"PRIVATE" not in file.read_bytes(), file.name


def test_where_filter_searches_further_until_k_documents_match(kb):
    docs = [{"id": f"d{i}", "text": f"red circle number {i}", "metadata": {"group": "common"}} for i in range(60)]
    docs += [{"id": "rare", "text": "a lonely blue square far away", "metadata": {"group": "rare", "n": 1}}]
    kb.add(docs)
    hits = kb.query("red circle", k=3, where={"group": "rare"})
    assert [h.doc_id for h in hits] == ["rare"]                  # found beyond the first 16 chunks, then exhausted
    assert [h.doc_id for h in kb.query("red circle", k=2, where={"group": "rare", "n": 1})] == ["rare"]
    assert kb.query("red circle", k=2, where={"group": "rare", "n": 2}) == []
    assert len(kb.query("red circle", k=40, where={"group": "common"})) == 40
    assert kb.query("red circle", k=3, where={"missing-key": None}) == []


def test_query_input_is_checked(kb):
    for bad in ("", ["ok", "  "], [3]):
        with pytest.raises(KnowledgeBaseError, match="non-empty strings"):
            kb.query(bad)
    with pytest.raises(KnowledgeBaseError, match="positive integer"):
        kb.query("x", k=0)
    with pytest.raises(KnowledgeBaseError, match="where"):
        kb.query("x", where=["a"])


def test_query_vectors_is_query_for_embedded_texts(kb):
    kb.add(SCENES)
    texts = ["where is the red circle", "dog barks", "green triangle"]
    calls = kb.embedder.calls
    vectors = kb.embedder.embed(texts)                               # (3, dim) float32
    by_vector = kb.query_vectors(vectors, k=2)
    assert kb.embedder.calls == calls + 1                            # the base embedded nothing itself
    assert [[h.to_dict() for h in hits] for hits in by_vector] == \
        [[h.to_dict() for h in hits] for hits in kb.query(texts, k=2)]
    assert [h.doc_id for h in kb.query_vectors(vectors, k=3, where={"room": "street"})[0]] == ["s2"]
    half = kb.query_vectors(vectors.astype(np.float16), k=1)        # a float16 vector off the wire
    assert [h[0].doc_id for h in half] == [h[0].doc_id for h in by_vector]
    assert kb.query_vectors(np.zeros((0, kb.embedder.dim), np.float32)) == []
    for bad in (vectors[0], vectors[:, :-1], vectors.astype(np.int32), np.full_like(vectors, np.nan)):
        with pytest.raises(KnowledgeBaseError, match="query_vectors"):
            kb.query_vectors(bad)
    with pytest.raises(KnowledgeBaseError, match="positive integer"):
        kb.query_vectors(vectors, k=0)


def test_stats_and_reopen_keeps_everything(tmp_path):
    path = tmp_path / "kb"
    with KnowledgeBase.open(path, HashEmbedder()) as base:
        base.add(SCENES)
        base.remove("s2")
    assert sorted(p.name for p in path.iterdir()) == ["index.faiss", "index.json", "lock", "store.sqlite"]
    with KnowledgeBase.open(path, HashEmbedder(), create=False) as base:
        stats = base.stats()
        assert (stats["documents"], stats["chunks"], stats["generation"]) == (2, 2, 2)
        assert stats["embedder"]["name"] == "hash-words" and stats["embedder"]["dim"] == 32
        assert stats["index"] == {"kind": "flat", "vectors": 2, "tombstones": 0, "generation": 2,
                                  "saved_generation": 2}                     # loaded, not rebuilt
        assert [h.doc_id for h in base.query("red circle", k=5)] == ["s1", "s3"] or \
            [h.doc_id for h in base.query("red circle", k=5)] == ["s3", "s1"]


def test_open_refuses_what_is_not_there_or_not_a_directory(tmp_path):
    with pytest.raises(KnowledgeBaseError, match="no knowledge base at"):
        KnowledgeBase.open(tmp_path / "none", HashEmbedder(), create=False)
    assert not (tmp_path / "none").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(KnowledgeBaseError, match="not a directory"):
        KnowledgeBase.open(tmp_path / "file", HashEmbedder())
    with pytest.raises(KnowledgeBaseError, match="index kind"):
        KnowledgeBase.open(tmp_path / "kb", HashEmbedder(), index="ivf")


def test_another_embedder_is_refused(tmp_path):
    with KnowledgeBase.open(tmp_path / "kb", HashEmbedder()) as base:
        base.add(SCENES)
    for other in (HashEmbedder(dim=16), HashEmbedder(name="other-model"), HashEmbedder(salt="retrained")):
        with pytest.raises(EmbedderMismatch, match=r"built with embedder hash-words .* cannot be used with") as err:
            KnowledgeBase.open(tmp_path / "kb", other)
        assert other.sha256 in str(err.value) and other.name in str(err.value)
    with KnowledgeBase.open(tmp_path / "kb", HashEmbedder()) as base:
        assert len(base) == 3


def test_embedder_output_is_checked(kb):
    class Broken(HashEmbedder):
        def embed(self, texts):
            return np.full((len(texts), self.dim), np.nan, np.float32)

    kb.embedder = Broken()
    with pytest.raises(KnowledgeBaseError, match="returned"):
        kb.add(SCENES)
    assert len(kb) == 0


def test_closed_knowledge_base_refuses_use(tmp_path):
    base = KnowledgeBase.open(tmp_path / "kb", HashEmbedder())
    base.close()
    base.close()
    with pytest.raises(KnowledgeBaseError, match="closed"):
        base.query("x")


# -- the index is a cache ------------------------------------------------------------------------

def test_corrupt_or_stale_index_is_rebuilt_with_a_log_line(tmp_path, caplog):
    path = tmp_path / "kb"
    with KnowledgeBase.open(path, HashEmbedder()) as base:
        base.add(SCENES)
    good = (path / "index.faiss").read_bytes()
    for damage in (b"not faiss at all", good[: len(good) // 2], good[:-8] + b"\x00" * 8):
        (path / "index.faiss").write_bytes(damage)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="mtsc_sdr.rag"):
            with KnowledgeBase.open(path, HashEmbedder()) as base:
                assert {h.doc_id for h in base.query("red circle", k=3)} == {"s1", "s2", "s3"}
                assert base.check() == []
        assert any("corrupt" in r.getMessage() and "rebuilding" in r.getMessage() and r.levelno == logging.WARNING
                   for r in caplog.records), caplog.text
        assert (path / "index.faiss").read_bytes() == good                 # rebuilt and saved again
    (path / "index.json").write_text("{ not json")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mtsc_sdr.rag"):
        KnowledgeBase.open(path, HashEmbedder()).close()
    assert "unreadable" in caplog.text and json.loads((path / "index.json").read_text())["generation"] == 1
    # stale: the store moved on while the index file stayed behind (a writer that was killed)
    stale = (path / "index.faiss").read_bytes(), (path / "index.json").read_bytes()
    with KnowledgeBase.open(path, HashEmbedder()) as base:
        base.add({"id": "s4", "text": "a black star"})
    (path / "index.faiss").write_bytes(stale[0])
    (path / "index.json").write_bytes(stale[1])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mtsc_sdr.rag"):
        with KnowledgeBase.open(path, HashEmbedder()) as base:
            assert base.query("black star", k=1)[0].doc_id == "s4"
    assert "stale (generation 1, store at 2)" in caplog.text
    (path / "index.faiss").unlink()
    with KnowledgeBase.open(path, HashEmbedder()) as base:
        assert base.stats()["index"]["vectors"] == 4


def test_corrupt_store_is_refused_and_nothing_else_is_touched(tmp_path):
    path = tmp_path / "kb"
    with KnowledgeBase.open(path, HashEmbedder()) as base:
        base.add(SCENES)
    store = path / "store.sqlite"
    good = store.read_bytes()
    damages = {"garbage": os.urandom(len(good)),
               "pages": good[:4096] + os.urandom(len(good) - 4096),          # header whole, schema destroyed
               "truncated": good[:100]}
    for name, damage in damages.items():
        store.write_bytes(damage)
        before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in path.iterdir()}
        with pytest.raises(StoreError, match=str(store)):
            KnowledgeBase.open(path, HashEmbedder())
        after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in path.iterdir()}
        assert after == before, name
    store.write_bytes(good)
    with KnowledgeBase.open(path, HashEmbedder()) as base:
        assert len(base) == 3


def test_hnsw_index(tmp_path):
    path = tmp_path / "kb"
    docs = [{"id": f"d{i}", "text": f"shape {i} colour {i % 7} size {i % 5} item{i}"} for i in range(300)]
    with KnowledgeBase.open(path, HashEmbedder(), index="hnsw") as base:
        base.add(docs)
        assert base.query("item17 shape 17", k=1)[0].doc_id == "d17"
        base.remove([f"d{i}" for i in range(0, 300, 2)])
        assert base.stats()["index"]["vectors"] == 150
        assert all(int(h.doc_id[1:]) % 2 for h in base.query("shape colour size", k=20))
        base.upsert({"id": "d17", "text": "replaced entirely"})
        assert base.query("replaced entirely", k=1)[0].text == "replaced entirely"
    with KnowledgeBase.open(path, HashEmbedder()) as base:                  # the saved kind is kept
        assert base.stats()["index"]["kind"] == "hnsw" and base.check() == []
        assert base.query("item17 shape 17", k=3)[0].doc_id != "d16"
        base.rebuild("flat")
        assert base.stats()["index"]["kind"] == "flat"
    with KnowledgeBase.open(path, HashEmbedder()) as base:
        assert base.stats()["index"]["kind"] == "flat" and base.stats()["index"]["saved_generation"] is not None


# -- several writers and readers -----------------------------------------------------------------

def test_a_second_object_sees_committed_writes(tmp_path):
    path = tmp_path / "kb"
    with KnowledgeBase.open(path, HashEmbedder()) as a, KnowledgeBase.open(path, HashEmbedder()) as b:
        a.add(SCENES)
        assert b.query("dog barks", k=1)[0].doc_id == "s2"              # b catches up by id diff
        b.upsert({"id": "s2", "text": "a silent cat"})
        b.remove("s1")
        assert [h.text for h in a.query("dog barks silent cat", k=5)] == ["a silent cat", SCENES[2]["text"]] or \
            {h.doc_id for h in a.query("dog barks silent cat", k=5)} == {"s2", "s3"}
        assert a.get("s2").text == "a silent cat" and "s1" not in a
        a.add({"id": "s5", "text": "green"})                           # a's index was behind: synced, then written
        assert a.check() == [] and b.check() == []
        assert a.stats()["index"]["vectors"] == b.stats()["index"]["vectors"] == 3


def test_threads_write_and_read_concurrently(kb):
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(8):
                kb.add({"id": f"t{t}-{i}", "text": f"thread {t} document {i} words"})
                kb.query(f"thread {t}", k=3)
        except BaseException as exc:                # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(kb) == 32 and kb.stats()["generation"] == 32 and kb.check() == []


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_writers_in_other_processes_are_waited_for(tmp_path):
    path = tmp_path / "kb"
    with KnowledgeBase.open(path, HashEmbedder(), lock_timeout_s=0.3) as base:
        base.add(SCENES[:1])
        holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path / "lock"), "30"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            t0 = time.monotonic()
            with pytest.raises(LockTimeout, match="another process kept the write lock"):
                base.add(SCENES[1:])
            assert 0.25 < time.monotonic() - t0 < 5
            assert len(base) == 1 and base.query("dog", k=3)[0].doc_id == "s1"    # readers are not blocked
        finally:
            holder.kill()
            holder.wait()
        base.add(SCENES[1:])
        assert len(base) == 3
    # a writer that holds the lock briefly is waited for
    with KnowledgeBase.open(path, HashEmbedder(), lock_timeout_s=20) as base:
        holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path / "lock"), "0.5"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            t0 = time.monotonic()
            base.add({"id": "late", "text": "waited for the lock"})
            assert time.monotonic() - t0 > 0.2 and "late" in base
        finally:
            holder.wait()


CONCURRENT_WRITER = """
import sys
from mtsc_sdr.rag import KnowledgeBase
from tests.rag.fakes import HashEmbedder
with KnowledgeBase.open(sys.argv[1], HashEmbedder()) as kb:
    for i in range(10):
        kb.add([{"id": f"{sys.argv[2]}-{i}-{j}", "text": f"process {sys.argv[2]} batch {i} doc {j}"} for j in range(3)])
        kb.query("process batch", k=2)
"""


@pytest.mark.slow
def test_processes_write_concurrently(tmp_path):
    path = tmp_path / "kb"
    KnowledgeBase.open(path, HashEmbedder()).close()
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, str(path), name], cwd=ROOT, env=child_env(),
                              stderr=subprocess.PIPE, text=True) for name in ("p", "q")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with KnowledgeBase.open(path, HashEmbedder()) as base:
        assert len(base) == 60 and base.stats()["generation"] == 20 and base.check() == []


# -- killed writers ------------------------------------------------------------------------------

CRASHING_WRITER = """
import random, sys
from mtsc_sdr.rag import KnowledgeBase
from tests.rag.fakes import HashEmbedder, versioned_text
path, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
kb = KnowledgeBase.open(path, HashEmbedder())
print("ready", flush=True)
n = 0
while True:
    n += 1
    version = seed * 100000 + n
    ids = list(dict.fromkeys(f"d{rng.randrange(30)}" for _ in range(rng.randint(1, 6))))
    op = rng.random()
    if op < 0.55:
        kb.upsert([{"id": i, "text": versioned_text(i, version + j), "metadata": {"version": version + j}}
                   for j, i in enumerate(ids)])
    elif op < 0.85:
        kb.remove(ids, missing_ok=True)
    elif op < 0.97:
        fresh = [i for i in ids if i not in kb]
        kb.add([{"id": i, "text": versioned_text(i, version + j), "metadata": {"version": version + j}}
                for j, i in enumerate(fresh)])
    else:
        kb.rebuild()
"""


def check_every_document_is_whole(path: Path, embedder: HashEmbedder) -> tuple[int, int]:
    """Each stored document is one the writer wrote, whole: its text, metadata, chunks and
    embeddings agree. Returns (documents, generation)."""
    from mtsc_sdr.rag.embedder import identity

    store = Store.open(path / "store.sqlite", identity(embedder), create=False)
    try:
        assert store.check() == []
        for doc_id in store.document_ids():
            doc = store.get(doc_id)
            got_id, version = parse_version(doc.text)
            assert got_id == doc_id and doc.text == versioned_text(doc_id, version)
            assert doc.metadata == {"version": version}
            assert doc.chunks == chunk_text(doc.text)
        ids = store.chunk_ids()
        rows = store.chunk_rows(ids)
        texts = [rows[int(i)][2] for i in ids]
        np.testing.assert_array_equal(store.embeddings(ids), embedder.embed(texts))
        counts = store.counts()
        assert counts["documents"] == len(store.document_ids()) and counts["chunks"] == len(ids)
        return counts["documents"], counts["generation"]
    finally:
        store.close()


@pytest.mark.slow
def test_writer_killed_at_random_moments_leaves_whole_documents(tmp_path):
    path = tmp_path / "kb"
    embedder = HashEmbedder()
    rng = random.Random(1234)
    generation, seen_documents, t_end = 0, set(), time.monotonic() + 35
    iterations = 0
    for seed in range(1, 26):
        if time.monotonic() > t_end and iterations >= 15:
            break
        child = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER, str(path), str(seed)], cwd=ROOT,
                                 env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = child.stdout.readline().strip()
            assert line == "ready", child.stderr.read()
            time.sleep(rng.uniform(0.0, 0.5))
            assert child.poll() is None, child.stderr.read()             # still writing: no error
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
            child.stderr.close()
        iterations += 1
        documents, new_generation = check_every_document_is_whole(path, embedder)
        assert new_generation >= generation                             # committed writes are never lost
        generation = new_generation
        seen_documents.add(documents)
        with KnowledgeBase.open(path, embedder) as base:                # index rebuilt (stale or missing)
            assert base.check() == []
            assert np.array_equal(base._index.ids(), base._store.chunk_ids())
            assert base.stats()["index"]["generation"] == generation
    assert generation > 5 * iterations, f"{iterations} kills, {generation} writes: the kills proved little"
    assert len(seen_documents) > 1
