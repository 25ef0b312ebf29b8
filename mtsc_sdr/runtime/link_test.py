"""``mtsc-sdr link-test``: random-payload frames end to end across processes, and what came out.

Processes (each its own OS process, joined by ZeroMQ IQ streams; senders bind, receivers connect)::

    link_tx (frames) --tcp--> channel --tcp--> this process (PHY receiver, statistics)

where the channel is one of

* ``software``: ``mtsc-sdr channel`` (AWGN at ``--snr-db`` plus any impairments given);
* ``gnuradio-sim``: the GNU Radio ``sim_channel`` flowgraph (channel_model, optional fading);
* ``pluto`` / ``usrp``: the ``*_tx`` flowgraph into the radio, over the air or a cable, and the
  ``*_rx`` flowgraph out of it. ``--snr-db`` is then only recorded; the air sets the SNR.

The transmitter draws each payload from ``(seed, seq)`` (:func:`~mtsc_sdr.runtime.link_tx.payload_for`),
so the receiver regenerates it and measures the EVM of the equalised payload. Reported: frames
sent / detected / header OK, EVM (dB), mean SNR estimate vs the set SNR, mean CFO, and throughput
(IQ samples received per second of the session). ``--capture PREFIX`` records the received
stream into the SigMF recording ``PREFIX`` (:mod:`mtsc_sdr.capture`), annotated with every frame
the receiver decoded or dropped. Exit status: 0 when the test ran, 3 when not one
frame came through (the link is down), 2 for a bad configuration, 1 when a process failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from mtsc_sdr.capture.hooks import capture_receiver
from mtsc_sdr.config import check, from_dict, to_dict
from mtsc_sdr.link import IQPull, free_tcp_endpoint
from mtsc_sdr.options import add_dataclass_options, add_json
from mtsc_sdr.phy.rx import Receiver, ReceiverConfig
from mtsc_sdr.process import ChildProcess
from mtsc_sdr.radio.links import LinkConfig, start_link
from mtsc_sdr.report import row, run_meta
from mtsc_sdr.runtime.link_tx import LINK_TEST_SESSION, payload_for

#: How long the receiver waits for the first sample after the transmitter has finished.
FIRST_SAMPLE_TIMEOUT_S = 30.0


@dataclass
class LinkTestConfig(LinkConfig):
    """Everything a link test needs: the link (:class:`~mtsc_sdr.radio.links.LinkConfig`) and the
    frames sent over it. Units in the names; see ``mtsc-sdr link-test --help``."""

    frames: int = 500
    payload_len: int = 256  # complex payload symbols per frame
    gap_samples: int = 500  # zero samples between frames (noise after the channel)
    idle_timeout_s: float = 2.0  # the receiver stops after the transmitter is done and this long idle
    timeout_s: float = 600.0  # whole test
    capture: Optional[str] = None  # record the received stream into this SigMF recording (NAME)

    def validate(self, path: str = "") -> None:
        p = f"{path}." if path else ""
        check(1 <= self.frames <= 65536, p + "frames", f"must be in 1..65536, got {self.frames}")
        check(1 <= self.payload_len <= 16384, p + "payload_len", f"must be in 1..16384, got {self.payload_len}")
        check(self.gap_samples >= 0, p + "gap_samples", "must be >= 0")
        super().validate(path)
        check(self.idle_timeout_s > 0, p + "idle_timeout_s", "must be positive")
        check(self.timeout_s > 0, p + "timeout_s", "must be positive")


# -- receiving and measuring ------------------------------------------------------------------------


@dataclass
class _Tally:
    frames: list = field(default_factory=list)  # RxFrame, header OK, this session, first copy of each seq
    samples: int = 0
    t_first: float | None = None
    t_last: float | None = None


def _receive(cfg: LinkTestConfig, rx_ep: str, tx: ChildProcess, channel: list[ChildProcess],
             progress: bool) -> tuple[_Tally, dict, dict]:
    rx = Receiver(ReceiverConfig(sample_rate_hz=cfg.sample_rate_hz))
    if cfg.capture:
        rx = _capture(cfg, rx)
    tally = _Tally()
    seen: set[int] = set()
    tx_summary: dict | None = None
    t_start = time.monotonic()
    last_data = t_start
    pull = IQPull(rx_ep)
    try:
        while True:
            x = pull.recv(timeout_ms=100)
            now = time.monotonic()
            got = []
            if x is not None:
                tally.t_first = tally.t_first or now
                tally.t_last = last_data = now
                tally.samples += x.size
                got = rx.process(x)
            for f in got:
                if f.header.session_id == LINK_TEST_SESSION and f.header.seq not in seen:
                    seen.add(f.header.seq)
                    tally.frames.append(f)
            if progress and got:
                print(f"\r  received {len(tally.frames)}/{cfg.frames} frames", end="", file=sys.stderr, flush=True)
            for proc in channel:
                proc.check()
            if tx_summary is None and not tx.alive():
                tx_summary = json.loads(tx.communicate(timeout_s=5).strip().splitlines()[-1])
                last_data = max(last_data, now)
            # Done when every frame is in, or the transmitter has finished and the stream has gone
            # quiet. Before the first sample arrives, allow a slow channel (a flowgraph starting
            # on a busy machine) much longer than idle_timeout_s.
            quiet_s = cfg.idle_timeout_s if tally.samples else FIRST_SAMPLE_TIMEOUT_S
            if tx_summary is not None and (len(tally.frames) >= cfg.frames or now - last_data > quiet_s):
                break
            if now - t_start > cfg.timeout_s:
                raise TimeoutError(f"link test did not finish within timeout_s={cfg.timeout_s:g} s "
                                   f"({len(tally.frames)} of {cfg.frames} frames received)")
        for f in rx.flush():
            if f.header.session_id == LINK_TEST_SESSION and f.header.seq not in seen:
                seen.add(f.header.seq)
                tally.frames.append(f)
    except BaseException as exc:
        if cfg.capture:
            rx.close(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        pull.close()
        if progress:
            print(file=sys.stderr)
    if cfg.capture:
        rx.close()
    return tally, dict(rx.stats), {"tx": tx_summary, "iq_stream": pull.stats.as_dict()}


def _capture(cfg: LinkTestConfig, rx):
    """``rx`` recording into ``cfg.capture`` (radio settings recorded where radios carry the link)."""
    radio = cfg.is_radio
    return capture_receiver(
        rx, cfg.capture, source="link-test", frequency_hz=cfg.lo_freq_hz if radio else None,
        hw=f"{cfg.channel} {cfg.radio_args}".strip() if radio else f"{cfg.channel} channel",
        rx_gain_db=cfg.rx_gain_db if radio else None, tx_gain_db=cfg.tx_gain_db if radio else None,
        description=f"link-test over {cfg.channel}: {cfg.frames} frames of {cfg.payload_len} symbols",
        fields={"mtsc:link_test": to_dict(cfg)})


def summarize(cfg: LinkTestConfig, tally: _Tally, rx_stats: dict, frames_sent: int) -> dict[str, Any]:
    """The link test's figures from the received frames (EVM against the regenerated payloads)."""
    err = ref = 0.0
    for f in tally.frames:
        x = payload_for(cfg.seed, f.header.seq, f.header.payload_len)
        err += float(np.sum(np.abs(f.payload - x) ** 2))
        ref += float(np.sum(np.abs(x) ** 2))
    n = len(tally.frames)
    duration = (tally.t_last - tally.t_first) if tally.t_first is not None and tally.t_last > tally.t_first else None
    cfo = float(np.mean([f.cfo for f in tally.frames])) if n else None
    return {
        "frames_sent": frames_sent,
        "frames_detected": int(rx_stats.get("detected", 0)),
        "frames_header_ok": n,
        "header_crc_fail": int(rx_stats.get("header_crc_fail", 0)),
        "evm_db": round(10 * math.log10(err / ref), 2) if n and err > 0 else None,
        "snr_est_db": round(float(np.mean([f.snr_db for f in tally.frames])), 2) if n else None,
        "snr_set_db": cfg.snr_db,
        "cfo_est_norm": cfo,
        "cfo_est_hz": None if cfo is None else round(cfo * cfg.sample_rate_hz, 1),
        "sro_est_ppm": round(float(np.mean([f.sro_ppm for f in tally.frames])), 2) if n else None,
        "samples_received": tally.samples,
        "throughput_msps": round(tally.samples / duration / 1e6, 3) if duration else None,
    }


