"""The PHY's targets measured side by side with the genie receiver, in one run.

Run with the project's virtual environment::

    .venv/bin/python benchmarks/phy_receiver.py [--frames 2000] [--seed 0] [--json]

Everything runs on the test channel of ``tests/phy/impairments.py`` (fixed seeds, exact
per-frame truth). SNR is Es/N0 per complex payload symbol on the wire (mtsc_sdr.conventions).

Rows (tidy schema, ``system`` = ``mtsc`` for our receiver, ``genie`` for the receiver told the
exact timing, CFO and channel):

* ``detection_rate`` and ``decode_rate`` vs SNR (-5 .. 0 dB): frames whose preamble was confirmed /
  whose header decoded, over ``--frames`` frames per SNR at 0 dB (a quarter of that below), with
  multipath (4 Rayleigh paths over 9 samples), CFO uniform in +-2 % of the sample rate and
  +-50 ppm sample-rate offset. Target at 0 dB: >= 0.999.
* ``false_alarms_per_1e4_frames``: confirmed preambles in 10^4 frame lengths (480-symbol payload,
  1744 samples) of pure noise; target <= 1. ``triggers`` (stage-1 detections) is printed too.
* ``evm_db`` (mtsc, genie) and ``evm_gap_db`` (ratio row) at 20 dB on AWGN, Rician (K = 3) and
  multipath; target gap <= 1 dB on AWGN and Rician.
* ``snr_estimate_error_db`` (mean of estimate - truth over frames) and ``snr_estimate_std_db`` at
  -5, 0, ..., 25 dB on AWGN; target |error| <= 1 dB. At -5 dB many headers fail, so the estimates
  of confirmed preambles whose header was dropped are included (``Receiver.drops``).
* Timing (parts ``throughput`` and ``back_to_back``), side by side by default: every case runs
  through our receiver and a baseline's, each in a fresh process of this run (one untimed pass for
  numba's compile or cache load, then the best of ``--runs`` passes in process CPU time, BLAS and
  numba threads pinned to one, 16384-sample chunks). The baseline is ``--baseline DIR`` or a git
  worktree of ``--baseline-rev`` (default ``BASELINE_REV``, the receiver before its numba kernels),
  created on first use as ``<tmp>/mtsc-sdr-baseline-<rev>`` and reused (remove it with ``git
  worktree remove``; the next run recreates it); ``--no-baseline`` times ours only. Rows: ``msps``
  (Msamples/s) per system, ``frames_per_s`` for frame cases, ``msps_ratio`` (ours / baseline,
  ``peer`` = baseline). Cases: ``noise`` (4M samples of noise only: detection; target >= 30),
  ``multipath`` back-to-back 480- and 4800-symbol frames without gaps, and ``back-to-back``: the
  link test's frame train (``mtsc_sdr.runtime.link_tx.frame_train``, 500 zero samples before each
  frame, AWGN at 20 dB, 300 frames) with 256- and 512-symbol payloads (target for 512: >= 10).

  Recorded on a shared 2-core VM under load from other jobs (load average 5-18), two runs of
  ``--parts throughput back_to_back --runs 7``, ours at 857f878 / 91e1424 (the receiver of
  87a1034, issue 18 section 3) against c036413, Msamples/s ours / baseline (ratio):
  back-to-back 512: 10.66 / 3.34 (3.20x) and 10.73 / 3.40 (3.16x), ~4600 frames/s;
  back-to-back 256: 10.05 / 2.83 (3.56x) and 8.80 / 3.09 (2.85x);
  noise only: 66.5 / 14.0 (4.76x) and 63.9 / 13.3 (4.79x);
  multipath 480: 8.30 / 2.77 (2.99x) and 7.26 / 2.31 (3.14x); 4800: 14.7 / 6.2 (2.36x) and
  12.7 / 5.6 (2.29x). Both targets met; the issue's "5x" was against 2.2 Msamples/s measured on
  a busier day, while the baseline reached 3.3-3.4 here. (An earlier change recorded, with
  ``--parts back_to_back --baseline <worktree of ff2b018>``, 0.84-1.2 Msps before it and 1.9-2.7
  after it on 256-symbol frames.)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # the repository root: tests.phy.impairments

import mtsc_sdr  # noqa: E402
from mtsc_sdr.conventions import noise_power  # noqa: E402
from mtsc_sdr.phy import Receiver, frame_length, genie_receive  # noqa: E402
from tests.phy.impairments import complex_noise, make_stream, match  # noqa: E402


def _row(metric, value, *, system="mtsc", channel="awgn", snr_db=None, **extra):
    return {"system": system, "task": "phy", "channel": channel, "snr_db": snr_db, "metric": metric,
            "value": float(value), **extra}


def _receive(stream, chunk=1 << 17):
    rx = Receiver()
    frames = []
    t0 = time.perf_counter()
    for i in range(0, stream.size, chunk):
        frames += rx.process(stream[i:i + chunk])
    frames += rx.flush()
    return frames, rx, time.perf_counter() - t0


def detection(args, progress):
    rows = []
    for snr_db in (0.0, -1.0, -2.0, -3.0, -5.0):
        n = args.frames if snr_db == 0.0 else max(args.frames // 4, 50)
        found = decoded = 0
        for half, sro in enumerate((50.0, -50.0)):
            rng = np.random.default_rng(args.seed + 10 * half + int(100 - snr_db))
            stream, truth = make_stream(rng, n // 2, snr_db, payload_len=96, channel="multipath",
                                        sro_ppm=sro)
            frames, rx, _ = _receive(stream)
            decoded += len(match(frames, truth, tol=10))
            confirmed = [f.start for f in frames] + [d.start for d in rx.drops]
            starts = np.array(truth.starts)
            found += sum(int(np.min(np.abs(starts - s)) <= 10) for s in confirmed)
        progress(f"detection {snr_db:+.0f} dB: {found}/{n} confirmed, {decoded}/{n} decoded")
        target = {"target": 0.999, "meets_target": found / n >= 0.999} if snr_db == 0.0 else {}
        rows += [_row("detection_rate", found / n, channel="multipath+cfo+sro", snr_db=snr_db, frames=n, **target),
                 _row("decode_rate", decoded / n, channel="multipath+cfo+sro", snr_db=snr_db, frames=n)]
    return rows


def false_alarms(args, progress):
    rng = np.random.default_rng(args.seed + 7)
    n_total = 10_000 * frame_length(480)
    rx = Receiver()
    for i in range(0, n_total, 1 << 20):
        rx.process(complex_noise(rng, min(1 << 20, n_total - i), noise_power(0.0)).astype(np.complex64))
    rx.flush()
    progress(f"false alarms: {rx.stats['detected']} confirmed, {rx.stats['triggers']} stage-1 triggers "
             f"in {n_total} noise samples")
    return [_row("false_alarms_per_1e4_frames", rx.stats["detected"], channel="noise", frame_samples=frame_length(480),
                 target=1.0, meets_target=rx.stats["detected"] <= 1),
            _row("triggers_per_1e4_frames", rx.stats["triggers"], channel="noise", frame_samples=frame_length(480))]


def evm(args, progress):
    rows = []
    for k, channel in enumerate(("awgn", "rician", "multipath")):
        rng = np.random.default_rng(args.seed + 300 + k)
        L = 480
        stream, truth = make_stream(rng, args.evm_frames, 20.0, payload_len=L, channel=channel)
        frames, _, _ = _receive(stream)
        got = match(frames, truth, tol=2 if channel != "multipath" else 10)
        e_rx = e_g = p = 0.0
        for i, f in got.items():
            g = genie_receive(stream, truth.starts[i], L, channel_taps=truth.taps[i], cfo=truth.cfos[i])
            e_rx += np.sum(np.abs(f.payload - truth.payloads[i]) ** 2)
            e_g += np.sum(np.abs(g - truth.payloads[i]) ** 2)
            p += np.sum(np.abs(truth.payloads[i]) ** 2)
        ours, genie = 10 * np.log10(e_rx / p), 10 * np.log10(e_g / p)
        progress(f"EVM 20 dB {channel}: ours {ours:.2f} dB, genie {genie:.2f} dB, gap {ours - genie:+.2f} dB")
        rows += [_row("evm_db", ours, channel=channel, snr_db=20.0, frames=len(got)),
                 _row("evm_db", genie, system="genie", channel=channel, snr_db=20.0, frames=len(got)),
                 _row("evm_gap_db", ours - genie, channel=channel, snr_db=20.0, peer="genie",
                      **({} if channel == "multipath" else {"target": 1.0, "meets_target": ours - genie <= 1.0}))]
    return rows


def snr_estimate(args, progress):
    rows = []
    for snr_db in range(-5, 30, 5):
        rng = np.random.default_rng(args.seed + 500 + snr_db)
        stream, truth = make_stream(rng, args.snr_frames, float(snr_db), payload_len=96)
        frames, rx, _ = _receive(stream)
        starts = np.array(truth.starts)
        est = [f.snr_db for f in match(frames, truth, tol=4).values()]
        est += [d.snr_db for d in rx.drops if np.min(np.abs(starts - d.start)) <= 4]
        err = np.array(est) - snr_db
        progress(f"SNR estimate at {snr_db:+d} dB: error {err.mean():+.2f} dB (std {err.std():.2f}, n={err.size})")
        rows += [_row("snr_estimate_error_db", err.mean(), snr_db=float(snr_db), frames=int(err.size), target=1.0,
                      meets_target=bool(abs(err.mean()) <= 1.0)),
                 _row("snr_estimate_std_db", err.std(), snr_db=float(snr_db), frames=int(err.size))]
    return rows


#: the receiver before its compiled kernels (numba, issue 18): the default peer of the timing parts
BASELINE_REV = "c036413"

#: Targets of issue 18 (Msamples/s of process CPU time on one core).
TARGET_MSPS = {"noise": 30.0, ("back-to-back", 512): 10.0}

# Times one receiver (the checkout at argv[1]) on one case (argv[2], JSON) in a fresh process:
# one untimed pass (numba compiles or loads its cache, FFT plans warm up), then the best of
# argv[3] passes in process CPU time, threads pinned to one by the environment.
_TIMING = r"""
import json, math, sys, time
root, case, runs = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, root)
import numpy as np
from mtsc_sdr.phy import Receiver
rng = np.random.default_rng(case["seed"])
if case["channel"] == "noise":
    from mtsc_sdr.conventions import noise_power
    from tests.phy.impairments import complex_noise
    y = complex_noise(rng, case["samples"], noise_power(10.0)).astype(np.complex64)
