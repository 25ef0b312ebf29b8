"""Statistical and streaming tests of the numpy software channel (mtsc_sdr.channel).

Tolerances are a few standard errors of the estimate, so a wrong scale, a missing normalisation or
a lost phase across chunks fails; fixed seeds keep the tests deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtsc_sdr.channel import (
    AWGN,
    BlockFading,
    CarrierOffset,
    ChannelProfile,
    DCOffset,
    IntegerDelay,
    IQImbalance,
    PhaseNoise,
    Resampler,
    StreamingChannel,
    TappedDelayLine,
    build_channel,
    exponential_pdp,
    k_factor_linear,
    rician_gains,
)
from mtsc_sdr.conventions import PAYLOAD_POWER, noise_power


def random_signal(n: int, seed: int = 0, power: float = PAYLOAD_POWER) -> np.ndarray:
    """(n,) complex64 white Gaussian signal of average power ``power``."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(2 * n) * math.sqrt(power / 2)).view(np.complex128).astype(np.complex64)


def bandlimited_signal(n: int, seed: int = 0, max_cycles: float = 0.3) -> np.ndarray:
    """(n,) complex64 random signal band-limited to |f| < max_cycles (cycles/sample), periodic in n."""
    rng = np.random.default_rng(seed)
    spectrum = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    spectrum[np.abs(np.fft.fftfreq(n)) >= max_cycles] = 0
    x = np.fft.ifft(spectrum)
    return (x / np.sqrt(np.mean(np.abs(x) ** 2)) * math.sqrt(PAYLOAD_POWER)).astype(np.complex64)


def in_chunks(stage, x: np.ndarray, seed: int, max_chunk: int = 3000) -> np.ndarray:
    """Feed ``x`` to ``stage`` in random chunk lengths (zero included); concatenate the outputs."""
    rng = np.random.default_rng(seed)
    outs, i = [], 0
    while i < x.size:
        k = int(rng.integers(0, max_chunk))
        outs.append(stage(x[i:i + k]))
        i += k
    return np.concatenate(outs)


def assert_same_stream(chunked: np.ndarray, whole: np.ndarray) -> None:
    """Equal to float32 rounding (a lost phase, a reordered draw or a dropped sample is far bigger)."""
    assert chunked.shape == whole.shape
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6)


def tone(n: int, cycles_per_sample: float) -> np.ndarray:
    return np.exp(2j * np.pi * cycles_per_sample * np.arange(n)).astype(np.complex64)


# ---------------------------------------------------------------- AWGN


@pytest.mark.parametrize("snr_db", [-5.0, 10.0, 30.0])
def test_awgn_noise_power_matches_snr(snr_db):
    n = 400_000
    y = AWGN(snr_db, seed=1)(np.zeros(n, np.complex64))
    n0 = noise_power(snr_db)
    assert n0 == pytest.approx(PAYLOAD_POWER * 10 ** (-snr_db / 10))
    measured = np.mean(np.abs(y.astype(np.complex128)) ** 2)
    assert measured == pytest.approx(n0, rel=4 / math.sqrt(n))  # |y|^2 ~ N0 Exp(1): SE = N0/sqrt(n)
    # circular: I and Q each N0/2, uncorrelated, zero mean
    assert np.var(y.real) == pytest.approx(n0 / 2, rel=6 / math.sqrt(n))
    assert np.var(y.imag) == pytest.approx(n0 / 2, rel=6 / math.sqrt(n))
    assert abs(np.mean(y.real * y.imag)) < 4 * (n0 / 2) / math.sqrt(n)
    assert abs(np.mean(y)) < 4 * math.sqrt(n0 / n)


def test_awgn_snr_on_a_payload_signal_and_custom_signal_power():
    x = random_signal(200_000, seed=3)
    y = AWGN(6.0, seed=2)(x)
    snr_measured = 10 * np.log10(np.mean(np.abs(x) ** 2) / np.mean(np.abs(y - x) ** 2))
    assert snr_measured == pytest.approx(6.0, abs=0.05)
    y1 = AWGN(0.0, seed=2, signal_power=1.0)(np.zeros(200_000, np.complex64))
    assert np.mean(np.abs(y1) ** 2) == pytest.approx(1.0, rel=0.01)


