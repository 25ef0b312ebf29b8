"""Retrieval in the split system: the client's private local knowledge base and the base station's
public global one, with a micro model trained to read retrieved context (``context_tokens``) and
the tiny fixture BERT (tests/minilm_fixture.py) as the embedder.

The client's snippets never cross the link (every byte of the IQ stream and the control link is
recorded); the base station searches its base with the question's embedding; a missing query
costs the item its global context only; a malformed one is counted and dropped; ``--kb`` with a
model that takes no context is refused at start."""

from __future__ import annotations

import signal
import threading
from dataclasses import replace

import numpy as np
import pytest

from mtsc_sdr import tasks
from mtsc_sdr.runtime import protocol

PRIVATE = "the red circle belongs to zara."
PUBLIC = ["the blue square was made in oslo.", "the green triangle belongs to omar."]
QUESTIONS = ["who owns the red circle?", "whose is the red circle?", "who is the owner of the red circle?"]


@pytest.fixture(scope="module")
def rag_checkpoint(minilm_base, tmp_path_factory):
    """A micro model with retrieved context (16 tokens) and a query adapter fit for the fixture
    embedder (dimension 32), trained for 10 steps (a few seconds)."""
    from mtsc_sdr.train.config import TrainConfig
    from mtsc_sdr.train.trainer import train

    out = tmp_path_factory.mktemp("rag") / "ck"
    cfg = TrainConfig.from_dict({"preset": "micro", "model": {"context_tokens": 16, "query_adapter_dim": 32},
                                 "knowledge_fraction": 0.5,
                                 "tokenizer_scenes": 40, "examples_per_task": 16, "task_examples": {"vqa": 32},
                                 "steps": 10, "batch_size": 4, "checkpoint_dir": str(out), "num_threads": 1})
    with pytest.MonkeyPatch.context() as mp:
        for key, value in minilm_base.items():
            mp.setenv(key, value)
        train(cfg, quiet=True)
    return out


@pytest.fixture
def bases(tmp_path, minilm_env):
    """(local, global) knowledge base directories: the private document, the public ones."""
    from mtsc_sdr.rag import KnowledgeBase, SentenceEmbedder

    embedder = SentenceEmbedder()
    with KnowledgeBase.open(tmp_path / "local", embedder) as kb:
        kb.add([{"id": "private", "text": PRIVATE}])
    with KnowledgeBase.open(tmp_path / "global", embedder) as kb:
        kb.add([{"id": f"public-{i}", "text": t} for i, t in enumerate(PUBLIC)])
    return tmp_path / "local", tmp_path / "global"


def _serve(bs, stop: threading.Event):
    while not stop.is_set():
        bs.serve(stop_after_s=0.1)


def _question_items(n: int) -> list:
    from mtsc_sdr.data import examples

    return [replace(ex, question=q) for ex, q in zip(examples("val", ["vqa"], n_per_task=n, seed=11), QUESTIONS)]


def _run_split(checkpoint, local_dir, global_dir, items, session: int):
    """Base station (global base, served in a thread) and client (local base) in this process:
    the client's records, its counters and the base station's."""
    from mtsc_sdr.link import free_tcp_endpoint
    from mtsc_sdr.model import load
    from mtsc_sdr.rag import KnowledgeBase
    from mtsc_sdr.runtime.bs import BaseStation
    from mtsc_sdr.runtime.client import Client, ClientSettings

    model = load(checkpoint)
    iq = free_tcp_endpoint()
    bs = BaseStation(str(checkpoint), [iq], "tcp://127.0.0.1:*", knowledge=global_dir)
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(bs, stop), daemon=True)
    thread.start()
    local = KnowledgeBase.open(local_dir, create=False)
    client = None
    records: list[dict] = []
    try:
        client = Client(model.client.eval(), protocol.checkpoint_identity(str(checkpoint)), iq, bs.control.endpoint,
                        ClientSettings(session=session, snr_db=30.0, hello_timeout_s=30.0, item_timeout_s=10.0),
                        knowledge=local)
        counts = client.run(items, records.append)
    finally:
        stop.set()
        thread.join(timeout=10)
        if client is not None:
            client.close()
        local.close()
        summary = bs.summary()
        bs.close()
    return records, counts, summary


