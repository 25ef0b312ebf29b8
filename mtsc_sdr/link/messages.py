"""Tensor and control messages between our own processes (base station <-> clients).

Wire format, version 1 (nothing is pickled)::

    frame 0     header: UTF-8 JSON object, at most 64 KiB
                {"v": 1, "kind": "tensor", "session": 17, "seq": 42, "src": 9123...,
                 "tensors": [{"name": "acts", "dtype": "float32", "shape": [4, 256]}, ...],
                 "meta": {...any small JSON...}}
    frame 1..n  one frame per tensor: raw C-order bytes, little-endian

* ``kind``: a short lowercase word naming what the message is (``hello``, ``tensor``, ``control``,
  ``error``, ``bye``, or a subsystem's own such as ``activations``).
* ``session``: the client session the message belongs to (the client picks it; replies carry it).
* ``seq``: per-sender, per-destination counter from 0; the receiver counts gaps as lost messages.
* ``src``: random 63-bit id of the sending socket instance, so a restarted peer starts a new
  sequence instead of looking like a rewind.
* dtypes: bool, int8..int64, uint8..uint64, float16/32/64, complex64/128. Torch tensors are sent
  via ``.numpy()`` (bfloat16 must be converted first); received tensors are read-only numpy
  views on the message buffers (``torch.from_numpy(x.copy())`` to get a tensor).

Sockets: the base station's :class:`MessageServer` binds a ROUTER; each :class:`MessageClient`
connects a DEALER whose routing id is derived from its session, so one server serves many clients
and a reconnecting client keeps its address (``ROUTER_HANDOVER``). Options set on purpose:

* ``SNDHWM``/``RCVHWM`` (default 1000 messages): bounded queues; past them ``send`` waits up to
  ``send_timeout_ms`` (``SNDTIMEO``) and raises :class:`LinkTimeout` saying what was not sent.
* ``ROUTER_MANDATORY``: sending to a client that is not connected raises :class:`PeerUnreachable`
  instead of vanishing.
* ``RECONNECT_IVL`` 100 ms backing off to ``RECONNECT_IVL_MAX`` 2 s, and ZMTP heartbeats every 1 s
  with a 5 s timeout (see :mod:`mtsc_sdr.link.endpoints`): a dead TCP peer is noticed and a server
  that restarts on the same endpoint is reconnected to; messages queued meanwhile go out then.
* ``LINGER`` 1 s on close, so the last messages get out.

Malformed input is counted in :class:`MessageStats`, logged (rate-limited) and dropped; the
receiver keeps going: bad header (not JSON, missing/mistyped fields, frame count mismatch),
unknown version, unknown dtype, tensor size not matching its shape, oversized message, and
duplicate/stale sequence numbers.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np
import zmq

from ._droplog import DropLog
from .curve import CurveClient, CurveServer, SocketOwner, apply_curve, context_for
from .endpoints import bind, deprecated_allow_remote, set_common_options

log = logging.getLogger("mtsc_sdr.link.messages")

VERSION = 1
MAX_HEADER_BYTES = 64 << 10
MAX_NDIM = 32
DEFAULT_MSG_HWM = 1000
DEFAULT_SEND_TIMEOUT_MS = 2000
DEFAULT_RECV_TIMEOUT_MS = 1000
#: Receiver's ceiling on one whole message (header + all tensors).
DEFAULT_MAX_MESSAGE_BYTES = 256 << 20
DEFAULT_LINGER_MS = 1000
MAX_TRACKED_STREAMS = 4096

DTYPES = frozenset({
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
})
_KIND_RE = re.compile(r"^[a-z][a-z0-9_.\-]{0,31}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:/\-]{1,128}$")


class LinkTimeout(TimeoutError):
    """A message could not be queued within the send timeout (peer gone or not keeping up)."""


class PeerUnreachable(ConnectionError):
    """The server has no connection to the client addressed (never connected, or gone)."""


@dataclass(frozen=True)
class Message:
    """A received (or to-be-sent) message; ``tensors`` keep the order they were sent in."""

    kind: str
    session: int
    seq: int
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    src: int = 0
    #: routing id of the client this came from (server side only)
    peer: bytes | None = None


@dataclass
class MessageStats:
    """Counters of a message endpoint (cumulative)."""

    sent: int = 0
    received: int = 0
    bytes_received: int = 0
    #: messages that never arrived, from sequence gaps (between messages this process has seen)
    lost: int = 0
    gaps: int = 0
    peer_restarts: int = 0
    dropped_bad_header: int = 0
    dropped_unknown_version: int = 0
    dropped_bad_dtype: int = 0
    dropped_size_mismatch: int = 0
    dropped_oversized: int = 0
    dropped_duplicate: int = 0

    @property
    def dropped(self) -> int:
        return (self.dropped_bad_header + self.dropped_unknown_version + self.dropped_bad_dtype
                + self.dropped_size_mismatch + self.dropped_oversized + self.dropped_duplicate)

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "dropped": self.dropped}


class _Malformed(Exception):
    def __init__(self, counter: str, detail: str) -> None:
        super().__init__(detail)
        self.counter = counter


def _new_src() -> int:
    return int.from_bytes(os.urandom(8), "little") >> 1


def _to_numpy(value: Any, name: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) and hasattr(value, "detach") and hasattr(value, "numpy"):
        try:  # a torch tensor, without importing torch
            value = value.detach().cpu().numpy()
        except TypeError as e:
            raise TypeError(f"tensor {name!r}: {e} (convert bfloat16 to float32 before sending)") from None
    arr = np.asarray(value)
    if arr.dtype.name not in DTYPES:
        raise TypeError(f"tensor {name!r}: dtype {arr.dtype} not supported on the wire ({sorted(DTYPES)})")
    if arr.ndim > MAX_NDIM:
        raise ValueError(f"tensor {name!r}: more than {MAX_NDIM} dimensions")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr if arr.flags.c_contiguous else arr.copy(order="C")  # (ascontiguousarray makes 0-d 1-d)


def encode(kind: str, session: int, seq: int, src: int, tensors: Mapping[str, Any] | None = None,
           meta: Mapping[str, Any] | None = None) -> list[Any]:
    """Frames of one message: [header bytes, tensor arrays...]."""
    if not _KIND_RE.match(kind):
        raise ValueError(f"kind must match {_KIND_RE.pattern}, got {kind!r}")
    arrays = []
    specs = []
    for name, value in (tensors or {}).items():
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(f"tensor name must match {_NAME_RE.pattern}, got {name!r}")
        arr = _to_numpy(value, name)
        arrays.append(arr)
        specs.append({"name": name, "dtype": arr.dtype.name, "shape": list(arr.shape)})
    header = {"v": VERSION, "kind": kind, "session": int(session), "seq": int(seq), "src": int(src),
              "tensors": specs, "meta": dict(meta or {})}
    raw = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    if len(raw) > MAX_HEADER_BYTES:
        raise ValueError(f"message header is {len(raw)} bytes (> {MAX_HEADER_BYTES}); keep meta small")
    return [raw, *arrays]


def _is_uint(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 1 << 63


def decode(frames: list[zmq.Frame], *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Message:
    """Parse and validate frames [header, tensors...]; raises ``_Malformed`` with the counter name."""
    total = sum(len(f.buffer) for f in frames)
    if total > max_message_bytes:
        raise _Malformed("dropped_oversized", f"{total} bytes > max_message_bytes={max_message_bytes}")
    if not frames:
        raise _Malformed("dropped_bad_header", "empty message")
    head = frames[0].buffer
    if len(head) > MAX_HEADER_BYTES:
        raise _Malformed("dropped_oversized", f"header of {len(head)} bytes > {MAX_HEADER_BYTES}")
    try:
        h = json.loads(bytes(head))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:   # RecursionError: nested too deep
        raise _Malformed("dropped_bad_header", f"header is not JSON: {e}") from None
    if not isinstance(h, dict):
        raise _Malformed("dropped_bad_header", "header is not a JSON object")
    if h.get("v") != VERSION:
        raise _Malformed("dropped_unknown_version", f"header version {h.get('v')!r}, this build reads {VERSION}")
    kind, session, seq, src = h.get("kind"), h.get("session"), h.get("seq"), h.get("src", 0)
    specs, meta = h.get("tensors", []), h.get("meta", {})
    if not (isinstance(kind, str) and _KIND_RE.match(kind)):
        raise _Malformed("dropped_bad_header", f"bad kind {kind!r}")
    if not (_is_uint(session) and _is_uint(seq) and _is_uint(src)):
        raise _Malformed("dropped_bad_header", f"session/seq/src must be integers in [0, 2^63): {session!r}, {seq!r}, {src!r}")
    if not isinstance(specs, list) or not isinstance(meta, dict):
        raise _Malformed("dropped_bad_header", "'tensors' must be a list and 'meta' an object")
    if len(specs) != len(frames) - 1:
        raise _Malformed("dropped_bad_header", f"header lists {len(specs)} tensors, message has {len(frames) - 1} payload frames")
    tensors: dict[str, np.ndarray] = {}
    for spec, frame in zip(specs, frames[1:]):
        if not isinstance(spec, dict):
            raise _Malformed("dropped_bad_header", "tensor spec is not an object")
        name, dtype, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
        if not (isinstance(name, str) and _NAME_RE.match(name)) or name in tensors:
            raise _Malformed("dropped_bad_header", f"bad or repeated tensor name {name!r}")
        if not isinstance(dtype, str) or dtype not in DTYPES:    # (a list or object is unhashable)
            raise _Malformed("dropped_bad_dtype", f"tensor {name!r}: dtype {dtype!r} not one of {sorted(DTYPES)}")
        if not (isinstance(shape, list) and len(shape) <= MAX_NDIM and all(_is_uint(d) for d in shape)):
            raise _Malformed("dropped_bad_header", f"tensor {name!r}: bad shape {shape!r}")
        dt = np.dtype(dtype).newbyteorder("<")
        buf = frame.buffer
        expected = math.prod(shape) * dt.itemsize
        if expected != len(buf):
            raise _Malformed("dropped_size_mismatch",
                             f"tensor {name!r}: {dtype}{shape} needs {expected} bytes, frame has {len(buf)}")
        arr = np.frombuffer(buf, dtype=dt).reshape(shape)
        if not dt.isnative:
            arr = arr.astype(dt.newbyteorder("="))
        elif not arr.flags.aligned:  # small frames may sit at any offset in libzmq's batch buffer
            arr = arr.copy()
        arr.flags.writeable = False
        tensors[name] = arr
    return Message(kind, session, seq, tensors, meta, src)


class _SeqTracker:
    """Expected next sequence number per (src, session); counts gaps and drops stale numbers."""

    def __init__(self, stats: MessageStats, drops: DropLog) -> None:
        self._next: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._stats = stats
        self._drops = drops
        self._sessions_seen: dict[int, int] = {}

    def accept(self, msg: Message, who: str) -> bool:
        key = (msg.src, msg.session)
        expected = self._next.get(key)
        if expected is None:
            previous_src = self._sessions_seen.get(msg.session)
            if previous_src is not None and previous_src != msg.src:
                self._stats.peer_restarts += 1
                log.info("%s: peer for session %d restarted (new src %x); new sequence from %d", who, msg.session, msg.src, msg.seq)
            self._sessions_seen[msg.session] = msg.src
            if len(self._sessions_seen) > MAX_TRACKED_STREAMS:
                self._sessions_seen.pop(next(iter(self._sessions_seen)))
        elif msg.seq < expected:
            self._stats.dropped_duplicate += 1
            self._drops.drop("duplicate", f"session {msg.session} seq {msg.seq} already seen (expected {expected})")
            return False
        elif msg.seq > expected:
            missing = msg.seq - expected
            self._stats.lost += missing
            self._stats.gaps += 1
            log.warning("%s: session %d lost %d message(s): seq %d..%d never arrived", who, msg.session, missing, expected, msg.seq - 1)
        self._next[key] = msg.seq + 1
        self._next.move_to_end(key)
        while len(self._next) > MAX_TRACKED_STREAMS:
            self._next.popitem(last=False)
        return True


class _Endpoint(SocketOwner):
    """Shared receive path and lifecycle of the server and client."""

    _sock: zmq.Socket

    def __init__(self, socket_type: int, *, hwm: int, send_timeout_ms: int, max_message_bytes: int,
                 curve: CurveServer | CurveClient | None, linger_ms: int, context: zmq.Context | None) -> None:
        self.stats = MessageStats()
        self.max_message_bytes = int(max_message_bytes)
        self.src = _new_src()
        self._ctx, self._auth, self._own_ctx = context_for(curve, context)
        self._sock = self._ctx.socket(socket_type)
        self._sock.setsockopt(zmq.SNDHWM, int(hwm))
        self._sock.setsockopt(zmq.RCVHWM, int(hwm))
        self._sock.setsockopt(zmq.SNDTIMEO, int(send_timeout_ms))
        set_common_options(self._sock, linger_ms=linger_ms)
        apply_curve(self._sock, curve)
        self._drops = DropLog(log, type(self).__name__)
        self._tracker = _SeqTracker(self.stats, self._drops)

    def _recv_frames(self, timeout_ms: int | None) -> list[zmq.Frame] | None:
        sock = self._sock
        try:
            return sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            pass
        if sock.poll(-1 if timeout_ms is None else max(0, int(timeout_ms)), zmq.POLLIN):
            return sock.recv_multipart(zmq.NOBLOCK, copy=False)
        return None

    def _recv(self, timeout_ms: int | None, *, routed: bool) -> Message | None:
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000.0
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic()) * 1000.0
            frames = self._recv_frames(None if remaining is None else math.ceil(remaining))
            if frames is None:
                return None
            peer = None
            if routed:
                peer = bytes(frames[0].buffer)
                frames = frames[1:]
            who = f"{type(self).__name__}" + (f" peer {peer!r}" if peer else "")
            try:
                msg = decode(frames, max_message_bytes=self.max_message_bytes)
            except _Malformed as bad:
                setattr(self.stats, bad.counter, getattr(self.stats, bad.counter) + 1)
                self._drops.drop(bad.counter.removeprefix("dropped_"), f"{who}: {bad}")
                msg = None
            if msg is not None and self._tracker.accept(msg, who):
                self.stats.received += 1
                self.stats.bytes_received += sum(len(f.buffer) for f in frames)
                return Message(msg.kind, msg.session, msg.seq, msg.tensors, msg.meta, msg.src, peer) if routed else msg
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def _send_frames(self, frames: list[Any], copy: bool, what: str) -> None:
        try:
            self._sock.send_multipart(frames, copy=copy)
        except zmq.Again:
            raise LinkTimeout(f"{type(self).__name__}: {what} not sent: peer not taking messages within the send timeout") from None



class MessageServer(_Endpoint):
    """Base-station side: binds a ROUTER; receives from and replies to many clients.

    Args:
        endpoint: e.g. ``tcp://127.0.0.1:5560`` (``:*`` for a free port, see :attr:`endpoint`);
            beyond loopback it needs ``curve`` or ``insecure=True``
            (:func:`~mtsc_sdr.link.endpoints.check_bind_endpoint`).
        curve: :class:`CurveServer` to require CURVE (and, with ``allowed_clients``, known clients).
        insecure: bind beyond loopback without CURVE (a loud warning); ``allow_remote``: its
            deprecated name.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        hwm: int = DEFAULT_MSG_HWM,
        send_timeout_ms: int = DEFAULT_SEND_TIMEOUT_MS,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        curve: CurveServer | None = None,
        insecure: bool = False,
        allow_remote: bool = False,
        linger_ms: int = DEFAULT_LINGER_MS,
        context: zmq.Context | None = None,
    ) -> None:
        if curve is not None and not isinstance(curve, CurveServer):
            raise TypeError("MessageServer takes curve=CurveServer(...)")
        super().__init__(zmq.ROUTER, hwm=hwm, send_timeout_ms=send_timeout_ms, max_message_bytes=max_message_bytes,
                         curve=curve, linger_ms=linger_ms, context=context)
        try:
            self._sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            self._sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
            self.endpoint = bind(self._sock, endpoint, insecure=insecure or deprecated_allow_remote(allow_remote),
                                 encrypted=curve is not None)
        except Exception:
            self.close(0)
            raise
        self._seq: dict[bytes, int] = {}
        self._session_of: dict[bytes, int] = {}

    def recv(self, timeout_ms: int | None = DEFAULT_RECV_TIMEOUT_MS) -> Message | None:
        """Next good message from any client (``msg.peer`` says which), or None after the timeout."""
        msg = self._recv(timeout_ms, routed=True)
        if msg is not None:
            self._session_of[msg.peer] = msg.session
        return msg

    def send(self, peer: bytes, kind: str, tensors: Mapping[str, Any] | None = None,
             meta: Mapping[str, Any] | None = None, *, session: int | None = None, copy: bool = True) -> int:
        """Send to one client; returns the sequence number used.

        ``session`` defaults to the session that client last used. Raises :class:`PeerUnreachable`
        when that client is not connected, :class:`LinkTimeout` when its queue stays full.
        ``copy=False`` sends tensor memory without copying (do not modify it afterwards).
        """
        if session is None:
            session = self._session_of.get(peer, 0)
        seq = self._seq.get(peer, 0)
        frames = encode(kind, session, seq, self.src, tensors, meta)
        try:
            self._send_frames([peer, *frames], copy, f"{kind} seq {seq} to {peer!r}")
        except zmq.ZMQError as e:
            if e.errno == zmq.EHOSTUNREACH:
                raise PeerUnreachable(f"client {peer!r} is not connected; {kind} seq {seq} not sent") from None
            raise
        self._seq[peer] = seq + 1
        self.stats.sent += 1
        return seq

    def reply(self, to: Message, kind: str, tensors: Mapping[str, Any] | None = None,
              meta: Mapping[str, Any] | None = None, *, copy: bool = True) -> int:
        """Send to the client ``to`` came from, in its session."""
        if to.peer is None:
            raise ValueError("reply() needs a message received by this server")
        return self.send(to.peer, kind, tensors, meta, session=to.session, copy=copy)


