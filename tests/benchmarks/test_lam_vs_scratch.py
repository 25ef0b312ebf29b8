"""The pre-training benchmark runs end to end in ``--quick`` mode and writes the project's
tidy-row JSON; the paired differences on known rows. Checks structure, not figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.helpers import load_benchmark

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "lam_vs_scratch.py"
ROW_KEYS = {"system", "task", "channel", "snr_db", "metric", "value"}


def _module():
    return load_benchmark("lam_vs_scratch")


@pytest.mark.timeout(900)
def test_quick_run_report_structure(tmp_path, minilm_env):
    """Every system trains and is evaluated; the minilm ones on the tiny fixture base weights
    (``minilm_env``, inherited by the script's process), so the suite stays fast. It takes about
    40 s alone; the limits only catch a hang (a fresh clone's suite beside two trainings ran it past
    300 s)."""
    out = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", "--out", str(tmp_path),
                          "--tasks", "vqa", "caption_image", "reconstruct"],
                         capture_output=True, text=True, timeout=840)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report == json.loads((tmp_path / "lam_vs_scratch.json").read_text())
    meta, rows = report["meta"], report["rows"]
    assert {"config", "seeds", "versions", "machine", "skipped"} <= set(meta)
    assert all(ROW_KEYS <= set(r) for r in rows)
    ran = {r["system"] for r in rows}
    assert ran == {"minilm-lora", "minilm-scratch", "default"} and not meta["skipped"]
    for system in ran:
        mine = [r for r in rows if r["system"] == system]
        assert {r["data_fraction"] for r in mine if r["metric"] == "train_time_s"} == {1.0, 0.1}
        evals = [r for r in mine if r.get("stage") == "eval"]
        assert {(r["split"], r["data_fraction"]) for r in evals} == {("test", 1.0), ("test", 0.1),
                                                                     ("test_phrasing", 1.0)}
        assert {r["channel"] for r in evals} == {"awgn", "rician"} and {r["snr_db"] for r in evals} == {-5.0, 20.0}
        assert {r["task"] for r in evals if r["split"] == "test_phrasing"} == {"vqa", "caption_image"}
    diffs = [r for r in rows if r["metric"].endswith("_diff")]
    assert diffs and all(r["peer"] == "minilm-scratch" and "std_error" in r for r in diffs)


def test_paired_differences_on_known_rows():
    mod = _module()

    def r(system, metric, value, items=None, split="test"):
        extra = {"item_values": items} if items is not None else {}
        return {"system": system, "task": "vqa", "channel": "awgn", "snr_db": 0.0, "metric": metric, "value": value,
                "split": split, "data_fraction": 1.0, "stage": "eval", **extra}

    rows = [r("minilm-lora", "accuracy", 0.75, [1, 1, 1, 0]), r("minilm-scratch", "accuracy", 0.25, [0, 1, 0, 0]),
            r("minilm-lora", "bleu", 0.5), r("minilm-scratch", "bleu", 0.25),
            r("minilm-lora", "accuracy", 0.5, [1, 0], split="test_phrasing"), r("default", "accuracy", 0.0, [0, 0])]
    diffs = {(d["metric"], d["split"]): d for d in mod.diff_rows(rows)}
    assert set(diffs) == {("accuracy_diff", "test"), ("bleu_diff", "test")}   # no peer row on test_phrasing
    acc = diffs[("accuracy_diff", "test")]
    assert acc["value"] == pytest.approx(0.5) and acc["paired"] and acc["peer"] == "minilm-scratch"
    assert acc["std_error"] == pytest.approx(pytest.importorskip("numpy").std([1, 0, 1, 0], ddof=1) / 2)
    assert diffs[("bleu_diff", "test")]["std_error"] is None and not diffs[("bleu_diff", "test")]["paired"]


def test_missing_backbone_is_a_clear_error():
    mod = _module()
    from mtsc_sdr.config import ConfigError

    cfg = mod.system_config({"preset": "micro", "data_fraction": 0.5}, mod.SYSTEMS["default"])
    assert cfg.data_fraction == 0.5 and cfg.model_config().backbone == "bart"
    with pytest.raises(ConfigError, match="model.backbone: the 'nonesuch' backbone is not in this checkout"):
        mod.system_config({"preset": "micro"}, {"backbone": "nonesuch"})