elif case["channel"] == "back-to-back":
    from mtsc_sdr.channel import AWGN
    from mtsc_sdr.runtime.link_tx import frame_train
    x, _ = frame_train(1, case["frames"], payload_len=case["payload_len"], gap=case["gap"])
    y = AWGN(20.0, seed=3).process_(x.copy())
else:
    from tests.phy.impairments import make_stream
    y, _ = make_stream(rng, case["frames"], 20.0, payload_len=case["payload_len"], channel=case["channel"],
                       gap=(0, 0))
chunk = case["chunk"]

def receive():
    rx = Receiver()
    n = 0
    for i in range(0, y.size, chunk):
        n += len(rx.process(y[i:i + chunk]))
    return n + len(rx.flush())

t0 = time.perf_counter()
receive()
first_s = time.perf_counter() - t0
best, n = math.inf, 0
for _ in range(runs):
    t0 = time.process_time()
    n = receive()
    best = min(best, time.process_time() - t0)
print(json.dumps({"samples": int(y.size), "frames": n, "seconds": best, "first_s": first_s}))
"""


def _baseline_tree(args, progress) -> str | None:
    """The peer checkout: --baseline DIR, or a git worktree of --baseline-rev (created on first use
    under the system's temporary directory, reused after), or None with --no-baseline."""
    if args.no_baseline:
        return None
    if args.baseline:
        return str(Path(args.baseline).resolve())
    import subprocess
    import tempfile
    repo = Path(__file__).resolve().parent.parent
    rev = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", f"{args.baseline_rev}^{{commit}}"],
                         check=True, capture_output=True, text=True).stdout.strip()
    tree = Path(tempfile.gettempdir()) / f"mtsc-sdr-baseline-{rev[:12]}"
    if not (tree / "mtsc_sdr" / "phy" / "rx.py").exists():
        progress(f"creating a worktree of {rev[:12]} at {tree} (git worktree add)")
        subprocess.run(["git", "-C", str(repo), "worktree", "prune"], check=True, capture_output=True)
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), rev],
                       check=True, capture_output=True)
    return str(tree)


