"""IQ sample streams over ZeroMQ PUSH/PULL, wire-compatible with GNU Radio's gr-zeromq blocks.

Wire format: each ZMQ message (one frame) is raw complex64 samples, native little-endian
(interleaved float32 I, Q; 8 bytes per sample), exactly what ``zeromq.push_sink(gr.sizeof_gr_complex,
1, ...)`` sends and ``zeromq.pull_source`` expects. With ``pass_tags=True`` every message starts
with gr-zeromq's tag header (:mod:`mtsc_sdr.link.tags`) and both ends must agree on it, as in
GNU Radio.

Topology follows gr-zeromq (its sinks bind, its sources connect): the **sender binds** a PUSH
socket (:class:`IQPush`), the **receiver connects** a PULL socket (:class:`IQPull`). So
``IQPush`` feeds a GNU Radio ``pull_source`` and ``IQPull`` reads a GNU Radio ``push_sink``.
A PUSH socket with several PULL peers deals whole messages round-robin among them.

Flow control: PUSH never drops. When the receiver falls behind, messages queue up to the
high-water marks (``hwm`` messages on each side, plus kernel socket buffers) and then
:meth:`IQPush.send` blocks for up to ``send_timeout_ms`` and raises :class:`IQSendTimeout`,
saying how many samples of the call went out. Samples are therefore never lost silently.

Receiver checks, each counted in :class:`IQStats`, logged (rate-limited) and the message dropped,
while the receiver carries on with the next message:

* message larger than ``max_message_bytes``            -> ``dropped_oversized``
* (pass_tags) missing/unknown tag header or PMT type   -> ``dropped_bad_tag_header``
  (an unreadable PMT hides where the samples start, so the whole message goes, not just its tags)
* payload length not a multiple of 8 bytes             -> ``dropped_not_multiple_of_8``
* any NaN or infinity among the samples                -> ``dropped_nonfinite``

With ``pass_tags`` the header's offset is the sender's running sample count, so the receiver also
sees samples that never arrived (``sender_samples_missed``, e.g. queued for a receiver that went
away and came back) and a sender that restarted (``sender_restarts``). Without tags, raw samples
carry no sequence information, as in GNU Radio.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Iterator, Sequence

import numpy as np
import zmq

from ._droplog import DropLog
from .curve import CurveClient, CurveServer, SocketOwner, apply_curve, context_for
from .endpoints import bind, deprecated_allow_remote, set_common_options
from .tags import Tag, TagHeaderError, decode_tag_header, encode_tag_header

log = logging.getLogger("mtsc_sdr.link.iq")

SAMPLE_BYTES = 8  # complex64
#: Samples per ZMQ message when :meth:`IQPush.send` splits a long array (1 MiB messages: large
#: enough that per-message costs vanish, small enough to keep the pipeline busy).
DEFAULT_MESSAGE_SAMPLES = 1 << 17
#: High-water mark in messages on each side: 32 x 1 MiB = 32 MiB queued per side at most,
#: about half a second at 61.44 Msamples/s.
DEFAULT_IQ_HWM = 32
#: How long :meth:`IQPush.send` waits for room before raising :class:`IQSendTimeout`.
DEFAULT_SEND_TIMEOUT_MS = 5000
#: Receiver's ceiling on one message; GNU Radio sends a scheduler buffer's worth (tens of kB).
DEFAULT_MAX_MESSAGE_BYTES = 64 << 20
DEFAULT_RECV_TIMEOUT_MS = 1000
DEFAULT_LINGER_MS = 1000


class IQSendTimeout(TimeoutError):
    """The receiver did not take samples within the send timeout (gone, or too slow)."""

    def __init__(self, message: str, *, samples_sent: int, samples_pending: int) -> None:
        super().__init__(message)
        self.samples_sent = samples_sent
        self.samples_pending = samples_pending


@dataclass
class IQStats:
    """Counters of an :class:`IQPull` (cumulative since it was created)."""

    messages: int = 0
    samples: int = 0
    bytes: int = 0
    tags_seen: int = 0
    empty_messages: int = 0
    dropped_oversized: int = 0
    dropped_bad_tag_header: int = 0
    dropped_not_multiple_of_8: int = 0
    dropped_nonfinite: int = 0
    #: samples inside dropped messages, where their number is known (non-finite ones)
    dropped_samples: int = 0
    #: (pass_tags) jumps forward in the sender's stream offset: samples that never arrived
    sender_gaps: int = 0
    sender_samples_missed: int = 0
    #: (pass_tags) the sender's offset went backwards: it restarted (or a second sender joined)
    sender_restarts: int = 0

    @property
    def dropped(self) -> int:
        return (self.dropped_oversized + self.dropped_bad_tag_header
                + self.dropped_not_multiple_of_8 + self.dropped_nonfinite)

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "dropped": self.dropped}


@dataclass(frozen=True)
class IQChunk:
    """One accepted message.

    ``samples``: complex64, shape (n,), read-only view of the received buffer (``.copy()`` to write).
    ``offset``: position of ``samples[0]`` in this receiver's stream (accepted samples so far).
    ``tags``: tags with offsets in the same stream coordinates, so ``tag.offset - offset`` indexes
    ``samples`` (GNU Radio's pull_source re-bases the same way).
    ``sender_offset``: the sender's own stream position from the tag header (None without tags).
    """

    samples: np.ndarray
    offset: int
    tags: tuple[Tag, ...] = field(default=())
    sender_offset: int | None = None


def _as_samples(samples: np.ndarray) -> np.ndarray:
    arr = np.asarray(samples)
    if arr.dtype != np.complex64:
        raise TypeError(f"IQ samples must be complex64, got {arr.dtype} (convert explicitly: x.astype(np.complex64))")
    if arr.ndim != 1:
        raise ValueError(f"IQ samples must be 1-D, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


class IQPush(SocketOwner):
    """Sends complex64 sample streams; binds a PUSH socket (a GNU Radio ``pull_source`` connects).

    Args:
        endpoint: where to bind, e.g. ``tcp://127.0.0.1:5555`` (``:*`` picks a free port; see
            :attr:`endpoint`). Beyond loopback it needs ``curve`` or ``insecure=True``
            (:func:`~mtsc_sdr.link.endpoints.check_bind_endpoint`).
        hwm: send high-water mark in messages.
        pass_tags: prefix every message with gr-zeromq's tag header (the peer must use it too).
        curve: :class:`CurveServer` or :class:`CurveClient` (not with GNU Radio peers).
        max_message_samples: long arrays are split into messages of at most this many samples.
        send_timeout_ms: how long :meth:`send` blocks on a full queue or absent peer (-1: forever).
        linger_ms: how long :meth:`close` waits to flush queued messages.
        insecure: bind beyond loopback without CURVE (a loud warning); ``allow_remote``: its
            deprecated name.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        hwm: int = DEFAULT_IQ_HWM,
        pass_tags: bool = False,
        curve: CurveServer | CurveClient | None = None,
        max_message_samples: int = DEFAULT_MESSAGE_SAMPLES,
        send_timeout_ms: int = DEFAULT_SEND_TIMEOUT_MS,
        linger_ms: int = DEFAULT_LINGER_MS,
        insecure: bool = False,
        allow_remote: bool = False,
        context: zmq.Context | None = None,
    ) -> None:
        if max_message_samples < 1:
            raise ValueError("max_message_samples must be >= 1")
        self.pass_tags = pass_tags
        self.hwm = int(hwm)
        self.max_message_samples = int(max_message_samples)
        self.samples_sent = 0
        self.messages_sent = 0
        # A context of its own unless one is given: closing then terminates it, which is the only
        # way ZeroMQ waits (up to linger_ms) for queued messages to go out. With the shared
        # Context.instance() a process could exit with zero-copy messages still in flight.
        self._ctx, self._auth, self._own_ctx = context_for(curve, context)
        if context is None and not self._own_ctx:
            self._ctx, self._own_ctx = zmq.Context(), True
        self._sock = self._ctx.socket(zmq.PUSH)
        try:
            self._sock.setsockopt(zmq.SNDHWM, int(hwm))
            self._sock.setsockopt(zmq.SNDTIMEO, int(send_timeout_ms))
            set_common_options(self._sock, linger_ms=linger_ms)
            apply_curve(self._sock, curve)
            self.endpoint = bind(self._sock, endpoint, insecure=insecure or deprecated_allow_remote(allow_remote),
                                 encrypted=curve is not None)
        except Exception:
            self.close(0)
            raise

    def send(self, samples: np.ndarray, *, tags: Sequence[Tag] = (), copy: bool = True) -> int:
        """Send complex64 samples (1-D); returns the number of ZMQ messages used.

        ``tags`` (needs ``pass_tags=True``): offsets relative to ``samples`` (0 is ``samples[0]``);
        they go out with absolute stream offsets, as GNU Radio expects.
        ``copy=False`` hands the array's memory to ZeroMQ without copying: then do not modify
        ``samples`` afterwards (its memory is read while in flight). With ``pass_tags`` the header
        and samples are joined into one frame, which is always a copy.
        Raises :class:`IQSendTimeout` when the queue stays full (or nobody connects) for
        ``send_timeout_ms``; the exception says how many samples of this call went out.
        """
        arr = _as_samples(samples)
        n = len(arr)
        if tags and not self.pass_tags:
            raise ValueError("tags need IQPush(..., pass_tags=True)")
        for tag in tags:
            if not 0 <= tag.offset < max(n, 1):
                raise ValueError(f"tag offset {tag.offset} outside the {n} samples sent")
        if n == 0:
            return 0
        step = self.max_message_samples
        start_pos = self.samples_sent
        done = 0
        messages = 0
        while done < n:
            chunk = arr[done:done + step]
            if self.pass_tags:
                lo, hi = done, done + len(chunk)
                chunk_tags = [t.shifted(start_pos) for t in tags if lo <= t.offset < hi]
                header = encode_tag_header(self.samples_sent, chunk_tags)
                payload: object = b"".join((header, memoryview(chunk).cast("B")))
                frame_copy = False
            else:
                payload = chunk
                frame_copy = copy
            try:
                self._sock.send(payload, copy=frame_copy)
            except zmq.Again:
                raise IQSendTimeout(
                    f"IQ receiver did not take samples within the send timeout: {done} of {n} samples of "
                    f"this call sent, {n - done} not sent (is a receiver connected to {self.endpoint}?)",
                    samples_sent=done, samples_pending=n - done,
                ) from None
            done += len(chunk)
            self.samples_sent += len(chunk)
            self.messages_sent += 1
            messages += 1
        return messages



