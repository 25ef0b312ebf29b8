"""``mtsc-sdr demo`` (what ``make demo`` runs): the whole testbed on the built-in defaults.

1. The shipped default model (``models/default``, :func:`mtsc_sdr.model.checkpoint.shipped_model_dir`;
   its ``MODEL_CARD.md`` says how it was trained): nothing is trained.
2. One :mod:`mtsc_sdr.runtime.run` sweep over ``--snr-db`` with ``--n-per-task`` items of every
   task at each SNR, for the software channel and, when GNU Radio is present, the GNU Radio
   ``sim_channel`` flowgraph (``configs/demo.yaml``): one base station; per channel kind and SNR a
   link (its own process, all started at once); per channel kind one (int8) client process that
   loads the model once and sends the items at every SNR in turn, ``window`` items in flight, each
   item client -> link -> base station -> client.
3. Meanwhile, in this process: the separate-coding baseline and the codec-at-capacity bound on the
   same items and SNRs, and our model in one process (``mtsc`` on channel ``awgn``), from
   :func:`mtsc_sdr.runtime.evaluate.evaluate` (a thread; it works while the run's processes wait
   on each other).

Prints a table (task x SNR per channel, the baseline beneath) and the p50 latency per stage; writes
into ``--out`` (default ``results/demo``): ``report.json`` ({meta, rows}: every row of the runs
and of the evaluation), ``metrics_vs_snr.png`` (means with standard-error bars),
``latency.png``, ``constellation_<channel>.png`` (received payload symbols at the SNR closest to
10 dB, with the SNR estimate), and the run's own directory (``run/``: items.jsonl, report.json,
the processes' counters).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from mtsc_sdr.config import to_dict
from mtsc_sdr.model.checkpoint import shipped_model_dir
from mtsc_sdr.options import add_checkpoint, add_json, add_seed
from mtsc_sdr.radio.grpython import INSTALL_HINT, find_gr_python
from mtsc_sdr.report import run_meta
from mtsc_sdr.runtime import plots
from mtsc_sdr.runtime.evaluate import evaluate, format_table
from mtsc_sdr.runtime.run import ClientSpec, RunConfig, RunFailed, execute, format_summary

DEFAULT_SNRS_DB = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
#: Items per task and SNR: enough for a standard error of a few points on the text metrics.
DEFAULT_N_PER_TASK = 50
#: Items in flight per client: covers the round trip, and a lost frame is resent once a later
#: item's answer shows it lost, so low SNR does not stall the window.
DEFAULT_WINDOW = 8


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="results/demo", help="where report.json and the plots go (default results/demo)")
    add_checkpoint(p, help="use this checkpoint instead of the shipped model (models/default, or "
                           "$MTSC_MODELS/default when set)")
    p.add_argument("--snr-db", type=float, nargs="+", default=list(DEFAULT_SNRS_DB), help="SNR sweep, dB (default -5 0 5 10 15 20)")
    p.add_argument("--n-per-task", type=int, default=DEFAULT_N_PER_TASK,
                   help=f"items per task and SNR (default {DEFAULT_N_PER_TASK})")
    p.add_argument("--precision", choices=("int8", "fp32"), default="int8",
                   help="client half precision (int8: post-training quantized, the default)")
    p.add_argument("--cfo-hz", type=float, default=2000.0, help="simulated carrier frequency offset (at 1 Msample/s)")
    add_seed(p, 1, help="seed of the links' noise and impairments (default 1)")
    p.add_argument("--no-gnuradio", action="store_true", help="skip the GNU Radio sim flowgraph")
    add_json(p)


def demo_run_config(channels: list[str], checkpoint: str, snr_db: list[float], n_per_task: int, precision: str,
                    cfo_hz: float, seed: int, out: str):
    """The demo's sweep: one base station, a link per channel kind and SNR point (all started at
    once), one client process per channel kind sending every point in turn (the model loads
    once per client; two cores are not shared by a process per point). ``configs/demo.yaml`` is
    this with both channels, as a file."""
    return RunConfig(name="demo", checkpoint=checkpoint, channel=channels[0], snr_db=snr_db, cfo_hz=cfo_hz,
                     seed=seed, client_per_point=False, item_timeout_s=1.5,
                     retries=10,   # at -5 dB about a third of the frames are lost (not detected, header CRC)
                     clients=[ClientSpec(n_per_task=n_per_task, precision=precision, channel=ch,
                                         window=DEFAULT_WINDOW) for ch in channels],
                     out=out)


class NoModel(RuntimeError):
    """The checkpoint the demo was to use is not there (the message says how to get one)."""


def default_model() -> Path:
    """The shipped default model's directory; :class:`NoModel` when the checkout lacks it."""
    directory = shipped_model_dir()
    if not (directory / "config.json").is_file():
        raise NoModel(f"no model in {directory} (the release model ships with the project: is the checkout "
                      f"complete?); train one with `mtsc-sdr train --config configs/release-default.yaml` "
                      f"and pass --checkpoint results/models/release-default")
    return directory


