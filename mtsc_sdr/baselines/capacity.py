"""The "codec at channel capacity" bound: the best image codec setting whose stripped size fits the
Shannon capacity of the SNR times the symbol budget (no channel errors, ideal channel code).

SNR is Es/N0 per complex symbol (:mod:`mtsc_sdr.conventions`).

* AWGN: ``C = symbols * log2(1 + snr)`` bits.
* Rician block fading with E|h|^2 = 1 and perfect receiver CSI: the ergodic capacity
  ``symbols * E[log2(1 + |h|^2 snr)]``, computed by numeric integration over the distribution of
  |h|^2 (``2 (K + 1) |h|^2`` is noncentral chi-square with 2 degrees of freedom and noncentrality
  ``2 K``), deterministic, no sampling. (With one fading block per item a single item may see less
  than this -- the ergodic value is the usual bound the papers quote.)
"""

from __future__ import annotations

import math

import numpy as np

from mtsc_sdr.metrics import psnr_db

from .codecs import encode_image

__all__ = ["capacity_bits", "ergodic_rician_se", "codec_at_capacity"]


def ergodic_rician_se(snr_db: float, k_factor_db: float | None = 6.0) -> float:
    """E[log2(1 + |h|^2 snr)] in bit/symbol for Rician |h| with E|h|^2 = 1 (None: Rayleigh)."""
    from scipy import integrate, stats  # ~0.5 s to import; only the capacity bound needs them
    snr = 10.0 ** (snr_db / 10.0)
    k = 0.0 if k_factor_db is None else 10.0 ** (k_factor_db / 10.0)
    scale = 1.0 / (2.0 * (k + 1.0))  # |h|^2 = scale * X, X ~ ncx2(2, 2K)
    dist = stats.ncx2(2, 2.0 * k, scale=scale) if k > 0 else stats.chi2(2, scale=scale)
    val, _ = integrate.quad(lambda g: math.log2(1.0 + g * snr) * dist.pdf(g), 0.0, np.inf,
                            limit=200)
    return float(val)


def capacity_bits(snr_db: float, symbols: int, channel: str = "awgn",
                  k_factor_db: float | None = 6.0) -> float:
    """Shannon capacity in bits of ``symbols`` complex symbols at ``snr_db`` (Es/N0).

    ``channel='awgn'``: ``symbols * log2(1 + snr)``; ``'rician'``: ergodic capacity with Rician K
    ``k_factor_db`` (None: Rayleigh) and E|h|^2 = 1.
    """
    if channel == "awgn":
        return symbols * math.log2(1.0 + 10.0 ** (snr_db / 10.0))
    if channel == "rician":
        return symbols * ergodic_rician_se(snr_db, k_factor_db)
    raise ValueError(f"channel must be 'awgn' or 'rician', got {channel!r}")


def codec_at_capacity(img: np.ndarray, snr_db: float, symbols: int, channel: str = "awgn",
                      k_factor_db: float | None = 6.0, mean_image: int | np.ndarray = 128,
                      codecs: tuple[str, ...] = ("jpeg", "webp")) -> tuple[np.ndarray, float, int]:
    """Best codec quality whose stripped size (descriptor byte included) fits
    ``floor(capacity_bits / 8)`` bytes -> (image uint8 (H, W, 3), PSNR dB, bytes).

    When not even the lowest quality fits, the receiver has nothing: the mean image (``mean_image``:
    a uint8 image, or an int for a constant one) with its PSNR and 0 bytes.
    """
    budget = int(capacity_bits(snr_db, symbols, channel, k_factor_db) // 8)
    enc = encode_image(img, budget, codecs)
    if enc is None:
        if isinstance(mean_image, np.ndarray):
            mean = mean_image.astype(np.uint8)
        else:
            mean = np.full(img.shape, int(mean_image), dtype=np.uint8)
        return mean, psnr_db(img, mean), 0
    return enc.image, enc.psnr_db, enc.n_bytes
