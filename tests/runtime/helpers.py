"""Helpers of the runtime tests that start the project's own processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def cli_argv(*args: str) -> list[str]:
    """The command line of ``mtsc-sdr ARGS...`` under this Python."""
    return [sys.executable, "-m", "mtsc_sdr.cli", *args]


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file written so far; [] while it does not exist."""
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []
