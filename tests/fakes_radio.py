"""Stand-ins for pyadi-iio (``adi``) and UHD's Python API (``uhd``) that follow the real contracts,
for the driver tests (tests/radio/test_pluto.py, test_usrp.py, test_driver.py). Nothing here
touches hardware.

Both record everything the driver does to them in ``log`` (``("set", name, value)`` for an attribute
set, ``("call", name, *args)`` for a call, in order), so a test can assert e.g. that a request the
profile refused never reached the device. Both can be scripted: receive calls that time out, buffers
during which the hardware overflows, transmit underflows (UHD), and a device that goes away after
N buffers / samples.

Contracts followed (pyadi-iio 0.0.21 / pylibiio 0.25, UHD 4.3's Python API):

* ``adi.Pluto(uri)`` / ``adi.ad9361(uri)``: ``Exception("No device found")`` (raised while handling
  the libiio error) when nothing answers; LOs, bandwidths, sample rate and buffer size must be
  ``int`` (pyadi-iio raises ``Exception("Value must be an int")``; the kernel refuses "2e6.0"), gains
  ``float`` or ``int``; ``rx_hardwaregain_chan0`` only takes effect in manual gain mode;
  ``tx_cyclic_buffer`` cannot change while a TX buffer exists, a cyclic buffer cannot be pushed
  again and a buffer's length is fixed once created; the receive buffer is sized when created
  (first ``rx()`` after ``rx_destroy_buffer()``). ``rx()`` returns complex128 with integer I/Q, the
  AD936x's 12-bit ADC codes (-2048 .. 2047), one array per enabled channel (a bare array for one);
  libiio errors are ``OSError`` with the errno (``ETIMEDOUT`` comes out as ``TimeoutError``), and
  pyadi-iio drops the receive buffer when a refill fails. ``_rxadc.reg_read`` / ``reg_write`` reach
  the DMA status register (0x80000088; bit 0x4: overflow, cleared by writing it back).
* ``uhd.usrp.MultiUSRP(args)``: ``RuntimeError("LookupError: KeyError: No devices found ...")``
  without a device; ``set_rx_freq`` takes a ``TuneRequest``; streamers from
  ``get_rx_stream(StreamArgs("fc32", "sc16"))``; ``recv(array, metadata, timeout)`` fills up to one
  packet (``max_num_samps``) of a complex64 array and sets ``metadata.error_code`` (``timeout`` with
  0 samples when not streaming or nothing came, ``overflow`` with 0 samples after a gap);
  ``send(array, metadata, timeout)`` returns the samples taken; ``recv_async_msg(md, timeout)``
  pops an async event (``TXMetadataEventCode.underflow``) into ``md``.
"""

from __future__ import annotations

import enum
import errno
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterable, Optional

import numpy as np

#: The AD936x ADC: 12 bits, sign-extended into int16 -> codes -2048 .. 2047 (full scale 2**11).
ADC_CODES = (-2048, 2047)
DMA_STATUS_REGISTER = 0x80000088
DMA_OVERFLOW_BIT = 0x4

Signal = Callable[[np.ndarray], np.ndarray]


def tone(amplitude: float = 0.5, cycles_per_sample: float = 0.01) -> Signal:
    """A complex tone, full scale 1.0, as a function of the sample index (int64 (N,) -> complex (N,))."""
    return lambda n: amplitude * np.exp(2j * np.pi * cycles_per_sample * n)


def _oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))          # OSError(ETIMEDOUT, ...) is a TimeoutError


# ------------------------------------------------------------------------------------------------
# pyadi-iio
# ------------------------------------------------------------------------------------------------


class FakeIioDevice:
    """pylibiio's ``iio.Device``, as far as the driver uses it: the debug register interface."""

    def __init__(self, owner: "FakeAdi"):
        self.owner = owner
        self.status = 0

    def reg_read(self, reg: int) -> int:
        self.owner.log.append(("call", "reg_read", reg))
        if self.owner.register_error is not None:
            raise self.owner.register_error
        return self.status if reg == DMA_STATUS_REGISTER else 0

    def reg_write(self, reg: int, value: int) -> None:
        self.owner.log.append(("call", "reg_write", reg, value))
        if self.owner.register_error is not None:
            raise self.owner.register_error
        if reg == DMA_STATUS_REGISTER:
            self.status &= ~value                       # write-one-to-clear


