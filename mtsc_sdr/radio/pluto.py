"""``PlutoRadio``: an ADALM-Pluto through pyadi-iio (``adi.Pluto``; ``adi.ad9361`` in 2R2T mode).

What the :class:`~mtsc_sdr.radio.driver.Radio` hooks do here (one channel, channel 0):

* ``_apply``: ``rx_lo`` / ``tx_lo`` (one frequency for both), ``sample_rate``, ``rx_rf_bandwidth`` /
  ``tx_rf_bandwidth``, ``gain_control_mode_chan0``, ``rx_hardwaregain_chan0`` (manual mode only:
  an AGC owns the gain otherwise), ``tx_hardwaregain_chan0`` (<= 0 dB: minus the attenuation) and
  ``rx_buffer_size`` (the receive buffer is destroyed first, as pyadi-iio sizes it when it is
  created). Integers where pyadi-iio insists on them (LOs, bandwidths, rate, buffer size).
* ``_send``: ``tx()`` of complex samples with integer I/Q (full scale 2**14, see
  :mod:`mtsc_sdr.phy.scaling`); ``tx_cyclic_buffer`` set for a cyclic one. pyadi-iio refuses to
  change the cyclic flag or the length while a buffer exists, so the TX buffer is destroyed first
  when a cyclic buffer is (or was) involved or the length changes; bursts of one length reuse it.
* ``_stop_send``: destroys a cyclic TX buffer (the DMA stops repeating it).
* ``_recv``: ``rx()``: complex, (rx_buffer_samples,), I/Q the 12-bit ADC codes (+-2**11).
* ``_release``: destroys both buffers and closes the IIO context.

libiio errors are mapped: ``ETIMEDOUT`` -> :class:`RadioTimeout` (retried by the base class);
``ENODEV`` / ``EPIPE`` / ``ECONNRESET`` / ``ENOTCONN`` or a message saying the device or the
connection is gone -> :class:`RadioDisconnected`; anything else -> :class:`RadioError`.

Overflows: pyadi-iio reports none. The driver reads the sticky overflow bit (0x4) of the receive
DMA's status register (0x80000088 of ``cf-ad9361-lpc``, the register libiio's
``iio_adi_xflow_check`` polls) after every buffer and clears it, so ``counters.overflows`` counts
*buffers during which the hardware dropped samples* (a lower bound on overflow events). Where the
register cannot be read (an IIO daemon without debug access) nothing is counted. Underflows are
not counted: a cyclic buffer cannot underflow, and a one-shot burst ends in an underflow by design.
The gr-iio flowgraphs (``pluto_rx`` / ``pluto_tx``) are another path, with their own reporting.
"""

from __future__ import annotations

import errno
import logging
import re
from typing import Any, Optional

import numpy as np

from .driver import Radio, RadioDisconnected, RadioError, RadioTimeout
from .profiles import RadioProfile, RadioSettings

log = logging.getLogger(__name__)

#: What to install when ``import adi`` fails.
INSTALL_HINT = ("install the Python package pyadi-iio (`pip install pyadi-iio`, module `adi`) and libiio "
                "(Debian/Ubuntu: `apt-get install libiio0`)")

#: The AXI DMA status register of the ADI converter cores, and its receive-overflow bit.
DMA_STATUS_REGISTER = 0x80000088
DMA_STATUS_OVERFLOW = 0x4

_GONE_ERRNOS = {errno.ENODEV, errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN}
_GONE_WORDS = re.compile(r"no such device|broken pipe|connection reset|not connected|device (?:was )?removed",
                         re.IGNORECASE)


def load_adi() -> Any:
    """``import adi`` (pyadi-iio), or :class:`RadioError` saying what to install."""
    try:
        import adi
    except Exception as exc:  # noqa: BLE001 - ImportError, or libiio missing (OSError / AttributeError)
        raise RadioError(f"pluto: cannot import pyadi-iio ({type(exc).__name__}: {exc}); {INSTALL_HINT}") from exc
    return adi


def _why(exc: BaseException) -> str:
    """``exc``'s message, with the libiio error behind a bare ``Exception("No device found")``."""
    text = str(exc) or type(exc).__name__
    inner = exc.__cause__ or exc.__context__
    return f"{text} ({inner})" if inner is not None and str(inner) not in text else text


def classify(exc: BaseException, what: str) -> RadioError:
    """The :class:`RadioError` subclass that ``exc`` (from pyadi-iio / libiio) means, with ``what``
    (``"pluto ip:192.168.2.1: receive"``) in its message."""
    code = getattr(exc, "errno", None)
    if isinstance(exc, TimeoutError) or code == errno.ETIMEDOUT:
        return RadioTimeout(f"{what} timed out ({exc})")
    if code in _GONE_ERRNOS or _GONE_WORDS.search(_why(exc)):
        return RadioDisconnected(f"{what}: the device is gone ({_why(exc)})")
    return RadioError(f"{what} failed: {_why(exc)}")


