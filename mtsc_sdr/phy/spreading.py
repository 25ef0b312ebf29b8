"""DFT spreading of the payload (PHY version 2): what keeps strong payload symbols from clipping.

The JSC encoder gives important tokens more power: the default model's image-caption payloads
have single symbols at 40 times the average power (16 dB). On plain OFDM such a symbol sits on one
subcarrier of one OFDM symbol, so that OFDM symbol's time samples peak far above the rest, and at
the transmitter's 10 dB back-off about 12 samples of every such frame were clipped: a distortion
above the channel noise at 20 dB, concentrated on the very symbols the encoder marked important.
Version-2 frames therefore carry ``spread(payload)``: the L payload symbols mixed by a fixed
unitary map ``p2 * fft(p1 * s) / sqrt(L)`` (``p1``, ``p2``: pseudo-random unit phases seeded by L),
so every subcarrier and OFDM symbol carries a share of every payload symbol and the wire signal is
Gaussian-like whatever the payload's power profile. This is the DFT-spread OFDM of the LTE uplink
(there per OFDM symbol; here over the whole payload, so that the energy also spreads in time),
with phases that keep a payload dominated by one value from turning into a tone.

Receiver side (:mod:`mtsc_sdr.phy.rx`): per-subcarrier MMSE equalisation with gains
``c_k = |H_k|^2 / (|H_k|^2 + N0)``, ``despread``, then division by the mean gain ``c`` over the
payload's positions: the payload in the transmitter's units with the same noise on every symbol,
variance ``(1 - c) / c`` (the SINR of DFT-spread OFDM with MMSE equalisation; ``1 / snr`` on a flat
channel, exactly what zero-forcing gives there). Unitary: white noise stays white.
"""

from __future__ import annotations

import functools
import math

import numpy as np

#: Seed of the spreading phases (plus the payload length).
SEED = 0x53505244


@functools.lru_cache(maxsize=256)
def phases(n: int) -> np.ndarray:
    """complex128 (2, n): the two rows of unit phases for payloads of n symbols (read-only)."""
    rng = np.random.default_rng(SEED + int(n))
    out = np.exp(2j * math.pi * rng.random((2, int(n))))
    out.setflags(write=False)
    return out


def spread(payload: np.ndarray) -> np.ndarray:
    """complex (L,) -> complex128 (L,): what a version-2 frame carries on its data subcarriers."""
    p = phases(payload.size)
    return np.fft.fft(payload * p[0], norm="ortho") * p[1]


def despread(values: np.ndarray) -> np.ndarray:
    """The inverse of :func:`spread`: complex (L,) -> complex128 (L,)."""
    p = phases(values.size)
    return np.fft.ifft(values * np.conj(p[1]), norm="ortho") * np.conj(p[0])
