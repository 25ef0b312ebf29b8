"""Timing impairments: integer delay, fractional delay and sample-rate offset (SRO).

Time is measured in input samples. A receiver whose sample clock runs ``sro_ppm`` parts per million
fast, with the signal arriving ``delay_samples`` late, takes output sample m at input time
``t_m = m / (1 + sro_ppm * 1e-6) - delay_samples``, so it
produces about ``(1 + sro_ppm 1e-6)`` outputs per input and a tone at f cycles per input sample
appears at ``f / (1 + sro_ppm 1e-6)`` cycles per output sample.
"""

from __future__ import annotations

import math

import numpy as np

from .base import Stage

#: Half-width W of the windowed-sinc interpolator (2W taps).
SINC_HALF_WIDTH = 16
#: Fractional positions tabulated between two samples; the nearest one is used, so timing is
#: quantised to 1/(2*4096) sample (error below -65 dB for a tone at 0.4 cycles/sample).
SINC_PHASES = 4096
#: Kaiser window shape parameter (stop-band about -80 dB; passband flat to ~0.4 cycles/sample).
KAISER_BETA = 8.0
#: Outputs computed per vectorised batch (bounds temporary memory).
RESAMPLE_BATCH = 1 << 14
#: Use one FIR per run of outputs with the same phase when runs average at least this long.
MIN_MEAN_RUN = 64


class IntegerDelay(Stage):
    """Delays the stream by a whole number of samples (zeros come out first).

    Shapes: (N,) complex64 -> (N,) complex64 (the stream, shifted by ``delay_samples``).
    """

    def __init__(self, delay_samples: int):
        if delay_samples < 0 or int(delay_samples) != delay_samples:
            raise ValueError(f"delay_samples must be a non-negative integer, got {delay_samples}")
        self.delay_samples = int(delay_samples)
        self._line = np.zeros(self.delay_samples, dtype=np.complex64)

    def process_(self, x: np.ndarray) -> np.ndarray:
        d = self.delay_samples
        if d == 0 or x.size == 0:
            return x
        ext = np.concatenate([self._line, x])
        self._line = ext[-d:].copy()
        return ext[:x.size]


def _sinc_table(half_width: int, phases: int, beta: float) -> np.ndarray:
    """(phases + 1, 2W) complex64 (real values): row p holds the 2W taps for fractional position mu = p / phases.

    Tap j multiplies input sample ``k - W + 1 + j`` where ``k = floor(t)``, ``mu = t - k``; its value
    is the Kaiser-windowed sinc at distance ``mu + W - 1 - j``. Each row is normalised to sum to 1
    (unit gain at DC).
    """
    mu = np.arange(phases + 1)[:, None] / phases
    dist = mu + half_width - 1 - np.arange(2 * half_width)[None, :]
    window = np.i0(beta * np.sqrt(np.clip(1.0 - (dist / half_width) ** 2, 0.0, None))) / np.i0(beta)
    taps = np.sinc(dist) * window
    return (taps / taps.sum(axis=1, keepdims=True)).astype(np.complex64)


