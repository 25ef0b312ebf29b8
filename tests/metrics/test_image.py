"""PSNR and SSIM (numpy and torch), SSIM checked against scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtsc_sdr.metrics import psnr_db, psnr_db_per_image, psnr_db_torch, ssim, ssim_per_image, ssim_torch


def noisy_pair(seed=0, shape=(32, 29, 3), sigma=0.1):
    rng = np.random.default_rng(seed)
    x = rng.random(shape)
    return x, np.clip(x + sigma * rng.standard_normal(shape), 0.0, 1.0)


def skimage_ssim(x, y, data_range, channel_axis=-1):
    from skimage.metrics import structural_similarity

    return structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=data_range, channel_axis=channel_axis)


def test_psnr_of_known_noise():
    x = np.full((16, 16, 3), 0.5)
    signs = np.where(np.indices(x.shape).sum(axis=0) % 2 == 0, 1.0, -1.0)
    assert psnr_db(x, x + 0.1 * signs) == pytest.approx(20.0)  # MSE 0.01
    xu = np.full((8, 8), 100, np.uint8)
    assert psnr_db(xu, xu + np.uint8(10)) == pytest.approx(10 * math.log10(255 ** 2 / 100))
    assert psnr_db(x, x) == math.inf


def test_psnr_batch_is_mean_of_per_image():
    x = np.full((2, 3, 8, 8), 0.5)
    y = x.copy()
    y[0] += 0.1   # 20 dB
    y[1] += 0.01  # 40 dB
    np.testing.assert_allclose(psnr_db_per_image(x, y), [20.0, 40.0])
    assert psnr_db(x, y) == pytest.approx(30.0)


def test_ssim_matches_skimage():
    x, y = noisy_pair()
    assert ssim(x, y) == pytest.approx(skimage_ssim(x, y, 1.0), abs=1e-4)
    xu, yu = (x * 255).astype(np.uint8), (y * 255).astype(np.uint8)
    assert ssim(xu, yu) == pytest.approx(skimage_ssim(xu, yu, 255), abs=1e-4)
    g, h = x[..., 0], y[..., 0]
    assert ssim(g, h) == pytest.approx(skimage_ssim(g, h, 1.0, channel_axis=None), abs=1e-4)
    assert ssim(x, x) == pytest.approx(1.0)


def test_ssim_batch_is_mean_of_per_image_nchw():
    pairs = [noisy_pair(seed, sigma=s) for seed, s in ((1, 0.05), (2, 0.2))]
    xb = np.stack([np.moveaxis(p[0], -1, 0) for p in pairs])
    yb = np.stack([np.moveaxis(p[1], -1, 0) for p in pairs])
    expected = [skimage_ssim(x, y, 1.0) for x, y in pairs]
    np.testing.assert_allclose(ssim_per_image(xb, yb), expected, atol=1e-4)
    assert ssim(xb, yb) == pytest.approx(np.mean(expected), abs=1e-4)


def test_torch_versions_match_and_are_differentiable():
    torch = pytest.importorskip("torch")
    x, y = noisy_pair()
    xt = torch.tensor(np.moveaxis(x, -1, 0)[None], dtype=torch.float64)
    yt = torch.tensor(np.moveaxis(y, -1, 0)[None], dtype=torch.float64, requires_grad=True)
    assert ssim_torch(xt, yt).item() == pytest.approx(ssim(x, y), abs=1e-9)
    assert psnr_db_torch(xt, yt).item() == pytest.approx(psnr_db(x, y), abs=1e-9)
    (1 - ssim_torch(xt, yt).mean()).backward()
    assert yt.grad is not None and torch.isfinite(yt.grad).all()
    # the numpy functions take tensors too
    assert ssim(xt, yt) == pytest.approx(ssim(x, y))


def test_image_metrics_name_bad_input():
    x, y = noisy_pair()
    with pytest.raises(ValueError, match="different shapes"):
        psnr_db(x, y[:-1])
    with pytest.raises(ValueError, match="both be uint8 or both be floats"):
        ssim((x * 255).astype(np.uint8), y)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(x[:8, :8], y[:8, :8])
    with pytest.raises(ValueError, match="got shape"):
        psnr_db(x.ravel(), y.ravel())
