"""Tiny fixtures of the real data sets, written in their official on-disk formats.

Each ``write_*`` builds one data set under ``root`` (created if needed) and returns ``root``;
:func:`write_all` builds all five side by side and returns their ``--data`` specs. Images are
solid colours (JPEG), audio is a 440 Hz tone at 44.1 kHz (resampled to 16 kHz on load), video is
a folder of extracted frames.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import wavfile

CAPTIONS = ("a red square on grey", "something red")


def jpg(path, w=40, h=30, colour=(200, 30, 30)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (w, h), colour).save(path, "JPEG")


def vqa_answer(qid, iid, a, t):
    """One VQAv2 annotation record with ten identical human answers."""
    return {"question_id": qid, "image_id": iid, "question_type": "x", "answer_type": t,
            "multiple_choice_answer": a,
            "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1} for k in range(10)]}


def write_vqav2(root, split="val", n_images=3, questions_per_image=2):
    """``v2_OpenEnded_mscoco_{split}2014_questions.json``, ``v2_mscoco_{split}2014_annotations.json``
    and ``{split}2014/COCO_{split}2014_<id>.jpg``."""
    root = Path(root)
    qs, an = [], []
    for i in range(1, n_images + 1):
        jpg(str(root / f"{split}2014" / f"COCO_{split}2014_{i:012d}.jpg"), colour=(40 * i % 256, 30, 30))
        for k in range(questions_per_image):
            qid = i * 10 + k
            qs.append({"image_id": i, "question": f"what colour is thing {k}?", "question_id": qid})
            an.append(vqa_answer(qid, i, "red", "other"))
    (root / f"v2_OpenEnded_mscoco_{split}2014_questions.json").write_text(json.dumps({"questions": qs}))
    (root / f"v2_mscoco_{split}2014_annotations.json").write_text(json.dumps({"annotations": an}))
    return root


def write_coco(root, split="val", n_images=3, year=2014):
    """``annotations/captions_{split}{year}.json`` and ``{split}{year}/<file_name>``."""
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(1, n_images + 1):
        name = f"COCO_{split}{year}_{i:012d}.jpg"
        jpg(str(root / f"{split}{year}" / name), 64, 48)
        images.append({"id": i, "file_name": name, "width": 64, "height": 48})
        anns += [{"image_id": i, "id": 10 * i + k, "caption": c} for k, c in enumerate(CAPTIONS)]
    (root / "annotations" / f"captions_{split}{year}.json").write_text(json.dumps({"images": images,
                                                                                  "annotations": anns}))
    return root


def cifar_batch(path, n, seed):
    """One CIFAR-10 python batch (protocol-2 pickle of a dict with bytes keys); returns the dict."""
    rng = np.random.default_rng(seed)
    d = {b"batch_label": b"testing batch 1 of 1", b"labels": [int(x) for x in rng.integers(0, 10, n)],
         b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
         b"filenames": [f"img_{k}.png".encode() for k in range(n)]}
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)
    return d


def write_cifar10(root, per_batch=4, train=True):
    """``cifar-10-batches-py/`` with ``test_batch``, ``batches.meta`` and (``train``) data_batch_1..5."""
    from mtsc_sdr.data.real import CIFAR10_CLASSES

    base = Path(root) / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    cifar_batch(base / "test_batch", per_batch, 0)
    for i in range(1, 6) if train else ():
        cifar_batch(base / f"data_batch_{i}", per_batch, i)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR10_CLASSES],
                     b"num_cases_per_batch": per_batch, b"num_vis": 3072}, f, protocol=2)
    return Path(root)


def tone(seconds=1.0, rate_hz=44100):
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    return (np.sin(2 * np.pi * 440 * t) * 16000).astype(np.int16)


def write_audiocaps(root, split="test", n_clips=3, seconds=1.0):
    """``{split}.csv`` (audiocap_id, youtube_id, start_time, caption) and ``audio/{split}/<id>.wav``."""
    root = Path(root)
    (root / "audio" / split).mkdir(parents=True, exist_ok=True)
    with open(root / f"{split}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
        for i in range(n_clips):
            for k, c in enumerate(("a tone sounds", "beeping")):
                w.writerow([10 * i + k, f"yt{i}", 30, c])
            wavfile.write(root / "audio" / split / f"yt{i}.wav", 44100, tone(seconds))
    return root


def write_msrvtt(root, splits=("train", "test"), per_split=2, frames=5):
    """``MSRVTT_data.json`` (videos with ``split``, sentences) and ``frames/<video_id>/*.jpg``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    videos, sentences = [], []
    for split in splits:
        for i in range(per_split):
            vid = f"video{len(videos)}"
            videos.append({"video_id": vid, "split": split, "id": len(videos)})
            sentences += [{"video_id": vid, "caption": c, "sen_id": len(sentences) + k}
                          for k, c in enumerate(("a man is talking", "someone speaks"))]
            for k in range(frames):
                jpg(str(root / "frames" / vid / f"{k:05d}.jpg"), 64, 48, (k * 50, 0, 0))
    (root / "MSRVTT_data.json").write_text(json.dumps({"info": {}, "videos": videos, "sentences": sentences}))
    return root


def write_all(root, n=3):
    """All five data sets under ``root/<name>`` with train and test/val splits; their ``--data`` specs."""
    root = Path(root)
    vqa, coco = root / "vqav2", root / "coco"
    for split in ("train", "val"):
        write_vqav2(vqa, split, n)
        write_coco(coco, split, n)
    write_cifar10(root / "cifar10", per_batch=n)
    for split in ("train", "test"):
        write_audiocaps(root / "audiocaps", split, n)
    write_msrvtt(root / "msrvtt", per_split=n)
    return [f"{name}={root / name}" for name in ("vqav2", "coco", "cifar10", "audiocaps", "msrvtt")]
