"""The linear analog image code (mtsc_sdr/model/analog.py): PCA fit, exact unit power with the
scale side information, near-exact recovery at high SNR, LMMSE shrinkage at low SNR, the model's
dense-task path and checkpoints written before the code existed."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mtsc_sdr.data import collate, examples
from mtsc_sdr.model import ModelConfig, TextTokenizer, build_model, load, save
from mtsc_sdr.model import tokenizer as tokmod
from mtsc_sdr.model import analog
from mtsc_sdr.model.analog import (AnalogEstimator, AnalogImageCode, allocation, coefficients_sent, from_reals,
                                   pairing, payload_correction, to_reals)
from mtsc_sdr.model.jsc import choose_rate
from mtsc_sdr.model.split import analog_slots

SIDE = 8                      # 3 x 8 x 8 images: D = 192
D, C = 3 * SIDE * SIDE, 62
TABLE, THR = (4, 8, 16, 32), (0.0, 6.0, 12.0)


def classes(snr_db: float, b: int) -> torch.Tensor:
    """The rate index (SNR class) a client picks at ``snr_db``."""
    return choose_rate(torch.full((b,), float(snr_db)), 512, TABLE, THR)


def smooth_images(n: int, seed: int) -> torch.Tensor:
    """float32 (n, 3, 8, 8) in [0, 1]: random low-frequency patterns (a strongly non-white
    spectrum, as natural patches have)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand((n, 3, 2, 2), generator=g)
    img = torch.nn.functional.interpolate(low, size=(SIDE, SIDE), mode="bilinear", align_corners=True)
    return (0.8 * img + 0.05 * torch.rand((n, 3, SIDE, SIDE), generator=g)).clamp(0, 1)


@pytest.fixture(scope="module")
def fitted():
    code = AnalogImageCode(D, C)
    code.fit(smooth_images(2000, 0))
    est = AnalogEstimator(C)
    est.copy_from(code)
    return code, est


def channel(x: torch.Tensor, snr_db: float, seed: int = 1) -> torch.Tensor:
    """AWGN at ``snr_db`` (unit signal power) followed by the MMSE scaling the model's genie
    equaliser and the base station apply."""
    rho = 10.0 ** (snr_db / 10.0)
    g = torch.Generator().manual_seed(seed)
    noise = torch.complex(torch.randn(x.shape, generator=g), torch.randn(x.shape, generator=g)) * math.sqrt(0.5 / rho)
    return ((x + noise) * (rho / (1.0 + rho))).to(torch.complex64)


def test_fit_gives_an_orthonormal_basis_by_decreasing_variance(fitted):
    code, _ = fitted
    eye = code.basis.T @ code.basis
    assert torch.allclose(eye, torch.eye(C), atol=1e-4)
    assert bool((code.lam[1:] <= code.lam[:-1] + 1e-9).all()) and float(code.lam[0]) > 100 * float(code.lam[-1])


@pytest.mark.parametrize("n_symbols", [32, 20, 7, 3])
def test_every_item_has_unit_power_and_the_scale_reals(fitted, n_symbols):
    code, _ = fitted
    imgs = smooth_images(6, 5)
    imgs[0] = 0.5                               # nearly the mean: a tiny norm
    budget = 40
    x = code.encode(imgs, torch.full((6,), n_symbols), budget, torch.tensor([0, 1, 2, 3, 0, 3]), THR)
    assert x.dtype == torch.complex64 and x.shape == (6, budget)
    power = x[:, :n_symbols].abs().pow(2).mean(1)
    assert torch.allclose(power, torch.ones(6), rtol=1e-4), power
    assert bool((x[:, n_symbols:] == 0).all())
    # the scale reals take at most 3/4 of the item's energy
    assert bool((x[:, 0].abs().pow(2) <= 0.75 * n_symbols + 1e-4).all())


def test_high_snr_recovers_the_sent_coefficients(fitted):
    code, est = fitted
    imgs = smooth_images(8, 7)
    n = torch.tensor([32, 32, 32, 32, 16, 16, 8, 8])
    ri = classes(60.0, 8)
    coef = est(channel(code.encode(imgs, n, 32, ri, THR), 60.0), n, torch.full((8,), 60.0), ri, THR)
    truth = code.analyse(imgs)
    sent = coefficients_sent(n, C)
    for i in range(8):
        k = int(sent[i])
        assert torch.allclose(coef[i, :k], truth[i, :k], atol=2e-3 * float(truth[i].abs().max()))
        assert bool((coef[i, k:] == 0).all())
    # all coefficients sent: the synthesis is the image's projection on the basis, near the image
    out = code.synthesise(coef[:4], (3, SIDE, SIDE))
    assert float((out - imgs[:4]).pow(2).mean()) < 1e-3


