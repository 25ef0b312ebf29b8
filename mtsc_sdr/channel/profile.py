"""Channel profiles: a typed description of the impairments, loadable from YAML, and the builder.

A profile names the impairments to apply; each is optional (absent = not applied). Stages run in
the physical order of a link, whatever order the YAML lists them in::

    multipath -> fading -> timing (integer delay, fractional delay + SRO) -> cfo -> phase_noise
    -> awgn -> iq_imbalance -> dc_offset

(propagation, then the receiver's sample clock and LO, thermal noise at the front end, and the
mixer's IQ imbalance and DC offset last).

Every random stage gets its own generator from ``SeedSequence(seed)`` through a fixed spawn key per
impairment (:data:`STAGE_SEED_KEYS`), so adding or removing one impairment never changes another's
random stream.

Example (``configs/channels/lab-pluto.yaml``)::

    rate_sps: 1.0e6
    awgn: {snr_db: 20}
    fading: {kind: rician, k_factor_db: 9, coherence_samples: 20000}
    cfo: {cfo_hz: 1500}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import numpy as np

from mtsc_sdr.config import ConfigError, check, from_dict, load_yaml, to_dict
from mtsc_sdr.conventions import PAYLOAD_POWER

from .awgn import AWGN
from .base import Seed, Stage, seed_sequence
from .fading import BlockFading
from .frontend import DCOffset, IQImbalance
from .multipath import TappedDelayLine, exponential_pdp
from .oscillator import CarrierOffset, PhaseNoise
from .streaming import StreamingChannel
from .timing import IntegerDelay, Resampler


def checked(default: Any, ok: Callable[[Any], bool], message: str) -> Any:
    """A dataclass field with ``default`` whose value must satisfy ``ok``; otherwise
    :meth:`RangeChecked.validate` raises ``ConfigError("<path>.<field>", message)``."""
    return field(default=default, metadata={"check": (ok, message)})


class RangeChecked:
    """Base of the impairment configs: ``validate`` runs each :func:`checked` field's check, in
    field order (a subclass with checks across fields calls it first)."""

    def validate(self, path: str) -> None:
        for f in fields(self):
            if "check" in f.metadata:
                ok, message = f.metadata["check"]
                check(ok(getattr(self, f.name)), f"{path}.{f.name}", message)


@dataclass
class AwgnConfig(RangeChecked):
    """Thermal noise. ``snr_db`` is Es/N0 per complex symbol on the payload (see conventions)."""

    snr_db: float = checked(20.0, math.isfinite, "must be finite")
    # payload power the SNR refers to (linear, full scale 1)
    signal_power: float = checked(PAYLOAD_POWER, lambda v: v > 0, "must be positive")


@dataclass
class FadingConfig(RangeChecked):
    """Flat block fading, E|h|^2 = 1. Rayleigh ignores ``k_factor_db``."""

    kind: Literal["rician", "rayleigh"] = "rician"
    # Rician K, LOS power over scattered power, in dB
    k_factor_db: float = checked(6.0, math.isfinite, "must be finite (use kind: rayleigh for K = 0)")
    # samples per block with a constant gain
    coherence_samples: int = checked(10_000, lambda v: v >= 1, "must be >= 1")
    los_phase_deg: Optional[float] = 0.0  # None: uniform random LOS phase per block


@dataclass
class MultipathConfig(RangeChecked):
    """Tapped delay line, taps one sample apart. Give ``taps`` or an exponential profile."""

    taps: Optional[list[tuple[float, float]]] = None  # [[re, im], ...]; normalised to unit energy
    # exponential profile: number of taps, and decay constant in samples
    n_taps: int = checked(4, lambda v: v >= 1, "must be >= 1")
    delay_spread_samples: float = checked(1.0, lambda v: v >= 0, "must be >= 0")
    # random taps: redraw every this many samples; None = static
    coherence_samples: Optional[int] = checked(None, lambda v: v is None or v >= 1, "must be >= 1")

    def validate(self, path: str) -> None:
        super().validate(path)
        if self.taps is not None:
            check(len(self.taps) >= 1 and any(re or im for re, im in self.taps), f"{path}.taps",
                  "needs at least one non-zero tap")
            check(self.coherence_samples is None, f"{path}.coherence_samples",
                  "given taps are static; leave coherence_samples unset")


@dataclass
class TimingConfig(RangeChecked):
    """Timing offset in samples (integer part: exact delay; fractional part: sinc interpolation)."""

    delay_samples: float = checked(0.0, lambda v: v >= 0, "must be >= 0")


@dataclass
class SroConfig(RangeChecked):
    """Receiver sample-clock offset in parts per million."""

    sro_ppm: float = checked(0.0, lambda v: abs(v) < 1e5, "must be within +-1e5 ppm")


@dataclass
class CfoConfig(RangeChecked):
    """Carrier frequency offset (Hz, at ``rate_sps``) and a static phase offset."""

    cfo_hz: float = checked(0.0, math.isfinite, "must be finite")
    phase_deg: float = 0.0


@dataclass
class PhaseNoiseConfig(RangeChecked):
    """Wiener phase noise with a Lorentzian 3-dB linewidth."""

    linewidth_hz: float = checked(10.0, lambda v: v >= 0, "must be >= 0")


@dataclass
class IqImbalanceConfig(RangeChecked):
    """Q-branch gain (dB) and quadrature phase error (degrees) relative to the I branch."""

    gain_db: float = checked(0.0, lambda v: abs(v) < 20, "must be within +-20 dB")
    phase_deg: float = checked(0.0, lambda v: abs(v) < 45, "must be within +-45 degrees")


@dataclass
class DcOffsetConfig(RangeChecked):
    """Constant offset added by the receiver, in full-scale units (|x| <= 1)."""

    i: float = checked(0.0, lambda v: abs(v) <= 1, "must be within +-1 (full scale)")
    q: float = checked(0.0, lambda v: abs(v) <= 1, "must be within +-1 (full scale)")


@dataclass
class ChannelProfile:
    """All impairments of the software channel; each one is optional (None = not applied)."""

    rate_sps: float = 1.0e6  # sample rate the Hz values refer to
    multipath: Optional[MultipathConfig] = None
    fading: Optional[FadingConfig] = None
    timing: Optional[TimingConfig] = None
    sro: Optional[SroConfig] = None
    cfo: Optional[CfoConfig] = None
    phase_noise: Optional[PhaseNoiseConfig] = None
    awgn: Optional[AwgnConfig] = None
    iq_imbalance: Optional[IqImbalanceConfig] = None
    dc_offset: Optional[DcOffsetConfig] = None

    def validate(self, path: str) -> None:
        check(self.rate_sps > 0, f"{path}.rate_sps" if path else "rate_sps", "must be positive")

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> ChannelProfile:
        """Validated profile from a mapping; errors name the field (e.g. ``fading.k_factor_db``)."""
        return from_dict(cls, data, path)

    @classmethod
    def from_yaml(cls, file: str | Path, section: str | None = None) -> ChannelProfile:
        """Validated profile from a YAML file (optionally one top-level section of it)."""
        return load_yaml(cls, file, section)

    def to_dict(self) -> dict:
        """Plain nested dict (YAML/JSON-friendly), the inverse of :meth:`from_dict`."""
        return to_dict(self)

    def override(self, values: dict[str, Any]) -> ChannelProfile:
        """A new profile with ``values`` set, re-validated; the original is unchanged.

        Keys are dotted paths (``"awgn.snr_db"``, ``"fading.k_factor_db"``, ``"rate_sps"``) or the
        shortcuts in :data:`OVERRIDE_SHORTCUTS` (``snr_db``, ``cfo_hz``, ``k_factor_db``, ...).
        Setting a field of an absent impairment adds that impairment with its defaults; a value of
        None for a whole impairment (``{"fading": None}``) removes it. Unknown names and bad values
        raise :class:`~mtsc_sdr.config.ConfigError` naming the field.
        """
        data = self.to_dict()
        for key, value in values.items():
            parts = OVERRIDE_SHORTCUTS.get(key, key).split(".")
            node = data
            for depth, part in enumerate(parts[:-1]):
                child = node.get(part)
                if child is None:  # absent impairment: add it with its defaults
                    child = node[part] = {}
                if not isinstance(child, dict):
                    raise ConfigError(".".join(parts[:depth + 1]), f"is a value, not a section (in override {key!r})")
                node = child
            node[parts[-1]] = value
        return from_dict(ChannelProfile, data)


#: Short names for the overrides a command line offers most often.
OVERRIDE_SHORTCUTS: dict[str, str] = {
    "snr_db": "awgn.snr_db",
    "k_factor_db": "fading.k_factor_db",
    "coherence_samples": "fading.coherence_samples",
    "cfo_hz": "cfo.cfo_hz",
    "phase_deg": "cfo.phase_deg",
    "sro_ppm": "sro.sro_ppm",
    "delay_samples": "timing.delay_samples",
    "linewidth_hz": "phase_noise.linewidth_hz",
}

#: Fixed spawn key per random impairment: its stream depends only on the seed and this key.
STAGE_SEED_KEYS: dict[str, int] = {"multipath": 0, "fading": 1, "phase_noise": 2, "awgn": 3}


def stage_seed(seed: Seed, impairment: str) -> np.random.SeedSequence:
    """The SeedSequence of one impairment's random stream under the channel seed ``seed``."""
    root = seed_sequence(seed)
    return np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, STAGE_SEED_KEYS[impairment]))


