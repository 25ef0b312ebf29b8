"""Header coding: CRC-16, K=7 convolutional code + Viterbi, interleaver, header fields."""

from __future__ import annotations

import numpy as np
import pytest

from mtsc_sdr.phy import coding
from mtsc_sdr.phy import header as hdr
from mtsc_sdr.phy.header import FrameHeader


def _bits_of(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))


def test_crc16_known_vector():
    # CRC-16/CCITT-FALSE of ASCII "123456789" is 0x29B1
    assert coding.bits_to_int(coding.crc16(_bits_of(b"123456789"))) == 0x29B1


def test_crc16_detects_any_single_bit_flip():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, 64).astype(np.uint8)
    ref = coding.crc16(bits)
    for i in range(64):
        flipped = bits.copy()
        flipped[i] ^= 1
        assert not np.array_equal(coding.crc16(flipped), ref)


def test_conv_code_free_distance_is_10():
    # weight of the impulse response = free distance of the (133, 171) code
    impulse = np.zeros(20, dtype=np.uint8)
    impulse[0] = 1
    assert coding.conv_encode(impulse).sum() == 10


@pytest.mark.parametrize("n_bits", [80, 81])
def test_viterbi_round_trip_and_corrects_errors(n_bits):
    rng = np.random.default_rng(n_bits)
    bits = rng.integers(0, 2, n_bits).astype(np.uint8)
    coded = coding.conv_encode(bits)
    assert coded.size == 2 * (n_bits + coding.TAIL)
    llr = 4.0 * (1.0 - 2.0 * coded)
    assert np.array_equal(coding.viterbi_decode(llr, n_bits), bits)
    # four well-separated hard errors are corrected (free distance 10)
    llr[[3, 50, 100, 150]] *= -1
    assert np.array_equal(coding.viterbi_decode(llr, n_bits), bits)


def test_viterbi_batch_matches_single():
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2, (6, 80)).astype(np.uint8)
    llr = np.stack([1.0 - 2.0 * coding.conv_encode(b) for b in bits])
    llr = llr + rng.normal(0, 0.8, llr.shape)
    batch = coding.viterbi_decode(llr, 80)
    for i in range(6):
        assert np.array_equal(batch[i], coding.viterbi_decode(llr[i], 80))


def test_viterbi_hard_decision_shortcut_is_exact():
    # frames whose hard decisions are a codeword skip the trellis; the answer must be identical
    rng = np.random.default_rng(11)
    bits = rng.integers(0, 2, (300, 80)).astype(np.uint8)
    coded = np.stack([coding.conv_encode(b) for b in bits])
    shortcut = 0
    for ebn0_db in (0.0, 6.0, 9.0, 20.0):
        sigma = np.sqrt(1.0 / (2 * 0.5 * 10 ** (ebn0_db / 10)))
        llr = 2 * ((1.0 - 2.0 * coded) + sigma * rng.standard_normal(coded.shape)) / sigma ** 2
        assert np.array_equal(coding.viterbi_decode(llr, 80), coding._viterbi_trellis(llr, 80))
        hits = [coding._hard_codeword(x, 80) for x in llr]
        shortcut += sum(h is not None for h in hits)
        for h, x in zip(hits, llr):
            if h is not None:
                assert np.array_equal(h, coding._viterbi_trellis(x[None], 80)[0])
    assert shortcut > 300
    # a single hard error is not a codeword: the trellis runs (and corrects it)
    llr = 4.0 * (1.0 - 2.0 * coded[0])
    llr[17] *= -1
    assert coding._hard_codeword(llr, 80) is None
    assert np.array_equal(coding.viterbi_decode(llr, 80), bits[0])


def test_viterbi_soft_gain_at_4db():
    # Coding gain sanity: BER at Eb/N0 = 4 dB must be far below uncoded BPSK's 1.25e-2.
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2, (400, 80)).astype(np.uint8)
    coded = np.stack([coding.conv_encode(b) for b in bits])
    sigma = np.sqrt(1.0 / (2 * 0.5 * 10 ** 0.4))
    y = (1.0 - 2.0 * coded) + sigma * rng.standard_normal(coded.shape)
    dec = coding.viterbi_decode(2 * y / sigma ** 2, 80)
    assert np.mean(dec != bits) < 1e-3


def test_permutation_is_a_fixed_permutation():
    p = coding.permutation(672, seed=123)
    assert np.array_equal(np.sort(p), np.arange(672))
    assert np.array_equal(p, coding.permutation(672, seed=123))
    assert not np.array_equal(p, np.arange(672))


def test_header_encode_decode_round_trip():
    h = FrameHeader(session_id=0xBEEF, seq=65535, payload_len=12345, rate_idx=200, task_id=9)
    sym = hdr.encode(h)
    assert sym.shape == (hdr.N_HEADER_SYM, 48)
    assert np.allclose(np.abs(sym), 1.0)
    decoded, version, ok = hdr.decode(hdr.slot_llrs(sym, np.full(sym.shape, 0.1)))
    assert ok and decoded == h and version == hdr.PHY_VERSION


def test_header_decodes_through_noise_at_minus_3_db_per_subcarrier():
    rng = np.random.default_rng(11)
    h = FrameHeader(session_id=1, seq=2, payload_len=3)
    sym = hdr.encode(h)
    nv = 10 ** 0.3
    fails = 0
    for _ in range(50):
        y = sym + np.sqrt(nv / 2) * (rng.standard_normal(sym.shape) + 1j * rng.standard_normal(sym.shape))
        d, _, ok = hdr.decode(hdr.slot_llrs(y, np.full(sym.shape, nv)))
        fails += not (ok and d == h)
    assert fails <= 1


def test_corrupted_crc_is_detected():
    h = FrameHeader(session_id=1, seq=2, payload_len=3)
    sym = hdr.encode(h, corrupt_crc=True)
    decoded, _, ok = hdr.decode(hdr.slot_llrs(sym, np.full(sym.shape, 0.1)))
    assert not ok and decoded is None


@pytest.mark.parametrize("field,value", [("session_id", 1 << 16), ("seq", -1), ("payload_len", 0),
                                         ("rate_idx", 256), ("task_id", 16), ("version", 16),
                                         ("seq", 1.5)])
def test_header_field_errors_name_the_field(field, value):
    kwargs = dict(session_id=1, seq=2, payload_len=3)
    kwargs[field] = value
    with pytest.raises(ValueError, match=field):
        FrameHeader(**kwargs)