def test_awgn_set_snr_changes_power_from_the_next_sample():
    stage = AWGN(0.0, seed=4)
    a = stage(np.zeros(50_000, np.complex64))
    stage.set_snr_db(20.0)
    b = stage(np.zeros(50_000, np.complex64))
    ratio_db = 10 * np.log10(np.mean(np.abs(a) ** 2) / np.mean(np.abs(b) ** 2))
    assert ratio_db == pytest.approx(20.0, abs=0.2)


def test_awgn_stream_is_bit_exact_under_any_chunking():
    x = random_signal(150_000, seed=1)  # longer than several internal noise blocks
    whole = AWGN(3.0, seed=5)(x)
    assert np.array_equal(in_chunks(AWGN(3.0, seed=5), x, seed=2, max_chunk=40_000), whole)


def test_awgn_does_not_modify_its_input():
    x = random_signal(1000)
    before = x.copy()
    AWGN(0.0, seed=0)(x)
    assert np.array_equal(x, before)


# ---------------------------------------------------------------- fading


@pytest.mark.parametrize("k_factor_db", [None, 0.0, 6.0, 15.0])
def test_rician_gains_have_unit_average_power(k_factor_db):
    n = 200_000
    h = rician_gains(np.random.default_rng(5), n, k_factor_linear(k_factor_db))
    p = np.abs(h) ** 2
    standard_error = np.std(p) / math.sqrt(n)
    assert abs(np.mean(p) - 1.0) < 4 * standard_error


@pytest.mark.parametrize("k_factor_db", [0.0, 6.0, 10.0])
def test_rician_k_factor_estimates(k_factor_db):
    n = 200_000
    k_true = k_factor_linear(k_factor_db)
    h = rician_gains(np.random.default_rng(6), n, k_true, los_phase_rad=0.7)
    # 1) fixed LOS phase: K = |E h|^2 / (E|h|^2 - |E h|^2); the mean also carries the LOS phase
    mean = np.mean(h)
    k_from_mean = abs(mean) ** 2 / (np.mean(np.abs(h) ** 2) - abs(mean) ** 2)
    assert k_from_mean == pytest.approx(k_true, rel=0.03)
    assert np.angle(mean) == pytest.approx(0.7, abs=0.01)
    # 2) moment estimator (phase-blind): gamma = Var|h|^2 / (E|h|^2)^2, K = (1-g + sqrt(1-g)) / g
    p = np.abs(h) ** 2
    gamma = np.var(p) / np.mean(p) ** 2
    k_moments = ((1 - gamma) + math.sqrt(1 - gamma)) / gamma
    assert k_moments == pytest.approx(k_true, rel=0.05, abs=0.02)


def test_rayleigh_power_is_exponential():
    h = rician_gains(np.random.default_rng(7), 200_000, 0.0)
    assert np.mean(np.abs(h) ** 2 < 1.0) == pytest.approx(1 - math.exp(-1), abs=0.005)
    assert abs(np.mean(h)) < 0.01  # no line of sight


def test_random_los_phase_removes_the_mean_but_keeps_unit_power():
    h = rician_gains(np.random.default_rng(8), 200_000, 10.0, los_phase_rad=None)
    assert abs(np.mean(h)) < 0.01
    assert np.mean(np.abs(h) ** 2) == pytest.approx(1.0, abs=0.01)


def test_block_fading_stage_is_constant_per_block_and_unit_power():
    c, blocks = 8, 50_000
    stage = BlockFading(c, seed=9, k_factor_db=3.0)
    g = stage(np.ones(c * blocks, np.complex64)).reshape(blocks, c)
    assert np.all(g == g[:, :1])  # one gain per block, boundaries at multiples of C
    assert not np.all(g[1:, 0] == g[:-1, 0])
    p = np.abs(g[:, 0].astype(np.complex128)) ** 2
    assert abs(np.mean(p) - 1) < 4 * np.std(p) / math.sqrt(blocks)


