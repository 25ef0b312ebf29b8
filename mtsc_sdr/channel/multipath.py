"""Multipath: a tapped delay line (FIR channel), static or block-faded.

Taps are spaced one sample apart. Either give the taps, or an exponential power-delay profile
``p_k ~ exp(-k / delay_spread_samples)``, k = 0 .. n_taps-1, normalised so that sum p_k = 1.

Power normalisation:
* given taps are scaled so that sum |h_k|^2 = 1 exactly (per realisation);
* random taps (``h_k ~ CN(0, p_k)``, redrawn every coherence block when block-faded, drawn once
  when static) have unit total power *in expectation*: E sum |h_k|^2 = sum p_k = 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import BlockStream, Seed, Stage, make_rng

TAP_BATCH = 256  # tap vectors drawn per internal batch


def exponential_pdp(n_taps: int, delay_spread_samples: float) -> np.ndarray:
    """(n_taps,) float64 tap powers ``exp(-k / delay_spread_samples)`` normalised to sum to 1.

    ``delay_spread_samples`` is the decay constant of the profile (for many taps, close to its RMS
    delay spread), in samples; 0 gives a single tap.
    """
    if n_taps < 1:
        raise ValueError(f"n_taps must be >= 1, got {n_taps}")
    if delay_spread_samples < 0:
        raise ValueError(f"delay_spread_samples must be >= 0, got {delay_spread_samples}")
    if delay_spread_samples == 0:
        p = np.zeros(n_taps)
        p[0] = 1.0
        return p
    p = np.exp(-np.arange(n_taps) / delay_spread_samples)
    return p / p.sum()


class TappedDelayLine(Stage):
    """FIR multipath channel with history kept across chunks.

    Output sample n is ``sum_k h_k[b(n)] x[n - k]`` where b(n) is the coherence block of output
    sample n (one block for static taps); samples before the stream started count as zero.

    Args:
        seed: explicit seed (used for random taps; ignored for given taps).
        taps: given complex taps (normalised to unit energy); or None to draw from ``pdp``.
        pdp: (L,) tap powers summing to 1 (see :func:`exponential_pdp`) when ``taps`` is None.
        coherence_samples: redraw random taps every this many samples; None keeps them static.
    Shapes: (N,) complex64 -> (N,) complex64.
    """

    def __init__(self, seed: Seed, taps: Sequence[complex] | None = None,
                 pdp: Sequence[float] | None = None, coherence_samples: int | None = None):
        if (taps is None) == (pdp is None):
            raise ValueError("give exactly one of taps or pdp")
        if coherence_samples is not None and coherence_samples < 1:
            raise ValueError(f"coherence_samples must be >= 1, got {coherence_samples}")
        self._rng = make_rng(seed)
        if taps is not None:
            if coherence_samples is not None:
                raise ValueError("given taps are static; coherence_samples applies to random taps only")
            h = np.asarray(taps, dtype=np.complex128).ravel()
            energy = float(np.sum(np.abs(h) ** 2))
            if h.size == 0 or energy == 0:
                raise ValueError("taps must contain at least one non-zero value")
            self._pdp = None
            self._static = (h / np.sqrt(energy)).astype(np.complex64)
        else:
            p = np.asarray(pdp, dtype=np.float64).ravel()
            if p.size == 0 or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
                raise ValueError("pdp must be non-negative tap powers summing to 1")
            self._pdp = p
            self._static = self._draw(1)[0] if coherence_samples is None else None
        self.n_taps = self._pdp.size if self._pdp is not None else self._static.size
        self.coherence_samples = coherence_samples
        self._history = np.zeros(self.n_taps - 1, dtype=np.complex64)  # last L-1 inputs
        self._taps_stream = BlockStream(TAP_BATCH, lambda: self._draw(TAP_BATCH))
        self._taps: np.ndarray | None = self._static
        self._left = 0  # outputs left in the current coherence block

    def _draw(self, count: int) -> np.ndarray:
        """(count, L) complex64 tap vectors, h_k ~ CN(0, p_k)."""
        w = self._rng.standard_normal((count, 2 * self._pdp.size)).view(np.complex128)
        return (w * np.sqrt(self._pdp / 2.0)).astype(np.complex64)

    @property
    def taps(self) -> np.ndarray | None:
        """(L,) complex64 taps in use for the most recent output sample (static taps if static)."""
        return self._taps

    def process_(self, x: np.ndarray) -> np.ndarray:
        n = x.size
        if n == 0:
            return x
        ext = np.concatenate([self._history, x])  # ext[j + L - 1] == x[j]
        L = self.n_taps
        if L > 1:
            self._history = ext[-(L - 1):].copy()
        if self.coherence_samples is None:
            return np.convolve(ext, self._static, mode="valid").astype(np.complex64, copy=False)
        out = np.empty(n, dtype=np.complex64)
        i = 0
        while i < n:
            if self._left == 0:
                self._taps = self._taps_stream.take(1)[0]
                self._left = self.coherence_samples
            k = min(self._left, n - i)
            out[i:i + k] = np.convolve(ext[i:i + k + L - 1], self._taps, mode="valid")
            self._left -= k
            i += k
        return out
