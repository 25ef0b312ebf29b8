"""Task quality vs SNR: the release targets of the semantic model, against separate coding, in one run.

Everything is measured on the test split, every system with the same ``--budget`` of complex
symbols per item (512), on each ``--channel`` (AWGN and Rician block fading, K ``--k-factor-db``,
both by default), at ``--snr-db`` (-5, 0, 5, 10, 15, 20 dB; Es/N0 per complex symbol). The natural
patches of the test split weight every source photograph equally (:mod:`mtsc_sdr.data.patches`).
Systems (``system`` of the rows): ``mtsc`` (ours), ``separate`` (separate source / channel coding,
:mod:`mtsc_sdr.runtime.evaluate`), ``capacity`` (the codec-at-capacity bound), ``linear`` (the best
linear analog scheme, PCA + LMMSE, ``benchmarks/patch_bounds.py``, on the same test patches),
``question_only`` (``--question-only DIR``: the question-only VQA model, its images zeroed) and
``ablation_<selection>`` (below).

Targets, each printed PASS, FAIL or NOT RUN once per channel (``checks`` of the report; NOT RUN:
a point or a system the target needs was not measured):

1. ``vqa_accuracy``: VQA accuracy >= 85 % at 20 dB and >= 70 % at 0 dB.
2. ``vqa_vs_question_only``: VQA accuracy >= 30 points above the question-only model ("same
   architecture, image zeroed, trained the same way": ``configs/question-only.yaml``) at 20 and
   0 dB, the points of target 1; the margin at every SNR is printed. NOT RUN without
   ``--question-only DIR``.
3. ``reconstruct_vs_linear``: patch PSNR at or above the PCA + LMMSE scheme at every SNR from -5
   to 20 dB. Over Rician the scheme runs at the SNR each patch arrived with in our run (the same
   fading draws: the per-patch fading spreads a 176-patch mean by about 0.2 dB, which a
   comparison with the scheme's own draws would add to the difference).
4. ``reconstruct_vs_separate``: patch PSNR above separate coding at every SNR <= 0 dB, and within
   3 dB of it at 5 dB.
5. ``reconstruct_rises``: patch PSNR rises by 3 dB or more from 0 to 20 dB, paired over the same
   patches (the mean over patches of PSNR at 20 dB - PSNR at 0 dB; its standard error printed).
6. ``text_beats_separate``: every text task that has a baseline (VQA, image captioning) beats
   separate coding on its main metric at every SNR <= 5 dB.
7. ``monotone``: each task's main metric never rises as the SNR falls, beyond measurement noise
   (paired over items: a rise fails when it exceeds twice the standard error of the per-item
   differences).
8. ``importance_ablation``: importance-aware token selection beats the same budget, rate and power
   spent on a fixed or a random token subset at SNR <= 0 dB, on VQA and image captioning, at
   ``--ablation-budget`` symbols per item (128: at 512 a 16-token image fits whole even at the
   lowest SNR, so there would be nothing to select).

Reported beside the targets: the gap of our patch PSNR to the codec-at-capacity bound (``gaps``
of the report; the bound is no longer a target), captions' CIDEr-D and BLEU, and VQA accuracy
per question type (count, colour, shape, position, size, existence): rows of metric
``accuracy_<type>`` with a ``question_type`` field (:mod:`mtsc_sdr.runtime.evaluate`).

``--n-per-task`` items per task (reconstruction: at most the 176 test patches, 22 from each of the 8
photographs). Run (``models/default`` with ``--question-only``, 200 items per task, both channels,
one thread: 4 minutes on this 2-core machine; ``models/minilm`` with 100 items: about 25 minutes
while two trainings shared the machine; measured)::

    .venv/bin/python benchmarks/quality_vs_snr.py [--checkpoint DIR] [--question-only DIR]
        [--n-per-task 200] [--channel awgn rician] [--markdown] [--json]

The question-only model is trained once, with the release model's schedule, by
``mtsc-sdr train --config configs/question-only.yaml`` (into ``results/models/question-only``).

``--checkpoint`` defaults to the shipped model (:func:`mtsc_sdr.model.checkpoint.shipped_model_dir`);
nothing is trained here: a missing checkpoint exits 2 with a message. Writes ``quality.json``
(DESIGN.md's ``{meta, rows}`` plus ``checks`` and ``gaps``) and ``<channel>/eval_<task>.png`` into
``--out``. Prints, per channel, the table of every system, task and metric against SNR, then one
line per target and channel (``PASS [awgn] vqa_accuracy: ...``); ``--markdown`` prints the same as
Markdown tables for a model card instead (one per channel: task / metric / system rows x SNR
columns; VQA accuracy per question type; the targets); ``--json`` prints the report on stdout and
the rest on stderr. The exit status is 0 whatever the targets say (2: bad arguments or checkpoint).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from mtsc_sdr import tasks

MAIN_METRIC = {spec.name: spec.main_metric for spec in tasks.specs()}
#: (SNR dB, minimum VQA accuracy %) of target 1; target 2 compares at the same SNRs.
VQA_TARGETS = ((20.0, 85.0), (0.0, 70.0))
QUESTION_ONLY_MARGIN = 30.0
RECONSTRUCT_RANGE_DB = (-5.0, 20.0)
SEPARATE_WITHIN_DB = 3.0          # at 5 dB
RISE_DB = 3.0                     # from 0 to 20 dB
#: Report order of the systems and how Markdown names them.
SYSTEM_NAMES = {"mtsc": "ours", "separate": "separate coding", "question_only": "question-only",
                "linear": "PCA + LMMSE (linear)", "capacity": "codec at capacity (bound)"}
TASK_NAMES = {"vqa": "VQA", "caption_image": "image captioning", "caption_audio": "audio captioning",
              "caption_video": "video captioning", "reconstruct": "patch reconstruction"}
METRIC_NAMES = {"accuracy": "accuracy (%)", "bleu": "BLEU-4", "cider": "CIDEr-D (x100)", "psnr_db": "PSNR (dB)",
                "ssim": "SSIM"}


# -- the targets (pure functions of report rows) -------------------------------------------------------

def _series(rows, system, task, metric, key: str = "value", channel: str | None = None) -> dict[float, object]:
    """``{snr_db: row[key]}`` of one system / task / metric (/ channel); rows without ``key`` left out."""
    return {r["snr_db"]: r[key] for r in rows
            if r["system"] == system and r["task"] == task and r["metric"] == metric and key in r
            and (channel is None or r["channel"] == channel)}


def _paired_allowance(high, low) -> float:
    """Twice the standard error of the mean of ``low - high`` over the same items (0 without
    per-item values, so the check is then strict)."""
    import numpy as np

    if high is None or low is None or len(high) != len(low) or len(high) < 2:
        return 0.0
    d = np.asarray(low, dtype=np.float64) - np.asarray(high, dtype=np.float64)
    d = d[np.isfinite(d)]
    return float(2.0 * d.std(ddof=1) / np.sqrt(len(d))) if len(d) >= 2 else 0.0


def paired_rise(low_values, high_values) -> tuple[float, float, int]:
    """(mean, standard error, n) over the items of ``high - low``, items whose two scores are
    both finite (an exactly reproduced patch has an infinite PSNR)."""
    import numpy as np

    a, b = np.asarray(low_values, dtype=np.float64), np.asarray(high_values, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    d = b[keep] - a[keep]
    if len(d) == 0:
        return math.nan, math.nan, 0
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) >= 2 else 0.0
    return float(d.mean()), se, int(len(d))


def _verdict(fails: list, missing: list) -> bool | None:
    """False on any failure, else None (not run) when a needed point is missing, else True."""
    return False if fails else None if missing else True


def _check(name, channel, passed, detail) -> dict:
    return {"name": name, "channel": channel, "passed": passed, "detail": detail}


def check_vqa_accuracy(rows, channel) -> dict:
    ours = _series(rows, "mtsc", "vqa", "accuracy", channel=channel)
    parts, fails, missing = [], [], []
    for snr, need in VQA_TARGETS:
        if snr not in ours:
            missing.append(f"not measured at {snr:g} dB")
            continue
        parts.append(f"{ours[snr]:.1f} % at {snr:g} dB (need >= {need:g})")
        if not ours[snr] >= need:
            fails.append(snr)
    return _check("vqa_accuracy", channel, _verdict(fails, missing), "; ".join(parts + missing))


def check_vqa_vs_question_only(rows, channel) -> dict:
    ours = _series(rows, "mtsc", "vqa", "accuracy", channel=channel)
    blind = _series(rows, "question_only", "vqa", "accuracy", channel=channel)
    if not blind:
        return _check("vqa_vs_question_only", channel, None,
                      "not run: pass --question-only DIR (a model trained with configs/question-only.yaml)")
    margins = {s: ours[s] - blind[s] for s in sorted(blind) if s in ours}
    fails, missing = [], []
    for snr, _ in VQA_TARGETS:
        if snr not in margins:
            missing.append(f"not measured at {snr:g} dB")
        elif not margins[snr] >= QUESTION_ONLY_MARGIN:
            fails.append(snr)
    detail = (f"ours - question-only (need >= {QUESTION_ONLY_MARGIN:g} points at "
              f"{' and '.join(f'{s:g}' for s, _ in VQA_TARGETS)} dB): "
              + ", ".join(f"{s:g} dB {m:+.1f} ({ours[s]:.1f} vs {blind[s]:.1f})" for s, m in margins.items()))
    return _check("vqa_vs_question_only", channel, _verdict(fails, missing), "; ".join([detail] + missing))


def check_reconstruct_vs_linear(rows, channel) -> dict:
    ours = _series(rows, "mtsc", "reconstruct", "psnr_db", channel=channel)
    lin = _series(rows, "linear", "reconstruct", "psnr_db", channel=channel)
    lo, hi = RECONSTRUCT_RANGE_DB
    snrs = sorted(s for s in ours if lo <= s <= hi)
    parts, fails, missing = [], [], []
    for snr in snrs:
        if snr not in lin:
            missing.append(f"no linear scheme at {snr:g} dB")
            continue
        parts.append(f"{snr:g} dB {ours[snr]:.2f} vs {lin[snr]:.2f}")
        if not ours[snr] >= lin[snr]:
            fails.append(snr)
    if not snrs:
        missing.append(f"no SNR from {lo:g} to {hi:g} dB measured")
    return _check("reconstruct_vs_linear", channel, _verdict(fails, missing), "; ".join(parts + missing))


def check_reconstruct_vs_separate(rows, channel) -> dict:
    ours = _series(rows, "mtsc", "reconstruct", "psnr_db", channel=channel)
    sep = _series(rows, "separate", "reconstruct", "psnr_db", channel=channel)
    parts, fails, missing = [], [], []
    for snr in sorted(s for s in ours if s <= 0.0 or s == 5.0):
        if snr not in sep:
            missing.append(f"no separate coding at {snr:g} dB")
            continue
        if snr <= 0.0:
            ok, need = ours[snr] > sep[snr], "above"
        else:
            ok, need = ours[snr] >= sep[snr] - SEPARATE_WITHIN_DB, f"within {SEPARATE_WITHIN_DB:g} dB"
        parts.append(f"{snr:g} dB {ours[snr]:.2f} vs {sep[snr]:.2f} (need {need})")
        if not ok:
            fails.append(snr)
    if 5.0 not in ours:
        missing.append("not measured at 5 dB")
    if not any(s <= 0.0 for s in ours):
        missing.append("no SNR <= 0 dB measured")
    return _check("reconstruct_vs_separate", channel, _verdict(fails, missing), "; ".join(parts + missing))


def check_reconstruct_rises(rows, channel) -> dict:
    ours = _series(rows, "mtsc", "reconstruct", "psnr_db", channel=channel)
    items = _series(rows, "mtsc", "reconstruct", "psnr_db", "item_values", channel=channel)
    if 0.0 not in ours or 20.0 not in ours:
        return _check("reconstruct_rises", channel, None, "needs 0 and 20 dB")
    if items.get(0.0) is not None and items.get(20.0) is not None and len(items[0.0]) == len(items[20.0]):
        rise, se, n = paired_rise(items[0.0], items[20.0])
        detail = f"+{rise:.2f} dB from 0 to 20 dB (paired over {n} patches, standard error {se:.2f})"
    else:
        rise = ours[20.0] - ours[0.0]
        detail = f"+{rise:.2f} dB from 0 to 20 dB (means; no per-item values)"
    ok = math.isfinite(rise) and rise >= RISE_DB
    return _check("reconstruct_rises", channel, ok, f"{detail}, need >= +{RISE_DB:g}".replace("+-", "-"))


def check_text_beats_separate(rows, channel) -> dict:
    fails, seen = [], 0
    for spec in tasks.specs():
        if spec.output != "text":
            continue
        ours = _series(rows, "mtsc", spec.name, spec.main_metric, channel=channel)
        base = _series(rows, "separate", spec.name, spec.main_metric, channel=channel)
        for snr in sorted(s for s in base if s <= 5.0 and s in ours):
            seen += 1
            if not ours[snr] > base[snr]:
                fails.append(f"{spec.name} {spec.main_metric} at {snr:g} dB: {ours[snr]:.2f} vs {base[snr]:.2f}")
    detail = "; ".join(fails) or (f"{seen} task/SNR points, all better" if seen else "no baseline point <= 5 dB")
    return _check("text_beats_separate", channel, _verdict(fails, [] if seen else ["none"]), detail)


def check_monotone(rows, channel) -> dict:
    fails, worst = [], []
    for task, metric in MAIN_METRIC.items():
        ours = _series(rows, "mtsc", task, metric, channel=channel)
        items = _series(rows, "mtsc", task, metric, "item_values", channel=channel)
        snrs = sorted(ours, reverse=True)
        rises = [(ours[b] - ours[a], _paired_allowance(items.get(a), items.get(b)), a, b)
                 for a, b in zip(snrs, snrs[1:])]                 # value at lower SNR - higher
        if rises:
            rise, allow, hi, lo = max(rises)
            worst.append(f"{task} {rise:+.2f} ({hi:g}->{lo:g} dB, noise allowance {allow:.2f})")
            if any(r > a for r, a, _, _ in rises):
                fails.append(task)
    return _check("monotone", channel, _verdict(fails, [] if worst else ["none"]),
                  "largest change as SNR falls: " + (", ".join(worst) or "fewer than two SNRs"))


def check_importance_ablation(rows, channel) -> dict:
    parts, fails = [], []
    for task in ("vqa", "caption_image"):
        metric = MAIN_METRIC[task]
        ours = _series(rows, "ablation_importance", task, metric, channel=channel)
        for other in ("ablation_fixed", "ablation_random"):
            alt = _series(rows, other, task, metric, channel=channel)
            for snr in sorted(s for s in alt if s <= 0.0 and s in ours):
                if not ours[snr] > alt[snr]:
                    fails.append(snr)
                parts.append(f"{task} {snr:g} dB {ours[snr]:.2f} vs {other.split('_')[1]} {alt[snr]:.2f}")
    return _check("importance_ablation", channel, _verdict(fails, [] if parts else ["none"]),
                  "; ".join(parts) or "no ablation point <= 0 dB")


CHECKS = (check_vqa_accuracy, check_vqa_vs_question_only, check_reconstruct_vs_linear,
          check_reconstruct_vs_separate, check_reconstruct_rises, check_text_beats_separate, check_monotone,
          check_importance_ablation)


def check_targets(rows: list[dict], channels: list[str] | None = None) -> list[dict]:
    """Every target of the module docstring per channel, as ``{name, channel, passed, detail}``
    records (``passed``: True, False, or None when not run). ``channels``: those of the rows."""
    channels = channels or list(dict.fromkeys(r["channel"] for r in rows))
    return [check(rows, ch) for ch in channels for check in CHECKS]


def capacity_gaps(rows: list[dict]) -> list[dict]:
    """Our patch PSNR minus the codec-at-capacity bound, per channel and SNR (reported, not a target)."""
    out = []
    for ch in dict.fromkeys(r["channel"] for r in rows):
        ours = _series(rows, "mtsc", "reconstruct", "psnr_db", channel=ch)
        cap = _series(rows, "capacity", "reconstruct", "psnr_db", channel=ch)
        out += [{"channel": ch, "snr_db": s, "ours_db": ours[s], "bound_db": cap[s], "gap_db": ours[s] - cap[s]}
                for s in sorted(cap) if s in ours]
    return out


def status(check: dict) -> str:
    return {True: "PASS", False: "FAIL", None: "NOT RUN"}[check["passed"]]


def check_lines(checks: list[dict]) -> list[str]:
    return [f"{status(c)} [{c['channel']}] {c['name']}: {c['detail']}" for c in checks]


# -- Markdown ------------------------------------------------------------------------------------------

def _cell(metric: str, value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-" if value is None else str(value)
    return f"{value:.3f}" if metric == "ssim" else f"{value:.2f}" if metric == "psnr_db" else f"{value:.1f}"


def _table(head: list[str], body: list[list[str]]) -> list[str]:
    esc = (lambda s: str(s).replace("|", "\\|"))
    return ["| " + " | ".join(map(esc, head)) + " |", "|" + "|".join(" --- " for _ in head) + "|"] + \
        ["| " + " | ".join(map(esc, r)) + " |" for r in body]


def markdown(report: dict) -> str:
    """The report as Markdown for a model card: per channel, one table of task / metric / system
    rows against SNR columns (ours, separate coding, question-only, the PCA + LMMSE scheme, the
    codec-at-capacity bound and our gap to it); VQA accuracy per question type; the targets."""
    from mtsc_sdr.data import QUESTION_TYPES

    rows, cfg = report["rows"], report["meta"]["config"]
    out = []
    for ch in cfg["channels"]:
        mine = [r for r in rows if r["channel"] == ch and not r["system"].startswith("ablation_")]
        snrs = sorted({r["snr_db"] for r in mine})
        n = cfg.get("items", {}).get(ch, {})
        out += [f"### {ch.upper() if ch == 'awgn' else ch.capitalize()}"
                + (f" (K = {cfg['k_factor_db']:g} dB)" if ch == "rician" else "")
                + f": test split, {cfg['budget']} complex symbols per item", ""]
        if n:
            out += ["Items per task: " + ", ".join(f"{TASK_NAMES.get(t, t)} {k}" for t, k in n.items()) + ".", ""]
        body = []
        for spec in tasks.specs():
            for metric in spec.metrics:
                for system, label in SYSTEM_NAMES.items():
                    vals = _series(mine, system, spec.name, metric)
                    if vals:
                        body.append([TASK_NAMES.get(spec.name, spec.name), METRIC_NAMES.get(metric, metric), label]
                                    + [_cell(metric, vals.get(s)) for s in snrs])
                if spec.output == "image" and metric == "psnr_db":
                    gaps = {g["snr_db"]: g["gap_db"] for g in report.get("gaps", []) if g["channel"] == ch}
                    if gaps:
                        body.append([TASK_NAMES.get(spec.name, spec.name), "PSNR (dB)", "ours - codec at capacity"]
                                    + [_cell("psnr_db", gaps.get(s)) for s in snrs])
        out += _table(["task", "metric", "system"] + [f"{s:g} dB" for s in snrs], body) + [""]
    typed = [r for r in rows if "question_type" in r and r["system"] in ("mtsc", "question_only")]
    if typed:
        snrs = sorted({r["snr_db"] for r in typed})
        order = {t: i for i, t in enumerate(QUESTION_TYPES)}
        keys = sorted({(r["channel"], r["system"], r["question_type"], r["metric"]) for r in typed},
                      key=lambda k: (cfg["channels"].index(k[0]) if k[0] in cfg["channels"] else 9,
                                     list(SYSTEM_NAMES).index(k[1]), order.get(k[2], 99), k[2]))
        body = []
        for ch, system, qtype, metric in keys:
            sel = [r for r in typed if (r["channel"], r["system"], r["metric"]) == (ch, system, metric)]
            vals = {r["snr_db"]: r["value"] for r in sel}
            body.append([ch, SYSTEM_NAMES[system], qtype, str(max(r["n"] for r in sel))]
                        + [_cell("accuracy", vals.get(s)) for s in snrs])
        out += ["### VQA accuracy (%) per question type", ""]
        out += _table(["channel", "system", "question type", "items"] + [f"{s:g} dB" for s in snrs], body) + [""]
    out += ["### Targets", ""]
    out += _table(["target", "channel", "result", "detail"],
                  [[c["name"], c["channel"], status(c), c["detail"]] for c in report["checks"]])
    return "\n".join(out)


# -- the run -------------------------------------------------------------------------------------------

def _linear_rows(scheme, items, snrs, channel, k_factor_db, seed, budget, ours_rows=()) -> list[dict]:
    """``linear`` rows: the PCA + LMMSE scheme on ``items`` (the evaluated test patches). Over a
    fading channel, at the very SNR each patch arrived with in our run (``item_snr_db`` of our
    PSNR row at that SNR: the same fading draws, so the comparison is paired) where the row has
    it, else averaged over the scheme's own fading draws."""
    import numpy as np

    from mtsc_sdr.metrics import METRIC_UNITS, standard_error
    from mtsc_sdr.report import row

    from patch_bounds import pixels

    test = pixels(items)
    arrived = {r["snr_db"]: r["item_snr_db"] for r in ours_rows
               if r["system"] == "mtsc" and r["task"] == "reconstruct" and r["metric"] == "psnr_db"
               and r.get("item_snr_db") is not None and len(r["item_snr_db"]) == len(items)}
    out = []
    for snr in snrs:
        if channel != "awgn" and float(snr) in arrived:
            v, how = scheme.psnr_db(test, np.asarray(arrived[float(snr)]), budget), "ours"
        else:
            v, how = scheme.channel_psnr_db(test, snr, channel, k_factor_db, seed, budget), "own"
        out.append(row("linear", "reconstruct", channel, float(snr), "psnr_db", float(np.mean(v)),
                       unit=METRIC_UNITS["psnr_db"], n=len(items), std_error=standard_error(v),
                       symbols_per_item=budget, **({} if channel == "awgn" else {"fading_draws": how})))
    return out


