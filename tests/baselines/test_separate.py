"""Separate source-channel coding baseline: codecs, channel code, end to end, capacity bound."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtsc_sdr.baselines import (
    MCS_TABLE, BlockCode, QamModem, SeparateCodingBaseline, capacity_bits, choose_mcs,
    codec_at_capacity,
)
from mtsc_sdr.metrics import psnr_db
from mtsc_sdr.baselines import channel_code as cc
from mtsc_sdr.baselines import codecs


def _image(seed: int = 0) -> np.ndarray:
    """A deterministic natural-looking 32x32 RGB image: smooth gradients, a disc, mild texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:32, 0:32] / 31.0
    r = 60 + 150 * x
    g = 80 + 120 * y * (1 - x)
    b = 160 - 100 * y
    disc = (x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.06
    img = np.stack([r, g, b], axis=-1)
    img[disc] = [230, 200, 40]
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


IMG = _image()


# --- codecs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("budget", [40, 80, 200, 600])
def test_image_codec_fits_budget_and_round_trips(budget):
    enc = codecs.encode_image(IMG, budget)
    assert enc is not None and enc.n_bytes <= budget
    rec = codecs.decode_image(enc.data, IMG.shape)
    assert np.array_equal(rec, enc.image)
    assert math.isclose(psnr_db(IMG, rec), enc.psnr_db)


def test_image_codec_quality_grows_with_budget_and_nothing_fits_a_tiny_one():
    psnrs = [codecs.encode_image(IMG, b).psnr_db for b in (40, 100, 300, 900)]
    assert psnrs == sorted(psnrs) and psnrs[-1] > psnrs[0] + 5
    assert codecs.encode_image(IMG, 5) is None


@pytest.mark.parametrize("sub", ["4:2:0", "4:4:4"])
def test_jpeg_stripping_saves_the_header_and_decodes_identically(sub):
    from io import BytesIO

    from PIL import Image
    full = codecs._jpeg_file(IMG, 30, sub)
    stripped = codecs.encode_image_at(IMG, "jpeg", 30, sub)
    assert len(full) - (len(stripped) - 1) >= 600  # ~623-byte header + EOI, descriptor excluded
    ref = np.asarray(Image.open(BytesIO(full)).convert("RGB"))
    assert np.array_equal(codecs.decode_image(stripped, IMG.shape), ref)
    # the header depends only on the setting and the size, not on the content
    other = codecs._jpeg_file(_image(5), 30, sub)
    assert other[:codecs._jpeg_scan_start(other)] == full[:codecs._jpeg_scan_start(full)]


@pytest.mark.skipif(not codecs.webp_available(), reason="Pillow built without WebP")
def test_webp_stripping_saves_27_bytes_and_decodes_identically():
    from io import BytesIO

    from PIL import Image
    full = codecs._webp_file(IMG, 40)
    stripped = codecs.encode_image_at(IMG, "webp", 40)
    assert len(full) - (len(stripped) - 1) == 27
    ref = np.asarray(Image.open(BytesIO(full)).convert("RGB"))
    assert np.array_equal(codecs.decode_image(stripped, IMG.shape), ref)
    assert codecs.header_savings(IMG)["webp"] == 27


def test_corrupt_or_empty_image_bytes_decode_to_none():
    assert codecs.decode_image(b"", IMG.shape) is None
    assert codecs.decode_image(bytes([250, 1, 2, 3]), IMG.shape) is None  # unknown descriptor
    enc = codecs.encode_image_at(IMG, "webp" if codecs.webp_available() else "jpeg", 40)
    assert codecs.decode_image(enc[:3], IMG.shape) is None  # truncated


@pytest.mark.parametrize("text", ["What color is the cat?", "How many people are in the picture?",
                                  "", "Ünïcödé ? 数字 " * 5, "x" * 500])
def test_text_coder_is_lossless(text):
    assert codecs.decode_text(codecs.encode_text(text)) == text


def test_text_coder_beats_utf8_on_short_questions_and_rejects_garbage():
    q = "What color is the cat?"
    assert len(codecs.encode_text(q)) < len(q.encode()) // 2
    assert codecs.decode_text(codecs.encode_text(q)[:-2]) is None  # truncated stream
    assert codecs.decode_text(b"\xff\xff\xff") is None


# --- modulation and channel code ------------------------------------------------------------------

@pytest.mark.parametrize("bps", [1, 2, 4, 6])
def test_qam_unit_power_gray_and_demapper_signs(bps):
    m = QamModem(bps)
    c = m.constellation
    assert len(c) == 2 ** bps and math.isclose(np.mean(np.abs(c) ** 2), 1.0)
    # Gray: nearest neighbours differ in exactly one bit
    for i, p in enumerate(c):
        d = np.abs(c - p)
        d[i] = np.inf
        for j in np.flatnonzero(np.isclose(d, d.min())):
            assert bin(i ^ j).count("1") == 1
    bits = np.random.default_rng(bps).integers(0, 2, 600 * bps).astype(np.uint8)
    s = m.modulate(bits)
    llr = m.demodulate_llr(s, 0.01)
    assert np.array_equal((llr < 0).astype(np.uint8), bits)  # positive LLR -> bit 0
    # bit 0 sits on the positive side of the axis its first bit controls
    first = bits.reshape(-1, bps)[:, 0]
    assert np.all((s.real > 0) == (first == 0))
    # LLRs scale as 1/N0
    assert np.allclose(m.demodulate_llr(s, 0.02), llr / 2)


def test_convolutional_encoder_matches_commpy_and_the_phy():
    from mtsc_sdr.phy import coding
    bits = np.random.default_rng(3).integers(0, 2, 200)
    ours = cc.conv_encode(bits)
    assert np.array_equal(ours, cc.conv_encode(bits, backend="commpy"))
    assert np.array_equal(ours, coding.conv_encode(bits))


@pytest.mark.parametrize("mcs", MCS_TABLE, ids=lambda m: m.name)
def test_block_code_error_free_at_high_snr(mcs):
    code = BlockCode(mcs, 96)
    assert code.coded_bits <= 96 * mcs.bits_per_symbol
    assert code.capacity_bytes > 0
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, code.capacity_bytes, dtype=np.uint8).tobytes()
    x = code.encode(data)
    assert x.shape == (96,)
    n0 = 10 ** (-30 / 10)
    y = x + math.sqrt(n0 / 2) * (rng.standard_normal(96) + 1j * rng.standard_normal(96))
    assert code.decode(y, n0) == data
    short = data[:code.capacity_bytes // 2]  # shorter payloads carry their length
    assert code.decode(code.encode(short), n0) == short


def test_block_code_crc_flags_failures_at_very_low_snr():
    code = BlockCode("64qam-3/4", 96)
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, code.capacity_bytes, dtype=np.uint8).tobytes()
    x = code.encode(data)
    n0 = 10 ** (0 / 10)  # 0 dB for a ~17 dB MCS
    for _ in range(5):
        y = x + math.sqrt(n0 / 2) * (rng.standard_normal(96) + 1j * rng.standard_normal(96))
        assert code.decode(y, n0) is None


def test_commpy_viterbi_agrees_on_a_short_block():
    fast, ref = BlockCode("qpsk-1/2", 80), BlockCode("qpsk-1/2", 80, decoder="commpy")
    rng = np.random.default_rng(2)
    x = fast.encode(b"ok")
    n0 = 10 ** (-4 / 10)
    y = x + math.sqrt(n0 / 2) * (rng.standard_normal(80) + 1j * rng.standard_normal(80))
    assert fast.decode(y, n0) == ref.decode(y, n0) == b"ok"


def test_oversized_payload_is_refused():
    code = BlockCode("qpsk-1/2", 32)
    with pytest.raises(ValueError, match="capacity"):
        code.encode(bytes(code.capacity_bytes + 1))


def test_genie_mcs_choice_is_monotone_in_snr():
    effs = [choose_mcs(s).spectral_efficiency for s in range(-5, 30)]
    assert effs == sorted(effs)
    assert choose_mcs(-10).name == "bpsk-1/2" and choose_mcs(40).name == "64qam-3/4"


def test_block_error_rate_helper_brackets_the_threshold():
    thr = cc.THRESHOLD_SNR_DB["qpsk-1/2"]
    assert cc.block_error_rate("qpsk-1/2", 64, thr + 3, n_blocks=20) <= 0.1
    assert cc.block_error_rate("qpsk-1/2", 64, thr - 4, n_blocks=20) >= 0.5


# --- end to end -----------------------------------------------------------------------------------

