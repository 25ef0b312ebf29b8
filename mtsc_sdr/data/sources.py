"""Where training and evaluation examples come from: the built-in world, the real data sets, or a mix.

One :class:`DataSource` is made from ``--data`` specs (``TrainConfig.data``): ``builtin`` and/or
``NAME=PATH`` with NAME one of :data:`DATASETS`. Each real set feeds the task it has; the
built-in world, when listed, feeds every other task; without ``builtin`` only the tasks of the
given sets have data.

==========  ==================  ====================================================
NAME        task                split used for ``train`` / ``val`` / ``test``
==========  ==================  ====================================================
vqav2       ``vqa``             train2014 / val2014 / val2014 (test has no answers)
coco        ``caption_image``   train2014 / val2014 / val2014 (2017 if that is there)
cifar10     ``reconstruct``     data_batch_1..5 / test_batch / test_batch
audiocaps   ``caption_audio``   train.csv / val.csv / test.csv
msrvtt      ``caption_video``   train / validate / test (the JSON's ``split``)
==========  ==================  ====================================================

Inputs come at the model's sizes (:class:`InputSizes`, from ``ModelConfig``): images fitted to
``image_size``, audio resampled to 16 kHz and cropped to ``audio_max_s``, ``video_frames`` frames
per video. A real set streams from disk: opening it reads only its annotations (text and paths,
:mod:`mtsc_sdr.data.real`), and :class:`LazyExamples` decodes an item's media when it is indexed
and keeps nothing, so memory does not grow with the data set (CIFAR-10 excepted: its pickled
batches are read whole, at most 150 MB of raw pixels). Training draws random indices each step
(map-style, like a torch ``Dataset``), so no shuffle buffer is needed and a resumed run draws the
same items.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from mtsc_sdr import tasks as task_table

from . import media, real
from .domains import DEFAULT
from .errors import DatasetNotFound
from .items import TaskExample
from .vocab import check_split
from .world import SyntheticWorld, available, examples

BUILTIN = "builtin"

#: NAME -> (the task it feeds, a one-line reminder of its official layout for error messages).
DATASETS: dict[str, tuple[str, str]] = {
    "vqav2": ("vqa", "v2_OpenEnded_mscoco_{split}2014_questions.json, v2_mscoco_{split}2014_annotations.json "
                     "and {split}2014/ images"),
    "coco": ("caption_image", "annotations/captions_{split}2014.json (or 2017) and {split}2014/ images"),
    "cifar10": ("reconstruct", "cifar-10-batches-py/ (data_batch_1..5, test_batch)"),
    "audiocaps": ("caption_audio", "{split}.csv and audio/{split}/<youtube_id>.wav"),
    "msrvtt": ("caption_video", "MSRVTT_data.json (or *_videodatainfo.json) and frames/<video_id>/*.jpg"),
}

#: NAME -> the data set's own split for each of the project's splits.
SPLIT_NAMES: dict[str, dict[str, str]] = {
    "vqav2": {"train": "train", "val": "val", "test": "val"},
    "coco": {"train": "train", "val": "val", "test": "val"},
    "cifar10": {"train": "train", "val": "test", "test": "test"},
    "audiocaps": {"train": "train", "val": "val", "test": "test"},
    "msrvtt": {"train": "train", "val": "val", "test": "test"},
}


def parse_data_spec(text: str) -> tuple[str, Optional[str]]:
    """``"builtin"`` -> ("builtin", None); ``"NAME=PATH"`` -> (NAME, PATH).

    Raises:
        ValueError: an unknown NAME, no PATH, or a PATH that is not a directory; the message says
            what layout was expected there.
    """
    name, sep, path = str(text).partition("=")
    name = name.strip().lower()
    if name == BUILTIN and not sep:
        return BUILTIN, None
    if name not in DATASETS or not sep or not path:
        raise ValueError(f"expected 'builtin' or NAME=PATH with NAME one of {list(DATASETS)}, got {text!r}")
    if not os.path.isdir(path):
        raise ValueError(f"{name}: {path!r} is not a directory; expected the official layout there: "
                         f"{DATASETS[name][1]} (nothing is downloaded)")
    return name, path


@dataclass(frozen=True)
class InputSizes:
    """The input sizes the model takes (``ModelConfig``'s fields of the same names).

    Attributes:
        image_size: images and video frames are fitted to (image_size, image_size, 3) uint8.
        audio_max_s: audio is cropped to this many seconds (16 kHz mono float32).
        video_frames: frames sampled evenly from each video.
    """

    image_size: int = 32
    audio_max_s: float = 2.0
    video_frames: int = 8

    @classmethod
    def of(cls, model_config: Any) -> "InputSizes":
        """The sizes of a ``ModelConfig`` (or anything with those three attributes)."""
        return cls(model_config.image_size, model_config.audio_max_s, model_config.video_frames)


class LazyExamples(Sequence):
    """Task examples decoded from disk when indexed; holds only the light records.

    Args:
        records: one per example (entries, (entry, question index) pairs, array rows...).
        make: ``make(record) -> TaskExample``, which reads the media.

    ``seq[i]`` decodes one example; ``seq[a:b]`` and :meth:`subset` are lazy too.
    """

    def __init__(self, records: Sequence, make: Callable[[Any], TaskExample]):
        self.records, self.make = records, make

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return LazyExamples(self.records[i], self.make)
        return self.make(self.records[i])

    def subset(self, indices: Sequence[int]) -> "LazyExamples":
        """The examples at ``indices``, in that order."""
        return LazyExamples([self.records[i] for i in indices], self.make)


def _vqa(entries: list[real.Entry], sizes: InputSizes) -> LazyExamples:
    def make(rec):
        entry, k = rec
        qa = entry.qa[k]
        return TaskExample(f"{entry.item_id}#q{k}", "vqa", image=real.read_entry_image(entry, sizes.image_size).image,
                           question=qa.question, references=list(qa.answers or (qa.answer,)),
                           question_type=qa.kind or None)

    return LazyExamples([(e, k) for e in entries for k in range(len(e.qa))], make)


def _caption_image(entries: list[real.Entry], sizes: InputSizes) -> LazyExamples:
    def make(entry):
        return TaskExample(entry.item_id, "caption_image", image=real.read_entry_image(entry, sizes.image_size).image,
                           references=list(entry.captions))

    return LazyExamples(entries, make)


def _caption_audio(entries: list[real.Entry], sizes: InputSizes) -> LazyExamples:
    def make(entry):
        clip = real.read_entry_audio(entry, sizes.audio_max_s)
        return TaskExample(entry.item_id, "caption_audio", audio=clip.wave, references=list(entry.captions),
                           sample_rate_hz=clip.sample_rate_hz)

    return LazyExamples(entries, make)


def _caption_video(entries: list[real.Entry], sizes: InputSizes) -> LazyExamples:
    def make(entry):
        clip = real.read_entry_video(entry, sizes.video_frames, sizes.image_size)
        return TaskExample(entry.item_id, "caption_video", video=clip.frames, references=list(entry.captions))

    return LazyExamples(entries, make)


def _coco_entries(root: str, split: str) -> list[real.Entry]:
    """COCO 2014 when its captions file is there, else 2017 (whose error then names both)."""
    try:
        return real.index_coco_captions(root, split, 2014)
    except DatasetNotFound as e2014:
        try:
            return real.index_coco_captions(root, split, 2017)
        except DatasetNotFound as e2017:
            raise DatasetNotFound(f"{e2014}\n{e2017}") from None


def _cifar10(root: str, split: str, sizes: InputSizes) -> LazyExamples:
    images, _, _ = real.cifar10_arrays(root, split)

    def make(k):
        img = images[k] if sizes.image_size == 32 else media.fit_image(images[k], sizes.image_size)
        return TaskExample(f"cifar10/{split}/{k}", "reconstruct", image=img, target_image=img)

    return LazyExamples(range(len(images)), make)


def open_dataset(name: str, root: str, split: str, sizes: InputSizes) -> LazyExamples:
    """The examples of data set ``name`` under ``root`` for the project's ``split``, streamed.

    Raises:
        DatasetNotFound / MalformedDataset: the layout is not the official one (the message names
            the data set and every path it expected).
    """
    check_split(split)
    return _OPENERS[name](root, SPLIT_NAMES[name][split], sizes)


#: NAME -> opener(root, the data set's own split, sizes)
_OPENERS: dict[str, Callable[[str, str, InputSizes], LazyExamples]] = {
    "vqav2": lambda root, split, sizes: _vqa(real.index_vqav2(root, split), sizes),
    "coco": lambda root, split, sizes: _caption_image(_coco_entries(root, split), sizes),
    "cifar10": _cifar10,
    "audiocaps": lambda root, split, sizes: _caption_audio(real.index_audiocaps(root, split), sizes),
    "msrvtt": lambda root, split, sizes: _caption_video(real.index_msrvtt(root, split), sizes),
}


class DataSource:
    """Examples per task and split from the built-in world and/or real data sets.

    Args:
        specs: ``builtin`` and/or ``NAME=PATH`` strings (:func:`parse_data_spec`), each NAME once.
        sizes: the model's input sizes (real data sets only; the built-in world has its own).
        domain: the built-in world's domain (:mod:`mtsc_sdr.data.domains`; real data sets have
            none).

    Raises:
        ValueError: a bad spec, a data set given twice, or an unknown domain.
    """

    def __init__(self, specs: Sequence[str] = (BUILTIN,), sizes: InputSizes = InputSizes(),
                 domain: str = DEFAULT):
        parsed = [parse_data_spec(s) for s in specs]
        names = [n for n, _ in parsed]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"data set(s) {twice} given twice; each feeds its task once")
        self.specs = tuple(str(s) for s in specs)
        self.builtin = BUILTIN in names
        self.roots = {n: p for n, p in parsed if n != BUILTIN}
        self.sizes = sizes
        self.world = SyntheticWorld(domain=domain)
        self._feeds = {DATASETS[n][0]: n for n in self.roots}

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks that have data, in the task table's order."""
        return tuple(t for t in task_table.names() if self.builtin or t in self._feeds)

    def origin(self, task: str) -> str:
        """``builtin`` (``builtin:DOMAIN`` outside the default domain) or ``NAME=PATH``: where
        ``task``'s examples come from."""
        name = self._feeds.get(task)
        if name is None:
            return BUILTIN if self.world.domain == DEFAULT else f"{BUILTIN}:{self.world.domain}"
        return f"{name}={self.roots[name]}"

    def check_tasks(self, tasks: Sequence[str]) -> None:
        """ValueError naming the tasks in ``tasks`` that no data set feeds."""
        missing = [t for t in tasks if t not in self.tasks]
        if missing:
            wanted = ", ".join(f"{n} for {t}" for n, (t, _) in DATASETS.items() if t in missing)
            raise ValueError(f"no data for task(s) {missing}: data is {list(self.specs)}; add 'builtin' "
                             f"or the data set of each ({wanted}), or leave the task out")

    def examples(self, split: str, task: str, n: Optional[int] = None, seed: int = 0) -> Sequence[TaskExample]:
        """At most ``n`` examples of ``task`` from ``split``.

        Built-in world: :func:`mtsc_sdr.data.examples` of :attr:`world` (``n`` None: the split's
        default size).
        Real data set: the whole split (``n`` None) or ``n`` of its examples drawn at random by
        ``seed``, in file order, as a :class:`LazyExamples`.
        """
        self.check_tasks([task])
        name = self._feeds.get(task)
        if name is None:
            count = None if n is None else available(split, task, n)
            return examples(split, [task], n_per_task=count, seed=seed, world=self.world)
        seq = open_dataset(name, self.roots[name], split, self.sizes)
        if n is None or n >= len(seq):
            return seq
        rng = np.random.default_rng([seed, task_table.get(task).id, 0xDA7A])
        return seq.subset(np.sort(rng.choice(len(seq), size=n, replace=False)).tolist())

    def train_pool(self, task: str, builtin_size: int, seed: int) -> Sequence[TaskExample]:
        """The train-split examples a run draws from: ``builtin_size`` examples of the built-in
        world (kept in memory), or a real data set's whole train split (decoded on access)."""
        return self.examples("train", task, builtin_size if task not in self._feeds else None, seed)


__all__ = ["BUILTIN", "DATASETS", "SPLIT_NAMES", "DataSource", "InputSizes", "LazyExamples", "open_dataset",
           "parse_data_spec"]
