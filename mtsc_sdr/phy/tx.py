"""Transmitter: payload symbols + header -> one frame of complex64 baseband samples.

Power and scaling (see :mod:`mtsc_sdr.conventions`): the payload is expected to have unit average
power (the JSC encoder guarantees it). It is *not* renormalised per frame, so the receiver can undo
the fixed scaling and hand back the payload in the transmitter's units. Each OFDM symbol carries
the payload on 48 data subcarriers and 4 unit pilots, all scaled so that a unit-power payload gives
average power ``PAYLOAD_POWER`` (10 dB below full scale) on the wire; preamble and header have the
same average power. Peak control: the payload goes out DFT-spread (header version 2,
:mod:`mtsc_sdr.phy.spreading`), so the wire signal is Gaussian-like whatever the payload's power
profile; samples with ``|x| > clip_level`` (default full scale 1.0) are clipped in magnitude (phase
kept) and counted in ``stats["clipped_samples"]``. With 10 dB back-off a Gaussian-like OFDM payload
clips about 5e-5 of its samples.
"""

from __future__ import annotations

import numpy as np

from mtsc_sdr.phy import header as hdr
from mtsc_sdr.phy import ofdm, spreading


def frame_length(payload_len: int) -> int:
    """Length in samples of a frame carrying ``payload_len`` payload symbols."""
    return ofdm.PREAMBLE_LEN + ofdm.SYM_LEN * (hdr.N_HEADER_SYM + ofdm.n_payload_symbols(payload_len))


def payload_grid(payload: np.ndarray) -> np.ndarray:
    """Payload (L,) -> data values (ceil(L/48), 48), the last symbol completed with the known filler."""
    n_sym = ofdm.n_payload_symbols(payload.size)
    data = np.empty(n_sym * ofdm.N_DATA, dtype=np.complex128)
    data[: payload.size] = payload
    pad = data.size - payload.size
    data[payload.size:] = ofdm.FILLER[:pad]
    return data.reshape(n_sym, ofdm.N_DATA)


class Transmitter:
    """Builds frames. ``stats``: frames, samples, clipped_samples (cumulative)."""

    def __init__(self, clip_level: float = 1.0):
        if not clip_level > 0:
            raise ValueError(f"clip_level: must be positive, got {clip_level!r}")
        self.clip_level = float(clip_level)
        self.stats = {"frames": 0, "samples": 0, "clipped_samples": 0}

    def build(self, payload: np.ndarray, header: hdr.FrameHeader, *, corrupt_crc: bool = False) -> np.ndarray:
        """One frame.

        payload: complex (L,), unit average power expected; ``header.payload_len`` must equal L.
        Returns complex64 (frame_length(L),) samples, |x| <= clip_level.
        ``corrupt_crc`` (testing only) sends a header whose CRC does not match.
        """
        payload = np.asarray(payload)
        if payload.ndim != 1 or payload.size == 0:
            raise ValueError(f"payload: expected a non-empty 1-D array, got shape {payload.shape}")
        if not np.all(np.isfinite(payload)):
            raise ValueError("payload: contains NaN or inf")
        if header.payload_len != payload.size:
            raise ValueError(f"header.payload_len: {header.payload_len} does not match the payload's "
                             f"{payload.size} symbols")
        head = ofdm.assemble(hdr.encode(header, corrupt_crc=corrupt_crc), first_symbol=0)
        values = payload.astype(np.complex128)
        if hdr.spreads_payload(header.version):
            values = spreading.spread(values)
        body = ofdm.assemble(payload_grid(values), first_symbol=hdr.N_HEADER_SYM)
        x = np.concatenate([ofdm.PREAMBLE.astype(np.complex128), ofdm.modulate(head), ofdm.modulate(body)])
        mag = np.abs(x)
        over = mag > self.clip_level
        n_clip = int(np.count_nonzero(over))
        if n_clip:
            x[over] *= self.clip_level / mag[over]
        self.stats["frames"] += 1
        self.stats["samples"] += x.size
        self.stats["clipped_samples"] += n_clip
        return x.astype(np.complex64)
