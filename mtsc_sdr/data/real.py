"""Loaders for the real data sets in their official on-disk formats, from a local directory.

Nothing is downloaded: point each loader at the folder where the data set was unpacked. A missing
folder or file raises :class:`DatasetNotFound` naming every path that was looked for. Images are
fitted to ``image_size`` (shorter side resized, centre crop); audio is resampled to 16 kHz mono;
videos are read from folders of extracted frames.

Each data set has an ``index_*`` function that reads only the annotations and checks the media
files exist (a list of :class:`Entry`, text and paths, no pixels or samples), and a decoder that
reads one entry's media (:func:`read_entry_image`, :func:`read_entry_audio`,
:func:`read_entry_video`); the ``load_*`` functions decode every entry at once (small sets, tests).
:mod:`mtsc_sdr.data.sources` decodes entries one at a time as training and evaluation ask for them.
CIFAR-10 keeps its batches' raw uint8 pixel arrays instead (:func:`cifar10_arrays`).

=============  ==============================================================================
data set       expected layout under ``root`` (alternatives are tried in this order)
=============  ==============================================================================
VQAv2          ``v2_OpenEnded_mscoco_{split}2014_questions.json`` and
               ``v2_mscoco_{split}2014_annotations.json`` in ``root``, ``root/Questions`` /
               ``root/Annotations``, ``root/questions`` / ``root/annotations``; images
               ``{split}2014/COCO_{split}2014_{image_id:012d}.jpg`` in ``root``, ``root/images``,
               ``root/Images``, ``root/Images/mscoco``  (split: ``train`` or ``val``)
COCO captions  ``annotations/captions_{split}{year}.json``; images ``{split}{year}/{file_name}``
               in ``root`` or ``root/images``
CIFAR-10       ``cifar-10-batches-py/data_batch_1`` .. ``data_batch_5``, ``test_batch``,
               ``batches.meta`` in ``root`` (or ``root`` is that folder itself)
AudioCaps      ``{split}.csv`` (columns ``audiocap_id,youtube_id,start_time,caption``) in
               ``root``, ``root/dataset`` or ``root/csv``; audio ``{youtube_id}.wav`` (also
               ``Y{youtube_id}.wav``, ``{youtube_id}_{start_time}.wav``, ``{audiocap_id}.wav``)
               in ``root/audio/{split}``, ``root/audio``, ``root/{split}``, ``root/wav/{split}``
MSR-VTT        ``MSRVTT_data.json``, ``train_val_videodatainfo.json`` and/or
               ``test_videodatainfo.json`` (keys ``videos``, ``sentences``) in ``root``,
               ``root/annotation`` or ``root/annotations``; frames: ``frames/{video_id}/*.jpg``
               (or .png ...) in ``root``; ``.mp4`` files are not decoded -- extract frames
=============  ==============================================================================
"""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from . import media
from .errors import DatasetNotFound, MalformedDataset, UnsafePickle, UnsupportedMedia
from .items import QA, AudioClip, Patch, SceneImage, VideoClip

CIFAR10_CLASSES: tuple[str, ...] = ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                    "frog", "horse", "ship", "truck")


# ----------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class Entry:
    """One item of a real data set before its media are decoded: what an index holds.

    Attributes:
        item_id: unique, stable id, e.g. ``"coco/val2014/42"``.
        path: the image file, WAV file or folder of extracted video frames.
        captions: reference captions (may be empty).
        qa: question/answer pairs (VQAv2).
    """

    item_id: str
    path: str
    captions: tuple[str, ...] = ()
    qa: tuple[QA, ...] = ()


def read_entry_image(entry: Entry, image_size: int) -> SceneImage:
    """The entry's image fitted to uint8 (image_size, image_size, 3), with its captions and QA."""
    return SceneImage(entry.item_id, media.read_image(entry.path, image_size), list(entry.captions),
                      list(entry.qa))


def read_entry_audio(entry: Entry, max_duration_s: float | None = None) -> AudioClip:
    """The entry's WAV as float32 (n,) mono at 16 kHz, cropped to ``max_duration_s`` if given."""
    wave = media.read_wav(entry.path)
    if max_duration_s is not None:
        wave = wave[:int(round(max_duration_s * media.TARGET_SAMPLE_RATE_HZ))]
    return AudioClip(entry.item_id, wave, media.TARGET_SAMPLE_RATE_HZ, list(entry.captions))


