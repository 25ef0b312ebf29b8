"""``mtsc-sdr bench``: latency per stage, throughput, memory and weight bytes of the client half,
and of the whole pipeline over the software channel.

Two parts, for each ``--precision``:

1. **In process** (``channel: "none"``): for ``--items`` items per task, after ``--warmup`` items
   per task that are not timed, the client stages one item at a time -- modality encoders, LAM
   encoder, JSC encoder, framing (PHY transmitter) and the task decoders (on semantics from the
   server half run in the same process over the torch channel at ``--snr-db``). ``encode`` is the
   sum of the first three.
2. **Pipeline** (``channel: "software"``, skip with ``--no-pipeline``): ``mtsc-sdr run`` over the
   software channel at ``--snr-db`` with one item in flight (every stage, base-station ones
   included, as the latency of one item), then ``--window`` items in flight on VQA (``items_per_s``).

Report (``--json`` prints it; always written to ``--out``): ``{"meta", "rows"}``. ``meta`` has the
configuration, versions, machine, ``torch_threads`` and, on a Jetson, ``tegrastats``. Rows
(DESIGN.md schema) carry ``precision`` and ``stage``:

* ``latency_ms_p50`` / ``_p90`` / ``_p99`` per (task, stage); task ``all`` pools the tasks;
* ``items_per_s`` (pipeline, VQA, pipelined);
* ``weight_bytes`` of the client half; ``peak_rss_mb`` per ``process`` (``bench`` is this one,
  which has held both precisions; the run's client and base station are separate processes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from mtsc_sdr import tasks as task_table
from mtsc_sdr.memory import TegraStats
from mtsc_sdr.data import collate, examples
from mtsc_sdr.model import load
from mtsc_sdr.model.checkpoint import shipped_model_dir
from mtsc_sdr.options import add_checkpoint, add_json, add_threads
from mtsc_sdr.phy.tx import Transmitter
from mtsc_sdr.report import peak_rss_mb, percentiles, row, run_meta
from mtsc_sdr.runtime.client import decode_item, encode_item
from mtsc_sdr.runtime.run import ClientSpec, RunConfig, execute

# torch and the quantized client (which imports torch) are imported inside the functions that
# time them: `mtsc-sdr bench --help` must not pay for torch.

CLIENT_STAGES = ("modality_encoders", "lam_encoder", "jsc_encoder", "encode", "framing", "task_decoders")


def time_client(checkpoint: str, precision: str, tasks, items: int, warmup: int, snr_db: float,
                split: str = "val") -> tuple[list[dict], int]:
    """In-process stage times of the client half: (rows, weight bytes). See the module docstring."""
    import torch

    from mtsc_sdr.compress.artifact import load_client

    loaded = load_client(checkpoint, precision=precision)
    full = load(checkpoint).eval()                       # its server half makes realistic semantics
    tx = Transmitter()
    gen = torch.Generator().manual_seed(0)
    times: dict[tuple[str, str], list[float]] = {}
    for task in tasks:
        for k, ex in enumerate(examples(split, [task], n_per_task=warmup + items, seed=1)):
            _, _, lat = encode_item(loaded.encoder, tx, ex, snr_db, None, 1, k, 0)
            with torch.no_grad():
                sem = full(collate([ex]), task, snr_db, fading=None, generator=gen).downlink.semantics[0].numpy()
            _, lat["task_decoders"] = decode_item(loaded.model, ex, sem)
            lat["encode"] = lat["modality_encoders"] + lat["lam_encoder"] + lat["jsc_encoder"]
            if k >= warmup:
                for stage in CLIENT_STAGES:
                    times.setdefault((task, stage), []).append(1e3 * lat[stage])
    rows = []
    for task in (*tasks, "all"):
        for stage in CLIENT_STAGES:
            vals = sum((v for (t, s), v in times.items() if s == stage and task in (t, "all")), [])
            for name, value in percentiles(vals).items():
                rows.append(row("mtsc", task, "none", None, f"latency_ms_{name}", value, unit="ms", stage=stage,
                                precision=precision, n=len(vals)))
    rows.append(row("mtsc", "all", "none", None, "weight_bytes", loaded.weight_bytes, unit="bytes",
                    precision=precision))
    return rows, loaded.weight_bytes


def time_pipeline(checkpoint: str, precision: str, tasks, items: int, window: int, snr_db: float,
                  out: Path, threads: int = 1, runtime: str = "torch", artifact: str | None = None) -> list[dict]:
    """Rows of two ``mtsc-sdr run`` passes over the software channel (see the module docstring);
    the client runs ``precision`` in torch, or ``artifact`` (a compressed client) in ``runtime``."""
    client = {"precision": precision, "runtime": runtime, "artifact": artifact}
    label = ClientSpec(**client).label()
    rows = []
    one = execute(RunConfig(name=f"bench-{label}-latency", checkpoint=checkpoint, snr_db=[snr_db], threads=threads,
                            out=str(out / f"{label}_latency"),
                            clients=[ClientSpec(tasks=list(tasks), n_per_task=items, window=1, **client)]))
    rows += [dict(r, precision=label) for r in one["rows"]
             if r["metric"].startswith("latency_ms") or r["metric"] == "peak_rss_mb"]
    many = execute(RunConfig(name=f"bench-{label}-throughput", checkpoint=checkpoint, snr_db=[snr_db],
                             threads=threads,
                             out=str(out / f"{label}_throughput"),
                             clients=[ClientSpec(tasks=["vqa"], n_per_task=max(items, 4 * window), window=window,
                                                 **client)]))
    rows += [dict(r, precision=label, window=window) for r in many["rows"] if r["metric"] == "items_per_s"]
    return rows


def bench(checkpoint: str, precisions=("int8", "fp32"), tasks=None, items: int = 20, warmup: int = 5,
          snr_db: float = 10.0, window: int = 8, pipeline: bool = True, threads: int = 1,
          out: Path = Path("results/bench")) -> dict[str, Any]:
    """The bench report (see the module docstring); ``tasks`` None: every registered task."""
    import torch

    tasks = task_table.names() if tasks is None else tuple(tasks)
    torch.set_num_threads(threads)
    rows: list[dict] = []
    tegra = TegraStats() if TegraStats.available() else None
    t0 = time.monotonic()
    if tegra is not None:
        tegra.__enter__()
    try:
        for precision in precisions:
            rows += time_client(checkpoint, precision, tasks, items, warmup, snr_db)[0]
            if pipeline:
                rows += time_pipeline(checkpoint, precision, tasks, items, window, snr_db, out / "runs", threads)
    finally:
        if tegra is not None:
            tegra.__exit__(None, None, None)
    rows.append(row("mtsc", "all", "none", None, "peak_rss_mb", peak_rss_mb(), unit="MiB", process="bench"))
    config = {"checkpoint": checkpoint, "precisions": list(precisions), "tasks": list(tasks), "items": items,
              "warmup": warmup, "snr_db": snr_db, "window": window, "pipeline": pipeline}
    meta = run_meta(config, {"items": 1})
    meta["torch_threads"] = torch.get_num_threads()
    meta["wall_s"] = round(time.monotonic() - t0, 1)
    meta["tegrastats"] = None if tegra is None else {"peak_used_mb": tegra.peak_used_mb, "total_mb": tegra.total_mb,
                                                     "samples": tegra.samples}
    return {"meta": meta, "rows": rows}


def format_table(report: dict) -> str:
    """p50 / p90 / p99 per stage, in process and through the pipeline, per precision."""
    rows = report["rows"]
    lines = []
    for precision in report["meta"]["config"]["precisions"]:
        p = [r for r in rows if r.get("precision") == precision]
        wb = next((r["value"] for r in p if r["metric"] == "weight_bytes"), None)
        lines.append(f"{precision}: client weights {wb / 1e6:.2f} MB" if wb else precision)
        lat = {(r["channel"], r["stage"], r["metric"]): r["value"] for r in p
               if r["task"] == "all" and r["metric"].startswith("latency_ms_")}
        for channel, stage, metric in lat:
            if metric != "latency_ms_p50" or lat[(channel, stage, metric)] is None:
                continue
            p50, p90, p99 = (lat.get((channel, stage, f"latency_ms_{q}")) or 0.0 for q in ("p50", "p90", "p99"))
            where = "in process" if channel == "none" else "pipeline"
            lines.append(f"  {where:<10} {stage:<18} p50 {p50:8.2f}  p90 {p90:8.2f}  p99 {p99:8.2f} ms")
        for r in p:
            if r["metric"] == "items_per_s":
                lines.append(f"  pipeline   VQA items/s with {r.get('window')} in flight: {r['value']:.1f}")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint(p)
    p.add_argument("--precision", nargs="+", choices=("int8", "fp32"), default=["int8", "fp32"])
    p.add_argument("--tasks", nargs="+", choices=task_table.names(), default=list(task_table.names()))
    p.add_argument("--items", type=int, default=20, help="timed items per task")
    p.add_argument("--warmup", type=int, default=5, help="untimed items per task first")
    p.add_argument("--snr-db", type=float, default=10.0)
    p.add_argument("--window", type=int, default=8, help="items in flight for the throughput pass")
    p.add_argument("--no-pipeline", action="store_true", help="only the in-process client stages")
    add_threads(p, help="torch threads (this process and the run's)")
    p.add_argument("--out", default="results/bench", help="directory for bench.json and the runs")
    add_json(p)


def run(args: argparse.Namespace) -> int:
    checkpoint = args.checkpoint or str(shipped_model_dir())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = bench(checkpoint, tuple(args.precision), tuple(args.tasks), args.items, args.warmup, args.snr_db,
                   args.window, not args.no_pipeline, args.threads, out)
    (out / "bench.json").write_text(json.dumps(report, indent=1))
    if args.json:
        print(json.dumps(report))
    else:
        print(format_table(report))
        print(f"wrote {out / 'bench.json'}", file=sys.stderr)
    return 0
