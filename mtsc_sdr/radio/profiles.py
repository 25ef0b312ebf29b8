"""Radio and client-device profiles: what a radio can be asked to do, checked before it is touched.

Profiles are YAML files under ``firmware_profiles/`` (``$MTSC_PROFILES_DIR`` overrides):

* ``radios/<name>.yaml`` -> :class:`RadioProfile`: frequency, sample-rate, bandwidth and gain ranges,
  buffer sizes, channel counts, the default gain mode (manual: AGC would rescale the analog
  payload frame by frame) and, where a firmware change unlocks the profile, how to make it.
* ``devices/<name>.yaml`` -> :class:`DeviceProfile`: a client machine's memory, compute, power modes
  and the precision paths it supports (the compression planner reads them).

:meth:`RadioProfile.resolve` turns a request (:class:`RadioSettings`) into settings the radio can take,
or raises :class:`ProfileError` naming the field and the limit, e.g.::

    freq_hz: 6 GHz is outside pluto-ad9363's range 325 MHz .. 3.8 GHz (AD9363); profile pluto-ad9364
    reaches 70 MHz .. 6 GHz

Units are in the names: ``freq_hz``, ``rate_sps``, ``bandwidth_hz``, ``gain_db`` (TX gain is the
transmit gain the driver sets; on a Pluto it is minus the attenuation, so <= 0 dB).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Optional

from mtsc_sdr.config import ConfigError, check, load_yaml

from .registry import RADIOS, RadioKindName

#: Environment variable naming the profiles directory (default: ``firmware_profiles/`` of the checkout).
DIR_ENV_VAR = "MTSC_PROFILES_DIR"


class ProfileError(ConfigError):
    """A request outside a radio profile's limits (``field`` names the setting)."""


def _require(condition: bool, field: str, message: str) -> None:
    """Raise :class:`ProfileError` for ``field`` unless ``condition`` holds (a request, not a file)."""
    if not condition:
        raise ProfileError(field, message)


def profiles_dir() -> Path:
    """``$MTSC_PROFILES_DIR`` or the checkout's ``firmware_profiles/``."""
    value = os.environ.get(DIR_ENV_VAR)
    return Path(value) if value else Path(__file__).resolve().parents[2] / "firmware_profiles"


def _eng(value: float, unit: str) -> str:
    """3.8e9, "Hz" -> "3.8 GHz"; 20e6, "sps" -> "20 Msps"; -89.75, "dB" -> "-89.75 dB"."""
    if unit == "dB":
        return f"{value:g} dB"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g} {prefix}{unit}"
    return f"{value:g} {unit}"


@dataclass
class Limits:
    """A closed range ``min .. max`` (units: those of the field holding it)."""

    min: float = 0.0
    max: float = 0.0

    def validate(self, path: str) -> None:
        check(math.isfinite(self.min) and math.isfinite(self.max), path, "min and max must be finite")
        check(self.min <= self.max, path, f"min {self.min} > max {self.max}")

    def __contains__(self, value: float) -> bool:
        return self.min <= value <= self.max


@dataclass
class Buffers:
    """Driver buffer sizes in samples per channel: the default per transfer, and the largest allowed."""

    rx_samples: int = 32768
    tx_samples: int = 32768
    max_samples: int = 1 << 20

    def validate(self, path: str) -> None:
        for name in ("rx_samples", "tx_samples", "max_samples"):
            check(getattr(self, name) >= 1, f"{path}.{name}", "must be >= 1")
        check(max(self.rx_samples, self.tx_samples) <= self.max_samples, path,
              "default buffers must not exceed max_samples")


@dataclass
class Firmware:
    """How to put the radio into this profile (empty for a radio as shipped)."""

    requires: str = ""                                      # in words
    commands: list[str] = field(default_factory=list)       # on the radio's console, in order
    check: str = ""                                         # how to see that it took effect


