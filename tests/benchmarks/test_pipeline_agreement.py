"""The pipeline-agreement criterion and its pairing of records, on known numbers: no pipeline runs
here (``tests/runtime/test_run.py`` runs the pipeline against ``eval`` on the micro model)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.benchmarks.helpers import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("pipeline_agreement")


@pytest.mark.parametrize("diff, se, metric, channel, passed, allowance", [
    (0.9, 0.1, "accuracy", "software", True, 1.0),          # tiny SE: the 1-point floor
    (-1.2, 0.1, "cider", "software", False, 1.0),
    (2.9, 1.5, "accuracy", "software", True, 3.0),          # 2 SE beyond the floor
    (-3.1, 1.5, "cider", "gnuradio-sim", False, 3.0),       # text rule is the same on every channel
    (1.0, None, "bleu", "software", True, 1.0),             # SE unknown: the floor alone
    (1.0, math.nan, "bleu", "software", True, 1.0),
    (0.29, 5.0, "psnr_db", "software", True, 0.3),          # PSNR: fixed, SE ignored
    (0.31, 5.0, "psnr_db", "software", False, 0.3),
    (-0.45, 0.0, "psnr_db", "gnuradio-sim", True, 0.5),
    (0.51, 0.0, "psnr_db", "gnuradio-sim", False, 0.5),
    (0.2, 0.0, "psnr_db", "one-process, other noise draws", True, 0.3),
    (math.nan, 1.0, "accuracy", "software", False, 2.0),    # nothing paired: fails
])
def test_agreement_check(bench, diff, se, metric, channel, passed, allowance):
    assert bench.agreement_check(diff, se, metric, channel) == (passed, pytest.approx(allowance))


def test_agreement_check_refuses_what_it_does_not_judge(bench):
    with pytest.raises(ValueError, match="ssim"):
        bench.agreement_check(0.0, 0.0, "ssim", "software")
    with pytest.raises(ValueError, match="no PSNR allowance for channel 'usrp'"):
        bench.agreement_check(0.0, 0.0, "psnr_db", "usrp")


def _vqa(item_id, output, snr_db=10.0, **extra):
    return {"item_id": item_id, "task": "vqa", "snr_db": snr_db, "output": output, "reference": ["red"] * 10, **extra}


def _rec(item_id, psnr, snr_db=10.0, **extra):
    return {"item_id": item_id, "task": "reconstruct", "snr_db": snr_db, "psnr_db": psnr, **extra}


def test_pair_rows_pairs_by_item_and_leaves_out_lost_items(bench):
    one = [_vqa("a", "red"), _vqa("b", "red"), _vqa("c", "blue"), _vqa("d", "blue"),
           _rec("a", 30.0), _rec("b", 31.0), _rec("c", 32.0), _rec("a", 40.0, snr_db=20.0)]
    # pipeline: in another order, "d" lost with an error, an item the one-process side lacks
    pipe = [_vqa("c", "red"), _vqa("b", "blue"), _vqa("a", "red"), _vqa("d", "", error="timeout"),
            _vqa("z", "red"), _rec("c", 32.5), _rec("a", 30.1), _rec("b", 31.0), _rec("a", 40.0, snr_db=20.0 + 1e-9)]
    checks = {(c["task"], c["metric"], c["snr_db"]): c for c in bench.pair_rows(one, pipe, "software")}
    assert set(checks) == {("vqa", "accuracy", 10.0), ("vqa", "bleu", 10.0), ("reconstruct", "psnr_db", 10.0),
                           ("reconstruct", "psnr_db", 20.0)}      # no SSIM; SNRs matched to 6 decimals
    acc = checks[("vqa", "accuracy", 10.0)]
    # paired items a b c: one process 100 100 0, pipeline 100 0 100 -> diffs 0 -100 +100
    assert (acc["n"], acc["unpaired"]) == (3, 2)
    assert acc["value"] == pytest.approx(200 / 3) and acc["reference_value"] == pytest.approx(200 / 3)
    assert acc["diff"] == pytest.approx(0.0)
    assert acc["std_error"] == pytest.approx(np.std([0, -100, 100], ddof=1) / math.sqrt(3))
    assert acc["allowance"] == pytest.approx(2 * acc["std_error"]) and acc["pass"]
    psnr = checks[("reconstruct", "psnr_db", 10.0)]
    assert psnr["diff"] == pytest.approx(0.2) and psnr["allowance"] == 0.3 and psnr["pass"]
    assert psnr["std_error"] == pytest.approx(np.std([0.1, 0.0, 0.5], ddof=1) / math.sqrt(3))
    assert checks[("reconstruct", "psnr_db", 20.0)]["n"] == 1 and checks[("reconstruct", "psnr_db", 20.0)]["pass"]
    strict = {(c["task"], c["metric"], c["snr_db"]): c for c in bench.pair_rows(one, [_rec("c", 32.5), _rec("a", 30.1),
                                                                                       _rec("b", 31.0)], "software")}
    assert set(strict) == {("reconstruct", "psnr_db", 10.0)}      # only keys both sides have


def test_corpus_bleu_difference_and_bootstrap_se(bench):
    """BLEU: the difference of the two corpus BLEU scores on the paired items; its SE from a paired
    bootstrap (0 when both sides say the same, reproducible from the seed, the floor when tiny)."""
    from mtsc_sdr.metrics import bleu

    refs = [["a red ball on the grass"], ["two dogs play in the snow"], ["a man rides a bike"],
            ["the cat sits on a mat"], ["a bird flies over the sea"], ["people walk down a street"]]
    ones = ["a red ball on grass", "two dogs in the snow", "a man rides a red bike", "a cat on a mat",
            "a bird over the sea", "people walk on a street"]
    pipes = ["a red ball on the grass", "two dogs in snow", "a man rides a bike", "the cat on the mat",
             "a bird flies over sea", "people down a street"]

    def recs(outs):
        return [{"item_id": str(i), "task": "caption_image", "snr_db": 0.0, "output": o, "reference": r}
                for i, (o, r) in enumerate(zip(outs, refs))]

    same = {c["metric"]: c for c in bench.pair_rows(recs(ones), recs(ones), "software", bootstrap=200)}
    assert same["bleu"]["diff"] == 0.0 and same["bleu"]["std_error"] == 0.0 and same["bleu"]["allowance"] == 1.0
    assert same["bleu"]["se_method"] == "paired bootstrap of corpus BLEU"
    a = {c["metric"]: c for c in bench.pair_rows(recs(ones), recs(pipes), "gnuradio-sim", bootstrap=200)}
    b = {c["metric"]: c for c in bench.pair_rows(recs(ones), recs(pipes), "gnuradio-sim", bootstrap=200)}
    assert a["bleu"]["value"] == pytest.approx(bleu(pipes, refs)) and a["bleu"]["reference_value"] == pytest.approx(
        bleu(ones, refs))
    assert a["bleu"]["diff"] == pytest.approx(bleu(pipes, refs) - bleu(ones, refs))
    assert a["bleu"]["std_error"] > 0 and a["bleu"]["std_error"] == b["bleu"]["std_error"]
    assert a["bleu"]["allowance"] == pytest.approx(max(2 * a["bleu"]["std_error"], 1.0))
    assert set(a) == {"cider", "bleu"} and a["cider"]["se_method"] == "paired"


def test_eval_records_match_the_pipeline_shape(bench):
    report = {"meta": {"item_ids": {"vqa": ["v1", "v2"], "reconstruct": ["r1", "r2"]},
                       "item_outputs": [{"task": "vqa", "snr_db": 10.9, "outputs": ["red", "blue"]}],
                       "item_references": {"vqa": [["red"], ["blue"]]}},
              "rows": [{"system": "mtsc", "task": "reconstruct", "snr_db": 10.9, "metric": "psnr_db", "value": 30.5,
                        "item_values": [30.0, 31.0]},
                       {"system": "mtsc", "task": "reconstruct", "snr_db": 10.9, "metric": "ssim", "value": 0.5,
                        "item_values": [0.4, 0.6]}]}
    recs = bench.eval_records(report, 0.9)
    assert {(r["task"], r["item_id"], r["snr_db"]) for r in recs} == {("vqa", "v1", 10.0), ("vqa", "v2", 10.0),
                                                                       ("reconstruct", "r1", 10.0),
                                                                       ("reconstruct", "r2", 10.0)}
    assert [r["psnr_db"] for r in recs if r["task"] == "reconstruct"] == [30.0, 31.0]
    assert [(r["output"], r["reference"]) for r in recs if r["task"] == "vqa"] == [("red", ["red"]), ("blue", ["blue"])]


def test_summary_verdict_needs_the_item_count_and_ignores_the_noise_floor(bench):
    def check(ok, n=300, metric="accuracy", diff=0.5):
        return {"task": "vqa", "snr_db": 10.0, "metric": metric, "diff": diff, "pass": ok, "n": n, "unpaired": 0}

    s = bench.summarize({"software": [check(True), check(True, metric="bleu")],
                         bench.NOISE_FLOOR: [check(False)]}, 300)
    assert s["criterion"]["pass"] and s["criterion"]["verdict"] == "PASS"
    assert not s["channels"][bench.NOISE_FLOOR]["pass"] and not s["channels"][bench.NOISE_FLOOR]["part_of_verdict"]
    s = bench.summarize({"software": [check(True)], "gnuradio-sim": [check(False)]}, 300)
    assert s["criterion"]["verdict"] == "FAIL" and s["channels"]["gnuradio-sim"]["failed"] == ["vqa/accuracy@10dB"]
    quick = bench.summarize({"software": [check(True, n=5)]}, 5)
    assert not quick["criterion"]["pass"] and not quick["criterion"]["item_count_met"]
    assert quick["criterion"]["verdict"].startswith("not judged: 5 paired items per task")
    lost = bench.summarize({"software": [check(True, n=299)]}, 300)      # items lost on the way
    assert not lost["criterion"]["item_count_met"] and lost["criterion"]["paired_items_per_task"] == 299


def test_chance_failures_is_the_normal_tail_beyond_each_allowance(bench):
    two_se = {"std_error": 1.0, "allowance": 2.0}
    assert bench.chance_failures([two_se] * 10) == pytest.approx(10 * 0.0455, abs=1e-3)
    # a 1-point floor far above the standard error, and checks without one, add (almost) nothing
    assert bench.chance_failures([{"std_error": 0.1, "allowance": 1.0}, {"std_error": None, "allowance": 1.0},
                                  {"std_error": 0.0, "allowance": 1.0}]) < 1e-20
    check = dict(two_se, task="vqa", snr_db=0.0, metric="accuracy", diff=0.1, n=300, unpaired=0)
    check["pass"] = True
    s = bench.summarize({"software": [check]}, 300)
    assert s["channels"]["software"]["chance_failures"] == pytest.approx(0.05, abs=0.01)
