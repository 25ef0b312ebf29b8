"""``mtsc-sdr eval`` on a freshly trained micro checkpoint: SNR range parsing, eval.json in the
report schema with mtsc / separate / capacity rows, PNG plots, the table."""

from __future__ import annotations

import json
import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

from mtsc_sdr.runtime.evaluate import parse_snr_list


def test_parse_snr_list():
    assert parse_snr_list("-5:20:5") == [-5.0, 0.0, 5.0, 10.0, 15.0, 20.0]
    assert parse_snr_list("0:10:4") == [0.0, 4.0, 8.0]
    assert parse_snr_list("0:1:0.5") == [0.0, 0.5, 1.0]
    assert parse_snr_list("3") == [3.0]
    assert parse_snr_list("-5, 10") == [-5.0, 10.0]
    for bad in ("", "a:b", "0:10:0", "10:0:5", "1:2:3:4"):
        with pytest.raises(ValueError, match="SNR"):
            parse_snr_list(bad)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from mtsc_sdr.train.config import TrainConfig
    from mtsc_sdr.train.trainer import train

    out = tmp_path_factory.mktemp("ck") / "micro"
    cfg = TrainConfig.from_dict({"preset": "micro", "tokenizer_scenes": 40, "examples_per_task": 8,
                                 "steps": 3, "batch_size": 2, "checkpoint_dir": str(out)})
    train(cfg, quiet=True)
    return out


def test_eval_cli_writes_report_and_plots(checkpoint, tmp_path, capsys):
    from mtsc_sdr.cli import main

    out = tmp_path / "eval"
    rc = main(["eval", "--checkpoint", str(checkpoint), "--snr-db", "-5:10:15", "--n-per-task", "3",
               "--tasks", "vqa", "caption_image", "caption_audio", "reconstruct", "--out", str(out), "--json"])
    assert rc == 0
    cap = capsys.readouterr()
    report = json.loads(cap.out)
    assert report == json.loads((out / "eval.json").read_text())
    assert set(report) == {"meta", "rows"}
    rows = report["rows"]
    for r in rows:
        assert {"system", "task", "channel", "snr_db", "metric", "value"} <= set(r)
        assert r["channel"] == "awgn" and r["snr_db"] in (-5.0, 10.0)
    have = {(r["system"], r["task"], r["metric"]) for r in rows}
    for task, metrics in {"vqa": ("accuracy", "bleu"), "caption_image": ("cider", "bleu"),
                          "caption_audio": ("cider", "bleu"), "reconstruct": ("psnr_db", "ssim")}.items():
        for m in metrics:
            assert ("mtsc", task, m) in have
    for task in ("vqa", "caption_image", "reconstruct"):
        assert ("separate", task, "delivery_rate") in have
    assert ("separate", "reconstruct", "psnr_db") in have and ("capacity", "reconstruct", "psnr_db") in have
    assert not any(r["system"] == "separate" and r["task"] == "caption_audio" for r in rows)
    assert any("caption_audio" in s for s in report["meta"]["skipped"])
    assert report["meta"]["config"]["snr_db"] == [-5.0, 10.0]
    for r in rows:   # a standard error on every mean-over-items metric, none on corpus BLEU
        if r["metric"] in ("accuracy", "cider", "psnr_db", "ssim"):
            assert r["std_error"] >= 0 or math.isnan(r["std_error"]), r
        else:
            assert "std_error" not in r, r
    # capacity is an upper bound on the separate baseline at the same budget
    psnr = {(r["system"], r["snr_db"]): r["value"] for r in rows if r["metric"] == "psnr_db"}
    for snr in (-5.0, 10.0):
        assert psnr[("capacity", snr)] >= psnr[("separate", snr)] - 1e-6
    for task in ("vqa", "caption_image", "caption_audio", "reconstruct"):
        png = out / f"eval_{task}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "reconstruct" in cap.err and "capacity" in cap.err  # the table went to stderr


def test_eval_rician_no_baseline_and_reproducible(checkpoint):
    from mtsc_sdr.runtime.evaluate import evaluate

    kw = dict(channel="rician", tasks=("reconstruct",), n_per_task=2, baseline=False, seed=4)
    a = evaluate(checkpoint, [0.0], **kw)
    b = evaluate(checkpoint, [0.0], **kw)
    assert {r["system"] for r in a["rows"]} == {"mtsc"}
    assert [r["value"] for r in a["rows"]] == [r["value"] for r in b["rows"]]
    c = evaluate(checkpoint, [0.0], item_values=True, **kw)
    for r in c["rows"]:    # psnr_db and ssim: every item's score, averaging to the row's value
        assert len(r["item_values"]) == r["n"] == 2
        assert sum(r["item_values"]) / 2 == pytest.approx(r["value"])


def test_eval_keeps_text_outputs_and_references(checkpoint):
    """``item_outputs``: the outputs of text tasks per SNR, in ``item_ids`` order, scoring again to
    the rows' values; none for images."""
    from mtsc_sdr.metrics import score_task
    from mtsc_sdr.runtime.evaluate import evaluate

    rep = evaluate(checkpoint, [0.0, 10.0], tasks=("vqa", "reconstruct"), n_per_task=2, baseline=False,
                   item_outputs=True)
    meta = rep["meta"]
    assert [(o["task"], o["snr_db"]) for o in meta["item_outputs"]] == [("vqa", 0.0), ("vqa", 10.0)]
    assert set(meta["item_references"]) == {"vqa"} and len(meta["item_references"]["vqa"]) == 2
    for o in meta["item_outputs"]:
        assert len(o["outputs"]) == len(meta["item_ids"]["vqa"]) == 2
        again = score_task("vqa", o["outputs"], meta["item_references"]["vqa"])
        rows = {r["metric"]: r["value"] for r in rep["rows"] if r["task"] == "vqa" and r["snr_db"] == o["snr_db"]}
        assert again == pytest.approx(rows)
    assert "item_outputs" not in evaluate(checkpoint, [0.0], tasks=("vqa",), n_per_task=1, baseline=False)["meta"]


