"""The receiver's compiled kernels against plain numpy statements of what each computes, and the
compile fallback when no cache directory is writable."""

from __future__ import annotations

import os

import numba
import numpy as np
import pytest
from numba.core import caching

from mtsc_sdr.phy import rx_kernels as K
from mtsc_sdr.phy.ofdm import DATA_POS, PILOT_BINS, PILOT_POS, PILOTS, USED, USED_BINS
from mtsc_sdr.phy.rx import Receiver


def _noise(rng, n, scale=1.0):
    return (scale * (rng.standard_normal(n) + 1j * rng.standard_normal(n))).astype(np.complex64)


def test_lag_metric_runs_matches_the_cumulative_sums():
    rng = np.random.default_rng(1)
    n_out, W, D, R, thr = 3000, 128, 16, 16, 0.03
    period = _noise(rng, 16)
    seg = _noise(rng, n_out + W + D, 0.3)
    seg[1000:1400] += np.tile(period, 25)  # a periodic stretch holds M up
    r = seg.astype(np.complex128)
    cp = np.concatenate([[0], np.cumsum(np.conj(r[:-D]) * r[D:])])
    en = np.concatenate([[0], np.cumsum(np.abs(r) ** 2)])
    P = cp[W:W + n_out] - cp[:n_out]
    den = (en[W:W + n_out] - en[:n_out]) * (en[D + W:D + W + n_out] - en[D:D + n_out])
    m = np.abs(P) ** 2 / den
    above = np.concatenate([[0], np.cumsum(m > thr)])
    want = above[R:] - above[:-R]
    got = K.lag_metric_runs(seg, n_out, W, D, thr, R)
    assert got.shape == want.shape
    assert np.array_equal(got, want)
    assert got.max() == R  # the stretch triggers


def test_lag_plateau_is_the_half_maximum_region_of_the_lag_correlation():
    rng = np.random.default_rng(2)
    n_out, W, D = 500, 128, 16
    seg = _noise(rng, n_out + W + D, 0.2)
    seg[200:360] += np.tile(_noise(rng, 16), 10)
    r = seg.astype(np.complex128)
    p = np.abs(np.array([np.vdot(r[d:d + W], r[d + D:d + D + W]) for d in range(n_out)]))
    i_max, a, b = K.lag_plateau(seg, n_out, W, D)
    assert i_max == int(np.argmax(p))
    region = np.flatnonzero(p >= 0.5 * p[i_max])
    assert a <= i_max <= b and np.all(p[a:b + 1] >= 0.5 * p[i_max])
    assert a == 0 or p[a - 1] < 0.5 * p[i_max]
    assert b == n_out - 1 or p[b + 1] < 0.5 * p[i_max]
    assert a >= region[0] and b <= region[-1]


