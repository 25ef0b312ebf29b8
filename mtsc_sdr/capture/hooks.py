"""Capture hooks: record the samples a PHY receiver is given, annotated with what it found.

:class:`RecordingReceiver` stands in for a :class:`~mtsc_sdr.phy.rx.Receiver` (same ``process`` /
``flush`` / ``stats`` / ``drops``): every chunk goes to a :class:`~.sigmf_io.SigMFWriter` before
the receiver sees it, so the receiver's stream index *is* the recording's sample index and each
frame's ``start`` can be annotated as is. The base station (``mtsc-sdr bs --capture``) and the
link test (``mtsc-sdr link-test --capture``) wrap their receivers with it.

Annotations (``core:label``):

* ``"frame"``: a frame whose header decoded; ``core:sample_count`` is the frame's length;
  ``mtsc:session``, ``mtsc:seq``, ``mtsc:task_id``, ``mtsc:rate_idx``, ``mtsc:payload_len``
  (header fields), ``mtsc:snr_db`` (SNR estimate, Es/N0 per payload symbol), ``mtsc:cfo_hz``
  (or ``mtsc:cfo`` in cycles/sample when the rate is unknown), ``mtsc:sro_ppm``;
* ``"dropped"``: a confirmed preamble whose frame was dropped; ``mtsc:reason``
  (``header_crc_fail``, ``header_bad_version``, ``header_bad_length``, ``truncated``),
  ``mtsc:snr_db``, ``mtsc:cfo_hz`` / ``mtsc:cfo``; ``core:sample_count`` covers preamble and header.

The base station also records who it served, for :mod:`mtsc_sdr.runtime.replay`:
``mtsc:checkpoint`` (its checkpoint identity) and ``mtsc:sessions`` (``{"<session>": what the
client said about itself in its ``hello``: precision, SNR label and where its items came from}``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from mtsc_sdr.phy import header as hdr
from mtsc_sdr.phy import ofdm

from .sigmf_io import END_COMPLETE, SigMFWriter, annotation

#: What a recorder may tell a :class:`~.sigmf_io.SigMFWriter` besides rate and source
#: (``mtsc-sdr bs --capture-info``).
CAPTURE_INFO_KEYS = ("frequency_hz", "hw", "rx_gain_db", "tx_gain_db", "calibration_id", "description", "fields")
#: Receiver counters that each add one :class:`~mtsc_sdr.phy.rx.DropRecord`.
DROP_COUNTERS = ("header_crc_fail", "header_bad_version", "header_bad_length", "truncated")
#: Samples a dropped frame's annotation covers: preamble and header.
HEADER_SPAN_SAMPLES = ofdm.PREAMBLE_LEN + ofdm.SYM_LEN * hdr.N_HEADER_SYM


def frame_samples(payload_len: int) -> int:
    """Length in samples of a frame carrying ``payload_len`` complex payload symbols."""
    return ofdm.PREAMBLE_LEN + ofdm.SYM_LEN * (hdr.N_HEADER_SYM + ofdm.n_payload_symbols(payload_len))


def _cfo(cfo: float, rate_hz: Optional[float]) -> tuple[dict[str, float], str]:
    """(annotation field, text) of a CFO estimate in cycles/sample: in Hz when the rate is known."""
    if rate_hz:
        return {"cfo_hz": round(cfo * rate_hz, 1)}, f"CFO {cfo * rate_hz:+.0f} Hz"
    return {"cfo": cfo}, f"CFO {cfo:+.2e} cycles/sample"


def frame_annotation(frame, rate_hz: Optional[float]) -> dict[str, Any]:
    """The ``"frame"`` annotation of a decoded :class:`~mtsc_sdr.phy.rx.RxFrame`."""
    h = frame.header
    cfo, cfo_text = _cfo(frame.cfo, rate_hz)
    return annotation(frame.start, frame_samples(h.payload_len), "frame",
                      f"session {h.session_id} seq {h.seq} task {h.task_id} rate {h.rate_idx}: "
                      f"SNR est {frame.snr_db:.1f} dB, {cfo_text}",
                      session=h.session_id, seq=h.seq, task_id=h.task_id, rate_idx=h.rate_idx,
                      payload_len=h.payload_len, snr_db=round(float(frame.snr_db), 3),
                      sro_ppm=round(float(frame.sro_ppm), 3), **cfo)


def drop_annotation(drop, rate_hz: Optional[float]) -> dict[str, Any]:
    """The ``"dropped"`` annotation of a :class:`~mtsc_sdr.phy.rx.DropRecord`."""
    cfo, cfo_text = _cfo(drop.cfo, rate_hz)
    return annotation(drop.start, HEADER_SPAN_SAMPLES, "dropped",
                      f"dropped ({drop.reason}): SNR est {drop.snr_db:.1f} dB, {cfo_text}",
                      reason=drop.reason, snr_db=round(float(drop.snr_db), 3), **cfo)


class AnnotatingReceiver:
    """A :class:`~mtsc_sdr.phy.rx.Receiver` (same ``process`` / ``flush`` / ``stats`` / ``drops``)
    that hands each frame it decodes and drops, as a SigMF annotation dict, to ``on_annotation``
    (in stream order per call: the drops, then the frames), and each chunk it is given to
    ``on_samples`` before processing it."""

    def __init__(self, rx, on_annotation: Callable[[dict], None],
                 on_samples: Optional[Callable[[np.ndarray], None]] = None):
        self.rx, self.on_annotation, self.on_samples = rx, on_annotation, on_samples
        self._drops_seen = 0

    @property
    def stats(self) -> dict:
        return self.rx.stats

    @property
    def drops(self):
        return self.rx.drops

    @property
    def config(self):
        return self.rx.config

    def process(self, samples: np.ndarray) -> list:
        """(``on_samples``, then) :meth:`Receiver.process`; returns the frames completed."""
        if self.on_samples is not None:
            self.on_samples(samples)
        return self._annotated(self.rx.process(samples))

    def flush(self) -> list:
        """:meth:`Receiver.flush` (end of stream), annotating what it completes or cuts off."""
        return self._annotated(self.rx.flush())

    def _annotated(self, frames: list) -> list:
        rate = self.rx.config.sample_rate_hz
        # every drop counter adds one record to rx.drops (a bounded deque): the newest ones are new
        n_dropped = sum(self.rx.stats[k] for k in DROP_COUNTERS)
        new = min(n_dropped - self._drops_seen, len(self.rx.drops))
        self._drops_seen = n_dropped
        for d in list(self.rx.drops)[len(self.rx.drops) - new:]:
            self.on_annotation(drop_annotation(d, rate))
        for f in frames:
            self.on_annotation(frame_annotation(f, rate))
        return frames


class RecordingReceiver(AnnotatingReceiver):
    """An :class:`AnnotatingReceiver` recording into ``writer``: every chunk is written before the
    receiver sees it, so frame starts are the recording's own sample index."""

    def __init__(self, rx, writer: SigMFWriter):
        super().__init__(rx, writer.add_annotation, writer.write)
        self.writer = writer

    def add_session(self, session: int, info: Any) -> None:
        """Record a session the base station accepted and what its client said about itself."""
        sessions = dict(self.writer.get_field("mtsc:sessions") or {})
        sessions[str(session)] = info if isinstance(info, dict) else {}
        self.writer.set_field("mtsc:sessions", sessions)

    def close(self, end: str = END_COMPLETE) -> None:
        self.writer.close(end)


def capture_receiver(rx, path: str, *, source: str, **writer_args: Any) -> RecordingReceiver:
    """Wrap ``rx`` so that it records into ``path`` (``NAME``: NAME.sigmf-meta + NAME.sigmf-data)
    at the receiver's sample rate. ``writer_args``: the other :class:`~.sigmf_io.SigMFWriter`
    keywords (frequency_hz, hw, rx_gain_db, tx_gain_db, calibration_id, description, fields)."""
    rate = rx.config.sample_rate_hz
    if not rate:
        raise ValueError("a recording needs the receiver's sample rate (ReceiverConfig.sample_rate_hz)")
    return RecordingReceiver(rx, SigMFWriter(path, sample_rate_sps=rate, source=source, **writer_args))