_INT_ATTRS = {"rx_lo", "tx_lo", "rx_rf_bandwidth", "tx_rf_bandwidth", "sample_rate", "rx_buffer_size"}
_FLOAT_ATTRS = {"rx_hardwaregain_chan0", "tx_hardwaregain_chan0"}
_GAIN_MODES = {"manual", "slow_attack", "fast_attack", "hybrid"}


class FakeAd936x:
    """``adi.Pluto`` (one channel pair) or ``adi.ad9361`` (two), see the module docstring."""

    def __init__(self, owner: "FakeAdi", model: str, channels: int, *args, **kwargs):
        object.__setattr__(self, "_owner", owner)
        owner.log.append(("call", model, *args, *kwargs.values()))
        if len(args) + len(kwargs) > 1:
            raise Exception("Too many arguments")
        if not owner.present:
            try:
                raise _oserror(errno.ECONNREFUSED)
            except OSError:
                raise Exception("No device found")     # what pyadi-iio's context_manager raises
        object.__setattr__(self, "_attrs", {"gain_control_mode_chan0": "slow_attack", "rx_buffer_size": 1024,
                                            "tx_cyclic_buffer": False,
                                            "rx_enabled_channels": list(range(channels)),
                                            "tx_enabled_channels": list(range(channels))})
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_rxbuf", None)       # size of the live receive buffer
        object.__setattr__(self, "_txbuf", None)       # size of the live transmit buffer
        object.__setattr__(self, "_rxadc", FakeIioDevice(owner))
        object.__setattr__(self, "ctx", SimpleNamespace(attrs={"hw_serial": owner.serial}))
        owner.devices.append(self)

    def __getattr__(self, name: str):
        try:
            return self._attrs[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value) -> None:
        owner = self._owner
        owner.log.append(("set", name, value))
        if name in _INT_ATTRS and (isinstance(value, bool) or not isinstance(value, int)):
            raise Exception("Value must be an int")
        if name in _FLOAT_ATTRS and not isinstance(value, (int, float)):
            raise Exception("Value must be a float")
        if name == "sample_rate" and value < 521e3:
            raise ValueError("Error: Does not currently support sample rates below 521e3")
        if name == "gain_control_mode_chan0" and value not in _GAIN_MODES:
            raise _oserror(errno.EINVAL)
        if name == "tx_cyclic_buffer" and self._txbuf is not None:
            raise Exception("TX buffer exists and must be destroyed then recreated to modify tx_cyclic_buffer")
        if name == "rx_hardwaregain_chan0" and self._attrs["gain_control_mode_chan0"] != "manual":
            return                                      # the real setter ignores it outside manual mode
        self._attrs[name] = value

    # -- buffers -------------------------------------------------------------------------------------

    def rx_destroy_buffer(self) -> None:
        self._owner.log.append(("call", "rx_destroy_buffer"))
        object.__setattr__(self, "_rxbuf", None)

    def tx_destroy_buffer(self) -> None:
        self._owner.log.append(("call", "tx_destroy_buffer"))
        object.__setattr__(self, "_txbuf", None)

    def close(self) -> None:
        self._owner.log.append(("call", "close"))

    def rx(self):
        owner = self._owner
        owner.log.append(("call", "rx"))
        call = owner.rx_calls
        owner.rx_calls += 1
        if owner.disconnect_after is not None and owner.buffers >= owner.disconnect_after:
            object.__setattr__(self, "_rxbuf", None)
            raise _oserror(errno.ENODEV)
        if call in owner.timeouts:
            object.__setattr__(self, "_rxbuf", None)    # pyadi-iio drops the buffer when refill fails
            raise _oserror(errno.ETIMEDOUT)
        if self._rxbuf is None:
            object.__setattr__(self, "_rxbuf", self._attrs["rx_buffer_size"])
            owner.log.append(("call", "rx_buffer_created", self._rxbuf))
        n = np.arange(owner.samples_out, owner.samples_out + self._rxbuf)
        owner.samples_out += self._rxbuf
        if owner.buffers in owner.overflow_at:
            self._rxadc.status |= DMA_OVERFLOW_BIT
        owner.buffers += 1
        x = owner.signal(n)
        i = np.clip(np.rint(x.real * 2 ** 11), *ADC_CODES).astype(np.int16)
        q = np.clip(np.rint(x.imag * 2 ** 11), *ADC_CODES).astype(np.int16)
        data = i + 1j * q                               # complex128, as pyadi-iio builds it
        enabled = self._attrs["rx_enabled_channels"]
        return data if len(enabled) == 1 else [data] + [np.zeros_like(data)] * (len(enabled) - 1)

    def tx(self, data) -> None:
        owner = self._owner
        owner.log.append(("call", "tx", len(data)))
        if owner.disconnect_after is not None and owner.buffers >= owner.disconnect_after:
            raise _oserror(errno.ENODEV)
        if len(self._attrs["tx_enabled_channels"]) != 1:
            raise Exception("Not enough data provided for channel mapping")
        if self._txbuf is not None and self._attrs["tx_cyclic_buffer"]:
            raise Exception("TX buffer has been submitted in cyclic mode. "
                            "To push more data the tx buffer must be destroyed first.")
        x = np.asarray(data)
        if self._txbuf is None:
            object.__setattr__(self, "_txbuf", len(x))
        elif len(x) != self._txbuf:
            raise Exception("Buffer length different than data length. Cannot change buffer length on the fly")
        pushed = np.real(x).astype(np.int16) + 1j * np.imag(x).astype(np.int16)
        owner.transmitted.append((self._attrs["tx_cyclic_buffer"], pushed))


