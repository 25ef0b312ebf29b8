"""Linear analog image code (SoftCast-style): the first layer of image reconstruction.

For the dense image task (reconstruction) the JSC symbols are a *linear* code of the pixels, and
the receiver's first estimate is its LMMSE inverse; the learned parts (the LAM decoder's share of
the task semantics, the client's image decoder) add a correction on top. A learned autoencoder of
this size plateaus far below what a linear code reaches at high SNR (the release model reached
28.6 dB at 20 dB where PCA + LMMSE reaches 39.4 dB on the same test patches), while a learned
decoder beats LMMSE at low SNR; the hybrid keeps both.

Code (:class:`AnalogImageCode`, client)
---------------------------------------
``x = image.flatten(1)`` float32 (B, D), D = 3 H W, pixels in [0, 1]. Coefficients
``c = (x - mean) @ basis`` (B, C): a PCA of the training images (:meth:`AnalogImageCode.fit`),
columns by decreasing variance ``lam``; before any fit, the identity (the first C pixels). An item
of ``n`` complex symbols (its 2 n reals, ``view_as_real`` order) carries

* reals 0 and 1: ``A l``, the scale side information: ``l = (ln ||w c|| - ln_mean) / ln_std``
  (standardised log-norm of the weighted coefficients sent; ``ln_mean``, ``ln_std`` fit with the
  basis), clipped to +-2.77 (:data:`SCALE_SHARE`), ``A = SCALE_AMPLITUDE sqrt(n / 512)``;
* reals 2 .. 2 n - 1: ``g * w_k c_k`` for the first 2 n - 2 coefficients, ``w = lam ** -1/4``
  (the MSE-optimal power allocation of a linear code), ``g = sqrt(n - 2 A^2 l^2) / ||w c||`` so
  that the item has unit average power exactly (``sum |x|^2 = n``), as every JSC frame does.

The per-item normalisation is what the receiver cannot see in the received power (always ``n``
on average), hence the side information: it costs ``2 A^2`` of the ``n`` energy units.

Estimate (:class:`AnalogEstimator`, server)
-------------------------------------------
From MMSE-equalised symbols ``y = rho / (1 + rho) x + noise`` (the genie equaliser of
:class:`~.split.MTSCModel`; the base station feeds the same, see :mod:`mtsc_sdr.runtime.bs`),
``rho`` the linear SNR estimate: unbias ``z = y (1 + rho) / rho`` (noise variance ``1 / (2 rho)``
per real), LMMSE-estimate ``l`` (prior N(0, 1)), from it the gain ``g`` and the patch's energy
``e = ||w c||^2 / sum(w^2 lam)``, and per coefficient the LMMSE estimate with prior variance
``lam_k e``. Coefficients not sent are estimated as 0 (their mean).
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: Amplitude A of each of the two scale reals per unit of standardised log-norm at
#: :data:`REFERENCE_SYMBOLS` symbols; an item of n symbols uses ``A sqrt(n / 512)`` (the same share
#: of its energy, ``2 A^2 l^2``: 50 of 512 units on average). Chosen by simulating this code on the
#: test patches at 512 symbols: A^2 = 24 gave the best mean PSNR at 0 to 10 dB among 12, 16, 24,
#: 32 and 48 (less power leaves l too noisy, more starves the coefficients).
SCALE_AMPLITUDE = 5.0
REFERENCE_SYMBOLS = 512
#: Bound on the standardised log-norm sent: |l| <= L_MAX, and the scale reals never take more
#: than this share of the item's energy (so |l| <= 2.77 with the amplitude above).
L_MAX, SCALE_SHARE = 4.0, 0.75
#: Reals per item used by the scale side information.
SCALE_REALS = 2


def coefficients_sent(n_symbols: torch.Tensor, n_coef: int) -> torch.Tensor:
    """int64 (B,): coefficients an item of ``n_symbols`` complex symbols carries (2 n - 2, at most
    ``n_coef``)."""
    return (2 * n_symbols - SCALE_REALS).clamp(min=0, max=n_coef)


def scale_amplitude(n_symbols: torch.Tensor) -> torch.Tensor:
    """float (B,): the amplitude per unit of l of an item of n symbols."""
    return SCALE_AMPLITUDE * torch.sqrt(n_symbols.float() / REFERENCE_SYMBOLS)


def _scale_bound(n_symbols: torch.Tensor) -> torch.Tensor:
    """float (B,): the largest |l| an item may send (see :data:`SCALE_SHARE`)."""
    share = math.sqrt(SCALE_SHARE * REFERENCE_SYMBOLS / SCALE_REALS) / SCALE_AMPLITUDE
    return torch.full(n_symbols.shape, min(L_MAX, share), dtype=torch.float32, device=n_symbols.device)


class _Spectrum(nn.Module):
    """Buffers both ends share: the coefficient variances ``lam`` (C,) and the log-norm statistics
    of the weighted coefficients (``ln_mean``, ``ln_std``: scalars)."""

    def __init__(self, n_coef: int):
        super().__init__()
        self.register_buffer("lam", torch.ones(n_coef))
        self.register_buffer("ln_stats", torch.tensor([0.5 * math.log(n_coef / 12.0), 1.0]))

    @property
    def weight(self) -> torch.Tensor:
        """w = lam^-1/4, float32 (C,)."""
        return self.lam.clamp(min=1e-12) ** -0.25


class AnalogImageCode(_Spectrum):
    """Client half: pixels <-> coefficients, and the code (see the module docstring).

    Args:
        n_pixels: D = 3 H W.
        n_coef: C, coefficients kept (the most an item sends is 2 n - 2 of them).
    """

    def __init__(self, n_pixels: int, n_coef: int):
        super().__init__(n_coef)
        if n_coef > n_pixels:
            raise ValueError(f"n_coef ({n_coef}) must be at most the pixel count ({n_pixels})")
        self.register_buffer("mean", torch.full((n_pixels,), 0.5))
        self.register_buffer("basis", torch.eye(n_pixels, n_coef))

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> None:
        """PCA of ``images`` float (N, 3, H, W) in [0, 1] (the training images): mean, basis,
        variances and the log-norm statistics. float64 inside; N should exceed C (variances are
        floored at 1e-8 of the largest, so directions the images never took get little power).

        Raises:
            ValueError: fewer than 2 images.
        """
        if images.shape[0] < 2:
            raise ValueError(f"fitting the analog code needs at least 2 images, got {images.shape[0]}")
        x = images.flatten(1).double()
        mean = x.mean(0)
        lam, vec = torch.linalg.eigh(torch.cov((x - mean).T))
        order = torch.argsort(lam, descending=True)[:self.basis.shape[1]]
        self.mean.copy_(mean)
        self.basis.copy_(vec[:, order])
        self.lam.copy_(lam[order].clamp(min=1e-8 * float(lam.max().clamp(min=1e-12))))
        log_norm = torch.log(self._weighted_norm(x.float() - self.mean))
        self.ln_stats.copy_(torch.stack([log_norm.mean(), log_norm.std().clamp(min=1e-3)]))

    def analyse(self, images: torch.Tensor) -> torch.Tensor:
        """images float (B, 3, H, W) -> coefficients float32 (B, C)."""
        return (images.flatten(1).float() - self.mean) @ self.basis

    def synthesise(self, coef: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        """coefficients float (B, C) -> image float32 (B, *shape) (not clipped)."""
        return (self.mean + coef.float() @ self.basis.T).view(coef.shape[0], *shape)

    def _weighted_norm(self, centred: torch.Tensor) -> torch.Tensor:
        return ((centred @ self.basis) * self.weight).norm(dim=1).clamp(min=1e-6)

    def encode(self, images: torch.Tensor, n_symbols: torch.Tensor, budget: int) -> torch.Tensor:
        """images float (B, 3, H, W), n_symbols int64 (B,) (each <= budget) -> complex64 (B, budget),
        unit average power over each item's first n_symbols, zeros after."""
        wc = self.analyse(images) * self.weight                                   # (B, C)
        n_coef = coefficients_sent(n_symbols, wc.shape[1])
        k = torch.arange(wc.shape[1], device=wc.device)[None, :]
        wc = wc * (k < n_coef[:, None])
        norm = wc.norm(dim=1).clamp(min=1e-6)
        ln_mean, ln_std = self.ln_stats
        bound = _scale_bound(n_symbols)
        l = torch.maximum(torch.minimum((torch.log(norm) - ln_mean) / ln_std, bound), -bound)  # noqa: E741
        amp = scale_amplitude(n_symbols)
        energy = n_symbols.float() - SCALE_REALS * (amp * l) ** 2
        coded = wc * (torch.sqrt(energy) / norm)[:, None]
        reals = torch.zeros((wc.shape[0], 2 * budget), dtype=torch.float32, device=wc.device)
        reals[:, :SCALE_REALS] = (amp * l)[:, None]
        width = min(wc.shape[1], 2 * budget - SCALE_REALS)
        reals[:, SCALE_REALS:SCALE_REALS + width] = coded[:, :width]
        return torch.view_as_complex(reals.view(wc.shape[0], budget, 2))


