"""``mtsc-sdr channel``: the software channel as a process between two ZeroMQ IQ streams.

Reads complex64 samples from ``--in`` (connects a PULL socket to the upstream sender, which binds,
as with GNU Radio's ``pull_source``), applies the impairments, and sends the result out of
``--out`` (binds a PUSH socket for the downstream receiver, as GNU Radio's ``push_sink`` does).
Impairments come from ``--profile FILE`` (a :class:`~mtsc_sdr.channel.profile.ChannelProfile` YAML,
or a calibration record: :func:`~mtsc_sdr.radio.calibration.load_impairment_profile`) and/or the command-line
options, which override the profile. Malformed input messages are counted and dropped by the
stream (:mod:`mtsc_sdr.link.iq`). Runs until SIGINT/SIGTERM, then prints a one-line JSON summary
(samples in/out, dropped messages, samples still held for the receiver) to stderr.

A downstream receiver that takes nothing (not started yet, dead, or stuck) is reported, not waited
on in silence: every ``--stall-report-s`` seconds without progress the channel prints a
``channel_stall`` JSON line to stderr with what is in flight (samples of the current block not yet
sent, the messages ZeroMQ may hold, totals so far). It keeps the samples and goes on trying, so a
receiver that comes back gets the stream where it stopped; meanwhile it pulls nothing more, and the
upstream sender sees the back-pressure.

Beyond loopback (:mod:`mtsc_sdr.link.security`): an ``--out`` that is not a loopback address needs
``--curve-keys`` (the base station then connects with ``--curve-server-key``) or ``--insecure``;
``--curve-server-key`` makes ``--in`` a CURVE connection to an upstream sender that has keys.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import time
import typing

from mtsc_sdr.channel.profile import ChannelProfile, build_channel
from mtsc_sdr.link import IQPull, IQPush, IQSendTimeout
from mtsc_sdr.link.security import add_security_arguments, security_from_args
from mtsc_sdr.options import add_seed, option_kwargs
from mtsc_sdr.radio.calibration import load_impairment_profile
from mtsc_sdr.radio.links import LinkConfig

log = logging.getLogger("mtsc_sdr.channel")

# the channel's own impairment options (not link settings): option -> (profile override key, type, help)
_OPTIONS: dict[str, tuple[str, type, str]] = {
    "--coherence-samples": ("coherence_samples", int, "block fading: samples per constant gain"),
    "--delay-samples": ("delay_samples", float, "timing offset, samples (fractional allowed)"),
    "--linewidth-hz": ("linewidth_hz", float, "phase noise 3-dB linewidth, Hz"),
}


def _link_impairments() -> dict[str, tuple[str, type, str]]:
    """The link settings the channel takes as options overriding its profile (:class:`LinkConfig`
    fields marked ``impairment``), in the form of :data:`_OPTIONS`; type and help from the field."""
    hints = typing.get_type_hints(LinkConfig)
    return {f.metadata["channel"]: (f.metadata["channel"][2:].replace("-", "_"),
                                    option_kwargs(hints[f.name]).get("type", str), f.metadata["help"])
            for f in dataclasses.fields(LinkConfig) if f.metadata["impairment"]}


def _impairment_options() -> dict[str, tuple[str, type, str]]:
    return {**_link_impairments(), **_OPTIONS}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="in_endpoint", required=True, metavar="ENDPOINT",
                   help="upstream sample stream to connect to, e.g. tcp://127.0.0.1:5555")
    p.add_argument("--out", dest="out_endpoint", required=True, metavar="ENDPOINT",
                   help="endpoint to bind for the downstream receiver, e.g. tcp://127.0.0.1:5556")
    p.add_argument("--profile", metavar="FILE", help="channel profile YAML (impairments), or a calibration "
                   "record (calibration/*.yaml, or calibration:FILE)")
    for flag, (_, typ, help_text) in _impairment_options().items():
        p.add_argument(flag, type=typ, help=help_text)
    p.add_argument("--rayleigh", action="store_true", help="block fading is Rayleigh (K = 0)")
    add_seed(p, 0, help="seed of every random impairment (default 0)")
    p.add_argument("--stall-report-s", type=float, default=5.0, metavar="S",
                   help="report a downstream receiver that takes no samples for this long (default 5)")
    add_security_arguments(p, binds="--out", connects="--in")


def profile_from_args(args: argparse.Namespace) -> ChannelProfile:
    """The profile file (if any) with the command-line options applied on top."""
    profile = load_impairment_profile(args.profile) if args.profile else ChannelProfile()
    overrides = {key: getattr(args, flag[2:].replace("-", "_"))
                 for flag, (key, _, _) in _impairment_options().items()
                 if getattr(args, flag[2:].replace("-", "_")) is not None}
    if args.rayleigh:
        overrides["fading.kind"] = "rayleigh"
    return profile.override(overrides) if overrides else profile


class _Downstream:
    """The PUSH side of the channel: sends whole blocks, however long the receiver takes, and
    reports each ``stall_s`` without progress (see the module docstring)."""

    def __init__(self, push: IQPush, stall_s: float, totals: typing.Callable[[], dict]):
        self.push, self.stall_s, self.totals = push, stall_s, totals
        self.samples_out = 0
        self.held = 0                     # samples of the block being sent that have not gone out

    def send(self, y) -> None:
        """Send complex64 samples ``y`` (1-D); returns once all went out (SIGINT/SIGTERM interrupt)."""
        done, stalled_s = 0, 0.0
        while done < y.size:
            self.held = y.size - done
            try:
                self.push.send(y[done:], copy=False)
            except IQSendTimeout as exc:
                done += exc.samples_sent
                self.samples_out += exc.samples_sent
                stalled_s = stalled_s + self.stall_s if exc.samples_sent == 0 else self.stall_s
                self.held = y.size - done
                print(json.dumps({"channel_stall": {
                    "receiver": self.push.endpoint, "seconds_without_progress": round(stalled_s, 3),
                    "samples_held": self.held, "messages_queued_at_most": self.push.hwm,
                    **self.totals(), "samples_out": self.samples_out}}), file=sys.stderr, flush=True)
                continue
            self.samples_out += y.size - done
            done = y.size
            if stalled_s:
                log.warning("channel: the receiver at %s takes samples again", self.push.endpoint)
        self.held = 0


def run(args: argparse.Namespace) -> int:
    try:
        security = security_from_args(args)
    except (ValueError, OSError) as exc:
        print(f"mtsc-sdr channel: {exc}", file=sys.stderr)
        return 2
    if not args.stall_report_s > 0:
        print(f"mtsc-sdr channel: --stall-report-s must be > 0, got {args.stall_report_s}", file=sys.stderr)
        return 2
    profile = profile_from_args(args)
    channel = build_channel(profile, args.seed)
    log.info("channel %s -> %s: %s", args.in_endpoint, args.out_endpoint, channel)

    def _stop(signum, frame):  # SIGTERM ends the loop like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        push = IQPush(args.out_endpoint, send_timeout_ms=max(1, int(round(1e3 * args.stall_report_s))),
                      curve=security.server, insecure=security.insecure)
    except ValueError as exc:                 # NonLoopbackBindError: says how to fix it
        print(f"mtsc-sdr channel: {exc}", file=sys.stderr)
        return 2
    pull = IQPull(args.in_endpoint, curve=security.client)
    downstream = _Downstream(push, args.stall_report_s, lambda: {"samples_in": pull.stats.samples})
    t0 = time.monotonic()
    try:
        while True:
            x = pull.recv(timeout_ms=500)
            if x is None:
                continue
            y = channel(x)
            if y.size:
                downstream.send(y)
    except KeyboardInterrupt:
        pass
    finally:
        summary = {"samples_in": pull.stats.samples, "samples_out": downstream.samples_out,
                   "samples_held": downstream.held, "dropped": pull.stats.as_dict(),
                   "seconds": round(time.monotonic() - t0, 3)}
        print(json.dumps({"channel_summary": summary}), file=sys.stderr, flush=True)
        pull.close()
        push.close(linger_ms=0)
    return 0