def _timed(root: str, case: dict, runs: int) -> dict:
    import subprocess
    env = {**os.environ, "PYTHONPATH": root, "NUMBA_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _TIMING, root, json.dumps(case), str(runs)],
                         check=True, capture_output=True, text=True, env=env, cwd=root)
    return json.loads(out.stdout)


def _side_by_side(args, progress, cases: list[dict]) -> list[dict]:
    """Each case through our receiver and the baseline's, in fresh processes of this run: msps
    (and frames_per_s), the ratio, and the issue's targets."""
    trees = [("mtsc", str(Path(__file__).resolve().parent.parent))]
    baseline = _baseline_tree(args, progress)
    if baseline is not None:
        trees.append(("baseline", baseline))
    rows = []
    for case in cases:
        channel, L = case["channel"], case.get("payload_len")
        msps = {}
        for system, root in trees:
            r = _timed(root, case, args.runs)
            expected = case.get("frames", 0)
            if r["frames"] != expected:
                raise RuntimeError(f"{system} ({root}) decoded {r['frames']} of {expected} frames on {case}")
            msps[system] = r["samples"] / r["seconds"] / 1e6
            extra = {"unit": "Msamples/s", "threads": 1, "chunk": case["chunk"], "runs": args.runs,
                     "clock": "process_time", "first_pass_s": round(r["first_s"], 3)}
            if L is not None:
                extra.update(payload_len=L, frames=expected)
            if system == "baseline":
                extra["tree"] = root
            target = TARGET_MSPS.get(channel if L is None else (channel, L))
            judged = {"target": target, "meets_target": msps[system] >= target} \
                if system == "mtsc" and target is not None else {}
            snr = None if channel == "noise" else 20.0
            rows.append(_row("msps", msps[system], system=system, channel=channel, snr_db=snr, **extra, **judged))
            if expected:
                rows.append(_row("frames_per_s", r["frames"] / r["seconds"], system=system, channel=channel,
                                 snr_db=snr, **{**extra, "unit": "frames/s"}))
        what = channel + ("" if L is None else f" {L}-symbol frames")
        line = f"throughput, {what}: mtsc {msps['mtsc']:.2f} Msps"
        if "baseline" in msps:
            ratio = msps["mtsc"] / msps["baseline"]
            line += f", baseline {msps['baseline']:.2f} Msps, ratio {ratio:.2f}x"
            rows.append(_row("msps_ratio", ratio, channel=channel, snr_db=None if channel == "noise" else 20.0,
                             peer="baseline", **({} if L is None else {"payload_len": L})))
        progress(line)
    return rows


