"""Retrieval in the training loop (mtsc_sdr.rag.loop), with a deterministic bag-of-words embedder."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mtsc_sdr.data import SyntheticWorld, examples
from mtsc_sdr.data import knowledge as kn
from mtsc_sdr.rag.loop import RetrievalLoop, answer_from, value_in


class WordsEmbedder:
    """Bag of hashed words, normalized: texts sharing words are close."""

    def __init__(self):
        self.calls = 0

    def embed(self, texts):
        self.calls += len(texts)
        out = np.zeros((len(texts), 256), np.float32)
        for i, t in enumerate(texts):
            for w in t.replace("?", " ").replace(".", " ").split():
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 256] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def loop():
    return RetrievalLoop(WordsEmbedder(), k=2)


def _knowledge(n, seed=0):
    world, rng = SyntheticWorld(), np.random.default_rng(seed)
    return [kn.knowledge_example(world.scene("train", i), rng) for i in range(n)]


def test_targets_follow_what_was_retrieved_with_the_local_base_first(loop):
    out = loop.attach(_knowledge(300), np.random.default_rng(1))
    for e in out:
        found = [s for s in e.local_context.rstrip(".").split(". ") + e.global_context.rstrip(".").split(". ")
                 if s and f"{e.fact.split('/')[1].replace('-', ' ')}" in s
                 and (("belongs" in s or "owns" in s) == (e.fact.startswith("owner")))]
        if not found:
            assert e.references == [kn.UNKNOWN]
        else:
            assert e.references[0] == value_in(e.fact, found[0] + "."), (e.local_context, e.global_context)
    answers = [e.references[0] for e in out]
    unknown = np.mean([a == kn.UNKNOWN for a in answers])
    assert 0.05 < unknown < 0.5          # missing context is trained, but not most of the time
    assert len(set(answers)) > 20        # values vary: nothing to memorise


def test_conflicting_bases_are_answered_by_the_local_one():
    local = [("owner/red-circle", "the red circle belongs to alice.")]
    glob = [("owner/red-circle", "bob owns the red circle.")]
    assert answer_from("owner/red-circle", local, glob) == "alice"
    assert answer_from("owner/red-circle", [], glob) == "bob"
    assert answer_from("owner/red-circle", [("origin/red-circle", "the red circle was made in rome.")], []) is None


def test_ordinary_questions_keep_their_answers_and_get_distractors(loop):
    items = examples("train", ["vqa"], 40, seed=3)
    out = loop.attach(items, np.random.default_rng(2))
    assert [e.references for e in out] == [e.references for e in items]
    assert sum(bool(e.local_context or e.global_context) for e in out) > 20


def test_the_same_rng_gives_the_same_contexts_and_embeddings_are_cached():
    emb = WordsEmbedder()
    loop = RetrievalLoop(emb, k=2)
    first = emb.calls
    items = _knowledge(50)
    a = loop.attach(items, np.random.default_rng(7))
    b = loop.attach(items, np.random.default_rng(7))
    assert a == b
    assert emb.calls - first <= 2 * len({e.question for e in items})   # documents were embedded up front


def test_items_without_a_question_are_left_alone(loop):
    items = examples("train", ["caption_image"], 5)
    assert loop.attach(items, np.random.default_rng(0)) == items


def _sentences(context):
    """The sentences of a context, each as its sorted words."""
    return [sorted(s.split()) for s in context.split(".") if s.strip()]


def test_shuffled_wording_keeps_the_words_and_the_answer_and_never_spells_a_held_out_phrasing():
    items = _knowledge(300)
    # the same draws as shuffle=0.5 (one per item for the shuffles), all but never shuffled
    plain = RetrievalLoop(WordsEmbedder(), k=2, shuffle=1e-12).attach(items, np.random.default_rng(4))
    mixed = RetrievalLoop(WordsEmbedder(), k=2, shuffle=0.5).attach(items, np.random.default_rng(4))
    held_out = {kn.question(r, c, s, "held_out", i) for r in kn.RELATIONS for c, s in kn.subjects() for i in range(2)}
    changed = 0
    for p, m in zip(plain, mixed):
        assert m.references == p.references          # retrieval and target are the sentence's, not the shuffle's
        assert sorted(m.question[:-1].split()) == sorted(p.question[:-1].split()) and m.question.endswith("?")
        for a, b in zip(_sentences(p.local_context) + _sentences(p.global_context),
                        _sentences(m.local_context) + _sentences(m.global_context)):
            assert a == b
        assert m.question not in held_out
        changed += m.question != p.question
    assert 0.3 < changed / len(items) < 0.6          # about half, the rest as written


def test_shuffle_must_be_a_probability():
    with pytest.raises(ValueError, match="shuffle"):
        RetrievalLoop(WordsEmbedder(), shuffle=1.5)


def test_extra_words_come_from_the_relation_of_the_sentence():
    from mtsc_sdr.rag.loop import relation_words

    items = _knowledge(200)
    plain = RetrievalLoop(WordsEmbedder(), k=2, shuffle=1e-12, extra_words=2).attach(items, np.random.default_rng(5))
    mixed = RetrievalLoop(WordsEmbedder(), k=2, shuffle=1.0, extra_words=2).attach(items, np.random.default_rng(5))
    added = 0
    for p, m in zip(plain, mixed):
        assert m.references == p.references
        before, after = p.question[:-1].split(), m.question[:-1].split()
        extra = list(after)
        for w in before:
            extra.remove(w)                              # every word of the question is still there
        assert len(extra) <= 2 and set(extra) <= set(relation_words(p.fact.split("/")[0]))
        added += len(extra)
    assert added > len(items) // 2                     # 0, 1 or 2 words each: about one on average
    assert relation_words("owner") == ["belongs", "is", "owns", "the", "to", "who", "whose"]


def test_filler_words_are_inserted_into_knowledge_questions_only_and_keep_their_words_in_order():
    from mtsc_sdr.rag.loop import filler_vocabulary

    filler = filler_vocabulary()
    assert "object" in filler and "what" in filler
    assert not set(filler) & {*kn.WORDS, "red", "circle", "circles"}    # no object, relation or value
    items = _knowledge(200) + examples("train", ["vqa"], 20)
    # shuffle ~0 in both: the same draws, never shuffled; only the filler differs
    plain = RetrievalLoop(WordsEmbedder(), k=2, shuffle=1e-12).attach(items, np.random.default_rng(6))
    filled = RetrievalLoop(WordsEmbedder(), k=2, shuffle=1e-12, filler_words=2).attach(items, np.random.default_rng(6))
    counts = [0, 0, 0]
    for p, f in zip(plain, filled):
        assert (f.references, f.local_context, f.global_context) == (p.references, p.local_context, p.global_context)
        if p.fact is None:
            assert f.question == p.question                  # image questions as written
            continue
        before, after = p.question[:-1].split(), iter(f.question[:-1].split())
        assert all(w in after for w in before) and f.question.endswith("?")   # a subsequence, in order
        added = f.question[:-1].split()
        for w in before:
            added.remove(w)
        assert set(added) <= set(filler)
        counts[len(added)] += 1
    assert min(counts) > 30                               # 0, 1 or 2 words, about a third each


def test_filler_never_spells_a_held_out_question():
    loop = RetrievalLoop(WordsEmbedder(), k=2, filler_words=1)
    held_out = kn.question("owner", "red", "circle", "held_out", 1)
    assert held_out == "whose object is the red circle?"   # "whose is the red circle?" + "object"
    rng = np.random.default_rng(0)
    outs = [loop._with_filler("whose is the red circle?", rng) for _ in range(3000)]
    assert held_out not in outs
    assert "whose is the red object circle?" in outs      # other insertions of the same word do happen


def test_word_counts_must_not_be_negative():
    for name in ("extra_words", "filler_words"):
        with pytest.raises(ValueError, match=name):
            RetrievalLoop(WordsEmbedder(), **{name: -1})


def test_full_bases_put_the_hardest_neighbours_beside_the_fact():
    """With bases that hold (nearly) every fact, what is retrieved beside a fact is a close
    neighbour (the same object's other relation, the same colour or shape), as in a deployed base
    that holds every fact: the retrieved distractors are closer to the question than with small bases."""
    items = _knowledge(200)
    small = RetrievalLoop(WordsEmbedder(), k=2, max_local=2, max_global=2)
    full = RetrievalLoop(WordsEmbedder(), k=2, max_local=41, max_global=41)

    def closeness(loop):
        out = loop.attach(items, np.random.default_rng(3))
        scores = []
        for e in out:
            others = [s + "." for s in e.global_context.rstrip(".").split(". ") if s and e.references[0] not in s]
            if others:
                scores += (loop.vectors(others) @ loop.vectors([e.question])[0]).tolist()
        return float(np.mean(scores))

    assert closeness(full) > closeness(small) + 0.05


def test_knowledge_base_sizes_reach_the_training_loop():
    from mtsc_sdr.config import ConfigError
    from mtsc_sdr.train.config import TrainConfig
    from mtsc_sdr.train.trainer import retrieval_loop

    cfg = TrainConfig.from_dict({"model": {"context_tokens": 8}, "knowledge_base_docs": [3, 41]})
    cfg.validate()
    loop = retrieval_loop(cfg)
    assert (loop.max_local, loop.max_global) == (3, 41)
    assert (TrainConfig().knowledge_base_docs) == (6, 10)
    with pytest.raises(ConfigError, match="knowledge_base_docs"):
        TrainConfig.from_dict({"knowledge_base_docs": [3, -1]}).validate()


def test_reordered_hits_keep_the_documents_and_the_answer():
    """``reorder`` permutes what a base retrieved (so a fact is trained in every position), never
    which documents were retrieved or the answer they give; ``reorder`` 0 draws nothing extra."""
    items = _knowledge(300)
    still = RetrievalLoop(WordsEmbedder(), k=2, reorder=0.0)
    still._maybe_reordered = None     # never reached (a call would raise TypeError): no extra draw of rng
    assert len(still.attach(items, np.random.default_rng(4))) == len(items)
    loop = RetrievalLoop(WordsEmbedder(), k=2, reorder=1.0)
    moved = 0
    for i, e in enumerate(items):
        a = RetrievalLoop(WordsEmbedder(), k=2).attach([e], np.random.default_rng(i))[0]
        b = loop.attach([e], np.random.default_rng(i))[0]
        for x, y in ((a.local_context, b.local_context), (a.global_context, b.global_context)):
            split = (lambda s: sorted(t for t in s.rstrip(".").split(". ") if t))
            assert split(x) == split(y)
            moved += x != y
        assert a.references == b.references
    assert moved > 50
    with pytest.raises(ValueError, match="reorder"):
        RetrievalLoop(WordsEmbedder(), reorder=1.5)


def test_retrieval_scores_the_question_as_the_query_adapter_maps_it():
    embedder = WordsEmbedder()
    docs = [("owner/red/circle", "the red circle belongs to bob."), ("origin/red/circle", "the red circle was made in rome.")]
    question = "who owns the red circle?"
    plain = RetrievalLoop(embedder, k=1).retrieve(question, docs)
    other = [d for d in docs if d not in plain]
    q, far = embedder.embed([question])[0], embedder.embed([other[0][1]])[0]
    adapter = 5.0 * np.outer(far, q)                       # A q = 5 (q . q) far: the question moves to the other
    assert RetrievalLoop(embedder, k=1, query_adapter=adapter).retrieve(question, docs) == other
