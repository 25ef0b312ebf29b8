"""``SimRadio``: a loopback radio over the software channel, the stand-in for hardware.

What a :class:`SimRadio` transmits (one burst or a cyclic buffer) comes back when it, or another
SimRadio on the same "air", receives. Signal chain per received sample (full scale 1.0)::

    sum of the transmitters' samples (the DAC clips at full scale)
      * 10^((tx_gain_db + path_loss_db + rx_gain_db) / 20)          gains of the link
      -> multipath -> fading -> timing / SRO -> CFO -> phase noise  (the impairment profile)
      -> + noise of power noise_floor_dbfs (complex, fixed at the ADC whatever the gains)
      -> IQ imbalance -> DC offset                                  (the profile's front end)
      -> ADC: I and Q clipped to +-1.0 (counted as saturated by the Radio base class)

so a TX gain sweep moves the SNR one dB per dB, like a real radio, and a receive gain that is too
high saturates. ``dBFS`` is ``10 log10(mean |x|^2)`` with full scale ``|x| = 1`` (a full-scale
complex tone is 0 dBFS, the PHY's payload -10 dBFS). The impairments are a
:class:`~mtsc_sdr.channel.profile.ChannelProfile` (object or YAML path) whose stages are built by
:func:`~mtsc_sdr.channel.profile.build_stages`; its ``awgn`` section is not applied as such but sets
the link's level: at the reference gains (``REFERENCE_TX_GAIN_DB``, ``REFERENCE_RX_GAIN_DB``, the
defaults of :class:`~mtsc_sdr.radio.profiles.RadioSettings`) the payload arrives at its wire power
(``path_loss_db = -(tx + rx reference gains)``) with the profile's SNR (``noise_floor_dbfs =
10 log10(signal_power) - snr_db``), so those gains reproduce the profile's software channel exactly
(its DC offset, in full-scale units, keeps its ratio to the payload); either value may be given
instead, the other then follows from the SNR. Without ``awgn``: -20 dB and -60 dBFS (50 dB SNR at
the reference gains). Hz values (CFO, phase-noise linewidth) stay
in Hz at whatever rate the receiver is configured; the CFO does not scale with ``freq_hz``.

Time: the "air" advances only when someone receives; a burst comes out at the start of the next
receive after the samples already queued, a cyclic buffer repeats without a gap. Nothing is ever
late or lost, and receiving with nothing transmitted returns noise (never a timeout).

Radios share an air when opened with the same ``air`` name (``SimRadio("a", ..., air="lab")`` and
``SimRadio("b", ..., air="lab")``: a transmitter and a receiver); without one, each radio is its
own loopback. The first radio to open an air sets its impairments; a later one asking for
different ones is refused. Several receivers on one air share one stream (each buffer goes to
whoever reads it).

The driver-unit format is the profile's ``sample_format`` (``gr-iio`` in ``sim.yaml``: complex64
+-1.0). Extra attributes calibration reads from any driver that has them: ``serial`` and
``temperature_c()``.
"""

from __future__ import annotations

import collections
import math
from pathlib import Path
from typing import Optional, Union

import numpy as np

from mtsc_sdr.channel.profile import ChannelProfile, build_channel
from mtsc_sdr.channel.streaming import StreamingChannel
from mtsc_sdr.conventions import PAYLOAD_POWER

from .driver import Radio, RadioError
from .profiles import RadioProfile, RadioSettings

#: Gains at which an impairment profile's ``awgn.snr_db`` holds (RadioSettings' defaults).
REFERENCE_TX_GAIN_DB = RadioSettings().tx_gain_db
REFERENCE_RX_GAIN_DB = RadioSettings().rx_gain_db
#: Path loss (dB, negative = loss) when none is given: the reference gains then put the TX samples'
#: power back at the ADC.
DEFAULT_PATH_LOSS_DB = -(REFERENCE_TX_GAIN_DB + REFERENCE_RX_GAIN_DB)
#: Noise power at the ADC, dBFS (total complex power per sample), when neither it nor a profile SNR is given.
DEFAULT_NOISE_FLOOR_DBFS = -60.0

Impairments = Union[ChannelProfile, str, Path, None]


