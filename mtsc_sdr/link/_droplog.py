"""Rate-limited log lines for dropped input: every drop is counted, the first few per reason are
logged in full, then one line per ``every`` drops, so a misbehaving peer cannot flood the log."""

from __future__ import annotations

import logging
from collections import Counter


class DropLog:
    def __init__(self, logger: logging.Logger, what: str, *, first: int = 20, every: int = 1000) -> None:
        self._log = logger
        self._what = what
        self._first = first
        self._every = every
        self._counts: Counter[str] = Counter()

    def drop(self, reason: str, detail: str) -> None:
        self._counts[reason] += 1
        n = self._counts[reason]
        if n <= self._first or n % self._every == 0:
            self._log.warning("%s: dropped a message (%s, #%d): %s", self._what, reason, n, detail)
