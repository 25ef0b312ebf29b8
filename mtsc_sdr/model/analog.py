"""Linear analog image code (SoftCast-style): how the dense image task (reconstruction) is sent.

The JSC symbols of a patch are a *linear* code of its pixels, and the receiver's estimate is the
LMMSE inverse; the client synthesises the image from it. A learned autoencoder of this size
plateaued far below what a linear code reaches (the earlier release model: 28.6 dB at 20 dB where
PCA + LMMSE reaches 39.4 dB on the same test patches). Learned corrections on top of this code
were tried and left out: a LAM-decoder + convolutional correction, zero-initialised and trained
3000 reconstruction-only steps, gained at most 0.1 dB below 10 dB and lost 0.1-0.3 dB at
15-20 dB, with or without FiLM conditioning on the SNR estimate.

Code (:class:`AnalogImageCode`, client)
---------------------------------------
``x = image.flatten(1)`` float32 (B, D), D = 3 H W, pixels in [0, 1]. Coefficients
``c = (x - mean) @ basis`` (B, C): a PCA of the training images (:meth:`AnalogImageCode.fit`),
columns by decreasing variance ``lam``; before any fit, the identity (the first C pixels). An item
of ``n`` complex symbols (its 2 n reals, ``view_as_real`` order) carries

* reals 4 .. 2 n - 1: ``g w_k c_k`` for the first 2 n - 4 coefficients, the weights ``w`` from
  :func:`allocation` (the MSE-optimal power split of a linear code, designed for the item's SNR
  class: :func:`snr_classes`, from the rate index the client picked from its SNR, which the frame
  header carries to the receiver), ``g`` making the item's energy exactly ``n`` (unit average
  power, as every JSC frame has);
* reals 0 .. 3, the scale side information, which the receiver cannot see in the received power
  (always about ``n``): ``l = (ln ||w c|| - ln_mean) / ln_std`` (the standardised log-norm;
  ``ln_mean``, ``ln_std`` fit with the basis) as ``A l`` (coarse) and ``A saw(K^j l)``,
  j = 1, 2, 3 (sawtooths of period 2, each K times steeper than the one before: at high SNR the
  receiver knows l K^3 times better than from the coarse real alone, for little energy; K is as
  large as the noise at the class's lowest SNR allows without unwrapping wrongly,
  :data:`CLASS_MARGIN`), ``A^2 = E n / 512`` with E by class (:data:`SCALE_ENERGY_LOW`...):
  about 3 to 48 of 512 energy units.

Estimate (:class:`AnalogEstimator`, server)
-------------------------------------------
From MMSE-equalised symbols ``y = rho / (1 + rho) x + noise`` (the genie equaliser of
:class:`~.split.MTSCModel`; the base station feeds the same, see :mod:`mtsc_sdr.runtime.bs`),
``rho`` the linear SNR estimate: unbias ``z = y (1 + rho) / rho`` (noise variance ``1 / (2 rho)``
per real); l from the coarse real, refined by the fine one; from it the gain ``g`` and the
patch's energy ``e = ||w c||^2 / sum(w^2 lam)``, and per coefficient the LMMSE estimate with prior
variance ``lam_k e``. Coefficients not sent (or given no power) are estimated as 0, their mean.

Measured (``benchmarks/quality_vs_snr.py``; the model cards): at or above the PCA + LMMSE
scheme of ``benchmarks/patch_bounds.py`` at every SNR from -5 to 20 dB, which assumes the scale
known at the receiver for free and the high-SNR power split at every SNR.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn

#: Reals per item used by the scale side information: a coarse one and SCALE_REALS - 1 wraps.
SCALE_REALS = 4
#: Energy A^2 per unit of amplitude of each scale real, at :data:`REFERENCE_SYMBOLS` symbols, by
#: SNR class (:func:`snr_classes`: below 6 dB, 6-12 dB, above; an item of n symbols uses
#: ``A^2 n / 512``, the same share of its energy): more where the SNR is low (l must survive the
#: noise), less where it is high (the power goes to the coefficients). With SCALE_REALS and
#: CLASS_MARGIN chosen on the validation patches at 512 symbols over AWGN (mean PSNR at -5..20 dB
#: against PCA + LMMSE): 2, 3 and 4 scale reals; 16, 24, 32 below 6 dB; 6, 8, 12 and 2, 3, 4, 12
#: above; margins 2.5, 3, 3.5.
SCALE_ENERGY_LOW, SCALE_ENERGY_HIGH, SCALE_ENERGY_TOP = 24.0, 6.0, 3.0
REFERENCE_SYMBOLS = 512
#: Bound on the standardised log-norm sent: |l| <= L_MAX, and the scale reals never take more
#: than SCALE_SHARE of the item's energy.
L_MAX, SCALE_SHARE = 4.0, 0.75
#: The fine scale real wraps when the coarse one is off by more than 1 / K: K is set so that this
#: takes CLASS_MARGIN noise standard deviations at the lowest SNR of the item's class.
CLASS_MARGIN = 3.0
#: Design SNR of the lowest class (below the first threshold), dB below that threshold.
LOWEST_CLASS_BELOW_DB = 3.0


def coefficients_sent(n_symbols: torch.Tensor, n_coef: int) -> torch.Tensor:
    """int64 (B,): coefficients an item of ``n_symbols`` complex symbols carries (2 n -
    SCALE_REALS, at most ``n_coef``)."""
    return (2 * n_symbols - SCALE_REALS).clamp(min=0, max=n_coef)


def _sent(n_symbols: torch.Tensor, n_coef: int) -> torch.Tensor:
    """bool (B, n_coef): which coefficients each item carries (:func:`coefficients_sent`)."""
    k = torch.arange(n_coef, device=n_symbols.device)[None, :]
    return k < coefficients_sent(n_symbols, n_coef)[:, None]


@dataclass(frozen=True)
class SNRClass:
    """What both ends derive from an item's SNR class (the JSC rate index, which the frame header
    carries; :func:`snr_classes`). All float (B,).

    Attributes:
        design_db: the SNR the power allocation is designed for (inf: the high-SNR rule).
        low_db: the class's lowest SNR (for the lowest class, ``design_db``).
        scale_energy: A^2 of the scale reals at 512 symbols.
    """

    design_db: torch.Tensor
    low_db: torch.Tensor
    scale_energy: torch.Tensor


def snr_classes(rate_idx: torch.Tensor, thresholds_db) -> SNRClass:
    """The SNR class of each item from its rate index (int64 (B,)): rate index ``i`` of a table of
    R rates is the SNR floor ``R - 1 - i`` thresholds passed (:func:`~.jsc.choose_rate`): below
    the first threshold, the class is designed ``LOWEST_CLASS_BELOW_DB`` under it; between two
    thresholds, at their middle; above the last, for high SNR."""
    thr = [float(t) for t in thresholds_db]
    r = len(thr) + 1
    passed = (r - 1 - rate_idx).clamp(min=0, max=len(thr)).tolist()
    design, low = [], []
    for k in passed:
        if k == 0:
            d = thr[0] - LOWEST_CLASS_BELOW_DB if thr else math.inf
            design.append(d)
            low.append(d)
        elif k == len(thr):
            design.append(math.inf)
            low.append(thr[-1])
        else:
            design.append(0.5 * (thr[k - 1] + thr[k]))
            low.append(thr[k - 1])
    design_t = torch.tensor(design, dtype=torch.float32, device=rate_idx.device)
    energy = torch.where(design_t < (thr[1] if len(thr) > 1 else math.inf), SCALE_ENERGY_LOW,
                         torch.where(torch.isinf(design_t), SCALE_ENERGY_TOP, SCALE_ENERGY_HIGH))
    return SNRClass(design_t, torch.tensor(low, dtype=torch.float32, device=rate_idx.device), energy)


def _amplitude(cls: SNRClass, n_symbols: torch.Tensor) -> torch.Tensor:
    """A (B,): amplitude per unit of l (and of the sawtooth) of the scale reals."""
    return torch.sqrt(cls.scale_energy * n_symbols.float() / REFERENCE_SYMBOLS)


def _wraps(cls: SNRClass) -> torch.Tensor:
    """K (B,): sawtooth rate of the fine scale real (see :func:`_amplitude`): the coarse real's
    noise at the class's lowest SNR, ``sqrt(1 / (2 rho)) / A`` in units of l, times K is
    1 / CLASS_MARGIN. (A is taken at 512 symbols; smaller budgets wrap more safely per real but
    have less energy: A scales with sqrt(n), so the margin is the same.)"""
    rho = 10.0 ** (cls.low_db / 10.0)
    sigma = torch.sqrt(1.0 / (2.0 * rho)) / torch.sqrt(cls.scale_energy)
    return 1.0 / (CLASS_MARGIN * sigma)


def _scale_reals(l: torch.Tensor, wraps: torch.Tensor) -> torch.Tensor:  # noqa: E741
    """float (B, SCALE_REALS) per unit amplitude: l, then saw(K l), saw(K^2 l), ...: each level
    K times finer, each safe to unwrap given the one before (the same margin at every level)."""
    return torch.stack([l] + [_sawtooth(wraps ** j * l) for j in range(1, SCALE_REALS)], dim=1)


def _sawtooth(x: torch.Tensor) -> torch.Tensor:
    """Period 2, values in [-1, 1): x - 2 round(x / 2)."""
    return x - 2.0 * torch.round(x / 2.0)


def _scale_bound(cls: SNRClass) -> torch.Tensor:
    """float (B,): the largest |l| an item may send: its scale reals, ``A^2 (l^2 + saw^2) <=
    A^2 (l^2 + 1)``, take at most SCALE_SHARE of its energy."""
    room = torch.sqrt((SCALE_SHARE * REFERENCE_SYMBOLS / cls.scale_energy - (SCALE_REALS - 1)).clamp(min=0.25))
    return room.clamp(max=L_MAX)


def allocation(lam: torch.Tensor, sent: torch.Tensor, design_db: torch.Tensor) -> torch.Tensor:
    """Per-coefficient amplitude weights w (B, C) of a linear code designed for ``design_db``.

    The MSE-optimal power split of a linear analog code with an LMMSE receiver (reverse
    water-filling): coefficient k gets power ``u_k = max(0, t sqrt(lam_k) - N)``, N = 10^(-d/10)
    the design noise per unit of signal and t such that the sent coefficients' powers sum to their
    count; ``w_k = sqrt(u_k / lam_k)``. At high SNR this is ``w = lam^-1/4`` (every coefficient
    sent, the design ``inf``); at low SNR the weakest get nothing and the strongest more. Every
    row is scaled so that ``sum(w^2 lam)`` over its sent coefficients is ``sum(lam^1/2)`` over
    all C (the reference of the log-norm statistics).

    Args:
        lam: float (C,) variances; sent: bool (B, C); design_db: float (B,) (inf allowed).
    """
    root = lam.sqrt()[None, :] * sent                                             # (B, C)
    noise = torch.where(torch.isinf(design_db), torch.zeros_like(design_db), 10.0 ** (-design_db / 10.0))
    count = sent.sum(1).float().clamp(min=1.0)
    lo = torch.zeros_like(count)
    hi = (count + noise * count) / root.sum(1).clamp(min=1e-12) * 2.0 + 1.0   # sum(u) >= count here
    for _ in range(60):                                                           # bisection on t
        t = 0.5 * (lo + hi)
        total = (t[:, None] * root - noise[:, None]).clamp(min=0.0).mul(sent).sum(1)
        big = total > count
        hi = torch.where(big, t, hi)
        lo = torch.where(big, lo, t)
    u = (hi[:, None] * root - noise[:, None]).clamp(min=0.0) * sent
    w = torch.sqrt(u / lam.clamp(min=1e-12)[None, :])
    ref = lam.sqrt().sum()
    return w * torch.sqrt(ref / (w ** 2 * lam[None, :]).sum(1).clamp(min=1e-12))[:, None]


#: Seed of :func:`spreading_phases` (plus n).
SPREADING_SEED = 0x414E


@functools.lru_cache(maxsize=64)
def spreading_phases(n: int) -> torch.Tensor:
    """complex64 (2, n): two rows of fixed pseudo-random unit phases per n (see :func:`spread`)."""
    g = torch.Generator().manual_seed(SPREADING_SEED + n)
    return torch.polar(torch.ones(2, n), 2 * math.pi * torch.rand((2, n), generator=g)).to(torch.complex64)


def spread(symbols: torch.Tensor, n_symbols: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """What goes on the air: each row's first n symbols (complex (B, S)) mixed by a fixed unitary
    map, ``p2 * fft(p1 * z) / sqrt(n)`` (:func:`spreading_phases`); ``inverse`` undoes it.

    The code's symbols come by decreasing variance, so unmixed the first few carry most of the
    energy: an OFDM symbol holding them had 8.7 x the average power and clipped at the transmitter
    (1190 clipped samples in 50 frames at 0 dB). Mixed, every symbol carries a share of all of
    them, with the same power on average (SoftCast whitens its packets with a Hadamard transform
    for the same reason). The phases after the transform matter too: a code dominated by one
    coefficient would otherwise go out as a complex exponential, which an OFDM modulator turns
    into one peak per OFDM symbol. Unitary, so white noise stays white and the LMMSE is unchanged."""
    out = symbols.clone()
    for n in torch.unique(n_symbols).tolist():
        rows = torch.nonzero(n_symbols == n).flatten()
        ph = spreading_phases(int(n)).to(symbols.device)
        z = symbols[rows, :n]
        out[rows, :n] = (torch.fft.ifft(z * ph[1].conj(), norm="ortho") * ph[0].conj() if inverse
                         else torch.fft.fft(z * ph[0], norm="ortho") * ph[1])
    return out


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
        n_coef: C, coefficients kept (an item of n symbols sends the first 2 n - SCALE_REALS).
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

    def encode(self, images: torch.Tensor, n_symbols: torch.Tensor, budget: int,
               rate_idx: torch.Tensor, thresholds_db) -> torch.Tensor:
        """images float (B, 3, H, W), n_symbols int64 (B,) (each <= budget), rate_idx int64 (B,)
        (the SNR class, :func:`snr_classes`) -> complex64 (B, budget), unit average power over
        each item's first n_symbols, zeros after."""
        c = self.analyse(images)                                                  # (B, C)
        cls = snr_classes(rate_idx, thresholds_db)
        wc = c * allocation(self.lam, _sent(n_symbols, c.shape[1]), cls.design_db)
        norm = wc.norm(dim=1).clamp(min=1e-6)
        ln_mean, ln_std = self.ln_stats
        bound = _scale_bound(cls)
        l = ((torch.log(norm) - ln_mean) / ln_std).clamp(-bound, bound)  # noqa: E741
        amp = _amplitude(cls, n_symbols)
        scale = _scale_reals(l, _wraps(cls))                                     # (B, SCALE_REALS)
        energy = n_symbols.float() - (amp[:, None] * scale).pow(2).sum(1)
        coded = wc * (torch.sqrt(energy) / norm)[:, None]
        reals = torch.zeros((c.shape[0], 2 * budget), dtype=torch.float32, device=c.device)
        reals[:, :SCALE_REALS] = amp[:, None] * scale
        width = min(c.shape[1], 2 * budget - SCALE_REALS)
        reals[:, SCALE_REALS:SCALE_REALS + width] = coded[:, :width]
        return spread(torch.view_as_complex(reals.view(c.shape[0], budget, 2)), n_symbols)


