"""The quality benchmark's targets, gaps and Markdown on known rows (pure functions, no model), and
the PCA + LMMSE scheme of patch_bounds.py it compares reconstruction with. The script end to end on
a micro model: tests/runtime/test_evaluate.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.benchmarks.helpers import load_benchmark

SNRS = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)


@pytest.fixture(scope="module")
def q():
    return load_benchmark("quality_vs_snr")


def r(system, task, snr, metric, value, channel="awgn", **extra):
    return {"system": system, "task": task, "channel": channel, "snr_db": snr, "metric": metric, "value": value,
            **extra}


def series(system, task, metric, values, channel="awgn", snrs=SNRS, **extra):
    return [r(system, task, s, metric, v, channel, **extra) for s, v in zip(snrs, values)]


def passing_rows(channel="awgn") -> list[dict]:
    """A model meeting every target on ``channel``."""
    rows = series("mtsc", "vqa", "accuracy", [60, 75, 80, 86, 88, 90], channel)
    rows += series("separate", "vqa", "accuracy", [0, 1, 40, 85, 88, 90], channel)
    rows += series("question_only", "vqa", "accuracy", [40, 40, 41, 41, 42, 42], channel)
    rows += series("mtsc", "caption_image", "cider", [100, 120, 130, 130, 131, 131], channel)
    rows += series("separate", "caption_image", "cider", [40, 70, 110, 125, 130, 131], channel)
    rows += series("mtsc", "caption_audio", "cider", [200, 250, 270, 270, 271, 271], channel)
    rows += series("mtsc", "reconstruct", "psnr_db", [26, 29, 31, 33, 34, 35], channel)
    rows += series("separate", "reconstruct", "psnr_db", [10, 28, 33, 38, 42, 45], channel)
    rows += series("linear", "reconstruct", "psnr_db", [25, 28, 30.5, 32, 33.5, 35], channel)
    rows += series("capacity", "reconstruct", "psnr_db", [29, 35, 39, 42, 44, 46], channel)
    for sel, v in (("importance", [50, 60]), ("fixed", [40, 50]), ("random", [45, 55])):
        rows += series(f"ablation_{sel}", "vqa", "accuracy", v, channel, snrs=(-5.0, 0.0))
        rows += series(f"ablation_{sel}", "caption_image", "cider", [x * 2 for x in v], channel, snrs=(-5.0, 0.0))
    return rows


def by_name(q, rows, channel="awgn"):
    return {c["name"]: c for c in q.check_targets(rows) if c["channel"] == channel}


def set_value(rows, system, task, metric, snr, value, channel="awgn"):
    for x in rows:
        if (x["system"], x["task"], x["metric"], x["snr_db"], x["channel"]) == (system, task, metric, snr, channel):
            x["value"] = value
            return
    raise KeyError((system, task, metric, snr))


def test_every_target_passes_on_a_model_that_meets_them_on_every_channel(q):
    rows = passing_rows("awgn") + passing_rows("rician")
    checks = q.check_targets(rows)
    assert [(c["channel"], c["name"]) for c in checks] == [
        (ch, n) for ch in ("awgn", "rician") for n in (
            "vqa_accuracy", "vqa_vs_question_only", "reconstruct_vs_linear", "reconstruct_vs_separate",
            "reconstruct_rises", "text_beats_separate", "monotone", "importance_ablation")]
    assert all(c["passed"] is True for c in checks), [c for c in checks if c["passed"] is not True]
    assert "patches_vs_capacity" not in {c["name"] for c in checks}      # withdrawn
    lines = q.check_lines(checks)
    assert lines[0].startswith("PASS [awgn] vqa_accuracy: 90.0 % at 20 dB (need >= 85)")
    # a failure on one channel stays on that channel
    set_value(rows, "mtsc", "vqa", "accuracy", 0.0, 69.9, channel="rician")
    assert by_name(q, rows, "awgn")["vqa_accuracy"]["passed"] is True
    assert by_name(q, rows, "rician")["vqa_accuracy"]["passed"] is False


def test_vqa_targets(q):
    rows = passing_rows()
    set_value(rows, "mtsc", "vqa", "accuracy", 20.0, 84.9)
    assert by_name(q, rows)["vqa_accuracy"]["passed"] is False
    rows = passing_rows()
    set_value(rows, "question_only", "vqa", "accuracy", 0.0, 45.5)        # 75 - 45.5 < 30
    c = by_name(q, rows)["vqa_vs_question_only"]
    assert c["passed"] is False and "0 dB +29.5 (75.0 vs 45.5)" in c["detail"]
    set_value(rows, "question_only", "vqa", "accuracy", 0.0, 45.0)        # exactly 30: enough
    assert by_name(q, rows)["vqa_vs_question_only"]["passed"] is True
    set_value(rows, "question_only", "vqa", "accuracy", -5.0, 59.0)       # not a target SNR: printed only
    c = by_name(q, rows)["vqa_vs_question_only"]
    assert c["passed"] is True and "-5 dB +1.0" in c["detail"]
    # no question-only model: not run, and said how to run it
    rows = [x for x in passing_rows() if x["system"] != "question_only"]
    c = by_name(q, rows)["vqa_vs_question_only"]
    assert c["passed"] is None and "--question-only" in c["detail"]
    assert q.check_lines([c])[0].startswith("NOT RUN [awgn] vqa_vs_question_only")
    # 20 dB not measured: not run rather than passed
    rows = [x for x in passing_rows() if x["snr_db"] != 20.0]
    c = by_name(q, rows)["vqa_accuracy"]
    assert c["passed"] is None and "not measured at 20 dB" in c["detail"]


def test_reconstruction_targets(q):
    rows = passing_rows()
    set_value(rows, "mtsc", "reconstruct", "psnr_db", 15.0, 33.4)         # below linear 33.5
    c = by_name(q, rows)["reconstruct_vs_linear"]
    assert c["passed"] is False and "15 dB 33.40 vs 33.50" in c["detail"]
    rows = passing_rows()
    set_value(rows, "mtsc", "reconstruct", "psnr_db", 0.0, 28.0)          # equal to separate: not above
    assert by_name(q, rows)["reconstruct_vs_separate"]["passed"] is False
    rows = passing_rows()
    set_value(rows, "mtsc", "reconstruct", "psnr_db", 5.0, 29.9)          # 33 - 29.9 > 3 dB
    c = by_name(q, rows)["reconstruct_vs_separate"]
    assert c["passed"] is False and "5 dB 29.90 vs 33.00 (need within 3 dB)" in c["detail"]
    set_value(rows, "mtsc", "reconstruct", "psnr_db", 5.0, 30.0)          # exactly 3 dB below: within
    assert by_name(q, rows)["reconstruct_vs_separate"]["passed"] is True   # 10 dB and up: separate may lead


def test_reconstruction_rise_is_paired_over_the_same_patches(q):
    rows = passing_rows()                                                  # means: 29 -> 35, +6
    assert by_name(q, rows)["reconstruct_rises"]["passed"] is True
    ours = {x["snr_db"]: x for x in rows if x["system"] == "mtsc" and x["task"] == "reconstruct"}
    ours[0.0]["item_values"] = [20.0, 30.0, 40.0, math.inf]
    ours[20.0]["item_values"] = [22.0, 33.0, 42.5, math.inf]               # +2, +3, +2.5; inf pair left out
    c = by_name(q, rows)["reconstruct_rises"]
    assert c["passed"] is False and "+2.50 dB from 0 to 20 dB (paired over 3 patches, standard error 0.29)" \
        in c["detail"]
    assert q.paired_rise([1.0, 2.0], [4.0, 6.0]) == (3.5, pytest.approx(0.5), 2)
    rows = [x for x in passing_rows() if not (x["snr_db"] == 20.0 and x["task"] == "reconstruct")]
    assert by_name(q, rows)["reconstruct_rises"]["passed"] is None


def test_text_tasks_beat_separate_coding_up_to_5_db(q):
    rows = passing_rows()
    set_value(rows, "mtsc", "caption_image", "cider", 5.0, 110.0)          # a tie is not a win
    c = by_name(q, rows)["text_beats_separate"]
    assert c["passed"] is False and c["detail"] == "caption_image cider at 5 dB: 110.00 vs 110.00"
    rows = passing_rows()
    set_value(rows, "mtsc", "vqa", "accuracy", 10.0, 80.0)                 # 10 dB: not part of it
    assert by_name(q, rows)["text_beats_separate"]["passed"] is True
    # reconstruction is judged by its own targets, not this one
    set_value(rows, "mtsc", "reconstruct", "psnr_db", 5.0, 30.5)
    assert by_name(q, rows)["text_beats_separate"]["passed"] is True


def test_monotone_and_importance_ablation(q):
    rows = passing_rows()
    set_value(rows, "mtsc", "vqa", "accuracy", 0.0, 87.0)                  # 0 dB above 10 dB's 86
    c = by_name(q, rows)["monotone"]
    assert c["passed"] is False and "vqa +1.00 (10->5 dB" not in c["detail"] and "vqa +7.00 (5->0 dB" in c["detail"]
    # paired over the same items: a rise within twice the standard error of the per-item
    # differences is noise, a larger one is not
    rows = passing_rows()
    vqa = {x["snr_db"]: x for x in rows if x["system"] == "mtsc" and x["task"] == "vqa"}
    vqa[10.0]["value"], vqa[5.0]["value"] = 59.0, 60.0
    vqa[10.0]["item_values"] = [60.0, 58.0, 59.0, 57.0, 61.0]             # mean 59
    vqa[5.0]["item_values"] = [61.0, 57.0, 61.0, 58.0, 63.0]              # mean 60: diffs 1 -1 2 1 2
    vqa[0.0]["value"], vqa[-5.0]["value"] = 55.0, 50.0
    assert by_name(q, rows)["monotone"]["passed"] is True                   # allowance 1.10 > 1.0
    vqa[5.0]["item_values"] = [60.5, 59.0, 60.0, 58.0, 62.5]              # diffs 0.5 1 1 1 1.5: tight
    assert by_name(q, rows)["monotone"]["passed"] is False
    rows = passing_rows()
    set_value(rows, "ablation_random", "caption_image", "cider", 0.0, 120.0)
    c = by_name(q, rows)["importance_ablation"]
    assert c["passed"] is False and "caption_image 0 dB 120.00 vs random 120.00" in c["detail"]
    rows = [x for x in passing_rows() if not x["system"].startswith("ablation_")]
    assert by_name(q, rows)["importance_ablation"]["passed"] is None


def test_capacity_gap_is_reported(q):
    gaps = q.capacity_gaps(passing_rows() + passing_rows("rician"))
    assert len(gaps) == 12
    assert gaps[0] == {"channel": "awgn", "snr_db": -5.0, "ours_db": 26, "bound_db": 29, "gap_db": -3}


def test_markdown_tables(q):
    rows = passing_rows() + passing_rows("rician")
    for ch in ("awgn", "rician"):
        for t, n in (("count", 3), ("colour", 2), ("yes/no", 1)):
            metric = "accuracy_count" if t == "count" else "accuracy_colour" if t == "colour" else "accuracy_yes_no"
            rows += series("mtsc", "vqa", metric, [50 + n] * 6, ch, question_type=t, n=n)
            rows += series("question_only", "vqa", metric, [30.0] * 6, ch, question_type=t, n=n)
    rows += series("mtsc", "caption_image", "bleu", [10, 20, 30, 30, 30, 30])
    report = {"meta": {"config": {"channels": ["awgn", "rician"], "budget": 512, "k_factor_db": 6.0,
                                  "items": {"awgn": {"vqa": 200, "reconstruct": 176}}}},
              "rows": rows, "checks": q.check_targets(rows), "gaps": q.capacity_gaps(rows)}
    md = q.markdown(report)
    lines = md.splitlines()
    assert "### AWGN: test split, 512 complex symbols per item" in lines
    assert "### Rician (K = 6 dB): test split, 512 complex symbols per item" in lines
    assert "Items per task: VQA 200, patch reconstruction 176." in lines
    head = "| task | metric | system | -5 dB | 0 dB | 5 dB | 10 dB | 15 dB | 20 dB |"
    assert lines.count(head) == 2
    assert "| VQA | accuracy (%) | ours | 60.0 | 75.0 | 80.0 | 86.0 | 88.0 | 90.0 |" in lines
    assert "| VQA | accuracy (%) | question-only | 40.0 | 40.0 | 41.0 | 41.0 | 42.0 | 42.0 |" in lines
    assert "| image captioning | BLEU-4 | ours | 10.0 | 20.0 | 30.0 | 30.0 | 30.0 | 30.0 |" in lines
    rec = "| patch reconstruction | PSNR (dB) | "
    assert rec + "PCA + LMMSE (linear) | 25.00 | 28.00 | 30.50 | 32.00 | 33.50 | 35.00 |" in lines
    assert rec + "ours - codec at capacity | -3.00 | -6.00 | -8.00 | -9.00 | -10.00 | -11.00 |" in lines
    assert not any("ablation" in x for x in lines if x.startswith("| VQA"))
    # per question type, in report order, ours then question-only, "|" escaped
    types = [x for x in lines if x.startswith("| awgn |")]
    assert types == ["| awgn | ours | count | 3 | 53.0 | 53.0 | 53.0 | 53.0 | 53.0 | 53.0 |",
                     "| awgn | ours | colour | 2 | 52.0 | 52.0 | 52.0 | 52.0 | 52.0 | 52.0 |",
                     "| awgn | ours | yes/no | 1 | 51.0 | 51.0 | 51.0 | 51.0 | 51.0 | 51.0 |",
                     "| awgn | question-only | count | 3 | 30.0 | 30.0 | 30.0 | 30.0 | 30.0 | 30.0 |",
                     "| awgn | question-only | colour | 2 | 30.0 | 30.0 | 30.0 | 30.0 | 30.0 | 30.0 |",
                     "| awgn | question-only | yes/no | 1 | 30.0 | 30.0 | 30.0 | 30.0 | 30.0 | 30.0 |"]
    assert "| target | channel | result | detail |" in lines
    assert sum(x.startswith("| vqa_accuracy | ") and "| PASS |" in x for x in lines) == 2


def test_linear_scheme_matches_the_closed_form_and_fading_costs(q):
    pb = load_benchmark("patch_bounds")
    rng = np.random.default_rng(0)
    train, test = rng.random((300, 48)), rng.random((20, 48))
    scheme = pb.LinearScheme.fit(train)
    for snr in (-5.0, 10.0):
        a = scheme.psnr_db(test, snr, symbols=8)
        assert np.array_equal(a, pb.linear_psnr_db(train, test, snr, symbols=8))
        assert np.array_equal(scheme.channel_psnr_db(test, snr, "awgn", symbols=8), a)
        assert np.allclose(scheme.psnr_db(test, np.full(20, snr), symbols=8), a)
    lo, hi = scheme.psnr_db(test, 0.0, symbols=8), scheme.psnr_db(test, 10.0, symbols=8)
    assert (hi > lo).all()
    fading = scheme.channel_psnr_db(test, 10.0, "rician", 6.0, seed=1, symbols=8)
    assert fading.mean() < hi.mean()                 # Jensen: fading around the same mean SNR costs
    assert np.array_equal(fading, scheme.channel_psnr_db(test, 10.0, "rician", 6.0, seed=1, symbols=8))
    with pytest.raises(ValueError, match="channel"):
        scheme.channel_psnr_db(test, 0.0, "rayleigh")
    # every coefficient sent without noise: only the 8-bit rounding of the output is left
    exact = scheme.psnr_db(test, 200.0, symbols=24)
    assert np.allclose(exact, 10 * np.log10(12 * 255.0 ** 2), atol=1e-6)
