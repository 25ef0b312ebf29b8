"""The PHY tests' own channel impairments (tests/phy/impairments.py) are right: AWGN power, Rician and
multipath power, and the resampler's accuracy in the OFDM band."""

from __future__ import annotations

import numpy as np

from mtsc_sdr.conventions import PAYLOAD_POWER, noise_power
from tests.phy.impairments import complex_noise, multipath_taps, resample_sro, rician_gain


def test_awgn_power_matches_conventions():
    rng = np.random.default_rng(0)
    n = complex_noise(rng, 200_000, noise_power(10.0))
    assert abs(np.mean(np.abs(n) ** 2) / (PAYLOAD_POWER / 10.0) - 1) < 0.02


def test_rician_unit_average_power():
    rng = np.random.default_rng(1)
    g = np.array([rician_gain(rng, 3.0) for _ in range(40_000)])
    assert abs(np.mean(np.abs(g) ** 2) - 1) < 0.03
    # the LOS part shows up as a non-Rayleigh magnitude distribution: var|h|^2 = (1 + 2K)/(1 + K)^2
    assert abs(np.var(np.abs(g) ** 2) - 7 / 16) < 0.05


def test_multipath_taps_unit_energy():
    rng = np.random.default_rng(2)
    for _ in range(20):
        h = multipath_taps(rng)
        assert abs(np.sum(np.abs(h) ** 2) - 1) < 1e-12
        assert h[0] != 0


def test_resample_is_accurate_for_ofdm_band():
    # A band-limited signal (|f| <= 26/64) interpolated at a fractional delay matches the exact shift.
    rng = np.random.default_rng(3)
    n = 4096
    spec = np.zeros(n, dtype=np.complex128)
    k = np.fft.fftfreq(n) * n
    band = np.abs(k) <= 26 / 64 * n
    spec[band] = rng.standard_normal(band.sum()) + 1j * rng.standard_normal(band.sum())
    x = np.fft.ifft(spec)
    ppm = 100.0
    y = resample_sro(x, ppm)
    ratio = 1 + ppm * 1e-6
    m = np.arange(1000, 3000)
    exact = np.array([np.sum(spec * np.exp(2j * np.pi * k * (mm / ratio) / n)) / n for mm in m])
    err = np.mean(np.abs(y[m] - exact) ** 2) / np.mean(np.abs(exact) ** 2)
    assert 10 * np.log10(err) < -45
