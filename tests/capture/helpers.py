"""Helpers of the capture and replay tests: noise samples, a recording read through the sigmf package,
and the decoded items of a run."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "recordings"


def noise(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)


def sigmf_file(path: Path):
    """The recording through the sigmf package itself, validated; any warning is an error."""
    import sigmf

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = sigmf.sigmffile.fromfile(str(path))     # checks core:sha512 against the data too
        f.validate()
    return f


def jsonl_items(path: Path) -> list[dict]:
    records = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return sorted(records, key=lambda r: (r["session"], r["seq"]))


def decoded(records: list[dict]) -> list[tuple]:
    """What the task decoders made of each item: text, or the reconstruction's PSNR."""
    return [(r["session"], r["seq"], r["item_id"], r.get("psnr_db") if r["task"] == "reconstruct" else r["output"],
             r["snr_est_db"]) for r in records]
