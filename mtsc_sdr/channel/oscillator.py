"""Oscillator impairments: carrier frequency offset (with a static phase offset) and phase noise.

Frequencies are in Hz together with the sample rate ``rate_sps`` (samples per second) throughout
the channel package; the normalised offset is ``cfo_hz / rate_sps`` cycles per sample.
"""

from __future__ import annotations

import math

import numpy as np

from .base import BlockStream, Seed, Stage, make_rng

#: Samples per precomputed phasor block.
PHASOR_BLOCK_SAMPLES = 1 << 13


class _PhasorStage(Stage):
    """Multiplies the stream by a unit phasor stream served from fixed-size blocks."""

    def __init__(self, block_len: int):
        self._phasors = BlockStream(block_len, self._next_block)

    def _next_block(self) -> np.ndarray:
        raise NotImplementedError

    def process_(self, x: np.ndarray) -> np.ndarray:
        i = 0
        for seg in self._phasors.segments(x.size):
            x[i:i + seg.size] *= seg
            i += seg.size
        return x


class CarrierOffset(_PhasorStage):
    """Rotates sample n by ``exp(j (2 pi cfo_hz/rate_sps n + phase_rad))``.

    A table ``exp(j 2 pi f k)``, k < B, is computed once; each block of B samples is that table
    times the block's start phasor, whose phase is carried in float64 from block to block, so the
    rotation continues exactly across chunks and no exp() is evaluated per sample.

    Args:
        cfo_hz: carrier frequency offset in Hz (transmitter LO minus receiver LO: the received
            signal appears shifted by +cfo_hz, and a positive value spins the constellation
            counter-clockwise).
        rate_sps: sample rate in samples per second.
        phase_rad: static phase offset at sample 0.
    Shapes: (N,) complex64 -> (N,) complex64.
    """

    def __init__(self, cfo_hz: float, rate_sps: float, phase_rad: float = 0.0):
        if not rate_sps > 0:
            raise ValueError(f"rate_sps must be positive, got {rate_sps}")
        super().__init__(PHASOR_BLOCK_SAMPLES)
        self.cfo_hz = float(cfo_hz)
        self.rate_sps = float(rate_sps)
        self.phase_rad = float(phase_rad)
        f = self.cfo_hz / self.rate_sps  # cycles per sample
        k = np.arange(PHASOR_BLOCK_SAMPLES, dtype=np.float64)
        self._table = np.exp(2j * math.pi * f * k).astype(np.complex64)
        self._cycles_per_block = math.fmod(f * PHASOR_BLOCK_SAMPLES, 1.0)
        self._start_cycles = self.phase_rad / (2 * math.pi)  # phase of the next block, in cycles
        self._block = np.empty(PHASOR_BLOCK_SAMPLES, dtype=np.complex64)

    @property
    def cfo_norm(self) -> float:
        """Offset in cycles per sample."""
        return self.cfo_hz / self.rate_sps

    def _next_block(self) -> np.ndarray:
        start = np.complex64(complex(math.cos(2 * math.pi * self._start_cycles),
                                     math.sin(2 * math.pi * self._start_cycles)))
        np.multiply(self._table, start, out=self._block)
        self._start_cycles = math.fmod(self._start_cycles + self._cycles_per_block, 1.0)
        return self._block


class PhaseNoise(_PhasorStage):
    """Wiener (random-walk) phase noise of an oscillator with a Lorentzian 3-dB linewidth.

    The phase increment per sample is Gaussian with variance ``2 pi linewidth_hz / rate_sps``
    (rad^2), so the phase difference over L samples has variance ``L`` times that. The phase
    continues across chunks.

    Args:
        linewidth_hz: two-sided 3-dB linewidth of the oscillator (Hz).
        rate_sps: sample rate (samples per second).
        seed: explicit seed of the phase walk.
    Shapes: (N,) complex64 -> (N,) complex64.
    """

    def __init__(self, linewidth_hz: float, rate_sps: float, seed: Seed):
        if linewidth_hz < 0 or not rate_sps > 0:
            raise ValueError(f"need linewidth_hz >= 0 and rate_sps > 0, got {linewidth_hz}, {rate_sps}")
        super().__init__(PHASOR_BLOCK_SAMPLES)
        self.linewidth_hz = float(linewidth_hz)
        self.rate_sps = float(rate_sps)
        self._step_std_rad = math.sqrt(2 * math.pi * self.linewidth_hz / self.rate_sps)
        self._rng = make_rng(seed)
        self._phase_rad = 0.0

    @property
    def increment_var_rad2(self) -> float:
        """Variance of the phase increment per sample (rad^2)."""
        return self._step_std_rad ** 2

    def _next_block(self) -> np.ndarray:
        steps = self._rng.standard_normal(PHASOR_BLOCK_SAMPLES) * self._step_std_rad
        phase = np.cumsum(steps)
        phase += self._phase_rad
        self._phase_rad = math.remainder(float(phase[-1]), 2 * math.pi)
        return np.exp(1j * phase).astype(np.complex64)
