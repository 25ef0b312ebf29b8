"""Equalised payload quality against a genie receiver, and the SNR estimate against the truth.

Targets (fixed seeds): EVM within 1 dB of a genie receiver (perfect timing, CFO and channel) at
20 dB on AWGN and on Rician fading; SNR estimate within 1 dB of the truth from -5 to 25 dB.
SNR is Es/N0 per complex payload symbol on the wire (mtsc_sdr.conventions), set by
conventions.noise_power in the test channel.
"""

from __future__ import annotations

import numpy as np
import pytest

from mtsc_sdr.phy import Receiver, SUBCARRIER_SNR_GAIN_DB, genie_receive
from tests.phy.impairments import make_stream, match


def _evm_vs_genie(channel, snr_db, n, seed, payload_len=480):
    rng = np.random.default_rng(seed)
    stream, truth = make_stream(rng, n, snr_db, payload_len=payload_len, channel=channel)
    rx = Receiver()
    got = match(rx.process(stream) + rx.flush(), truth, tol=2)
    err_rx = err_genie = power = 0.0
    for i, f in got.items():
        g = genie_receive(stream, truth.starts[i], payload_len, channel_taps=truth.taps[i],
                          cfo=truth.cfos[i])
        ref = truth.payloads[i]
        err_rx += np.sum(np.abs(f.payload - ref) ** 2)
        err_genie += np.sum(np.abs(g - ref) ** 2)
        power += np.sum(np.abs(ref) ** 2)
    return len(got), 10 * np.log10(err_rx / power), 10 * np.log10(err_genie / power)


@pytest.mark.parametrize("channel,seed", [("awgn", 1), ("rician", 2)])
def test_evm_within_1db_of_genie_at_20db(channel, seed):
    n_frames, evm_rx, evm_genie = _evm_vs_genie(channel, 20.0, 150, seed)
    assert n_frames >= 148
    if channel == "awgn":  # the genie sits at the noise floor: 52 of 64 bins carry the power
        assert abs(evm_genie + 20.0 + SUBCARRIER_SNR_GAIN_DB) < 0.2
    assert evm_rx - evm_genie < 1.0, (evm_rx, evm_genie)


def test_multipath_evm_not_worse_than_genie_zf():
    # Frequency-selective channels: our LMMSE-smoothed channel estimate must not lose against
    # zero-forcing with the true channel either.
    n_frames, evm_rx, evm_genie = _evm_vs_genie("multipath", 20.0, 60, 3)
    assert n_frames >= 59
    assert evm_rx - evm_genie < 1.0


def test_the_header_as_training_lowers_the_payload_error(monkeypatch):
    """At 0 dB the channel estimate's own error is a visible part of the payload's; re-estimating
    with the CRC-checked header (7 symbols beside the LTF's 3) removes most of it."""
    n, refined, genie = _evm_vs_genie("rician", 0.0, 60, 6)
    monkeypatch.setattr(Receiver, "_refine_with_header", lambda self, sync, yc, header: sync)
    n_ltf, ltf_only, genie_again = _evm_vs_genie("rician", 0.0, 60, 6)
    assert n == n_ltf >= 45 and genie == genie_again
    assert refined - genie < 0.6 * (ltf_only - genie), (refined - genie, ltf_only - genie)


def test_noise_var_matches_the_actual_error():
    rng = np.random.default_rng(4)
    stream, truth = make_stream(rng, 30, 15.0, payload_len=480, channel="rician")
    rx = Receiver()
    got = match(rx.process(stream) + rx.flush(), truth, tol=2)
    err = np.concatenate([np.abs(f.payload - truth.payloads[i]) ** 2 for i, f in got.items()])
    nv = np.concatenate([f.noise_var for f in got.values()])
    assert abs(10 * np.log10(np.mean(err) / np.mean(nv))) < 1.0


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 25.0])
def test_snr_estimate_within_1db(snr_db):
    rng = np.random.default_rng(1000 + int(snr_db))
    stream, truth = make_stream(rng, 40, snr_db, payload_len=96, channel="awgn")
    rx = Receiver()
    frames = rx.process(stream) + rx.flush()
    # frames whose header failed (common at -5 dB) still carry an estimate in the drop records
    est = [f.snr_db for f in match(frames, truth, tol=4).values()]
    est += [d.snr_db for d in rx.drops if np.min(np.abs(np.array(truth.starts) - d.start)) <= 4]
    assert len(est) >= (20 if snr_db < 0 else 39)
    assert abs(np.mean(est) - snr_db) < 1.0, (np.mean(est), len(est))


def test_snr_estimate_on_multipath():
    rng = np.random.default_rng(77)
    for snr_db in (0.0, 20.0):
        stream, truth = make_stream(rng, 30, snr_db, payload_len=96, channel="multipath")
        rx = Receiver()
        est = [f.snr_db for f in match(rx.process(stream) + rx.flush(), truth, tol=10).values()]
        assert len(est) >= 29 and abs(np.mean(est) - snr_db) < 1.0
