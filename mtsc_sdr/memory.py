"""Jetson system memory from ``tegrastats`` (a process's own peak: :func:`mtsc_sdr.report.peak_rss_mb`).

On a Jetson the GPU shares the system RAM, so a process's RSS misses what the GPU driver holds;
``tegrastats`` reports the board's RAM in use (``RAM 2270/7620MB``), which is what matters there.
:class:`TegraStats` samples it in the background while something runs and keeps the peak; the
bench (``mtsc-sdr bench``) and the compressed clients' memory probe (:mod:`mtsc_sdr.compress.measure`)
use it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from typing import Optional

_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")


def parse_tegrastats(line: str) -> Optional[tuple[int, int]]:
    """``(used_mb, total_mb)`` of the RAM field of one tegrastats line, or None if absent."""
    m = _RAM.search(line)
    return (int(m.group(1)), int(m.group(2))) if m else None


class TegraStats:
    """Background ``tegrastats --interval MS`` sampler; ``peak_used_mb`` and ``total_mb`` after use.

    ``TegraStats.available()`` says whether the tool is on this machine (it is on every JetPack).
    """

    def __init__(self, interval_ms: int = 100, command: str = "tegrastats"):
        self.command, self.interval_ms = command, int(interval_ms)
        self.peak_used_mb: Optional[int] = None
        self.total_mb: Optional[int] = None
        self.samples = 0
        self._proc: Optional[subprocess.Popen] = None
        self._thread: Optional[threading.Thread] = None

    @staticmethod
    def available(command: str = "tegrastats") -> bool:
        return shutil.which(command) is not None

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            got = parse_tegrastats(line)
            if got:
                used, total = got
                self.samples += 1
                self.total_mb = total
                self.peak_used_mb = used if self.peak_used_mb is None else max(self.peak_used_mb, used)

    def __enter__(self) -> "TegraStats":
        self._proc = subprocess.Popen([self.command, "--interval", str(self.interval_ms)], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=2)
