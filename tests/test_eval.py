"""``mtsc-sdr eval`` on a freshly trained micro checkpoint: SNR range parsing, eval.json in the
report schema with mtsc / separate / capacity rows, PNG plots, the table."""

from __future__ import annotations

import json
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


def test_eval_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    from mtsc_sdr.cli import main

    assert main(["eval", "--checkpoint", str(tmp_path / "none"), "--snr-db", "0"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