class FakeAdi:
    """Module-like stand-in for ``adi`` with ``Pluto`` and ``ad9361``.

    Args:
        signal: what the ADC sees, full scale 1.0, as a function of the sample index.
        timeouts: ``rx()`` call numbers (0-based, every call counts) that time out.
        overflow_at: buffer numbers (0-based, delivered buffers) during which the DMA overflows.
        disconnect_after: buffers delivered before the device goes away (ENODEV from then on).
        present: False: nothing answers at the URI.
        register_error: raised by the debug register interface (an iiod without debug access).
    """

    def __init__(self, *, signal: Optional[Signal] = None, timeouts: Iterable[int] = (),
                 overflow_at: Iterable[int] = (), disconnect_after: Optional[int] = None, present: bool = True,
                 register_error: Optional[BaseException] = None, serial: str = "104400b8399100081200f5a8"):
        self.signal = signal or tone()
        self.timeouts, self.overflow_at = set(timeouts), set(overflow_at)
        self.disconnect_after, self.present, self.register_error = disconnect_after, present, register_error
        self.serial = serial
        self.log: list[tuple] = []
        self.devices: list[FakeAd936x] = []
        self.transmitted: list[tuple[bool, np.ndarray]] = []   # (cyclic, int16 I/Q as complex) per tx()
        self.rx_calls = self.buffers = self.samples_out = 0

    def Pluto(self, *args, **kwargs) -> FakeAd936x:  # noqa: N802 - the real class name
        return FakeAd936x(self, "Pluto", 1, *args, **kwargs)

    def ad9361(self, *args, **kwargs) -> FakeAd936x:
        return FakeAd936x(self, "ad9361", 2, *args, **kwargs)

    @property
    def device(self) -> FakeAd936x:
        return self.devices[-1]

    def sets(self) -> list[tuple]:
        return [e for e in self.log if e[0] == "set"]

    def calls(self, name: str) -> list[tuple]:
        return [e for e in self.log if e[0] == "call" and e[1] == name]


# ------------------------------------------------------------------------------------------------
# UHD
# ------------------------------------------------------------------------------------------------


