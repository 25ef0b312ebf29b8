#!/usr/bin/env python3
"""Sustained complex64 throughput over ZeroMQ on loopback: our IQ link versus GNU Radio's gr-zeromq.

Two runs in one invocation, each with a sender process and a receiver process on ``tcp://127.0.0.1``:

* ``mtsc``: :class:`mtsc_sdr.link.IQPush` (binds) -> :class:`mtsc_sdr.link.IQPull` (connects).
  Every sample carries its own index (the 64 bits of sample i hold i, split so that both float32
  halves stay finite), and the receiver checks **every** sample of every message against it: lost,
  reordered or corrupted samples are counted, not assumed absent. The receiver keeps its normal
  validation on (length, NaN/inf check of every sample).
* ``gnuradio``: ``blocks.null_source -> zeromq.push_sink`` in one GNU Radio process and
  ``zeromq.pull_source -> blocks.null_sink`` in another (GNU Radio's defaults). GNU Radio does no
  payload generation and no checking, so its figure is an upper bound for what its blocks move;
  ``lost_samples`` is null there (not measurable without a pattern).

Both figures are samples received per second over the same window length, starting at the first
received message (so process start-up is excluded). Rounds alternate the two systems so both meet
the same machine conditions; each figure is the median over its rounds (``best`` and ``rounds``
give the rest). Because the rate depends on whatever else the machine runs, the CPU time both
processes spent per 10^9 samples during the window is reported too (``cpu_s_per_gsample``). Targets: >= 61.44 Msamples/s (a PlutoSDR's
maximum rate) and >= 1x GNU Radio.

    python benchmarks/zmq_throughput.py --seconds 10            # 3 rounds each, table on the terminal
    python benchmarks/zmq_throughput.py --seconds 10 --json     # one JSON object: meta + rows

Exit status: 0 when measured (targets or not), 1 when the mtsc receiver found lost, reordered or
corrupted samples or a process failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TARGET_MSPS = 61.44
CHANNEL = "zmq-loopback"
_LOW_BITS = 30
_LOW_MASK = (1 << _LOW_BITS) - 1


# ------------------------------------------------------------------------------- sample pattern


def pattern_word(index: int) -> int:
    """64-bit word of sample ``index``: low 32 bits = index mod 2^30, high 32 bits = index >> 30.

    As two float32 (I, Q) both halves have an exponent field below all-ones, so every sample is
    finite and passes the receiver's NaN/inf check honestly.
    """
    return (index & _LOW_MASK) | ((index >> _LOW_BITS) << 32)


def pattern(start: int, n: int) -> np.ndarray:
    """Words of samples ``start .. start+n-1`` (uint64)."""
    idx = np.arange(start, start + n, dtype=np.uint64)
    return (idx & np.uint64(_LOW_MASK)) | ((idx >> np.uint64(_LOW_BITS)) << np.uint64(32))


def decode_word(word: int) -> int:
    return ((word >> 32) << _LOW_BITS) | (word & 0xFFFFFFFF)


# ----------------------------------------------------------------------------- mtsc processes


def _tune(args: argparse.Namespace) -> None:
    if not args.no_tune_allocator:
        from mtsc_sdr.link.alloc import tune_allocator_for_streaming

        tune_allocator_for_streaming(args.message_samples * 8)


def role_mtsc_send(args: argparse.Namespace) -> int:
    from mtsc_sdr.link import IQPush, IQSendTimeout

    _tune(args)
    n = args.message_samples
    base = np.arange(n, dtype=np.uint64)
    push = IQPush(args.endpoint, hwm=args.hwm, max_message_samples=n, send_timeout_ms=30_000, linger_ms=0)
    print(json.dumps({"ready": push.endpoint}), flush=True)
    start = 0
    try:
        while True:
            # a fresh array per message, handed to ZeroMQ without a copy (never modified afterwards)
            words = base + np.uint64(pattern_word(start))
            push.send(words.view(np.complex64), copy=False)
            start += n
    except (IQSendTimeout, KeyboardInterrupt):
        return 0  # the receiver is done and gone
    finally:
        push.close(0)


class PatternChecker:
    """Checks every received sample against its index; counts lost, reordered and corrupt samples."""

    def __init__(self, message_samples: int) -> None:
        self.n = message_samples
        self.base = np.arange(message_samples, dtype=np.uint64)
        self.scratch = np.empty(message_samples, dtype=np.uint64)
        self.expected = 0
        self.lost = self.reordered = self.corrupt = 0

    def check(self, samples: np.ndarray) -> None:
        words = samples.view(np.uint64)
        m = len(words)
        first = decode_word(int(words[0]))
        if first > self.expected:
            self.lost += first - self.expected
        elif first < self.expected:
            self.reordered += m
        if m == self.n and first % self.n == 0:  # the usual case: no temporary arrays
            np.subtract(words, np.uint64(pattern_word(first)), out=self.scratch)
            ok = np.array_equal(self.scratch, self.base)
        else:
            ok = np.array_equal(words, pattern(first, m))
        if not ok:
            self.corrupt += int(np.count_nonzero(words != pattern(first, m)))
        self.expected = max(self.expected, first + m)


def role_mtsc_recv(args: argparse.Namespace) -> int:
    from mtsc_sdr.link import IQPull

    _tune(args)
    pull = IQPull(args.endpoint, hwm=args.hwm)  # check_finite stays on
    checker = PatternChecker(args.message_samples)
    verify = checker.check
    counted = messages = 0

    first_chunk = pull.recv(timeout_ms=int(args.startup_timeout_s * 1000))
    if first_chunk is None:
        print(json.dumps({"error": "no samples from the sender"}), flush=True)
        return 1
    t0, cpu0 = time.monotonic(), time.process_time()
    verify(first_chunk)
    deadline = t0 + args.seconds
    t_last = t0
    while True:
        samples = pull.recv(timeout_ms=5000)
        if samples is None:
            print(json.dumps({"error": "sender stalled for 5 s"}), flush=True)
            return 1
        verify(samples)
        counted += len(samples)
        messages += 1
        t_last = time.monotonic()
        if t_last >= deadline:
            break
    cpu = time.process_time() - cpu0
    elapsed = t_last - t0
    result = {
        "samples": counted, "messages": messages, "elapsed_s": elapsed, "msps": counted / elapsed / 1e6,
        "t0_mono": t0, "t1_mono": t_last, "receiver_cpu_s": cpu,
        "lost_samples": checker.lost, "reordered_samples": checker.reordered, "corrupt_samples": checker.corrupt,
        "receiver_stats": pull.stats.as_dict(),
    }
    pull.close()
    print(json.dumps(result), flush=True)
    return 0


# ------------------------------------------------------------------------ GNU Radio processes

_GR_SEND = r"""
import sys, time
from gnuradio import gr, blocks, zeromq
tb = gr.top_block()
src = blocks.null_source(gr.sizeof_gr_complex)
snk = zeromq.push_sink(gr.sizeof_gr_complex, 1, sys.argv[1], 100, False, -1)
tb.connect(src, snk)
tb.start()
print("ready", flush=True)
time.sleep(float(sys.argv[2]))
tb.stop(); tb.wait()
"""

_GR_RECV = r"""
import json, sys, time
from gnuradio import gr, blocks, zeromq
tb = gr.top_block()
src = zeromq.pull_source(gr.sizeof_gr_complex, 1, sys.argv[1], 100, False, -1)
snk = blocks.null_sink(gr.sizeof_gr_complex)
tb.connect(src, snk)
tb.start()
seconds, startup = float(sys.argv[2]), float(sys.argv[3])
give_up = time.monotonic() + startup
while snk.nitems_read(0) == 0:
    if time.monotonic() > give_up:
        print(json.dumps({"error": "no samples from push_sink"}), flush=True); tb.stop(); tb.wait(); sys.exit(1)
    time.sleep(0.001)
