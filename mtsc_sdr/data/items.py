"""Item types shared by the synthetic world, the natural patches and the real data set loaders.

Arrays are numpy; images are ``uint8`` HWC RGB (0..255), audio is ``float32`` mono in [-1, 1],
video is ``uint8`` (T, H, W, 3). Items are frozen dataclasses: the arrays inside are not copied,
so treat them as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import numpy as np

#: Split names. ``val`` is the validation split.
SPLITS: tuple[str, ...] = ("train", "val", "test")


class QA(NamedTuple):
    """One question about an image.

    Attributes:
        question: lower-case question ending in "?", e.g. ``"what colour is the circle?"``.
        answer: the reference answer, a word or short phrase (``"red"``, ``"yes"``, ``"two"``).
        kind: question type: ``colour``, ``shape``, ``count``, ``position``, ``existence``, ``size``
            for the synthetic world; VQAv2's ``answer_type`` (``yes/no``, ``number``, ``other``) for
            real data.
        answers: every reference answer (VQAv2 has ten human answers per question); for synthetic
            data ``(answer,)``.
    """

    question: str
    answer: str
    kind: str
    answers: tuple[str, ...] = ()


@dataclass(frozen=True)
class SceneObject:
    """One object of a synthetic scene or video.

    Attributes:
        colour: a name from :data:`mtsc_sdr.data.vocab.COLOURS`.
        shape: a name from :data:`mtsc_sdr.data.vocab.SHAPES`.
        size: a name from :data:`mtsc_sdr.data.vocab.SIZES`.
        position: a name from :data:`mtsc_sdr.data.vocab.POSITIONS` (images) or ``""`` (video).
        center_px: rendered centre (x, y) in pixels, x to the right, y down (first frame for video).
        radius_px: rendered half-extent in pixels.
        direction: video only: ``left``/``right``/``up``/``down``; ``""`` for still images.
        speed: video only: ``slow``/``fast``; ``""`` for still images.
        velocity_px_per_frame: video only: (dx, dy) in pixels per frame.
    """

    colour: str
    shape: str
    size: str
    position: str = ""
    center_px: tuple[float, float] = (0.0, 0.0)
    radius_px: float = 0.0
    direction: str = ""
    speed: str = ""
    velocity_px_per_frame: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class SceneImage:
    """An image with reference captions and question/answer pairs.

    Attributes:
        item_id: unique, stable id, e.g. ``"scene/test/17"`` or ``"coco/val2014/42"``.
        image: ``uint8`` array (H, W, 3), RGB, 0..255.
        captions: reference captions (several phrasings), may be empty.
        qa: question/answer pairs, may be empty.
        objects: the synthetic scene's objects (empty for real images).
    """

    item_id: str
    image: np.ndarray
    captions: list[str] = field(default_factory=list)
    qa: list[QA] = field(default_factory=list)
    objects: tuple[SceneObject, ...] = ()


@dataclass(frozen=True)
class AudioEvent:
    """What a synthetic audio clip contains.

    Attributes:
        kind: ``beep`` (tone sequence), ``chirp`` or ``noise`` (noise bursts).
        count: number of events, 1..4.
        pitch: ``low`` or ``high``.
        direction: chirps: ``rising`` or ``falling``; ``""`` otherwise.
        loudness: ``quiet`` or ``loud``.
        onsets_s: start time of each event in seconds.
        event_duration_s: duration of each event in seconds.
        freq_hz: tone frequency (beeps), start frequency (chirps) or band centre (noise).
    """

    kind: str
    count: int
    pitch: str
    direction: str
    loudness: str
    onsets_s: tuple[float, ...] = ()
    event_duration_s: float = 0.0
    freq_hz: float = 0.0


@dataclass(frozen=True)
class AudioClip:
    """A mono audio clip with captions.

    Attributes:
        item_id: unique, stable id.
        wave: ``float32`` array (n,), mono, in [-1, 1], at ``sample_rate_hz``.
        sample_rate_hz: samples per second (16000 for everything this package produces).
        captions: reference captions.
        event: what the clip contains (synthetic clips only).
    """

    item_id: str
    wave: np.ndarray
    sample_rate_hz: int = 16000
    captions: list[str] = field(default_factory=list)
    event: Optional[AudioEvent] = None

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return len(self.wave) / float(self.sample_rate_hz)


@dataclass(frozen=True)
class VideoClip:
    """A short video with captions.

    Attributes:
        item_id: unique, stable id.
        frames: ``uint8`` array (T, H, W, 3), RGB.
        captions: reference captions.
        objects: the moving objects (synthetic clips only), with direction, speed and velocity.
    """

    item_id: str
    frames: np.ndarray
    captions: list[str] = field(default_factory=list)
    objects: tuple[SceneObject, ...] = ()


@dataclass(frozen=True)
class Patch:
    """An image for reconstruction.

    Attributes:
        item_id: unique, stable id, e.g. ``"patch/astronaut/x2/r3c5"`` or ``"cifar10/test/17"``.
        image: ``uint8`` array (H, W, 3), RGB (32x32 for natural patches and CIFAR-10).
        label: class name where the source has one (CIFAR-10), else ``None``.
    """

    item_id: str
    image: np.ndarray
    label: Optional[str] = None


@dataclass(frozen=True)
class TaskExample:
    """One example of one task: the flat view a trainer or evaluator consumes.

    Exactly the inputs of the task are set, the others are ``None``.

    Attributes:
        item_id: id of the source item (VQA examples append ``"#q<k>"`` for the k-th question).
        task: a task name (:func:`mtsc_sdr.tasks.names`).
        image: ``uint8`` (H, W, 3) for ``vqa``, ``caption_image`` and ``reconstruct``.
        audio: ``float32`` (n,) at 16 kHz for ``caption_audio``.
        video: ``uint8`` (T, H, W, 3) for ``caption_video``.
        question: the question for ``vqa``.
        references: reference answers (``vqa``) or reference captions (``caption_*``); empty for
            ``reconstruct``.
        target_image: ``uint8`` (H, W, 3) for ``reconstruct`` (the input image itself).
        sample_rate_hz: sample rate of ``audio``.
        question_type: for ``vqa``, the question's :attr:`QA.kind` (``count``, ``colour``,
            ``shape``, ``position``, ``size``, ``existence`` in the built-in world; VQAv2's
            ``answer_type``); None otherwise. Evaluation scores each type apart.
        fact: for a knowledge question (:mod:`mtsc_sdr.data.knowledge`), the key of the fact it
            asks about (``"owner/red-circle"``); None otherwise.
        local_context, global_context: retrieved knowledge the item is sent with (retrieval-
            augmented generation): snippets of the client's private knowledge base, which join
            the LAM encoder's input, and of the base station's public one, which condition the
            LAM decoder; empty when nothing was retrieved (or the model takes no context).
    """

    item_id: str
    task: str
    image: Optional[np.ndarray] = None
    audio: Optional[np.ndarray] = None
    video: Optional[np.ndarray] = None
    question: Optional[str] = None
    references: list[str] = field(default_factory=list)
    target_image: Optional[np.ndarray] = None
    sample_rate_hz: int = 16000
    question_type: Optional[str] = None
    fact: Optional[str] = None
    local_context: str = ""
    global_context: str = ""
