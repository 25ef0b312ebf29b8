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
        if r["metric"] in ("accuracy", "cider", "psnr_db", "ssim") or "question_type" in r:
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
        rows = {r["metric"]: r["value"] for r in rep["rows"] if r["task"] == "vqa" and r["snr_db"] == o["snr_db"]
                and "question_type" not in r}
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
    """benchmarks/quality_vs_snr.py end to end on the micro model, both channels (schema, checks
    and Markdown, not quality); its check functions on known rows: tests/benchmarks/."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "quality_vs_snr.py"
    out = subprocess.run([sys.executable, str(script), "--checkpoint", str(checkpoint), "--n-per-task", "3",
                          "--snr-db", "-5,0,20", "--ablation-budget", "64", "--threads", "1", "--out", str(tmp_path),
                          "--markdown"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    rep = json.loads((tmp_path / "quality.json").read_text())
    assert rep["meta"]["config"]["channels"] == ["awgn", "rician"] and rep["meta"]["config"]["budget"] == 512
    systems = {(r["channel"], r["system"]) for r in rep["rows"]}
    for ch in ("awgn", "rician"):
        assert {(ch, s) for s in ("mtsc", "separate", "capacity", "linear", "ablation_importance", "ablation_fixed",
                                  "ablation_random")} <= systems
        assert (tmp_path / ch / "eval_reconstruct.png").is_file()
    assert all(r["symbols_per_item"] == 512 for r in rep["rows"]
               if r["system"] in ("mtsc", "separate", "capacity", "linear") and "symbols_per_item" in r)
    # the linear scheme is computed on exactly the evaluated test patches
    ids = rep["meta"]["eval"]["awgn"]["item_ids"]["reconstruct"]
    assert len(ids) == 3 and all(r["n"] == 3 for r in rep["rows"] if r["system"] == "linear")
    # over Rician, at the SNR each of our patches arrived with (paired fading draws)
    arrived = {r["snr_db"]: r["item_snr_db"] for r in rep["rows"] if r["system"] == "mtsc"
               and r["task"] == "reconstruct" and r["metric"] == "psnr_db" and r["channel"] == "rician"}
    assert sorted(arrived) == [-5.0, 0.0, 20.0] and all(len(v) == 3 for v in arrived.values())
    assert arrived[20.0] != [20.0] * 3
    assert {r.get("fading_draws") for r in rep["rows"] if r["system"] == "linear" and r["channel"] == "rician"} == {"ours"}
    assert any("question_type" in r and r["metric"].startswith("accuracy_") for r in rep["rows"])
    names = ["vqa_accuracy", "vqa_vs_question_only", "reconstruct_vs_linear", "reconstruct_vs_separate",
             "reconstruct_rises", "text_beats_separate", "monotone", "importance_ablation"]
    assert [(c["channel"], c["name"]) for c in rep["checks"]] == [(ch, n) for ch in ("awgn", "rician") for n in names]
    assert all(c["passed"] is None for c in rep["checks"] if c["name"] == "vqa_vs_question_only")
    assert [g["snr_db"] for g in rep["gaps"]] == [-5.0, 0.0, 20.0] * 2
    md = out.stdout
    assert "### AWGN: test split, 512 complex symbols per item" in md and "### VQA accuracy (%) per question type" in md
    for c in rep["checks"]:
        result = {True: "PASS", False: "FAIL", None: "NOT RUN"}[c["passed"]]
        assert f"| {c['name']} | {c['channel']} | {result} |" in md


def test_quality_benchmark_needs_a_checkpoint_and_trains_none(checkpoint, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "quality_vs_snr.py"
    env = {**os.environ, "MTSC_MODELS": str(tmp_path / "models")}
    out = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "o")], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 2 and "no checkpoint at" in out.stderr and str(tmp_path / "models") in out.stderr
    assert not (tmp_path / "models").exists() and not (tmp_path / "o").exists()
    # a model trained with its images is no question-only model
    out = subprocess.run([sys.executable, str(script), "--checkpoint", str(checkpoint), "--question-only",
                          str(checkpoint), "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "blind" in out.stderr


def test_eval_rows_per_question_type(checkpoint):
    """VQA rows per question type: metric accuracy_<type> with question_type and n; their
    item-weighted mean is the task's accuracy; every system gets them."""
    import numpy as np

    from mtsc_sdr.data import QUESTION_TYPES
    from mtsc_sdr.runtime.evaluate import evaluate, question_type_metric

    rep = evaluate(checkpoint, [10.0], tasks=("vqa",), n_per_task=24, seed=2, item_values=True)
    for system in ("mtsc", "separate"):
        mine = [r for r in rep["rows"] if r["system"] == system]
        whole = next(r for r in mine if r["metric"] == "accuracy")
        typed = [r for r in mine if "question_type" in r]
        assert typed and {r["question_type"] for r in typed} <= set(QUESTION_TYPES)
        assert all(r["metric"] == f"accuracy_{r['question_type']}" and "item_values" not in r
                   and r["unit"] == "percent" and r["std_error"] >= 0 for r in typed)
        assert sum(r["n"] for r in typed) == whole["n"] == 24
        assert sum(r["n"] * r["value"] for r in typed) / 24 == pytest.approx(whole["value"])
        assert np.mean(whole["item_values"]) == pytest.approx(whole["value"])
    assert question_type_metric("accuracy", "yes/no") == "accuracy_yes_no"
    assert question_type_metric("accuracy", "Other") == "accuracy_other"


