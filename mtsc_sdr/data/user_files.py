"""The user's own files as task examples: ``mtsc-sdr client --image F [--question Q]``,
``--audio F.wav``, ``--video DIR``.

Which task a file goes to reads the task table (:mod:`mtsc_sdr.tasks`): a file of one modality
goes with the tasks of that modality; without ``--task``, the first of them (by id) that takes a
question when one is given, and one that does not otherwise (an image: ``vqa`` with a question,
else ``caption_image``; audio: ``caption_audio``; video: ``caption_video``).
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from mtsc_sdr import tasks

from .errors import UnsupportedMedia
from .items import TaskExample
from .media import fit_image, read_frames, read_image, read_wav


def _task_for(modality: str, task: Optional[str], question: Optional[str]) -> tasks.TaskSpec:
    """The spec of ``task``, or of the default task of ``modality`` (see the module docstring)."""
    fits = [s for s in tasks.specs() if s.modality == modality]
    if task is None:
        spec = next((s for s in fits if s.question == bool(question)), fits[0])
    else:
        spec = tasks.get(task)
    if spec.modality != modality:
        names = [s.name for s in fits]
        raise ValueError(f"--{modality} goes with --task {', '.join(names[:-1])} or {names[-1]}, not {spec.name}")
    if spec.question and not question:
        raise ValueError(f"--task {spec.name} needs --question TEXT")
    return spec


def items_from_files(*, image: Optional[str] = None, audio: Optional[str] = None, video: Optional[str] = None,
                     question: Optional[str] = None, task: Optional[str] = None, image_size: int = 32,
                     video_frames: int = 8) -> list[TaskExample]:
    """The user's own input as a one-item list of :class:`~.items.TaskExample` (no references).

    Args:
        image: an image file (PNG/JPEG/...), fitted to uint8 (image_size, image_size, 3).
        audio: a WAV file, read as float32 (n,) at 16 kHz.
        video: a folder of extracted frames, or a multi-frame GIF/WebP/PNG/TIFF; ``video_frames``
            frames uint8 (T, image_size, image_size, 3) spread evenly.
        question: the question about ``image`` (tasks with a question, VQA).
        task: the task (default: see the module docstring).
    Raises:
        ValueError naming the option when the options do not fit together or none is given;
        OSError / :class:`~.errors.UnsupportedMedia` when a file cannot be read.
    """
    if image:
        spec = _task_for("image", task, question)
        img = read_image(image, image_size)
        return [TaskExample(image, spec.name, image=img, question=question if spec.question else None,
                            target_image=img if spec.output == "image" else None)]
    if audio:
        return [TaskExample(audio, _task_for("audio", task, question).name, audio=read_wav(audio))]
    if video:
        spec = _task_for("video", task, question)
        frames = (read_frames(video, video_frames, image_size) if os.path.isdir(video)
                  else read_video_file(video, video_frames, image_size))
        return [TaskExample(video, spec.name, video=frames)]
    raise ValueError("no input: give --split (data set items) or --image / --audio / --video")


def read_video_file(path: str, num_frames: int, size_px: int) -> np.ndarray:
    """Frames of a multi-frame image file (animated GIF / WebP / PNG, multi-page TIFF) as uint8
    (num_frames, size, size, 3), spread evenly. Other video containers need a decoder this
    project does not ship: extract the frames into a folder (``ffmpeg -i clip.mp4 dir/%04d.png``)
    and pass the folder."""
    from PIL import Image, ImageSequence, UnidentifiedImageError   # PIL: only when a file is read

    try:
        with Image.open(path) as im:
            frames = [np.asarray(f.convert("RGB"), dtype=np.uint8) for f in ImageSequence.Iterator(im)]
    except UnidentifiedImageError:
        raise UnsupportedMedia(f"{path}: not a multi-frame image; for MP4/AVI/MKV extract the frames into a "
                               f"folder (e.g. ffmpeg -i {path} frames/%04d.png) and pass --video frames/") from None
    pick = np.linspace(0, len(frames) - 1, num_frames).round().astype(int)
    return np.stack([fit_image(frames[i], size_px) for i in pick])
