"""Batched, differentiable channel in torch, for training.

Tensors are complex64 of shape (B, N): B items of N complex symbols, at the payload's power on the
wire (``PAYLOAD_POWER`` by default; pass ``signal_power=1.0`` for tensors at unit power). The SNR
is the project-wide Es/N0 per complex symbol (:mod:`mtsc_sdr.conventions`). Gradients flow to ``x``
through every operation; random draws come from an explicit ``torch.Generator``.

Import this module explicitly (``from mtsc_sdr.channel import torch_channel``); the channel package
itself never imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from mtsc_sdr.conventions import PAYLOAD_POWER


def _per_item(value, batch: int, name: str, device, dtype=torch.float32) -> torch.Tensor:
    """Scalar or (B,) -> (B, 1) tensor of ``dtype`` on ``device``."""
    t = torch.as_tensor(value, dtype=dtype, device=device)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"{name} must be a scalar or have shape ({batch},), got {tuple(t.shape)}")
    return t[:, None]


def _check_x(x: torch.Tensor) -> None:
    if not (torch.is_tensor(x) and x.is_complex() and x.ndim == 2):
        raise ValueError(f"x must be a complex tensor of shape (B, N), got {getattr(x, 'shape', type(x))}")


def complex_normal(shape: tuple[int, ...], generator: torch.Generator | None = None,
                   device=None) -> torch.Tensor:
    """CN(0, 1) samples (real and imaginary parts each of variance 1/2), complex64 on ``device``.

    The draw happens on the generator's device and is then moved, so a CPU generator gives the
    same numbers whether the model runs on the CPU or a GPU."""
    where = generator.device if generator is not None else device
    re_im = torch.randn((*shape, 2), generator=generator, device=where).to(device) * math.sqrt(0.5)
    return torch.view_as_complex(re_im)


def noise_power(snr_db, signal_power: float = PAYLOAD_POWER) -> torch.Tensor:
    """Total complex noise power N0 for ``snr_db`` (tensor-valued ``conventions.noise_power``)."""
    return signal_power * torch.pow(10.0, -torch.as_tensor(snr_db, dtype=torch.float32) / 10.0)


def awgn(x: torch.Tensor, snr_db, *, signal_power: float = PAYLOAD_POWER,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Add circular Gaussian noise, N0 = signal_power 10^(-snr_db/10) per complex sample.

    Args:
        x: (B, N) complex64.
        snr_db: scalar or (B,) Es/N0 per item in dB.
        signal_power: payload power the SNR refers to (linear).
        generator: torch.Generator for the noise.
    Returns:
        (B, N) complex64, ``x + n``.
    """
    _check_x(x)
    n0 = noise_power(_per_item(snr_db, x.shape[0], "snr_db", x.device), signal_power)
    return x + complex_normal(tuple(x.shape), generator, x.device) * torch.sqrt(n0)


