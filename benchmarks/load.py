#!/usr/bin/env python3
"""Load (issue 18): 1, 4, 16 and 32 clients on one base station; throughput, latency, the knee and
what gives first.

For each client count N, ``mtsc-sdr run``'s own processes (:func:`mtsc_sdr.runtime.run.execute`):
one base station, and per client one software channel and one client process (the shipped
``models/default``, int8 client, ``--items-per-client`` VQA and caption items at ``--snr-db``,
``--window`` in flight). One process per client, as a deployment has it. A client process of
this model has an RSS of about 550 MiB, of which about 200 MiB are library pages shared with
the other processes; what each more client adds is its unique memory (USS, sampled every tenth
tick), measured at the first count with its channel's: before each larger N the script checks
that the memory available holds N of those plus :data:`MEMORY_MARGIN_MB` and skips the count (a
row says so) when it does not.

Figures per N (rows carry ``clients``):

* ``items_per_s``: items answered per second by all clients together while all of them were
  sending: from the moment the last client had its first answer to the moment the first client
  had its last (each client's answered items are counted every ``--tick-s`` seconds from its
  records); when those overlap too little (< 3 ticks) the whole span of answers is used and the
  row says ``window: "all"``;
* ``latency_ms_p50`` / ``_p99``: total item latency (encode to decoded answer), every client's
  items but its first and resent ones (:func:`mtsc_sdr.runtime.run.latency_rows`);
* ``client_items_per_s_min_over_mean``: the slowest client's own rate over the mean of all
  (target >= :data:`FAIR_SHARE`; no client starved) and ``items_error`` (target 0);
* ``cpu_cores`` per process kind (``bs``, ``channel``, ``client``; summed over the kind's processes)
  and for all of them, and ``cpu_cores_machine`` (the whole machine, other work included) during
  the same window; ``peak_rss_mb`` per kind (largest process);
* the base station's ``samples_dropped`` / ``chunks_dropped`` (its IQ queues, bounded),
  ``rx_queue_peak_samples`` against the bound (target <= bound: no unbounded queue),
  ``downlink_failed`` (answers not sent), and the clients' ``resent`` items.

The knee is the smallest N after which items/s grows by less than :data:`KNEE_GAIN` (10 %) while
the p50 latency grows; what gives first is read from the knee's figures: the base station's CPU
(its one serving thread near one core), the machine's CPU (every core busy, clients included),
its queues (samples dropped) or its answers (downlink failed).

    python benchmarks/load.py                                 # 1, 4, 16, 32 clients
    python benchmarks/load.py --clients 1 2 --items-per-client 20 --json

Written to ``--out`` (default ``results/bench/load``): ``report.json``, ``load.png`` (items/s and
latency against N), ``n<N>/`` (each run's own report and items). Exit status: 0 when every
criterion passes, 1 when one fails.

Measured: see benchmarks/SOAK_LOAD.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psutil                                                              # noqa: E402

from mtsc_sdr.bench.procwatch import ProcessWatch, by_process, run_watched  # noqa: E402
from mtsc_sdr.link.drain import DEFAULT_MAX_QUEUED_SAMPLES                 # noqa: E402
from mtsc_sdr.report import row, run_meta                                  # noqa: E402
from mtsc_sdr.runtime.run import ClientSpec, RunConfig, read_items         # noqa: E402

CHANNEL = "software"
#: The slowest client's items/s over the mean, at least (no client starved).
FAIR_SHARE = 0.5
#: Items/s growth below which the knee is reached.
KNEE_GAIN = 0.10
#: Memory kept free beyond N clients' worth before a count is started (MiB).
MEMORY_MARGIN_MB = 2048
TASKS = ["vqa", "caption_image", "caption_audio", "caption_video"]


def run_config(args: argparse.Namespace, n: int, out: Path) -> RunConfig:
    per_task = max(1, -(-args.items_per_client // len(TASKS)))
    clients = [ClientSpec(tasks=TASKS, n_per_task=per_task, split="val", seed=k, precision="int8",
                          window=args.window) for k in range(n)]
    return RunConfig(name=f"load-{n}", channel=CHANNEL, snr_db=[args.snr_db], checkpoint=args.checkpoint,
                     clients=clients, item_timeout_s=args.item_timeout_s, retries=args.retries,
                     timeout_s=args.timeout_s, out=str(out / f"n{n}"))


class AnswerCounter:
    """Counts each client's answered items (records without ``error``) from its JSON lines, once
    per tick: ``series[file] = [(t_s, answered), ...]``."""

    def __init__(self, work: Path):
        self.work = work
        self.t0 = time.monotonic()
        self.series: dict[str, list[tuple[float, int]]] = {}

    def __call__(self) -> None:
        t = time.monotonic() - self.t0
        for f in self.work.glob("items_*.jsonl"):
            try:
                lines = f.read_text().splitlines()
            except OSError:
                continue
            ok = sum(1 for x in lines if x.strip() and '"error"' not in x)
            self.series.setdefault(f.name, []).append((t, ok))

    def window(self, n_clients: int, tick_s: float) -> tuple[float, float, int, str]:
        """(start s, end s, answers in between, "steady" | "all"): the span in which every client
        was answered (last first answer -> first last answer), else the whole span of answers."""
        firsts, lasts, finals = [], [], []
        for s in self.series.values():
            answered = [(t, k) for t, k in s if k > 0]
            if not answered:
                continue
            final = answered[-1][1]
            firsts.append(answered[0][0])
            lasts.append(next(t for t, k in answered if k == final))
            finals.append(final)
        if not firsts:
            return 0.0, 0.0, 0, "none"
        start, end, label = max(firsts), min(lasts), "steady"
        if len(firsts) < n_clients or end - start < 3 * tick_s:
            start, end, label = min(firsts), max(lasts), "all"
        total = sum(self._at(s, end) - self._at(s, start) for s in self.series.values())
        return start, end, total, label

    @staticmethod
    def _at(series: list[tuple[float, int]], t: float) -> int:
        """Answers counted at the last tick at or before ``t``."""
        k = 0
        for ts, n in series:
            if ts > t:
                break
            k = n
        return k


def cpu_cores(samples, start: float, end: float) -> dict[str, float]:
    """CPU cores used per process kind (bs, channel, client) between ``start`` and ``end`` (s):
    the CPU seconds each process spent between its samples nearest those times, over the span."""
    kinds: dict[str, float] = {}
    for (name, _), series in by_process(samples).items():
        inside = [s for s in series if start <= s.t_s <= end]
        if len(inside) < 2:
            continue
        kind = name.split()[0]
        kinds[kind] = kinds.get(kind, 0.0) + (inside[-1].cpu_s - inside[0].cpu_s) / (inside[-1].t_s - inside[0].t_s)
    return {k: round(v, 3) for k, v in kinds.items()}


def peak_memory(samples, field: str = "rss_mb") -> dict[str, float]:
    """The largest RSS (or USS, ``field="uss_mb"``) in MiB of any one process of each kind."""
    out: dict[str, float] = {}
    for s in samples:
        value = getattr(s, field)
        if value is not None:
            kind = s.name.split()[0]
            out[kind] = max(out.get(kind, 0.0), value)
    return out


def measure(args: argparse.Namespace, n: int, out: Path) -> dict:
    """One client count: run, watch, and the figures of the module docstring (a dict)."""
    cfg = run_config(args, n, out)
    work = cfg.out_dir() / "work"
    counter = AnswerCounter(work)
    watch = ProcessWatch(args.tick_s, uss_every=10)
    t0 = time.monotonic()
    report, stopped = run_watched(cfg, watch, tick=counter, tick_s=args.tick_s)
    counter()
    wall_s = time.monotonic() - t0
    records = read_items(work)
    lat = {r["metric"]: r["value"] for r in (report or {}).get("rows", [])
           if r["metric"] in ("latency_ms_p50", "latency_ms_p99") and r.get("stage") == "total" and r["task"] == "all"}
    procs = (report or {}).get("processes", {})
    bs = procs.get("base station", {}) if isinstance(procs.get("base station"), dict) else {}
    clients = [s for k, v in procs.items() if k.startswith("client") for s in v]
    rates = [s.get("items_ok", 0) / s["run_s"] for s in clients if s.get("run_s")]
    queues = bs.get("rx_queues", [])
    start, end, answered, label = counter.window(n, args.tick_s)
    if label == "none" or end - start < 2 * args.tick_s:     # all answered within a tick or two
        start, end, label = 0.0, wall_s, "clients' own run_s"
        items_per_s = round(sum(rates), 3) if rates else None
    else:
        items_per_s = round(answered / (end - start), 3)
    # the watch and the counter start within a moment of each other: one clock, to a tick
    cpu = cpu_cores(watch.samples, start, end)
    return {
        "clients": n, "stopped": stopped, "wall_s": round(wall_s, 1),
        "items_given": n * 4 * max(1, -(-args.items_per_client // len(TASKS))), "records": len(records),
        "items_error": sum(1 for r in records if "error" in r),
        "items_per_s": items_per_s, "window": label,
        "window_s": round(end - start, 1),
        "latency_ms_p50": lat.get("latency_ms_p50"), "latency_ms_p99": lat.get("latency_ms_p99"),
        "client_rate_min_over_mean": round(min(rates) / (sum(rates) / len(rates)), 3) if rates else None,
        "cpu_cores": cpu, "cpu_cores_ours": round(sum(cpu.values()), 3), "cores": os.cpu_count(),
        "cpu_cores_machine": watch.system_cores(start, end),
        "peak_rss_mb": peak_memory(watch.samples), "peak_uss_mb": peak_memory(watch.samples, "uss_mb"),
        "samples_dropped": bs.get("bs", {}).get("samples_dropped"), "chunks_dropped": bs.get("bs", {}).get("chunks_dropped"),
        "rx_queue_peak_samples": max((q["queued_samples_peak"] for q in queues), default=None),
        "downlink_failed": bs.get("bs", {}).get("downlink_failed", 0),
        "resent": sum(s.get("resent", 0) for s in clients),
    }


def knee(results: list[dict]) -> dict | None:
    """The first measured count after which items/s grows by less than KNEE_GAIN while p50 grows."""
    done = [r for r in results if r.get("items_per_s")]
    for a, b in zip(done, done[1:]):
        if b["items_per_s"] < (1 + KNEE_GAIN) * a["items_per_s"] and (b["latency_ms_p50"] or 0) > (a["latency_ms_p50"] or 0):
            return a
    return None


def gives_first(r: dict) -> str:
    """What limits a count's figures, most specific first."""
    bs_cpu = r["cpu_cores"].get("bs", 0.0)
    if r.get("samples_dropped"):
        return f"the base station's IQ queues: {r['samples_dropped']} samples dropped"
    if r.get("downlink_failed"):
        return f"answers to clients not taking them: {r['downlink_failed']} not sent"
    if bs_cpu >= 0.85:
        return f"the base station's CPU: its serving thread uses {bs_cpu:.2f} of one core"
    machine = r["cpu_cores_machine"] if r.get("cpu_cores_machine") is not None else r["cpu_cores_ours"]
    ours = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["cpu_cores"].items(), key=lambda kv: -kv[1]))
    if machine >= 0.85 * r["cores"]:
        return (f"the machine's CPU: {machine:.2f} of {r['cores']} cores busy; this run's processes "
                f"{r['cpu_cores_ours']:.2f} ({ours}), other processes {max(0.0, machine - r['cpu_cores_ours']):.2f}")
    return f"nothing saturated ({machine:.2f} of {r['cores']} cores busy; this run's processes: {ours})"