def _constellation_plot(run_dir: Path, report: dict, channel: str, out: Path) -> Path | None:
    """Received payload symbols of ``channel``'s session closest to 10 dB, with its SNR estimate."""
    file = run_dir / "work" / "constellation.npz"
    points = [p for p in report.get("points", []) if p["channel"] == channel]
    if not file.is_file() or not points:
        return None
    point = min(points, key=lambda p: abs(p["snr_db"] - 10.0))
    with np.load(file, allow_pickle=False) as data:
        key = f"s{point['session']}"
        if key not in data:
            return None
        payload = data[key]
    est = [r["value"] for r in report["rows"] if r["metric"] == "snr_est_db" and r["snr_db"] == point["snr_db"]
           and r["channel"] == channel]
    title = f"{channel}, set SNR {point['snr_db']:g} dB: received JSC payload (analog, zero-forced)"
    return plots.constellation(payload, float(np.mean(est)) if est else None, title, out / f"constellation_{channel}.png")


class _Reference:
    """The baseline and the one-process reference (:func:`evaluate`, one torch thread) in a
    thread started at once: it works while the run's processes wait on each other."""

    def __init__(self, checkpoint: Path, snr_db: list[float], n_per_task: int, precision: str):
        self._out: dict[str, Any] = {}
        self.seconds: float | None = None           # how long it took, once done
        self._thread = threading.Thread(target=self._work, args=(checkpoint, snr_db, n_per_task, precision),
                                        name="demo-reference", daemon=True)   # Ctrl-C must not wait for it
        self._thread.start()

    def _work(self, checkpoint, snr_db, n_per_task, precision) -> None:
        t0 = time.monotonic()
        try:
            self._out["report"] = evaluate(checkpoint, snr_db, n_per_task=n_per_task, split="val", seed=0,
                                           baseline=True, threads=1, precision=precision)
        except BaseException as exc:     # handed to the caller of result()
            self._out["error"] = exc
        finally:
            self.seconds = time.monotonic() - t0

    def running(self) -> bool:
        return self._thread.is_alive()

    def result(self) -> dict[str, Any]:
        """The evaluation's report; re-raises what it raised."""
        self._thread.join()
        if "error" in self._out:
            raise self._out["error"]
        return self._out["report"]


def run(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    try:
        checkpoint = Path(args.checkpoint) if args.checkpoint else default_model()
    except NoModel as exc:
        print(f"mtsc-sdr demo: {exc}", file=sys.stderr)
        return 2
    channels = ["software"]
    if args.no_gnuradio:
        print("demo: GNU Radio sim flowgraph skipped (--no-gnuradio)", file=sys.stderr)
    elif find_gr_python() is None:
        print(f"demo: GNU Radio sim flowgraph skipped: {INSTALL_HINT}", file=sys.stderr)
    else:
        channels.append("gnuradio-sim")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = demo_run_config(channels, str(checkpoint), list(args.snr_db), args.n_per_task, args.precision,
                          args.cfo_hz, args.seed, str(out / "run"))
    if not args.json:
        print("demo: separate-coding baseline and one-process reference on the same items, alongside the run",
              file=sys.stderr, flush=True)
    reference = _Reference(checkpoint, list(args.snr_db), args.n_per_task, args.precision)
    t_run = time.monotonic()
    try:
        run_report = execute(cfg, progress=not args.json)
    except RunFailed as exc:
        print(f"mtsc-sdr demo: {exc}", file=sys.stderr)
        return exc.status
    except RuntimeError as exc:          # a process or flowgraph died (named); the run's report is written
        print(f"mtsc-sdr demo: {exc}\n(report of the run: {out / 'run' / 'report.json'})", file=sys.stderr)
        return 1
    run_s = time.monotonic() - t_run
    rows: list[dict[str, Any]] = list(run_report["rows"])
    failures = list(run_report["failures"])
    for channel in channels:
        _constellation_plot(out / "run", run_report, channel, out)
    if not args.json and reference.running():
        print("demo: the run is done; waiting for the baseline and one-process reference", file=sys.stderr,
              flush=True)
    ev = reference.result()
    rows += ev["rows"]
    report = {"meta": run_meta({"demo": vars(args), "checkpoint": str(checkpoint), "run": to_dict(cfg)},
                               {"demo": args.seed}),
              "rows": rows, "failures": failures}
    report["meta"]["checkpoint"] = str(checkpoint)      # the model every row comes from
    report["meta"]["wall_s"] = round(time.monotonic() - t0, 1)
    # where the wall time went: the run (processes), the baseline and reference alongside it
    report["meta"]["timing_s"] = {"run": round(run_s, 1), "reference": round(reference.seconds or 0.0, 1)}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    plots.metrics_vs_snr(rows, out / "metrics_vs_snr.png")
    plots.latency_breakdown(rows, out / "latency.png")
    if args.json:
        print(json.dumps(report))
    else:
        print(format_summary({"rows": [r for r in rows if r["channel"] in channels], "failures": failures}))
        print("Baseline and one-process reference (torch AWGN channel, same items):")
        print(format_table([r for r in ev["rows"] if r["metric"] in ("accuracy", "cider", "psnr_db")]))
        timing = report["meta"]["timing_s"]
        print(f"wrote {out / 'report.json'}, metrics_vs_snr.png, latency.png, constellation_*.png "
              f"({report['meta']['wall_s']:.0f} s; the run {timing['run']:.0f} s, the baseline and reference "
              f"{timing['reference']:.0f} s alongside it)")
    return 1 if failures else 0
