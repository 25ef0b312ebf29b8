"""Receiver front-end impairments: IQ gain/phase imbalance and DC offset."""

from __future__ import annotations

import math

import numpy as np

from .base import Stage


class IQImbalance(Stage):
    """Gain and phase mismatch between the I and Q branches of the receiver's mixer.

    The I branch is the reference; the Q branch has amplitude gain ``g = 10^(gain_db/20)`` and its
    LO is ``phase_deg`` away from quadrature::

        I' = I
        Q' = g (Q cos(phi) - I sin(phi))

    Equivalently ``y = K1 x + K2 conj(x)`` with ``K1 = (1 + g e^{-j phi}) / 2`` and
    ``K2 = (1 - g e^{j phi}) / 2``; a tone comes out with a mirror image ``image_rejection_db``
    below it.

    Args:
        gain_db: Q-branch gain relative to I (dB).
        phase_deg: quadrature phase error (degrees).
    Shapes: (N,) complex64 -> (N,) complex64.
    """

    def __init__(self, gain_db: float = 0.0, phase_deg: float = 0.0):
        self.gain_db = float(gain_db)
        self.phase_deg = float(phase_deg)
        g = 10.0 ** (self.gain_db / 20.0)
        phi = math.radians(self.phase_deg)
        self._q_from_q = np.float32(g * math.cos(phi))
        self._q_from_i = np.float32(-g * math.sin(phi))

    @property
    def coefficients(self) -> tuple[complex, complex]:
        """(K1, K2) of ``y = K1 x + K2 conj(x)``."""
        g = 10.0 ** (self.gain_db / 20.0)
        phi = math.radians(self.phase_deg)
        return (1 + g * complex(math.cos(phi), -math.sin(phi))) / 2, (1 - g * complex(math.cos(phi), math.sin(phi))) / 2

    @property
    def image_rejection_db(self) -> float:
        """Image rejection ratio 10 log10(|K1|^2 / |K2|^2) in dB (inf when perfectly balanced)."""
        k1, k2 = self.coefficients
        return math.inf if abs(k2) == 0 else 10 * math.log10(abs(k1) ** 2 / abs(k2) ** 2)

    def process_(self, x: np.ndarray) -> np.ndarray:
        iq = x.view(np.float32).reshape(-1, 2)  # columns: I, Q (views into x)
        q = iq[:, 1]
        q *= self._q_from_q
        q += self._q_from_i * iq[:, 0]
        return x


class DCOffset(Stage):
    """Adds a constant complex offset ``i + j q`` (full-scale units, |x| <= 1 is full scale).

    Shapes: (N,) complex64 -> (N,) complex64.
    """

    def __init__(self, i: float = 0.0, q: float = 0.0):
        self.i = float(i)
        self.q = float(q)
        self._offset = np.complex64(complex(self.i, self.q))

    def process_(self, x: np.ndarray) -> np.ndarray:
        x += self._offset
        return x