class PlutoRadio(Radio):
    """An ADALM-Pluto (see the module docstring).

    Args:
        address: IIO context URI (``ip:192.168.2.1``, ``usb:1.4.5``; ``""``: pyadi-iio's auto search).
        profile: a ``pluto`` :class:`RadioProfile`; ``rx_channels == 2`` (2R2T firmware) opens the
            board as an ``adi.ad9361`` and uses its channel 0.
        retries: per timed-out receive buffer.
        adi_module: the ``adi`` module to use (tests pass a fake); default: ``import adi``.

    Raises:
        RadioError: pyadi-iio / libiio missing (says what to install), or nothing answers at ``address``.
    """

    kind = "pluto"

    def __init__(self, address: str, profile: RadioProfile, *, retries: int = 3, adi_module: Any = None):
        super().__init__(address, profile, retries=retries)
        adi = adi_module if adi_module is not None else load_adi()
        cls = adi.ad9361 if profile.rx_channels == 2 else adi.Pluto
        try:
            self._dev = cls(address)
            if profile.rx_channels == 2:
                self._dev.rx_enabled_channels = [0]
                self._dev.tx_enabled_channels = [0]
        except Exception as exc:  # noqa: BLE001 - pyadi-iio raises bare Exception("No device found")
            self.closed = True
            raise RadioError(f"pluto {address or '(auto)'}: cannot open: {_why(exc)} (is it attached? "
                             "`mtsc-sdr radios` lists the radios it finds)") from exc
        self._tx_len: Optional[int] = None        # samples in the current TX buffer, None: no buffer
        self._tx_cyclic = False
        self._check_overflows = True

    @property
    def serial(self) -> str:
        """The Pluto's serial number (IIO context attribute ``hw_serial``), ``""`` if unknown."""
        try:
            return str(self._dev.ctx.attrs.get("hw_serial", ""))
        except Exception:  # noqa: BLE001 - an attribute for records, never worth an error
            return ""

    def temperature_c(self) -> Optional[float]:
        """The AD936x's die temperature in deg C (``ad9361-phy`` channel ``temp0``, millidegrees), or
        None when it cannot be read: calibration records it beside each measurement."""
        try:
            return float(self._dev._ctrl.find_channel("temp0").attrs["input"].value) / 1000.0
        except Exception:  # noqa: BLE001 - optional, never worth an error
            return None

    @property
    def xo_correction_hz(self) -> Optional[float]:
        """The reference clock the driver assumes (``ad9361-phy`` attribute ``xo_correction``, Hz;
        nominal 40 MHz), or None when unreadable. Calibration computes the corrected value from it."""
        try:
            return float(self._dev._ctrl.attrs["xo_correction"].value)
        except Exception:  # noqa: BLE001
            return None

    def _error(self, exc: BaseException, what: str) -> RadioError:
        return classify(exc, f"pluto {self.address}: {what}")

    # -- backend hooks -------------------------------------------------------------------------------

    def _apply(self, s: RadioSettings) -> None:
        d = self._dev
        with self._errors("configure"):
            d.rx_lo = int(round(s.freq_hz))
            d.tx_lo = int(round(s.freq_hz))
            d.sample_rate = int(round(s.rate_sps))
            d.rx_rf_bandwidth = int(round(s.bandwidth_hz))
            d.tx_rf_bandwidth = int(round(s.bandwidth_hz))
            d.gain_control_mode_chan0 = s.gain_mode
            if s.gain_mode == "manual":
                d.rx_hardwaregain_chan0 = float(s.rx_gain_db)
            d.tx_hardwaregain_chan0 = float(s.tx_gain_db)
            d.rx_destroy_buffer()
            d.rx_buffer_size = int(s.rx_buffer_samples)
        self._clear_overflow()

    def _send(self, x: np.ndarray, cyclic: bool) -> None:
        d = self._dev
        with self._errors("transmit"):
            if cyclic or self._tx_cyclic or len(x) != self._tx_len:
                d.tx_destroy_buffer()
                self._tx_len = None
                d.tx_cyclic_buffer = bool(cyclic)
            d.tx(x)
        self._tx_len, self._tx_cyclic = len(x), cyclic

    def _stop_send(self) -> None:
        if self._tx_cyclic:
            with self._errors("stop transmitting"):
                self._dev.tx_destroy_buffer()
            self._tx_len, self._tx_cyclic = None, False

    def _recv(self) -> np.ndarray:
        with self._errors("receive"):
            x = np.asarray(self._dev.rx())
        if self._overflowed():
            self.counters.overflows += 1
        return x

    def _release(self) -> None:
        dev, self._dev = self._dev, None
        for step in ("rx_destroy_buffer", "tx_destroy_buffer", "close"):
            try:
                getattr(dev, step)()
            except Exception as exc:  # noqa: BLE001 - releasing a device that may be gone
                log.debug("pluto %s: %s: %s", self.address, step, exc)

    # -- overflow detection (see the module docstring) ---------------------------------------------

    def _status_register(self, value: Optional[int] = None) -> Optional[int]:
        """Read (``value`` None) or write the receive DMA's status register; None when it cannot be
        accessed (then overflow detection is switched off for this radio)."""
        adc = getattr(self._dev, "_rxadc", None)
        if not self._check_overflows or adc is None:
            return None
        try:
            if value is None:
                return int(adc.reg_read(DMA_STATUS_REGISTER))
            adc.reg_write(DMA_STATUS_REGISTER, value)
            return value
        except Exception as exc:  # noqa: BLE001 - no debug access: count nothing rather than fail
            log.info("pluto %s: cannot access the DMA status register (%s); overflows are not counted",
                     self.address, exc)
            self._check_overflows = False
            return None

    def _clear_overflow(self) -> None:
        self._status_register(DMA_STATUS_OVERFLOW)

    def _overflowed(self) -> bool:
        status = self._status_register()
        if status is None or not status & DMA_STATUS_OVERFLOW:
            return False
        self._clear_overflow()
        return True