class RXMetadataErrorCode(enum.Enum):
    none = 0x0
    timeout = 0x1
    late = 0x2
    broken_chain = 0x4
    overflow = 0x8
    alignment = 0xC
    bad_packet = 0xF


class TXMetadataEventCode(enum.Enum):
    burst_ack = 0x1
    underflow = 0x2
    seq_error = 0x4
    time_error = 0x8
    underflow_in_packet = 0x10
    seq_error_in_packet = 0x20
    user_payload = 0x40


class StreamMode(enum.Enum):
    start_cont = "a"
    stop_cont = "o"
    num_done = "d"
    num_more = "m"


class RXMetadata:
    def __init__(self):
        self.error_code = RXMetadataErrorCode.none
        self.out_of_sequence = False
        self.start_of_burst = self.end_of_burst = self.has_time_spec = False

    def strerror(self) -> str:
        return f"ERROR_CODE_{self.error_code.name.upper()}"


class TXMetadata:
    def __init__(self):
        self.start_of_burst = self.end_of_burst = self.has_time_spec = False


class TXAsyncMetadata:
    def __init__(self):
        self.channel = 0
        self.event_code: Optional[TXMetadataEventCode] = None
        self.has_time_spec = False


class StreamCMD:
    def __init__(self, mode: StreamMode):
        self.stream_mode, self.stream_now, self.num_samps = mode, False, 0


class TuneRequest:
    def __init__(self, target_freq: float = 0.0, lo_off: Optional[float] = None):
        self.target_freq, self.lo_off = float(target_freq), lo_off


class StreamArgs:
    def __init__(self, cpu_format: str, otw_format: str):
        self.cpu_format, self.otw_format, self.channels, self.args = cpu_format, otw_format, [], ""


def _check_array(x, what: str) -> np.ndarray:
    """Like UHD's wrap_recv / wrap_send: one channel, 1-D or (1, N); and (stricter) complex64 for fc32."""
    if not isinstance(x, np.ndarray) or x.dtype != np.complex64:
        raise TypeError(f"{what}: fc32 needs a complex64 numpy array, got {getattr(x, 'dtype', type(x))}")
    if x.ndim == 2 and x.shape[0] == 1:
        return x[0]
    if x.ndim != 1:
        raise RuntimeError(f"Number of {what} channels (1) does not match the dimensions of the data array")
    return x


class FakeRxStreamer:
    def __init__(self, owner: "FakeUhd"):
        self.owner, self.streaming = owner, False

    def get_max_num_samps(self) -> int:
        return self.owner.max_num_samps

    def issue_stream_cmd(self, cmd: StreamCMD) -> None:
        self.owner.log.append(("call", "issue_stream_cmd", cmd.stream_mode, cmd.stream_now))
        self.streaming = cmd.stream_mode == StreamMode.start_cont

    def recv(self, array, metadata: RXMetadata, timeout: float = 0.1) -> int:
        owner = self.owner
        buf = _check_array(array, "RX")
        if not buf.flags.writeable:
            raise RuntimeError("Array is not writable")
        owner.log.append(("call", "recv", len(buf)))
        call = owner.recv_calls
        owner.recv_calls += 1
        if owner.gone:
            raise RuntimeError(owner.disconnect_message)
        if not self.streaming or call in owner.timeouts:
            metadata.error_code = RXMetadataErrorCode.timeout
            return 0
        if call in owner.overflow_at:
            metadata.error_code = RXMetadataErrorCode.overflow
            return 0
        n = min(len(buf), owner.max_num_samps)
        if owner.disconnect_after_samples is not None:
            left = owner.disconnect_after_samples - owner.samples_out
            if left <= 0:
                owner.gone = True
                raise RuntimeError(owner.disconnect_message)
            n = min(n, left)
        buf[:n] = owner.signal(np.arange(owner.samples_out, owner.samples_out + n))
        owner.samples_out += n
        metadata.error_code = RXMetadataErrorCode.none
        return n