def test_eval_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    from mtsc_sdr.cli import main

    assert main(["eval", "--checkpoint", str(tmp_path / "none"), "--snr-db", "0"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_eval_selection_ablation_rows(checkpoint):
    from mtsc_sdr.runtime.evaluate import evaluate

    kw = dict(tasks=("vqa",), n_per_task=3, baseline=False, seed=1)
    for sel in ("fixed", "random"):
        rep = evaluate(checkpoint, [-5.0], selection=sel, **kw)
        assert {r["system"] for r in rep["rows"]} == {f"mtsc_{sel}"}
        assert rep["meta"]["config"]["selection"] == sel
    with pytest.raises(ValueError, match="selection"):
        evaluate(checkpoint, [0.0], selection="best", **kw)


def test_quality_benchmark_runs_and_checks_targets(checkpoint, tmp_path):
    """benchmarks/quality_vs_snr.py end to end on the micro model (schema and checks, not quality)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "quality_vs_snr.py"
    out = subprocess.run([sys.executable, str(script), "--checkpoint", str(checkpoint), "--n-per-task", "2",
                          "--snr-db", "-5,5,10", "--ablation-budget", "64", "--out", str(tmp_path)], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    rep = json.loads((tmp_path / "quality.json").read_text())
    systems = {r["system"] for r in rep["rows"]}
    assert {"mtsc", "separate", "capacity", "ablation_importance", "ablation_fixed", "ablation_random"} <= systems
    assert [c["name"] for c in rep["checks"]] == ["beats_baseline", "monotone", "patches_vs_capacity",
                                                  "importance_ablation"]
    for c in rep["checks"]:
        assert f"{'PASS' if c['passed'] else 'FAIL'} {c['name']}" in out.stdout


def test_quality_checks_on_known_rows():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "quality_vs_snr", Path(__file__).resolve().parents[2] / "benchmarks" / "quality_vs_snr.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def r(system, task, snr, metric, value):
        return {"system": system, "task": task, "channel": "awgn", "snr_db": snr, "metric": metric, "value": value}

    rows = [r("mtsc", "reconstruct", s, "psnr_db", v) for s, v in ((0.0, 25.0), (5.0, 27.0), (10.0, 28.0))]
    rows += [r("capacity", "reconstruct", s, "psnr_db", v) for s, v in ((0.0, 24.0), (5.0, 27.5), (10.0, 30.0))]
    rows += [r("separate", "reconstruct", s, "psnr_db", v) for s, v in ((0.0, 10.0), (5.0, 20.0))]
    rows += [r("mtsc", "vqa", s, "accuracy", v) for s, v in ((-5.0, 50.0), (0.0, 60.0), (10.0, 59.0))]
    rows += [r("ablation_importance", "vqa", s, "accuracy", v) for s, v in ((-5.0, 50.0), (0.0, 60.0))]
    rows += [r("ablation_fixed", "vqa", -5.0, "accuracy", 40.0), r("ablation_random", "vqa", -5.0, "accuracy", 45.0)]
    checks = {c["name"]: c for c in mod.check_targets(rows)}
    assert checks["beats_baseline"]["passed"]
    assert not checks["monotone"]["passed"] and "vqa +1.00 (10->0 dB, noise allowance 0.00)" in checks["monotone"]["detail"]
    assert not checks["patches_vs_capacity"]["passed"]          # 27.0 < 27.5 at 5 dB
    assert checks["importance_ablation"]["passed"]
    rows.append(r("ablation_random", "vqa", 0.0, "accuracy", 61.0))
    assert not {c["name"]: c for c in mod.check_targets(rows)}["importance_ablation"]["passed"]
    # paired over the same items: a rise within twice the standard error of the per-item
    # differences is noise, a larger one is not
    vqa = {row["snr_db"]: row for row in rows if row["system"] == "mtsc" and row["task"] == "vqa"}
    vqa[10.0]["item_values"] = [60.0, 58.0, 59.0, 57.0, 61.0]     # mean 59
    vqa[0.0]["item_values"] = [61.0, 57.0, 61.0, 58.0, 63.0]      # mean 60: diffs 1 -1 2 1 2
    vqa[-5.0]["item_values"] = [50.0, 48.0, 52.0, 49.0, 51.0]
    # allowance 2 * std([1, -1, 2, 1, 2], ddof=1) / sqrt(5) = 1.10 > the rise of 1.0 (rows'
    # "value" give the rise; only vqa 10 -> 0 dB rises)
    assert mod.check_targets(rows)[1]["passed"], mod.check_targets(rows)[1]
    vqa[0.0]["item_values"] = [60.5, 59.0, 60.0, 58.0, 62.5]      # diffs 0.5 1 1 1 1.5: tight
    assert not mod.check_targets(rows)[1]["passed"]


def test_eval_held_out_phrasing_split(checkpoint, tmp_path, capsys):
    from mtsc_sdr.cli import main

    rc = main(["eval", "--checkpoint", str(checkpoint), "--snr-db", "10", "--n-per-task", "2", "--split",
               "test_phrasing", "--tasks", "vqa", "caption_video", "--no-baseline", "--out", str(tmp_path), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["meta"]["config"]["split"] == "test_phrasing"
    assert all(i.startswith(("scene/test_phrasing/", "video/test_phrasing/"))
               for ids in report["meta"]["item_ids"].values() for i in ids)
    assert {(r["task"], r["system"]) for r in report["rows"]} == {("vqa", "mtsc"), ("caption_video", "mtsc")}
