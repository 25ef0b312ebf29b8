"""The built-in multimodal world: one object per seed giving scenes, audio clips, videos and the
flat task-level view (:func:`examples`) a trainer or evaluator consumes.

Each split is unbounded (index any non-negative int); :data:`DEFAULT_SPLIT_SIZES` are the sizes
used when none is given. Splits never share content: see :func:`mtsc_sdr.data.vocab.split_of_key`.

The evaluation-only split ``test_phrasing`` (:data:`mtsc_sdr.data.vocab.PHRASING_SPLITS`) shows
the content of ``test`` worded with question and caption templates training never sees:
``examples("test_phrasing", ...)`` gives, item for item, the same content (and the same VQA
question, reworded) as ``examples("test", ...)`` with the same arguments, so scores on the two are
paired per item.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np

from mtsc_sdr import tasks as task_table

from .audio import make_audio
from .domains import DEFAULT, get_domain
from .items import AudioClip, SceneImage, TaskExample, VideoClip
from .patches import natural_patches
from .scenes import make_scene
from .video import make_video
from .vocab import check_split, resolve_split

#: Items per split used by :func:`examples` when ``n_per_task`` is None (a phrasing split: its
#: content split's size).
DEFAULT_SPLIT_SIZES: dict[str, int] = {"train": 20000, "val": 1000, "test": 1000}


def default_size(split: str) -> int:
    """:data:`DEFAULT_SPLIT_SIZES` of ``split``'s content split (``test_phrasing``: ``test``'s)."""
    return DEFAULT_SPLIT_SIZES[resolve_split(split)[0]]


@dataclass(frozen=True)
class SyntheticWorld:
    """Deterministic synthetic world.

    Attributes:
        seed: world seed; item ``(split, index)`` is a pure function of it and the sizes below.
        image_size: scene and video frame side in pixels (>= 32).
        num_frames: video length T (>= 8).
        domain: a variant of the world (:mod:`mtsc_sdr.data.domains`): ``default`` (the world of
            phase I), ``light`` (drawn on a light background) or ``new_questions`` (scenes asked
            question types phase I never asks). Content, splits, captions and audio are the same in
            every domain. An unknown name is a ValueError naming the domains.
    """

    seed: int = 0
    image_size: int = 32
    num_frames: int = 8
    domain: str = DEFAULT

    def __post_init__(self):
        get_domain(self.domain)

    def scene(self, split: str, index: int) -> SceneImage:
        """Scene ``index`` of ``split`` (image uint8 (S, S, 3), captions, QA, objects)."""
        return make_scene(self.seed, split, index, self.image_size, self.domain)

    def audio(self, split: str, index: int) -> AudioClip:
        """Audio clip ``index`` of ``split`` (float32 (n,) at 16 kHz, 1-2 s)."""
        return make_audio(self.seed, split, index)

    def video(self, split: str, index: int) -> VideoClip:
        """Video clip ``index`` of ``split`` (uint8 (T, S, S, 3))."""
        return make_video(self.seed, split, index, self.num_frames, self.image_size, self.domain)

    def scenes(self, split: str, n: int, start: int = 0) -> list[SceneImage]:
        """Scenes ``start .. start+n-1`` of ``split``."""
        return [self.scene(split, i) for i in range(start, start + n)]

    def audios(self, split: str, n: int, start: int = 0) -> list[AudioClip]:
        """Audio clips ``start .. start+n-1`` of ``split``."""
        return [self.audio(split, i) for i in range(start, start + n)]

    def videos(self, split: str, n: int, start: int = 0) -> list[VideoClip]:
        """Video clips ``start .. start+n-1`` of ``split``."""
        return [self.video(split, i) for i in range(start, start + n)]

    def examples(self, split: str, tasks=None, n_per_task: int | None = None,
                 seed: int = 0) -> list[TaskExample]:
        """Flat task-level examples; see :func:`examples`."""
        return examples(split, tasks, n_per_task, seed, world=self)


#: ``maker(world, split, n, rng, shared_rng) -> list[TaskExample]``: ``n`` examples of one task
#: (None: the split's default size; fewer when the split holds fewer, see :func:`register_examples`);
#: ``rng`` is the task's own generator, ``shared_rng`` one generator shared by the tasks of one
#: :func:`examples` call.
ExampleMaker = Callable[["SyntheticWorld", str, Optional[int], np.random.Generator, np.random.Generator],
                        list[TaskExample]]

_MAKERS: task_table.Registry[ExampleMaker] = task_table.Registry("example maker")
#: task -> how many examples a split has at most (tasks not listed: unbounded)
_LIMITS: dict[str, Callable[[str], int]] = {}


def register_examples(task: str, maker: ExampleMaker, limit: Optional[Callable[[str], int]] = None) -> None:
    """Register the example maker of ``task`` (a :mod:`mtsc_sdr.tasks` name) and, when a split
    holds a limited number of its examples, ``limit(split)`` giving that number."""
    _MAKERS.register(task, maker)
    if limit is not None:
        _LIMITS[task] = limit


def unregister_examples(task: str) -> None:
    """Remove the example maker of ``task`` (tests that register a task of their own)."""
    _MAKERS.unregister(task)
    _LIMITS.pop(task, None)


def available(split: str, task: str, n: int) -> int:
    """``n``, or fewer when ``split`` holds fewer examples of ``task`` (natural patches)."""
    return min(n, _LIMITS[task](split)) if task in _LIMITS else n


def indexed(item: Callable[["SyntheticWorld", str, int, np.random.Generator], TaskExample]) -> ExampleMaker:
    """An :data:`ExampleMaker` from ``item(world, split, index, shared_rng)``: ``n`` items drawn at
    random (by the task's rng) from the first ``max(n, default_size(split))``, in order."""
    def make(world, split, n, rng, shared_rng):
        size = default_size(split)
        n = size if n is None else n
        idx = np.sort(rng.choice(max(n, size), size=n, replace=False))
        return [item(world, split, i, shared_rng) for i in idx.tolist()]

    return make


def examples(split: str, tasks=None, n_per_task: int | None = None, seed: int = 0,
             world: SyntheticWorld | None = None) -> list[TaskExample]:
    """Task-level examples of one split, grouped by task in the order of ``tasks``.

    Args:
        split: ``train``, ``val``, ``test`` or ``test_phrasing`` (see the module docstring).
        tasks: task names (None: every registered task, :func:`mtsc_sdr.tasks.names`).
        n_per_task: examples per task (None: ``DEFAULT_SPLIT_SIZES[split]``); ``reconstruct``
            gives at most the natural patches of the split (:func:`available`: 3647 train, 539
            val, 176 test; test is balanced over the source photographs, and the first 72 of val
            are, :mod:`mtsc_sdr.data.patches`).
        seed: picks which item indices are used and, for ``vqa``, which question of each scene.
        world: the world (default ``SyntheticWorld(seed=0)``).

    Returns:
        ``vqa``: image + question, references = the answer(s), ``question_type`` the question's
        kind. ``caption_*``: the modality + its reference captions. ``reconstruct``: a natural
        patch (uint8 (32, 32, 3)) as both ``image`` and ``target_image``, no references.
    """
    check_split(split)
    world = world or SyntheticWorld()
    tasks = task_table.check_names(task_table.names() if tasks is None else tasks)
    n = None if n_per_task is None else int(n_per_task)
    rng = np.random.default_rng([seed, 7, world.seed])
    out: list[TaskExample] = []
    for task in tasks:
        t_rng = np.random.default_rng([seed, task_table.get(task).id, world.seed])
        out += _MAKERS.get(task)(world, split, n, t_rng, rng)
    return out


def vqa_example(scene: SceneImage, k: int) -> TaskExample:
    """The ``vqa`` example of question ``k`` of ``scene`` (id ``"{scene id}#q{k}"``)."""
    qa = scene.qa[k]
    return TaskExample(f"{scene.item_id}#q{k}", "vqa", image=scene.image, question=qa.question,
                       references=list(qa.answers or (qa.answer,)), question_type=qa.kind)


def caption_image_example(scene: SceneImage) -> TaskExample:
    """The ``caption_image`` example of ``scene``."""
    return TaskExample(scene.item_id, "caption_image", image=scene.image, references=list(scene.captions))


def caption_video_example(clip: VideoClip) -> TaskExample:
    """The ``caption_video`` example of ``clip``."""
    return TaskExample(clip.item_id, "caption_video", video=clip.frames, references=list(clip.captions))


def _vqa(world: SyntheticWorld, split: str, i: int, rng: np.random.Generator) -> TaskExample:
    s = world.scene(split, i)
    return vqa_example(s, int(rng.integers(len(s.qa))))


def _caption_image(world: SyntheticWorld, split: str, i: int, rng: np.random.Generator) -> TaskExample:
    return caption_image_example(world.scene(split, i))


def _caption_audio(world: SyntheticWorld, split: str, i: int, rng: np.random.Generator) -> TaskExample:
    a = world.audio(split, i)
    return TaskExample(a.item_id, "caption_audio", audio=a.wave, references=list(a.captions),
                       sample_rate_hz=a.sample_rate_hz)


def _caption_video(world: SyntheticWorld, split: str, i: int, rng: np.random.Generator) -> TaskExample:
    return caption_video_example(world.video(split, i))


def _reconstruct(world: SyntheticWorld, split: str, n: Optional[int], rng: np.random.Generator,
                 shared_rng: np.random.Generator) -> list[TaskExample]:
    patches = natural_patches(split, seed=int(rng.integers(2**31)))
    # n beyond the split's patches gives them all (:func:`available`): the balanced test split is
    # small (176), and a run asking for n items of every task should not fail
    return [TaskExample(p.item_id, "reconstruct", image=p.image, target_image=p.image)
            for p in patches[:default_size(split) if n is None else n]]


register_examples("vqa", indexed(_vqa))
register_examples("caption_image", indexed(_caption_image))
register_examples("caption_audio", indexed(_caption_audio))
register_examples("caption_video", indexed(_caption_video))
register_examples("reconstruct", _reconstruct, limit=lambda split: len(natural_patches(split)))


def zero_question_inputs(items: list[TaskExample], task: str) -> list[TaskExample]:
    """``items`` with the input of a task that has a question zeroed (same shape and dtype; the
    question left as it is): what the question-only baseline is trained and evaluated on
    (``TrainConfig.blind``). Items of a task without a question are returned as they are."""
    spec = task_table.get(task)
    if not spec.question:
        return items
    return [replace(e, **{spec.modality: np.zeros_like(getattr(e, spec.modality))}) for e in items]


def collate(batch: list[TaskExample]) -> dict:
    """Stack examples of one kind into torch tensors (torch is imported here, lazily).

    Returns a dict with lists ``item_id``, ``task``, ``question``, ``references``,
    ``local_context`` and ``global_context`` (retrieved snippets, "" for none) and, for each
    modality present: ``image`` / ``target_image`` float32 (B, 3, H, W) in [0, 1]; ``audio``
    float32 (B, n_max) zero-padded with ``audio_length`` int64 (B,) in samples; ``video`` float32
    (B, T, 3, H, W) in [0, 1]. A modality present in some examples but not all is a ValueError
    (group examples by task first).
    """
    import torch  # only when a batch is built: the built-in data itself is numpy

    out: dict = {"item_id": [e.item_id for e in batch], "task": [e.task for e in batch],
                 "question": [e.question for e in batch], "references": [e.references for e in batch],
                 "local_context": [e.local_context for e in batch],
                 "global_context": [e.global_context for e in batch]}
    for name in ("image", "target_image", "audio", "video"):
        vals = [getattr(e, name) for e in batch]
        present = [v is not None for v in vals]
        if not any(present):
            continue
        if not all(present):
            raise ValueError(f"batch mixes examples with and without {name!r}; group by task first")
        if name == "audio":
            lengths = [len(v) for v in vals]
            buf = np.zeros((len(vals), max(lengths)), np.float32)
            for i, v in enumerate(vals):
                buf[i, :len(v)] = v
            out["audio"] = torch.from_numpy(buf)
            out["audio_length"] = torch.tensor(lengths, dtype=torch.int64)
        else:
            arr = np.stack(vals).astype(np.float32) / 255.0
            arr = np.moveaxis(arr, -1, -3)  # channels first
            out[name] = torch.from_numpy(np.ascontiguousarray(arr))
    return out
