"""Federated split fine-tuning on a domain phase I never saw, against the phase-I model and against
centralized fine-tuning on the pooled data, in one run (``mtsc-sdr finetune`` under the hood: the
training base station, one software-channel link per client, the Flower simulation engine).

Per backbone (``--checkpoint``, repeatable; default the two shipped models):

* **phase I**: the global metric on the domain's validation items with nothing trained (one round
  of zero local steps: the evaluation every round ends with, through the link);
* **federated**: ``--clients`` clients x ``--rounds`` rounds, each client ``--local-steps`` split
  steps of ``--batch-size`` per round on its own non-IID share (:mod:`mtsc_sdr.data.partition`);
* **centralized**: one client holding the union of those shares (``pool-partitions``) for the
  same rounds with ``clients x local-steps`` steps each: the same examples seen, the same epochs,
  over the same link and base station;

and the issue's targets: the federated global metric >= 15 points above phase I and >= 90 % of
the centralized one, and a model update <= 2 % of the client model's bytes (minilm). The global
metric is VQA accuracy on the ``new_questions`` domain by default (``--domain``, ``--metric-task``).

Run::

    .venv/bin/python benchmarks/federated_finetune.py [--checkpoint models/default] [--json]

Writes ``results/bench/federated_finetune/<model>/report.json`` ({meta, rows, checks}) with the
three runs' own reports beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: The issue's targets.
LIFT_POINTS, SHARE_OF_CENTRALIZED, UPDATE_SHARE = 15.0, 0.9, 0.02


def global_metric(report: dict, task: str) -> list[float]:
    """The global metric of ``task`` after each round (the evaluate phase's aggregate)."""
    return [r["evaluate"]["aggregated_metrics"][task] for r in report["federation"]["rounds"]]


def run_model(checkpoint: str, args, out: Path) -> dict:
    from mtsc_sdr.finetune.run import finetune
    from mtsc_sdr.finetune.task import build_model, trainable_state

    base = {"checkpoint": checkpoint, "domain": args.domain, "tasks": args.tasks, "snr-db": args.snr_db,
            "batch-size": args.batch_size, "lr": args.lr, "eval-items": args.eval_items, "seed": args.seed,
            "examples-per-client": args.examples_per_client}
    runs = {
        "phase_i": (args.clients, 1, {**base, "local-steps": 0}),
        "federated": (args.clients, args.rounds, {**base, "local-steps": args.local_steps}),
        "centralized": (1, args.rounds, {**base, "local-steps": args.clients * args.local_steps,
                                         "pool-partitions": args.clients}),
    }
    reports = {}
    for name, (clients, rounds, config) in runs.items():
        print(f"{Path(checkpoint).name}: {name} ({clients} client(s) x {rounds} round(s))", file=sys.stderr, flush=True)
        reports[name] = finetune(clients, rounds, config, out / name, "software", args.server_lr, progress=False)
    task = args.metric_task
    phase_i = global_metric(reports["phase_i"], task)[-1]
    fed, central = global_metric(reports["federated"], task), global_metric(reports["centralized"], task)
    ft = build_model({"checkpoint": checkpoint})
    update = sum(v.nbytes for v in trainable_state(ft).values())
    client_bytes = sum(p.numel() * p.element_size() for p in ft.model.client.parameters())
    checks = {
        "lift": {"pass": fed[-1] - phase_i >= LIFT_POINTS, "phase_i": phase_i, "federated": fed[-1],
                 "points": round(fed[-1] - phase_i, 2), "target": f">= {LIFT_POINTS:g} points over phase I"},
        "vs_centralized": {"pass": fed[-1] >= SHARE_OF_CENTRALIZED * central[-1], "federated": fed[-1],
                           "centralized": central[-1], "share": round(fed[-1] / central[-1], 3) if central[-1] else None,
                           "target": f">= {SHARE_OF_CENTRALIZED:.0%} of centralized"},
        "update_size": {"pass": (update <= UPDATE_SHARE * client_bytes) if ft.model.backbone_kind == "minilm" else None,
                        "update_bytes": update, "client_bytes": client_bytes, "share": round(update / client_bytes, 4),
                        "target": f"<= {UPDATE_SHARE:.0%} of the client model's bytes (minilm; reported for the others)"},
    }
    rows = [{"system": name, "round": k + 1, "task": task, "metric": task_metric(task), "value": v}
            for name in ("federated", "centralized") for k, v in enumerate(global_metric(reports[name], task))]
    rows.append({"system": "phase_i", "round": 0, "task": task, "metric": task_metric(task), "value": phase_i})
    per_round = [{"round": k + 1, **{key: r["train"]["aggregated_metrics"].get(key) for key in
                                     ("loss", "iq_bytes", "activation_bytes", "gradient_up_bytes",
                                      "gradient_down_bytes", "frames_lost", "batches_lost")},
                  "model_update_bytes_up": r["train"]["bytes_up"], "wall_s": round(r["train"]["wall_s"], 1)}
                 for k, r in enumerate(reports["federated"]["federation"]["rounds"])]
    return {"checks": checks, "rows": rows, "federated_rounds": per_round,
            "parameters": reports["federated"]["parameters"],
            "wall_s": {name: rep["meta"]["wall_s"] for name, rep in reports.items()}}


def task_metric(task: str) -> str:
    from mtsc_sdr import tasks

    return tasks.get(task).main_metric


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", action="append", help="phase-I model (repeatable; default models/default "
                                                         "and models/minilm)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--local-steps", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--server-lr", type=float, default=5e-4)
    p.add_argument("--examples-per-client", type=int, default=512)
    p.add_argument("--eval-items", type=int, default=200)
    p.add_argument("--domain", default="new_questions")
    p.add_argument("--tasks", default="vqa,caption_image")
    p.add_argument("--metric-task", default="vqa", help="the task whose main metric is the global metric")
    p.add_argument("--snr-db", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/bench/federated_finetune")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    from mtsc_sdr.model.checkpoint import shipped_model_dir
    from mtsc_sdr.report import git_commit, run_meta

    checkpoints = args.checkpoint or [str(shipped_model_dir()), str(shipped_model_dir("minilm"))]
    ok = True
    for ck in checkpoints:
        out = Path(args.out) / Path(ck).name
        result = run_model(ck, args, out)
        report = {"meta": {**run_meta(vars(args), {"seed": args.seed}), "commit": git_commit(), "checkpoint": ck},
                  **result}
        (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
        if args.json:
            print(json.dumps(report, indent=1, default=str))
        print(f"{Path(ck).name}: {args.metric_task} on {args.domain}, wall {result['wall_s']}")
        for name, c in result["checks"].items():
            ok &= c["pass"] is not False
            verdict = "n/a " if c["pass"] is None else "PASS" if c["pass"] else "FAIL"
            print(f"  {verdict} {name}: " + json.dumps({k: v for k, v in c.items() if k != 'pass'}))
        for r in result["federated_rounds"]:
            print(f"  round {r['round']}: " + json.dumps(r))
        print(f"wrote {out / 'report.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