class Resampler(Stage):
    """Fractional delay and sample-rate offset by windowed-sinc interpolation, with history.

    Output m is the input interpolated at ``t_m = m / (1 + sro_ppm 1e-6) - delay_samples`` (input
    samples before the stream started count as zero), i.e. the stream is delayed by
    ``delay_samples`` and then resampled. Output m appears once input sample
    ``floor(t_m) + W`` has arrived (``lookahead_samples = W``); :meth:`StreamingChannel.flush` pushes
    zeros to release the tail. The signal should be band-limited to about +-0.4 cycles/sample.

    Args:
        delay_samples: timing offset (>= 0, may be fractional), in input samples.
        sro_ppm: receiver sample-clock offset in parts per million (positive: more outputs).
    Shapes: (N,) complex64 -> (M,) complex64, M ~ N (1 + sro_ppm 1e-6) over a long stream.
    """

    lookahead_samples = SINC_HALF_WIDTH

    def __init__(self, delay_samples: float = 0.0, sro_ppm: float = 0.0):
        if not delay_samples >= 0:
            raise ValueError(f"delay_samples must be >= 0, got {delay_samples}")
        if not -1e5 < sro_ppm < 1e5:
            raise ValueError(f"sro_ppm must be within +-1e5, got {sro_ppm}")
        self.delay_samples = float(delay_samples)
        self.sro_ppm = float(sro_ppm)
        eps = self.sro_ppm * 1e-6
        self._step_minus_one = -eps / (1.0 + eps)  # t_m = m + (m * step_minus_one - delay)
        self._table = _sinc_table(SINC_HALF_WIDTH, SINC_PHASES, KAISER_BETA)
        W = SINC_HALF_WIDTH
        zeros = W + math.ceil(self.delay_samples)  # the earliest output reads back to -delay - W + 1
        self._buf = np.zeros(zeros, dtype=np.complex64)  # input samples from index _buf_start on
        self._buf_start = -zeros
        self._next_out = 0  # absolute index of the next output sample

    def _times(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer part k (int64) and fraction mu in [0, 1) (float64) of t_m for outputs m."""
        r = m * self._step_minus_one - self.delay_samples
        whole = np.floor(r)
        return m + whole.astype(np.int64), r - whole

    def _last_ready(self, end: int) -> int:
        """Largest output index whose taps lie below input index ``end`` (exclusive), or -1."""
        W = SINC_HALF_WIDTH
        # floor(t_m) + W <= end - 1  <=>  t_m < end - W + 1; t_m = m / (1 + eps) - delay
        step = 1.0 + self._step_minus_one
        m = int(math.floor((end - W + 1 + self.delay_samples) / step)) + 1
        m = max(m, -1)
        while m >= 0 and self._times(np.array([m]))[0][0] + W > end - 1:
            m -= 1
        while self._times(np.array([m + 1]))[0][0] + W <= end - 1:
            m += 1
        return m

    def _interpolate(self, buf: np.ndarray, base: np.ndarray, phase: np.ndarray) -> np.ndarray:
        """(M,) outputs ``sum_j table[phase_m, j] buf[base_m + j]``.

        With a small clock offset the phase and the window's step stay constant over long runs
        (all the way for a pure fractional delay): each run is one FIR over a contiguous slice.
        Otherwise every output gathers its own window and taps.
        """
        two_w = 2 * SINC_HALF_WIDTH
        breaks = np.flatnonzero((np.diff(phase) != 0) | (np.diff(base) != 1)) + 1
        if (breaks.size + 1) * MIN_MEAN_RUN > base.size:
            windows = np.lib.stride_tricks.sliding_window_view(buf, two_w)
            return np.einsum("mj,mj->m", windows[base], self._table[phase])
        out = np.empty(base.size, dtype=np.complex64)
        for start, stop in zip([0, *breaks], [*breaks, base.size]):
            taps = self._table[phase[start]]
            segment = buf[base[start]:base[stop - 1] + two_w]
            out[start:stop] = np.correlate(segment, taps, mode="valid")  # taps are real: no conj
        return out

    def process_(self, x: np.ndarray) -> np.ndarray:
        W = SINC_HALF_WIDTH
        buf = np.concatenate([self._buf, x]) if x.size else self._buf
        end = self._buf_start + buf.size
        last = self._last_ready(end)
        outs = []
        for first in range(self._next_out, last + 1, RESAMPLE_BATCH):
            m = np.arange(first, min(first + RESAMPLE_BATCH, last + 1), dtype=np.int64)
            k, mu = self._times(m)
            phase = np.rint(mu * SINC_PHASES).astype(np.int64)  # nearest tabulated position
            base = k - W + 1 - self._buf_start  # where each output's 2W-sample window starts in buf
            outs.append(self._interpolate(buf, base, phase))
        self._next_out = last + 1
        keep_from = int(self._times(np.array([self._next_out]))[0][0]) - W + 1  # first index still needed
        drop = min(max(keep_from - self._buf_start, 0), buf.size)
        self._buf = buf[drop:].copy()
        self._buf_start += drop
        if not outs:
            return np.empty(0, dtype=np.complex64)
        return outs[0] if len(outs) == 1 else np.concatenate(outs)
