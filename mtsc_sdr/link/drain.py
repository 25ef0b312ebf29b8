"""Draining IQ streams into bounded queues, so that a slow consumer drops samples instead of
blocking the sender.

ZeroMQ PUSH/PULL never drops: when a receiver falls behind, messages pile up to the high-water
marks and then the sender blocks (:mod:`.iq`). For a radio's RX flowgraph or a software channel
that stands for one, a blocked sender backs the real-time stream up into the radio, which then
overflows where nobody counts it. :class:`IQDrain` moves the decision to the receiving end:

* one reader thread reads every :class:`~.iq.IQPull` it is given as fast as messages arrive
  (ZeroMQ's own queues stay near empty, so the sender is never held up by a slow consumer);
* each stream's chunks wait in their own queue, bounded in samples (``max_queued_samples``);
* when a chunk would overflow its stream's queue, the **oldest** chunks of that stream are dropped
  until it fits: what is kept is the freshest signal, and the queue never holds more than
  ``max_queued_samples`` of a stream (plus the one arriving chunk when that alone is larger);
* every drop is counted per stream (``chunks_dropped``, ``samples_dropped``) and logged at most
  once per :data:`LOG_EVERY_S` seconds with the counts since the last line;
* the consumer learns of the hole: the next chunk it takes from that stream comes with
  ``gap=True`` (a receiver then ends the stream before it, :meth:`~mtsc_sdr.phy.rx.Receiver.flush`,
  so no frame is spliced from samples on both sides of the hole).

One stream's flood fills and drops only that stream's queue: the others keep theirs.

The consumer waits on :attr:`IQDrain.wake_fd` (a pipe's read end that a :class:`zmq.Poller` can
watch beside other sockets), then calls :meth:`IQDrain.clear_wake` *before* taking chunks with
:meth:`IQDrain.get`. After :meth:`IQDrain.start` the pull sockets belong to the reader thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import zmq

from .iq import SAMPLE_BYTES, IQPull

log = logging.getLogger("mtsc_sdr.link.drain")

#: Default bound of one stream's queue: 2^21 samples (16 MiB of complex64; 2 s at 1 Msample/s).
DEFAULT_MAX_QUEUED_SAMPLES = 1 << 21
#: At most one overload log line per stream this often (seconds).
LOG_EVERY_S = 5.0
#: Messages the reader takes from one stream before it looks at the others.
READ_BATCH = 64


@dataclass
class QueueStats:
    """Counters of one stream's queue (samples are complex64, 8 bytes each)."""

    chunks_in: int = 0
    samples_in: int = 0
    chunks_dropped: int = 0
    samples_dropped: int = 0
    #: holes the consumer was told about (each follows one or more dropped chunks)
    gaps: int = 0
    queued_samples: int = 0
    queued_chunks: int = 0
    queued_samples_peak: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _Queue:
    """One stream's bounded queue; every method holds the lock."""

    def __init__(self, max_samples: int) -> None:
        self.max_samples = max_samples
        self.chunks: deque[np.ndarray] = deque()
        self.stats = QueueStats()
        self.gap = False               # chunks were dropped since the consumer took the last one
        self.lock = threading.Lock()
        self._logged = (0.0, 0, 0)     # (time, chunks_dropped, samples_dropped) at the last log line

    def put(self, x: np.ndarray) -> int:
        """Append ``x``; drop the oldest chunks while the queue would exceed its bound. Returns the
        number of chunks dropped."""
        st = self.stats
        dropped = 0
        with self.lock:
            st.chunks_in += 1
            st.samples_in += x.size
            while self.chunks and st.queued_samples + x.size > self.max_samples:
                old = self.chunks.popleft()
                st.queued_samples -= old.size
                st.chunks_dropped += 1
                st.samples_dropped += old.size
                dropped += 1
            if dropped:
                self.gap = True
            self.chunks.append(x)
            st.queued_samples += x.size
            st.queued_chunks = len(self.chunks)
            st.queued_samples_peak = max(st.queued_samples_peak, st.queued_samples)
        return dropped

    def get(self) -> tuple[np.ndarray, bool] | None:
        with self.lock:
            if not self.chunks:
                return None
            x = self.chunks.popleft()
            st = self.stats
            st.queued_samples -= x.size
            st.queued_chunks = len(self.chunks)
            gap, self.gap = self.gap, False
            if gap:
                st.gaps += 1
            return x, gap

    def log_drops(self, endpoint: str) -> None:
        """One warning line with the drops since the last line, at most every :data:`LOG_EVERY_S`."""
        now = time.monotonic()
        t, chunks, samples = self._logged
        st = self.stats
        if st.chunks_dropped > chunks and now - t >= LOG_EVERY_S:
            log.warning("%s: consumer behind, dropped %d chunks (%d samples, %.1f MiB) since the last report; "
                        "%d chunks (%d samples) in all", endpoint, st.chunks_dropped - chunks,
                        st.samples_dropped - samples, (st.samples_dropped - samples) * SAMPLE_BYTES / 2**20,
                        st.chunks_dropped, st.samples_dropped)
            self._logged = (now, st.chunks_dropped, st.samples_dropped)