def test_block_fading_blocks_align_to_stream_not_chunks():
    stage = BlockFading(100, seed=10, k_factor_db=None)
    y = in_chunks(stage, np.ones(5_000, np.complex64), seed=1, max_chunk=77)
    assert all(np.all(block == block[0]) for block in y.reshape(50, 100))


# ---------------------------------------------------------------- oscillator


def test_cfo_rotates_at_the_right_rate_and_phase_continues():
    rate_sps, cfo_hz, phase = 1e6, 1234.5, 0.3
    n = 100_000  # crosses many internal phasor blocks
    y = in_chunks(CarrierOffset(cfo_hz, rate_sps, phase), np.ones(n, np.complex64), seed=2)
    k = np.arange(n)
    expected = np.exp(1j * (2 * np.pi * cfo_hz / rate_sps * k + phase))
    assert np.max(np.abs(y - expected)) < 1e-4
    step = np.angle(np.mean(y[1:] * np.conj(y[:-1])))
    assert step == pytest.approx(2 * np.pi * cfo_hz / rate_sps, rel=1e-5)


def test_phase_noise_increment_variance_matches_linewidth():
    rate_sps, linewidth_hz, lag, n = 1e6, 2000.0, 50, 400_000
    y = PhaseNoise(linewidth_hz, rate_sps, seed=3)(np.ones(n, np.complex64))
    assert np.allclose(np.abs(y), 1, atol=1e-5)
    dphi = np.angle(y[lag:] * np.conj(y[:-lag]))[::lag]  # non-overlapping differences
    expected = lag * 2 * np.pi * linewidth_hz / rate_sps
    measured = np.mean(dphi ** 2)
    assert measured == pytest.approx(expected, rel=5 * math.sqrt(2 / dphi.size))


# ---------------------------------------------------------------- multipath


def test_tdl_given_taps_impulse_response_is_normalised():
    taps = [1.0, 0.5j, -0.25]
    stage = TappedDelayLine(seed=0, taps=taps)
    impulse = np.zeros(10, np.complex64)
    impulse[0] = 1
    y = in_chunks(stage, impulse, seed=3, max_chunk=3)
    expected = np.array(taps) / np.sqrt(np.sum(np.abs(taps) ** 2))
    assert np.allclose(y[:3], expected, atol=1e-6)
    assert np.allclose(y[3:], 0)
    assert np.sum(np.abs(y) ** 2) == pytest.approx(1.0, rel=1e-6)


def test_tdl_static_matches_full_convolution_across_chunks():
    x = random_signal(20_000, seed=4)
    stage = TappedDelayLine(seed=5, pdp=exponential_pdp(5, 2.0))
    y = in_chunks(stage, x, seed=4)
    assert np.allclose(y, np.convolve(x, stage.taps)[:x.size], atol=1e-6)


def test_exponential_pdp_shape():
    p = exponential_pdp(4, 2.0)
    assert p.sum() == pytest.approx(1.0)
    assert np.allclose(p[1:] / p[:-1], math.exp(-0.5))
    assert np.array_equal(exponential_pdp(3, 0.0), [1, 0, 0])


def test_block_faded_tdl_tap_powers_follow_the_profile():
    pdp = exponential_pdp(4, 1.5)
    c, blocks = 4, 20_000
    stage = TappedDelayLine(seed=6, pdp=pdp, coherence_samples=c)
    # an impulse at the start of every block reads the first taps of that block's channel
    x = np.zeros(c * blocks, np.complex64)
    x[::c] = 1
    y = stage(x).reshape(blocks, c)
    # output sample j of a block sees tap j of that block's taps (impulse j samples earlier)
    tap_power = np.mean(np.abs(y.astype(np.complex128)) ** 2, axis=0)
    assert np.allclose(tap_power, pdp, rtol=0.05)
    assert np.mean(np.sum(np.abs(y) ** 2, axis=1)) == pytest.approx(1.0, rel=0.03)