t0, n0, c0 = time.monotonic(), snk.nitems_read(0), time.process_time()
time.sleep(seconds)
n1, t1, c1 = snk.nitems_read(0), time.monotonic(), time.process_time()
tb.stop(); tb.wait()
print(json.dumps({"samples": n1 - n0, "elapsed_s": t1 - t0, "msps": (n1 - n0) / (t1 - t0) / 1e6,
                  "t0_mono": t0, "t1_mono": t1, "receiver_cpu_s": c1 - c0, "version": gr.version()}), flush=True)
"""


def _last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    raise RuntimeError(f"no JSON result in output: {text[-500:]!r}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _cpu_seconds(pid: int) -> float | None:
    """user + system CPU of a process (all its threads) from /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class _CpuSampler(threading.Thread):
    """Samples a process's CPU time every 50 ms with CLOCK_MONOTONIC stamps (comparable across
    processes), so its CPU use can be read off for the receiver's measurement window."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            cpu = _cpu_seconds(self.pid)
            if cpu is None:
                return
            self.samples.append((time.monotonic(), cpu))
            self.stop_event.wait(0.05)

    def finish(self) -> None:
        """Stop sampling, with one last reading (the window may have ended after the previous one)."""
        self.stop_event.set()
        self.join(timeout=5)
        cpu = _cpu_seconds(self.pid)
        if cpu is not None:
            self.samples.append((time.monotonic(), cpu))

    def cpu_between(self, t0: float, t1: float) -> float | None:
        if len(self.samples) < 2 or self.samples[0][0] > t0 or self.samples[-1][0] < t1:
            return None
        ts, cs = zip(*self.samples)
        return float(np.interp(t1, ts, cs) - np.interp(t0, ts, cs))


def _pair(recv_cmd: list[str], send_cmd: list[str], seconds: float, env: dict[str, str]) -> dict:
    """Start receiver then sender; return the receiver's JSON result (plus the sender's CPU over the
    receiver's window); always stop both."""
    recv = subprocess.Popen(recv_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    send = subprocess.Popen(send_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    sampler = _CpuSampler(send.pid)
    sampler.start()
    try:
        out, err = recv.communicate(timeout=seconds + 120)
    except subprocess.TimeoutExpired:
        _stop(recv)
        raise RuntimeError("receiver did not finish in time") from None
    finally:
        sampler.finish()
        _stop(send)
        _stop(recv)
    result = _last_json(out) if out.strip() else {"error": err.strip()[-500:]}
    if recv.returncode != 0 and "error" not in result:
        result["error"] = f"receiver exited {recv.returncode}: {err.strip()[-500:]}"
    if "t0_mono" in result:
        result["sender_cpu_s"] = sampler.cpu_between(result["t0_mono"], result["t1_mono"])
    return result


def _cpu_per_gsample(run: dict) -> float | None:
    if run.get("sender_cpu_s") is None or not run.get("samples"):
        return None
    return (run["receiver_cpu_s"] + run["sender_cpu_s"]) / (run["samples"] / 1e9)


def run_mtsc(seconds: float, message_samples: int, hwm: int, tune_allocator: bool = True) -> dict:
    from mtsc_sdr.link import free_tcp_endpoint

    endpoint = free_tcp_endpoint()
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--endpoint", endpoint, "--message-samples", str(message_samples), "--hwm", str(hwm)]
    if not tune_allocator:
        common.append("--no-tune-allocator")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return _pair(me + ["--role", "mtsc-recv", "--seconds", str(seconds)] + common,
                 me + ["--role", "mtsc-send"] + common, seconds, env)


def run_gnuradio(seconds: float, gr_python: str) -> dict:
    from mtsc_sdr.link import free_tcp_endpoint

    endpoint = free_tcp_endpoint()
    return _pair([gr_python, "-c", _GR_RECV, endpoint, str(seconds), "30"],
                 [gr_python, "-c", _GR_SEND, endpoint, str(seconds + 60)], seconds, dict(os.environ))


# ------------------------------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="measurement window per system (default 10)")
    p.add_argument("--rounds", type=int, default=3,
                   help="alternating rounds per system; figures are medians (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object {meta, rows}")
    p.add_argument("--message-samples", type=int, default=1 << 17,
                   help="samples per ZMQ message for mtsc, a power of two (default 131072 = 1 MiB)")
    p.add_argument("--hwm", type=int, default=32, help="mtsc high-water mark in messages (default 32)")
    p.add_argument("--no-gnuradio", action="store_true", help="skip the GNU Radio run")
    p.add_argument("--no-tune-allocator", action="store_true",
                   help="leave glibc malloc's thresholds alone in the mtsc processes (see mtsc_sdr.link.alloc)")
    p.add_argument("--gr-python", default=None, help="Python with GNU Radio (default: found automatically)")
    p.add_argument("--role", choices=("mtsc-send", "mtsc-recv"), help=argparse.SUPPRESS)
    p.add_argument("--endpoint", help=argparse.SUPPRESS)
    p.add_argument("--startup-timeout-s", type=float, default=30.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    n = args.message_samples
    if n < 1 or n & (n - 1) or n > 1 << _LOW_BITS:
        p.error("--message-samples must be a power of two <= 2^30")
    if args.seconds <= 0 or args.rounds < 1:
        p.error("--seconds must be > 0 and --rounds >= 1")
    if args.role == "mtsc-send":
        return role_mtsc_send(args)
    if args.role == "mtsc-recv":
        return role_mtsc_recv(args)

    from mtsc_sdr.report import row, run_meta

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    gr_python = None
    notes: dict[str, str] = {}
    if args.no_gnuradio:
        notes["gnuradio"] = "skipped: --no-gnuradio"
    else:
        from mtsc_sdr.radio.grpython import INSTALL_HINT, find_gr_python, gr_version as _grv

        gr_python = args.gr_python or find_gr_python()
        if gr_python is None or not _grv(gr_python):
            notes["gnuradio"] = f"skipped: {INSTALL_HINT}"
            gr_python = None

    # Rounds alternate mtsc and GNU Radio so both see the same machine conditions; each system's
    # figure is the median of its rounds.
    ours_runs: list[dict] = []
    gr_runs: list[dict] = []
    failed = False
    for r in range(args.rounds):
        say(f"round {r + 1}/{args.rounds} mtsc: IQPush -> IQPull over {CHANNEL} for {args.seconds:g} s ...")
        ours = run_mtsc(args.seconds, n, args.hwm, not args.no_tune_allocator)
        if "error" in ours:
            notes["mtsc"] = ours["error"]
            failed = True
            break
        ours_runs.append(ours)
        say(f"  {ours['msps']:.1f} Msamples/s, lost {ours['lost_samples']}")
        if gr_python is not None:
            say(f"round {r + 1}/{args.rounds} gnuradio: null_source -> push_sink | pull_source -> null_sink ...")
            res = run_gnuradio(args.seconds, gr_python)
            if "error" in res:
                notes["gnuradio"] = res["error"]
                gr_python = None
            else:
                gr_runs.append(res)
                say(f"  {res['msps']:.1f} Msamples/s")

    rows: list[dict] = []
    ours_msps = gr_msps = None
    if ours_runs:
        bad = sum(o["lost_samples"] + o["reordered_samples"] + o["corrupt_samples"] + o["receiver_stats"]["dropped"]
                  for o in ours_runs)
        failed = failed or bad != 0
        ours_msps = float(np.median([o["msps"] for o in ours_runs]))
        rows.append(row("mtsc", "link", CHANNEL, None, "msps", round(ours_msps, 3), unit="Msamples/s",
                        lost_samples=sum(o["lost_samples"] for o in ours_runs),
                        reordered_samples=sum(o["reordered_samples"] for o in ours_runs),
                        corrupt_samples=sum(o["corrupt_samples"] for o in ours_runs),
                        dropped_messages=sum(o["receiver_stats"]["dropped"] for o in ours_runs),
                        samples=sum(o["samples"] for o in ours_runs),
                        rounds=[round(o["msps"], 3) for o in ours_runs],
                        best=round(max(o["msps"] for o in ours_runs), 3),
                        seconds=round(sum(o["elapsed_s"] for o in ours_runs), 3),
                        message_samples=n, verified=True))
    gr_version = gr_runs[0]["version"] if gr_runs else None
    if gr_runs:
        gr_msps = float(np.median([g["msps"] for g in gr_runs]))
        rows.append(row("gnuradio", "link", CHANNEL, None, "msps", round(gr_msps, 3), unit="Msamples/s",
                        lost_samples=None, samples=sum(g["samples"] for g in gr_runs),
                        rounds=[round(g["msps"], 3) for g in gr_runs],
                        best=round(max(g["msps"] for g in gr_runs), 3),
                        seconds=round(sum(g["elapsed_s"] for g in gr_runs), 3), verified=False))
    if ours_msps is not None and gr_msps:
        rows.append(row("mtsc", "link", CHANNEL, None, "msps_ratio", round(ours_msps / gr_msps, 3),
                        peer="gnuradio", unit="x",
                        best_ratio=round(max(o["msps"] for o in ours_runs) / max(g["msps"] for g in gr_runs), 3)))
    # CPU seconds (sender + receiver processes, all threads) per 10^9 samples moved: on a shared or
    # loaded machine this says more about efficiency than the rate, which depends on what else runs.
    cpu = {}
    for system, runs in (("mtsc", ours_runs), ("gnuradio", gr_runs)):
        per = [c for c in (_cpu_per_gsample(r) for r in runs) if c is not None]
        if per:
            cpu[system] = float(np.median(per))
            rows.append(row(system, "link", CHANNEL, None, "cpu_s_per_gsample", round(cpu[system], 3),
                            unit="CPU s / 1e9 samples", rounds=[round(c, 3) for c in per]))
    if len(cpu) == 2:
        rows.append(row("mtsc", "link", CHANNEL, None, "cpu_s_per_gsample_ratio",
                        round(cpu["mtsc"] / cpu["gnuradio"], 3), peer="gnuradio", unit="x"))

    meta = run_meta(
        {"seconds": args.seconds, "rounds": args.rounds, "message_samples": n, "hwm": args.hwm, "transport": "tcp://127.0.0.1",
         "mtsc_allocator_tuned": not args.no_tune_allocator,
         "gnuradio_blocks": "null_source -> push_sink | pull_source -> null_sink (defaults)",
         "mtsc_receiver_checks": "length, NaN/inf of every sample, every sample against its index"},
        {}, extra_versions={"gnuradio": gr_version},
    )
    meta["targets"] = {"msps": TARGET_MSPS, "msps_ratio": 1.0}
    meta["notes"] = notes
    if ours_runs:
        meta["receiver_stats"] = [o["receiver_stats"] for o in ours_runs]

    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}))
    else:
        print(f"{'system':<10} {'Msamples/s':>11} {'lost':>6}  rounds (Msamples/s, {args.seconds:g} s each)")
        for r in rows:
            if r["metric"] == "msps":
                print(f"{r['system']:<10} {r['value']:>11.2f} {str(r['lost_samples']):>6}  {r['rounds']}")
        for r in rows:
            if r["metric"] == "msps_ratio":
                print(f"ratio mtsc/gnuradio: {r['value']:.2f}x of medians, {r['best_ratio']:.2f}x of bests (target >= 1x)")
        for r in rows:
            if r["metric"] == "cpu_s_per_gsample":
                print(f"{r['system']:<10} {r['value']:.2f} CPU s per 1e9 samples (sender + receiver)")
            if r["metric"] == "cpu_s_per_gsample_ratio":
                print(f"CPU per sample mtsc/gnuradio: {r['value']:.2f}x (lower is better)")
        if ours_msps is not None:
            print(f"target {TARGET_MSPS} Msamples/s: {'met' if ours_msps >= TARGET_MSPS else 'NOT met'}")
        for k, v in notes.items():
            print(f"{k}: {v}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
