"""Does the pipeline lose anything? The model in one process against the same model across processes
(client -> link -> base station -> client), on the same items at the same SNR, judged per metric.

* one process: :func:`mtsc_sdr.runtime.evaluate.evaluate` (torch AWGN channel, genie equaliser);
* ``software``: ``mtsc-sdr run`` over the software channel; ``gnuradio-sim``: over the GNU Radio
  sim flowgraph (skipped with the reason when GNU Radio is absent, or with ``--no-gnuradio``).
  Both with a 2 kHz CFO that the receiver estimates and removes, and an fp32 client (the int8
  client's own loss is measured by ``benchmarks/compression_frontier.py``).
* ``one-process, other noise draws``: the same evaluation with other channel noise, judged by the
  same rule: how far two runs differ that lose nothing at all. It is the noise floor that explains
  the criterion and is not part of the verdict.

Matched SNR: the OFDM PHY puts the payload on 52 of 64 subcarriers, so at a set SNR s (Es/N0 on
the wire) the JSC decoder sees payload symbols at s + 0.9 dB (``SUBCARRIER_SNR_GAIN_DB``, what the
receiver measures as ``snr_payload_db``); the one-process evaluation runs at that SNR.

The criterion (:func:`agreement_check`), per channel, task, metric and SNR, on the items both
sides answered (paired by item id; items the pipeline lost are counted and left out of both):

* accuracy (VQA), CIDEr (captions), BLEU (all text tasks): ``|pipeline - one process| <=
  max(2 paired standard errors, 1 point)``. The noise draws differ between the paths, so greedy
  decoding turns some items' answers either way; 2 standard errors of the paired difference is
  what that alone moves a mean by (about 1 check in 20 of a pipeline that loses nothing exceeds
  it by chance), and 1 point is the floor where the standard error is tiny.
* PSNR (reconstruct): within 0.3 dB over the software channel, 0.5 dB over the GNU Radio sim
  flowgraph (a fixed allowance; the paired standard error is printed beside it). The noise floor
  is held to the software channel's 0.3 dB.
* the item count: at least 300 items per task (``--n-per-task``, default 300). A smaller run is a
  quick check: every line is still printed, but the summary says the criterion's item count was
  not met and the criterion is not judged.

Accuracy, CIDEr and PSNR are means over items: both sides are scored again on the paired items
(CIDEr-D's document frequencies come from those items' references), the difference is the mean of
the per-item differences and its standard error ``std(ddof=1) / sqrt(n)`` of those differences.
BLEU is corpus BLEU-4 and has no per-item values: its difference is that of the two corpus BLEU
scores on the paired items, and its standard error comes from a paired bootstrap over items
(Koehn 2004, as sacrebleu's ``paired_bs``): ``--bootstrap`` resamples of the item set, the same
resample for both sides, corpus BLEU of each summed from per-item n-gram counts
(:func:`mtsc_sdr.metrics.bleu_item_stats`), and the standard deviation of the resampled
differences. SSIM is reported by the pipeline but not judged here.

Output: a PASS / FAIL line per (channel, task, metric, SNR) with the difference, its paired
standard error and the allowance, then a summary, which also says how many checks a pipeline that
loses nothing would exceed by chance (:func:`chance_failures`: at 2 standard errors about one in
20, so a channel's 27 checks rarely all pass even then; the noise floor shows it); ``--out``/agreement.json holds
``{meta, rows, checks}`` (``rows``: one ``<metric>_diff`` row per line, ``checks``: per channel and
the criterion's verdict), beside each pipeline run's own report. Run::

    .venv/bin/python benchmarks/pipeline_agreement.py [--n-per-task 300] [--snr-db 0 10 20] \\
        [--checkpoint models/default] [--no-gnuradio] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

SOFTWARE, GNURADIO = "software", "gnuradio-sim"
NOISE_FLOOR = "one-process, other noise draws"
#: The metrics the criterion judges (SSIM is not one).
CRITERION_METRICS = ("accuracy", "bleu", "cider", "psnr_db")
#: Standard errors of the paired difference a text metric may move by ...
SE_MULTIPLE = 2.0
#: ... and the floor of its allowance, in points of the metric's report scale.
FLOOR_POINTS = 1.0
#: PSNR's fixed allowance per channel, dB (the noise floor is held to the software channel's).
PSNR_ALLOWANCE_DB = {SOFTWARE: 0.3, GNURADIO: 0.5, NOISE_FLOOR: 0.3}
#: Items per task the criterion needs.
MIN_ITEMS_PER_TASK = 300
#: The noise seed of the second one-process run (the first uses the evaluation's own seed).
OTHER_NOISE_SEED = 12345
#: the links' seed of a run without ``--seed`` (RunConfig's default)
LINK_SEED = 1


def agreement_check(diff: float, se: Optional[float], metric: str, channel: str) -> tuple[bool, float]:
    """The criterion for one (channel, task, metric, SNR): ``(passed, allowance)``.

    ``diff``: pipeline minus one process, on the metric's report scale; ``se``: its paired
    standard error (None or not finite: unknown, so a text metric gets the floor alone). PSNR:
    the channel's fixed allowance (:data:`PSNR_ALLOWANCE_DB`); accuracy, BLEU, CIDEr:
    ``max(SE_MULTIPLE * se, FLOOR_POINTS)``. A difference that is not finite fails."""
    if metric == "psnr_db":
        if channel not in PSNR_ALLOWANCE_DB:
            raise ValueError(f"no PSNR allowance for channel {channel!r}; channels: {list(PSNR_ALLOWANCE_DB)}")
        allowance = PSNR_ALLOWANCE_DB[channel]
    elif metric in CRITERION_METRICS:
        known = se is not None and math.isfinite(se)
        allowance = max(SE_MULTIPLE * se, FLOOR_POINTS) if known else FLOOR_POINTS
    else:
        raise ValueError(f"the criterion judges {list(CRITERION_METRICS)}, not {metric!r}")
    return bool(math.isfinite(diff) and abs(diff) <= allowance + 1e-9), float(allowance)


def paired_difference(metric: str, reference: np.ndarray, candidate: np.ndarray, *,
                      bootstrap: int = 1000, seed: int = 0) -> tuple[float, float, float, Optional[float]]:
    """``(candidate value, reference value, difference, paired standard error)`` of one metric on
    paired items (row i of both arrays is the same item).

    Means over items (accuracy, CIDEr, PSNR): ``reference`` / ``candidate`` float (N,) per-item
    scores. ``bleu``: int (N, 10) per-item statistics (:func:`mtsc_sdr.metrics.bleu_item_stats`);
    the values are corpus BLEU and the standard error that of a paired bootstrap over the items
    (``bootstrap`` resamples from ``seed``; 0 for one item). No items: all nan, SE None."""
    from mtsc_sdr.metrics import bleu_from_stats, standard_error

    n = len(reference)
    if n != len(candidate):
        raise ValueError(f"paired_difference: {n} reference items, {len(candidate)} candidate items")
    if n == 0:
        return math.nan, math.nan, math.nan, None
    if metric == "bleu":
        ref, cand = float(bleu_from_stats(reference.sum(0))), float(bleu_from_stats(candidate.sum(0)))
        if n < 2:
            return cand, ref, cand - ref, 0.0
        idx = np.random.default_rng(seed).integers(0, n, size=(bootstrap, n))
        diffs = bleu_from_stats(candidate[idx].sum(1)) - bleu_from_stats(reference[idx].sum(1))
        return cand, ref, cand - ref, float(diffs.std(ddof=1))
    reference, candidate = np.asarray(reference, dtype=np.float64), np.asarray(candidate, dtype=np.float64)
    d = candidate - reference
    return float(candidate.mean()), float(reference.mean()), float(d.mean()), standard_error(d)


def _per_item(task: str, metric: str, records: list[dict], references: list) -> np.ndarray:
    """One side's per-item scores of ``metric`` (BLEU: per-item statistics) on its paired records."""
    from mtsc_sdr.metrics import bleu_item_stats, score_task_items

    if metric == "psnr_db":
        return np.array([r["psnr_db"] for r in records], dtype=np.float64)
    outputs = [r["output"] for r in records]
    if metric == "bleu":
        return bleu_item_stats(outputs, references)
    return score_task_items(task, outputs, references)[metric]


