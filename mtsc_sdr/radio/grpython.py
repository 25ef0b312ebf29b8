"""Find a Python interpreter that has GNU Radio's bindings.

``mtsc_sdr`` never imports ``gnuradio`` itself: flowgraphs run as subprocesses under whichever
Python has it (Debian's ``/usr/bin/python3``, a radioconda environment, ...), so the project's own
virtual environment keeps its own numpy.

Search order: the ``MTSC_GR_PYTHON`` environment variable (an explicit choice is never second-
guessed: if it lacks GNU Radio that is an error), then ``/usr/bin/python3``, ``/usr/local/bin/python3``,
radioconda's default location, and ``python3`` on ``PATH``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

ENV_VAR = "MTSC_GR_PYTHON"
INSTALL_HINT = (
    "GNU Radio 3.10 was not found. On Debian/Ubuntu install it with `sudo apt-get install gnuradio` "
    "(it brings gr-zeromq, gr-iio, gr-uhd and grcc); with conda use radioconda. To use a specific "
    f"interpreter set {ENV_VAR}=/path/to/python."
)


class GnuRadioNotFound(RuntimeError):
    """No Python with GNU Radio could be found; the message says how to install it."""


def _candidates() -> list[str]:
    found = ["/usr/bin/python3", "/usr/local/bin/python3", str(Path.home() / "radioconda/bin/python")]
    on_path = shutil.which("python3")
    if on_path:
        found.append(on_path)
    return list(dict.fromkeys(found))


def gr_version(python: str) -> str | None:
    """GNU Radio version string under ``python``, or None when it has no GNU Radio."""
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        return None
    try:
        out = subprocess.run(
            [python, "-c", "from gnuradio import gr; print(gr.version())"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def find_gr_python() -> str | None:
    """Path of a Python with GNU Radio, or None. Honors ``MTSC_GR_PYTHON`` first."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return explicit if gr_version(explicit) else None
    for python in _candidates():
        if gr_version(python):
            return python
    return None


def require_gr_python() -> str:
    """Like :func:`find_gr_python` but raises :class:`GnuRadioNotFound` with install instructions."""
    python = find_gr_python()
    if python is None:
        explicit = os.environ.get(ENV_VAR)
        where = f"{ENV_VAR}={explicit}" if explicit else ", ".join(_candidates())
        raise GnuRadioNotFound(f"{INSTALL_HINT} Looked in: {where}.")
    return python
