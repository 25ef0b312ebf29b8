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

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from mtsc_sdr import tasks

from ._inputs import check_text_pairs
from .cider import cider, cider_scores, coco_tokenize
from .image import psnr_db, psnr_db_per_image, psnr_db_torch, ssim, ssim_per_image, ssim_torch
from .text import BLEU_STATS_COLUMNS, bleu, bleu_from_stats, bleu_item_stats, sentence_bleu
from .vqa import answer_accuracy, normalize_answer, vqa_accuracy

#: Reports show CIDEr x 100, the convention of caption papers ("CIDEr 90" = pycocoevalcap's 0.90).
CIDER_REPORT_SCALE = 100.0

@dataclass(frozen=True)
class Metric:
    """One report metric. Exactly one of ``per_item`` / ``corpus`` is set.

    Attributes:
        name: the ``metric`` of report rows (a name in :attr:`mtsc_sdr.tasks.TaskSpec.metrics`).
        unit: the ``unit`` of its report rows.
        per_item: ``(hypotheses, references) -> float64 (N,)`` per-item scores on the report
            scale; the report value is their mean.
        corpus: ``(hypotheses, references) -> float``, a corpus-level score (no per-item form).
    """

    name: str
    unit: str
    per_item: Optional[Callable[[Any, Any], np.ndarray]] = None
    corpus: Optional[Callable[[Any, Any], float]] = None


_METRICS: tasks.Registry[Metric] = tasks.Registry("metric")

#: The ``unit`` of each metric's report rows (kept in step with the registered metrics).
METRIC_UNITS: dict[str, str] = {}


def register_metric(metric: Metric) -> Metric:
    """Add a metric under a new name."""
    if (metric.per_item is None) == (metric.corpus is None):
        raise ValueError(f"metric {metric.name!r}: give exactly one of per_item and corpus")
    _METRICS.register(metric.name, metric)
    METRIC_UNITS[metric.name] = metric.unit
    return metric


def unregister_metric(name: str) -> None:
    """Remove a metric (tests that register one of their own)."""
    _METRICS.unregister(name)
    del METRIC_UNITS[name]


#: The metric of a name; ValueError listing the metrics there are.
get_metric = _METRICS.get


def _vqa_accuracy_items(hypotheses, references) -> np.ndarray:
    preds, refs = check_text_pairs(hypotheses, references, "vqa accuracy")
    return 100.0 * np.array([answer_accuracy(p, r) for p, r in zip(preds, refs)])


register_metric(Metric("accuracy", "percent", per_item=_vqa_accuracy_items))
register_metric(Metric("bleu", "bleu4_0_100", corpus=bleu))
register_metric(Metric("cider", "ciderd_x100",
                       per_item=lambda h, r: CIDER_REPORT_SCALE * cider_scores(h, r)[1]))
register_metric(Metric("psnr_db", "dB", per_item=psnr_db_per_image))
register_metric(Metric("ssim", "ssim_0_1", per_item=ssim_per_image))


def score_task_items(task: str, hypotheses, references) -> dict[str, np.ndarray]:
    """Per-item scores, float64 (N,) on the report scale, of every metric of ``task`` that is a
    mean over items (all but corpus ones such as BLEU). Arguments as :func:`score_task`. Their
    spread gives a report's standard errors."""
    metrics = [get_metric(m) for m in tasks.get(task).metrics]
    return {m.name: m.per_item(hypotheses, references) for m in metrics if m.per_item is not None}


def score_task(task: str, hypotheses, references, *,
               items: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Every metric of ``task`` (:attr:`mtsc_sdr.tasks.TaskSpec.metrics`) on the report scale, as
    ``{metric_name: value}`` in the spec's order.

    Text tasks: ``hypotheses`` is one string per item, ``references`` per item a string or a list
    of strings (VQA: the human answers; captions: the reference captions). ``reconstruct``:
    ``hypotheses`` the reconstructed images, ``references`` the originals (layouts and ranges as
    in :mod:`mtsc_sdr.metrics.image`). ``items``: :func:`score_task_items` of the same inputs when
    the caller already has them (not computed again).
    """
    if items is None:
        items = score_task_items(task, hypotheses, references)
    return {m: float(items[m].mean()) if m in items else float(get_metric(m).corpus(hypotheses, references))
            for m in tasks.get(task).metrics}


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
    "BLEU_STATS_COLUMNS", "CIDER_REPORT_SCALE", "METRIC_UNITS", "Metric", "answer_accuracy", "bleu",
    "bleu_from_stats", "bleu_item_stats", "cider",
    "cider_scores", "coco_tokenize", "get_metric", "normalize_answer", "psnr_db", "psnr_db_per_image",
    "psnr_db_torch", "register_metric", "unregister_metric", "score_task", "score_task_items", "score_task_with_items", "sentence_bleu", "standard_error", "ssim",
    "ssim_per_image", "ssim_torch", "vqa_accuracy",
]