# ---------------------------------------------------------------- timing


def test_integer_delay_is_an_exact_shift():
    x = random_signal(5_000, seed=7)
    y = in_chunks(IntegerDelay(37), x, seed=5, max_chunk=50)
    assert np.array_equal(y[:37], np.zeros(37, np.complex64))
    assert np.array_equal(y[37:], x[:-37])


@pytest.mark.parametrize("delay", [0.0, 0.25, 0.5, 3.7, 0.123456])
def test_fractional_delay_of_a_bandlimited_signal(delay):
    n = 8192
    x = bandlimited_signal(n, seed=8)
    y = in_chunks(Resampler(delay_samples=delay), np.tile(x, 2), seed=6)
    # reference: the periodic signal delayed by an exact phase ramp in frequency
    f = np.fft.fftfreq(n)
    reference = np.fft.ifft(np.fft.fft(x) * np.exp(-2j * np.pi * f * delay))
    got = y[n:2 * n - 64]
    err_db = 10 * np.log10(np.mean(np.abs(got - reference[:n - 64]) ** 2) / np.mean(np.abs(reference) ** 2))
    assert err_db < -70


def test_sample_rate_offset_scales_frequency_and_length():
    f0, ppm, n = 0.05, 400.0, 200_000
    y = in_chunks(Resampler(sro_ppm=ppm), tone(n, f0), seed=7)
    eps = ppm * 1e-6
    expected_len = n * (1 + eps) - Resampler.lookahead_samples
    assert abs(y.size - expected_len) <= 2
    y = y[100:].astype(np.complex128)
    cycles_per_sample = np.angle(np.mean(y[1:] * np.conj(y[:-1]))) / (2 * np.pi)
    assert cycles_per_sample == pytest.approx(f0 / (1 + eps), rel=1e-6)  # 400 ppm: 4e-4 relative
    # and the drift: output m sits at input time m / (1 + eps)
    m = np.arange(100, 100 + y.size)
    assert np.max(np.abs(y - np.exp(2j * np.pi * f0 * m / (1 + eps)))) < 1e-4


def test_resampler_flush_releases_the_tail():
    ch = StreamingChannel([Resampler(delay_samples=0.5)])
    y = np.concatenate([ch(np.ones(1000, np.complex64)), ch.flush()])
    assert y.size == 1001  # delayed by half a sample, the last input reaches output 1000
    assert np.allclose(y[20:980], 1, atol=1e-3)
    assert y[0] == pytest.approx(0.5, abs=1e-3) and y[1000] == pytest.approx(0.5, abs=1e-3)


# ---------------------------------------------------------------- front end


@pytest.mark.parametrize("gain_db,phase_deg", [(1.0, 0.0), (0.0, 5.0), (0.5, -3.0)])
def test_iq_imbalance_image_rejection(gain_db, phase_deg):
    n, bin_ = 4096, 300
    x = tone(n, bin_ / n)
    stage = IQImbalance(gain_db, phase_deg)
    spectrum = np.abs(np.fft.fft(stage(x))) ** 2
    measured_irr_db = 10 * np.log10(spectrum[bin_] / spectrum[-bin_])
    g, phi = 10 ** (gain_db / 20), math.radians(phase_deg)
    textbook_irr_db = 10 * np.log10((1 + 2 * g * math.cos(phi) + g * g) / (1 - 2 * g * math.cos(phi) + g * g))
    assert measured_irr_db == pytest.approx(textbook_irr_db, abs=0.01)
    assert stage.image_rejection_db == pytest.approx(textbook_irr_db, abs=1e-9)
    assert 15 < measured_irr_db < 60