def pair_rows(reference: Iterable[dict], candidate: Iterable[dict], channel: str, *,
              bootstrap: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Judge ``candidate`` against ``reference`` per (task, SNR, metric of :data:`CRITERION_METRICS`).

    Both are result records shaped like the pipeline's ``items.jsonl``: ``item_id``, ``task``,
    ``snr_db`` (the set SNR), and ``output`` + ``reference`` (text tasks) or ``psnr_db`` (images);
    records with an ``error`` are left out. Items are paired by ``item_id`` within (task, SNR);
    both sides are scored on the paired items against the reference side's references. One dict
    per check: task, snr_db, metric, value (candidate), reference_value, diff, std_error,
    allowance, pass, n (paired items), unpaired (items only one side has), se_method."""
    from mtsc_sdr import tasks as task_table

    def groups(records):
        out: dict[tuple, dict[str, dict]] = defaultdict(dict)
        for r in records:
            if "error" not in r:
                out[(r["task"], round(float(r["snr_db"]), 6))][r["item_id"]] = r
        return out

    ref_groups, cand_groups = groups(reference), groups(candidate)
    checks = []
    for key in sorted(set(ref_groups) & set(cand_groups)):
        task, snr_db = key
        ref_by_id, cand_by_id = ref_groups[key], cand_groups[key]
        ids = sorted(set(ref_by_id) & set(cand_by_id))
        unpaired = len(set(ref_by_id) ^ set(cand_by_id))
        ref_recs, cand_recs = [ref_by_id[i] for i in ids], [cand_by_id[i] for i in ids]
        refs = [r.get("reference") for r in ref_recs]
        for metric in (m for m in task_table.get(task).metrics if m in CRITERION_METRICS):
            if ids:
                value, ref_value, diff, se = paired_difference(
                    metric, _per_item(task, metric, ref_recs, refs), _per_item(task, metric, cand_recs, refs),
                    bootstrap=bootstrap, seed=seed)
            else:
                value = ref_value = diff = math.nan
                se = None
            passed, allowance = agreement_check(diff, se, metric, channel)
            checks.append({"task": task, "snr_db": snr_db, "metric": metric, "value": value,
                           "reference_value": ref_value, "diff": diff, "std_error": se, "allowance": allowance,
                           "pass": passed, "n": len(ids), "unpaired": unpaired,
                           "se_method": "paired bootstrap of corpus BLEU" if metric == "bleu" else "paired"})
    return checks


def eval_records(report: dict, snr_shift_db: float = 0.0, system: str = "mtsc") -> list[dict]:
    """An :func:`~mtsc_sdr.runtime.evaluate.evaluate` report (``item_values=True,
    item_outputs=True``) as records shaped like the pipeline's ``items.jsonl``, at the set SNR
    (the evaluation's SNR minus ``snr_shift_db``)."""
    meta = report["meta"]
    ids, refs = meta["item_ids"], meta.get("item_references", {})
    snr = lambda s: round(float(s) - snr_shift_db, 6)   # noqa: E731
    records = []
    for o in meta.get("item_outputs", []):
        for item_id, out, ref in zip(ids[o["task"]], o["outputs"], refs[o["task"]]):
            records.append({"item_id": item_id, "task": o["task"], "snr_db": snr(o["snr_db"]),
                            "output": out, "reference": ref})
    for r in report["rows"]:
        if r["system"] == system and r["metric"] == "psnr_db" and "item_values" in r:
            for item_id, v in zip(ids[r["task"]], r["item_values"]):
                records.append({"item_id": item_id, "task": r["task"], "snr_db": snr(r["snr_db"]), "psnr_db": v})
    return records


def chance_failures(checks: list[dict]) -> float:
    """How many of ``checks`` a pipeline that loses nothing exceeds by chance, in expectation: per
    check the two-sided normal tail beyond its allowance in standard errors (4.6 % at 2 standard
    errors, less where the 1-point floor or the fixed PSNR allowance is wider; 0 without a standard
    error). Checks of one task and SNR are correlated (BLEU and CIDEr move together), so this is a
    mean, not a distribution."""
    total = 0.0
    for c in checks:
        se = c.get("std_error")
        if se and math.isfinite(se) and se > 0 and math.isfinite(c.get("allowance", math.nan)):
            total += math.erfc(c["allowance"] / se / math.sqrt(2.0))
    return total


def summarize(checks_by_channel: dict[str, list[dict]], n_per_task: int) -> dict[str, Any]:
    """The ``checks`` object: per channel (pass, counts, what failed, mean text difference, the
    failures expected by chance) and the criterion's verdict (every pipeline check passes, on at
    least :data:`MIN_ITEMS_PER_TASK` paired items per task; the noise floor is not part of it)."""
    channels = {}
    for name, checks in checks_by_channel.items():
        text = [c["diff"] for c in checks if c["metric"] in ("accuracy", "cider") and math.isfinite(c["diff"])]
        channels[name] = {"pass": bool(checks) and all(c["pass"] for c in checks), "n_checks": len(checks),
                          "n_failed": sum(not c["pass"] for c in checks), "part_of_verdict": name != NOISE_FLOOR,
                          "failed": [f"{c['task']}/{c['metric']}@{c['snr_db']:g}dB" for c in checks if not c["pass"]],
                          "mean_text_diff": round(float(np.mean(text)), 3) if text else None,
                          "chance_failures": round(chance_failures(checks), 2),
                          "min_paired_items": min((c["n"] for c in checks), default=0),
                          "unpaired_items": sum({(c["task"], c["snr_db"]): c["unpaired"] for c in checks}.values())}
    pipeline = {k: v for k, v in channels.items() if v["part_of_verdict"]}
    paired = min((v["min_paired_items"] for v in pipeline.values()), default=0)
    count_met = n_per_task >= MIN_ITEMS_PER_TASK and paired >= MIN_ITEMS_PER_TASK
    passed = bool(pipeline) and all(v["pass"] for v in pipeline.values())
    if not count_met:
        verdict = (f"not judged: {paired} paired items per task (--n-per-task {n_per_task}), the criterion needs "
                   f">= {MIN_ITEMS_PER_TASK}; at this count the checks {'PASS' if passed else 'FAIL'}")
    else:
        verdict = "PASS" if passed else "FAIL"
    criterion = {"verdict": verdict, "pass": passed and count_met, "checks_pass": passed,
                 "item_count_met": count_met, "paired_items_per_task": paired,
                 "min_items_per_task": MIN_ITEMS_PER_TASK, "se_multiple": SE_MULTIPLE, "floor_points": FLOOR_POINTS,
                 "psnr_allowance_db": dict(PSNR_ALLOWANCE_DB)}
    return {"channels": channels, "criterion": criterion}


def _finite(x):
    return x if x is None or math.isfinite(x) else None


#: How the per-check lines name each comparison (the JSON keeps the full names).
LINE_LABELS = {SOFTWARE: SOFTWARE, GNURADIO: GNURADIO, NOISE_FLOOR: "noise-floor"}


def format_line(channel: str, c: dict) -> str:
    se = "   n/a" if c["std_error"] is None or not math.isfinite(c["std_error"]) else f"{c['std_error']:6.2f}"
    unit = " dB" if c["metric"] == "psnr_db" else "   "
    return (f"{'PASS' if c['pass'] else 'FAIL'} {LINE_LABELS.get(channel, channel):<12} {c['task']:<14} {c['metric']:<8} {c['snr_db']:>5g} dB: "
            f"{c['value']:8.2f} vs {c['reference_value']:8.2f}  diff {c['diff']:+7.2f}  SE {se}  "
            f"allowance {c['allowance']:5.2f}{unit}  n={c['n']}" + (f" ({c['unpaired']} unpaired)" if c["unpaired"] else ""))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="default: the shipped release model (models/default)")
    p.add_argument("--n-per-task", type=int, default=MIN_ITEMS_PER_TASK,
                   help=f"validation items per task (the criterion needs >= {MIN_ITEMS_PER_TASK})")
    p.add_argument("--snr-db", type=float, nargs="+", default=[0.0, 10.0, 20.0])
    p.add_argument("--no-gnuradio", action="store_true", help="skip the GNU Radio sim flowgraph")
    p.add_argument("--seed", type=int, default=None,
                   help="draw every channel noise again from this seed (the links' and the one-process "
                        "run's; the items stay the same): is a difference the draw or the path?")
    p.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples of corpus BLEU")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the one-process evaluations")
    p.add_argument("--out", default="results/bench/pipeline_agreement")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    from mtsc_sdr.model.checkpoint import shipped_model_dir
    from mtsc_sdr.phy import SUBCARRIER_SNR_GAIN_DB
    from mtsc_sdr.radio.grpython import INSTALL_HINT, find_gr_python
    from mtsc_sdr.report import row, run_meta
    from mtsc_sdr.runtime.evaluate import evaluate
    from mtsc_sdr.runtime.run import ClientSpec, RunConfig, execute

    ck = args.checkpoint or str(shipped_model_dir())
    out = Path(args.out)
    channels, skipped = [SOFTWARE], []
    if args.no_gnuradio:
        skipped.append(f"{GNURADIO}: --no-gnuradio")
    elif find_gr_python() is None:
        skipped.append(f"{GNURADIO}: {INSTALL_HINT}")
    else:
        channels.append(GNURADIO)
    for s in skipped:
        print(f"skipped {s}", file=sys.stderr)
    matched = [s + SUBCARRIER_SNR_GAIN_DB for s in args.snr_db]

    def one_process(noise_seed):
        rep = evaluate(ck, matched, n_per_task=args.n_per_task, split="val", baseline=False, threads=args.threads,
                       item_values=True, item_outputs=True, noise_seed=noise_seed)
        return eval_records(rep, SUBCARRIER_SNR_GAIN_DB)

    one = one_process(args.seed)
    candidates = {NOISE_FLOOR: one_process(OTHER_NOISE_SEED)}
    for channel in channels:
        execute(RunConfig(name=f"agree-{channel}", checkpoint=ck, channel=channel, snr_db=list(args.snr_db),
                          cfo_hz=2000.0, concurrent_points=True, item_timeout_s=3.0, retries=10,
                          seed=LINK_SEED if args.seed is None else args.seed,
                          clients=[ClientSpec(precision="fp32", n_per_task=args.n_per_task)],
                          out=str(out / channel)), progress=not args.json)
        candidates[channel] = [json.loads(x) for x in (out / channel / "items.jsonl").read_text().splitlines()]

    judged = {name: pair_rows(one, recs, name, bootstrap=args.bootstrap) for name, recs in candidates.items()}
    order = channels + [NOISE_FLOOR]
    judged = {name: sorted(judged[name], key=lambda c: (c["task"], c["metric"], c["snr_db"])) for name in order}
    rows = [row("mtsc", c["task"], name, c["snr_db"], f"{c['metric']}_diff", _finite(c["diff"]), peer="one-process",
                candidate_value=_finite(c["value"]), peer_value=_finite(c["reference_value"]),
                std_error=_finite(c["std_error"]), se_method=c["se_method"], allowance=c["allowance"],
                passed=c["pass"], n=c["n"], unpaired=c["unpaired"])
            for name, cs in judged.items() for c in cs]
    checks = summarize(judged, args.n_per_task)
    meta = run_meta({**vars(args), "checkpoint": ck}, {"eval": 0, "other_noise_seed": OTHER_NOISE_SEED,
                                                        "bootstrap": 0})
    meta.update({"channels": order, "skipped": skipped, "snr_shift_db": SUBCARRIER_SNR_GAIN_DB,
                 "criterion": "|diff| <= max(2 paired SE, 1 point) for accuracy / BLEU / CIDEr; PSNR within "
                              "0.3 dB (software) / 0.5 dB (gnuradio-sim); >= 300 paired items per task"})
    report = {"meta": meta, "rows": rows, "checks": checks}
    out.mkdir(parents=True, exist_ok=True)
    (out / "agreement.json").write_text(json.dumps(report, indent=1))
    if args.json:
        print(json.dumps(report))
        return 0
    crit = checks["criterion"]
    print(f"pipeline at the set SNR vs one process at set + {SUBCARRIER_SNR_GAIN_DB:.2f} dB, same items; "
          f"allowance max({SE_MULTIPLE:g} paired SE, {FLOOR_POINTS:g} point), PSNR "
          f"{PSNR_ALLOWANCE_DB[SOFTWARE]:g} / {PSNR_ALLOWANCE_DB[GNURADIO]:g} dB (BLEU: corpus BLEU, "
          f"SE by paired bootstrap); noise-floor: {NOISE_FLOOR}")
    for name, cs in judged.items():
        for c in cs:
            print(format_line(name, c))
    print("summary:")
    for name, c in checks["channels"].items():
        label = f"{name} (noise floor, not part of the verdict)" if not c["part_of_verdict"] else name
        print(f"  {'PASS' if c['pass'] else 'FAIL'} {label}: {c['n_checks'] - c['n_failed']}/{c['n_checks']} checks "
              f"pass; mean accuracy/CIDEr difference {c['mean_text_diff']}; beyond: {c['failed'] or 'none'}"
              f" (a pipeline that loses nothing: about {c['chance_failures']:g} beyond by chance)"
              + (f"; {c['unpaired_items']} items unpaired" if c["unpaired_items"] else ""))
    if not crit["item_count_met"]:
        print(f"  the criterion's item count was not met: {crit['paired_items_per_task']} paired items per task, "
              f"needs >= {MIN_ITEMS_PER_TASK}")
    print(f"criterion: {crit['verdict']}" + (f" (skipped: {'; '.join(skipped)})" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
