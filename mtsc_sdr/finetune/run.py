"""``mtsc-sdr finetune``: federated split fine-tuning of a phase-I model, end to end.

Starts the fine-tuning base station (:mod:`.station`, one receiver per client), one link per
client (``--link``: the software channel, the GNU Radio sim flowgraph, or a radio pair; as ``mtsc-sdr
run`` starts them) and the Flower apps in the simulation engine (:func:`.federation.run_simulation`),
whose virtual client ``i`` trains over link ``i``; then tears everything down and writes the
report (``finetune.json``; the server app's own is ``report.json``, the final global state
``state.safetensors``): per round, each client's loss, steps and link figures (bytes up and down as activations,
gradients and model updates; frames and messages lost), the global metric per task after the
round (evaluated through the link), which updates were accepted, rejected or absent, trainable vs
total parameters, and wall time.

Run::

    mtsc-sdr finetune --clients 4 --rounds 5 [--backbone minilm] [--link software|gnuradio-sim] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from mtsc_sdr.link import free_tcp_endpoint
from mtsc_sdr.process import ChildProcess, stop_all
from mtsc_sdr.radio.links import CHANNELS, LinkConfig, start_link
from mtsc_sdr.runtime import protocol

from .runconfig import SERVER_LR


def station_argv(checkpoint: str, control: str, rx: list[str], stats: Path, lr: float, rank: int, alpha: float,
                 seed: int) -> list[str]:
    """The fine-tuning base station's command line (:mod:`.station`)."""
    return [sys.executable, "-m", "mtsc_sdr.finetune.station", "--checkpoint", checkpoint, "--control", control,
            *[a for ep in rx for a in ("--rx", ep)], "--stats", str(stats), "--lr", repr(lr),
            "--adapter-rank", str(rank), "--adapter-alpha", repr(alpha), "--seed", str(seed)]


def parameter_counts(config: dict) -> dict[str, int]:
    """Trainable (shared, personal, base station) and total parameters of the prepared model."""
    from .task import build_model

    ft = build_model(config)
    params = dict(ft.model.named_parameters())
    count = lambda names: int(sum(params[n].numel() for n in names))  # noqa: E731
    return {"shared": count(ft.setup.shared), "personal": count(ft.setup.personal),
            "base_station": count(ft.setup.server), "total": int(sum(p.numel() for p in params.values())),
            "client_total": int(sum(p.numel() for p in ft.model.client.parameters()))}


def finetune(clients: int, rounds: int, config: dict[str, Any], out: Path, link: str = "software",
             server_lr: float = SERVER_LR, progress: bool = True) -> dict[str, Any]:
    """Run it (module docstring); returns the report, also written to ``out/finetune.json``."""
    from mtsc_sdr.model.checkpoint import shipped_model_dir

    from .federation import run_simulation

    out.mkdir(parents=True, exist_ok=True)
    checkpoint = config.get("checkpoint") or str(shipped_model_dir())
    protocol.checkpoint_identity(checkpoint)                 # a broken checkpoint fails here, named
    control = free_tcp_endpoint()
    slots = [(free_tcp_endpoint(), free_tcp_endpoint()) for _ in range(clients)]
    run_config = {**config, "checkpoint": checkpoint, "control-endpoint": control,
                  "tx-endpoints": ",".join(tx for tx, _ in slots), "num-server-rounds": rounds,
                  "min-nodes": clients}
    t0 = time.monotonic()
    station = ChildProcess("fine-tuning base station", station_argv(
        checkpoint, control, [rx for _, rx in slots], out / "station.json", server_lr,
        int(run_config.get("adapter-rank", 8)), float(run_config.get("adapter-alpha", 16.0)),
        int(run_config.get("seed", 0)))).start()
    links: list = []
    try:
        for i, (tx, rx) in enumerate(slots):
            settings = LinkConfig(channel=link, snr_db=float(run_config.get("snr-db", 20.0)), seed=1 + i)
            links += start_link(settings, tx, rx)
        if progress:
            print(f"finetune: {clients} clients x {rounds} rounds over {link} links, base station {control}",
                  file=sys.stderr, flush=True)
        result = run_simulation(clients, rounds, run_config, workdir=out)
    finally:
        stop_all(list(reversed(links)))
        station.stop()
    report = {"meta": {"clients": clients, "rounds": rounds, "link": link, "checkpoint": checkpoint,
                       "config": {k: v for k, v in run_config.items() if "endpoint" not in k},
                       "wall_s": round(time.monotonic() - t0, 1)},
              "parameters": parameter_counts(run_config),
              "federation": result.report,
              "station": json.loads((out / "station.json").read_text()) if (out / "station.json").is_file() else None}
    (out / "finetune.json").write_text(json.dumps(report, indent=1, default=str))
    return report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--checkpoint", default="", help="the phase-I model (default: the shipped models/default)")
    p.add_argument("--backbone", choices=("default", "minilm"),
                   help="the shipped model of this backbone (models/NAME) instead of --checkpoint")
    p.add_argument("--link", choices=CHANNELS, default="software", help="what carries each client's frames")
    p.add_argument("--snr-db", type=float, default=20.0)
    p.add_argument("--tasks", default="vqa,caption_image", help="comma-separated text tasks (each client's "
                                                                 "main task is one of them in turn)")
    p.add_argument("--domain", default="new_questions",
                   help="the built-in world's domain to adapt to (mtsc_sdr/data/domains.py; new_questions: "
                        "question types phase I never asks)")
    p.add_argument("--examples-per-client", type=int, default=512)
    p.add_argument("--modality", action="store_true",
                   help="also train and share the modality encoders (default: adapters and JSC encoder)")
    p.add_argument("--local-steps", type=int, default=50, help="split steps per client and round")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4, help="the clients' learning rate")
    p.add_argument("--server-lr", type=float, default=SERVER_LR, help="the base station's learning rate")
    p.add_argument("--eval-items", type=int, default=64, help="validation items per task after each round")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/finetune", help="report directory")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from mtsc_sdr.model.checkpoint import shipped_model_dir

    checkpoint = str(shipped_model_dir(args.backbone)) if args.backbone else args.checkpoint
    config = {"checkpoint": checkpoint, "snr-db": args.snr_db, "tasks": args.tasks, "domain": args.domain,
              "examples-per-client": args.examples_per_client, "modality": args.modality,
              "local-steps": args.local_steps, "batch-size": args.batch_size, "lr": args.lr,
              "eval-items": args.eval_items, "seed": args.seed}
    report = finetune(args.clients, args.rounds, config, Path(args.out), args.link, args.server_lr)
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        print(f"finetune: wrote {Path(args.out) / 'finetune.json'} ({report['meta']['wall_s']} s)")
    return 0
