"""The one ``Radio`` interface the direct drivers implement (Pluto through pyadi-iio, USRP through UHD).

The GNU Radio flowgraphs stay the default streaming path of ``run``; these drivers serve
calibration, capture and setups without GNU Radio. A radio is used as::

    with open_radio("pluto", "ip:192.168.2.1") as radio:
        radio.configure(RadioSettings(freq_hz=2.4e9, rate_sps=1e6, tx_gain_db=-20, rx_gain_db=30))
        radio.transmit(burst, cyclic=True)          # complex64 (N,), full scale 1.0
        x = radio.receive(100_000)                  # complex64 (100000,), full scale 1.0
        for chunk in radio.stream():                # complex64 (rx_buffer_samples,) each
            ...
        radio.stop_transmit()

The base class owns what every backend shares, so a backend only moves buffers:

* :meth:`Radio.configure` checks the request against the radio's profile
  (:meth:`~mtsc_sdr.radio.profiles.RadioProfile.resolve`) **before** the device is touched; a
  request outside it raises :class:`~mtsc_sdr.radio.profiles.ProfileError` naming the limit.
* Samples are converted with the one scaling table (:mod:`mtsc_sdr.phy.scaling`) of the profile's
  ``sample_format``: the caller always sees complex64 with full scale 1.0.
* A receive that times out is retried (``retries`` times, counted); overflows / underflows the
  backend reports are counted in :attr:`Radio.counters`; an error that means the device is gone
  raises :class:`RadioDisconnected`, whose ``received`` holds what had arrived in that call.
* :meth:`close` releases the device also after an error, and is idempotent.

Backend hooks (all in driver units, see :mod:`mtsc_sdr.phy.scaling`): ``_apply(settings)``,
``_send(x, cyclic)``, ``_stop_send()``, ``_recv()`` -> one buffer of ``rx_buffer_samples`` (raise
:class:`RadioTimeout` when nothing came in time), ``_release()``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from mtsc_sdr.phy.scaling import from_driver, to_driver

from .profiles import RadioProfile, RadioSettings, radio_profile
from .registry import driver_class, radio_kind


class RadioError(RuntimeError):
    """A radio could not do what was asked (the message says which radio and what)."""


class RadioTimeout(RadioError):
    """No samples arrived (or could be sent) within the driver's timeout."""


class RadioDisconnected(RadioError):
    """The device went away (unplugged, powered off, network lost). ``received``: the samples
    (complex64, full scale 1.0) that had arrived in the interrupted call, never dropped."""

    def __init__(self, message: str, received: Optional[np.ndarray] = None):
        super().__init__(message)
        self.received = np.zeros(0, np.complex64) if received is None else received


