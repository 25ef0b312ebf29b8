"""The built-in multimodal world: one object per seed giving scenes, audio clips, videos and the
flat task-level view (:func:`examples`) a trainer or evaluator consumes.

Each split is unbounded (index any non-negative int); :data:`DEFAULT_SPLIT_SIZES` are the sizes
used when none is given. Splits never share content: see :func:`mtsc_sdr.data.vocab.split_of_key`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audio import make_audio
from .items import TASKS, AudioClip, SceneImage, TaskExample, VideoClip
from .patches import natural_patches
from .scenes import make_scene
from .video import make_video
from .vocab import check_split

#: Items per split used by :func:`examples` when ``n_per_task`` is None.
DEFAULT_SPLIT_SIZES: dict[str, int] = {"train": 20000, "val": 1000, "test": 1000}


@dataclass(frozen=True)
class SyntheticWorld:
    """Deterministic synthetic world.

    Attributes:
        seed: world seed; item ``(split, index)`` is a pure function of it and the sizes below.
        image_size: scene and video frame side in pixels (>= 32).
        num_frames: video length T (>= 8).
    """

    seed: int = 0
    image_size: int = 32
    num_frames: int = 8

    def scene(self, split: str, index: int) -> SceneImage:
        """Scene ``index`` of ``split`` (image uint8 (S, S, 3), captions, QA, objects)."""
        return make_scene(self.seed, split, index, self.image_size)

    def audio(self, split: str, index: int) -> AudioClip:
        """Audio clip ``index`` of ``split`` (float32 (n,) at 16 kHz, 1-2 s)."""
        return make_audio(self.seed, split, index)

    def video(self, split: str, index: int) -> VideoClip:
        """Video clip ``index`` of ``split`` (uint8 (T, S, S, 3))."""
        return make_video(self.seed, split, index, self.num_frames, self.image_size)

    def scenes(self, split: str, n: int, start: int = 0) -> list[SceneImage]:
        """Scenes ``start .. start+n-1`` of ``split``."""
        return [self.scene(split, i) for i in range(start, start + n)]

    def audios(self, split: str, n: int, start: int = 0) -> list[AudioClip]:
        """Audio clips ``start .. start+n-1`` of ``split``."""
        return [self.audio(split, i) for i in range(start, start + n)]

    def videos(self, split: str, n: int, start: int = 0) -> list[VideoClip]:
        """Video clips ``start .. start+n-1`` of ``split``."""
        return [self.video(split, i) for i in range(start, start + n)]

    def examples(self, split: str, tasks=TASKS, n_per_task: int | None = None,
                 seed: int = 0) -> list[TaskExample]:
        """Flat task-level examples; see :func:`examples`."""
        return examples(split, tasks, n_per_task, seed, world=self)


def examples(split: str, tasks=TASKS, n_per_task: int | None = None, seed: int = 0,
             world: SyntheticWorld | None = None) -> list[TaskExample]:
    """Task-level examples of one split, grouped by task in the order of ``tasks``.

    Args:
        split: ``train``, ``val`` or ``test``.
        tasks: any of ``vqa``, ``caption_image``, ``caption_audio``, ``caption_video``,
            ``reconstruct``.
        n_per_task: examples per task (None: ``DEFAULT_SPLIT_SIZES[split]``, capped for
            ``reconstruct`` by the number of natural patches in the split).
        seed: picks which item indices are used and, for ``vqa``, which question of each scene.
        world: the world (default ``SyntheticWorld(seed=0)``).

    Returns:
        ``vqa``: image + question, references = the answer(s). ``caption_*``: the modality +
        its reference captions. ``reconstruct``: a natural patch (uint8 (32, 32, 3)) as both
        ``image`` and ``target_image``, no references.
    """
    check_split(split)
    world = world or SyntheticWorld()
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; tasks are {list(TASKS)}")
    n = DEFAULT_SPLIT_SIZES[split] if n_per_task is None else int(n_per_task)
    rng = np.random.default_rng([seed, 7, world.seed])
    out: list[TaskExample] = []
    for task in tasks:
        t_rng = np.random.default_rng([seed, TASKS.index(task), world.seed])
        if task == "reconstruct":
            patches = natural_patches(split, seed=int(t_rng.integers(2**31)))
            if n_per_task is not None and n > len(patches):
                raise ValueError(f"the {split} split has only {len(patches)} natural patches, "
                                 f"asked for {n}")
            out += [TaskExample(p.item_id, task, image=p.image, target_image=p.image)
                    for p in patches[:n]]
            continue
        # item indices: a random subset of the first DEFAULT_SPLIT_SIZES[split] (or n) items
        pool = max(n, DEFAULT_SPLIT_SIZES[split])
        idx = np.sort(t_rng.choice(pool, size=n, replace=False))
        for i in idx.tolist():
            if task == "vqa":
                s = world.scene(split, i)
                k = int(rng.integers(len(s.qa)))
                qa = s.qa[k]
                out.append(TaskExample(f"{s.item_id}#q{k}", task, image=s.image, question=qa.question,
                                       references=list(qa.answers or (qa.answer,))))
            elif task == "caption_image":
                s = world.scene(split, i)
                out.append(TaskExample(s.item_id, task, image=s.image, references=list(s.captions)))
            elif task == "caption_audio":
                a = world.audio(split, i)
                out.append(TaskExample(a.item_id, task, audio=a.wave, references=list(a.captions),
                                       sample_rate_hz=a.sample_rate_hz))
            else:
                v = world.video(split, i)
                out.append(TaskExample(v.item_id, task, video=v.frames, references=list(v.captions)))
    return out


def collate(batch: list[TaskExample]) -> dict:
    """Stack examples of one kind into torch tensors (torch is imported here, lazily).

    Returns a dict with lists ``item_id``, ``task``, ``question``, ``references`` and, for each
    modality present: ``image`` / ``target_image`` float32 (B, 3, H, W) in [0, 1]; ``audio``
    float32 (B, n_max) zero-padded with ``audio_length`` int64 (B,) in samples; ``video`` float32
    (B, T, 3, H, W) in [0, 1]. A modality present in some examples but not all is a ValueError
    (group examples by task first).
    """
    import torch

    out: dict = {"item_id": [e.item_id for e in batch], "task": [e.task for e in batch],
                 "question": [e.question for e in batch], "references": [e.references for e in batch]}
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
