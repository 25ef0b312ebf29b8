"""Flat block fading (Rician, with Rayleigh as K = 0) with E|h|^2 = 1 exactly."""

from __future__ import annotations

import math

import numpy as np

from .base import BlockStream, Seed, Stage, make_rng

#: Gains drawn per internal batch (fixed, so draws do not depend on chunking).
GAIN_BATCH = 1024


def k_factor_linear(k_factor_db: float | None) -> float:
    """Rician K factor in dB -> linear; None (or -inf dB) means Rayleigh, K = 0."""
    if k_factor_db is None or k_factor_db == -math.inf:
        return 0.0
    return 10.0 ** (k_factor_db / 10.0)


def rician_gains(rng: np.random.Generator, n: int, k_factor: float,
                 los_phase_rad: float | None = 0.0) -> np.ndarray:
    """Draw ``n`` Rician channel gains with E|h|^2 = 1.

    ``h = sqrt(K/(K+1)) e^{j phi} + sqrt(1/(K+1)) w`` with ``w ~ CN(0, 1)`` (real and imaginary
    parts each of variance 1/2), so E|h|^2 = K/(K+1) + 1/(K+1) = 1 for every K.

    Args:
        rng: generator the draws come from.
        n: number of gains.
        k_factor: Rician K, linear (LOS power over scattered power); 0 gives Rayleigh.
        los_phase_rad: phase phi of the line-of-sight component; None draws it uniformly per gain.
    Returns:
        (n,) complex128 gains.
    """
    if k_factor < 0:
        raise ValueError(f"k_factor must be >= 0, got {k_factor}")
    w = rng.standard_normal(2 * n).view(np.complex128) * math.sqrt(0.5)
    scattered = math.sqrt(1.0 / (k_factor + 1.0))
    los_amp = math.sqrt(k_factor / (k_factor + 1.0))
    if los_phase_rad is None:
        los = los_amp * np.exp(1j * rng.uniform(0.0, 2 * math.pi, n))
    else:
        los = los_amp * complex(math.cos(los_phase_rad), math.sin(los_phase_rad))
    return los + scattered * w


class BlockFading(Stage):
    """Multiplies the signal by one complex gain per coherence block of ``coherence_samples``.

    Gains are Rician (:func:`rician_gains`), E|h|^2 = 1 exactly; ``k_factor_db=None`` is Rayleigh.
    Block boundaries are at absolute sample indices 0, C, 2C, ... of the stream, whatever the
    chunking.

    Args:
        coherence_samples: C, samples per block with a constant gain.
        seed: explicit seed of the gain stream.
        k_factor_db: Rician K in dB, or None for Rayleigh.
        los_phase_rad: LOS phase; None draws it uniformly per block.
    Shapes: (N,) complex64 -> (N,) complex64.
    """

    def __init__(self, coherence_samples: int, seed: Seed, k_factor_db: float | None = None,
                 los_phase_rad: float | None = 0.0):
        if coherence_samples < 1:
            raise ValueError(f"coherence_samples must be >= 1, got {coherence_samples}")
        self.coherence_samples = int(coherence_samples)
        self.k_factor_db = k_factor_db
        self.los_phase_rad = los_phase_rad
        self._k = k_factor_linear(k_factor_db)
        self._rng = make_rng(seed)
        self._gains = BlockStream(GAIN_BATCH, self._next_batch)
        self._gain: np.complex64 | None = None  # gain of the current block
        self._left = 0  # samples left in the current block

    @property
    def current_gain(self) -> np.complex64 | None:
        """Gain of the block the last processed sample belonged to (None before any sample)."""
        return self._gain

    def _next_batch(self) -> np.ndarray:
        return rician_gains(self._rng, GAIN_BATCH, self._k, self.los_phase_rad).astype(np.complex64)

    def process_(self, x: np.ndarray) -> np.ndarray:
        n, c = x.size, self.coherence_samples
        i = min(self._left, n)  # finish the block begun in an earlier chunk
        if i:
            x[:i] *= self._gain
            self._left -= i
        full = (n - i) // c
        if full:
            h = self._gains.take(full)
            blocks = x[i:i + full * c].reshape(full, c)  # a view: one row per coherence block
            blocks *= h[:, None]
            i += full * c
            self._gain = h[-1]
        if i < n:
            self._gain = self._gains.take(1)[0]
            x[i:] *= self._gain
            self._left = c - (n - i)
        return x
