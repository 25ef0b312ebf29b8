"""``mtsc-sdr flowgraph``: launch a GNU Radio flowgraph in the foreground, or list / recompile them.

    mtsc-sdr flowgraph --list                      # every flowgraph and its parameters
    mtsc-sdr flowgraph sim_channel --snr-db 20 --seed 1 --in-addr tcp://127.0.0.1:5555
    mtsc-sdr flowgraph pluto_rx --uri ip:192.168.2.1 --rx-gain-db 40 --python ~/radioconda/bin/python
    mtsc-sdr flowgraph --compile                   # regenerate flowgraphs/*.py from the .grc files

Parameters after NAME are the flowgraph's own (``--snr-db 20``, ``--snr_db 20`` and ``--snr-db=20``
all work); unknown ones are an error that names them. The flowgraph runs under a Python that has
GNU Radio (found automatically; ``--python`` or ``MTSC_GR_PYTHON`` choose one), its output is
copied to stderr, and it runs until Ctrl-C / SIGTERM (then it is stopped cleanly and the command
exits 0) or until it exits by itself (a failure exits non-zero with its last output lines).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from mtsc_sdr.link.endpoints import NonLoopbackBindError
from mtsc_sdr.options import add_json

from .flowgraph import (
    FLOWGRAPHS,
    Flowgraph,
    FlowgraphError,
    FlowgraphFailed,
    FlowgraphParamError,
    compile_grc,
    describe,
    flowgraph_dir,
    split_param_args,
)
from .grpython import GnuRadioNotFound

# Launcher options that may also appear after NAME (if the flowgraph has no parameter of that name).
_VALUE_OPTIONS = ("python", "startup-timeout-s", "stop-timeout-s")
_FLAG_OPTIONS = ("list", "json", "quiet", "insecure")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (p.description or "") + (
        ". Parameters after NAME go to the flowgraph (see --list); Ctrl-C stops it cleanly.")
    p.add_argument("--list", action="store_true", help="list the flowgraphs (or NAME) and their parameters")
    add_json(p, help="with --list: one JSON object")
    p.add_argument("--compile", action="store_true",
                   help="regenerate the Python of every flowgraph (or NAME) from its .grc with grcc")
    p.add_argument("--python", metavar="PATH", help="Python interpreter with GNU Radio (default: found "
                   "automatically; MTSC_GR_PYTHON also sets it)")
    p.add_argument("--startup-timeout-s", type=float, default=30.0, metavar="S",
                   help="how long to wait for the flowgraph to report it is running (default 30)")
    p.add_argument("--stop-timeout-s", type=float, default=5.0, metavar="S",
                   help="how long to wait after SIGINT, then SIGTERM, before escalating (default 5)")
    p.add_argument("--quiet", action="store_true",
                   help="do not copy the flowgraph's output to stderr (a failure still shows its tail)")
    p.add_argument("--insecure", action="store_true",
                   help="let the flowgraph bind its ZeroMQ outputs beyond loopback: gr-zeromq has no CURVE, so the "
                        "samples go unauthenticated and in clear (refused without this flag)")
    p.add_argument("name", nargs="?", metavar="NAME", help="flowgraph: " + ", ".join(_known_names()))
    p.add_argument("params", nargs=argparse.REMAINDER, metavar="--param VALUE",
                   help="flowgraph parameters, e.g. --snr-db 20 --seed 1")


def _known_names() -> list[str]:
    try:
        return list(FLOWGRAPHS)
    except Exception:  # noqa: BLE001 - help text must not fail
        return []


def _take_launcher_options(args: argparse.Namespace, tokens: list[str], params: set[str]) -> list[str]:
    """Move launcher options written after NAME (``--python X``, ``--list``) into ``args``."""
    rest: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        key, _, inline = token[2:].partition("=") if token.startswith("--") else ("", "", "")
        norm = key.replace("_", "-")
        if norm in _FLAG_OPTIONS and not inline and norm.replace("-", "_") not in params:
            setattr(args, norm.replace("-", "_"), True)
            i += 1
            continue
        if norm in _VALUE_OPTIONS and norm.replace("-", "_") not in params:
            if inline:
                value, i = inline, i + 1
            elif i + 1 < len(tokens):
                value, i = tokens[i + 1], i + 2
            else:
                raise FlowgraphParamError(f"{token} needs a value")
            attr = norm.replace("-", "_")
            try:
                setattr(args, attr, value if attr == "python" else float(value))
            except ValueError:
                raise FlowgraphParamError(f"--{norm}: expected a number, got {value!r}") from None
            continue
        rest.append(token)
        i += 1
    return rest


def _list(names: list[str], as_json: bool) -> int:
    if as_json:
        out = {
            name: {
                "title": FLOWGRAPHS[name].title,
                "description": FLOWGRAPHS[name].description,
                "grc": str(FLOWGRAPHS[name].grc),
                "script": str(FLOWGRAPHS[name].script),
                "binds": list(FLOWGRAPHS[name].binds),
                "connects": list(FLOWGRAPHS[name].connects),
                "params": {p.name: {"option": p.option, "type": p.type, "default": p.default, "label": p.label}
                           for p in FLOWGRAPHS[name].params.values()},
            }
            for name in names
        }
        print(json.dumps(out, indent=2))
    else:
        print("\n\n".join(describe(FLOWGRAPHS[name]) for name in names))
    return 0


def _compile(names: list[str], python: str | None) -> int:
    for name in names:
        spec = FLOWGRAPHS[name]
        try:
            script = compile_grc(spec.grc, spec.grc.parent, python=python)
        except FlowgraphError as exc:
            _error(str(exc))
            return 1
        print(f"{spec.grc} -> {script}")
    return 0


def _error(message: str) -> None:
    print(f"mtsc-sdr flowgraph: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except FlowgraphFailed as exc:
        _error(str(exc))
        return exc.returncode or 1
    except (FlowgraphError, NonLoopbackBindError) as exc:  # unknown flowgraph or parameter, bad value, bind refused
        _error(f"error: {exc}")
        return 2
    except GnuRadioNotFound as exc:
        _error(str(exc))
        return 1


def _run(args: argparse.Namespace) -> int:
    tokens = list(args.params or [])
    if args.name is not None and args.name.startswith("-"):  # e.g. "mtsc-sdr flowgraph --snr-db 3"
        raise FlowgraphParamError(f"give the flowgraph's NAME before its parameters (got {args.name!r})")
    spec = FLOWGRAPHS[args.name] if args.name else None
    tokens = _take_launcher_options(args, tokens, set(spec.params) if spec else set())
    names = [spec.name] if spec else list(FLOWGRAPHS)
    if args.compile:
        return _compile(names, args.python)
    if args.list or spec is None:
        if spec is None and not args.list:
            _error(f"no flowgraph NAME given; the flowgraphs in {flowgraph_dir()} are:\n")
            _list(names, False)
            return 2
        return _list(names, args.json)

    params = split_param_args(tokens)
    fg = Flowgraph(spec.name, params, python=args.python, echo=None if args.quiet else sys.stderr,
                   startup_timeout_s=args.startup_timeout_s, stop_timeout_s=args.stop_timeout_s,
                   insecure=args.insecure)

    def _terminate(signum: int, frame: object) -> None:  # SIGTERM stops it like Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        try:
            fg.start()
        except FlowgraphFailed as exc:
            if args.quiet:
                _error(str(exc))
            else:  # its output is already above
                _error(exc.summary)
            return exc.returncode or 1
        print(f"mtsc-sdr flowgraph: {spec.name} running (pid {fg.pid}); Ctrl-C stops it", file=sys.stderr)
        code = None
        while code is None:
            code = fg.wait(0.5)
        if code != 0:
            try:
                fg.check()
            except FlowgraphFailed as exc:
                _error(str(exc) if args.quiet else exc.summary)
            return code if code > 0 else 1
        print(f"mtsc-sdr flowgraph: {spec.name} finished", file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        code = fg.stop()
        if code == 0:
            print(f"mtsc-sdr flowgraph: {spec.name} stopped", file=sys.stderr)
            return 0
        _error(f"{spec.name} did not stop cleanly (exit code {code})"
               + (f"; last output:\n{fg.output_tail()}" if args.quiet else ""))
        return 1
    finally:
        fg.stop()
        signal.signal(signal.SIGTERM, previous)