def test_low_snr_shrinks_and_more_snr_helps(fitted):
    code, est = fitted
    imgs = smooth_images(64, 9)
    n = torch.full((64,), 32)
    truth = code.analyse(imgs)
    errors = []
    for snr in (-5.0, 5.0, 15.0):
        ri = classes(snr, 64)
        coef = est(channel(code.encode(imgs, n, 32, ri, THR), snr, seed=3), n, torch.full((64,), snr), ri, THR)
        errors.append(float((coef - truth).pow(2).mean()))
        if snr == -5.0:   # LMMSE pulls noisy estimates toward the prior mean
            assert float(coef.pow(2).sum()) < float(truth.pow(2).sum())
    assert errors[0] > errors[1] > errors[2]
    # better than ignoring the received symbols (estimating every coefficient as its mean, 0)
    assert errors[0] < float(truth.pow(2).mean())


def test_pairing_puts_the_strongest_coefficient_beside_the_weakest():
    assert pairing(5).tolist() == [0, 4, 1, 3, 2]
    assert pairing(6).tolist() == [0, 5, 1, 4, 2, 3]
    for width in (1, 2, 7, 1020):
        assert sorted(pairing(width).tolist()) == list(range(width))


def test_reals_layout_round_trips():
    coef = torch.randn(3, C)
    n = torch.tensor([32, 20, 3])
    reals = to_reals(coef, n, 64)
    assert bool((reals[:, :4] == 0).all())
    back = from_reals(reals, n, C)
    for i, k in enumerate(coefficients_sent(n, C).tolist()):
        assert torch.equal(back[i, :k], coef[i, :k]) and bool((back[i, k:] == 0).all())
        assert bool((reals[i, 4 + k:] == 0).all())


@pytest.mark.parametrize("snr_db, amplitude, phase", [(0.0, 0.93, 0.1), (20.0, 0.985, 0.02)])
def test_payload_correction_removes_a_common_gain_error(fitted, snr_db, amplitude, phase, monkeypatch):
    """A channel estimate off by a common complex gain, of the size the PHY's pilots leave (about
    7 % and 0.1 rad at 0 dB, 0.8 % and 0.011 rad at 20 dB: 1 to 2 standard deviations here), is
    measured on the payload and mostly undone: the estimates lose far less than without the
    correction, and an exact payload loses little to it."""
    code, est = fitted
    b, budget = 32, 512                           # as the release models send a patch
    imgs = smooth_images(b, 11)
    n = torch.full((b,), budget)
    ri = classes(snr_db, b)
    snr = torch.full((b,), snr_db)
    x = code.encode(imgs, n, budget, ri, THR)
    truth = code.analyse(imgs)
    g = amplitude * complex(math.cos(phase), math.sin(phase))

    def mse(gain):
        return float((est(channel(x * gain, snr_db), n, snr, ri, THR) - truth).pow(2).mean())

    exact, off = mse(1.0), mse(g)
    monkeypatch.setattr(analog, "payload_correction", lambda z, n, v, power: (z, v))
    exact_raw, off_raw = mse(1.0), mse(g)
    assert off - exact < 0.5 * (off_raw - exact_raw)
    assert exact < exact_raw + 0.1 * (off_raw - exact_raw)


def est_design(ri):
    from mtsc_sdr.model.analog import snr_classes
    return snr_classes(ri, THR).design_db