def test_eval_blind_zeroes_the_image_of_tasks_with_a_question(checkpoint, monkeypatch):
    from mtsc_sdr.data import examples, zero_question_inputs
    from mtsc_sdr.runtime import evaluate as ev

    items = examples("test", ["vqa"], n_per_task=2)
    zeroed = zero_question_inputs(items, "vqa")
    assert all(not z.image.any() and z.image.shape == e.image.shape and z.question == e.question
               for z, e in zip(zeroed, items))
    caps = examples("test", ["caption_image"], n_per_task=1)
    assert zero_question_inputs(caps, "caption_image") is caps
    assert ev.checkpoint_is_blind(checkpoint) is False
    seen = []
    real = ev._model_outputs
    monkeypatch.setattr(ev, "_model_outputs",
                        lambda model, task, items, *a: seen.append(items) or real(model, task, items, *a))
    rep = ev.evaluate(checkpoint, [20.0], tasks=("vqa",), n_per_task=2, baseline=False, blind=True)
    assert rep["meta"]["config"]["blind"] is True and not any(e.image.any() for e in seen[0])
    seen.clear()
    rep = ev.evaluate(checkpoint, [20.0], tasks=("vqa",), n_per_task=2, baseline=False)   # blind from trainer_state
    assert rep["meta"]["config"]["blind"] is False
    assert any(e.image.any() for e in seen[0])


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


def test_eval_on_a_domain_of_the_world(checkpoint, tmp_path, capsys):
    from mtsc_sdr.cli import main
    from mtsc_sdr.data.domains import NEW_QUESTION_TYPES

    rc = main(["eval", "--checkpoint", str(checkpoint), "--snr-db", "10", "--n-per-task", "3", "--split", "val",
               "--domain", "new_questions", "--tasks", "vqa", "--no-baseline", "--out", str(tmp_path), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["meta"]["config"]["domain"] == "new_questions"
    assert report["meta"]["config"]["data"] == {"vqa": "builtin:new_questions"}
    assert all(i.startswith("new_questions/scene/val/") for i in report["meta"]["item_ids"]["vqa"])
    assert {r["question_type"] for r in report["rows"] if "question_type" in r} <= set(NEW_QUESTION_TYPES)
    with pytest.raises(SystemExit):
        main(["eval", "--checkpoint", str(checkpoint), "--domain", "dark"])
    assert "new_questions" in capsys.readouterr().err
