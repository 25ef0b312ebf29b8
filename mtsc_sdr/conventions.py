"""Signal-level conventions shared by every part of the link (one definition project-wide).

Power and SNR
-------------
* Baseband samples are complex64. Full scale is |x| <= 1.0 (what gr-iio and UHD take; the
  per-driver integer scaling lives in :mod:`mtsc_sdr.phy.scaling`).
* The PHY normalises the payload to unit average power and then applies a fixed back-off of
  ``BACKOFF_DB``, so on the wire the payload has average power ``PAYLOAD_POWER`` and its rare
  peaks stay below full scale.
* **SNR** everywhere (software channel, GNU Radio flowgraphs, over-the-air calibration, the PHY's
  estimate) means Es/N0 per complex symbol measured on the payload:
  ``snr_db = 10*log10(PAYLOAD_POWER / N0)`` where ``N0`` is the total complex noise power per
  sample (I and Q each carry ``N0/2``). Fading with ``E|h|^2 = 1`` leaves the average unchanged.
"""

from __future__ import annotations

import math

#: Back-off of the payload's average power below full scale, in dB.
BACKOFF_DB = 10.0
#: Average power of the payload samples on the wire (linear, full scale = 1.0).
PAYLOAD_POWER = 10.0 ** (-BACKOFF_DB / 10.0)


def noise_power(snr_db: float, signal_power: float = PAYLOAD_POWER) -> float:
    """Total complex noise power N0 per sample that gives ``snr_db`` (Es/N0) on ``signal_power``."""
    return signal_power * 10.0 ** (-snr_db / 10.0)


def noise_voltage(snr_db: float, signal_power: float = PAYLOAD_POWER) -> float:
    """RMS noise amplitude sqrt(N0): GNU Radio's ``channel_model(noise_voltage=...)`` argument."""
    return math.sqrt(noise_power(snr_db, signal_power))
