"""Domains of the built-in world: the default one unchanged, the others really different, in
phase I's words, and an unknown name named with the choices."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest

from mtsc_sdr.data import QUESTION_TYPES, SyntheticWorld, domain_names, examples, get_domain
from mtsc_sdr.data.domains import NEW_QUESTION_TYPES, QUESTION_SETS
from mtsc_sdr.data.scenes import NEW_QUESTION_TEMPLATES, QUESTION_MAKERS, content_key, scene_key
from mtsc_sdr.data.sources import DataSource
from mtsc_sdr.data.vocab import COLOURS, SIZES, number_word


def _world_digest(w: SyntheticWorld) -> str:
    h = hashlib.sha256()
    for split in ("train", "val", "test"):
        for i in range(12):
            s, v = w.scene(split, i), w.video(split, i)
            h.update(s.image.tobytes())
            h.update(v.frames.tobytes())
            h.update(json.dumps([s.item_id, s.captions, [list(q) for q in s.qa], v.captions,
                                 [o.center_px for o in s.objects]]).encode())
    return h.hexdigest()[:16]


def _examples_digest(w: SyntheticWorld) -> str:
    h = hashlib.sha256()
    for e in examples("val", ["vqa", "caption_image", "caption_video"], n_per_task=10, seed=3, world=w):
        h.update(json.dumps([e.item_id, e.question, e.references, e.question_type]).encode())
        for a in (e.image, e.video):
            if a is not None:
                h.update(a.tobytes())
    return h.hexdigest()[:16]


def test_default_world_unchanged_by_domains():
    # digests of pixels, text and ids taken before domains existed: the shipped models, their
    # tests and the recordings depend on the default world staying bit-for-bit the same
    assert {s: _world_digest(SyntheticWorld(seed=s)) for s in (0, 1)} == {
        0: "32d94c2a3513e500", 1: "b34e335c75d597b8"}
    assert _world_digest(SyntheticWorld(seed=0, image_size=48)) == "cfcc8999e4f8f238"
    assert _examples_digest(SyntheticWorld()) == "325777d8a689859e"
    assert _world_digest(SyntheticWorld(domain="default")) == "32d94c2a3513e500"


def test_unknown_domain_names_the_choices():
    for make in (lambda: SyntheticWorld(domain="dark"), lambda: get_domain("dark"),
                 lambda: DataSource(domain="dark")):
        with pytest.raises(ValueError, match="dark") as err:
            make()
        assert all(name in str(err.value) for name in ("default", "light", "new_questions"))
    assert domain_names()[0] == "default" and {"light", "new_questions"} <= set(domain_names())


def test_light_domain_draws_the_same_content_on_a_light_background():
    dark, light = SyntheticWorld(seed=2), SyntheticWorld(seed=2, domain="light")
    for split in ("train", "val", "test_phrasing"):
        for i in range(15):
            a, b = dark.scene(split, i), light.scene(split, i)
            assert scene_key(a.objects) == scene_key(b.objects) == content_key(2, split, i)
            assert a.captions == b.captions and a.qa == b.qa
            assert b.item_id == f"light/{a.item_id}"
            assert a.image.shape == b.image.shape and a.image.dtype == b.image.dtype
            corner = lambda img: img[:3, :3].astype(float).mean()  # noqa: E731  (no object reaches a corner)
            assert corner(a.image) < 80 < 160 < corner(b.image)
            va, vb = dark.video(split, i), light.video(split, i)
            assert va.captions == vb.captions and vb.item_id == f"light/{va.item_id}"
            assert va.frames.mean() + 100 < vb.frames.mean()
    assert dark.audio("val", 4).wave.tobytes() == light.audio("val", 4).wave.tobytes()


def test_new_questions_domain_asks_only_new_types_answered_from_the_scene():
    dark, new = SyntheticWorld(), SyntheticWorld(domain="new_questions")
    assert set(NEW_QUESTION_TYPES).isdisjoint(QUESTION_TYPES)
    assert tuple(NEW_QUESTION_TEMPLATES["seen"]) == tuple(NEW_QUESTION_TEMPLATES["held_out"]) == NEW_QUESTION_TYPES
    old_questions = {q.question for i in range(300) for q in dark.scene("train", i).qa}
    answers = {k: [] for k in NEW_QUESTION_TYPES}
    for i in range(80):
        a, s = dark.scene("val", i), new.scene("val", i)
        assert s.image.tobytes() == a.image.tobytes() and s.captions == a.captions
        assert {q.kind for q in s.qa} == set(NEW_QUESTION_TYPES)
        assert not {q.question for q in s.qa} & old_questions
        objs = s.objects
        for q in s.qa:
            answers[q.kind].append(q.answer)
            words = q.question.rstrip("?").split()
            if q.kind == "count_colour":
                assert q.answer == number_word(sum(o.colour == words[2] for o in objs))
            elif q.kind == "count_size":
                assert words[2] in SIZES and q.answer == number_word(sum(o.size == words[2] for o in objs))
            elif q.kind == "verify_size":   # is the <colour> <shape> <size>
                (o,) = [o for o in objs if (o.colour, o.shape) == (words[2], words[3])]
                assert q.answer == ("yes" if o.size == words[4] else "no")
            else:                           # is there a(n) <colour> object <where>
                colour = words[3]
                assert colour in COLOURS and q.answer in ("yes", "no")
                assert q.answer == ("yes" if any(o.colour == colour and q.question.endswith(
                    {"left": "on the left?", "right": "on the right?", "top": "at the top?",
                     "bottom": "at the bottom?", "center": "in the center?"}[o.position]) for o in objs) else "no")
    for kind in ("verify_size", "verify_at"):       # yes / no both common
        share = answers[kind].count("yes") / len(answers[kind])
        assert 0.3 < share < 0.7, (kind, share)
    assert "zero" in answers["count_colour"] and len(set(answers["count_size"])) >= 3
    # the held-out phrasing words the same questions otherwise, the same answers
    s, h = new.scene("test", 3), new.scene("test_phrasing", 3)
    assert [(q.kind, q.answer) for q in s.qa] == [(q.kind, q.answer) for q in h.qa]
    assert all(a.question != b.question for a, b in zip(s.qa, h.qa))


def test_domains_use_only_words_phase_one_knows():
    from mtsc_sdr.model.tokenizer import corpus

    words = lambda texts: {w for t in texts for w in re.findall(r"\w+|[^\w\s]+", t)}  # noqa: E731
    known = words(corpus(n_scenes=300, n_audio=150, n_video=150))
    for name in domain_names():
        w = SyntheticWorld(domain=name)
        texts = [x for split in ("train", "test_phrasing") for i in range(60)
                 for x in (w.scene(split, i).captions + w.video(split, i).captions
                           + [t for q in w.scene(split, i).qa for t in (q.question, q.answer)])]
        assert words(texts) <= known, (name, sorted(words(texts) - known))


def test_every_domain_names_a_question_set():
    assert set(QUESTION_MAKERS) == set(QUESTION_SETS)
    assert all(get_domain(n).questions in QUESTION_SETS for n in domain_names())
    with pytest.raises(ValueError, match="questions"):
        type(get_domain("light"))("x", "y", questions="other")


def test_data_source_and_examples_of_a_domain():
    src = DataSource(domain="light")
    assert src.origin("vqa") == "builtin:light" and DataSource().origin("vqa") == "builtin"
    got = src.examples("val", "caption_image", 4, seed=1)
    want = examples("val", ["caption_image"], n_per_task=4, seed=1)
    assert [e.item_id for e in got] == [f"light/{e.item_id}" for e in want]
    assert [e.references for e in got] == [e.references for e in want]
    assert not any(np.array_equal(a.image, b.image) for a, b in zip(got, want))
    vqa = examples("val", ["vqa"], n_per_task=20, world=SyntheticWorld(domain="new_questions"))
    assert {e.question_type for e in vqa} <= set(NEW_QUESTION_TYPES)