class IQDrain:
    """A reader thread draining IQ pull streams into bounded queues (see the module docstring).

    Args:
        pulls: the streams, connected (their sockets belong to the reader thread once started).
        max_queued_samples: bound of each stream's queue, in complex64 samples.
        poll_ms: how often the reader looks at its stop flag while no message comes.
    """

    def __init__(self, pulls: Sequence[IQPull], *, max_queued_samples: int = DEFAULT_MAX_QUEUED_SAMPLES,
                 poll_ms: int = 100) -> None:
        if max_queued_samples < 1:
            raise ValueError(f"max_queued_samples must be >= 1, got {max_queued_samples}")
        self.pulls = list(pulls)
        self.max_queued_samples = int(max_queued_samples)
        self.poll_ms = int(poll_ms)
        self._queues = [_Queue(self.max_queued_samples) for _ in self.pulls]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.error: BaseException | None = None     # what ended the reader thread, if anything did

    @property
    def wake_fd(self) -> int:
        """Readable when a chunk was queued since the last :meth:`clear_wake` (for a poller)."""
        return self._wake_r

    def start(self) -> "IQDrain":
        self._thread = threading.Thread(target=self._read, name="iq-drain", daemon=True)
        self._thread.start()
        return self

    def clear_wake(self) -> None:
        """Empty the wake pipe; call it before taking chunks, so no wake-up is missed."""
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def get(self, stream: int) -> tuple[np.ndarray, bool] | None:
        """The oldest queued chunk of ``stream`` (complex64 (n,), read-only) and whether chunks
        before it were dropped since the last one taken; None when its queue is empty."""
        return self._queues[stream].get()

    def queued(self, stream: int) -> int:
        """Samples waiting in ``stream``'s queue."""
        return self._queues[stream].stats.queued_samples

    def stats(self, stream: int) -> QueueStats:
        return self._queues[stream].stats

    def totals(self) -> dict[str, int]:
        """``chunks_dropped`` and ``samples_dropped`` over every stream."""
        return {"chunks_dropped": sum(q.stats.chunks_dropped for q in self._queues),
                "samples_dropped": sum(q.stats.samples_dropped for q in self._queues)}

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _read(self) -> None:
        poller = zmq.Poller()
        by_socket = {}
        for pull, queue in zip(self.pulls, self._queues):
            poller.register(pull.socket, zmq.POLLIN)
            by_socket[pull.socket] = (pull, queue)
        try:
            while not self._stop.is_set():
                for sock, _ in poller.poll(self.poll_ms):
                    pull, queue = by_socket[sock]
                    for _ in range(READ_BATCH):
                        x = pull.recv(timeout_ms=0)
                        if x is None:
                            break
                        if queue.put(x):
                            queue.log_drops(pull.endpoint)
                    self._wake()
        except zmq.ContextTerminated:
            pass
        except BaseException as exc:      # reported by the consumer (alive() turns False)
            self.error = exc
            log.exception("IQ reader thread failed")
            self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:            # the pipe is full: a wake-up is already pending
            pass

    def close(self) -> None:
        """Stop the reader thread and close the wake pipe (the pulls are the caller's to close)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._wake_r >= 0:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
