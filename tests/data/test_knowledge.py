"""The world's knowledge: facts, documents, questions, knowledge states."""

from __future__ import annotations

import numpy as np
import pytest

from mtsc_sdr.data import SyntheticWorld
from mtsc_sdr.data import knowledge as kn


def test_a_fact_reads_as_a_document_that_names_its_subject_and_value():
    f = kn.Fact("owner", "red", "circle", "alice")
    assert f.key == "owner/red-circle"
    assert f.text() == "the red circle belongs to alice."
    assert f.text("seen", 1) == "alice owns the red circle."
    assert f.text("held_out") == "alice is who the red circle belongs to."


def test_questions_have_seen_and_held_out_phrasings_that_differ():
    seen = {kn.question("origin", "blue", "square", "seen", i) for i in range(2)}
    held = {kn.question("origin", "blue", "square", "held_out", i) for i in range(2)}
    assert len(seen) == 2 and len(held) == 2 and not seen & held
    assert all("blue square" in q and q.endswith("?") for q in seen | held)


def test_a_knowledge_state_gives_every_kind_of_object_one_value_per_relation():
    facts = kn.Facts(np.random.default_rng(0))
    assert len(facts.values) == 2 * len(kn.subjects()) == 42
    assert all(v in kn.RELATIONS[k.split("/")[0]] for k, v in facts.values.items())
    other = kn.Facts(np.random.default_rng(1))
    assert facts.values != other.values    # states are drawn, not fixed


def test_a_knowledge_question_asks_about_an_object_of_its_scene():
    scene = SyntheticWorld().scene("test", 3)
    e = kn.knowledge_example(scene, np.random.default_rng(0), "held_out", "owner")
    colour, shape = e.fact.split("/")[1].split("-")
    assert any(o.colour == colour and o.shape == shape for o in scene.objects)
    assert e.task == "vqa" and e.question_type == kn.QUESTION_TYPE and e.references == [kn.UNKNOWN]
    assert kn.answered(e, "bob").references == ["bob"] and kn.answered(e, None).references == [kn.UNKNOWN]


def _words(texts):
    return {w for t in texts for w in t.replace("?", " ? ").replace(".", " . ").split()}


def _texts(phrasing):
    docs = [kn.Fact(r, c, s, v).text(phrasing, i) for r, vals in kn.RELATIONS.items() for c, s in kn.subjects()
            for v in vals for i in range(2)]
    return docs + [kn.question(r, c, s, phrasing, i) for r in kn.RELATIONS for c, s in kn.subjects() for i in range(2)]


@pytest.fixture(scope="module")
def world_words():
    from mtsc_sdr.model.tokenizer import corpus

    return _words(corpus(n_scenes=200, n_audio=50, n_video=50))


def test_the_vocabulary_covers_every_word_of_documents_questions_and_answers(world_words):
    assert _words(_texts("seen") + _texts("held_out")) <= set(kn.vocabulary()) | world_words


def test_held_out_phrasings_are_new_patterns_of_words_training_shows(world_words):
    seen, held = _texts("seen"), _texts("held_out")
    assert not set(seen) & set(held)
    assert _words(held) <= _words(seen) | world_words


def test_an_unknown_relation_is_refused():
    with pytest.raises(ValueError, match="relation must be one of"):
        kn.fact_key("price", "red", "circle")
