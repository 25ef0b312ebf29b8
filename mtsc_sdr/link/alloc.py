"""Opt-in allocator tuning for processes that stream MiB-sized messages.

libzmq allocates every received message with ``malloc`` and numpy every fresh array. glibc serves
allocations of more than 128 KiB (a threshold that adapts, up to 32 MiB) with ``mmap`` and gives
freed memory back to the kernel once the free space at the top of the heap exceeds the trim
threshold, so a stream of 1 MiB messages can fault in fresh pages for most messages. Fixing both
thresholds above the message size keeps those buffers in the heap and reuses them: on loopback
this saved about a fifth of the CPU per sample of an IQ link in our measurements
(``benchmarks/zmq_throughput.py``). The price is that the process keeps its peak heap (about the
high-water marks times the message size) instead of returning it.

It changes process-wide settings, so the library never calls it by itself: a streaming process
(the software channel, the benchmark's sender and receiver) calls :func:`tune_allocator_for_streaming`
once at start-up. It is a no-op returning False where glibc's ``mallopt`` is not available.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("mtsc_sdr.link")

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit (HEAP_MAX_SIZE / 2)


def tune_allocator_for_streaming(message_bytes: int = 1 << 20) -> bool:
    """Keep buffers up to ``8 x message_bytes`` (at most 32 MiB) in the heap; True when applied."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mmap_threshold = int(min(_MMAP_THRESHOLD_MAX, max(1 << 20, 8 * int(message_bytes))))
    trim_threshold = 8 * mmap_threshold
    ok = mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1 and mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1
    if ok:
        log.debug("malloc tuned for streaming: mmap threshold %d, trim threshold %d", mmap_threshold, trim_threshold)
    return ok