def read_entry_video(entry: Entry, num_frames: int, image_size: int) -> VideoClip:
    """The entry's frames folder as uint8 (num_frames, image_size, image_size, 3)."""
    return VideoClip(entry.item_id, media.read_frames(entry.path, num_frames, image_size),
                     list(entry.captions))


# ----------------------------------------------------------------------------- helpers

def _require_dir(root: str, dataset: str) -> None:
    if not os.path.isdir(root):
        raise DatasetNotFound(f"{dataset}: data directory {root!r} does not exist. "
                              f"Expected layout: see mtsc_sdr.data.real ({dataset} row). "
                              "Nothing is downloaded: unpack the official files there.")


def _find(candidates: list[str], dataset: str, what: str, isdir: bool = False) -> str:
    for c in candidates:
        if (os.path.isdir(c) if isdir else os.path.isfile(c)):
            return c
    listing = "\n  ".join(candidates)
    raise DatasetNotFound(f"{dataset}: {what} not found; expected one of:\n  {listing}")


def _read_json(path: str, dataset: str, keys: tuple[str, ...]) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except json.JSONDecodeError as e:
        raise MalformedDataset(f"{dataset}: {path} is not valid JSON ({e})") from e
    missing = [k for k in keys if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise MalformedDataset(f"{dataset}: {path} lacks the key(s) {missing} of the official format")
    return obj


# ----------------------------------------------------------------------------- VQAv2

def load_vqav2(root: str, split: str = "val", image_size: int = 32,
               limit: int | None = None) -> list[SceneImage]:
    """VQAv2 (2014 images): one :class:`SceneImage` per COCO image with all its questions.

    Args:
        root: local VQAv2 folder (layout in the module docstring).
        split: ``train`` or ``val`` (the splits with public annotations).
        image_size: images are fitted to (image_size, image_size, 3) uint8.
        limit: at most this many images, in order of first question.

    Returns:
        Items with ``item_id`` ``"vqav2/{split}2014/{image_id}"``, ``qa`` entries
        ``QA(question, multiple_choice_answer, answer_type, ten human answers)``, no captions.
    """
    return [read_entry_image(e, image_size) for e in index_vqav2(root, split, limit)]


def index_vqav2(root: str, split: str = "val", limit: int | None = None) -> list[Entry]:
    """The entries of :func:`load_vqav2` (one per image, its questions in ``qa``), media not read."""
    ds = "VQAv2"
    if split not in ("train", "val"):
        raise ValueError(f"{ds}: split must be 'train' or 'val' (annotated splits), got {split!r}")
    _require_dir(root, ds)
    qname = f"v2_OpenEnded_mscoco_{split}2014_questions.json"
    aname = f"v2_mscoco_{split}2014_annotations.json"
    qpath = _find([os.path.join(root, d, qname) for d in ("", "Questions", "questions")], ds,
                  "questions file")
    apath = _find([os.path.join(root, d, aname) for d in ("", "Annotations", "annotations")], ds,
                  "annotations file")
    img_dirs = [os.path.join(root, d, f"{split}2014") for d in ("", "images", "Images", "Images/mscoco")]
    img_dir = _find(img_dirs, ds, "image folder", isdir=True)
    questions = _read_json(qpath, ds, ("questions",))["questions"]
    anns = {a["question_id"]: a for a in _read_json(apath, ds, ("annotations",))["annotations"]}
    by_image: OrderedDict[int, list[QA]] = OrderedDict()
    for q in questions:
        a = anns.get(q["question_id"])
        if a is None:
            raise MalformedDataset(f"{ds}: question {q['question_id']} has no annotation in {apath}")
        if q["image_id"] not in by_image and limit is not None and len(by_image) >= limit:
            continue
        answers = tuple(x["answer"] for x in a.get("answers", ()))
        by_image.setdefault(q["image_id"], []).append(
            QA(q["question"], a["multiple_choice_answer"], a.get("answer_type", ""), answers))
    out = []
    for image_id, qas in by_image.items():
        path = os.path.join(img_dir, f"COCO_{split}2014_{image_id:012d}.jpg")
        if not os.path.isfile(path):
            raise DatasetNotFound(f"{ds}: image for image_id {image_id} not found: expected {path}")
        out.append(Entry(f"vqav2/{split}2014/{image_id}", path, (), tuple(qas)))
    return out


# ----------------------------------------------------------------------------- COCO captions

def load_coco_captions(root: str, split: str = "val", year: int = 2014, image_size: int = 32,
                       limit: int | None = None) -> list[SceneImage]:
    """COCO captions: one :class:`SceneImage` per image with its (usually five) captions.

    Args:
        root: local COCO folder with ``annotations/captions_{split}{year}.json`` and the images.
        split: ``train`` or ``val``.
        year: 2014 or 2017.
        image_size: images are fitted to (image_size, image_size, 3) uint8.
        limit: at most this many images, in the order of the JSON's ``images`` list.

    Returns:
        Items with ``item_id`` ``"coco/{split}{year}/{image_id}"`` and ``captions``.
    """
    return [read_entry_image(e, image_size) for e in index_coco_captions(root, split, year, limit)]


def index_coco_captions(root: str, split: str = "val", year: int = 2014,
                        limit: int | None = None) -> list[Entry]:
    """The entries of :func:`load_coco_captions` (one per image), media not read."""
    ds = "COCO captions"
    _require_dir(root, ds)
    apath = _find([os.path.join(root, "annotations", f"captions_{split}{year}.json"),
                   os.path.join(root, f"captions_{split}{year}.json")], ds, "captions file")
    img_dir = _find([os.path.join(root, f"{split}{year}"), os.path.join(root, "images", f"{split}{year}")],
                    ds, "image folder", isdir=True)
    obj = _read_json(apath, ds, ("images", "annotations"))
    caps: dict[int, list[str]] = {}
    for a in obj["annotations"]:
        caps.setdefault(a["image_id"], []).append(a["caption"].strip())
    out = []
    for im in obj["images"][:limit] if limit is not None else obj["images"]:
        path = os.path.join(img_dir, im["file_name"])
        if not os.path.isfile(path):
            raise DatasetNotFound(f"{ds}: image {im['id']} not found: expected {path}")
        out.append(Entry(f"coco/{split}{year}/{im['id']}", path, tuple(caps.get(im["id"], []))))
    return out


# ----------------------------------------------------------------------------- CIFAR-10

def _safe_reconstruct(cls, shape, typecode):
    if cls is not np.ndarray:
        raise UnsafePickle(f"array reconstruction of {cls!r} refused (only numpy.ndarray)")
    return np.ndarray.__new__(np.ndarray, shape, typecode)


def _safe_dtype(*args):
    dt = np.dtype(*args)
    if dt.hasobject:
        raise UnsafePickle("object dtype refused: CIFAR-10 batches hold plain uint8 pixels")
    return dt


def _safe_latin1(text, encoding="latin1"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickle(f"_codecs.encode({type(text).__name__}, {encoding!r}) refused")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """Reads the plain-data pickles of the CIFAR-10 batches and nothing else.

    The project never unpickles files (a pickle can run any code on load), but CIFAR-10's official
    ``cifar-10-batches-py`` files *are* pickles (protocol 2, written by Python 2). This unpickler
    resolves exactly four globals -- numpy's array reconstruction (``_reconstruct`` under
    ``numpy.core.multiarray`` or ``numpy._core.multiarray``, restricted to plain ndarrays),
    ``numpy.ndarray``, ``numpy.dtype`` (no object dtypes) and ``_codecs.encode`` (latin-1 only,
    which protocol 2 uses for bytes under Python 3) -- and refuses every other global (e.g.
    ``os.system``, ``builtins.eval``) with :class:`UnsafePickle` before anything is called.
    Containers, strings, bytes and numbers need no globals. The result is then checked against
    the batch structure by :func:`read_cifar10_batch`.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _safe_dtype,
        ("_codecs", "encode"): _safe_latin1,
    }

    def find_class(self, module, name):  # noqa: D102 - see class docstring
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickle(f"pickle refers to {module}.{name}; only numpy array data is "
                               "allowed in a CIFAR-10 batch") from None

    def persistent_load(self, pid):  # noqa: D102
        raise UnsafePickle("persistent ids are not allowed in a CIFAR-10 batch")


def _read_restricted_pickle(path: str):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except UnsafePickle as e:
        raise UnsafePickle(f"{path}: {e}") from None
    except Exception as e:  # truncated or garbled pickle streams raise many types
        raise MalformedDataset(f"{path}: not a readable CIFAR-10 pickle ({type(e).__name__}: {e})") from e


def _strkeys(d, path: str) -> dict:
    if not isinstance(d, dict):
        raise MalformedDataset(f"{path}: expected a dict, got {type(d).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def read_cifar10_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one official CIFAR-10 python batch with :class:`RestrictedUnpickler`.

    The batch must be a dict with ``data`` (uint8 ndarray (N, 3072), channel-planar R, G, B of
    32x32 rows) and ``labels`` (N ints 0..9); ``batch_label`` and ``filenames`` may be present.

    Returns:
        images uint8 (N, 32, 32, 3) HWC RGB, labels int64 (N,).
    """
    d = _strkeys(_read_restricted_pickle(path), path)
    data, labels = d.get("data"), d.get("labels")
    extra = set(d) - {"data", "labels", "batch_label", "filenames"}
    if extra:
        raise MalformedDataset(f"{path}: unexpected keys {sorted(extra)} in a CIFAR-10 batch")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3072:
        raise MalformedDataset(f"{path}: 'data' must be a uint8 array (N, 3072), got "
                               f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    if not isinstance(labels, list) or len(labels) != len(data) \
            or not all(isinstance(x, int) and 0 <= x < 10 for x in labels):
        raise MalformedDataset(f"{path}: 'labels' must be a list of {len(data)} ints in 0..9")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return images, np.asarray(labels, dtype=np.int64)


def load_cifar10(root: str, split: str = "test", limit: int | None = None) -> list[Patch]:
    """CIFAR-10 as reconstruction patches.

    Args:
        root: folder holding ``cifar-10-batches-py`` (or that folder itself).
        split: ``train`` (data_batch_1..5) or ``test`` (test_batch).
        limit: at most this many images, in file order.

    Returns:
        :class:`Patch` items, ``image`` uint8 (32, 32, 3), ``label`` the class name,
        ``item_id`` ``"cifar10/{split}/{k}"``.
    """
    images, labels, classes = cifar10_arrays(root, split, limit)
    return [Patch(f"cifar10/{split}/{k}", img, classes[int(lab)])
            for k, (img, lab) in enumerate(zip(images, labels))]


def cifar10_arrays(root: str, split: str = "test",
                   limit: int | None = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The raw pixels of a CIFAR-10 split: the format stores 10,000 images per pickle, read whole.

    Returns:
        images uint8 (N, 32, 32, 3) (150 MB for ``train``, 30 MB for ``test``: CIFAR-10 has a
        fixed size), labels int64 (N,), the ten class names.
    """
    ds = "CIFAR-10"
    if split not in ("train", "test"):
        raise ValueError(f"{ds}: split must be 'train' or 'test', got {split!r}")
    _require_dir(root, ds)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    base = os.path.join(root, "cifar-10-batches-py")
    if not os.path.isdir(base):
        base = root
    missing = [os.path.join(base, n) for n in names if not os.path.isfile(os.path.join(base, n))]
    if missing:
        raise DatasetNotFound(f"{ds}: missing batch file(s):\n  " + "\n  ".join(missing) +
                              f"\n(expected the official python version under {root}/cifar-10-batches-py)")
    classes = CIFAR10_CLASSES
    meta = os.path.join(base, "batches.meta")
    if os.path.isfile(meta):
        m = _strkeys(_read_restricted_pickle(meta), meta)
        ln = m.get("label_names")
        if isinstance(ln, list) and len(ln) == 10:
            classes = tuple(x.decode() if isinstance(x, bytes) else str(x) for x in ln)
    images, labels = [], []
    for n in names:
        if limit is not None and sum(map(len, labels)) >= limit:
            break
        batch_images, batch_labels = read_cifar10_batch(os.path.join(base, n))
        images.append(batch_images)
        labels.append(batch_labels)
    return np.concatenate(images)[:limit], np.concatenate(labels)[:limit], classes


# ----------------------------------------------------------------------------- AudioCaps

def load_audiocaps(root: str, split: str = "test", limit: int | None = None,
                   max_duration_s: float | None = None, missing: str = "skip") -> list[AudioClip]:
    """AudioCaps: one :class:`AudioClip` per audio file with all its captions.

    Args:
        root: local AudioCaps folder (CSV files from the official repository plus the audio
            you obtained, as WAV; layout in the module docstring).
        split: ``train``, ``val`` or ``test``.
        limit: at most this many clips, in CSV order.
        max_duration_s: keep only the first this-many seconds (None: whole clip, 10 s).
        missing: ``skip`` (warn once with the count: YouTube-sourced copies always miss some
            clips) or ``error`` for rows whose audio file is absent.

    Returns:
        Clips with ``wave`` float32 (n,) at 16 kHz mono, ``item_id`` ``"audiocaps/{split}/{youtube_id}"``.
    """
    entries = index_audiocaps(root, split, limit, missing, _warn_level=3)
    return [read_entry_audio(e, max_duration_s) for e in entries]


def index_audiocaps(root: str, split: str = "test", limit: int | None = None, missing: str = "skip",
                    _warn_level: int = 2) -> list[Entry]:
    """The entries of :func:`load_audiocaps` (one per clip whose WAV is there), audio not read."""
    ds = "AudioCaps"
    if missing not in ("skip", "error"):
        raise ValueError(f"missing must be 'skip' or 'error', got {missing!r}")
    _require_dir(root, ds)
    csv_path = _find([os.path.join(root, d, f"{split}.csv") for d in ("", "dataset", "csv")], ds,
                     f"{split}.csv")
    audio_dirs = [os.path.join(root, *p) for p in (("audio", split), ("audio",), (split,), ("wav", split))]
    audio_dir = _find(audio_dirs, ds, "audio folder", isdir=True)
    files = {os.path.splitext(n)[0]: n for n in os.listdir(audio_dir)}
    groups: OrderedDict[str, dict] = OrderedDict()
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {"audiocap_id", "youtube_id", "start_time", "caption"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise MalformedDataset(f"{ds}: {csv_path} must have columns {sorted(need)}, "
                                   f"has {reader.fieldnames}")
        for row in reader:
            g = groups.setdefault(row["youtube_id"], {"rows": [], "captions": []})
            g["rows"].append(row)
            g["captions"].append(row["caption"].strip())
    out, n_missing = [], 0
    for yid, g in groups.items():
        if limit is not None and len(out) >= limit:
            break
        r0 = g["rows"][0]
        stems = [yid, f"Y{yid}", f"{yid}_{r0['start_time']}", f"Y{yid}_{r0['start_time']}"]
        stems += [r["audiocap_id"] for r in g["rows"]]
        name = next((files[s] for s in stems if s in files), None)
        if name is None:
            if missing == "error":
                raise DatasetNotFound(f"{ds}: no audio for youtube_id {yid}; expected "
                                      f"{os.path.join(audio_dir, yid + '.wav')} (or {stems[1:]} .wav)")
            n_missing += 1
            continue
        path = os.path.join(audio_dir, name)
        if not name.lower().endswith(".wav"):
            raise UnsupportedMedia(f"{path}: audio must be WAV; convert it, e.g. "
                                   f"`ffmpeg -i {name} -ar 16000 {os.path.splitext(name)[0]}.wav`")
        out.append(Entry(f"audiocaps/{split}/{yid}", path, tuple(g["captions"])))
    if n_missing:
        warnings.warn(f"{ds}: skipped {n_missing} clip(s) of {csv_path} whose audio is not in {audio_dir}",
                      stacklevel=_warn_level)
    return out


# ----------------------------------------------------------------------------- MSR-VTT

MSRVTT_ANNOTATIONS: tuple[str, ...] = ("MSRVTT_data.json", "train_val_videodatainfo.json",
                                       "test_videodatainfo.json")
_MSRVTT_SPLIT = {"train": "train", "val": "validate", "test": "test"}


def load_msrvtt(root: str, split: str = "test", num_frames: int = 8, image_size: int = 32,
                limit: int | None = None, missing: str = "error") -> list[VideoClip]:
    """MSR-VTT: one :class:`VideoClip` per video with its (about twenty) captions.

    Args:
        root: local MSR-VTT folder (layout in the module docstring).
        split: ``train``, ``val`` (``validate`` in the JSON) or ``test``.
        num_frames: frames sampled evenly from the extracted frames (>= 1).
        image_size: frames are fitted to (image_size, image_size, 3).
        limit: at most this many videos, in JSON order.
        missing: ``error`` or ``skip`` (with a warning) for videos without extracted frames.

    Returns:
        Clips with ``frames`` uint8 (num_frames, image_size, image_size, 3),
        ``item_id`` ``"msrvtt/{video_id}"``.

    Raises:
        UnsupportedMedia: a video has only an ``.mp4`` (no frames): the message gives the
            ``ffmpeg`` command that extracts them.
    """
    entries = index_msrvtt(root, split, limit, missing, _warn_level=3)
    return [read_entry_video(e, num_frames, image_size) for e in entries]


def index_msrvtt(root: str, split: str = "test", limit: int | None = None, missing: str = "error",
                 _warn_level: int = 2) -> list[Entry]:
    """The entries of :func:`load_msrvtt` (one per video, ``path`` its frames folder), frames not read.

    A frames folder without image files is found when the entry is decoded
    (:func:`mtsc_sdr.data.media.read_frames` raises UnsupportedMedia naming it)."""
    ds = "MSR-VTT"
    if split not in _MSRVTT_SPLIT:
        raise ValueError(f"{ds}: split must be one of {list(_MSRVTT_SPLIT)}, got {split!r}")
    _require_dir(root, ds)
    cands = [os.path.join(root, d, n) for d in ("", "annotation", "annotations") for n in MSRVTT_ANNOTATIONS]
    paths = [p for p in cands if os.path.isfile(p)]
    if not paths:
        raise DatasetNotFound(f"{ds}: annotation JSON not found; expected one of:\n  " + "\n  ".join(cands))
    videos: OrderedDict[str, None] = OrderedDict()
    caps: dict[str, list[str]] = {}
    for p in paths:
        obj = _read_json(p, ds, ("videos", "sentences"))
        for v in obj["videos"]:
            if v.get("split", "test" if "test_" in os.path.basename(p) else "") == _MSRVTT_SPLIT[split]:
                videos.setdefault(v["video_id"], None)
        for s in obj["sentences"]:
            caps.setdefault(s["video_id"], [])
            if s["caption"].strip() not in caps[s["video_id"]]:
                caps[s["video_id"]].append(s["caption"].strip())
    frames_root = os.path.join(root, "frames")
    out, skipped = [], 0
    for vid in videos:
        if limit is not None and len(out) >= limit:
            break
        folder = os.path.join(frames_root, vid)
        if not os.path.isdir(folder):
            mp4 = next((os.path.join(root, d, vid + ".mp4") for d in ("videos", "TrainValVideo", "TestVideo", "")
                        if os.path.isfile(os.path.join(root, d, vid + ".mp4"))), None)
            if mp4 is not None:
                raise UnsupportedMedia(f"{ds}: {mp4} is a video file, which is not decoded here; extract "
                                       f"frames first: mkdir -p {folder} && ffmpeg -i {mp4} -vf fps=2 "
                                       f"{folder}/%05d.jpg")
            if missing == "skip":
                skipped += 1
                continue
            raise DatasetNotFound(f"{ds}: no frames for {vid}; expected image files in {folder}/")
        out.append(Entry(f"msrvtt/{vid}", folder, tuple(caps.get(vid, []))))
    if skipped:
        warnings.warn(f"{ds}: skipped {skipped} video(s) without frames under {frames_root}",
                      stacklevel=_warn_level)
    return out