@dataclass
class RadioSettings:
    """What an experiment asks of a radio. ``bandwidth_hz`` None: the sample rate; buffers None:
    the profile's defaults. ``gain_mode``: ``manual`` or one of the profile's AGC modes."""

    freq_hz: float = 2.4e9
    rate_sps: float = 1.0e6
    bandwidth_hz: Optional[float] = None
    tx_gain_db: float = -10.0
    rx_gain_db: float = 30.0
    gain_mode: str = "manual"
    rx_buffer_samples: Optional[int] = None
    tx_buffer_samples: Optional[int] = None


@dataclass
class RadioProfile:
    """One radio model (or one firmware mode of it). See the module docstring."""

    name: str = ""
    driver: RadioKindName = "pluto"
    description: str = ""
    chip: str = ""
    sample_format: Literal["pyadi-iio", "gr-iio", "uhd"] = "pyadi-iio"   # row of mtsc_sdr.phy.scaling
    freq_hz: Limits = field(default_factory=Limits)
    rate_sps: Limits = field(default_factory=Limits)
    bandwidth_hz: Limits = field(default_factory=Limits)
    tx_gain_db: Limits = field(default_factory=Limits)
    rx_gain_db: Limits = field(default_factory=Limits)
    #: the highest rate the host link sustains continuously (USB 2.0 on a Pluto), <= rate_sps.max
    max_stream_rate_sps: float = 0.0
    tx_channels: int = 1
    rx_channels: int = 1
    gain_mode: str = "manual"
    agc_modes: list[str] = field(default_factory=list)
    buffers: Buffers = field(default_factory=Buffers)
    firmware: Firmware = field(default_factory=Firmware)
    notes: str = ""

    def validate(self, path: str = "") -> None:
        p = (lambda n: f"{path}.{n}" if path else n)  # noqa: E731
        check(bool(self.name), p("name"), "must be set")
        for name in ("freq_hz", "rate_sps", "bandwidth_hz", "tx_gain_db", "rx_gain_db"):
            getattr(self, name).validate(p(name))
        check(self.rate_sps.min > 0, p("rate_sps.min"), "must be > 0")
        check(0 < self.max_stream_rate_sps <= self.rate_sps.max, p("max_stream_rate_sps"),
              f"must be in (0, rate_sps.max = {self.rate_sps.max}]")
        check(self.tx_channels >= 1 and self.rx_channels >= 1, p("rx_channels"), "channel counts must be >= 1")
        check(self.gain_mode == "manual" or self.gain_mode in self.agc_modes, p("gain_mode"),
              f"must be 'manual' or one of agc_modes {self.agc_modes}")
        self.buffers.validate(p("buffers"))

    def _limit(self, value: float, name: str, unit: str) -> None:
        lim: Limits = getattr(self, name)
        if value in lim:
            return
        msg = (f"{_eng(value, unit)} is outside {self.name}'s range {_eng(lim.min, unit)} .. "
               f"{_eng(lim.max, unit)}" + (f" ({self.chip})" if self.chip else ""))
        wider = sorted((q for q in radio_profiles().values()
                        if q.driver == self.driver and q.name != self.name and value in getattr(q, name)),
                       key=lambda q: (q.tx_channels != self.tx_channels, q.name))
        if wider:
            q = wider[0]
            lo, hi = getattr(q, name).min, getattr(q, name).max
            msg += f"; profile {q.name} reaches {_eng(lo, unit)} .. {_eng(hi, unit)}"
        raise ProfileError(name, msg)

    def resolve(self, s: RadioSettings) -> RadioSettings:
        """``s`` with defaults filled in, after checking every field against this profile.

        Raises:
            ProfileError: the first setting outside the profile, with the limit it breaks.
        """
        for name, unit in (("freq_hz", "Hz"), ("rate_sps", "sps"), ("tx_gain_db", "dB"), ("rx_gain_db", "dB")):
            value = getattr(s, name)
            _require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), name, f"must be a finite number, got {value!r}")
            self._limit(float(value), name, unit)
        bw = s.rate_sps if s.bandwidth_hz is None else s.bandwidth_hz
        # an unset bandwidth follows the rate, clipped into the analog filter's range
        if s.bandwidth_hz is None:
            bw = min(max(bw, self.bandwidth_hz.min), self.bandwidth_hz.max)
        self._limit(float(bw), "bandwidth_hz", "Hz")
        _require(s.gain_mode == "manual" or s.gain_mode in self.agc_modes, "gain_mode",
                 f"{s.gain_mode!r} is not a gain mode of {self.name} (manual, {', '.join(self.agc_modes) or 'no AGC'})")
        out = replace(s, bandwidth_hz=float(bw),
                      rx_buffer_samples=self.buffers.rx_samples if s.rx_buffer_samples is None else s.rx_buffer_samples,
                      tx_buffer_samples=self.buffers.tx_samples if s.tx_buffer_samples is None else s.tx_buffer_samples)
        for name in ("rx_buffer_samples", "tx_buffer_samples"):
            n = getattr(out, name)
            _require(1 <= n <= self.buffers.max_samples, name,
                     f"{n} samples is outside {self.name}'s buffer range 1 .. {self.buffers.max_samples}")
        return out


