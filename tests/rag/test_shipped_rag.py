"""The shipped retrieval-augmented model (models/rag) reads its knowledge bases: it says it does
not know without documents, answers from a document added to either base the very next query,
follows the local base when the two disagree (the documented precedence rule), and forgets a
removed fact. A few validation items at 20 dB; floors far below the model card's figures, far
above what a model ignoring its context scores (about 0 %: it would answer "unknown" or guess
one of 16-24 values). Measured on these items with the release of stage 4 (shuffled wording):
100 % "unknown" with empty bases, 91.7 % from the global base, 87.5 % following the local base
against the global one, 100 % "unknown" after the removal (stage 2, when the floor was set:
100 / 91.7 / 95.8 / 100 %)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from mtsc_sdr.model.checkpoint import SHIPPED_MODELS

RAG = SHIPPED_MODELS / "rag"
ITEMS = 24
FLOOR = 60.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from mtsc_sdr.data import SyntheticWorld
    from mtsc_sdr.data.knowledge import Facts, knowledge_example, other_value
    from mtsc_sdr.model import load
    from mtsc_sdr.rag import KnowledgeBase, SentenceEmbedder

    model = load(RAG).eval()
    rng = np.random.default_rng(4)
    world = SyntheticWorld()
    items = [knowledge_example(world.scene("val", i), rng) for i in range(ITEMS)]
    state = Facts(np.random.default_rng(8))
    changed = {k: other_value(k.split("/")[0], v, rng) for k, v in state.values.items()}
    emb = SentenceEmbedder()
    root = tmp_path_factory.mktemp("kb")
    local, glob = KnowledgeBase.open(root / "local", emb), KnowledgeBase.open(root / "global", emb)
    yield model, items, state, changed, local, glob
    local.close()
    glob.close()


def _answers(model, items, local, glob):
    from mtsc_sdr.data import collate
    from mtsc_sdr.rag.augment import with_context

    batch = collate(with_context(items, local, glob, k=2))
    return model.predict(batch, "vqa", 20.0, fading=None, generator=torch.Generator().manual_seed(0))


def _accuracy(answers, truth):
    return 100.0 * np.mean([a == t for a, t in zip(answers, truth)])


def _doc(state, key, value):
    return {"id": key, "text": replace(state.fact(key), value=value).text()}


def test_the_rag_release_answers_from_its_knowledge_bases(setup):
    from mtsc_sdr.data.knowledge import UNKNOWN

    model, items, state, changed, local, glob = setup
    truth = [state.values[e.fact] for e in items]
    assert _accuracy(_answers(model, items, None, None), [UNKNOWN] * len(items)) >= FLOOR
    glob.add([_doc(state, k, v) for k, v in state.values.items()])
    assert _accuracy(_answers(model, items, None, glob), truth) >= FLOOR
    local.add([_doc(state, k, changed[k]) for k in state.values])      # the bases now disagree
    assert _accuracy(_answers(model, items, local, glob), [changed[e.fact] for e in items]) >= FLOOR
    local.remove(list(state.values))
    glob.remove(list(state.values))
    assert _accuracy(_answers(model, items, local, glob), [UNKNOWN] * len(items)) >= FLOOR   # forgotten