class AnalogEstimator(_Spectrum):
    """Server half: received symbols -> LMMSE coefficient estimates (see the module docstring).
    Its buffers are fit by copying the client's (:meth:`copy_from`)."""

    @torch.no_grad()
    def copy_from(self, code: AnalogImageCode) -> None:
        self.lam.copy_(code.lam)
        self.ln_stats.copy_(code.ln_stats)

    def forward(self, received: torch.Tensor, n_symbols: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        """received complex64 (B, S) MMSE-equalised, n_symbols int64 (B,), snr_db float (B,) ->
        coefficient estimates float32 (B, C) (zero beyond the 2 n - 2 sent)."""
        b, n_coef = received.shape[0], self.lam.shape[0]
        rho = (10.0 ** (snr_db.float() / 10.0)).clamp(min=1e-6)
        reals = torch.view_as_real(received.reshape(b, -1)).reshape(b, -1).float()
        z = reals * ((1.0 + rho) / rho)[:, None]
        noise = 1.0 / (2.0 * rho)                                                  # per real
        amp_l = scale_amplitude(n_symbols)
        a2 = amp_l ** 2
        l_hat = z[:, :SCALE_REALS].mean(1) / amp_l
        l_hat = l_hat / (1.0 + noise / (SCALE_REALS * a2))                         # LMMSE, prior N(0, 1)
        bound = _scale_bound(n_symbols)
        l_hat = torch.maximum(torch.minimum(l_hat, bound), -bound)
        ln_mean, ln_std = self.ln_stats
        norm = torch.exp(ln_mean + ln_std * l_hat)
        gain = torch.sqrt(n_symbols.float() - SCALE_REALS * a2 * l_hat ** 2) / norm   # (B,)
        w = self.weight
        k = torch.arange(n_coef, device=z.device)[None, :]
        sent = k < coefficients_sent(n_symbols, n_coef)[:, None]                   # (B, C)
        energy = norm ** 2 / ((w ** 2 * self.lam)[None, :] * sent).sum(1).clamp(min=1e-12)
        prior = self.lam[None, :] * energy[:, None]                                # (B, C)
        width = min(n_coef, z.shape[1] - SCALE_REALS)
        zc = torch.zeros((b, n_coef), dtype=torch.float32, device=z.device)
        zc[:, :width] = z[:, SCALE_REALS:SCALE_REALS + width]
        amp = gain[:, None] * w[None, :]
        est = amp * prior / (amp ** 2 * prior + noise[:, None]) * zc
        return est * sent