@dataclass
class RadioCounters:
    """What happened on the radio's streams since it was opened (samples are per channel)."""

    samples_rx: int = 0
    samples_tx: int = 0
    overflows: int = 0          # receive samples lost because the host did not keep up
    underflows: int = 0         # transmit gaps because the host did not keep up
    timeouts: int = 0           # receive calls that timed out (each retried, up to ``retries``)
    retries: int = 0
    clipped_tx: int = 0         # transmit samples clipped to full scale
    saturated_rx: int = 0       # receive samples at the ADC rails (receive gain too high)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Radio(ABC):
    """One radio (see the module docstring). ``address``: the Pluto's IIO URI or the USRP's UHD
    device arguments; ``profile`` its :class:`RadioProfile`; ``retries`` per timed-out receive."""

    kind: str = ""

    def __init__(self, address: str, profile: RadioProfile, *, retries: int = 3):
        if profile.driver != self.kind:
            raise ValueError(f"profile {profile.name} is for a {profile.driver}, not a {self.kind}")
        self.address, self.profile, self.retries = address, profile, retries
        self.settings: Optional[RadioSettings] = None
        self.counters = RadioCounters()
        self.closed = False

    # -- backend hooks -------------------------------------------------------------------------------

    @abstractmethod
    def _apply(self, s: RadioSettings) -> None:
        """Program the device with resolved settings (every field set)."""

    @abstractmethod
    def _send(self, x: np.ndarray, cyclic: bool) -> None:
        """Transmit driver-unit samples (N,), once or repeated until :meth:`_stop_send`."""

    @abstractmethod
    def _stop_send(self) -> None:
        """Stop a cyclic transmission (nothing to do when none runs)."""

    @abstractmethod
    def _recv(self) -> np.ndarray:
        """One receive buffer in driver units, (rx_buffer_samples,). Raise RadioTimeout / RadioDisconnected
        (whose ``received`` holds, in driver units, what arrived of this buffer; the caller converts it)."""

    @abstractmethod
    def _release(self) -> None:
        """Release the device (called once)."""

    def _error(self, exc: BaseException, what: str) -> RadioError:
        """The vendor exception ``exc``, raised while doing ``what``, as a RadioError (or one of
        its kinds: a backend overrides this to tell timeouts and vanished devices apart)."""
        return RadioError(f"{self.kind} {self.address}: {what} failed: {type(exc).__name__}: {exc}")

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Inside the block, a vendor library's exception becomes :meth:`_error`'s RadioError."""
        try:
            yield
        except RadioError:
            raise
        except Exception as exc:  # noqa: BLE001 - vendor libraries raise bare Exception / RuntimeError
            raise self._error(exc, what) from exc

    # -- the interface -------------------------------------------------------------------------------

    def configure(self, settings: RadioSettings) -> RadioSettings:
        """Check ``settings`` against the profile, then program the radio; returns them resolved."""
        self._check_open()
        resolved = self.profile.resolve(settings)
        self._apply(resolved)
        self.settings = resolved
        return resolved

    def transmit(self, samples: np.ndarray, *, cyclic: bool = False) -> None:
        """Send complex (N,) samples, full scale 1.0 (clipped beyond it, counted). ``cyclic``: repeat
        them until :meth:`stop_transmit` (a continuous stream); otherwise one burst."""
        self._configured()
        x, clipped = to_driver(np.asarray(samples, np.complex64), self.profile.sample_format)
        self.counters.clipped_tx += clipped
        self._send(x, cyclic)
        self.counters.samples_tx += len(x)

    def stop_transmit(self) -> None:
        if not self.closed:
            self._stop_send()

    def _recv_retrying(self) -> np.ndarray:
        for attempt in range(self.retries + 1):
            try:
                return self._recv()
            except RadioDisconnected as e:     # the backend's partial buffer is in driver units
                e.received = self._convert(e.received)
                raise
            except RadioTimeout:
                self.counters.timeouts += 1
                if attempt == self.retries:
                    raise RadioTimeout(f"{self.kind} {self.address}: no samples after {self.retries + 1} "
                                       f"attempts (is the radio streaming? rate {self.settings.rate_sps:g} sps)") from None
                self.counters.retries += 1
        raise AssertionError("unreachable")

    def _convert(self, raw: np.ndarray) -> np.ndarray:
        x, saturated = from_driver(raw, self.profile.sample_format)
        self.counters.saturated_rx += saturated
        self.counters.samples_rx += len(x)
        return x

    def receive(self, n: int) -> np.ndarray:
        """``n`` samples, complex64 (n,), full scale 1.0 (whole buffers are read; the rest is dropped)."""
        self._configured()
        if n < 0:
            raise ValueError(f"n: expected >= 0, got {n}")
        got: list[np.ndarray] = []
        have = 0
        try:
            while have < n:
                got.append(self._convert(self._recv_retrying()))
                have += len(got[-1])
        except RadioDisconnected as e:
            e.received = np.concatenate(got + [e.received])[:n]
            raise
        return np.concatenate(got)[:n] if got else np.zeros(0, np.complex64)

    def stream(self, max_samples: Optional[int] = None) -> Iterator[np.ndarray]:
        """Receive buffers (complex64 (rx_buffer_samples,), full scale 1.0) until ``max_samples``
        (None: until the caller stops iterating)."""
        self._configured()
        have = 0
        while max_samples is None or have < max_samples:
            x = self._convert(self._recv_retrying())
            if max_samples is not None:
                x = x[:max_samples - have]
            have += len(x)
            yield x

    def close(self) -> None:
        """Stop transmitting and release the device; safe to call twice and after errors."""
        if self.closed:
            return
        self.closed = True
        try:
            self._stop_send()
        except Exception:
            pass
        finally:
            self._release()

    def __enter__(self) -> "Radio":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self.closed:
            raise RadioError(f"{self.kind} {self.address}: the radio is closed")

    def _configured(self) -> None:
        self._check_open()
        if self.settings is None:
            raise RadioError(f"{self.kind} {self.address}: configure() it first")


def open_radio(kind: str, address: str, profile: str | RadioProfile | None = None, **kw) -> Radio:
    """Open a radio by kind (a key of :data:`~mtsc_sdr.radio.registry.RADIOS`: ``pluto`` / ``usrp`` /
    ``sim``, the simulated loopback of :mod:`.sim`) with its profile (name, file or object; default:
    the kind's ``default_profile``). The driver module, and with it the vendor library, is imported
    on use through the registry; ``kw`` goes to the driver (``retries``, SimRadio's impairments)."""
    entry = radio_kind(kind)
    prof = profile if isinstance(profile, RadioProfile) else radio_profile(profile or entry.default_profile)
    return driver_class(kind)(address, prof, **kw)
