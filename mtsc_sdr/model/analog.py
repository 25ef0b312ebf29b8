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
  power, as every JSC frame has), laid out by :func:`pairing`: each symbol pairs a strong
  coefficient (real part) with a weak one (imaginary part), so that a common phase error leaks
  little into what matters and can be measured (:func:`payload_correction`);
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
``rho`` the linear SNR estimate: unbias ``z = y (1 + rho) / rho``; :func:`payload_correction`
measures the common gain error the PHY's channel estimate left and the noise on the payload itself
and undoes the one; l from the coarse real, refined by the fine ones; from it the gain ``g`` and the
patch's energy ``e = ||w c||^2 / sum(w^2 lam)``, and per coefficient the LMMSE estimate with prior
variance ``lam_k e``. Coefficients not sent (or given no power) are estimated as 0, their mean.

On the air the PHY spreads every payload over all its subcarriers (:mod:`mtsc_sdr.phy.spreading`),
so the code's strong first coefficients do not clip at the transmitter, and hands it back
despread with the same noise on every symbol.

Measured (``benchmarks/quality_vs_snr.py``; the model cards): at or above the PCA + LMMSE
scheme of ``benchmarks/patch_bounds.py`` at every SNR from -5 to 20 dB, which assumes the scale
known at the receiver for free and the high-SNR power split at every SNR.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields

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


