"""The PHY through the project's own streaming software channel (mtsc_sdr.channel).

The target tests use small local impairment helpers that report exact per-frame truth; these tests
check that the receiver also copes with the real channel process's stages, all at once: multipath,
CFO, fractional delay and sample-rate offset, oscillator phase noise, IQ imbalance, DC offset and
AWGN, each fed and read in chunks.
"""

from __future__ import annotations

import numpy as np
import pytest

from mtsc_sdr.channel import (AWGN, CarrierOffset, DCOffset, IQImbalance, PhaseNoise, Resampler,
                              StreamingChannel, TappedDelayLine, exponential_pdp)
from mtsc_sdr.conventions import noise_power
from mtsc_sdr.phy import FrameHeader, Receiver, ReceiverConfig, Transmitter, ofdm
from tests.phy.impairments import random_payload

RATE = 1e6


def _tx_stream(rng, n_frames, payload_len, gap=600):
    tx = Transmitter()
    parts, payloads = [np.zeros(gap, np.complex64)], []
    for i in range(n_frames):
        p = random_payload(rng, payload_len)
        payloads.append(p)
        parts += [tx.build(p, FrameHeader(session_id=3, seq=i, payload_len=payload_len)),
                  np.zeros(gap + int(rng.integers(0, 400)), np.complex64)]
    return np.concatenate(parts), payloads


def _through(channel, x, chunk=10_000):
    out = [channel(x[i:i + chunk]) for i in range(0, x.size, chunk)]
    return np.concatenate(out + [channel.flush()])


def _receive(y, config=None, chunk=7_000):
    rx = Receiver(config, sample_rate_hz=RATE)
    frames = []
    for i in range(0, y.size, chunk):
        frames += rx.process(y[i:i + chunk])
    return frames + rx.flush(), rx


def test_all_impairments_at_once():
    rng = np.random.default_rng(1)
    x, payloads = _tx_stream(rng, 20, 480)
    multipath = TappedDelayLine(seed=11, pdp=exponential_pdp(6, 1.5))
    channel = StreamingChannel([
        multipath,
        CarrierOffset(cfo_hz=0.015 * RATE, rate_sps=RATE, phase_rad=0.4),
        Resampler(delay_samples=3.37, sro_ppm=40.0),
        PhaseNoise(linewidth_hz=1.0, rate_sps=RATE, seed=12),
        IQImbalance(gain_db=0.2, phase_deg=1.0),
        DCOffset(0.01, -0.005),
        AWGN(snr_db=15.0, seed=13),
    ])
    frames, rx = _receive(_through(channel, x))
    assert [f.header.seq for f in frames] == list(range(20)), rx.stats
    # the static multipath realisation changes the in-band gain; the estimate must follow it
    H = np.fft.fft(multipath.taps, 64)[ofdm.USED_BINS]
    expected_snr = 15.0 + 10 * np.log10(np.mean(np.abs(H) ** 2))
    snr = np.array([f.snr_db for f in frames])
    assert abs(np.mean(snr) - expected_snr) < 1.0 and np.std(snr) < 1.0
    # zero-forcing on this frequency-selective channel with perfect knowledge would give
    Hd = np.fft.fft(multipath.taps, 64)[ofdm.DATA_BINS]
    evm_ideal = 10 * np.log10(np.mean(noise_power(15.0) / (np.abs(Hd) ** 2 * ofdm.AMP_USED ** 2)))
    for f in frames:
        assert f.cfo == pytest.approx(0.015, abs=2e-4) and f.cfo_hz == pytest.approx(0.015 * RATE, abs=200)
        evm = 10 * np.log10(np.mean(np.abs(f.payload - payloads[f.header.seq]) ** 2))
        assert evm < evm_ideal + 1.5, (evm, evm_ideal)


def test_phase_noise_is_tracked_with_a_track_window():
    # 20 Hz linewidth at 1 Msps: the phase random-walks ~0.5 rad over a 40-symbol frame. The
    # linear phase model cannot follow it; smoothing the pilot residuals over +-2 symbols can.
    rng = np.random.default_rng(2)
    x, payloads = _tx_stream(rng, 10, 48 * 40)

    def run(track_window):
        channel = StreamingChannel([PhaseNoise(linewidth_hz=20.0, rate_sps=RATE, seed=21),
                                    AWGN(snr_db=25.0, seed=22)])
        frames, _ = _receive(_through(channel, x), ReceiverConfig(track_window=track_window))
        assert len(frames) == 10
        err = np.concatenate([f.payload - payloads[f.header.seq] for f in frames])
        return 10 * np.log10(np.mean(np.abs(err) ** 2))

    linear, tracked = run(0), run(2)
    assert tracked < -18.0 and tracked < linear - 3.0, (linear, tracked)