def rows_of(r: dict, bound: int) -> list[dict]:
    base = {"clients": r["clients"]}
    rows = [row("mtsc", "all", CHANNEL, None, "items_per_s", r["items_per_s"], unit="items/s", window=r["window"],
                window_s=r["window_s"], **base)]
    for p in ("p50", "p99"):
        rows.append(row("mtsc", "all", CHANNEL, None, f"latency_ms_{p}", r[f"latency_ms_{p}"], unit="ms", stage="total",
                        **base))
    rows.append(row("mtsc", "all", CHANNEL, None, "client_items_per_s_min_over_mean", r["client_rate_min_over_mean"],
                    target=FAIR_SHARE, meets_target=(r["client_rate_min_over_mean"] or 0) >= FAIR_SHARE, **base))
    rows.append(row("mtsc", "all", CHANNEL, None, "items_error", r["items_error"], unit="items", target=0,
                    meets_target=r["items_error"] == 0 and r["records"] == r["items_given"], records=r["records"],
                    items_given=r["items_given"], **base))
    rows.append(row("mtsc", "all", CHANNEL, None, "rx_queue_peak_samples", r["rx_queue_peak_samples"], unit="samples",
                    target=bound, meets_target=r["rx_queue_peak_samples"] is not None
                    and r["rx_queue_peak_samples"] <= bound, **base))
    for kind, v in r["cpu_cores"].items():
        rows.append(row("mtsc", "all", CHANNEL, None, "cpu_cores", v, unit="cores", process=kind, **base))
    rows.append(row("mtsc", "all", CHANNEL, None, "cpu_cores", r["cpu_cores_ours"], unit="cores",
                    process="all of this run's", **base))
    rows.append(row("mtsc", "all", CHANNEL, None, "cpu_cores_machine", r["cpu_cores_machine"], unit="cores",
                    cores=r["cores"], note="every process on the machine, other work included", **base))
    for kind, v in r["peak_rss_mb"].items():
        rows.append(row("mtsc", "all", CHANNEL, None, "peak_rss_mb", v, unit="MiB", process=kind, **base))
    for kind, v in r["peak_uss_mb"].items():
        rows.append(row("mtsc", "all", CHANNEL, None, "peak_uss_mb", v, unit="MiB", process=kind, **base))
    for name in ("samples_dropped", "chunks_dropped", "downlink_failed", "resent"):
        rows.append(row("mtsc", "all", CHANNEL, None, name, r[name], **base))
    return rows


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in results if r.get("items_per_s")]
    if not done:
        return
    n = [r["clients"] for r in done]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(n, [r["items_per_s"] for r in done], "o-", color="C0")
    ax.set_xscale("log", base=2)
    ax.set_xticks(n, [str(x) for x in n])
    ax.set_xlabel("clients")
    ax.set_ylabel("items/s (all clients)", color="C0")
    ax2 = ax.twinx()
    for p, style in (("p50", "s--"), ("p99", "^:")):
        ax2.plot(n, [r[f"latency_ms_{p}"] for r in done], style, color="C3", label=f"latency {p}")
    ax2.set_ylabel("item latency (ms)", color="C3")
    ax2.legend(loc="upper left", fontsize=8)
    fig.suptitle("load: clients on one base station (software channels)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 32])
    p.add_argument("--items-per-client", type=int, default=200)
    p.add_argument("--window", type=int, default=4, help="items in flight per client")
    p.add_argument("--checkpoint", default=str(REPO / "models" / "default"))
    p.add_argument("--snr-db", type=float, default=20.0)
    p.add_argument("--item-timeout-s", type=float, default=5.0)
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--timeout-s", type=float, default=1800.0, help="per client count")
    p.add_argument("--tick-s", type=float, default=1.0, help="seconds between samples of processes and answers")
    p.add_argument("--out", default="results/bench/load")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if min(args.clients) < 1 or args.items_per_client < 1:
        p.error("--clients and --items-per-client must be >= 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, skipped, client_mb = [], [], None
    for n in sorted(set(args.clients)):
        # what n more client + channel processes add: their unique memory (libraries' pages are shared)
        need = None if client_mb is None else n * client_mb + MEMORY_MARGIN_MB
        free = psutil.virtual_memory().available / 2**20
        if need is not None and need > free:
            skipped.append({"clients": n, "reason": f"{n} clients need about {need:.0f} MiB, {free:.0f} MiB available"})
            continue
        if not args.json:
            print(f"load: {n} client(s) x {args.items_per_client} items ...", file=sys.stderr, flush=True)
        r = measure(args, n, out)
        if client_mb is None and "client" in r["peak_uss_mb"]:
            client_mb = r["peak_uss_mb"]["client"] + r["peak_uss_mb"].get("channel", 0.0)
        r["gives_first"] = gives_first(r)
        results.append(r)
        if not args.json:
            print(f"  {r['items_per_s']} items/s, p50 {r['latency_ms_p50']} ms, p99 {r['latency_ms_p99']} ms; "
                  f"{r['gives_first']}", file=sys.stderr, flush=True)
    bound = DEFAULT_MAX_QUEUED_SAMPLES
    rows = [x for r in results for x in rows_of(r, bound)]
    k = knee(results)
    for s in skipped:
        rows.append(row("mtsc", "all", CHANNEL, None, "items_per_s", None, clients=s["clients"], skipped=s["reason"]))
    meta = run_meta({"load": vars(args), "model": args.checkpoint, "tasks": TASKS,
                     "client_and_channel_uss_mb": client_mb,
                     "rx_queue_bound_samples": bound}, {f"client_{i}": i for i in range(max(args.clients))})
    summary = {"knee_clients": None if k is None else k["clients"],
               "gives_first": (k or (results[-1] if results else {})).get("gives_first")}
    report = {"meta": meta, "rows": rows, "summary": summary, "counts": results, "skipped": skipped}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    plot(results, out / "load.png")
    judged = [r for r in rows if "meets_target" in r]
    passed = all(r["meets_target"] for r in judged) and not any(r["stopped"] for r in results)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{'clients':>7} {'items/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'min/mean':>8}  gives first")
        for r in results:
            print(f"{r['clients']:>7} {r['items_per_s'] or float('nan'):>8.2f} {r['latency_ms_p50'] or float('nan'):>8.1f} "
                  f"{r['latency_ms_p99'] or float('nan'):>8.1f} {r['client_rate_min_over_mean'] or float('nan'):>8.2f}  "
                  f"{r['gives_first']}")
        for r in judged:
            print(f"{'PASS' if r['meets_target'] else 'FAIL'} {r['metric']} (clients {r['clients']}): {r['value']}")
        print(f"knee: {summary['knee_clients']} clients; gives first: {summary['gives_first']}")
        for s in skipped:
            print(f"skipped {s['clients']} clients: {s['reason']}")
        print(f"wrote {out / 'report.json'}, load.png")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