def _fail(msg: str) -> int:
    print(f"quality_vs_snr: {msg}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here.parent))
    sys.path.insert(0, str(here))                  # patch_bounds, beside this script
    from mtsc_sdr.model.checkpoint import shipped_model_dir
    from mtsc_sdr.report import run_meta
    from mtsc_sdr.runtime.evaluate import CHANNELS, allow_negative_snr_lists, parse_snr_list

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    allow_negative_snr_lists(p)
    p.add_argument("--checkpoint", default=None, metavar="DIR", help=f"model (default {shipped_model_dir()})")
    p.add_argument("--question-only", default=None, metavar="DIR",
                   help="the question-only VQA model (trained with configs/question-only.yaml); "
                        "without it the question-only target is reported as not run")
    p.add_argument("--n-per-task", type=int, default=200, metavar="N")
    p.add_argument("--snr-db", default="-5,0,5,10,15,20", help="comma list or start:stop:step, dB")
    p.add_argument("--channel", nargs="+", choices=CHANNELS, default=list(CHANNELS))
    p.add_argument("--k-factor-db", type=float, default=6.0, help="Rician K")
    p.add_argument("--budget", type=int, default=512, help="complex symbols per item, every system")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ablation-budget", type=int, default=128, help="symbols per item for the ablation")
    p.add_argument("--out", default="results/bench/quality_vs_snr", metavar="DIR")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables (for a model card)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout (the rest on stderr)")
    args = p.parse_args(argv)

    try:
        snrs = parse_snr_list(args.snr_db)
    except ValueError as exc:
        return _fail(f"--snr-db: {exc}")
    if args.n_per_task < 1 or args.budget < 1 or args.ablation_budget < 1:
        return _fail("--n-per-task, --budget and --ablation-budget must be >= 1")
    ckpt = Path(args.checkpoint) if args.checkpoint else shipped_model_dir()
    if not (ckpt / "config.json").is_file():
        return _fail(f"no checkpoint at {ckpt}; nothing is trained here: pass --checkpoint DIR, or train the "
                     "release model first (mtsc-sdr train --config configs/release-default.yaml)")
    blind_ckpt = Path(args.question_only) if args.question_only else None
    if blind_ckpt is not None:
        if not (blind_ckpt / "config.json").is_file():
            return _fail(f"--question-only: no checkpoint at {blind_ckpt} "
                         "(train it: mtsc-sdr train --config configs/question-only.yaml)")
        from mtsc_sdr.train.trainer import read_state

        state = read_state(blind_ckpt)
        if state is not None and not state.get("train_config", {}).get("blind", False):
            return _fail(f"--question-only: {blind_ckpt} was trained with its images (train_config.blind "
                         "is false); the question-only model is trained with configs/question-only.yaml")
        if state is None:
            print(f"quality_vs_snr: {blind_ckpt} has no trainer_state.json; taking it as question-only "
                  "(its images are zeroed)", file=sys.stderr)

    from mtsc_sdr.runtime.evaluate import evaluate, format_table, plot

    from patch_bounds import train_scheme

    common = dict(n_per_task=args.n_per_task, seed=args.seed, threads=args.threads, split="test",
                  k_factor_db=args.k_factor_db, progress=sys.stderr.isatty())
    rows, evals, items_per_channel = [], {}, {}
    scheme = None
    for ch in args.channel:
        rep = evaluate(ckpt, snrs, channel=ch, item_values=True, budget=args.budget, **common)
        rows += rep["rows"]
        evals[ch] = rep["meta"]
        items_per_channel[ch] = rep["meta"]["config"]["items"]
        ids = rep["meta"]["item_ids"].get("reconstruct")
        if ids:
            from mtsc_sdr.data import natural_patches

            scheme = scheme or train_scheme()
            by_id = {q.item_id: q for q in natural_patches("test")}
            rows += _linear_rows(scheme, [by_id[i] for i in ids], snrs, ch, args.k_factor_db, args.seed, args.budget,
                                 rep["rows"])
        if blind_ckpt is not None:
            extra = evaluate(blind_ckpt, snrs, channel=ch, tasks=("vqa",), baseline=False, blind=True,
                             budget=args.budget, **common)
            if extra["meta"]["item_ids"]["vqa"] != rep["meta"]["item_ids"]["vqa"]:
                raise RuntimeError("the question-only model was evaluated on other VQA items")
            for r in extra["rows"]:
                r["system"] = "question_only"
            rows += extra["rows"]
            evals[f"{ch}/question_only"] = extra["meta"]
        low = [s for s in snrs if s <= 0.0]
        for selection in ("importance", "fixed", "random"):
            if not low:
                break
            extra = evaluate(ckpt, low, channel=ch, tasks=("vqa", "caption_image"), baseline=False,
                             selection=selection, budget=args.ablation_budget, **common)
            for r in extra["rows"]:
                r["system"] = f"ablation_{selection}"
            rows += extra["rows"]

    config = {"checkpoint": str(ckpt), "question_only": str(blind_ckpt) if blind_ckpt else None,
              "channels": list(args.channel), "snr_db": snrs, "n_per_task": args.n_per_task,
              "items": items_per_channel, "split": "test", "budget": args.budget,
              "ablation_budget": args.ablation_budget, "k_factor_db": args.k_factor_db}
    meta = run_meta(config, {"seed": args.seed})
    meta["eval"] = evals          # each evaluation's meta (item ids, model): "<channel>", "<channel>/question_only"
    report = {"meta": meta, "rows": rows}
    report["checks"] = check_targets(rows, list(args.channel))
    report["gaps"] = capacity_gaps(rows)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(report, indent=1))
    files = []
    for ch in args.channel:
        (out / ch).mkdir(exist_ok=True)
        files += plot([r for r in rows if r["channel"] == ch and not r["system"].startswith("ablation_")],
                      out / ch)
    stream = sys.stderr if args.json else sys.stdout
    if args.markdown:
        print(markdown(report), file=stream)
    else:
        for ch in args.channel:
            print(format_table([r for r in rows if r["channel"] == ch]), file=stream)
            print(file=stream)
        for g in report["gaps"]:
            print(f"gap to the codec-at-capacity bound [{g['channel']}] {g['snr_db']:g} dB: {g['gap_db']:+.2f} dB "
                  f"({g['ours_db']:.2f} vs {g['bound_db']:.2f})", file=stream)
        print("\n".join(check_lines(report["checks"])), file=stream)
    print(f"wrote {out / 'quality.json'} and {len(files)} plots in {out}",
          file=sys.stderr if (args.json or args.markdown) else stream)
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