def build_stages(profile: ChannelProfile, seed: Seed) -> list[Stage]:
    """The stages a profile describes, in the physical order given in the module docstring."""
    stages: list[Stage] = []
    p = profile
    if p.multipath is not None:
        mp = p.multipath
        if mp.taps is not None:
            stages.append(TappedDelayLine(stage_seed(seed, "multipath"), taps=[complex(re, im) for re, im in mp.taps]))
        else:
            stages.append(TappedDelayLine(stage_seed(seed, "multipath"),
                                          pdp=exponential_pdp(mp.n_taps, mp.delay_spread_samples),
                                          coherence_samples=mp.coherence_samples))
    if p.fading is not None:
        f = p.fading
        stages.append(BlockFading(
            f.coherence_samples, stage_seed(seed, "fading"),
            k_factor_db=f.k_factor_db if f.kind == "rician" else None,
            los_phase_rad=None if f.los_phase_deg is None else math.radians(f.los_phase_deg)))
    delay = p.timing.delay_samples if p.timing is not None else 0.0
    sro_ppm = p.sro.sro_ppm if p.sro is not None else 0.0
    whole = math.floor(delay)
    if whole:
        stages.append(IntegerDelay(whole))
    if delay != whole or sro_ppm != 0.0:
        stages.append(Resampler(delay - whole, sro_ppm))
    if p.cfo is not None:
        stages.append(CarrierOffset(p.cfo.cfo_hz, p.rate_sps, math.radians(p.cfo.phase_deg)))
    if p.phase_noise is not None:
        stages.append(PhaseNoise(p.phase_noise.linewidth_hz, p.rate_sps, stage_seed(seed, "phase_noise")))
    if p.awgn is not None:
        stages.append(AWGN(p.awgn.snr_db, stage_seed(seed, "awgn"), p.awgn.signal_power))
    if p.iq_imbalance is not None:
        stages.append(IQImbalance(p.iq_imbalance.gain_db, p.iq_imbalance.phase_deg))
    if p.dc_offset is not None:
        stages.append(DCOffset(p.dc_offset.i, p.dc_offset.q))
    return stages


def build_channel(profile: ChannelProfile, seed: Seed) -> StreamingChannel:
    """A :class:`StreamingChannel` for ``profile`` whose random streams all derive from ``seed``."""
    return StreamingChannel(build_stages(profile, seed))

