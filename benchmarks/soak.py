#!/usr/bin/env python3
"""Soak (issue 18): base station, software channels and clients as separate processes for a long
run, watched from the outside.

The processes are ``mtsc-sdr run``'s own (:func:`mtsc_sdr.runtime.run.execute` with a
:class:`~mtsc_sdr.runtime.run.RunConfig`: one base station, one software channel and one client
process per client, the shipped ``models/default`` at ``--snr-db`` with its int8 client), so the
soak exercises exactly what a run starts. Each client sends ``--items / --clients`` items of every
task (validation split; ``reconstruct`` has at most 539 patches there, so a client's count is what
:func:`mtsc_sdr.data.world.available` allows). The run ends when every item is done or after
``--minutes`` (then the clients are interrupted and write error records for what is unfinished).

Every ``--sample-s`` seconds :class:`mtsc_sdr.bench.procwatch.ProcessWatch` samples each process's
resident memory (RSS, MiB), open file descriptors and CPU time, and the files in the run's own
``TMPDIR`` (a fresh directory under ``--out``). Criteria, each a row with ``target`` and
``meets_target``:

* ``items_unaccounted``: items the clients were given minus items with exactly one result or error
  record (target 0; ``items_duplicated`` too);
* ``rss_growth_pct`` per process: largest RSS after the warm-up over the RSS at its end (target
  < 5 %); warm-up = ``--warmup-min`` minutes (default 5), or a quarter of the run when the run
  lasts less than twice that;
* ``fds_growth`` per process: largest descriptor count after the warm-up minus the count at its end
  (target <= :data:`FD_SLACK`, the allowance for a descriptor open at the moment of a sample);
* ``temp_files_left``: files left in the run's ``TMPDIR`` after it (target 0).

Also ``items_per_s`` and the total latency p50 / p99 of the run. Written to ``--out`` (default
``results/bench/soak``): ``report.json`` (``meta``, ``rows``, ``processes``), ``samples.jsonl``,
``soak.png`` (RSS, descriptors and temp files against time), ``run/`` (the run's own report and
items).

    python benchmarks/soak.py --items 20000 --clients 2            # default: 20000 items or 60 minutes
    python benchmarks/soak.py --items 200 --clients 1 --json       # a quick check

Exit status: 0 when every criterion passes, 1 when one fails, 2 for bad arguments.

Measured (see benchmarks/SOAK_LOAD.md for the command lines and every figure).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mtsc_sdr import tasks as task_table                                          # noqa: E402
from mtsc_sdr.bench.procwatch import ProcessWatch, as_dicts, by_process, growth_after, run_watched  # noqa: E402
from mtsc_sdr.data.world import available                                          # noqa: E402
from mtsc_sdr.report import row, run_meta                                          # noqa: E402
from mtsc_sdr.runtime.run import ClientSpec, RunConfig, read_items  # noqa: E402

CHANNEL = "software"
SPLIT = "val"
RSS_GROWTH_TARGET_PCT = 5.0
#: Descriptors a process may hold above its count at the end of the warm-up at a sample's moment.
FD_SLACK = 4


def items_per_client(n_per_task: int, tasks: list[str]) -> int:
    """Items a client with ``n_per_task`` gets from the validation split (patches are limited)."""
    return sum(available(SPLIT, t, n_per_task) for t in tasks)


def plan(items: int, clients: int, tasks: list[str]) -> int:
    """The smallest ``n_per_task`` with which ``clients`` clients send at least ``items`` items."""
    n = max(1, math.ceil(items / clients / len(tasks)))
    while clients * items_per_client(n, tasks) < items:
        n += 1
    return n


def run_config(args: argparse.Namespace, out: Path, n_per_task: int) -> RunConfig:
    clients = [ClientSpec(tasks=list(args.tasks), n_per_task=n_per_task, split=SPLIT, seed=k,
                          precision=args.precision, window=args.window) for k in range(args.clients)]
    return RunConfig(name="soak", channel=CHANNEL, snr_db=[args.snr_db], checkpoint=args.checkpoint,
                     clients=clients, item_timeout_s=args.item_timeout_s, retries=args.retries,
                     timeout_s=60.0 * args.minutes, out=str(out / "run"))


def warmup(duration_s: float, warmup_s: float) -> float:
    """Seconds before growth is judged: ``warmup_s`` when the run lasted at least twice that, else a
    quarter of the run (a short check still judges its last three quarters)."""
    return warmup_s if duration_s >= 2 * warmup_s else 0.25 * duration_s


def item_accounting(cfg: RunConfig, tasks: list[str]) -> dict[str, int]:
    """Items given to the clients, and how many ended with a result, an error, more than one
    record, or none."""
    given = sum(items_per_client(c.n_per_task, tasks) for c in cfg.clients)
    records = read_items(cfg.out_dir() / "work")
    keys = [(r["session"], r["item_id"]) for r in records]
    ok = sum(1 for r in records if "error" not in r)
    return {"items_given": given, "items_ok": ok, "items_error": len(records) - ok,
            "items_duplicated": len(keys) - len(set(keys)), "items_unaccounted": given - len(set(keys))}


def criteria_rows(acct: dict, growth: dict, temp_left: int, warmup_s: float) -> list[dict]:
    rows = [row("mtsc", "all", CHANNEL, None, name, acct[name], unit="items") for name in
            ("items_given", "items_ok", "items_error")]
    rows += [row("mtsc", "all", CHANNEL, None, name, acct[name], unit="items", target=0,
                 meets_target=acct[name] == 0) for name in ("items_unaccounted", "items_duplicated")]
    for name, g in growth.items():
        extra = {"process": name, "warmup_s": round(warmup_s, 1), "samples": g["samples"]}
        judged = g["samples"] >= 2
        rows.append(row("mtsc", "all", CHANNEL, None, "rss_growth_pct", g["rss_growth_pct"], unit="%",
                        target=RSS_GROWTH_TARGET_PCT, meets_target=judged and g["rss_growth_pct"] < RSS_GROWTH_TARGET_PCT,
                        rss_mb_at_warmup=g["rss_mb_at_warmup"], rss_mb_max=g["rss_mb_max"], rss_mb_end=g["rss_mb_end"],
                        **extra))
        rows.append(row("mtsc", "all", CHANNEL, None, "fds_growth", g["fds_growth"], unit="descriptors",
                        target=FD_SLACK, meets_target=judged and g["fds_growth"] <= FD_SLACK,
                        fds_at_warmup=g["fds_at_warmup"], fds_max=g["fds_max"], **extra))
    rows.append(row("mtsc", "all", CHANNEL, None, "temp_files_left", temp_left, unit="files", target=0,
                    meets_target=temp_left == 0))
    return rows


def plot(samples, path: Path, warmup_s: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    for (name, pid), series in sorted(by_process(samples).items()):
        t = [s.t_s / 60 for s in series]
        axes[0].plot(t, [s.rss_mb for s in series], label=f"{name} ({pid})")
        axes[1].plot(t, [s.fds for s in series], label=f"{name} ({pid})")
    per_t = sorted({(s.t_s, s.temp_files) for s in samples})
    axes[2].plot([t / 60 for t, _ in per_t], [n for _, n in per_t], color="k")
    for ax, label in zip(axes, ("RSS (MiB)", "open descriptors", "files in TMPDIR")):
        ax.set_ylabel(label)
        ax.axvline(warmup_s / 60, color="grey", ls="--", lw=0.8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    axes[2].set_xlabel("minutes (dashed: end of the warm-up)")
    fig.suptitle("soak: base station, software channels and clients")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def latency_figures(report: dict | None) -> list[dict]:
    """The run's items/s per client and total latency p50 / p99 rows, as the run reported them."""
    if report is None:
        return []
    keep = {"items_per_s"} | {f"latency_ms_{p}" for p in ("p50", "p99")}
    return [r for r in report.get("rows", []) if r["metric"] in keep
            and (r["metric"] == "items_per_s" or (r.get("stage") == "total" and r["task"] == "all"))]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=20000, help="items over all clients (at least)")
    p.add_argument("--minutes", type=float, default=60.0, help="stop after this long even if items remain")
    p.add_argument("--clients", type=int, default=2, help="client processes (one software channel each)")
    p.add_argument("--tasks", type=lambda s: s.split(","), default=list(task_table.names()))
    p.add_argument("--checkpoint", default=str(REPO / "models" / "default"))
    p.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    p.add_argument("--snr-db", type=float, default=20.0)
    p.add_argument("--window", type=int, default=8, help="items in flight per client")
    p.add_argument("--item-timeout-s", type=float, default=5.0)
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--sample-s", type=float, default=5.0, help="seconds between process samples")
    p.add_argument("--warmup-min", type=float, default=5.0, help="minutes before memory growth is judged")
    p.add_argument("--out", default="results/bench/soak")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.items < 1 or args.clients < 1 or args.minutes <= 0 or args.sample_s <= 0:
        p.error("--items, --clients, --minutes and --sample-s must be positive")
    bad = [t for t in args.tasks if t not in task_table.names()]
    if bad:
        p.error(f"--tasks: unknown {bad}; tasks are {list(task_table.names())}")

    out = Path(args.out)
    tmp = out / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    for old in tmp.rglob("*"):
        if old.is_file():
            old.unlink()
    os.environ["TMPDIR"] = str(tmp.resolve())              # the processes' temp files land here
    n_per_task = plan(args.items, args.clients, args.tasks)
    cfg = run_config(args, out, n_per_task)
    watch = ProcessWatch(args.sample_s, temp_dir=tmp)
    t0 = time.monotonic()
    if not args.json:
        print(f"soak: {args.clients} client(s) x {items_per_client(n_per_task, args.tasks)} items, at most "
              f"{args.minutes:g} min, sampling every {args.sample_s:g} s", file=sys.stderr, flush=True)
    report, stopped = run_watched(cfg, watch)
    duration_s = time.monotonic() - t0
    warmup_s = warmup(duration_s, 60.0 * args.warmup_min)
    samples = watch.samples
    growth = {f"{name} ({pid})": growth_after(series, warmup_s) for (name, pid), series in by_process(samples).items()}
    temp_left = watch.temp_files()
    acct = item_accounting(cfg, args.tasks)
    rows = criteria_rows(acct, growth, temp_left, warmup_s) + latency_figures(report)
    rows.append(row("mtsc", "all", CHANNEL, None, "run_s", round(duration_s, 1), unit="s"))
    rows.append(row("mtsc", "all", CHANNEL, None, "items_per_s", round((acct["items_ok"] + acct["items_error"])
                                                                        / duration_s, 3), unit="items/s",
                    process="all clients", note="records over the whole run, start-up included"))
    meta = run_meta({"soak": {k: v for k, v in vars(args).items()}, "n_per_task": n_per_task,
                     "model": args.checkpoint, "stopped": stopped, "warmup_s": round(warmup_s, 1)},
                    {f"client_{k}": k for k in range(args.clients)})
    result = {"meta": meta, "rows": rows, "processes": growth}
    (out / "report.json").write_text(json.dumps(result, indent=1))
    with open(out / "samples.jsonl", "w") as f:
        for s in as_dicts(samples):
            f.write(json.dumps(s) + "\n")
    if samples:
        plot(samples, out / "soak.png", warmup_s)
    judged = [r for r in rows if "meets_target" in r]
    passed = all(r["meets_target"] for r in judged) and (stopped is None or stopped.startswith("time limit"))
    if args.json:
        print(json.dumps(result))
    else:
        for r in rows:
            verdict = "" if "meets_target" not in r else ("PASS " if r["meets_target"] else "FAIL ")
            extra = {k: v for k, v in r.items() if k not in ("system", "task", "channel", "snr_db", "metric", "value")}
            print(f"{verdict}{r['metric']}: {r['value']} {json.dumps(extra)}")
        if stopped:
            print(f"stopped: {stopped}")
        print(f"wrote {out / 'report.json'}, samples.jsonl, soak.png")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