class _Transmission:
    """One radio's transmit state on an air: a queue of bursts and an optional cyclic buffer."""

    def __init__(self) -> None:
        self.bursts: collections.deque[np.ndarray] = collections.deque()
        self.cyclic: Optional[np.ndarray] = None
        self.pos = 0                        # next sample of the cyclic buffer
        self.gain_db = 0.0

    def take(self, n: int) -> Optional[np.ndarray]:
        """The next ``n`` samples (complex128) of what this radio sends, or None when silent."""
        if not self.bursts and self.cyclic is None:
            return None
        out = np.zeros(n, np.complex128)
        have = 0
        while self.bursts and have < n:
            b = self.bursts[0]
            k = min(n - have, b.size)
            out[have:have + k] += b[:k]
            have += k
            if k == b.size:
                self.bursts.popleft()
            else:
                self.bursts[0] = b[k:]
        if self.cyclic is not None:
            c = self.cyclic
            idx = (self.pos + np.arange(n)) % c.size
            out += c[idx]
            self.pos = (self.pos + n) % c.size
        return out


class _Air:
    """The shared medium of one or more SimRadios: transmissions, link gains and the channel."""

    def __init__(self, impairments: ChannelProfile, noise_floor_dbfs: float, path_loss_db: float, seed: int):
        self.impairments, self.noise_floor_dbfs = impairments, noise_floor_dbfs
        self.path_loss_db, self.seed = path_loss_db, seed
        self.tx: dict[int, _Transmission] = {}
        self.members: set[int] = set()
        self._channel: Optional[StreamingChannel] = None
        self._rate_sps: Optional[float] = None
        self._fifo = np.zeros(0, np.complex64)

    def same_link(self, other: tuple) -> bool:
        return (self.impairments.to_dict(), self.noise_floor_dbfs, self.path_loss_db, self.seed) == other

    def reset_stream(self) -> None:
        """Drop channel output computed with old settings (a retune or gain change)."""
        self._fifo = np.zeros(0, np.complex64)

    def _build(self, rate_sps: float) -> None:
        # the noise floor as the AWGN stage: N0 = signal_power * 10^(-snr_db/10) with signal_power 1
        profile = self.impairments.override({
            "rate_sps": rate_sps, "awgn": {"snr_db": -self.noise_floor_dbfs, "signal_power": 1.0}})
        self._channel = build_channel(profile, self.seed)
        self._rate_sps = rate_sps
        self.reset_stream()

    def read(self, n: int, rate_sps: float, rx_gain_db: float) -> np.ndarray:
        """``n`` received samples, complex64 (n,), full scale 1.0 (ADC-clipped)."""
        if self._channel is None or rate_sps != self._rate_sps:
            self._build(rate_sps)
        while self._fifo.size < n:
            m = n - self._fifo.size                 # a resampling stage may return a few less: loop
            x = np.zeros(m, np.complex128)
            for t in self.tx.values():
                s = t.take(m)
                if s is not None:
                    x += s * 10.0 ** ((t.gain_db + self.path_loss_db + rx_gain_db) / 20.0)
            y = self._channel(x.astype(np.complex64))
            self._fifo = np.concatenate([self._fifo, y])
        out, self._fifo = self._fifo[:n], self._fifo[n:]
        re = np.clip(out.real, -1.0, 1.0)
        im = np.clip(out.imag, -1.0, 1.0)
        return (re + 1j * im).astype(np.complex64)


_AIRS: dict[str, _Air] = {}


def _link_level(imp: ChannelProfile, noise_floor_dbfs: Optional[float],
                path_loss_db: Optional[float]) -> tuple[float, float]:
    """(noise floor dBFS, path loss dB) from what is given and the profile's SNR (module docstring)."""
    for name, v in (("noise_floor_dbfs", noise_floor_dbfs), ("path_loss_db", path_loss_db)):
        if v is not None and not math.isfinite(v):
            raise ValueError(f"{name}: must be finite, got {v!r}")
    if imp.awgn is None:
        return (DEFAULT_NOISE_FLOOR_DBFS if noise_floor_dbfs is None else float(noise_floor_dbfs),
                DEFAULT_PATH_LOSS_DB if path_loss_db is None else float(path_loss_db))
    # snr = 10 log10(signal_power) + tx_ref + path_loss + rx_ref - noise_floor
    wire_db = 10.0 * math.log10(imp.awgn.signal_power) + REFERENCE_TX_GAIN_DB + REFERENCE_RX_GAIN_DB
    if noise_floor_dbfs is None:
        path_loss_db = DEFAULT_PATH_LOSS_DB if path_loss_db is None else path_loss_db
        noise_floor_dbfs = wire_db + path_loss_db - imp.awgn.snr_db
    elif path_loss_db is None:
        path_loss_db = imp.awgn.snr_db + noise_floor_dbfs - wire_db
    return float(noise_floor_dbfs), float(path_loss_db)