class FakeTxStreamer:
    def __init__(self, owner: "FakeUhd"):
        self.owner = owner

    def get_max_num_samps(self) -> int:
        return self.owner.max_num_samps

    def send(self, array, metadata: TXMetadata, timeout: float = 0.1) -> int:
        owner = self.owner
        x = _check_array(array, "TX")
        with owner.sent:
            call = len(owner.sends)
            owner.sends.append((len(x), metadata.start_of_burst, metadata.end_of_burst))
            owner.sent.notify_all()
            if call < 1000:
                owner.sent_data.append(x.copy())
            if owner.gone or (owner.tx_disconnect_after is not None and call >= owner.tx_disconnect_after):
                owner.gone = True
                raise RuntimeError(owner.disconnect_message)
            if call in owner.underflow_at:
                owner.async_events.append(TXMetadataEventCode.underflow)
        return len(x)

    def recv_async_msg(self, metadata: TXAsyncMetadata, timeout: float = 0.1) -> bool:
        with self.owner.sent:
            if not self.owner.async_events:
                return False
            metadata.event_code = self.owner.async_events.pop(0)
        return True


class FakeMultiUSRP:
    """``uhd.usrp.MultiUSRP``: records every call (``owner.log``), keeps the last value per setter."""

    def __init__(self, owner: "FakeUhd", args: str = ""):
        self.owner = owner
        owner.log.append(("call", "MultiUSRP", args))
        if not owner.present:
            raise RuntimeError(f"LookupError: KeyError: No devices found for ----->\nDevice Address:\n    {args}\n")
        self.values: dict[str, object] = {}
        owner.devices.append(self)

    def _set(self, name: str, value, chan: int) -> None:
        self.owner.log.append(("call", name, value, chan))
        self.values[name] = value

    def set_rx_rate(self, rate: float, chan: int = 0) -> None:
        self._set("set_rx_rate", float(rate), chan)

    def set_tx_rate(self, rate: float, chan: int = 0) -> None:
        self._set("set_tx_rate", float(rate), chan)

    def set_rx_freq(self, tune_request: TuneRequest, chan: int = 0):
        if not isinstance(tune_request, TuneRequest):
            raise TypeError("set_rx_freq(): incompatible function arguments (needs a TuneRequest)")
        self._set("set_rx_freq", tune_request.target_freq, chan)

    def set_tx_freq(self, tune_request: TuneRequest, chan: int = 0):
        if not isinstance(tune_request, TuneRequest):
            raise TypeError("set_tx_freq(): incompatible function arguments (needs a TuneRequest)")
        self._set("set_tx_freq", tune_request.target_freq, chan)

    def set_rx_bandwidth(self, bandwidth: float, chan: int = 0) -> None:
        self._set("set_rx_bandwidth", float(bandwidth), chan)

    def set_tx_bandwidth(self, bandwidth: float, chan: int = 0) -> None:
        self._set("set_tx_bandwidth", float(bandwidth), chan)

    def set_rx_gain(self, gain: float, chan: int = 0) -> None:
        self._set("set_rx_gain", float(gain), chan)

    def set_tx_gain(self, gain: float, chan: int = 0) -> None:
        self._set("set_tx_gain", float(gain), chan)

    def set_rx_agc(self, enable: bool, chan: int = 0) -> None:
        if not self.owner.has_agc:
            raise RuntimeError("LookupError: Path not found in tree: /mboards/0/dboards/A/rx_frontends/0/gain/agc")
        self._set("set_rx_agc", bool(enable), chan)

    def get_usrp_rx_info(self, chan: int = 0) -> dict:
        return {"mboard_id": "B210", "mboard_serial": self.owner.serial}

    def get_rx_stream(self, args: StreamArgs) -> FakeRxStreamer:
        self.owner.log.append(("call", "get_rx_stream", args.cpu_format, args.otw_format, list(args.channels)))
        if args.cpu_format != "fc32":
            raise RuntimeError(f"this fake delivers fc32 only, not {args.cpu_format}")
        return FakeRxStreamer(self.owner)

    def get_tx_stream(self, args: StreamArgs) -> FakeTxStreamer:
        self.owner.log.append(("call", "get_tx_stream", args.cpu_format, args.otw_format, list(args.channels)))
        if args.cpu_format != "fc32":
            raise RuntimeError(f"this fake takes fc32 only, not {args.cpu_format}")
        return FakeTxStreamer(self.owner)