def test_private_knowledge_never_crosses_the_link(rag_checkpoint, bases, monkeypatch):
    """The client retrieves its private document and the base station its public ones, and no
    byte on the IQ stream or the control link (both ways) carries the private document: not as
    UTF-8, not as the token ids of the document or of its words the public side lacks."""
    from tests.runtime.helpers import record_wire
    from mtsc_sdr.model import load
    from mtsc_sdr.model.tokenizer import corpus

    wire = record_wire(monkeypatch)

    local_dir, global_dir = bases
    items = _question_items(3)
    records, counts, summary = _run_split(rag_checkpoint, local_dir, global_dir, items, session=9)

    assert len(records) == 3 and all("output" in r for r in records), records
    for r in records:                                      # the client retrieved its private document
        assert r["local_doc_ids"] == ["private"] and r["local_snippets"] == 1 and r["global_query"], r
        assert r["retrieval_ms"] >= 0.0
        assert "zara" not in str({k: v for k, v in r.items() if k != "output"})
    assert counts["knowledge_local_retrievals"] >= 3 and counts["knowledge_queries_sent"] >= 3
    bs = summary["bs"]                                     # the base station used its global base
    assert bs["knowledge_used"] >= 3 and bs["knowledge_hits"] >= 3 * len(PUBLIC) and not bs.get("knowledge_missing")
    assert summary["knowledge"]["documents"] == len(PUBLIC) and summary["knowledge"]["retrieval_ms_mean"] >= 0.0

    data = b"".join(wire)
    assert len(data) > 50_000 and any(b'"kind":"query"' in w for w in wire)
    tok = load(rag_checkpoint).tokenizer
    public = {w for text in [*PUBLIC, *corpus(n_scenes=60, n_audio=20, n_video=20)]
              for w in text.lower().replace(".", " ").replace("?", " ").replace(",", " ").split()}
    private_words = [w for w in PRIVATE.replace(".", " ").split() if w not in public]
    assert "zara" in private_words
    assert PRIVATE.encode() not in data and b"zara" not in data
    for text in [PRIVATE, *private_words]:
        ids = tok._ids(text)
        assert ids and tok.unk_id not in ids, text               # the model reads them: the words are its own
        for dtype in (np.int64, np.int32):
            assert np.asarray(ids, dtype).tobytes() not in data, (text, dtype)


