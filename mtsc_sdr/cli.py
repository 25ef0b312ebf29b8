"""The ``mtsc-sdr`` command line. Each subcommand is thin: it parses arguments and delegates.

Subcommand modules are imported only when their command runs, so ``mtsc-sdr --help`` and the
channel process start fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading

from mtsc_sdr.config import ConfigError

# name -> (module that defines ``add_arguments(parser)`` and ``run(args) -> int``, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "channel": ("mtsc_sdr.runtime.channel", "run the software channel between two ZeroMQ IQ streams"),
    "flowgraph": ("mtsc_sdr.radio.cli", "launch a GNU Radio flowgraph (sim channel, Pluto, USRP)"),
    "radios": ("mtsc_sdr.radio.radios_cli", "list the PlutoSDRs and USRPs this machine can reach, and what was searched"),
    "link-test": ("mtsc_sdr.runtime.link_test", "send frames end to end across processes and report the link"),
    "demo": ("mtsc_sdr.runtime.demo", "run every task with the shipped model (nothing is trained) across processes "
                                       "over the software channel and the GNU Radio sim flowgraph, SNR -5..20 dB, "
                                       "beside the separate-coding baseline; print tables, write plots"),
    "train": ("mtsc_sdr.train.cli", "train the MTSC model over the differentiable channel (phase I)"),
    "release": ("mtsc_sdr.train.release", "turn a finished training run into a shipped model directory with its model card"),
    "eval": ("mtsc_sdr.runtime.evaluate", "evaluate a checkpoint per task and SNR against the baselines"),
    "bs": ("mtsc_sdr.runtime.bs", "run the base station: PHY receiver, JSC and LAM decoders, downlink"),
    "client": ("mtsc_sdr.runtime.client", "run a client: encode items, stream IQ, decode the answers"),
    "run": ("mtsc_sdr.runtime.run", "run base station, channel and clients as processes; write a report"),
    "send": ("mtsc_sdr.runtime.send", "send your own image, audio or video through the split system; print the answer"),
    "compress": ("mtsc_sdr.compress.cli", "make, measure and choose compressed clients (quantization, pruning, "
                                          "distillation; ONNX Runtime, TensorRT) per device"),
    "finetune": ("mtsc_sdr.finetune.run", "federated split fine-tuning over the link: a training base station, one "
                                          "link per client, Flower rounds (simulation engine); write a report"),
    "bench": ("mtsc_sdr.bench.cli", "measure latency per stage, throughput, memory and weight bytes"),
    "replay": ("mtsc_sdr.runtime.replay", "feed a SigMF recording into a base station as if live; decode it again"),
    "kb": ("mtsc_sdr.rag.cli", "build and query a knowledge base (documents in SQLite, vectors in faiss)"),
    "keys": ("mtsc_sdr.link.cli", "create and list CURVE key pairs and manage the allow-list of client keys: what "
                                  "bs, channel and client take to bind beyond loopback (else they need --insecure)"),
    "calibrate": ("mtsc_sdr.radio.calibrate", "measure a radio pair (CFO, noise, gain -> SNR, DC, IQ) into calibration/"),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="mtsc-sdr",
        description="Multi-task semantic communication testbed over software-defined radios.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers = {}
    for name, (_, help_text) in COMMANDS.items():
        subparsers[name] = sub.add_parser(name, help=help_text, description=help_text)
    return parser, subparsers


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if threading.current_thread() is threading.main_thread():
        # A process started in the background by a non-interactive shell inherits SIGINT ignored,
        # and Python then installs no KeyboardInterrupt handler: Ctrl-C / SIGINT from an
        # orchestrator would do nothing. Every command stops on SIGINT, so ask for it explicitly.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    parser, subparsers = build_parser()
    # Add only the chosen command's arguments (its module is imported only then), before parsing,
    # so `mtsc-sdr COMMAND --help` shows them.
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        args = parser.parse_args(argv)  # prints help / "invalid choice" and exits
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    module.add_arguments(subparsers[command])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(module.run(args) or 0)
    except ConfigError as exc:
        print(f"mtsc-sdr {command}: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mtsc-sdr {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
