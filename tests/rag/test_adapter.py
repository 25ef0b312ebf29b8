"""The query adapter (mtsc_sdr.rag.adapter, mtsc_sdr.model.knowledge.adapted_query): the map it
applies, a fit that lifts the asked fact's document to the top for question phrasings it never
saw, the same matrix for the same seed, and the model applying it only for its own embedder."""

from __future__ import annotations

import numpy as np
import pytest

from mtsc_sdr.config import ConfigError
from mtsc_sdr.model import ModelConfig
from mtsc_sdr.model.knowledge import adapted_query
from mtsc_sdr.rag.adapter import fit_query_adapter
from tests.rag.test_loop import WordsEmbedder


class NamedWords(WordsEmbedder):
    """The bag-of-words embedder with the identity a knowledge base records."""

    name, sha256, dim, normalized = "words", "0" * 64, 256, True


def test_adapted_query_is_the_normalized_residual_map():
    v = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    np.testing.assert_array_equal(adapted_query(v, None), v)
    np.testing.assert_allclose(adapted_query(v, np.zeros((8, 8))), v, rtol=1e-6)
    a = np.random.default_rng(1).standard_normal((8, 8)).astype(np.float32)
    want = v + v @ a.T
    np.testing.assert_allclose(adapted_query(v, a), want / np.linalg.norm(want, axis=1, keepdims=True), rtol=1e-5)
    assert adapted_query(v, a).dtype == np.float32


@pytest.fixture(scope="module")
def packaged():
    from mtsc_sdr.rag.embedder import SentenceEmbedder

    return SentenceEmbedder()


def test_a_fit_ranks_the_asked_fact_first_for_held_out_phrasings(packaged):
    """With the packaged all-MiniLM-L6-v2: the asked fact's document, worded unlike its neighbours,
    is the top hit far more often for question phrasings the fit never saw."""
    adapter, report = fit_query_adapter(packaged, steps=300, seed=1)
    assert adapter.shape == (384, 384) and adapter.dtype == np.float32
    held_out = report["top1_reworded_pct"]["held_out"]
    assert held_out["after"] >= 95.0 and held_out["after"] >= held_out["before"] + 10.0, report
    assert report["embedder"]["sha256"] == packaged.sha256 and report["steps"] == 300


def test_the_same_seed_fits_the_same_matrix():
    a, report = fit_query_adapter(NamedWords(), steps=20, seed=4)
    b, _ = fit_query_adapter(NamedWords(), steps=20, seed=4)
    c, _ = fit_query_adapter(NamedWords(), steps=20, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and report["embedder"]["name"] == "words"


def test_query_adapter_needs_retrieval_inputs():
    with pytest.raises(ConfigError, match="query_adapter_dim"):
        ModelConfig.from_dict({"query_adapter_dim": 16})
    ModelConfig.from_dict({"query_adapter_dim": 16, "context_tokens": 8})


def test_training_names_the_field_when_the_adapter_does_not_fit_the_embedder():
    from mtsc_sdr.train.trainer import with_adapter_embedder

    with pytest.raises(ConfigError, match="model.query_adapter_dim.*384"):
        with_adapter_embedder(ModelConfig.from_dict({"context_tokens": 8, "query_adapter_dim": 16}))
    fitted = with_adapter_embedder(ModelConfig.from_dict({"context_tokens": 8, "query_adapter_dim": 384}))
    assert len(fitted.query_adapter_embedder) == 64
    plain = ModelConfig.from_dict({"context_tokens": 8})
    assert with_adapter_embedder(plain) is plain