def rician_gains(shape: tuple[int, ...], k_factor_db=None, *, los_phase_rad=0.0,
                 generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Rician gains with E|h|^2 = 1: ``sqrt(K/(K+1)) e^{j phi} + sqrt(1/(K+1)) CN(0,1)``.

    Args:
        shape: (B, n_blocks).
        k_factor_db: None (Rayleigh, K = 0), a scalar, or (B,) K factor in dB per item.
        los_phase_rad: scalar or (B,) LOS phase per item.
    Returns:
        (B, n_blocks) complex64.
    """
    batch = shape[0]
    w = complex_normal(shape, generator, device)
    if k_factor_db is None:
        return w
    k = torch.pow(10.0, _per_item(k_factor_db, batch, "k_factor_db", device) / 10.0)
    phi = _per_item(los_phase_rad, batch, "los_phase_rad", device)
    los = torch.sqrt(k / (k + 1)) * torch.polar(torch.ones_like(phi), phi)
    return los + torch.sqrt(1 / (k + 1)) * w


def block_fading(x: torch.Tensor, k_factor_db=None, *, coherence_samples: int | None = None,
                 los_phase_rad=0.0, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat block fading: one Rician (or Rayleigh, ``k_factor_db=None``) gain per block.

    Args:
        x: (B, N) complex64.
        k_factor_db: None, scalar or (B,) K factor in dB.
        coherence_samples: samples per block; None: one gain per item.
        los_phase_rad: scalar or (B,) LOS phase.
    Returns:
        ``(y, h)``: y (B, N) = h repeated over each block times x; h (B, n_blocks) complex64 with
        ``n_blocks = ceil(N / coherence_samples)`` (1 when None), for a genie or an equaliser.
    """
    _check_x(x)
    b, n = x.shape
    c = n if coherence_samples is None else int(coherence_samples)
    if c < 1:
        raise ValueError(f"coherence_samples must be >= 1, got {coherence_samples}")
    n_blocks = max(1, -(-n // c))
    h = rician_gains((b, n_blocks), k_factor_db, los_phase_rad=los_phase_rad, generator=generator,
                     device=x.device)
    per_sample = h.repeat_interleave(c, dim=1)[:, :n]
    return x * per_sample, h


def carrier_offset(x: torch.Tensor, cfo_hz=0.0, rate_sps: float = 1.0, phase_rad=0.0) -> torch.Tensor:
    """Rotate sample n of each item by ``exp(j (2 pi cfo_hz / rate_sps n + phase_rad))``.

    Args:
        x: (B, N) complex64.
        cfo_hz: scalar or (B,) offset in Hz; rate_sps: sample rate in samples per second.
        phase_rad: scalar or (B,) static phase offset.
    Returns:
        (B, N) complex64.
    """
    _check_x(x)
    b, n = x.shape
    f = _per_item(cfo_hz, b, "cfo_hz", x.device, torch.float64) / float(rate_sps)
    phi = _per_item(phase_rad, b, "phase_rad", x.device, torch.float64)
    k = torch.arange(n, dtype=torch.float64, device=x.device)[None, :]
    cycles = torch.remainder(f * k, 1.0)  # float64 then reduced, so long items keep precision
    angle = (2 * math.pi * cycles + phi).float()
    return x * torch.polar(torch.ones_like(angle), angle)


@dataclass
class ChannelOutput:
    """What :func:`apply_channel` returns.

    Attributes:
        y: (B, N) complex64 received symbols.
        h: (B, n_blocks) complex64 fading gains (all ones without fading).
        noise_power: (B,) float32 N0 per item (linear).
    """

    y: torch.Tensor
    h: torch.Tensor
    noise_power: torch.Tensor


def apply_channel(x: torch.Tensor, snr_db, *, fading: Optional[str] = "rician", k_factor_db=6.0,
                  coherence_samples: int | None = None, los_phase_rad=0.0, cfo_hz=0.0,
                  rate_sps: float = 1.0, phase_rad=0.0, signal_power: float = PAYLOAD_POWER,
                  generator: torch.Generator | None = None) -> ChannelOutput:
    """Fading -> CFO and phase offset -> AWGN, batched and differentiable with respect to ``x``.

    Args:
        x: (B, N) complex64 symbols at ``signal_power`` average power.
        snr_db: scalar or (B,) Es/N0 in dB.
        fading: "rician", "rayleigh" or None.
        k_factor_db: scalar or (B,) Rician K in dB (ignored unless ``fading == "rician"``).
        coherence_samples: samples per fading block (None: one gain per item).
        los_phase_rad: LOS phase, scalar or (B,).
        cfo_hz, rate_sps, phase_rad: carrier offset in Hz at ``rate_sps``, static phase (rad).
        signal_power: payload power the SNR refers to.
        generator: torch.Generator for all draws.
    Returns:
        :class:`ChannelOutput` with y (B, N), h (B, n_blocks), noise_power (B,).
    """
    _check_x(x)
    b = x.shape[0]
    if fading not in ("rician", "rayleigh", None):
        raise ValueError(f"fading must be 'rician', 'rayleigh' or None, got {fading!r}")
    if fading is None:
        h = torch.ones((b, 1), dtype=x.dtype, device=x.device)
        y = x
    else:
        y, h = block_fading(x, k_factor_db if fading == "rician" else None,
                            coherence_samples=coherence_samples, los_phase_rad=los_phase_rad,
                            generator=generator)
    if not (isinstance(cfo_hz, (int, float)) and cfo_hz == 0 and isinstance(phase_rad, (int, float))
            and phase_rad == 0):
        y = carrier_offset(y, cfo_hz, rate_sps, phase_rad)
    y = awgn(y, snr_db, signal_power=signal_power, generator=generator)
    n0 = noise_power(_per_item(snr_db, b, "snr_db", x.device)[:, 0], signal_power)
    return ChannelOutput(y=y, h=h, noise_power=n0)