class IQPull(SocketOwner):
    """Receives complex64 sample streams; connects a PULL socket (to a GNU Radio ``push_sink``).

    Args:
        endpoint: the sender's bound endpoint, e.g. ``tcp://127.0.0.1:5555``.
        hwm: receive high-water mark in messages.
        pass_tags: expect gr-zeromq's tag header on every message.
        max_message_bytes: larger messages are counted and dropped.
        check_finite: drop messages with NaN/inf samples (on by default; costs ~40 us per MiB).
        curve: :class:`CurveClient` (or :class:`CurveServer`), matching the sender's role.

    Reconnects by itself when the sender goes away and comes back (100 ms, backing off to 2 s).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        hwm: int = DEFAULT_IQ_HWM,
        pass_tags: bool = False,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        check_finite: bool = True,
        curve: CurveServer | CurveClient | None = None,
        linger_ms: int = 0,
        context: zmq.Context | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.pass_tags = pass_tags
        self.max_message_bytes = int(max_message_bytes)
        self.check_finite = check_finite
        self.stats = IQStats()
        self._next_sender_offset: int | None = None
        self._drops = DropLog(log, f"IQPull {endpoint}")
        self._ctx, self._auth, self._own_ctx = context_for(curve, context)
        self._sock = self._ctx.socket(zmq.PULL)
        try:
            self._sock.setsockopt(zmq.RCVHWM, int(hwm))
            set_common_options(self._sock, linger_ms=linger_ms)
            apply_curve(self._sock, curve)
            self._sock.connect(endpoint)
        except Exception:
            self.close()
            raise

    # -- receiving ---------------------------------------------------------------------------

    def recv(self, timeout_ms: int | None = DEFAULT_RECV_TIMEOUT_MS) -> np.ndarray | None:
        """Samples of the next good message (read-only complex64 view), or None on timeout."""
        chunk = self.recv_chunk(timeout_ms)
        return None if chunk is None else chunk.samples

    def recv_chunk(self, timeout_ms: int | None = DEFAULT_RECV_TIMEOUT_MS) -> IQChunk | None:
        """The next good message with its stream offset and tags, or None after ``timeout_ms``.

        Malformed messages met on the way are counted, logged and skipped; the wait for a good one
        continues until the deadline. ``timeout_ms=None`` waits indefinitely.
        """
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000.0
        sock = self._sock
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                if deadline is None:
                    wait = -1
                else:
                    wait = int((deadline - time.monotonic()) * 1000.0 + 0.999)
                    if wait <= 0:
                        return None
                if not sock.poll(wait, zmq.POLLIN):
                    return None
                continue
            chunk = self._accept(frame)
            if chunk is not None:
                return chunk
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def _accept(self, frame: zmq.Frame) -> IQChunk | None:
        buf = frame.buffer
        nbytes = len(buf)
        st = self.stats
        if nbytes > self.max_message_bytes:
            st.dropped_oversized += 1
            self._drops.drop("oversized", f"{nbytes} bytes > max_message_bytes={self.max_message_bytes}")
            return None
        start = 0
        tags: list[Tag] = []
        sender_offset = None
        if self.pass_tags:
            try:
                sender_offset, tags, start = decode_tag_header(buf)
            except TagHeaderError as e:
                st.dropped_bad_tag_header += 1
                self._drops.drop("bad tag header", str(e))
                return None
        payload = nbytes - start
        if payload % SAMPLE_BYTES:
            st.dropped_not_multiple_of_8 += 1
            self._drops.drop("length", f"{payload} payload bytes is not a multiple of {SAMPLE_BYTES} (complex64)")
            return None
        if payload == 0:
            st.empty_messages += 1
            return None
        samples = np.frombuffer(buf, dtype=np.complex64, offset=start)
        if not samples.flags.aligned:
            # libzmq hands small messages over inside its batch buffer at any offset, and a tag
            # header of odd length shifts the samples: copy those (cheap) so callers get aligned data
            samples = samples.copy()
        samples.flags.writeable = False
        if sender_offset is not None:
            self._track_sender(sender_offset, len(samples))
        if self.check_finite and not np.isfinite(samples.view(np.float32)).all():
            bad = int(np.count_nonzero(~np.isfinite(samples.view(np.float32)).reshape(-1, 2).all(axis=1)))
            st.dropped_nonfinite += 1
            st.dropped_samples += len(samples)
            self._drops.drop("non-finite", f"{bad} of {len(samples)} samples are NaN or infinite")
            return None
        offset = st.samples
        if sender_offset is not None and tags:
            tags = [t.shifted(offset - sender_offset) for t in tags]
        st.messages += 1
        st.samples += len(samples)
        st.bytes += nbytes
        st.tags_seen += len(tags)
        return IQChunk(samples, offset, tuple(tags), sender_offset)

    def _track_sender(self, sender_offset: int, n: int) -> None:
        """The tag header's offset is the sender's sample count: a jump means lost samples."""
        expected = self._next_sender_offset
        st = self.stats
        if expected is not None and sender_offset > expected:
            st.sender_gaps += 1
            st.sender_samples_missed += sender_offset - expected
            log.warning("IQPull %s: %d samples never arrived (sender offset %d, expected %d)",
                        self.endpoint, sender_offset - expected, sender_offset, expected)
        elif expected is not None and sender_offset < expected:
            st.sender_restarts += 1
            log.info("IQPull %s: sender offset went back from %d to %d (sender restarted)",
                     self.endpoint, expected, sender_offset)
        self._next_sender_offset = sender_offset + n

    def chunks(self, timeout_ms: int = DEFAULT_RECV_TIMEOUT_MS) -> Iterator[IQChunk]:
        """Yield chunks until none arrives within ``timeout_ms`` (end of a burst or a dead sender)."""
        while (chunk := self.recv_chunk(timeout_ms)) is not None:
            yield chunk

    def __iter__(self) -> Iterator[np.ndarray]:
        """Sample arrays until a default-timeout (1 s) gap."""
        for chunk in self.chunks():
            yield chunk.samples

    def recv_samples(self, n: int, timeout_ms: int = DEFAULT_RECV_TIMEOUT_MS) -> np.ndarray:
        """Concatenate whole messages until at least ``n`` samples arrived; fewer if the stream
        pauses for ``timeout_ms`` first. Returns a new writable complex64 array."""
        parts: list[np.ndarray] = []
        have = 0
        while have < n:
            chunk = self.recv_chunk(timeout_ms)
            if chunk is None:
                break
            parts.append(chunk.samples)
            have += len(chunk.samples)
        return np.concatenate(parts) if parts else np.zeros(0, np.complex64)