def run_link_test(cfg: LinkTestConfig, *, progress: bool = False) -> dict[str, Any]:
    """Run one link test; returns the figures plus ``meta``, ``rows`` and ``details``.

    Raises :class:`~mtsc_sdr.process.ProcessFailed` naming a process that died, or the radio layer's error when no
    radio is attached.
    """
    tx_ep, rx_ep = free_tcp_endpoint(), free_tcp_endpoint()
    procs: list[ChildProcess] = []
    try:
        channel = start_link(cfg, tx_ep, rx_ep)
        procs += channel
        tx = ChildProcess("link-test transmitter", [
            sys.executable, "-m", "mtsc_sdr.runtime.link_tx", "--out", tx_ep, "--frames", str(cfg.frames),
            "--payload-len", str(cfg.payload_len), "--gap", str(cfg.gap_samples), "--seed", str(cfg.seed)],
            stdout="capture")
        procs.append(tx.start())
        tally, rx_stats, details = _receive(cfg, rx_ep, tx, channel, progress)
    finally:
        for proc in reversed(procs):
            proc.stop()
    result = summarize(cfg, tally, rx_stats, details["tx"]["frames_sent"])
    details["receiver"] = rx_stats
    result["details"] = details
    result["meta"] = run_meta(to_dict(cfg), {"link_test": cfg.seed})
    sent = max(result["frames_sent"], 1)
    figures = [("detected_ratio", result["frames_detected"] / sent, None),
               ("header_ok_ratio", result["frames_header_ok"] / sent, None),
               ("evm_db", result["evm_db"], "dB"), ("snr_est_db", result["snr_est_db"], "dB"),
               ("msps", result["throughput_msps"], "Msamples/s")]
    result["rows"] = [row("mtsc", "link", cfg.channel, cfg.snr_db, metric, value, **({"unit": unit} if unit else {}))
                      for metric, value, unit in figures]
    return result


