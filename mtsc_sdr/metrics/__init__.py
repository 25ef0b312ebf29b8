"""Task metrics: BLEU, CIDEr-D, VQA accuracy, PSNR, SSIM, and :func:`score_task` for reports.

Report scales (what :func:`score_task` returns and what goes into report rows):

=========== ================================================ =====================================
metric      definition                                       scale
=========== ================================================ =====================================
accuracy    VQA accuracy, official answer normalisation      0-100
bleu        corpus BLEU-4, sacrebleu (13a, exp smoothing)    0-100
cider       corpus CIDEr-D as pycocoevalcap computes it      x100 (pycocoevalcap's 0.9 -> 90)
psnr_db     mean over images of per-image PSNR               dB
ssim        mean over images of SSIM (Gaussian 11x11, 1.5)   0-1
=========== ================================================ =====================================

The functions themselves return: :func:`bleu` and :func:`vqa_accuracy` 0-100, :func:`cider`
pycocoevalcap's own scale (multiply by :data:`CIDER_REPORT_SCALE` for reports, as papers do),
:func:`psnr_db` dB, :func:`ssim` 0-1.
"""

from __future__ import annotations

import numpy as np

from ._inputs import check_text_pairs
from .cider import cider, cider_scores, coco_tokenize
from .image import psnr_db, psnr_db_per_image, psnr_db_torch, ssim, ssim_per_image, ssim_torch
from .text import bleu, sentence_bleu
from .vqa import answer_accuracy, normalize_answer, vqa_accuracy

#: Reports show CIDEr x 100, the convention of caption papers ("CIDEr 90" = pycocoevalcap's 0.90).
CIDER_REPORT_SCALE = 100.0

#: The ``unit`` of each metric's report rows.
METRIC_UNITS = {
    "accuracy": "percent",
    "bleu": "bleu4_0_100",
    "cider": "ciderd_x100",
    "psnr_db": "dB",
    "ssim": "ssim_0_1",
}

#: Which metrics each task is scored with (task names as in DESIGN.md).
TASK_METRICS = {
    "vqa": ("accuracy", "bleu"),
    "caption_image": ("cider", "bleu"),
    "caption_audio": ("cider", "bleu"),
    "caption_video": ("cider", "bleu"),
    "reconstruct": ("psnr_db", "ssim"),
}


def _check_task(task: str) -> None:
    if task not in TASK_METRICS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASK_METRICS)}")


def score_task_items(task: str, hypotheses, references) -> dict[str, np.ndarray]:
    """Per-item scores, float64 (N,) on the report scale, of every metric of ``task`` that is a
    mean over items (all but corpus BLEU, which has no per-item form). Arguments as
    :func:`score_task`. Their spread gives a report's standard errors."""
    _check_task(task)
    if task == "reconstruct":
        return {"psnr_db": psnr_db_per_image(hypotheses, references),
                "ssim": ssim_per_image(hypotheses, references)}
    if task == "vqa":
        preds, refs = check_text_pairs(hypotheses, references, "vqa accuracy")
        return {"accuracy": 100.0 * np.array([answer_accuracy(p, r) for p, r in zip(preds, refs)])}
    return {"cider": CIDER_REPORT_SCALE * cider_scores(hypotheses, references)[1]}


def score_task(task: str, hypotheses, references, *,
               items: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Every metric of ``task`` on the report scale, as ``{metric_name: value}``.

    Text tasks: ``hypotheses`` is one string per item, ``references`` per item a string or a list
    of strings (VQA: the human answers; captions: the reference captions). ``reconstruct``:
    ``hypotheses`` the reconstructed images, ``references`` the originals (layouts and ranges as
    in :mod:`mtsc_sdr.metrics.image`). ``items``: :func:`score_task_items` of the same inputs when
    the caller already has them (not computed again).
    """
    if items is None:
        items = score_task_items(task, hypotheses, references)
    scores = {m: float(v.mean()) for m, v in items.items()}
    if task != "reconstruct":
        scores["bleu"] = bleu(hypotheses, references)
    return {m: scores[m] for m in TASK_METRICS[task]}


def score_task_with_items(task: str, hypotheses, references) -> dict[str, tuple[float, np.ndarray | None]]:
    """:func:`score_task` with each metric's per-item scores: ``{metric: (value, per_item or None)}``
    (None for corpus BLEU). What a report row with a standard error needs."""
    items = score_task_items(task, hypotheses, references)
    return {m: (v, items.get(m)) for m, v in score_task(task, hypotheses, references, items=items).items()}


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of per-item scores, ``std(ddof=1) / sqrt(n)`` (0 for one item;
    ``nan`` when a score is infinite, e.g. an exactly reproduced image's PSNR)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return 0.0
    if not np.all(np.isfinite(values)):
        return float("nan")
    return float(values.std(ddof=1) / np.sqrt(values.size))


__all__ = [
    "CIDER_REPORT_SCALE", "METRIC_UNITS", "TASK_METRICS", "answer_accuracy", "bleu", "cider",
    "cider_scores", "coco_tokenize", "normalize_answer", "psnr_db", "psnr_db_per_image",
    "psnr_db_torch", "score_task", "score_task_items", "score_task_with_items", "sentence_bleu", "standard_error", "ssim",
    "ssim_per_image", "ssim_torch", "vqa_accuracy",
]
