"""Non-IID client partitions of the built-in world, for federated fine-tuning on a domain.

Client ``partition_id`` of ``num_partitions`` gets its own training examples, drawn from the
*train* split of a domain (:mod:`mtsc_sdr.data.domains`), skewed three ways:

* **task mix**: its main task, ``tasks[partition_id % len(tasks)]``, has ``main_share`` of its
  examples, the other tasks share the rest evenly (client 0 mostly VQA, client 1 mostly image
  captions, ...);
* **colours**: the colour of each item's first object (scenes: in position order; videos: the
  clip's first) follows the client's own proportions, drawn from a symmetric Dirichlet(``alpha``)
  over :data:`mtsc_sdr.data.vocab.COLOURS` (small ``alpha``: few colours per client);
* **question types** (``vqa``): the question asked of each scene is drawn with the client's own
  proportions over the domain's question types, another Dirichlet(``alpha``).

Clients never share an item, nor even an item's content: the train split is walked in index
order, items whose content key was already seen are skipped, and each colour's items are dealt out
to the clients in turn, as many as each one's proportions ask for. Everything is a pure function
of the arguments (``seed`` draws the proportions and the questions), so each client, in its own
process, builds its partition alone and all of them agree. Every client is evaluated on the same
examples: :func:`eval_examples`, the domain's val split.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import scenes, video
from .domains import DEFAULT, NEW_QUESTION_TYPES, get_domain
from .items import TaskExample
from .vocab import COLOURS
from .world import SyntheticWorld, caption_image_example, caption_video_example, examples, vqa_example

#: Tasks a partition can hold, by the item kind they are drawn from.
SCENE_TASKS: tuple[str, ...] = ("vqa", "caption_image")
VIDEO_TASKS: tuple[str, ...] = ("caption_video",)
PARTITION_TASKS: tuple[str, ...] = SCENE_TASKS + VIDEO_TASKS
_SCAN_LIMIT = 200      # train items walked per item asked for, at most


@dataclass(frozen=True)
class ClientPlan:
    """What one client's partition holds, before any item is drawn.

    Attributes:
        partition_id: the client.
        task_counts: examples per task, in the order of ``tasks``.
        colour_counts: per task, examples per colour (in :data:`COLOURS` order) of each item's
            first object.
        question_type_probs: the client's proportions over the domain's question types (its
            ``vqa`` questions are drawn with them).
    """

    partition_id: int
    task_counts: dict[str, int]
    colour_counts: dict[str, tuple[int, ...]]
    question_type_probs: dict[str, float]


def question_types(domain: str) -> tuple[str, ...]:
    """The question types (:attr:`QA.kind`) of the domain's scenes."""
    return scenes.QUESTION_TYPES if get_domain(domain).questions == "phase1" else NEW_QUESTION_TYPES


def _counts(n: int, probs: Sequence[float]) -> tuple[int, ...]:
    """``n`` split in proportion to ``probs`` (largest remainders; sums to ``n``)."""
    p = np.asarray(probs, dtype=np.float64)
    raw = n * p / p.sum()
    out = np.floor(raw).astype(int)
    out[np.argsort(-(raw - out), kind="stable")[:n - out.sum()]] += 1
    return tuple(int(v) for v in out)


def _check(partition_id: int, num_partitions: int, tasks: Sequence[str], n_per_client: int, alpha: float,
           main_share: float) -> None:
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition_id must be in [0, {num_partitions}), got {partition_id}")
    bad = [t for t in tasks if t not in PARTITION_TASKS]
    if bad or not tasks or len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks must be distinct names from {list(PARTITION_TASKS)}, got {list(tasks)}")
    if n_per_client < 1 or alpha <= 0 or not 0 < main_share <= 1:
        raise ValueError(f"need n_per_client >= 1, alpha > 0 and 0 < main_share <= 1; got {n_per_client}, "
                         f"{alpha}, {main_share}")


def client_plan(partition_id: int, num_partitions: int, *, seed: int = 0, domain: str = DEFAULT,
                tasks: Sequence[str] = SCENE_TASKS, n_per_client: int = 512, alpha: float = 0.5,
                main_share: float = 0.7) -> ClientPlan:
    """The :class:`ClientPlan` of client ``partition_id`` (arguments as :func:`client_examples`)."""
    tasks = tuple(tasks)
    _check(partition_id, num_partitions, tasks, n_per_client, alpha, main_share)
    main = partition_id % len(tasks)
    rest = (1.0 - main_share) / (len(tasks) - 1) if len(tasks) > 1 else 0.0
    task_counts = dict(zip(tasks, _counts(n_per_client, [main_share if i == main else rest
                                                         for i in range(len(tasks))])))
    colour_p = np.random.default_rng([seed, 0xC010, partition_id]).dirichlet([alpha] * len(COLOURS))
    kinds = question_types(domain)
    type_p = np.random.default_rng([seed, 0x7E5, partition_id]).dirichlet([alpha] * len(kinds))
    return ClientPlan(partition_id, task_counts, {t: _counts(c, colour_p) for t, c in task_counts.items()},
                      {k: float(p) for k, p in zip(kinds, type_p)})


