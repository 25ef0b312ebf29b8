"""Run metadata, tidy result rows and latency percentiles: the one report schema of DESIGN.md.

Every ``--json`` output is one object ``{"meta": {...}, "rows": [...]}`` (commands may add keys of
their own beside these two). ``meta`` records the configuration, seeds, versions, machine and
threads; each row is ``{"system", "task", "channel", "snr_db", "metric", "value"}`` plus optional
keys such as ``unit``, ``stage``, ``precision`` or ``peer``.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
import sys
from importlib import metadata
from typing import Any, Iterable

import numpy as np

_PACKAGES = ("mtsc-sdr", "numpy", "scipy", "pyzmq", "torch")

#: The percentiles every latency report gives.
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0}


def versions(extra: dict[str, str | None] | None = None) -> dict[str, str | None]:
    """Python and package versions (None for a package that is not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out.update(extra or {})
    return out


def machine() -> dict[str, Any]:
    """What ran it: OS, CPU, cores, the thread settings that change speed and, on a Jetson, the
    power mode (:func:`power_mode`)."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                     "OPENBLAS_NUM_THREADS")},
        "power_mode": power_mode(),
        "argv": sys.argv,
    }


def parse_nvpmodel(text: str) -> dict[str, Any] | None:
    """``nvpmodel -q`` output (``NV Power Mode: 15W`` then the mode id on its own line) ->
    ``{"name", "id"}``; None when it does not say."""
    name, mode_id = None, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("NV Power Mode:"):
            name = line.split(":", 1)[1].strip()
        elif line.isdigit() and name is not None and mode_id is None:
            mode_id = int(line)
    return None if name is None else {"name": name, "id": mode_id}


def power_mode() -> dict[str, Any] | None:
    """A Jetson's power mode from ``nvpmodel -q`` (None elsewhere, or when it cannot be read):
    latency figures mean little without it."""
    import shutil
    import subprocess

    if shutil.which("nvpmodel") is None:
        return None
    try:
        done = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_nvpmodel(done.stdout)


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB: Linux's ``VmHWM`` (the high-water mark of this
    program's own memory), else ``ru_maxrss``. Not ``ru_maxrss`` first: on Linux it carries the
    parent's resident size at fork across ``exec``, so a child started by a large process (a
    benchmark that holds models) reported the parent's size, not its own."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024.0, 1)        # kB
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def git_commit() -> str | None:
    """The commit of the checkout this package runs from (with ``-dirty`` when it has uncommitted
    changes), or None outside a git checkout or without git."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def run_meta(config: dict[str, Any], seeds: dict[str, int], *,
             extra_versions: dict[str, str | None] | None = None) -> dict[str, Any]:
    """The ``meta`` object of a report."""
    return {
        "config": config,
        "seeds": seeds,
        "versions": versions(extra_versions),
        "machine": machine(),
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def row(system: str, task: str, channel: str, snr_db: float | None, metric: str, value: float | int | None,
        **extra: Any) -> dict[str, Any]:
    """One tidy result record."""
    return {"system": system, "task": task, "channel": channel, "snr_db": snr_db,
            "metric": metric, "value": value, **extra}


def percentiles(values_ms: Iterable[float]) -> dict[str, float | None]:
    """``{"p50", "p90", "p99"}`` of the values (linear interpolation between order statistics,
    numpy's default), rounded to microseconds; all None for no values."""
    v = np.asarray([x for x in values_ms if x is not None], dtype=float)
    if v.size == 0:
        return dict.fromkeys(PERCENTILES)
    return {k: round(float(np.percentile(v, q)), 3) for k, q in PERCENTILES.items()}