@dataclass
class PowerMode:
    """One nvpmodel mode (``id`` is what ``sudo nvpmodel -m ID`` takes) or a CPU governor setting."""

    id: int = 0
    name: str = ""
    watts: float = 0.0


@dataclass
class DeviceProfile:
    """A client machine: where the client half runs. Memory in GB, compute in words and numbers."""

    name: str = ""
    kind: Literal["jetson", "cpu"] = "cpu"
    description: str = ""
    memory_gb: float = 0.0
    memory_shared_with_gpu: bool = False
    cpu: str = ""
    cpu_cores: int = 1
    gpu: str = ""
    gpu_cuda_cores: int = 0
    dla_cores: int = 0
    int8_tops: float = 0.0            # the vendor's peak figure (dense unless noted in notes)
    power_modes: list[PowerMode] = field(default_factory=list)
    precisions: list[str] = field(default_factory=lambda: ["fp32", "int8"])
    memory_tool: str = ""             # tegrastats / jtop / none
    notes: str = ""

    def validate(self, path: str = "") -> None:
        p = (lambda n: f"{path}.{n}" if path else n)  # noqa: E731
        check(bool(self.name), p("name"), "must be set")
        check(self.memory_gb > 0, p("memory_gb"), "must be > 0")
        check(self.cpu_cores >= 1, p("cpu_cores"), "must be >= 1")
        known = {"fp32", "fp16", "bf16", "int8"}
        check(set(self.precisions) <= known and bool(self.precisions), p("precisions"),
              f"must be a non-empty subset of {sorted(known)}, got {self.precisions}")


def _load_dir(sub: str, cls) -> dict:
    out = {}
    for f in sorted((profiles_dir() / sub).glob("*.yaml")):
        prof = load_yaml(cls, f)
        check(prof.name == f.stem, f"{f}: name", f"must match the file name {f.stem!r}, got {prof.name!r}")
        out[prof.name] = prof
    return out


def radio_profiles() -> dict[str, RadioProfile]:
    """Every radio profile, by name."""
    return _load_dir("radios", RadioProfile)


def device_profiles() -> dict[str, DeviceProfile]:
    """Every client-device profile, by name."""
    return _load_dir("devices", DeviceProfile)


def _pick(kind: str, name_or_path: str | Path, profiles: dict):
    if Path(name_or_path).suffix in (".yaml", ".yml"):
        return load_yaml(RadioProfile if kind == "radio" else DeviceProfile, name_or_path)
    if name_or_path not in profiles:
        raise ConfigError(f"{kind}_profile", f"no {kind} profile {str(name_or_path)!r}; known: {', '.join(profiles)}")
    return profiles[name_or_path]


def radio_profile(name_or_path: str | Path) -> RadioProfile:
    """A radio profile by name (``pluto-ad9363``) or from a YAML file."""
    return _pick("radio", name_or_path, radio_profiles())


def device_profile(name_or_path: str | Path) -> DeviceProfile:
    """A client-device profile by name (``jetson-orin-nano-8gb``) or from a YAML file."""
    return _pick("device", name_or_path, device_profiles())


#: The profile a driver uses when none is named (the registry's ``default_profile`` of each kind).
DEFAULT_PROFILE = {kind: entry.default_profile for kind, entry in RADIOS.items()}
