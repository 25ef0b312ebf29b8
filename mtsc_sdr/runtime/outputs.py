"""The runtime side of each output kind (:attr:`mtsc_sdr.tasks.TaskSpec.output`): outputs per item,
their scores against the examples (``eval``), the fields of the client's result record and the
scores of a run's records (``run``).

Kinds whose outputs are JSON values (text, or a label) need nothing here: :class:`ValueOutputs`
puts the output in the record and scores it against the example's references. The ``image``
kind's outputs stay on the client: its record carries the per-item PSNR and SSIM (and the PNG
path with ``--images``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from mtsc_sdr import tasks
from mtsc_sdr.metrics import psnr_db_per_image, score_task_with_items, ssim_per_image


def to_uint8(images) -> np.ndarray:
    """float (B, 3, H, W) in [0, 1] (tensor or array) -> uint8 (B, H, W, 3)."""
    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    return np.clip(np.rint(np.moveaxis(arr, 1, -1) * 255.0), 0, 255).astype(np.uint8)


Scores = dict[str, tuple[float, Optional[np.ndarray]]]


class ValueOutputs:
    """Outputs that are JSON values (answers, captions, labels), scored against the references."""

    def items(self, outputs) -> list:
        """A batch of decoder outputs (:meth:`mtsc_sdr.model.split.ClientModel.decode`) -> one per item."""
        return list(outputs)

    def score(self, task: str, outputs: list, examples: list) -> Scores:
        """``{metric: (value, per-item scores or None)}`` of per-item outputs against the examples."""
        return score_task_with_items(task, list(outputs), [e.references for e in examples])

    def record(self, example, output, images_dir: Optional[str], session: int) -> dict[str, Any]:
        """The output's fields of the client's result record."""
        return {"output": output}

    def record_scores(self, task: str, records: list[dict]) -> Scores:
        """Scores of a run's answered records (none when some record has no reference)."""
        if not all(r.get("reference") for r in records):
            return {}
        return score_task_with_items(task, [r["output"] for r in records], [r["reference"] for r in records])


class ImageOutputs(ValueOutputs):
    """Images uint8 (H, W, 3) per item, scored against the example's ``target_image``."""

    def items(self, outputs) -> list:
        return list(to_uint8(outputs))

    def score(self, task, outputs, examples):
        # uint8 (N, H, W, 3) -> the metrics' batch layout (N, 3, H, W)
        hyps = np.ascontiguousarray(np.stack(outputs).transpose(0, 3, 1, 2))
        refs = np.ascontiguousarray(np.stack([e.target_image for e in examples]).transpose(0, 3, 1, 2))
        return score_task_with_items(task, hyps, refs)

    #: suffixes of a user's image file, dropped from the reconstruction's name
    IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")

    def record(self, example, output, images_dir, session):
        """``output``: the PNG path under ``images_dir`` (None without it); ``psnr_db`` and ``ssim``
        against the target (the input image when the example has no target)."""
        res: dict[str, Any] = {"output": None}
        if images_dir:
            from PIL import Image   # PIL: only when images are written

            user_file = Path(example.item_id)                   # a user's /x/photo.jpg -> 1_photo.png
            name = (user_file.stem if user_file.suffix.lower() in self.IMAGE_SUFFIXES
                    else example.item_id.replace("/", "_"))
            path = Path(images_dir) / f"{session}_{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(output).save(path)
            res["output"] = str(path)
        ref = example.target_image if example.target_image is not None else example.image
        a, b = output.transpose(2, 0, 1)[None], ref.transpose(2, 0, 1)[None]
        res["psnr_db"] = round(float(psnr_db_per_image(a, b, 255.0)[0]), 4)
        res["ssim"] = round(float(ssim_per_image(a, b, 255.0)[0]), 5)
        return res

    def record_scores(self, task, records):
        values = {m: np.array([r[m] for r in records], dtype=float) for m in tasks.get(task).metrics}
        return {m: (float(v.mean()), v) for m, v in values.items()}


_KINDS: dict[str, ValueOutputs] = {"image": ImageOutputs()}


def outputs_for(task: str) -> ValueOutputs:
    """The runtime handling of ``task``'s output kind."""
    return _KINDS.get(tasks.get(task).output, ValueOutputs())


__all__ = ["ImageOutputs", "ValueOutputs", "outputs_for", "to_uint8"]
