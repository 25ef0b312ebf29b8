"""``mtsc-sdr compress``: make, measure and choose compressed client artifacts.

* ``export``: an artifact of a checkpoint's client (:mod:`.artifact`): ``--quantization``,
  ``--prune``, ``--distill`` with ``--recovery-steps``; ``--format onnx`` (graphs for ONNX
  Runtime) or ``tensorrt`` (the same graphs, then engines built here: needs an NVIDIA GPU);
  ``--measure`` fills its manifest at once.
* ``compose BASE --task TASK=DIR``: a client whose graphs for some tasks come from another
  artifact (per-task compression).
* ``measure DIR``: accuracy (validation split), encode latency and peak memory into the manifest.
* ``plan``: the planner (:mod:`.planner`) over the measured artifacts under ``--candidates``
  (default ``results/compress/<model>``) for a device profile and budgets; ``--json`` prints the
  plan as JSON, ``--out`` writes it for ``apply``.
* ``apply PLAN``: make the planned artifact (for each client of a multi-client plan) and measure
  it; prints where it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mtsc_sdr.options import add_checkpoint, add_json, add_threads

from .artifact import QUANTIZATIONS, Technique

#: Where ``export`` puts artifacts and ``plan`` looks for candidates (per source model name).
DEFAULT_ROOT = Path("results/compress")


def _checkpoint(args) -> str:
    from mtsc_sdr.model.checkpoint import shipped_model_dir

    return str(args.checkpoint or shipped_model_dir())


def _layers(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--distill: comma-separated layer indices, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    e = sub.add_parser("export", help="make a compressed client artifact (ONNX graphs or TensorRT engines)")
    add_checkpoint(e)
    e.add_argument("--format", choices=("onnx", "tensorrt", "torch"), default="onnx",
                   help="onnx: graphs for ONNX Runtime; tensorrt: the graphs plus engines built on this GPU; "
                        "torch: the client's own modules (fp32 / int8-torch)")
    e.add_argument("--quantization", choices=QUANTIZATIONS, default="fp32")
    e.add_argument("--prune", type=float, metavar="RATIO", help="remove this fraction of heads and FFN channels")
    e.add_argument("--distill", type=_layers, metavar="LAYERS", help="distil a student keeping these LAM encoder layers, e.g. 0")
    e.add_argument("--recovery-steps", type=int, default=300, help="fine-tune steps after pruning / distillation")
    e.add_argument("--client-from", metavar="DIR", help="reuse the pruned / distilled client of this artifact "
                   "(same --prune / --distill, another quantization) instead of pruning or distilling again")
    e.add_argument("--budget", type=int, action="append", help="symbol budget to export graphs for (repeatable)")
    e.add_argument("--out", help="artifact directory (default results/compress/<model>/<name>-<format>)")
    e.add_argument("--measure", action="store_true", help="measure accuracy, latency and memory now")
    e.add_argument("--items", type=int, default=200, help="validation items per task for --measure's accuracy")
    e.add_argument("--seed", type=int, default=0)
    add_threads(e, 1)
    c = sub.add_parser("compose", help="a client whose graphs for some tasks come from another artifact")
    c.add_argument("base", help="artifact directory giving every other task's graphs")
    c.add_argument("--task", action="append", required=True, metavar="TASK=DIR",
                   help="this task's graphs from that artifact (repeatable)")
    c.add_argument("--out", required=True, help="the composed artifact's directory")
    add_checkpoint(c)
    c.add_argument("--measure", action="store_true", help="measure accuracy, latency and memory now")
    c.add_argument("--items", type=int, default=200, help="validation items per task for --measure's accuracy")
    add_threads(c, 1)
    m = sub.add_parser("measure", help="measure an artifact into its manifest")
    m.add_argument("artifact", help="artifact directory")
    add_checkpoint(m)
    m.add_argument("--device", default="x86-cpu", help="device profile name the figures are recorded under")
    m.add_argument("--items", type=int, default=200, help="validation items per task for accuracy")
    add_threads(m, 1)
    pl = sub.add_parser("plan", help="choose a compressed client for a device by exact optimization")
    pl.add_argument("--profile", required=True, help="device profile (name, unique prefix or YAML path)")
    pl.add_argument("--latency-ms", type=float, help="encode latency budget (ms)")
    pl.add_argument("--percentile", choices=("p50", "p90"), default="p90")
    pl.add_argument("--memory-mb", type=float, help="peak memory budget (MiB)")
    pl.add_argument("--max-loss", action="append", default=[], metavar="TASK=V",
                    help="largest accuracy loss against the uncompressed client, task units (repeatable)")
    pl.add_argument("--min-accuracy", action="append", default=[], metavar="TASK=V", help="accuracy floor (repeatable)")
    pl.add_argument("--power-mode", help="power mode id or name (default the highest)")
    pl.add_argument("--candidates", action="append", metavar="DIR",
                    help="artifact directories or folders of them (default results/compress/<model>)")
    add_checkpoint(pl)
    pl.add_argument("--out", help="write the plan (JSON) here for `compress apply`")
    add_json(pl)
    a = sub.add_parser("apply", help="make and measure the artifact a plan chose")
    a.add_argument("plan", help="plan JSON written by `compress plan --out`")
    a.add_argument("--out", help="artifact directory (default results/compress/<model>/applied-<name>)")
    a.add_argument("--device", default="x86-cpu", help="device profile name this machine's figures are recorded under")
    a.add_argument("--items", type=int, default=200, help="validation items per task for accuracy")
    add_checkpoint(a)
    add_threads(a, 1)


def _pairs(items: list[str], option: str) -> dict[str, float]:
    out = {}
    for item in items:
        task, _, value = item.partition("=")
        try:
            out[task] = float(value)
        except ValueError:
            raise SystemExit(f"mtsc-sdr compress plan: {option} {item!r}: expected TASK=NUMBER") from None
    return out


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(getattr(args, "threads", 1) or 1)
    try:
        return {"export": _export, "compose": _compose, "measure": _measure, "plan": _plan,
                "apply": _apply}[args.action](args)
    except ValueError as exc:
        print(f"mtsc-sdr compress {args.action}: {exc}", file=sys.stderr)
        return 2


def _default_out(checkpoint: str, name: str) -> Path:
    return DEFAULT_ROOT / Path(checkpoint).name / name


def _export(args) -> int:
    from .artifact import build
    from .measure import measure

    checkpoint = _checkpoint(args)
    tech = Technique(args.quantization, args.prune, args.distill,
                     args.recovery_steps if (args.prune or args.distill) else 0)
    runtime = {"onnx": "onnxruntime", "tensorrt": "tensorrt", "torch": "torch"}[args.format]
    if runtime == "tensorrt":
        from .tensorrt import gpu_available

        ok, why = gpu_available()
        if not ok:
            raise ValueError(f"--format tensorrt builds engines on the GPU that runs them, and here {why}; "
                             "export --format onnx and build the engine on the device")
    out = Path(args.out) if args.out else _default_out(checkpoint, f"{tech.name()}-{args.format}")
    art = build(checkpoint, out, tech, runtime, budgets=args.budget, seed=args.seed, client_from=args.client_from)
    if runtime == "tensorrt":
        from .tensorrt import ensure_engine

        for rel in art.manifest["files"]:
            if rel.endswith(".onnx"):
                print(f"compress: engine {ensure_engine(art.directory / rel)}")
    if args.measure:
        measure(checkpoint, out, n_items=args.items, threads=args.threads)
    print(f"compress: artifact {out} ({art.name}, {art.runtime}, {art.manifest['weight_bytes']} weight bytes)")
    return 0


def _compose(args) -> int:
    from .artifact import compose
    from .measure import measure

    parts = {}
    for item in args.task:
        task, _, directory = item.partition("=")
        if not directory:
            raise ValueError(f"--task {item!r}: expected TASK=DIR")
        parts[task] = directory
    art = compose(args.base, parts, args.out)
    if args.measure:
        measure(_checkpoint(args), args.out, n_items=args.items, threads=args.threads)
    print(f"compress: artifact {art.directory} ({art.name}, {art.runtime}, {art.manifest['weight_bytes']} weight bytes)")
    return 0


def _measure(args) -> int:
    from .measure import measure

    measure(_checkpoint(args), args.artifact, device=args.device, n_items=args.items, threads=args.threads)
    return 0


def _plan(args) -> int:
    from .artifact import load_candidates
    from .planner import Constraints, format_plan, plan

    checkpoint = _checkpoint(args)
    roots = args.candidates or [str(DEFAULT_ROOT / Path(checkpoint).name)]
    cands = load_candidates(roots)
    cons = Constraints(latency_ms=args.latency_ms, percentile=args.percentile, memory_mb=args.memory_mb,
                       max_loss=_pairs(args.max_loss, "--max-loss"), min_accuracy=_pairs(args.min_accuracy, "--min-accuracy"))
    power = args.power_mode
    if power is not None and power.isdigit():
        power = int(power)
    result = plan(args.profile, cands, cons, power_mode=power)
    record = {"checkpoint": checkpoint, "plan": json.loads(result.to_json()),
              "candidates": {c["name"]: c for c in cands}}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(result.to_json() if args.json else format_plan(result))
    return 0 if result.feasible else 1


def _apply(args) -> int:
    from .artifact import build
    from .measure import measure

    record = json.loads(Path(args.plan).read_text())
    plans = record["plan"].get("clients") or [record["plan"]]
    checkpoint = args.checkpoint or record["checkpoint"]
    status = 0
    for p in plans:
        name = p.get("chosen")
        if not name:
            print(f"compress apply: nothing to make for {p.get('device')}: {p.get('reason')}", file=sys.stderr)
            status = 1
            continue
        cand = record["candidates"][name]
        tech = Technique.from_dict(cand["technique"])
        out = Path(args.out) if args.out and len(plans) == 1 else _default_out(checkpoint, f"applied-{name}")
        build(checkpoint, out, tech, cand["runtime"])
        measure(checkpoint, out, device=args.device, n_items=args.items, threads=args.threads)
        print(f"compress: {p.get('device')}: artifact {out} ({name})")
    return status
