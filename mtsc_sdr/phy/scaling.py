"""The one sample-scaling table: complex64 full scale (|I|, |Q| <= 1.0) <-> each driver's format.

The PHY produces complex64 samples with full scale 1.0 (conventions.py: the payload sits 10 dB
below it). Drivers want:

============  ===========================================  ===========================================
backend       transmit (to_driver)                         receive (from_driver)
============  ===========================================  ===========================================
pyadi-iio     complex, I and Q integer-valued, 1.0 ->      complex ints from ``rx()``: the AD936x's
              2**14 (``Pluto.tx()`` casts to int16; the     12-bit ADC sign-extended in int16
              DAC takes the 12 MSBs, so 2**14 leaves 6 dB   (IIO scan type le:S12/16, no shift),
              below int16 wrap-around at 2**15).            +-2**11 = full scale.
gr-iio        complex64, +-1.0 (the block scales to the     complex64, +-1.0 (the block scales the
              DAC itself).                                  ADC itself).
uhd           complex64 ``fc32``, +-1.0.                    complex64 ``fc32``, +-1.0.
============  ===========================================  ===========================================

Overflow policy (transmit): components beyond full scale are **clipped** to full scale (what the
DAC would do, but without int16 wrap-around) and the number of affected samples is returned;
``overflow="raise"`` refuses instead (:class:`OverflowError`). The PHY's own frames never overflow
(the transmitter already limits |x| <= 1). Receive: nothing can overflow, but samples at the ADC
rails (|I| or |Q| >= rx_rail) are counted as saturated, a sign the receive gain is too high.

The pyadi-iio receive scale (2**11) is this project's reading of the AD936x driver's data format;
hardware calibration (mtsc_sdr.radio) checks it and can override the table entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SampleFormat:
    """How one backend represents samples. Scales are driver units per 1.0 of full scale."""

    backend: str
    tx_scale: float
    rx_scale: float
    #: True when the driver wants integer-valued I/Q (rounded to nearest here).
    integer: bool
    #: Receive values with |I| or |Q| >= rx_rail (driver units) count as saturated.
    rx_rail: float
    note: str


SCALING: dict[str, SampleFormat] = {
    "pyadi-iio": SampleFormat("pyadi-iio", tx_scale=2.0 ** 14, rx_scale=2.0 ** 11, integer=True,
                              rx_rail=2.0 ** 11 - 1,
                              note="tx: complex with integer I/Q, 1.0 -> 2**14; rx: 12-bit ADC, 2**11 -> 1.0"),
    "gr-iio": SampleFormat("gr-iio", tx_scale=1.0, rx_scale=1.0, integer=False, rx_rail=1.0,
                           note="complex64 +-1.0 both ways"),
    "uhd": SampleFormat("uhd", tx_scale=1.0, rx_scale=1.0, integer=False, rx_rail=1.0,
                        note="complex64 fc32 +-1.0 both ways"),
}


def sample_format(backend: str) -> SampleFormat:
    try:
        return SCALING[backend]
    except KeyError:
        raise ValueError(f"backend: unknown {backend!r} (known: {', '.join(sorted(SCALING))})") from None


def to_driver(samples: np.ndarray, backend: str, *, overflow: str = "clip") -> tuple[np.ndarray, int]:
    """complex (N,) full scale 1.0 -> (samples in the driver's format, number of clipped samples).

    pyadi-iio gets complex64 with integer-valued I/Q in +-2**14; gr-iio and uhd get complex64 +-1.0.
    overflow: "clip" (default) clips I and Q to full scale and counts the samples affected;
    "raise" raises OverflowError if any component exceeds full scale.
    """
    if overflow not in ("clip", "raise"):
        raise ValueError(f"overflow: expected 'clip' or 'raise', got {overflow!r}")
    fmt = sample_format(backend)
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"samples: expected a 1-D array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples: contains NaN or inf")
    re = np.real(x).astype(np.float64)
    im = np.imag(x).astype(np.float64)
    over = (np.abs(re) > 1.0) | (np.abs(im) > 1.0)
    n_over = int(np.count_nonzero(over))
    if n_over and overflow == "raise":
        raise OverflowError(f"{n_over} samples exceed full scale (|I| or |Q| > 1.0) for {backend}")
    re = np.clip(re, -1.0, 1.0) * fmt.tx_scale
    im = np.clip(im, -1.0, 1.0) * fmt.tx_scale
    if fmt.integer:
        re, im = np.rint(re), np.rint(im)
    return (re + 1j * im).astype(np.complex64), n_over


def from_driver(data: np.ndarray, backend: str) -> tuple[np.ndarray, int]:
    """Driver samples -> (complex64 with full scale 1.0, number of samples at the ADC rails).

    ``data`` may be complex (as pyadi-iio's rx(), gr-iio and UHD deliver it) or interleaved real
    I/Q pairs (even length, e.g. raw int16 buffers).
    """
    fmt = sample_format(backend)
    x = np.asarray(data)
    if x.ndim != 1:
        raise ValueError(f"data: expected a 1-D array, got shape {x.shape}")
    if not np.iscomplexobj(x):
        if x.size % 2:
            raise ValueError("data: interleaved I/Q needs an even number of values")
        x = x[0::2].astype(np.float64) + 1j * x[1::2].astype(np.float64)
    re, im = np.real(x), np.imag(x)
    saturated = int(np.count_nonzero((np.abs(re) >= fmt.rx_rail) | (np.abs(im) >= fmt.rx_rail)))
    return (x / fmt.rx_scale).astype(np.complex64), saturated