class FakeUhd:
    """Module-like stand-in for ``uhd`` (``uhd.usrp.MultiUSRP`` / ``StreamArgs``, ``uhd.types.*``).

    Args:
        signal: what arrives, full scale 1.0 (fc32 is +-1.0), as a function of the sample index.
        max_num_samps: samples per ``recv`` call at most (one packet).
        timeouts: ``recv`` call numbers (0-based, every call counts) that time out.
        overflow_at: ``recv`` call numbers that report an overflow (0 samples).
        disconnect_after_samples: samples delivered before the device goes away.
        underflow_at: ``send`` call numbers after which an underflow event is queued.
        tx_disconnect_after: ``send`` calls that succeed before the device goes away.
        has_agc: False: ``set_rx_agc`` raises (daughterboards without AGC).
        present: False: no device matches the arguments.
    """

    def __init__(self, *, signal: Optional[Signal] = None, max_num_samps: int = 2000, timeouts: Iterable[int] = (),
                 overflow_at: Iterable[int] = (), disconnect_after_samples: Optional[int] = None,
                 underflow_at: Iterable[int] = (), tx_disconnect_after: Optional[int] = None,
                 has_agc: bool = True, present: bool = True, serial: str = "3150361",
                 disconnect_message: str = "RuntimeError: LIBUSB_ERROR_NO_DEVICE: No such device"):
        self.signal = signal or tone()
        self.max_num_samps = max_num_samps
        self.timeouts, self.overflow_at, self.underflow_at = set(timeouts), set(overflow_at), set(underflow_at)
        self.disconnect_after_samples, self.tx_disconnect_after = disconnect_after_samples, tx_disconnect_after
        self.has_agc, self.present, self.serial = has_agc, present, serial
        self.disconnect_message = disconnect_message
        self.gone = False
        self.log: list[tuple] = []
        self.devices: list[FakeMultiUSRP] = []
        self.recv_calls = self.samples_out = 0
        self.sends: list[tuple[int, bool, bool]] = []      # (samples, start_of_burst, end_of_burst)
        self.sent_data: list[np.ndarray] = []
        self.async_events: list[TXMetadataEventCode] = []
        self.sent = threading.Condition()
        self.usrp = SimpleNamespace(MultiUSRP=lambda args="": FakeMultiUSRP(self, args), StreamArgs=StreamArgs)
        self.types = SimpleNamespace(
            TuneRequest=TuneRequest, RXMetadata=RXMetadata, RXMetadataErrorCode=RXMetadataErrorCode,
            TXMetadata=TXMetadata, TXAsyncMetadata=TXAsyncMetadata, TXMetadataEventCode=TXMetadataEventCode,
            StreamCMD=StreamCMD, StreamMode=StreamMode)

    @property
    def device(self) -> FakeMultiUSRP:
        return self.devices[-1]

    def calls(self, name: str) -> list[tuple]:
        return [e for e in self.log if e[0] == "call" and e[1] == name]

    def wait_sends(self, n: int, timeout_s: float = 10.0) -> bool:
        """Wait until ``n`` send calls happened (the cyclic transmit thread)."""
        with self.sent:
            return self.sent.wait_for(lambda: len(self.sends) >= n, timeout_s)


def usb_tree(root: Path, devices: dict[str, tuple[str, str, str, str, str]]) -> Path:
    """A fake sysfs USB device directory: ``{name: (idVendor, idProduct, busnum, devnum, serial)}``."""
    for name, (vid, pid, bus, dev, serial) in devices.items():
        d = root / name
        d.mkdir(parents=True)
        for f, v in (("idVendor", vid), ("idProduct", pid), ("busnum", bus), ("devnum", dev), ("serial", serial)):
            (d / f).write_text(v + "\n")
    return root