class SimRadio(Radio):
    """A simulated loopback radio (see the module docstring).

    Args:
        address: any name (``loopback`` by default); the serial is ``sim-<address>``.
        profile: a radio profile whose driver is ``sim`` (``firmware_profiles/radios/sim.yaml``).
        impairments: a :class:`ChannelProfile` or its YAML path (None: an ideal link, noise only).
        noise_floor_dbfs: complex noise power at the ADC, dBFS, independent of the gains (None:
            see the module docstring).
        path_loss_db: gain from the TX DAC to the RX input excluding both radios' gains (dB, < 0;
            None: see the module docstring).
        seed: seed of every random impairment (noise, fading, phase noise).
        temperature_c: what :meth:`temperature_c` reads (None: not readable, as on a radio
            without a sensor).
        air: share the medium with the other SimRadios of this name (None: a private loopback).
        retries: see :class:`~mtsc_sdr.radio.driver.Radio`.
    """

    kind = "sim"

    def __init__(self, address: str, profile: RadioProfile, *, impairments: Impairments = None,
                 noise_floor_dbfs: Optional[float] = None, path_loss_db: Optional[float] = None,
                 seed: int = 0, temperature_c: Optional[float] = None, air: Optional[str] = None,
                 retries: int = 3):
        super().__init__(address or "loopback", profile, retries=retries)
        imp = impairments if isinstance(impairments, ChannelProfile) else (
            ChannelProfile.from_yaml(impairments) if impairments is not None else ChannelProfile())
        noise_floor_dbfs, path_loss_db = _link_level(imp, noise_floor_dbfs, path_loss_db)
        link = (imp.to_dict(), float(noise_floor_dbfs), float(path_loss_db), int(seed))
        self._air_name = air
        if air is not None and air in _AIRS:
            if not _AIRS[air].same_link(link):
                raise RadioError(f"sim {self.address}: air {air!r} is already open with other impairments")
            self._air = _AIRS[air]
        else:
            self._air = _Air(imp, *link[1:])
            if air is not None:
                _AIRS[air] = self._air
        self._air.members.add(id(self))
        self._temperature_c = temperature_c

    # -- what calibration reads ----------------------------------------------------------------------

    @property
    def serial(self) -> str:
        return f"sim-{self.address}"

    def temperature_c(self) -> Optional[float]:
        """The configured temperature (a simulated sensor), or None."""
        return self._temperature_c

    @property
    def impairments(self) -> ChannelProfile:
        """The link's impairment profile (its ``awgn`` section is not applied, see the module doc)."""
        return self._air.impairments

    @property
    def noise_floor_dbfs(self) -> float:
        return self._air.noise_floor_dbfs

    @property
    def path_loss_db(self) -> float:
        return self._air.path_loss_db

    def expected_snr_db(self, tx_gain_db: float, rx_gain_db: float) -> float:
        """The model's Es/N0 (dB) of a PHY payload (power ``PAYLOAD_POWER``) sent at ``tx_gain_db``
        and received at ``rx_gain_db``, before the front end's IQ imbalance (fading and multipath
        keep unit average power)."""
        return (10.0 * math.log10(PAYLOAD_POWER) + tx_gain_db + self.path_loss_db + rx_gain_db
                - self.noise_floor_dbfs)

    # -- backend hooks -------------------------------------------------------------------------------

    def _apply(self, s: RadioSettings) -> None:
        self._air.tx.setdefault(id(self), _Transmission()).gain_db = s.tx_gain_db
        self._air.reset_stream()

    def _send(self, x: np.ndarray, cyclic: bool) -> None:
        t = self._air.tx.setdefault(id(self), _Transmission())
        x = np.asarray(x, np.complex128).copy()
        if cyclic:
            if x.size == 0:
                raise RadioError(f"sim {self.address}: a cyclic buffer needs at least one sample")
            t.cyclic, t.pos = x, 0
        elif x.size:
            t.bursts.append(x)

    def _stop_send(self) -> None:
        t = self._air.tx.get(id(self))
        if t is not None:
            t.bursts.clear()
            t.cyclic, t.pos = None, 0

    def _recv(self) -> np.ndarray:
        s = self.settings
        return self._air.read(s.rx_buffer_samples, s.rate_sps, s.rx_gain_db)

    def _release(self) -> None:
        self._air.tx.pop(id(self), None)
        self._air.members.discard(id(self))
        if self._air_name is not None and not self._air.members:
            _AIRS.pop(self._air_name, None)
