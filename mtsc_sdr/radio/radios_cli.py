"""``mtsc-sdr radios``: the PlutoSDRs and USRPs this machine can reach, and what was searched.

    mtsc-sdr radios                  # one line per radio; "no USRP found; searched: ..." otherwise
    mtsc-sdr radios --json           # {"pluto": {"found": [...], "searched": [...], "summary": "..."}, "usrp": {...}}
    mtsc-sdr radios --timeout-s 2    # bound on each search, seconds

Each radio line gives the kind, the address to pass on (``--uri`` / ``device_args`` / ``open_radio``),
the serial number where a search reports one, the description and the search that found it.
Nothing is opened or configured (:mod:`mtsc_sdr.radio.discovery`); the exit status is 0 whether or
not a radio was found.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any, Optional

from mtsc_sdr.options import add_json

from . import discovery


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_json(p, help="print one JSON object: per kind, the radios and the searches")
    p.add_argument("--timeout-s", type=float, default=5.0, metavar="S",
                   help="bound on each search in seconds (default 5)")


def list_radios(timeout_s: float = 5.0, env: Optional[discovery.SearchEnv] = None) -> dict[str, Any]:
    """``{kind: {"found": [FoundRadio as dict], "searched": [one line per search], "summary": str}}``
    for every kind of :data:`~mtsc_sdr.radio.discovery.KINDS`."""
    report = {}
    for kind in discovery.KINDS:
        if sys.stderr.isatty():
            print(f"searching for {kind} radios ...", file=sys.stderr)
        found = discovery.find_radios(kind, timeout_s=timeout_s, env=env)
        report[kind] = {"found": [dataclasses.asdict(r) for r in found], "searched": list(found.searched),
                        "summary": found.summary()}
    return report


def format_report(report: dict[str, Any]) -> str:
    """One line per radio (``pluto  usb:1.4.5  serial 1044...  PlutoSDR ...  (found by iio_info)``),
    or the search summary of a kind with none."""
    lines = []
    for kind, entry in report.items():
        if not entry["found"]:
            lines.append(entry["summary"])
        for r in entry["found"]:
            serial = f"  serial {r['serial']}" if r.get("serial") else ""
            lines.append(f"{kind:<6} {r['address']}{serial}  {r['description']}  (found by {r['source']})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    report = list_radios(timeout_s=args.timeout_s)
    print(json.dumps(report) if args.json else format_report(report))
    return 0