def test_questions_search_both_bases_as_the_models_query_adapter_maps_them(rag_checkpoint, bases, monkeypatch):
    """The client queries with the question's embedding moved by the model's query adapter (fit
    for this embedder when the model was trained), and sends the base station that same vector."""
    from mtsc_sdr.model import load
    from mtsc_sdr.rag import SentenceEmbedder

    client = load(rag_checkpoint).client
    embedder = SentenceEmbedder()
    plain = embedder.embed([QUESTIONS[0]])                                   # (1, 32)
    mapped = client.retrieval_query(plain, embedder.sha256)
    assert float(client.query_adapter.abs().sum()) > 0 and not np.allclose(mapped, plain, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(mapped, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(client.retrieval_query(plain, "f" * 64), plain)   # fit for another embedder
    sent = []
    real = protocol.query_message
    monkeypatch.setattr(protocol, "query_message", lambda seq, v: (sent.append(np.array(v)), real(seq, v))[1])
    local_dir, global_dir = bases
    records, _, _ = _run_split(rag_checkpoint, local_dir, global_dir, _question_items(1), session=12)
    assert len(records) == 1 and len(sent) == 1
    np.testing.assert_allclose(sent[0], mapped[0], rtol=1e-5, atol=1e-6)


def test_an_item_whose_query_is_lost_is_decoded_without_global_knowledge(rag_checkpoint, bases, monkeypatch):
    from mtsc_sdr.runtime.client import Client

    send_query = Client._send_query
    lost: list[int] = []

    def lossy(self, item):
        if item.seq == 1:                          # the second item's query never arrives
            lost.append(item.seq)
            return
        send_query(self, item)

    monkeypatch.setattr(Client, "_send_query", lossy)
    local_dir, global_dir = bases
    records, counts, summary = _run_split(rag_checkpoint, local_dir, global_dir, _question_items(3), session=10)
    assert lost and len(records) == 3 and all("output" in r for r in records), records
    bs = summary["bs"]
    assert bs["knowledge_missing"] == len(lost) and bs["knowledge_used"] >= 2
    assert summary["knowledge"]["missing"] == len(lost)


def _frame(session: int, seq: int, rates, task: str = "vqa"):
    from mtsc_sdr.phy.header import FrameHeader
    from mtsc_sdr.phy.rx import Receiver
    from mtsc_sdr.phy.tx import Transmitter

    n = 3 * rates[1]
    payload = np.random.default_rng(seq).standard_normal(2 * n).astype(np.float32).view(np.complex64) * np.float32(0.7)
    x = np.concatenate([np.zeros(300, np.complex64),
                        Transmitter().build(payload, FrameHeader(session_id=session, seq=seq, payload_len=n, rate_idx=1,
                                                                 task_id=tasks.get(task).id)),
                        np.zeros(300, np.complex64)])
    (f,) = Receiver().process(x)
    return f


def test_base_station_counts_and_drops_malformed_queries_and_keeps_serving(rag_checkpoint, bases, minilm_env):
    from mtsc_sdr.link import MessageClient, free_tcp_endpoint
    from mtsc_sdr.rag import SentenceEmbedder
    from mtsc_sdr.rag.embedder import identity
    from mtsc_sdr.runtime.bs import BaseStation

    _, global_dir = bases
    bs = BaseStation(str(rag_checkpoint), [free_tcp_endpoint()], "tcp://127.0.0.1:*", knowledge=global_dir,
                     max_queries=3)
    client, stranger = MessageClient(bs.control.endpoint, session=42), MessageClient(bs.control.endpoint, session=43)
    embedder = SentenceEmbedder()
    try:
        dim = embedder.dim
        client.send(protocol.HELLO, meta={"checkpoint": bs.identity})
        bs._on_message(bs.control.recv(timeout_ms=5000))
        welcome = client.recv(timeout_ms=5000)
        assert welcome.kind == protocol.WELCOME
        assert protocol.same_embedder(welcome.meta["knowledge"], identity(embedder))

        unit = embedder.embed(["who owns the red circle?"])[0]
        good, meta = protocol.query_message(5, unit)
        bad = [({"embedding": unit}, meta),                                     # float32, not float16
               ({"embedding": good["embedding"][:-1]}, meta),                   # wrong dimension
               ({"embedding": np.stack([good["embedding"]] * 2)}, meta),        # wrong shape
               ({"embedding": np.full(dim, np.nan, np.float16)}, meta),         # not finite
               ({"embedding": np.zeros(dim, np.float16)}, meta),                # not normalized
               (good, {}),                                                      # no seq
               (good, {"seq": 1 << 16}),                                        # no frame seq
               ({**good, "extra": np.zeros(1, np.float16)}, meta)]              # another tensor
        for tensors, m in bad:
            client.send(protocol.QUERY, tensors, m)
            bs._on_message(bs.control.recv(timeout_ms=5000))
        stranger.send(protocol.QUERY, good, meta)                                # no hello from 43
        bs._on_message(bs.control.recv(timeout_ms=5000))
        assert bs.stats["knowledge_query_malformed"] == len(bad) and bs.stats["knowledge_query_unknown_session"] == 1
        assert not bs.queries

        rates = bs.server.cfg.rate_table
        bs._on_frame(_frame(42, 4, rates), 0.0, 0.0)                             # a question item, no query
        without = client.recv(timeout_ms=5000)
        assert without.kind == protocol.SEMANTICS and without.meta["seq"] == 4
        assert bs.stats["knowledge_missing"] == 1 and bs.stats["items"] == 1

        client.send(protocol.QUERY, good, {"seq": 4})                           # now with its query: read on
        bs._on_frame(_frame(42, 4, rates), 0.0, 0.0)                             # demand, before decoding
        with_knowledge = client.recv(timeout_ms=5000)
        assert bs.stats["knowledge_used"] == 1 and bs.stats["knowledge_hits"] == len(PUBLIC)
        assert not np.allclose(with_knowledge.tensors["semantics"], without.tensors["semantics"])

        bs._on_frame(_frame(42, 6, rates, task="caption_image"), 0.0, 0.0)      # no question: no query needed
        assert client.recv(timeout_ms=5000).meta["seq"] == 6 and bs.stats["knowledge_missing"] == 1

        for seq in (7, 8, 9):                                                    # at most 3 kept: the oldest go
            client.send(protocol.QUERY, *protocol.query_message(seq, unit))
            bs._on_message(bs.control.recv(timeout_ms=5000))
        assert list(bs.queries) == [(42, 7), (42, 8), (42, 9)] and bs.stats["knowledge_queries_evicted"] == 1
        client.send(protocol.BYE)
        bs._on_message(bs.control.recv(timeout_ms=5000))
        assert not bs.queries
        assert bs.summary()["knowledge"]["malformed"] == len(bad)
    finally:
        client.close(linger_ms=0)
        stranger.close(linger_ms=0)
        bs.close()


def test_kb_with_a_model_without_retrieved_context_is_refused_at_start(rag_checkpoint, bases, tmp_path, capsys):
    from mtsc_sdr.cli import main
    from mtsc_sdr.link import free_tcp_endpoint
    from mtsc_sdr.model import ModelConfig, TextTokenizer, build_model, load, save
    from mtsc_sdr.model.tokenizer import corpus
    from mtsc_sdr.rag import KnowledgeBaseError
    from mtsc_sdr.runtime.bs import BaseStation
    from mtsc_sdr.runtime.client import open_local_knowledge

    local_dir, global_dir = bases
    plain = tmp_path / "plain"
    save(build_model(ModelConfig.micro(), TextTokenizer.train(corpus(n_scenes=20, n_audio=5, n_video=5))), plain)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = main(["client", "--checkpoint", str(plain), "--kb", str(local_dir), "--tx", free_tcp_endpoint(),
                       "--control", free_tcp_endpoint(), "--split", "val", "--tasks", "vqa", "--n-per-task", "1",
                       "--precision", "fp32", "--session", "5"])
        assert status == 2 and "context_tokens 0" in capsys.readouterr().err
        status = main(["bs", "--checkpoint", str(plain), "--rx", free_tcp_endpoint(), "--control",
                       "tcp://127.0.0.1:*", "--kb", str(global_dir)])
        assert status == 2 and "context_tokens 0" in capsys.readouterr().err
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    with pytest.raises(ValueError, match="context_tokens"):
        BaseStation(str(plain), [free_tcp_endpoint()], "tcp://127.0.0.1:*", knowledge=global_dir)
    cfg = load(rag_checkpoint).cfg
    with pytest.raises(KnowledgeBaseError, match="no knowledge base"):        # create=False: nothing made
        open_local_knowledge(str(tmp_path / "missing"), cfg)
    assert not (tmp_path / "missing").exists()


def test_snippets_per_base_default_to_the_k_the_model_was_trained_with(rag_checkpoint):
    from dataclasses import replace

    from mtsc_sdr.model import load
    from mtsc_sdr.rag.augment import retrieval_k_of
    from mtsc_sdr.train.config import TrainConfig

    cfg = load(rag_checkpoint).cfg
    assert cfg.retrieval_k == TrainConfig().retrieval_k == 2             # recorded by the training run
    assert retrieval_k_of(cfg) == 2 and retrieval_k_of(replace(cfg, retrieval_k=3)) == 3
    assert retrieval_k_of(replace(cfg, retrieval_k=3), 1) == 1          # --retrieval-k overrides it
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="--retrieval-k"):
            retrieval_k_of(cfg, bad)


def test_send_passes_the_local_knowledge_base_to_its_client(rag_checkpoint, bases, tmp_path):
    import argparse

    from PIL import Image

    from mtsc_sdr.config import ConfigError
    from mtsc_sdr.runtime import send
    from mtsc_sdr.runtime.run import _client_argv

    local_dir, _ = bases
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(photo)
    p = argparse.ArgumentParser()
    send.add_arguments(p)
    argv = [str(photo), "--question", QUESTIONS[0], "--checkpoint", str(rag_checkpoint), "--out", str(tmp_path / "o")]
    cfg = send.send_config(p.parse_args([*argv, "--kb", str(local_dir)]))
    client = _client_argv(cfg, cfg.clients[0], str(rag_checkpoint), "tcp://127.0.0.1:1",
                          [("tcp://127.0.0.1:2", 3, 10.0)], tmp_path)
    assert client[client.index("--kb") + 1] == str(local_dir)
    assert "--kb" not in _client_argv(cfg, send.send_config(p.parse_args(argv)).clients[0], str(rag_checkpoint),
                                      "tcp://127.0.0.1:1", [("tcp://127.0.0.1:2", 3, 10.0)], tmp_path)
    with pytest.raises(ConfigError, match=r"clients\[0\]\.kb.*no knowledge base"):
        send.send_config(p.parse_args([*argv, "--kb", str(tmp_path / "missing")]))
