"""Non-IID client partitions: deterministic, disjoint, train split only, skewed as documented;
evaluation examples from the domain's val split, the same for every client."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mtsc_sdr.data import QUESTION_TYPES
from mtsc_sdr.data.domains import NEW_QUESTION_TYPES
from mtsc_sdr.data.partition import client_examples, client_plan, eval_examples, question_types
from mtsc_sdr.data.scenes import content_key
from mtsc_sdr.data.video import content_key as video_content_key
from mtsc_sdr.data.vocab import COLOURS

N = 4
KW = dict(seed=1, domain="light", tasks=("vqa", "caption_image", "caption_video"), n_per_client=150, alpha=0.3)


@pytest.fixture(scope="module")
def parts():
    return [client_examples(i, N, **KW) for i in range(N)]


def _index(e) -> tuple[str, int]:
    kind, split, i = e.item_id.split("#")[0].split("/")[-3:]
    return kind, split, int(i)


def _label(e) -> str:
    """The colour each item's skew is on: its first object's."""
    kind, split, i = _index(e)
    return content_key(0, split, i)[0][1] if kind == "scene" else video_content_key(0, split, i)[0][0]


def test_deterministic(parts):
    again = client_examples(2, N, **KW)
    assert [e.item_id for e in again] == [e.item_id for e in parts[2]]
    assert [e.question for e in again] == [e.question for e in parts[2]]
    assert all(np.array_equal(a.image if a.image is not None else a.video, b.image if b.image is not None else b.video)
               for a, b in zip(again, parts[2]))
    other = client_examples(2, N, **{**KW, "seed": 2})
    assert [e.item_id for e in other] != [e.item_id for e in parts[2]]


def test_disjoint_train_only_and_sized(parts):
    items = [(_index(e), i) for i, p in enumerate(parts) for e in p]
    assert all(split == "train" for (_, split, _), _ in items)
    assert all(len(p) == KW["n_per_client"] for p in parts)
    owner: dict = {}
    for key, i in items:
        assert owner.setdefault(key, i) == i            # no item in two clients
    assert len({key for key, _ in items}) == len(items)  # no item twice in one client
    contents: dict = {}
    for e, i in ((e, i) for i, p in enumerate(parts) for e in p):
        kind, split, k = _index(e)
        c = (kind, content_key(0, split, k) if kind == "scene" else video_content_key(0, split, k))
        assert contents.setdefault(c, i) == i            # nor the same content in two clients
    assert all(e.item_id.startswith("light/") for p in parts for e in p)


def test_task_mix_differs_by_client(parts):
    tasks = KW["tasks"]
    for i, p in enumerate(parts):
        counts = Counter(e.task for e in p)
        assert counts == Counter(client_plan(i, N, **KW).task_counts)
        assert counts.most_common(1)[0] == (tasks[i % len(tasks)], 105)    # 0.7 of 150
        assert all(counts[t] >= 1 for t in tasks)
        assert [e.task for e in p] == sorted((e.task for e in p), key=tasks.index)   # grouped by task


def test_colours_and_question_types_skewed(parts):
    hist = np.array([[Counter(_label(e) for e in p)[c] for c in COLOURS] for p in parts], float)
    for i, h in enumerate(hist):
        plan = client_plan(i, N, **KW)
        assert h.tolist() == np.sum([plan.colour_counts[t] for t in KW["tasks"]], axis=0).tolist()
    share = hist / hist.sum(axis=1, keepdims=True)
    uniform = [0.5 * np.abs(s - 1.0 / len(COLOURS)).sum() for s in share]
    assert min(uniform) > 0.2, uniform                       # far from the world's even colours
    tv = [0.5 * np.abs(share[i] - share[j]).sum() for i in range(N) for j in range(i + 1, N)]
    assert min(tv) > 0.25, tv                                # every pair of clients sees other colours
    for i in range(N):                                       # question types: the client's own mix
        kw = dict(seed=1, domain="light", tasks=("vqa",), n_per_client=300, alpha=0.3)
        probs = client_plan(i, N, **kw).question_type_probs
        assert list(probs) == list(QUESTION_TYPES) == list(question_types("light"))
        got = Counter(e.question_type for e in client_examples(i, N, **kw))
        emp = np.array([got[k] for k in QUESTION_TYPES]) / 300
        assert 0.5 * np.abs(emp - list(probs.values())).sum() < 0.1
        assert 0.5 * np.abs(emp - 1 / len(QUESTION_TYPES)).sum() > 0.2


def test_new_questions_domain_partitions_its_question_types():
    p = client_examples(0, 2, seed=0, domain="new_questions", tasks=("vqa",), n_per_client=40)
    assert {e.question_type for e in p} <= set(NEW_QUESTION_TYPES) and len(p) == 40
    assert all(e.task == "vqa" and e.item_id.startswith("new_questions/scene/train/") for e in p)


def test_eval_examples_are_the_domain_val_split():
    ev = eval_examples("light", ("vqa", "caption_image"), n_per_task=5)
    assert [e.task for e in ev] == ["vqa"] * 5 + ["caption_image"] * 5
    assert all(e.item_id.startswith("light/scene/val/") for e in ev)
    assert [e.item_id for e in ev] == [e.item_id for e in eval_examples("light", ("vqa", "caption_image"), 5)]
    keys = {content_key(0, "val", _index(e)[2]) for e in ev}
    assert not keys & {content_key(0, "train", i) for i in range(2000)}


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="partition_id"):
        client_examples(4, 4)
    with pytest.raises(ValueError, match="caption_audio"):
        client_examples(0, 2, tasks=("vqa", "caption_audio"))
    with pytest.raises(ValueError, match="alpha"):
        client_examples(0, 2, alpha=0)
    with pytest.raises(ValueError, match="light"):
        client_examples(0, 2, domain="dark")