def test_iq_balanced_is_identity_and_dc_offset_adds_a_constant():
    x = random_signal(1000)
    assert np.allclose(IQImbalance(0.0, 0.0)(x), x)
    y = DCOffset(0.01, -0.02)(x)
    assert np.allclose(y - x, 0.01 - 0.02j, atol=1e-7)


# ---------------------------------------------------------------- composed channel

FULL_PROFILE = {
    "rate_sps": 1e6,
    "multipath": {"n_taps": 3, "delay_spread_samples": 1.0, "coherence_samples": 777},
    "fading": {"kind": "rician", "k_factor_db": 6.0, "coherence_samples": 1000},
    "timing": {"delay_samples": 5.3},
    "sro": {"sro_ppm": 50.0},
    "cfo": {"cfo_hz": 1234.5, "phase_deg": 10.0},
    "phase_noise": {"linewidth_hz": 100.0},
    "awgn": {"snr_db": 15.0},
    "iq_imbalance": {"gain_db": 0.3, "phase_deg": 2.0},
    "dc_offset": {"i": 0.01, "q": -0.01},
}


@pytest.mark.parametrize("chunk_seed", [0, 1])
def test_full_channel_is_chunk_invariant(chunk_seed):
    profile = ChannelProfile.from_dict(FULL_PROFILE)
    x = random_signal(60_000, seed=9)
    whole = build_channel(profile, seed=42)(x)
    chunked = in_chunks(build_channel(profile, seed=42), x, seed=chunk_seed, max_chunk=5000)
    assert chunked.size == whole.size > 0
    assert_same_stream(chunked, whole)


def test_chunk_invariance_across_internal_block_sizes():
    # one call much longer than every internal block size, against many small ones
    profile = ChannelProfile.from_dict({"fading": {"coherence_samples": 3}, "cfo": {"cfo_hz": 3e3},
                                        "phase_noise": {"linewidth_hz": 10.0}, "awgn": {"snr_db": 5.0}})
    x = random_signal(150_000, seed=10)
    whole = build_channel(profile, seed=1)(x)
    chunked = in_chunks(build_channel(profile, seed=1), x, seed=3, max_chunk=20_000)
    assert_same_stream(chunked, whole)


def test_seeds_reproduce_and_differ():
    profile = ChannelProfile.from_dict(FULL_PROFILE)
    x = random_signal(10_000, seed=11)
    a = build_channel(profile, seed=7)(x)
    b = build_channel(profile, seed=7)(x)
    c = build_channel(profile, seed=8)(x)
    assert np.array_equal(a, b)
    assert a.size == c.size and not np.allclose(a, c)


def test_adding_a_stage_leaves_other_streams_unchanged():
    x = random_signal(10_000, seed=12)
    awgn_only = build_channel(ChannelProfile.from_dict({"awgn": {"snr_db": 3.0}}), seed=5)(x)
    # zero-linewidth phase noise draws from its own stream but rotates nothing
    with_pn = build_channel(ChannelProfile.from_dict({"awgn": {"snr_db": 3.0},
                                                      "phase_noise": {"linewidth_hz": 0.0}}), seed=5)(x)
    assert np.array_equal(awgn_only, with_pn)


def test_channel_handles_empty_chunks_and_leaves_input_alone():
    ch = build_channel(ChannelProfile.from_dict(FULL_PROFILE), seed=0)
    assert ch(np.zeros(0, np.complex64)).size == 0
    x = random_signal(100)
    before = x.copy()
    ch(x)
    assert np.array_equal(x, before)


def test_composed_channel_snr_with_fading_is_the_awgn_snr():
    # E|h|^2 = 1: averaged over many blocks, received signal power equals the payload power
    profile = ChannelProfile.from_dict({"fading": {"k_factor_db": 0.0, "coherence_samples": 10},
                                        "awgn": {"snr_db": 10.0}})
    x = random_signal(400_000, seed=13)
    y = build_channel(profile, seed=3)(x)
    assert np.mean(np.abs(y) ** 2) == pytest.approx(PAYLOAD_POWER * 1.1, rel=0.02)