class AnalogEstimator(_Spectrum):
    """Server half: received symbols -> LMMSE coefficient estimates (see the module docstring).
    Its buffers are fit by copying the client's (:meth:`copy_from`)."""

    @torch.no_grad()
    def copy_from(self, code: AnalogImageCode) -> None:
        self.lam.copy_(code.lam)
        self.ln_stats.copy_(code.ln_stats)

    def forward(self, received: torch.Tensor, n_symbols: torch.Tensor, snr_db: torch.Tensor,
                rate_idx: torch.Tensor, thresholds_db) -> torch.Tensor:
        """received complex64 (B, S) MMSE-equalised, n_symbols and rate_idx int64 (B,), snr_db
        float (B,) -> coefficient estimates float32 (B, C) (zero beyond the 2 n - SCALE_REALS sent)."""
        b, n_coef = received.shape[0], self.lam.shape[0]
        cls = snr_classes(rate_idx, thresholds_db)
        rho = (10.0 ** (snr_db.float() / 10.0)).clamp(min=1e-6)
        received = spread(received.reshape(b, -1), n_symbols, inverse=True)
        reals = torch.view_as_real(received).reshape(b, -1).float()
        z = reals * ((1.0 + rho) / rho)[:, None]
        noise = 1.0 / (2.0 * rho)                                                  # per real
        amp = _amplitude(cls, n_symbols)
        wraps = _wraps(cls)
        l_hat = z[:, 0] / amp                                                      # coarse
        for level in range(1, SCALE_REALS):                                        # each wrap K times finer
            k = wraps ** level
            fine = (z[:, level] / amp).clamp(-1.0, 1.0)
            l_hat = (fine + 2.0 * torch.round((k * l_hat - fine) / 2.0)) / k
        bound = _scale_bound(cls)
        l_hat = l_hat.clamp(-bound, bound)
        ln_mean, ln_std = self.ln_stats
        norm = torch.exp(ln_mean + ln_std * l_hat)
        spent = (amp[:, None] * _scale_reals(l_hat, wraps)).pow(2).sum(1)
        gain = torch.sqrt((n_symbols.float() - spent).clamp(min=1e-6)) / norm
        sent = _sent(n_symbols, n_coef)                                            # (B, C)
        w = allocation(self.lam, sent, cls.design_db)                              # (B, C)
        energy = norm ** 2 / (w ** 2 * self.lam[None, :]).sum(1).clamp(min=1e-12)
        prior = self.lam[None, :] * energy[:, None]                                # (B, C)
        width = min(n_coef, z.shape[1] - SCALE_REALS)
        zc = torch.zeros((b, n_coef), dtype=torch.float32, device=z.device)
        zc[:, :width] = z[:, SCALE_REALS:SCALE_REALS + width]
        a = gain[:, None] * w
        est = a * prior / (a ** 2 * prior + noise[:, None]) * zc
        return est * sent
