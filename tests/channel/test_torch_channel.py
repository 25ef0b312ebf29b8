"""The batched, differentiable torch channel (mtsc_sdr.channel.torch_channel)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from mtsc_sdr.channel import torch_channel as tc  # noqa: E402
from mtsc_sdr.conventions import PAYLOAD_POWER, noise_power  # noqa: E402


def payload(b: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return tc.complex_normal((b, n), g) * math.sqrt(PAYLOAD_POWER)


def test_noise_power_matches_per_item_snr():
    b, n = 4, 100_000
    snr_db = torch.tensor([-3.0, 5.0, 12.0, 25.0])
    g = torch.Generator().manual_seed(1)
    y = tc.awgn(torch.zeros(b, n, dtype=torch.complex64), snr_db, generator=g)
    measured = y.abs().pow(2).mean(dim=1)
    for i, s in enumerate(snr_db.tolist()):
        assert measured[i].item() == pytest.approx(noise_power(s), rel=4 / math.sqrt(n))
    assert y.real.var(dim=1) == pytest.approx((measured / 2).tolist(), rel=0.02)


@pytest.mark.parametrize("k_factor_db", [None, 0.0, 10.0])
def test_fading_gains_have_unit_average_power(k_factor_db):
    n = 200_000
    g = torch.Generator().manual_seed(2)
    h = tc.rician_gains((n, 1), k_factor_db, generator=g).to(torch.complex128)
    p = h.abs().pow(2)
    assert abs(p.mean().item() - 1) < 4 * p.std().item() / math.sqrt(n)


def test_rician_k_factor_per_item():
    k_db = torch.tensor([0.0, 10.0])
    g = torch.Generator().manual_seed(3)
    h = tc.rician_gains((2, 100_000), k_db, los_phase_rad=torch.tensor([0.0, 1.0]), generator=g).to(torch.complex128)
    mean = h.mean(dim=1)
    k_est = mean.abs() ** 2 / (h.abs().pow(2).mean(dim=1) - mean.abs() ** 2)
    assert k_est[0].item() == pytest.approx(1.0, rel=0.05)
    assert k_est[1].item() == pytest.approx(10.0, rel=0.05)
    assert torch.angle(mean[1]).item() == pytest.approx(1.0, abs=0.02)


def test_block_fading_returns_the_gains_it_applied():
    x = payload(3, 1000)
    y, h = tc.block_fading(x, 6.0, coherence_samples=300, generator=torch.Generator().manual_seed(4))
    assert h.shape == (3, 4)
    assert torch.allclose(y[:, 600:900], x[:, 600:900] * h[:, 2:3])
    assert torch.allclose(y[:, 900:], x[:, 900:] * h[:, 3:4])


def test_genie_equaliser_recovers_the_input_through_the_channel():
    x = payload(8, 512, seed=5)
    out = tc.apply_channel(x, 40.0, fading="rayleigh", generator=torch.Generator().manual_seed(5))
    x_hat = out.y / out.h  # one gain per item
    err_db = 10 * torch.log10((x_hat - x).abs().pow(2).mean() / x.abs().pow(2).mean())
    assert err_db.item() < -20  # what is left is the 40 dB noise enhanced by deep fades


def test_cfo_rotation_rate_and_phase():
    x = torch.ones(2, 10_000, dtype=torch.complex64)
    y = tc.carrier_offset(x, torch.tensor([100.0, -2500.0]), rate_sps=1e6, phase_rad=torch.tensor([0.5, 0.0]))
    k = torch.arange(10_000, dtype=torch.float64)
    for i, f in enumerate([100.0, -2500.0]):
        expected = torch.polar(torch.ones_like(k), 2 * math.pi * f / 1e6 * k + (0.5 if i == 0 else 0.0))
        assert torch.allclose(y[i].to(torch.complex128), expected, atol=1e-4)


def test_gradients_flow_to_x():
    x = payload(4, 256).requires_grad_()
    out = tc.apply_channel(x, torch.tensor([0.0, 5.0, 10.0, 20.0]), k_factor_db=torch.tensor([0.0, 3.0, 6.0, 9.0]),
                           coherence_samples=64, cfo_hz=50.0, rate_sps=1e4, phase_rad=0.1,
                           generator=torch.Generator().manual_seed(6))
    loss = (out.y - x.detach()).abs().pow(2).mean()
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_generator_makes_draws_reproducible():
    x = payload(2, 100)
    a = tc.apply_channel(x, 10.0, generator=torch.Generator().manual_seed(7))
    b = tc.apply_channel(x, 10.0, generator=torch.Generator().manual_seed(7))
    c = tc.apply_channel(x, 10.0, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.y, b.y) and torch.equal(a.h, b.h)
    assert not torch.allclose(a.y, c.y)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        tc.awgn(torch.zeros(10, dtype=torch.complex64), 10.0)
    with pytest.raises(ValueError):
        tc.awgn(torch.zeros(2, 10, dtype=torch.complex64), torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError):
        tc.apply_channel(torch.zeros(2, 10, dtype=torch.complex64), 10.0, fading="nakagami")