def _deal(kind: str, plans: list[ClientPlan], tasks: Sequence[str], world_seed: int) -> list[dict[str, list[int]]]:
    """Train indices of ``kind`` (``scene`` or ``video``) per client and task: each colour's
    items, in index order and of distinct content, dealt out to the clients in turn."""
    key_of = scenes.content_key if kind == "scene" else video.content_key
    colour_at = 1 if kind == "scene" else 0          # scenes: (position, colour, ..); videos: (colour, ..)
    need = np.array([[sum(p.colour_counts[t][c] for t in tasks) for c in range(len(COLOURS))] for p in plans])
    total = need.sum(axis=0)                           # (colours,)
    queues: list[list[int]] = [[] for _ in COLOURS]
    seen: set = set()
    index, limit = 0, _SCAN_LIMIT * max(1, int(total.sum()))
    while any(len(q) < n for q, n in zip(queues, total)):
        if index >= limit:
            raise RuntimeError(f"{limit} train {kind}s did not hold {total.tolist()} items per colour")
        key = key_of(world_seed, "train", index)
        colour = COLOURS.index(key[0][colour_at])
        if key not in seen and len(queues[colour]) < total[colour]:
            queues[colour].append(index)
        seen.add(key)
        index += 1
    out = []
    start = np.concatenate([np.zeros((1, len(COLOURS)), int), np.cumsum(need, axis=0)])
    for j, plan in enumerate(plans):
        mine: dict[str, list[int]] = {}
        offset = start[j].copy()
        for t in tasks:
            take = plan.colour_counts[t]
            mine[t] = sorted(i for c in range(len(COLOURS)) for i in queues[c][offset[c]:offset[c] + take[c]])
            offset += np.array(take)
        out.append(mine)
    return out


def client_examples(partition_id: int, num_partitions: int, *, seed: int = 0, domain: str = DEFAULT,
                    tasks: Sequence[str] = SCENE_TASKS, n_per_client: int = 512, alpha: float = 0.5,
                    main_share: float = 0.7, world_seed: int = 0) -> list[TaskExample]:
    """The training examples of client ``partition_id`` of ``num_partitions`` (module docstring).

    Args:
        partition_id: the client, ``0 <= partition_id < num_partitions``.
        num_partitions: how many clients share the train split.
        seed: draws the clients' colour and question-type proportions and their questions.
        domain: the world's domain (:func:`mtsc_sdr.data.domains.domain_names`).
        tasks: tasks of :data:`PARTITION_TASKS`; client ``i``'s main one is ``tasks[i % len(tasks)]``.
        n_per_client: examples per client, all tasks together.
        alpha: concentration of the Dirichlet proportions (smaller: more skewed).
        main_share: share of the main task (the others split the rest evenly).
        world_seed: ``SyntheticWorld(seed=world_seed, domain=domain)`` is the world drawn from.

    Returns:
        ``n_per_client`` :class:`TaskExample` of the train split, grouped by task in the order of
        ``tasks`` (counts: :func:`client_plan`), each task's in train-index order; no two clients
        share an item or an item's content. ValueError for bad arguments or an unknown domain
        (naming the domains).
    """
    tasks = tuple(tasks)
    _check(partition_id, num_partitions, tasks, n_per_client, alpha, main_share)
    world = SyntheticWorld(seed=world_seed, domain=domain)
    plans = [client_plan(j, num_partitions, seed=seed, domain=domain, tasks=tasks, n_per_client=n_per_client,
                         alpha=alpha, main_share=main_share) for j in range(num_partitions)]
    plan = plans[partition_id]
    picked: dict[str, list[int]] = {}
    for kind, kind_tasks in (("scene", SCENE_TASKS), ("video", VIDEO_TASKS)):
        mine = [t for t in tasks if t in kind_tasks]
        if mine:
            picked.update(_deal(kind, plans, mine, world_seed)[partition_id])
    rng = np.random.default_rng([seed, 0x9A, partition_id])
    out: list[TaskExample] = []
    for t in tasks:
        for i in picked[t]:
            if t == "vqa":
                s = world.scene("train", i)
                per_kind = Counter(q.kind for q in s.qa)          # each type's share: the client's
                w = np.array([plan.question_type_probs[q.kind] / per_kind[q.kind] for q in s.qa])
                out.append(vqa_example(s, int(rng.choice(len(s.qa), p=w / w.sum()))))
            elif t == "caption_image":
                out.append(caption_image_example(world.scene("train", i)))
            else:
                out.append(caption_video_example(world.video("train", i)))
    return out


def eval_examples(domain: str = DEFAULT, tasks: Sequence[str] = SCENE_TASKS, n_per_task: int = 200,
                  seed: int = 0, world_seed: int = 0) -> list[TaskExample]:
    """The examples every client is evaluated on: ``n_per_task`` of each task from the domain's
    *val* split (:func:`mtsc_sdr.data.examples`; no content in common with any train item)."""
    return examples("val", list(tasks), n_per_task=n_per_task, seed=seed,
                    world=SyntheticWorld(seed=world_seed, domain=domain))


__all__ = ["PARTITION_TASKS", "SCENE_TASKS", "VIDEO_TASKS", "ClientPlan", "client_examples", "client_plan",
           "eval_examples", "question_types"]