class MessageClient(_Endpoint):
    """Client side: connects a DEALER to a :class:`MessageServer`.

    Args:
        endpoint: the server's endpoint.
        session: this client's session id (random 63-bit when None); also its routing id.
        curve: :class:`CurveClient` with the server's public key when the server uses CURVE; a
            server whose allow-list does not admit this client's key then shows in
            :meth:`curve_refused`.

    Messages sent while the server is away queue (up to ``hwm``) and go out when it is back.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        session: int | None = None,
        hwm: int = DEFAULT_MSG_HWM,
        send_timeout_ms: int = DEFAULT_SEND_TIMEOUT_MS,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        curve: CurveClient | None = None,
        linger_ms: int = DEFAULT_LINGER_MS,
        context: zmq.Context | None = None,
    ) -> None:
        if curve is not None and not isinstance(curve, CurveClient):
            raise TypeError("MessageClient takes curve=CurveClient(...)")
        self.session = _new_src() if session is None else int(session)
        if not _is_uint(self.session):
            raise ValueError("session must be an integer in [0, 2^63)")
        super().__init__(zmq.DEALER, hwm=hwm, send_timeout_ms=send_timeout_ms, max_message_bytes=max_message_bytes,
                         curve=curve, linger_ms=linger_ms, context=context)
        self.routing_id = b"s" + self.session.to_bytes(8, "big")
        self.endpoint = endpoint
        self._seq = 0
        self._monitor: zmq.Socket | None = None
        self._refused: str | None = None
        try:
            self._sock.setsockopt(zmq.ROUTING_ID, self.routing_id)
            if curve is not None:       # watched from before the connect, so that no refusal is missed
                self._monitor = self._sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                                              | zmq.EVENT_HANDSHAKE_SUCCEEDED)
            self._sock.connect(endpoint)
        except Exception:
            self.close(0)
            raise

    def curve_refused(self) -> str | None:
        """Why the CURVE server refused this client's key (its allow-list does not admit it), once
        its handshake has said so and no later handshake succeeded; None otherwise and without CURVE.
        (A wrong server key is not reported: that server cannot even read the handshake.)"""
        if self._monitor is None:
            return None
        from zmq.utils.monitor import recv_monitor_message

        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._refused = (f"the server at {self.endpoint} refused this client's CURVE key (ZAP status "
                                 f"{event['value']}): it is not on the server's allow-list")
            elif event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._refused = None
        return self._refused

    def close(self, linger_ms: int | None = None) -> None:
        monitor, self._monitor = getattr(self, "_monitor", None), None
        if monitor is not None:
            try:
                self._sock.disable_monitor()
            except zmq.ZMQError:
                pass
            monitor.close(0)
        super().close(linger_ms)

    def send(self, kind: str, tensors: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None,
             *, copy: bool = True) -> int:
        """Send to the server; returns the sequence number used. Raises :class:`LinkTimeout`."""
        seq = self._seq
        frames = encode(kind, self.session, seq, self.src, tensors, meta)
        self._send_frames(frames, copy, f"{kind} seq {seq}")
        self._seq = seq + 1
        self.stats.sent += 1
        return seq

    def recv(self, timeout_ms: int | None = DEFAULT_RECV_TIMEOUT_MS) -> Message | None:
        """Next good message from the server, or None after the timeout."""
        return self._recv(timeout_ms, routed=False)