@functools.lru_cache(maxsize=64)
def pairing(width: int) -> torch.Tensor:
    """int64 (width,): the coefficient each of ``width`` coefficient reals carries. Symbol p pairs
    coefficient p (real part) with coefficient width - 1 - p (imaginary part): the strongest with the
    weakest, so that the code's symbols are nearly real and the receiver can measure a common phase
    error from their second moment."""
    j = torch.arange(width)
    return torch.where(j % 2 == 0, j // 2, width - 1 - j // 2)


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


#: What the PHY receiver (:mod:`mtsc_sdr.phy.rx`, whose channel estimate uses the LTF and the
#: CRC-checked header) leaves on a frame's payload, per unit of its noise variance v per complex
#: symbol: the variance of the common gain's magnitude error and of its phase error (rad^2), and the
#: real degrees of freedom of its noise estimate; see :func:`payload_correction`. Measured over
#: AWGN with a 2 kHz CFO at -5 / 0 / 10 / 20 dB (150 frames of 512 symbols each): magnitude
#: v / 548, v / 446, v / 414, v / 240 (transmitter clipping adds to it at 20 dB); phase v / 94,
#: v / 101, v / 96, v / 100. Noise: 2 x 9 x 52 (two LTF and seven header symbols' residuals).
PHY_AMPLITUDE_VAR, PHY_PHASE_VAR, PHY_NOISE_DOF = 1.0 / 400.0, 1.0 / 100.0, 936

class _Spectrum(nn.Module):
    """Buffers both ends share: the coefficient variances ``lam`` (C,) and the log-norm statistics
    of the weighted coefficients (``ln_mean``, ``ln_std``: scalars)."""

    def __init__(self, n_coef: int):
        super().__init__()
        self.register_buffer("lam", torch.ones(n_coef))
        self.register_buffer("ln_stats", torch.tensor([0.5 * math.log(n_coef / 12.0), 1.0]))
        self._cache: dict = {}      # allocations and per-rate codes, keyed with lam's version

    def allocation(self, n_symbols: torch.Tensor, design_db: torch.Tensor) -> torch.Tensor:
        """:func:`allocation` (B, C) for items of ``n_symbols`` int64 (B,) designed for
        ``design_db`` float (B,). An item's weights depend only on its length and SNR class, of
        which there are a handful, so each pair's 60-step bisection is done once and kept (until
        ``lam`` changes): it was two thirds of the dense task's encode at batch 1."""
        n_coef = self.lam.shape[0]
        rows = []
        for n, d in zip(n_symbols.tolist(), design_db.tolist()):
            key = (self.lam._version, self.lam.data_ptr(), int(n), float(d))
            if key not in self._cache:
                sent = _sent(torch.tensor([n], device=self.lam.device), n_coef)
                self._cache[key] = allocation(self.lam, sent, torch.tensor([d], device=self.lam.device))[0]
            rows.append(self._cache[key])
        return torch.stack(rows) if rows else self.lam.new_zeros((0, n_coef))

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
        """images float (B, 3, H, W) -> coefficients float32 (B, C); zeros beyond the K components
        a pruned code keeps (:meth:`keep`)."""
        c = (images.flatten(1).float() - self.mean) @ self.basis
        missing = self.lam.shape[0] - c.shape[1]
        return nn.functional.pad(c, (0, missing)) if missing else c

    def synthesise(self, coef: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        """coefficients float (B, C) -> image float32 (B, *shape) (not clipped); a pruned code
        uses its K components' (the others were sent as zeros: their estimates are noise)."""
        k = self.basis.shape[1]
        return (self.mean + coef[:, :k].float() @ self.basis.T).view(coef.shape[0], *shape)

    @torch.no_grad()
    def keep(self, k: int) -> None:
        """Structured pruning, in place: keep the projection's first ``k`` of C components (the
        basis columns of the largest variance), (D, C) -> (D, k). The code still sends C
        coefficient slots, the others as zeros, so the base station decodes it unchanged (its
        estimator shares ``lam``); the item's energy goes to the kept ones.

        Raises:
            ValueError: k outside [1, current K].
        """
        if not 1 <= k <= self.basis.shape[1]:
            raise ValueError(f"the analog code keeps 1..{self.basis.shape[1]} components, asked {k}")
        self.basis = self.basis[:, :k].contiguous()

    def _weighted_norm(self, centred: torch.Tensor) -> torch.Tensor:
        return ((centred @ self.basis) * self.weight).norm(dim=1).clamp(min=1e-6)

    def encode(self, images: torch.Tensor, n_symbols: torch.Tensor, budget: int,
               rate_idx: torch.Tensor, thresholds_db) -> torch.Tensor:
        """images float (B, 3, H, W), n_symbols int64 (B,) (each <= budget), rate_idx int64 (B,)
        (the SNR class, :func:`snr_classes`) -> complex64 (B, budget), unit average power over
        each item's first n_symbols, zeros after: :meth:`encode_coefficients` of
        :meth:`analyse`."""
        return self.encode_coefficients(self.analyse(images), n_symbols, budget, rate_idx, thresholds_db)

    def encode_coefficients(self, c: torch.Tensor, n_symbols: torch.Tensor, budget: int,
                            rate_idx: torch.Tensor, thresholds_db) -> torch.Tensor:
        """As :meth:`encode`, from the coefficients float32 (B, C) :meth:`analyse` gives."""
        reals = self.code(c, self.item_code(n_symbols, budget, rate_idx, thresholds_db))
        return torch.view_as_complex(reals.view(c.shape[0], budget, 2))

    def item_code(self, n_symbols: torch.Tensor, budget: int, rate_idx: torch.Tensor,
                  thresholds_db) -> "ItemCode":
        """What the code of items of ``n_symbols`` (int64 (B,), each <= budget) in SNR classes
        ``rate_idx`` (int64 (B,)) depends on besides their coefficients (:class:`ItemCode`)."""
        cls = snr_classes(rate_idx, thresholds_db)
        return ItemCode(self.allocation(n_symbols, cls.design_db), _amplitude(cls, n_symbols), _wraps(cls),
                        _scale_bound(cls), n_symbols.float(), slots(n_symbols, self.lam.shape[0], 2 * budget))

    def rate_code(self, budget: int, rate_table, thresholds_db) -> "ItemCode":
        """:meth:`item_code` with one row per rate index ``i`` of ``rate_table``, for an item of
        ``budget // rate_table[i]`` tokens of ``rate_table[i]`` symbols (how the client frames the
        code, :meth:`~.split.ClientModel.analog_reals`); look rows up with :meth:`ItemCode.select`.
        Computed once per budget and table (until ``lam`` changes). Rates whose one token exceeds
        the budget get an empty row (no symbols; the rate choice never picks them)."""
        key = ("rates", self.lam._version, self.lam.data_ptr(), int(budget), tuple(int(r) for r in rate_table),
               tuple(float(t) for t in thresholds_db))
        if key not in self._cache:
            table = torch.as_tensor(rate_table, dtype=torch.int64, device=self.lam.device)
            self._cache[key] = self.item_code((budget // table) * table, budget,
                                              torch.arange(len(rate_table), device=self.lam.device), thresholds_db)
        return self._cache[key]

    def code(self, c: torch.Tensor, item: "ItemCode") -> torch.Tensor:
        """coefficients float32 (B, C) -> the items' reals float32 (B, 2 budget) (``view_as_real``
        order of their complex symbols): the scale reals, then the weighted coefficients by
        :func:`pairing`, zeros after each item's 2 n. Tensor arithmetic only, no per-item Python:
        this is also what the exported encode graphs compute (:mod:`mtsc_sdr.compress.graph`)."""
        wc = c * item.weights
        norm = wc.norm(dim=1).clamp(min=1e-6)
        ln_mean, ln_std = self.ln_stats
        l = ((torch.log(norm) - ln_mean) / ln_std).clamp(-item.bound, item.bound)  # noqa: E741
        scale = item.amp[:, None] * _scale_reals(l, item.wraps)                  # (B, SCALE_REALS)
        coded = wc * (torch.sqrt(item.energy - scale.pow(2).sum(1)) / norm)[:, None]
        reals = torch.cat([coded, coded.new_zeros((c.shape[0], 1))], 1).gather(1, item.slots)
        return torch.cat([scale, reals[:, SCALE_REALS:]], 1)


@dataclass(frozen=True)
class ItemCode:
    """What an item's analog code depends on besides its coefficients: its length and SNR class
    (:meth:`AnalogImageCode.item_code`). Every field is per item (first dim B).

    Attributes:
        weights: float32 (B, C), :func:`allocation`. amp, wraps, bound: float32 (B,), the scale
            reals' amplitude A, sawtooth rate K and the bound on |l|. energy: float32 (B,), n.
        slots: int64 (B, 2 budget), :func:`slots`.
    """

    weights: torch.Tensor
    amp: torch.Tensor
    wraps: torch.Tensor
    bound: torch.Tensor
    energy: torch.Tensor
    slots: torch.Tensor

    def select(self, index: torch.Tensor) -> "ItemCode":
        """The rows ``index`` (int64 (B',)) of every field: a table with one row per SNR class,
        looked up by each item's class."""
        return ItemCode(*(getattr(self, f.name)[index] for f in fields(self)))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))


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
        reals = torch.view_as_real(received.reshape(b, -1)).reshape(b, -1).float()
        z = reals * ((1.0 + rho) / rho)[:, None]
        sent = _sent(n_symbols, n_coef)                                            # (B, C)
        w = self.allocation(n_symbols, cls.design_db)                              # (B, C)
        coded_power = w ** 2 * self.lam[None, :]                                    # (B, C)
        z, v = payload_correction(z, n_symbols, 1.0 / rho, to_reals(coded_power, n_symbols, z.shape[1]))
        noise = v / 2.0                                                            # per real
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
        energy = norm ** 2 / coded_power.sum(1).clamp(min=1e-12)
        prior = self.lam[None, :] * energy[:, None]                                # (B, C)
        zc = from_reals(z, n_symbols, n_coef)
        a = gain[:, None] * w
        est = a * prior / (a ** 2 * prior + noise[:, None]) * zc
        return est * sent


def _layouts(n_symbols: torch.Tensor, n_coef: int):
    """(rows, pairing) for each item length in the batch: the items of that length (int64) and
    the coefficient each of their coefficient reals carries (:func:`pairing` of the
    :func:`coefficients_sent` count); lengths that carry no coefficient are skipped."""
    for n in torch.unique(n_symbols).tolist():
        width = int(coefficients_sent(torch.tensor(n), n_coef))
        if width > 0:
            yield torch.nonzero(n_symbols == n).flatten(), pairing(width)


def slots(n_symbols: torch.Tensor, n_coef: int, n_reals: int) -> torch.Tensor:
    """int64 (B, n_reals): the coefficient each of an item's reals carries, by :func:`pairing`
    after the SCALE_REALS scale reals, or ``n_coef`` (read as a zero) on the scale reals and on
    reals that carry none (beyond C, or beyond the item's 2 n)."""
    out = torch.full((n_symbols.shape[0], n_reals), n_coef, dtype=torch.int64, device=n_symbols.device)
    for rows, perm in _layouts(n_symbols, n_coef):
        out[rows, SCALE_REALS:SCALE_REALS + perm.numel()] = perm.to(out.device)
    return out


def to_reals(coef: torch.Tensor, n_symbols: torch.Tensor, n_reals: int) -> torch.Tensor:
    """float (B, n_reals): coefficient values (B, C) where an item's reals carry them (:func:`slots`);
    zero on the scale reals and on reals that carry no coefficient."""
    padded = torch.cat([coef, coef.new_zeros((coef.shape[0], 1))], 1)
    return padded.gather(1, slots(n_symbols, coef.shape[1], n_reals))


def from_reals(reals: torch.Tensor, n_symbols: torch.Tensor, n_coef: int) -> torch.Tensor:
    """float (B, n_coef): the inverse of :func:`to_reals` (zero for coefficients not carried)."""
    out = torch.zeros((reals.shape[0], n_coef), dtype=reals.dtype, device=reals.device)
    for rows, perm in _layouts(n_symbols, n_coef):
        out[rows[:, None], perm[None, :]] = reals[rows, SCALE_REALS:SCALE_REALS + perm.numel()]
    return out


def payload_correction(z: torch.Tensor, n_symbols: torch.Tensor, v_phy: torch.Tensor,
                       slot_power: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The common complex gain and the noise of an item, measured on its own payload and pooled
    with the PHY's estimates; the payload with the gain undone.

    The PHY's channel estimate leaves a common gain error ``g`` on all of a frame's symbols
    (``|g| - 1`` and ``arg g`` with variances :data:`PHY_AMPLITUDE_VAR` and :data:`PHY_PHASE_VAR`
    times v), and its noise estimate has :data:`PHY_NOISE_DOF` degrees of freedom. The linear code
    is hurt by both far more than the learned token path: at 0 dB a common phase of 0.1 rad leaks
    each strong coefficient into its partner. The payload itself tells more, because the code's
    statistics are known:

    * phase: each symbol pairs a strong coefficient with a weak one (:func:`pairing`), so
      ``sum q_k z_k^2`` (``q_k``: the real part's expected power less the imaginary part's) is
      real and positive but for the rotation ``g^2`` and noise;
    * noise: reals that carry no power (unsent coefficients, water-filled out at low SNR) are
      pure noise;
    * magnitude: the item's energy is exactly n (unit power), so ``|g|^2 = sum |z|^2 / n - v``.

    Each payload measurement is pooled with the PHY's (phase 0, magnitude 1, noise ``v_phy``) by
    inverse variance (noise: by degrees of freedom), so that a payload that tells little (low
    SNR, few symbols) leaves the PHY's estimate, and a genie equaliser's exact values move little.

    Args:
        z: float (B, R) reals of the unbiased payload (``x + noise``), R >= 2 n;
        n_symbols: int64 (B,); v_phy: float (B,) noise variance per complex symbol the PHY
        reports; slot_power: float (B, R) the relative power each real carries
        (:func:`to_reals` of the coefficients' ``w^2 lam``; 0 where a real carries no power).
    Returns:
        z with the gain undone (float (B, R)); the pooled noise variance per complex symbol (B,).
    """
    b = z.shape[0]
    k = torch.arange(z.shape[1] // 2, device=z.device)[None, :]
    live = k < n_symbols[:, None]                                                  # (B, R/2)
    zc = torch.view_as_complex(z.reshape(b, -1, 2).contiguous()) * live
    n = n_symbols.float().clamp(min=1.0)
    # phase: 2 phi = arg sum q z^2. With a = s p_re, b = s p_im the expected powers of a symbol's
    # real and imaginary parts (s the item's scale), sum q z^2 = g^2 s sum q^2 plus an imaginary
    # spread of variance sum q^2 (4 a b + 2 v (a + b) + v^2 / 2): the weak partners and the noise
    p_re, p_im = slot_power[:, 0::2], slot_power[:, 1::2]                          # (B, R/2)
    q = p_re - p_im
    received = (zc.abs() ** 2).sum(1)                        # energy; the rotation below keeps it
    s = ((received - n * v_phy) / slot_power.sum(1).clamp(min=1e-12)).clamp(min=0.0)
    a, b_ = s[:, None] * p_re, s[:, None] * p_im
    vv = v_phy[:, None]
    spread_im = (q ** 2 * (4.0 * a * b_ + 2.0 * vv * (a + b_) + 0.5 * vv ** 2)).sum(1)
    var_phase = spread_im / (4.0 * (s * (q ** 2).sum(1)).clamp(min=1e-12) ** 2)
    prior = PHY_PHASE_VAR * v_phy
    phase = 0.5 * torch.angle((q * zc ** 2).sum(1)) * prior / (prior + var_phase)
    zc = zc * torch.polar(torch.ones_like(phase), -phase)[:, None]
    # noise: the powerless reals of the live symbols, pooled with the PHY's by degrees of freedom
    empty = (slot_power == 0) & live.repeat_interleave(2, dim=1)
    empty[:, :SCALE_REALS] = False
    zr = torch.view_as_real(zc).reshape(b, -1)
    dof = empty.sum(1).float()
    v = (PHY_NOISE_DOF * v_phy + 2.0 * (zr ** 2 * empty).sum(1)) / (PHY_NOISE_DOF + dof)
    # magnitude: energy n; var of the amplitude from that of the measured power
    power = received / n - v
    var_power = (2.0 * v + v ** 2) / n + 2.0 * v ** 2 / (PHY_NOISE_DOF + dof)
    var_amp = var_power / 4.0
    prior = PHY_AMPLITUDE_VAR * v_phy
    amp = 1.0 + (power.clamp(min=0.05).sqrt() - 1.0) * prior / (prior + var_amp)
    out = torch.view_as_real(zc / amp[:, None]).reshape(b, -1)
    return out, v
