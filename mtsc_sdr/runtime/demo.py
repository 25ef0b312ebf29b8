"""``mtsc-sdr demo`` (what ``make demo`` runs): the link demo on the built-in defaults.

Until the semantic model exists, the demo shows the radio link: for each simulated channel
(the software channel, and the GNU Radio ``sim_channel`` flowgraph when GNU Radio is present) and
each SNR of the sweep, a link test of random analog-payload frames with a carrier frequency offset
and a sample-rate offset. It prints a table, and writes into ``--out`` (default ``results/demo``):

* ``report.json``: ``{"meta", "rows"}`` in the project's report schema, one row per channel, SNR
  and figure (detected / header-OK ratio, EVM, SNR estimate, throughput);
* ``link_vs_snr.png``: EVM and estimated SNR against the set SNR, one line per channel.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mtsc_sdr.runtime.link_test import LinkTestConfig, run_link_test
from mtsc_sdr.runtime.report import run_meta

DEFAULT_SNRS_DB = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="results/demo", help="where report.json and the plots go")
    p.add_argument("--frames", type=int, default=200, help="frames per link test")
    p.add_argument("--snr-db", type=float, nargs="+", default=list(DEFAULT_SNRS_DB), help="SNR sweep, dB")
    p.add_argument("--cfo-hz", type=float, default=10_000.0, help="simulated CFO (at 1 Msample/s: 1%% of fs)")
    p.add_argument("--sro-ppm", type=float, default=20.0, help="simulated sample-rate offset")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-gnuradio", action="store_true", help="skip the GNU Radio sim flowgraph")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mtsc_sdr.phy import SUBCARRIER_SNR_GAIN_DB

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for channel in sorted({r["channel"] for r in rows}):
        for ax, metric in zip(axes, ("evm_db", "snr_est_db")):
            pts = sorted((r["snr_db"], r["value"]) for r in rows
                         if r["channel"] == channel and r["metric"] == metric and r["value"] is not None)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=channel)
    snrs = sorted({r["snr_db"] for r in rows})
    floor = [-(s + SUBCARRIER_SNR_GAIN_DB) for s in snrs]  # data subcarriers get 64/52 of the power
    axes[0].plot(snrs, floor, "k:", label=f"noise floor -(SNR + {SUBCARRIER_SNR_GAIN_DB:.1f} dB)")
    axes[1].plot(snrs, snrs, "k:", label="truth")
    axes[0].set(xlabel="set SNR (dB)", ylabel="payload EVM (dB)", title="Equalised payload EVM")
    axes[1].set(xlabel="set SNR (dB)", ylabel="estimated SNR (dB)", title="Receiver SNR estimate")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from mtsc_sdr.radio.grpython import INSTALL_HINT, find_gr_python

    channels = ["software"]
    if args.no_gnuradio:
        print("demo: GNU Radio sim flowgraph skipped (--no-gnuradio)", file=sys.stderr)
    elif find_gr_python() is None:
        print(f"demo: GNU Radio sim flowgraph skipped: {INSTALL_HINT}", file=sys.stderr)
    else:
        channels.append("gnuradio-sim")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rows: list[dict[str, Any]] = []
    configs = []
    header = f"{'channel':<13} {'SNR set':>7} {'detected':>9} {'header OK':>9} {'EVM dB':>7} {'SNR est':>7} {'CFO Hz':>8}"
    if not args.json:
        print(header)
    for channel in channels:
        for snr_db in args.snr_db:
            cfg = LinkTestConfig(channel=channel, snr_db=snr_db, frames=args.frames, seed=args.seed,
                                 cfo_hz=args.cfo_hz, sro_ppm=args.sro_ppm)
            configs.append(cfg)
            r = run_link_test(cfg)
            rows += r["rows"]
            if not args.json:
                na = lambda v, spec: "n/a" if v is None else format(v, spec)  # noqa: E731
                print(f"{channel:<13} {snr_db:>7.1f} {r['frames_detected']:>5}/{r['frames_sent']:<3}"
                      f" {r['frames_header_ok']:>5}/{r['frames_sent']:<3} {na(r['evm_db'], '7.2f')}"
                      f" {na(r['snr_est_db'], '7.2f')} {na(r['cfo_est_hz'], '8.0f')}", flush=True)
    report = {"meta": run_meta({"demo": vars(args), "link_tests": [c.__dict__ for c in configs]},
                               {"demo": args.seed}),
              "rows": rows}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    _plot(rows, out / "link_vs_snr.png")
    if args.json:
        print(json.dumps(report))
    else:
        print(f"wrote {out / 'report.json'} and {out / 'link_vs_snr.png'}")
    return 0
