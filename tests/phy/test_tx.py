"""Frame format, transmitter scaling and the receiver's stream handling (chunks, drops, flush)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtsc_sdr.config import ConfigError, from_dict
from mtsc_sdr.conventions import PAYLOAD_POWER, noise_power
from mtsc_sdr.phy import FrameHeader, Receiver, ReceiverConfig, Transmitter, frame_length, ofdm
from mtsc_sdr.phy import header as hdr
from mtsc_sdr.phy import spreading
from tests.phy.impairments import complex_noise, make_stream, match, random_payload


def test_frame_length_formula():
    for L in (1, 48, 49, 480, 1000):
        x = Transmitter().build(random_payload(np.random.default_rng(L), L), FrameHeader(1, 0, L))
        assert x.size == frame_length(L) == 384 + 80 * (hdr.N_HEADER_SYM + math.ceil(L / 48))
        assert x.dtype == np.complex64


def test_wire_power_backoff_and_peak_control():
    rng = np.random.default_rng(0)
    tx = Transmitter()
    L = 48 * 400
    x = tx.build(random_payload(rng, L), FrameHeader(1, 0, L)).astype(np.complex128)
    body = x[ofdm.PREAMBLE_LEN + ofdm.SYM_LEN * hdr.N_HEADER_SYM:]
    assert abs(np.mean(np.abs(body) ** 2) / PAYLOAD_POWER - 1) < 0.02  # 10 dB below full scale
    for part in (x[:ofdm.STF_LEN], x[ofdm.STF_LEN:ofdm.PREAMBLE_LEN],
                 x[ofdm.PREAMBLE_LEN:ofdm.PREAMBLE_LEN + ofdm.SYM_LEN * hdr.N_HEADER_SYM]):
        assert abs(np.mean(np.abs(part) ** 2) / PAYLOAD_POWER - 1) < 0.05  # same average power
    assert np.max(np.abs(x)) <= 1.0 + 1e-6
    # a Gaussian-like OFDM payload at 10 dB back-off clips about exp(-10) of its samples
    assert 0 < tx.stats["clipped_samples"] < 20 * math.exp(-10) * x.size
    assert tx.stats["frames"] == 1 and tx.stats["samples"] == x.size


def test_payload_is_not_renormalised_and_spectrum_keeps_dc_and_guards_empty():
    rng = np.random.default_rng(1)
    L = 48 * 50
    pl = random_payload(rng, L)
    start = ofdm.PREAMBLE_LEN + ofdm.SYM_LEN * hdr.N_HEADER_SYM

    def data_bins(payload):
        x = Transmitter(clip_level=10.0).build(payload, FrameHeader(1, 0, L)).astype(np.complex128)
        return np.fft.fft(x[start:].reshape(-1, ofdm.SYM_LEN)[:, ofdm.N_CP:], axis=1)

    full, half = data_bins(pl), data_bins(0.5 * pl)
    # half the amplitude in, half out on the data subcarriers: no per-frame normalisation
    assert np.allclose(half[:, ofdm.DATA_BINS], 0.5 * full[:, ofdm.DATA_BINS], atol=1e-4)
    # the DFT-spread payload symbols land on the data subcarriers in order, scaled by a fixed
    # amplitude; a version-1 header sends them unspread
    vals = full[:, ofdm.DATA_BINS].reshape(-1)[:L] / (8.0 * ofdm.AMP_USED)
    assert np.allclose(spreading.despread(vals), pl, atol=1e-4)
    x1 = Transmitter(clip_level=10.0).build(pl, FrameHeader(1, 0, L, version=1)).astype(np.complex128)
    v1 = np.fft.fft(x1[start:].reshape(-1, ofdm.SYM_LEN)[:, ofdm.N_CP:], axis=1)
    assert np.allclose(v1[:, ofdm.DATA_BINS].reshape(-1)[:L] / (8.0 * ofdm.AMP_USED), pl, atol=1e-4)
    spec = np.mean(np.abs(full) ** 2, axis=0)
    unused = np.setdiff1d(np.arange(64), ofdm.USED_BINS)
    assert 0 in unused and unused.size == 12
    assert spec[unused].max() < 1e-9 * spec.max()


def test_transmitter_rejects_bad_payloads():
    tx = Transmitter()
    with pytest.raises(ValueError, match="payload_len"):
        tx.build(np.ones(10, np.complex64), FrameHeader(1, 0, 11))
    with pytest.raises(ValueError, match="payload"):
        tx.build(np.ones((2, 5), np.complex64), FrameHeader(1, 0, 10))
    with pytest.raises(ValueError, match="NaN"):
        tx.build(np.full(3, np.nan, np.complex64), FrameHeader(1, 0, 3))


def test_noiseless_loopback_returns_payload_in_transmitter_units():
    rng = np.random.default_rng(2)
    L = 300
    pl = random_payload(rng, L)
    h = FrameHeader(session_id=77, seq=5, payload_len=L, rate_idx=3, task_id=2)
    x = Transmitter(clip_level=10.0).build(pl, h)
    stream = np.concatenate([np.zeros(1000, np.complex64), 0.3 * x, np.zeros(700, np.complex64)])
    stream = stream + complex_noise(rng, stream.size, 1e-9).astype(np.complex64)  # -60 dB floor
    rx = Receiver(sample_rate_hz=2e6)
    frames = rx.process(stream) + rx.flush()
    assert len(frames) == 1
    f = frames[0]
    assert f.header == h and f.start == 1000
    assert f.payload.dtype == np.complex64 and f.payload.shape == (L,)
    assert f.noise_var.dtype == np.float32 and f.noise_var.shape == (L,)
    # gain 0.3 is undone by the channel estimate: the payload comes back in TX units
    assert 10 * np.log10(np.mean(np.abs(f.payload - pl) ** 2)) < -40
    assert np.allclose(np.abs(f.channel[ofdm.USED_BINS]), 0.3, rtol=0.01)
    assert np.all(f.channel[np.setdiff1d(np.arange(64), ofdm.USED_BINS)] == 0)
    assert f.cfo_hz == pytest.approx(f.cfo * 2e6)
    assert rx.stats["frames"] == rx.stats["header_ok"] == rx.stats["detected"] == 1


def _one_frame_stream(rng, header, *, corrupt_crc=False, snr_db=15.0):
    L = header.payload_len
    x = Transmitter().build(random_payload(rng, L), header, corrupt_crc=corrupt_crc)
    s = np.concatenate([np.zeros(500, np.complex64), x, np.zeros(500, np.complex64)]).astype(np.complex128)
    return (s + complex_noise(rng, s.size, noise_power(snr_db))).astype(np.complex64)


def test_header_crc_failure_is_dropped_counted_and_not_decoded():
    rng = np.random.default_rng(3)
    good = _one_frame_stream(rng, FrameHeader(1, 1, 96))
    bad = _one_frame_stream(rng, FrameHeader(1, 2, 96), corrupt_crc=True)
    rx = Receiver()
    frames = rx.process(np.concatenate([good, bad, good])) + rx.flush()
    assert [f.header.seq for f in frames] == [1, 1]
    assert rx.stats["detected"] == 3 and rx.stats["header_crc_fail"] == 1 and rx.stats["frames"] == 2
    assert [d.reason for d in rx.drops] == ["header_crc_fail"]
    assert abs(rx.drops[0].start - (good.size + 500)) <= 2


def test_unknown_version_is_dropped_and_counted():
    rng = np.random.default_rng(4)
    s = np.concatenate([_one_frame_stream(rng, FrameHeader(1, 1, 96, version=3)),
                        _one_frame_stream(rng, FrameHeader(1, 2, 96))])
    rx = Receiver()
    frames = rx.process(s) + rx.flush()
    assert [f.header.seq for f in frames] == [2]
    assert rx.stats["header_bad_version"] == 1 and rx.stats["header_crc_fail"] == 0
    assert rx.drops[0].reason == "header_bad_version" and rx.drops[0].version == 3


def test_too_long_payload_is_dropped():
    rng = np.random.default_rng(5)
    rx = Receiver(ReceiverConfig(max_payload_len=50))
    frames = rx.process(_one_frame_stream(rng, FrameHeader(1, 1, 96))) + rx.flush()
    assert frames == [] and rx.stats["header_bad_length"] == 1


def _decode(stream, chunks):
    rx = Receiver()
    out = []
    pos = 0
    for n in chunks:
        out += rx.process(stream[pos:pos + n])
        pos += n
    out += rx.process(stream[pos:])
    out += rx.flush()
    return out, rx.stats


def test_chunking_does_not_change_results_and_frames_span_chunks():
    rng = np.random.default_rng(6)
    stream, truth = make_stream(rng, 12, 8.0, payload_len=200, channel="multipath", gap=(0, 300))
    whole, stats_whole = _decode(stream, [])
    assert len(match(whole, truth, tol=8)) == 12
    sizes = rng.integers(1, 3000, 400)  # most frames span several chunks
    for chunks in ([1000] * 60, [97] * 700, list(sizes)):
        got, stats = _decode(stream, chunks)
        assert stats == stats_whole
        assert [(f.header, f.start) for f in got] == [(f.header, f.start) for f in whole]
        for a, b in zip(got, whole):
            assert np.array_equal(a.payload, b.payload)
            assert a.snr_db == b.snr_db and a.cfo == b.cfo


def test_back_to_back_frames():
    rng = np.random.default_rng(7)
    stream, truth = make_stream(rng, 20, 10.0, payload_len=60, gap=(0, 0))
    frames, stats = _decode(stream, [5000] * 10)
    assert len(match(frames, truth, tol=2)) == 20 and stats["frames"] == 20


def test_flush_counts_a_frame_cut_off_by_the_end_and_keeps_a_complete_last_frame():
    rng = np.random.default_rng(8)
    x = _one_frame_stream(rng, FrameHeader(1, 9, 480))
    cut = x[:500 + frame_length(480) - 200]  # header complete, payload cut
    rx = Receiver()
    assert rx.process(cut) == [] and rx.flush() == []
    assert rx.stats["truncated"] == 1 and rx.drops[-1].reason == "truncated"
    exact = x[:500 + frame_length(480)]  # stream ends on the frame's last sample
    rx = Receiver()
    frames = rx.process(exact) + rx.flush()
    assert len(frames) == 1 and rx.stats["truncated"] == 0


def test_process_accepts_complex128_and_empty_chunks_rejects_2d():
    rng = np.random.default_rng(9)
    s = _one_frame_stream(rng, FrameHeader(1, 1, 48)).astype(np.complex128)
    rx = Receiver()
    assert rx.process(np.zeros(0, np.complex64)) == []
    assert len(rx.process(s) + rx.flush()) == 1
    with pytest.raises(ValueError, match="samples"):
        rx.process(np.zeros((2, 3), np.complex64))


@pytest.mark.parametrize("freq", [0.0, 7 / 64, 0.1, -0.3])
def test_zeros_dc_and_tones_are_not_frames(freq):
    rng = np.random.default_rng(10)
    rx = Receiver()
    assert rx.process(np.zeros(20_000, np.complex64)) == []
    tone = 0.3 * np.exp(2j * np.pi * freq * np.arange(60_000))
    tone = (tone + complex_noise(rng, tone.size, noise_power(20.0))).astype(np.complex64)
    assert rx.process(tone) + rx.flush() == []
    assert rx.stats["detected"] == 0


def test_receiver_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="rx.detect_threshold"):
        from_dict(ReceiverConfig, {"detect_threshold": 1.5}, "rx")
    with pytest.raises(ConfigError, match="rx.channel_taps"):
        from_dict(ReceiverConfig, {"channel_taps": 40}, "rx")
    with pytest.raises(ConfigError, match="ReceiverConfig.fft_backoff"):
        Receiver(ReceiverConfig(fft_backoff=-1))
    cfg = from_dict(ReceiverConfig, {"sample_rate_hz": 1e6, "max_payload_len": 1000}, "rx")
    assert cfg.max_payload_len == 1000


def test_spreading_is_unitary_and_fixed_per_length():
    rng = np.random.default_rng(3)
    for n in (1, 7, 352, 512):
        s = random_payload(rng, n).astype(np.complex128)
        x = spreading.spread(s)
        assert np.isclose(np.vdot(x, x).real, np.vdot(s, s).real)
        assert np.allclose(spreading.despread(x), s)
        assert np.array_equal(spreading.spread(s), x)


def test_strong_payload_symbols_do_not_clip_when_spread():
    """An importance-weighted payload: a few symbols at 40 times the average power (as the JSC
    encoder gives important tokens). Sent symbol by symbol (version 1) they clip at the 10 dB
    back-off; spread (version 2) the wire signal is Gaussian-like and clips as rarely as noise."""
    rng = np.random.default_rng(4)
    L = 512
    pl = random_payload(rng, L) * 0.5
    pl[rng.choice(L, 8, replace=False)] *= math.sqrt(40.0) / 0.5
    pl /= np.sqrt(np.mean(np.abs(pl) ** 2))
    clipped = {}
    for version in (1, 2):
        tx = Transmitter()
        for seq in range(20):
            tx.build(pl, FrameHeader(1, seq, L, version=version))
        clipped[version] = tx.stats["clipped_samples"]
    assert clipped[1] > 20 and clipped[2] < clipped[1] / 5, clipped


@pytest.mark.parametrize("version", [1, 2])
def test_receiver_decodes_both_payload_layouts(version):
    rng = np.random.default_rng(5)
    L = 300
    pl = random_payload(rng, L)
    x = Transmitter().build(pl, FrameHeader(1, 0, L, version=version))
    noise = np.sqrt(noise_power(30.0) / 2) * (rng.standard_normal(x.size + 400) + 1j * rng.standard_normal(x.size + 400))
    stream = noise.astype(np.complex64)
    stream[200:200 + x.size] += x
    rx = Receiver()
    frames = rx.process(stream) + rx.flush()
    assert len(frames) == 1 and frames[0].header.version == version
    err = np.mean(np.abs(frames[0].payload - pl) ** 2)
    assert err < 3 * np.mean(frames[0].noise_var) and np.mean(frames[0].noise_var) < 3e-3