def test_image_psnr_grows_with_snr_and_failures_give_the_mean_image():
    bl = SeparateCodingBaseline(128, seed=0)
    psnr = []
    for snr in (-5, 8, 14, 25):
        rec, info = bl.transmit_image(IMG, snr)
        assert rec.shape == IMG.shape and rec.dtype == np.uint8
        assert set(info) >= {"codec", "quality", "bytes", "mcs", "success"}
        if not info["success"]:
            assert np.all(rec == 128)
        psnr.append(psnr_db(IMG, rec))
    assert psnr == sorted(psnr) and psnr[-1] > psnr[0] + 5
    mean = np.full(IMG.shape, 128, np.uint8)
    assert psnr[0] == psnr_db(IMG, mean)


def test_forced_fast_mcs_at_low_snr_fails_to_the_given_mean_image():
    mean = np.full(IMG.shape, 90, np.uint8)
    bl = SeparateCodingBaseline(128, seed=1, mean_image=mean)
    rec, info = bl.transmit_image(IMG, 2.0, mcs="64qam-3/4")
    assert not info["success"] and info["bytes"] > 0 and np.array_equal(rec, mean)


def test_rician_channel_and_reproducibility():
    a = SeparateCodingBaseline(128, seed=7)
    b = SeparateCodingBaseline(128, seed=7)
    ra, ia = a.transmit_image(IMG, 30, channel="rician")
    rb, ib = b.transmit_image(IMG, 30, channel="rician")
    assert ia == ib and np.array_equal(ra, rb)
    assert ia["success"]
    inst = SeparateCodingBaseline(128, seed=7, mcs_snr="instantaneous")
    assert inst.transmit_image(IMG, 30, channel="rician")[1]["success"]
    with pytest.raises(ValueError, match="channel"):
        a.transmit_image(IMG, 10, channel="nakagami")


def test_text_transport():
    bl = SeparateCodingBaseline(64, seed=0)
    q = "Is there a dog on the grass?"
    out, info = bl.transmit_text(q, 10.0)
    n = len(codecs.encode_text(q))
    robust = next(m.name for m in MCS_TABLE if bl.code(m).capacity_bytes >= n)
    assert out == q and info["success"] and info["mcs"] == robust  # most robust MCS that fits
    out, info = bl.transmit_text(q, -10.0)
    assert out is None and not info["success"]
    out, info = bl.transmit_text("an unusually long question " * 40, 30.0)
    assert out is None and "exceeds" in info["reason"]
    data, info = bl.transmit_bytes(b"\x00\x01raw", 20.0, "rician")
    assert data == b"\x00\x01raw"


# --- capacity bound -------------------------------------------------------------------------------

def test_capacity_formula():
    assert math.isclose(capacity_bits(0.0, 100), 100.0)  # log2(2) per symbol
    assert math.isclose(capacity_bits(10 * math.log10(3), 50), 100.0)
    assert math.isclose(capacity_bits(20.0, 1), math.log2(101))
    # Rician ergodic capacity: below AWGN (Jensen), approaches it as K grows
    for snr in (0.0, 10.0):
        awgn = capacity_bits(snr, 1)
        ric = capacity_bits(snr, 1, "rician", k_factor_db=6.0)
        assert ric < awgn
        assert capacity_bits(snr, 1, "rician", k_factor_db=None) < ric
        assert awgn - capacity_bits(snr, 1, "rician", k_factor_db=40.0) < 1e-3
    # Rayleigh at 10 dB: the closed form e^{1/snr} E1(1/snr) / ln 2 = 2.9368 bit
    from scipy.special import exp1
    assert math.isclose(capacity_bits(10.0, 1, "rician", None), math.exp(0.1) * exp1(0.1) / math.log(2),
                        rel_tol=1e-6)


@pytest.mark.parametrize("snr_db,channel", [(-5.0, "awgn"), (5.0, "awgn"), (15.0, "rician")])
def test_codec_at_capacity_never_exceeds_the_capacity(snr_db, channel):
    img, p, n_bytes = codec_at_capacity(IMG, snr_db, 96, channel)
    assert 8 * n_bytes <= capacity_bits(snr_db, 96, channel)
    assert img.shape == IMG.shape and math.isclose(p, psnr_db(IMG, img))


def test_capacity_bound_beats_the_baseline():
    bl = SeparateCodingBaseline(128, seed=3)
    for snr in (8.0, 20.0):
        _, p_cap, _ = codec_at_capacity(IMG, snr, 128)
        rec, _ = bl.transmit_image(IMG, snr)
        assert p_cap >= psnr_db(IMG, rec)