# -- command line ---------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = LinkTestConfig()
    link = [f.name for f in dataclasses.fields(LinkConfig)]
    add_dataclass_options(p, LinkConfig, link[:3])              # --channel, --snr-db, --seed
    p.add_argument("--frames", type=int, default=d.frames)
    p.add_argument("--payload-len", type=int, default=d.payload_len, help="complex payload symbols per frame")
    p.add_argument("--gap-samples", type=int, default=d.gap_samples, help="noise samples between frames")
    add_dataclass_options(p, LinkConfig, link[3:])              # impairments, profile, radio settings
    p.add_argument("--timeout-s", type=float, default=d.timeout_s)
    p.add_argument("--capture", metavar="PREFIX",
                   help="record the received stream into the SigMF recording PREFIX (.sigmf-meta + .sigmf-data)")
    add_json(p, help="print one JSON object instead of the table")


def config_from_args(args: argparse.Namespace) -> LinkTestConfig:
    names = [f for f in LinkTestConfig.__dataclass_fields__ if hasattr(args, f)]
    return from_dict(LinkTestConfig, {n: getattr(args, n) for n in names if getattr(args, n) is not None})


def format_table(r: dict[str, Any], cfg: LinkTestConfig) -> str:
    sent = max(r["frames_sent"], 1)

    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)

    lines = [
        f"link-test over {cfg.channel}: {cfg.frames} frames of {cfg.payload_len} symbols, SNR set {cfg.snr_db:g} dB",
        f"  frames sent      {r['frames_sent']}",
        f"  frames detected  {r['frames_detected']} ({100 * r['frames_detected'] / sent:.1f}%)",
        f"  header OK        {r['frames_header_ok']} ({100 * r['frames_header_ok'] / sent:.1f}%)"
        f"   CRC failures {r['header_crc_fail']}",
        f"  EVM              {fmt(r['evm_db'], '.2f')} dB",
        f"  SNR estimate     {fmt(r['snr_est_db'], '.2f')} dB (set {r['snr_set_db']:g} dB)",
        f"  CFO estimate     {fmt(r['cfo_est_hz'], '+.1f')} Hz",
        f"  throughput       {fmt(r['throughput_msps'], '.3f')} Msamples/s",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        result = run_link_test(cfg, progress=not args.json and sys.stderr.isatty())
    except (RuntimeError, TimeoutError) as exc:  # a process died, no radio, no GNU Radio, timeout
        print(f"mtsc-sdr link-test: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(format_table(result, cfg))
    return 0 if result["frames_header_ok"] > 0 else 3
