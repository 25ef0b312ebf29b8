"""PSNR and SSIM of reconstructed images, in numpy (evaluation) and torch (differentiable, training).

Layouts and ranges (numpy arrays or torch tensors; one rule, no guessing from sizes):

* 4-D: a batch ``(N, C, H, W)`` (the torch convention);
* 3-D: one image ``(H, W, C)`` (the numpy / PIL convention);
* 2-D: one grey image ``(H, W)``.

Values are floats in ``[0, 1]`` (``data_range`` 1.0) or ``uint8`` in ``[0, 255]`` (``data_range``
255); the default ``data_range=None`` picks it from the dtype. Both inputs must have the same
shape and the same kind (both uint8 or both floats).

Batch reduction: the mean over images of the per-image value, the convention of the JSCC
literature (DeepJSCC and its successors report mean per-image PSNR; this is not the PSNR of the
mean MSE). A perfect reconstruction has PSNR ``inf``, and so then does the batch mean.

SSIM: Wang et al. 2004 with the standard Gaussian window (11x11, sigma 1.5), ``K1 = 0.01``,
``K2 = 0.03``, population (not sample) covariances, averaged over the positions where the window
fits inside the image, then over channels, then over the batch. This is
``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=..., channel_axis=...)``, which ``tests/metrics/test_image.py``
checks to 1e-4. Images must be at least 11x11.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1 = 0.01
K2 = 0.03


def _gaussian_window() -> np.ndarray:
    x = np.arange(WINDOW_SIZE, dtype=np.float64) - (WINDOW_SIZE - 1) / 2
    g = np.exp(-0.5 * (x / WINDOW_SIGMA) ** 2)
    return g / g.sum()


def _to_nchw(a, name: str) -> np.ndarray:
    """numpy float64 (N, C, H, W) view of an input in one of the documented layouts."""
    if hasattr(a, "detach"):  # a torch tensor, without importing torch
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.ndim == 4:
        out = a
    elif a.ndim == 3:
        out = np.moveaxis(a, -1, 0)[None]
    elif a.ndim == 2:
        out = a[None, None]
    else:
        raise ValueError(f"{name}: expected (N, C, H, W), (H, W, C) or (H, W), got shape {a.shape}")
    return out.astype(np.float64, copy=False)


def _prepare(x, y, data_range):
    kinds = {(getattr(v, "dtype", None) is not None and str(v.dtype).endswith("uint8")) for v in (x, y)}
    if len(kinds) != 1:
        raise ValueError(f"x and y must both be uint8 or both be floats, got {x.dtype} and {y.dtype}")
    if tuple(x.shape) != tuple(y.shape):
        raise ValueError(f"x and y have different shapes: {tuple(x.shape)} and {tuple(y.shape)}")
    if data_range is None:
        data_range = 255.0 if kinds.pop() else 1.0
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    return _to_nchw(x, "x"), _to_nchw(y, "y"), float(data_range)


def psnr_db_per_image(x, y, data_range: float | None = None) -> np.ndarray:
    """PSNR in dB of each image, ``10 log10(data_range^2 / MSE)`` over its pixels and channels."""
    xa, ya, dr = _prepare(x, y, data_range)
    mse = ((xa - ya) ** 2).reshape(xa.shape[0], -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(dr * dr / mse)


def psnr_db(x, y, data_range: float | None = None) -> float:
    """Mean over images of the per-image PSNR in dB (``inf`` if an image is reproduced exactly)."""
    return float(psnr_db_per_image(x, y, data_range).mean())


def _filter_valid(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of the last two axes with the 1-D window ``g``."""
    a = sliding_window_view(a, g.size, axis=-1) @ g
    a = sliding_window_view(a, g.size, axis=-2) @ g
    return a


def ssim_per_image(x, y, data_range: float | None = None) -> np.ndarray:
    """SSIM of each image (mean over the valid window positions, then over channels)."""
    xa, ya, dr = _prepare(x, y, data_range)
    if min(xa.shape[-2:]) < WINDOW_SIZE:
        raise ValueError(f"SSIM needs images of at least {WINDOW_SIZE}x{WINDOW_SIZE}, got {xa.shape[-2:]}")
    g = _gaussian_window()
    mu_x, mu_y = _filter_valid(xa, g), _filter_valid(ya, g)
    var_x = _filter_valid(xa * xa, g) - mu_x * mu_x
    var_y = _filter_valid(ya * ya, g) - mu_y * mu_y
    cov = _filter_valid(xa * ya, g) - mu_x * mu_y
    c1, c2 = (K1 * dr) ** 2, (K2 * dr) ** 2
    smap = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return smap.mean(axis=(1, 2, 3))


def ssim(x, y, data_range: float | None = None) -> float:
    """Mean over images of the per-image SSIM (see the module docstring)."""
    return float(ssim_per_image(x, y, data_range).mean())


# --- torch, differentiable (for training losses); torch is imported only when these are called ---

def psnr_db_torch(x, y, data_range: float = 1.0):
    """Per-image PSNR in dB of float tensors ``(N, C, H, W)``; differentiable, returns shape (N,)."""
    import torch

    mse = (x - y).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range ** 2 / mse)


def ssim_torch(x, y, data_range: float = 1.0):
    """Per-image SSIM of float tensors ``(N, C, H, W)``, same definition as :func:`ssim`;
    differentiable, returns shape (N,). Use ``1 - ssim_torch(...).mean()`` as a loss."""
    import torch
    import torch.nn.functional as F

    if x.dim() != 4 or x.shape != y.shape:
        raise ValueError(
            "ssim_torch: x and y must have the same (N, C, H, W) shape, "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if min(x.shape[-2:]) < WINDOW_SIZE:
        raise ValueError(
            f"SSIM needs images of at least {WINDOW_SIZE}x{WINDOW_SIZE}, got {tuple(x.shape[-2:])}"
        )
    channels = x.shape[1]
    g = torch.as_tensor(_gaussian_window(), dtype=x.dtype, device=x.device)
    win_h = g.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    win_w = g.view(1, 1, 1, -1).expand(channels, 1, 1, -1)

    def blur(a):
        return F.conv2d(F.conv2d(a, win_h, groups=channels), win_w, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    smap = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return smap.flatten(1).mean(dim=1)
