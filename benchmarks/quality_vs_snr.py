"""Task quality vs SNR: the semantic model against the separate-coding baseline, one run.

Measures the targets of the semantic-model issue on the test split, every system with the same
symbol budget per item (``symbols_per_item`` of the checkpoint, 512 for the default model):

1. ``beats_baseline``: our model beats separate source/channel coding on every task that has a
   baseline (VQA, image captioning, reconstruction) at every SNR <= 5 dB.
2. ``monotone``: each task's main metric never rises as the SNR falls from the highest to the
   lowest SNR, beyond measurement noise. The items are the same at every SNR, so each step is a
   paired comparison: the rise is the mean over items of (score at the lower SNR - score at the
   higher), and it fails when it exceeds twice its standard error (rows' ``item_values``). A flat
   stretch measured on 100 items wobbles by about a standard error either way, so a strict test
   would be a coin toss on a curve that does not rise. The largest rise and its allowance are
   printed.
3. ``patches_vs_capacity``: natural-image patch PSNR >= the codec-at-channel-capacity bound at
   SNR <= 5 dB, and within 3 dB of it at 10 dB.
4. ``importance_ablation``: importance-aware token selection beats the same budget, rate and power
   spent on a fixed or a random token subset at SNR <= 0 dB, on VQA and image captioning. It runs
   at ``--ablation-budget`` symbols per item (default 128): at 512 a 16-token image fits whole even
   at the lowest SNR, so there would be nothing to select; at 128 an image keeps 4 of its 16 tokens
   at -5 dB (32 symbols each) and 8 at 0 dB (16 each).

Run (36 s on 2 cores with ``--n-per-task 100``, measured; the default 200 takes longer)::

    .venv/bin/python benchmarks/quality_vs_snr.py [--checkpoint DIR] [--n-per-task 200]

Without a checkpoint at ``--checkpoint`` (default: the default model's cache directory) it trains
the default model first (``mtsc-sdr train``, about 7 minutes on 2 cores). Writes ``quality.json`` (DESIGN.md's
``{meta, rows}`` plus ``checks``) and ``eval_<task>.png`` into ``--out``; prints the table and one
PASS/FAIL line per target.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mtsc_sdr import tasks

MAIN_METRIC = {spec.name: spec.main_metric for spec in tasks.specs()}


def _series(rows, system, task, metric, key: str = "value") -> dict[float, float]:
    """``{snr_db: row[key]}`` of one system / task / metric (rows without ``key`` left out)."""
    return {r["snr_db"]: r[key] for r in rows
            if r["system"] == system and r["task"] == task and r["metric"] == metric and key in r}


def _paired_allowance(high, low) -> float:
    """Twice the standard error of the mean of ``low - high`` over the same items (0 without
    per-item values, so the check is then strict)."""
    import numpy as np

    if high is None or low is None or len(high) != len(low) or len(high) < 2:
        return 0.0
    d = np.asarray(low, dtype=np.float64) - np.asarray(high, dtype=np.float64)
    d = d[np.isfinite(d)]
    return float(2.0 * d.std(ddof=1) / np.sqrt(len(d))) if len(d) >= 2 else 0.0


def check_targets(rows: list[dict]) -> list[dict]:
    """The four targets as ``{name, passed, detail}`` records, from evaluation rows."""
    checks = []

    def add(name, passed, detail):
        checks.append({"name": name, "passed": bool(passed), "detail": detail})

    # 1. beat the baseline at <= 5 dB
    fails, seen = [], 0
    for task, metric in MAIN_METRIC.items():
        ours, base = _series(rows, "mtsc", task, metric), _series(rows, "separate", task, metric)
        for snr in sorted(s for s in base if s <= 5.0 and s in ours):
            seen += 1
            if not ours[snr] > base[snr]:
                fails.append(f"{task} {metric} at {snr:g} dB: {ours[snr]:.2f} vs {base[snr]:.2f}")
    add("beats_baseline", seen and not fails, "; ".join(fails) or f"{seen} task/SNR points, all better")

    # 2. monotone degradation, up to measurement noise (paired over items)
    fails, worst = [], []
    for task, metric in MAIN_METRIC.items():
        ours, items = _series(rows, "mtsc", task, metric), _series(rows, "mtsc", task, metric, "item_values")
        snrs = sorted(ours, reverse=True)
        rises = [(ours[b] - ours[a], _paired_allowance(items.get(a), items.get(b)), a, b)
                 for a, b in zip(snrs, snrs[1:])]                 # value at lower SNR - higher
        if rises:
            rise, allow, hi, lo = max(rises)
            worst.append(f"{task} {rise:+.2f} ({hi:g}->{lo:g} dB, noise allowance {allow:.2f})")
            if any(r > a for r, a, _, _ in rises):
                fails.append(task)
    add("monotone", worst and not fails, "largest change as SNR falls: " + ", ".join(worst))

    # 3. patches vs codec at capacity
    ours, cap = _series(rows, "mtsc", "reconstruct", "psnr_db"), _series(rows, "capacity", "reconstruct", "psnr_db")
    parts, ok = [], bool(cap)
    for snr in sorted(cap):
        if snr not in ours:
            continue
        need = cap[snr] if snr <= 5.0 else cap[snr] - 3.0 if snr == 10.0 else None
        if need is None:
            continue
        ok &= ours[snr] >= need
        parts.append(f"{snr:g} dB: {ours[snr]:.2f} vs bound {cap[snr]:.2f} (need >= {need:.2f})")
    add("patches_vs_capacity", ok and parts, "; ".join(parts))

    # 4. importance ablation at <= 0 dB (rows "ablation_<selection>", one budget)
    parts, ok = [], True
    for task in ("vqa", "caption_image"):
        metric = MAIN_METRIC[task]
        ours = _series(rows, "ablation_importance", task, metric)
        for other in ("ablation_fixed", "ablation_random"):
            alt = _series(rows, other, task, metric)
            for snr in sorted(s for s in alt if s <= 0.0 and s in ours):
                ok &= ours[snr] > alt[snr]
                parts.append(f"{task} {snr:g} dB {ours[snr]:.2f} vs {other.split('_')[1]} {alt[snr]:.2f}")
    add("importance_ablation", ok and parts, "; ".join(parts))
    return checks


def main(argv=None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mtsc_sdr.runtime.evaluate import (CHANNELS, allow_negative_snr_lists, evaluate, format_table,
                                           parse_snr_list, plot)
    from mtsc_sdr.model.checkpoint import shipped_model_dir
    from mtsc_sdr.train.config import TrainConfig

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    allow_negative_snr_lists(p)
    p.add_argument("--checkpoint", default=None, help="model directory (default: the default model)")
    p.add_argument("--n-per-task", type=int, default=200)
    p.add_argument("--snr-db", default="-5,0,5,10,15,20")
    p.add_argument("--channel", choices=CHANNELS, default="awgn")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ablation-budget", type=int, default=128, help="symbols per item for the ablation")
    p.add_argument("--out", default="results/bench/quality_vs_snr")
    args = p.parse_args(argv)

    ckpt = Path(args.checkpoint) if args.checkpoint else shipped_model_dir()
    if not (ckpt / "config.json").is_file():
        from mtsc_sdr.train.trainer import train

        print(f"no checkpoint at {ckpt}: training the default model first", file=sys.stderr)
        train(TrainConfig.from_dict({"checkpoint_dir": str(ckpt)}))
    snrs = parse_snr_list(args.snr_db)
    common = dict(channel=args.channel, n_per_task=args.n_per_task, seed=args.seed, threads=args.threads,
                  progress=sys.stderr.isatty())
    report = evaluate(ckpt, snrs, item_values=True, **common)
    low = [s for s in snrs if s <= 0.0]
    for selection in ("importance", "fixed", "random"):
        extra = evaluate(ckpt, low, tasks=("vqa", "caption_image"), baseline=False, selection=selection,
                         budget=args.ablation_budget, **common)
        for r in extra["rows"]:
            r["system"] = f"ablation_{selection}"
        report["rows"] += extra["rows"]
    report["checks"] = check_targets(report["rows"])

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(report, indent=1))
    files = plot(report["rows"], out)
    print(format_table(report["rows"]))
    for c in report["checks"]:
        print(f"{'PASS' if c['passed'] else 'FAIL'} {c['name']}: {c['detail']}")
    print(f"wrote {out / 'quality.json'} and {len(files)} plots in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
