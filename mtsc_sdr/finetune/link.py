"""What carries a split training step across the cut (:class:`~.split.SplitLink`).

* :class:`LocalLink`: everything in one process, through the real PHY -- the transmitter's
  frames (header: session, seq, task, rate index), a software channel (:mod:`mtsc_sdr.channel`,
  AWGN at ``snr_db`` by default, any stages), the receiver -- to a :class:`~.split.ServerHalf`.
* :class:`RemoteLink`: the client's end of the real link: frames into its IQ stream (a software
  channel, a GNU Radio flowgraph or a radio takes them to the base station) and the control link
  to a base station in fine-tuning mode (:mod:`.station`); the messages are
  :mod:`mtsc_sdr.runtime.protocol`'s.

Every link counts what it carries (:class:`LinkCounters`): the IQ samples up, the activations
(semantics) down, their gradients up, the payload gradients down, and the frames and messages
lost.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np

from mtsc_sdr.channel import AWGN, Stage, StreamingChannel
from mtsc_sdr.phy.header import FrameHeader
from mtsc_sdr.phy.rx import Receiver, ReceiverConfig
from mtsc_sdr.phy.tx import Transmitter
from mtsc_sdr.runtime import protocol
from mtsc_sdr.runtime.bs import payload_snr_db

from .split import Payload, ServerHalf

log = logging.getLogger("mtsc_sdr.finetune.link")


@dataclass
class LinkCounters:
    """Bytes and losses of a link. ``iq_bytes``: complex64 samples sent up; ``activation_bytes``:
    semantics down; ``gradient_up_bytes``: dL/ds up; ``gradient_down_bytes``: dL/dz down;
    ``frames_lost``: frames (or their semantics) that did not arrive; ``messages_lost``: gradient
    messages that did not; ``batches_lost``: batches given up for either."""

    iq_bytes: int = 0
    activation_bytes: int = 0
    gradient_up_bytes: int = 0
    gradient_down_bytes: int = 0
    frames_lost: int = 0
    messages_lost: int = 0
    batches_lost: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class LocalLink:
    """PHY transmitter -> software channel -> PHY receiver -> :class:`~.split.ServerHalf`, in one
    process (see the module docstring).

    Args:
        server: the base station's half.
        snr_db: Es/N0 of the AWGN stage (dB, set on the wire: the payload symbols the model sees
            get :data:`~mtsc_sdr.phy.ofdm.SUBCARRIER_SNR_GAIN_DB` more); ignored with ``stages``.
        seed: the noise stream's seed.
        stages: the channel's stages instead (:mod:`mtsc_sdr.channel`).
        session: the 16-bit session in the frame headers.
        gap_samples: zeros before each frame (and after the last, so the receiver sees its end).
    """

    def __init__(self, server: ServerHalf, snr_db: float = 20.0, seed: int = 0,
                 stages: Optional[Sequence[Stage]] = None, session: int = 1, gap_samples: int = 256):
        self.server, self.session, self.gap = server, session, gap_samples
        self.channel = StreamingChannel(list(stages) if stages is not None else [AWGN(snr_db, seed)])
        self.tx, self.rx = Transmitter(), Receiver(ReceiverConfig())
        self.counters = LinkCounters()
        self._seq = 0
        self._batch: list[int] = []

    def forward(self, payloads: list[Payload]) -> Optional[np.ndarray]:
        gap = np.zeros(self.gap, np.complex64)
        parts, seqs = [gap], []
        for p in payloads:
            seq = self._seq
            self._seq = (self._seq + 1) % (1 << 16)
            header = FrameHeader(session_id=self.session, seq=seq, payload_len=p.symbols.shape[0],
                                 rate_idx=p.rate_idx, task_id=p.task_id)
            parts += [self.tx.build(p.symbols, header), gap]
            seqs.append(seq)
        samples = np.concatenate(parts)
        self.counters.iq_bytes += samples.nbytes
        got = {}
        for f in self.rx.process(self.channel(samples)):
            h = f.header
            if h.session_id != self.session or h.seq not in seqs or h.seq in got:
                continue
            n_tokens = next(p.n_tokens for s, p in zip(seqs, payloads) if s == h.seq)
            got[h.seq] = self.server.forward((self.session, h.seq), f.payload, f.noise_var, h.rate_idx, n_tokens,
                                             h.task_id, payload_snr_db(f.noise_var))
        self._batch = [(self.session, s) for s in seqs]
        if len(got) < len(seqs):
            self.counters.frames_lost += len(seqs) - len(got)
            self.counters.batches_lost += 1
            self.abandon()
            return None
        semantics = np.stack([got[s] for s in seqs])
        self.counters.activation_bytes += semantics.nbytes
        return semantics

    def abandon(self) -> None:
        """Forget the batch sent last (an evaluation: no backward)."""
        self.server.discard(self._batch)

    def backward(self, grads: np.ndarray) -> Optional[list[np.ndarray]]:
        self.counters.gradient_up_bytes += np.asarray(grads, np.float32).nbytes
        out = self.server.backward(self._batch, grads)
        self.counters.gradient_down_bytes += sum(g.nbytes for g in out)
        return out


class RemoteLink:
    """The client's end of the real link to a base station in fine-tuning mode (module docstring).

    Args:
        client: the runtime's :class:`~mtsc_sdr.runtime.client.Client` (its handshake done or
            not): its transmitter, IQ stream and control link carry the batches.
        timeout_s: how long to wait for a batch's semantics, and for its payload gradients.
    """

    def __init__(self, client, timeout_s: float = 10.0):
        self.client, self.timeout_s = client, timeout_s
        self.counters = LinkCounters()
        self._seqs: list[int] = []
        self._seq = 0

    def forward(self, payloads: list[Payload]) -> Optional[np.ndarray]:
        c = self.client
        session = c.s.session
        gap = np.zeros(c.s.gap_samples, np.complex64)
        self._seqs = [(self._seq + i) % (1 << 16) for i in range(len(payloads))]
        self._seq = (self._seq + len(payloads)) % (1 << 16)
        got = {}
        try:
            for seq, p in zip(self._seqs, payloads):
                header = FrameHeader(session_id=session, seq=seq, payload_len=p.symbols.shape[0],
                                     rate_idx=p.rate_idx, task_id=p.task_id)
                samples = np.concatenate([gap, c.tx.build(p.symbols, header)])
                c.push.send(samples)
                self.counters.iq_bytes += samples.nbytes
            c.push.send(np.zeros(max(c.s.flush_samples, 1), np.complex64))
            for msg in self._replies(protocol.SEMANTICS, lambda m: m.meta.get("seq") in self._seqs,
                                     lambda: len(got) == len(self._seqs)):
                sem = msg.tensors.get("semantics")
                if sem is not None and sem.dtype == np.float32 and sem.ndim == 2:
                    got[msg.meta["seq"]] = sem
        except TimeoutError as exc:                  # nothing takes the IQ stream: the link is down
            log.warning("batch not sent: %s", exc)
        if len(got) < len(self._seqs):
            self.counters.frames_lost += len(self._seqs) - len(got)
            self.counters.batches_lost += 1
            self._send(protocol.GRADIENTS, meta={"seqs": []})          # the base station forgets it
            return None
        semantics = np.stack([got[s] for s in self._seqs])
        self.counters.activation_bytes += semantics.nbytes
        return semantics

    def abandon(self) -> None:
        """Tell the base station to forget the batch sent last (an evaluation: no backward)."""
        self._send(protocol.GRADIENTS, meta={"seqs": []})

    def backward(self, grads: np.ndarray) -> Optional[list[np.ndarray]]:
        grads = np.ascontiguousarray(grads, np.float32)
        reply = None
        if self._send(protocol.GRADIENTS, {"grads": grads}, meta={"seqs": self._seqs}):
            self.counters.gradient_up_bytes += grads.nbytes
            reply = next(iter(self._replies(protocol.PAYLOAD_GRADIENTS, lambda m: m.meta.get("seqs") == self._seqs,
                                            lambda: False, first=True)), None)
        lengths = None if reply is None else reply.meta.get("lengths")
        flat = None if reply is None else reply.tensors.get("grads")
        if (flat is None or not isinstance(lengths, list) or len(lengths) != len(self._seqs)
                or flat.dtype != np.complex64 or flat.shape != (sum(lengths),)):
            self.counters.messages_lost += 1
            self.counters.batches_lost += 1
            return None
        self.counters.gradient_down_bytes += flat.nbytes
        return np.split(np.array(flat), np.cumsum(lengths)[:-1])

    def _send(self, kind: str, tensors=None, meta=None) -> bool:
        """A control message to the base station; False (logged) when it could not go."""
        try:
            self.client.control.send(kind, tensors, meta=meta)
            return True
        except (TimeoutError, ConnectionError) as exc:
            log.warning("%s not sent: %s", kind, exc)
            return False

    def _replies(self, kind: str, wanted, done, first: bool = False):
        """Control messages of ``kind`` that ``wanted`` accepts, until ``done()`` (or the first,
        with ``first``) or the timeout; others are counted and dropped."""
        c = self.client
        deadline = time.monotonic() + self.timeout_s
        while not done() and time.monotonic() < deadline:
            msg = c.control.recv(timeout_ms=max(1, int(1000 * (deadline - time.monotonic()))))
            if msg is None:
                continue
            if msg.kind == kind and msg.session == c.s.session and wanted(msg):
                yield msg
                if first:
                    return
            else:
                c.counts["finetune_unexpected_message"] += 1