def throughput(args, progress):
    """Noise only (detection) and back-to-back multipath frames of 480 and 4800 symbols, side by side."""
    cases = [{"channel": "noise", "samples": 1 << 22, "seed": args.seed + 900, "chunk": 1 << 14},
             {"channel": "multipath", "payload_len": 480, "frames": 200, "seed": args.seed + 901, "chunk": 1 << 14},
             {"channel": "multipath", "payload_len": 4800, "frames": 60, "seed": args.seed + 902, "chunk": 1 << 14}]
    return _side_by_side(args, progress, cases)


def back_to_back(args, progress):
    """The link test's frame train (256-symbol payloads) and the same with 512, side by side."""
    cases = [{"channel": "back-to-back", "payload_len": L, "frames": 300, "gap": 500, "seed": args.seed,
              "chunk": 1 << 14} for L in (256, 512)]
    return _side_by_side(args, progress, cases)


PARTS = {"detection": detection, "false_alarms": false_alarms, "evm": evm, "snr_estimate": snr_estimate,
         "throughput": throughput, "back_to_back": back_to_back}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2000, help="frames for detection at 0 dB")
    parser.add_argument("--evm-frames", type=int, default=200)
    parser.add_argument("--snr-frames", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--parts", nargs="+", choices=sorted(PARTS), default=list(PARTS),
                        help="which measurements to run (default: all)")
    parser.add_argument("--baseline", metavar="DIR",
                        help="another checkout to time side by side (default: a worktree of --baseline-rev)")
    parser.add_argument("--baseline-rev", default=BASELINE_REV,
                        help="commit whose receiver the timing parts compare against (a git worktree of it is "
                             "created under the temporary directory on first use)")
    parser.add_argument("--no-baseline", action="store_true", help="time our receiver only")
    parser.add_argument("--runs", type=int, default=5, help="timed passes per case and receiver (best counts)")
    args = parser.parse_args(argv)

    def progress(text: str) -> None:
        if not args.json or sys.stderr.isatty():
            print(text, file=sys.stderr, flush=True)

    rows = []
    for name in args.parts:
        rows += PARTS[name](args, progress)
    meta = {"benchmark": "phy_receiver", "config": vars(args), "seeds": {"base": args.seed},
            "versions": {"mtsc_sdr": mtsc_sdr.__version__, "numpy": np.__version__,
                         "python": platform.python_version()},
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "threads": 1}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
    else:
        for r in rows:
            verdict = "" if "meets_target" not in r else \
                f"  target {r['target']:g}: {'PASS' if r['meets_target'] else 'FAIL'}"
            size = "" if r.get("payload_len") is None else f" L={r['payload_len']}"
            print(f"{r['system']:8s} {r['channel'] + size:20s} {str(r['snr_db']):6s} {r['metric']:30s} "
                  f"{r['value']:.4g}{verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
