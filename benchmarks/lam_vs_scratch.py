"""What pre-training buys: the pre-trained LAM against the same LAM trained from scratch, one run.

Systems (the ``system`` of each row), trained with the same steps, data, seed and schedule:

* ``minilm-lora``: the ``minilm`` backbone, warm-started from the packaged all-MiniLM-L6-v2,
  pre-trained layers frozen with LoRA adapters (the paper's phase I);
* ``minilm-scratch``: "SemCom without LAM" (the paper's baseline 2, U-DeepSC-like): the same
  architecture and size, the LAM initialised at random and trained fully;
* ``default``: the project's own small BART trained from scratch (the default model).

Each is trained twice, on the whole training pool (``data_fraction`` 1) and on ``--fraction`` of it
(default 0.1, same steps), and evaluated with :func:`mtsc_sdr.runtime.evaluate.evaluate` per task
and SNR, AWGN and Rician, on the ``test`` split and (full-data models, text tasks) on the
``test_phrasing`` split: the test items worded with question and caption templates training never
sees (:data:`mtsc_sdr.data.PHRASING_SPLITS`). Rows carry ``split`` and ``data_fraction``.

Differences ``minilm-lora`` - ``minilm-scratch``: a row with ``metric: "<metric>_diff"``, ``peer:
"minilm-scratch"`` and ``std_error`` per task, SNR, channel, split and data fraction. Both systems
see the same items under the same channel seeds, so for per-item metrics (accuracy, CIDEr-D,
PSNR, SSIM) the standard error is that of the mean per-item difference (``paired: true``); corpus
BLEU has no per-item scores, so its difference has ``std_error: null``. ``train_time_s`` rows give
each training's wall time on this machine (setup excluded; ``setup_s`` beside it).

The minilm systems need the ``minilm`` backbone (``ModelConfig.backbone``) and its init / tuning
fields (``lam_init``: ``pretrained`` | ``random``, ``lam_tuning``: ``lora`` | ``full``). Where this
checkout lacks them, the script says so, runs ``default`` alone and lists the reason in
``meta.skipped``.

Run (``--quick``: micro sizes and two steps, seconds; a check that the script works end to end)::

    .venv/bin/python benchmarks/lam_vs_scratch.py [--steps 1000] [--n-per-task 100] [--json]

Writes ``lam_vs_scratch.json`` (DESIGN.md's ``{meta, rows}``) and the trained models (``models/``)
into ``--out`` (default ``results/bench/lam_vs_scratch``); prints one table per split and data
fraction.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtsc_sdr import tasks as task_table  # noqa: E402
from mtsc_sdr.config import ConfigError, to_dict  # noqa: E402
from mtsc_sdr.report import row, run_meta  # noqa: E402

#: system -> the configuration fields that make it (placed in TrainConfig or its ``model``,
#: wherever the field lives: see :func:`system_config`).
SYSTEMS: dict[str, dict[str, Any]] = {
    "minilm-lora": {"backbone": "minilm", "lam_init": "pretrained", "lam_tuning": "lora"},
    "minilm-scratch": {"backbone": "minilm", "lam_init": "random", "lam_tuning": "full"},
    "default": {},
}
#: the pair whose difference the report gives (pre-trained minus from scratch)
PAIR = ("minilm-lora", "minilm-scratch")
CHANNELS = ("awgn", "rician")
PHRASING_SPLIT = "test_phrasing"
#: training settings of ``--quick`` (micro model, a handful of items and steps)
QUICK = {"preset": "micro", "tokenizer_scenes": 40, "examples_per_task": 10, "batch_size": 2, "warmup_steps": 1,
         "checkpoint_every": 100}


def system_config(base: dict[str, Any], fields: dict[str, Any]):
    """The :class:`~mtsc_sdr.train.config.TrainConfig` of ``base`` plus a system's ``fields``, each
    put where it is declared: a TrainConfig field, else a ModelConfig field (``model``).

    Raises:
        ConfigError: a field or value this checkout does not know (the message names it).
    """
    from mtsc_sdr.model.config import BACKBONE_MODULES
    from mtsc_sdr.train.config import TrainConfig

    backbone = fields.get("backbone", "bart")
    if backbone not in BACKBONE_MODULES:
        raise ConfigError("model.backbone", f"the {backbone!r} backbone is not in this checkout "
                                            f"(backbones: {', '.join(sorted(BACKBONE_MODULES))})")
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    data = {**base, "model": dict(base.get("model", {}))}
    for name, value in fields.items():
        (data if name in train_fields else data["model"])[name] = value
    return TrainConfig.from_dict(data)


def paired_diff(a: dict, b: dict) -> dict[str, Any]:
    """``value`` (a - b) and ``std_error`` of one metric's rows ``a`` and ``b`` on the same items:
    the standard error of the mean per-item difference when both rows have ``item_values`` of
    the same length (``paired: True``), else None (``paired: False``)."""
    from mtsc_sdr.metrics import standard_error

    ia, ib = a.get("item_values"), b.get("item_values")
    paired = ia is not None and ib is not None and len(ia) == len(ib) and len(ia) > 0
    se = standard_error(np.asarray(ia, np.float64) - np.asarray(ib, np.float64)) if paired else None
    return {"value": a["value"] - b["value"], "std_error": se, "paired": paired}


def diff_rows(rows: list[dict], system: str = PAIR[0], peer: str = PAIR[1]) -> list[dict]:
    """``<metric>_diff`` rows, ``system`` minus ``peer``, for every (split, data fraction, channel,
    task, SNR, metric) both have."""
    def key(r):
        return (r.get("split"), r.get("data_fraction"), r["channel"], r["task"], r["snr_db"], r["metric"])

    theirs = {key(r): r for r in rows if r["system"] == peer and r.get("stage") == "eval"}
    out = []
    for r in rows:
        other = theirs.get(key(r)) if r["system"] == system and r.get("stage") == "eval" else None
        if other is None or r["value"] is None or other["value"] is None:
            continue
        out.append(row(system, r["task"], r["channel"], r["snr_db"], f"{r['metric']}_diff", peer=peer,
                       unit=r.get("unit"), n=r.get("n"), split=r.get("split"), data_fraction=r.get("data_fraction"),
                       stage="compare", **paired_diff(r, other)))
    return out


def _train(name: str, cfg, progress: bool) -> tuple[Path, list[dict]]:
    """Train one system (restarting any run in its directory); its ``train_time_s`` row."""
    from mtsc_sdr.train.trainer import train

    print(f"lam_vs_scratch: training {name} (data_fraction {cfg.data_fraction:g}, {cfg.steps} steps)",
          file=sys.stderr, flush=True)
    res = train(cfg, restart=True, quiet=not progress)
    return res.checkpoint_dir, [row(name, "all", "awgn+rician", None, "train_time_s", res.elapsed_s, unit="s",
                                    stage="train", steps=res.step, setup_s=res.setup_s,
                                    data_fraction=cfg.data_fraction)]


def _evaluate(name: str, checkpoint: Path, split: str, fraction: float, tasks: tuple[str, ...],
              snrs: list[float], args) -> list[dict]:
    """Rows of one trained system on ``split``, both channels, tagged with split and fraction."""
    from mtsc_sdr.runtime.evaluate import evaluate

    rows = []
    for channel in CHANNELS:
        report = evaluate(checkpoint, snrs, channel=channel, tasks=tasks, n_per_task=args.n_per_task, split=split,
                          seed=args.seed, baseline=False, threads=args.threads, item_values=True,
                          device=args.device)
        for r in report["rows"]:
            rows.append({**r, "system": name, "split": split, "data_fraction": fraction, "stage": "eval"})
    return rows


def format_tables(rows: list[dict]) -> str:
    """One table per (split, data fraction): a line per (task, metric, system), a column per
    (channel, SNR); ``_diff`` rows show ``value +- std_error``."""
    lines = []
    groups = sorted({(r["split"], r["data_fraction"]) for r in rows if r.get("stage") in ("eval", "compare")},
                    key=lambda g: (g[0] != "test", g[0], -g[1]))
    for split, fraction in groups:
        part = [r for r in rows if (r.get("split"), r.get("data_fraction")) == (split, fraction)]
        cols = sorted({(r["channel"], r["snr_db"]) for r in part})
        lines += ["", f"split {split}, data_fraction {fraction:g}",
                  f"{'task':<14}{'metric':<16}{'system':<16}" + "".join(f"{c + ' ' + format(s, 'g'):>16}"
                                                                      for c, s in cols)]
        cells: dict[tuple, dict] = {}
        for r in part:
            text = f"{r['value']:.3f}" if r["value"] is not None else "-"
            if r["metric"].endswith("_diff") and r.get("std_error") is not None:
                text += f"+-{r['std_error']:.3f}"
            cells.setdefault((r["task"], r["metric"], r["system"]), {})[(r["channel"], r["snr_db"])] = text
        for (task, metric, system), vals in sorted(cells.items()):
            lines.append(f"{task:<14}{metric:<16}{system:<16}" + "".join(f"{vals.get(c, '-'):>16}" for c in cols))
    times = [r for r in rows if r["metric"] == "train_time_s"]
    lines += ["", "training wall time: " + ", ".join(
        f"{r['system']} (fraction {r['data_fraction']:g}) {r['value']:.1f} s" for r in times)]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    from mtsc_sdr.runtime.evaluate import allow_negative_snr_lists, parse_snr_list

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    allow_negative_snr_lists(p)
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps of every training (default 1000)")
    p.add_argument("--batch-size", type=int, default=None, help="examples per task in a step (default: the preset's, 16)")
    p.add_argument("--warmup-steps", type=int, default=None, help="learning-rate warm-up steps (default: the preset's, 50)")
    p.add_argument("--examples-per-task", type=int, default=2000, help="training pool per task (data_fraction 1)")
    p.add_argument("--fraction", type=float, default=0.1, help="the reduced-data run's data_fraction")
    p.add_argument("--n-per-task", type=int, default=100, help="evaluation items per task")
    p.add_argument("--snr-db", default="-5:20:5", help="start:stop:step (inclusive) or a comma list, dB")
    p.add_argument("--tasks", nargs="+", choices=task_table.names(), default=list(task_table.names()))
    p.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="torch device for training and evaluation, e.g. cuda "
                                                   "(training then runs in mixed precision)")
    p.add_argument("--quick", action="store_true",
                   help="micro models, 2 steps, 2 items per task, SNRs -5 and 20 dB: checks the script works")
    p.add_argument("--out", default="results/bench/lam_vs_scratch")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    args = p.parse_args(argv)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            p.error(f"--device {args.device}: torch finds no CUDA GPU on this machine")
    if args.quick:
        args.steps, args.n_per_task, args.snr_db = 2, 2, "-5,20"
    snrs = parse_snr_list(args.snr_db)
    if not 0 < args.fraction <= 1:
        p.error(f"--fraction must be in (0, 1], got {args.fraction}")
    out = Path(args.out)
    base = {**(QUICK if args.quick else {}), "steps": args.steps, "seed": args.seed, "num_threads": args.threads,
            "device": args.device,
            "tasks": list(args.tasks)}
    if not args.quick:
        base["examples_per_task"] = args.examples_per_task
    for name in ("batch_size", "warmup_steps"):   # a shorter run on a small machine
        if getattr(args, name) is not None:
            base[name] = getattr(args, name)
    text_tasks = tuple(t for t in args.tasks if task_table.get(t).output == "text")
    progress = sys.stderr.isatty() and not args.json

    rows: list[dict] = []
    skipped: list[str] = []
    configs: dict[str, dict] = {}
    for name in args.systems:
        for fraction in dict.fromkeys((1.0, args.fraction)):
            try:
                cfg = system_config({**base, "data_fraction": fraction,
                                     "checkpoint_dir": str(out / "models" / f"{name}-f{fraction:g}")}, SYSTEMS[name])
            except ConfigError as exc:
                skipped.append(f"{name}: not available: {exc}")
                print(f"lam_vs_scratch: skipping {name}: {exc}", file=sys.stderr)
                break
            configs[f"{name}-f{fraction:g}"] = to_dict(cfg)
            checkpoint, train_rows = _train(name, cfg, progress)
            rows += train_rows
            rows += _evaluate(name, checkpoint, "test", fraction, tuple(args.tasks), snrs, args)
            if fraction == 1.0 and text_tasks:
                rows += _evaluate(name, checkpoint, PHRASING_SPLIT, fraction, text_tasks, snrs, args)
    rows += diff_rows(rows)
    if not any(r["metric"].endswith("_diff") for r in rows):
        skipped.append(f"{PAIR[0]} - {PAIR[1]} differences: need both systems")

    config = {"steps": args.steps, "fraction": args.fraction, "n_per_task": args.n_per_task, "snr_db": snrs,
              "channels": list(CHANNELS), "tasks": list(args.tasks), "phrasing_tasks": list(text_tasks),
              "systems": {k: SYSTEMS[k] for k in args.systems}, "quick": args.quick, "train": configs}
    meta = {**run_meta(config, {"seed": args.seed}), "skipped": skipped}
    report = {"meta": meta, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "lam_vs_scratch.json").write_text(json.dumps(report, indent=1))
    stream = sys.stderr if args.json else sys.stdout
    print(format_tables(rows), file=stream)
    for note in skipped:
        print(f"note: {note}", file=stream)
    print(f"wrote {out / 'lam_vs_scratch.json'}", file=stream)
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