def test_payload_correction_measures_the_noise_on_unused_reals(fitted):
    """At low SNR the weakest coefficients get no power; their reals are noise, pooled with the
    PHY's noise estimate by degrees of freedom: a PHY estimate off by a factor 2 moves toward the
    truth as far as the payload's empty reals weigh against the PHY's."""
    code, est = fitted
    b, budget = 16, 512
    imgs = smooth_images(b, 12)
    n = torch.full((b,), budget)
    ri = classes(-3.0, b)
    w = allocation(est.lam, coefficients_mask(n), est_design(ri))
    power = to_reals(w ** 2 * est.lam, n, 2 * budget)
    empty = int((power[0, 4:] == 0).sum())
    assert empty > 900
    true_v = 10.0 ** 0.3
    z = channel(code.encode(imgs, n, budget, ri, THR), -3.0) * (1.0 + true_v)
    _, v = payload_correction(torch.view_as_real(z).reshape(b, -1), n, torch.full((b,), 2 * true_v), power)
    pooled = (analog.PHY_NOISE_DOF * 2 * true_v + empty * true_v) / (analog.PHY_NOISE_DOF + empty)
    assert torch.allclose(v, torch.full((b,), pooled), rtol=0.1), (v, pooled)
    assert bool((v < 1.7 * true_v).all())


def coefficients_mask(n):
    return torch.arange(C)[None, :] < coefficients_sent(n, C)[:, None]


@pytest.fixture(scope="module")
def tok():
    return TextTokenizer.train(tokmod.corpus(n_scenes=150, n_audio=60, n_video=60))


def test_model_dense_task_goes_through_the_analog_code(tok):
    torch.manual_seed(0)
    m = build_model(ModelConfig.micro(), tok).eval()
    batch = collate(examples("train", ["reconstruct"], n_per_task=4, seed=3))
    m.client.analog.fit(collate(examples("train", ["reconstruct"], n_per_task=300, seed=0))["target_image"])
    m.server.analog.copy_from(m.client.analog)
    with torch.no_grad():
        res = m(batch, "reconstruct", 60.0, fading=None, generator=torch.Generator().manual_seed(0))
        sent = m.client.analog.analyse(batch["image"])
        got = analog_slots(res.downlink.semantics, m.cfg.analog_coefficients())
        images = m.client.decode("reconstruct", res.downlink)
    k = int(coefficients_sent(res.uplink.n_symbols(m.cfg.rate_table), got.shape[1])[0])
    assert torch.allclose(got[:, :k], sent[:, :k], atol=1e-2 * float(sent.abs().max()))
    assert images.shape == (4, 3, 32, 32) and float(images.min()) >= 0 and float(images.max()) <= 1
    # the decoded image is the clipped linear synthesis, near the image itself at 60 dB
    assert torch.equal(images, m.client.analog_image(res.downlink.semantics).clamp(0, 1))
    code = m.client.analog
    projection = code.synthesise(code.analyse(batch["image"]), (3, 32, 32)).clamp(0, 1)
    assert float((images - projection).pow(2).mean()) < 0.05 * float((projection - batch["target_image"]).pow(2).mean())


def test_checkpoint_from_before_the_analog_code_loads_without_it(tok, tmp_path):
    from dataclasses import replace

    torch.manual_seed(0)
    old = build_model(replace(ModelConfig.micro(), analog_image=False), tok).eval()
    save(old, tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "config.json").read_text())
    del meta["model"]["analog_image"]                  # as written before the field existed
    (tmp_path / "old" / "config.json").write_text(json.dumps(meta))
    back = load(tmp_path / "old")
    assert not back.cfg.analog_image and back.client.analog is None and back.server.analog is None
    batch = collate(examples("train", ["reconstruct"], n_per_task=2, seed=1))
    with torch.no_grad():
        a = old.predict(batch, "reconstruct", 10.0, generator=torch.Generator().manual_seed(2))
        b = back.predict(batch, "reconstruct", 10.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


def test_allocation_is_the_high_snr_rule_there_and_drops_weak_coefficients_at_low_snr():
    lam = torch.tensor([100.0, 10.0, 1.0, 0.1, 0.01, 0.001])
    sent = torch.ones((2, 6), dtype=torch.bool)
    w = allocation(lam, sent, torch.tensor([math.inf, -5.0]))
    high = lam ** -0.25
    assert torch.allclose(w[0] / w[0, 0], high / high[0], rtol=1e-4)
    assert float(w[1, -1]) == 0.0 and float(w[1, 0]) > 0
    # both rows spend the reference energy sum(w^2 lam) = sum(lam^1/2)
    assert torch.allclose((w ** 2 * lam).sum(1), lam.sqrt().sum().expand(2), rtol=1e-4)
    # unsent coefficients get nothing
    part = allocation(lam, torch.tensor([[True, True, True, False, False, False]]), torch.tensor([math.inf]))
    assert bool((part[0, 3:] == 0).all())