def test_correlate_is_numpys_valid_correlation():
    rng = np.random.default_rng(3)
    seg, ref = _noise(rng, 300).astype(np.complex128), _noise(rng, 64).astype(np.complex128)
    assert np.allclose(K._correlate(seg, ref), np.correlate(seg, ref, mode="valid"), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("var_h", [1e-3, 0.1, 3.0])
def test_sbl_channel_is_the_em_fixed_point_computed_with_dense_linear_algebra(var_h):
    rx = Receiver()
    rng = np.random.default_rng(4)
    taps = np.zeros(16, complex)
    taps[[0, 3, 7]] = rng.standard_normal(3) + 1j * rng.standard_normal(3)
    h_ls = rx._A @ taps + np.sqrt(var_h / 2) * (rng.standard_normal(52) + 1j * rng.standard_normal(52))
    A = rx._A
    e_ls = np.vdot(h_ls, h_ls).real / 52
    p_total = max(e_ls - var_h, 1e-2 * var_h)
    p = np.full(16, p_total / 16)
    for _ in range(10):
        prior = p
        cov = np.linalg.inv((A.conj().T @ A).real / var_h + np.diag(1 / p))
        mu = cov @ (A.conj().T @ h_ls) / var_h
        post = np.diag(cov)
        p = np.abs(mu) ** 2 + post + 1e-9 * p_total
    h, fitted = K.sbl_channel(A, rx._AhA, h_ls, var_h, 10)
    assert np.allclose(h, A @ mu, rtol=1e-9, atol=1e-12)
    assert fitted == pytest.approx(np.sum(1 - post / prior), rel=1e-9)


def test_pilot_sums_and_fft_windows_against_their_definitions():
    rng = np.random.default_rng(5)
    n, n_fft, G, z_step = 9, 64, 5, 3e-5
    Y = _noise(rng, n * n_fft).astype(np.complex128).reshape(n, n_fft)
    known = np.where(rng.random((n, 4)) < 0.5, -1.0, 1.0)
    h_p = _noise(rng, 4).astype(np.complex128)
    t = 144.0 + 80.0 * np.arange(n)
    z, cz = K.pilot_sums(Y, PILOT_BINS, known, h_p, t, z_step, G, PILOTS, 32)
    want_z = Y[:, PILOT_BINS] * known * np.conj(h_p)
    zeta = (np.arange(G) - G // 2) * z_step
    want_cz = np.einsum("gik,ik->gi", np.exp(-2j * np.pi / n_fft * zeta[:, None, None] * t[None, :, None]
                                             * PILOTS[None, None, :]), want_z)
    assert np.allclose(z, want_z, rtol=1e-12)
    assert np.allclose(cz[:, :n], want_cz, rtol=1e-10, atol=1e-12)
    assert cz.shape == (G, 32) and not cz[:, n:].any()

    x = _noise(rng, 2000)
    lo, n_sym, cfo, t0 = 37, 5, 0.0123, 59.0
    got = K.fft_windows(x, lo, n_sym, 80, 16, n_fft, cfo, t0)
    idx = lo + 80 * np.arange(n_sym)[:, None] + 16 + np.arange(n_fft)[None, :]
    tt = t0 + 80 * np.arange(n_sym)[:, None] + np.arange(n_fft)[None, :]
    assert np.allclose(got, x[idx] * np.exp(-2j * np.pi * cfo * tt) / 8, rtol=1e-9, atol=1e-9)
    with pytest.raises(IndexError):
        K.fft_windows(x, 1990, 1, 80, 16, n_fft, cfo, t0)


def test_mmse_data_gathers_the_payload_slots_and_their_mean_gain():
    rng = np.random.default_rng(6)
    n, L, n0 = 4, 150, 0.2
    Yc = _noise(rng, n * 52).astype(np.complex128).reshape(n, 52)
    h = _noise(rng, 52).astype(np.complex128)
    y, mean_c = K.mmse_data(Yc, h, DATA_POS, n0, L)
    hd = h[DATA_POS]
    w = np.conj(hd) / (np.abs(hd) ** 2 + n0)
    assert np.allclose(y, (Yc[:, DATA_POS] * w).reshape(-1)[:L], rtol=1e-12)
    c = np.abs(hd) ** 2 / (np.abs(hd) ** 2 + n0)
    assert mean_c == pytest.approx(np.mean(np.tile(c, n)[:L]), rel=1e-12)


def test_track_fit_without_drift_removes_a_common_phase_ramp():
    # pilots and data rotated by theta0 + omega t: the fit finds omega and undoes it on every bin
    rng = np.random.default_rng(7)
    n, theta0, omega = 12, 0.4, 2 * np.pi * 3e-4
    t = 144.0 + 80.0 * np.arange(n)
    X = _noise(rng, n * 64).astype(np.complex128).reshape(n, 64)
    known = np.where(rng.random((n, 4)) < 0.5, -1.0, 1.0)
    X[:, PILOT_BINS] = known
    Y = X * np.exp(1j * (theta0 + omega * t))[:, None]
    n_fft = 8 * 16
    z, cz = K.pilot_sums(Y, PILOT_BINS, known, np.ones(4, complex), t, 0.0, 1, PILOTS, n_fft)
    omegas_all = 2 * np.pi * np.fft.fftfreq(n_fft) / 80
    bins = np.flatnonzero(np.abs(omegas_all) <= 2 * np.pi * 0.002)
    bins = bins[np.argsort(omegas_all[bins])]
    ref = np.exp(-1j * omegas_all[bins] * t[0])
    Yc, zeta = K.track_fit(np.fft.fft(cz), bins, ref, omegas_all[bins], 0.0, 100.0, 1.0, 0.0, 4.0, Y, USED_BINS,
                           USED, PILOT_POS, z, cz, t, 0)
    assert zeta == 0.0
    assert np.max(np.abs(np.angle(Yc / X[:, USED_BINS]))) < 1e-3  # grid + parabola: close, not exact


def test_compiled_falls_back_to_no_cache_when_no_directory_is_writable(monkeypatch):
    # no cache locator usable (numba 0.68 raises RuntimeError at decoration then)
    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])
    with pytest.raises(RuntimeError):
        numba.njit(cache=True)(lambda x: x)

    def twice(x):
        return 2 * x

    f = K._compiled(twice)
    assert isinstance(f, numba.core.registry.CPUDispatcher)
    assert isinstance(f._cache, caching.NullCache)
    assert f(21) == 42


def test_warm_up_compiles_and_decodes_one_frame_from_an_empty_cache(tmp_path):
    """What the base station runs before it listens: with no numba cache at all (a fresh
    install), one noisy frame is decoded, so every kernel is compiled before live samples come."""
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", "from mtsc_sdr.phy.rx import warm_up; print(warm_up())"],
                         env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip()) > 0 and any(tmp_path.rglob("*.nbi"))    # compiled and cached
