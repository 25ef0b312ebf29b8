"""Additive white Gaussian noise at a given SNR (Es/N0 per complex symbol on the payload)."""

from __future__ import annotations

import math

import numpy as np

from mtsc_sdr.conventions import PAYLOAD_POWER, noise_power

from .base import BlockStream, Seed, Stage, make_rng

#: Complex samples of noise generated per internal block (512 KiB of complex64: stays in cache).
NOISE_BLOCK_SAMPLES = 1 << 15


class AWGN(Stage):
    """Adds circular complex Gaussian noise of total power N0 per sample.

    ``N0 = conventions.noise_power(snr_db, signal_power)``: I and Q each carry N0/2. The SNR is the
    project-wide one, Es/N0 per complex symbol measured on the payload, whose power on the wire is
    ``PAYLOAD_POWER`` by default; fading with E|h|^2 = 1 leaves it unchanged. Noise is always fresh
    (drawn from the stage's own generator, never recycled from a pool).

    Args:
        snr_db: Es/N0 in dB.
        seed: explicit seed (int or SeedSequence) of the noise stream.
        signal_power: average payload power the SNR refers to (linear, full scale = 1).
    Shapes: (N,) complex64 -> (N,) complex64.
    """

    def __init__(self, snr_db: float, seed: Seed, signal_power: float = PAYLOAD_POWER):
        if not signal_power > 0:
            raise ValueError(f"signal_power must be positive, got {signal_power}")
        self.snr_db = float(snr_db)
        self.signal_power = float(signal_power)
        self._rng = make_rng(seed)
        self._scale = self._std_per_component()
        self._buf = np.empty(2 * NOISE_BLOCK_SAMPLES, dtype=np.float32)
        self._noise = BlockStream(NOISE_BLOCK_SAMPLES, self._next_block)

    @property
    def noise_power(self) -> float:
        """Total complex noise power N0 per sample (linear)."""
        return noise_power(self.snr_db, self.signal_power)

    def _std_per_component(self) -> np.float32:
        return np.float32(math.sqrt(self.noise_power / 2.0))

    def _next_block(self) -> np.ndarray:
        self._rng.standard_normal(out=self._buf, dtype=np.float32)
        self._buf *= self._scale
        return self._buf.view(np.complex64)

    def set_snr_db(self, snr_db: float) -> None:
        """Change the SNR from the next sample on (the stream of underlying draws is unchanged)."""
        self.snr_db = float(snr_db)
        new_scale = self._std_per_component()
        rest = self._noise.unconsumed()
        if rest is not None and len(rest):
            rest *= np.float32(new_scale / self._scale)
        self._scale = new_scale

    def process_(self, x: np.ndarray) -> np.ndarray:
        i = 0
        for seg in self._noise.segments(x.size):
            x[i:i + seg.size] += seg
            i += seg.size
        return x
