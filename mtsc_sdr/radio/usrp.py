"""``UsrpRadio``: an Ettus / NI USRP through UHD's Python API (``uhd.usrp.MultiUSRP``), channel 0.

What the :class:`~mtsc_sdr.radio.driver.Radio` hooks do here:

* ``_apply``: ``set_rx_rate`` / ``set_tx_rate``, ``set_rx_freq`` / ``set_tx_freq`` with a
  ``uhd.types.TuneRequest``, ``set_rx_bandwidth`` / ``set_tx_bandwidth``, ``set_rx_agc`` (on in an
  AGC mode, off in manual mode where the profile has an AGC at all), ``set_rx_gain`` (manual mode
  only) and ``set_tx_gain``. A running receive stream is stopped first; the next receive restarts it.
* ``_recv``: an ``fc32`` / ``sc16`` receive streamer, started (``start_cont``, now) by the first
  receive; ``recv`` into a complex64 (rx_buffer_samples,) buffer, one call per packet or so. The
  metadata's error code decides: ``overflow`` -> ``counters.overflows += 1`` and the buffer goes on
  filling (UHD reports the gap, the samples after it keep coming); ``timeout`` ->
  :class:`RadioTimeout` if nothing came (retried by the base class), else the samples that did come
  (a short buffer); anything else -> :class:`RadioError` with UHD's ``strerror()``.
* ``_send``: a transmit streamer; a burst is sent with ``start_of_burst`` on its first packet and
  closed by an ``end_of_burst`` packet; a cyclic buffer is resent back to back by a background
  thread (tiled to at least ``tx_buffer_samples`` so each send is long enough to keep up) until
  ``_stop_send`` stops and joins it. An error in that thread is raised by the next
  :meth:`stop_transmit` / :meth:`transmit`.
* Underflows: the transmit streamer's async messages (``recv_async_msg``) are drained after each
  burst, by the cyclic thread after each repetition, and on stop; ``underflow`` and
  ``underflow_in_packet`` events are counted in ``counters.underflows``.
* A ``RuntimeError`` whose message says the device is gone (``LIBUSB_ERROR_NO_DEVICE``, "No such
  device", a USB transfer error, a reset connection) -> :class:`RadioDisconnected` (with the
  samples of the interrupted buffer); any other -> :class:`RadioError`.

UHD's Python API is imported on use. When ``import uhd`` fails (a virtual environment without it),
the module is loaded from Debian's python3-uhd (:data:`DEBIAN_UHD_PATH`, ``$MTSC_UHD_PATH``
overrides) without adding that directory to ``sys.path``. Debian builds it against the system's
numpy 1.x: in a numpy 2 environment it prints an ABI warning on import; ``pip install uhd`` gives a
build for the environment's own numpy.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .driver import Radio, RadioDisconnected, RadioError, RadioTimeout
from .profiles import RadioProfile, RadioSettings

log = logging.getLogger(__name__)

#: Where Debian / Ubuntu's python3-uhd puts the package, and the variable that overrides it.
DEBIAN_UHD_PATH = "/usr/lib/python3/dist-packages/uhd"
UHD_PATH_ENV = "MTSC_UHD_PATH"
#: What to install when UHD's Python API cannot be loaded.
INSTALL_HINT = ("install UHD's Python API: `pip install uhd` in this environment, or Debian/Ubuntu's "
                "`apt-get install python3-uhd` (loaded from its dist-packages, see $MTSC_UHD_PATH)")

_GONE_WORDS = re.compile(r"no_device|no such device|\busb\b|libusb|broken pipe|connection reset|"
                         r"device (?:was )?(?:disconnected|removed)", re.IGNORECASE)


def load_uhd() -> Any:
    """UHD's Python package: ``import uhd``, else Debian's python3-uhd loaded from its directory.

    Raises:
        RadioError: neither is there (the message says what to install).
    """
    try:
        import uhd
        return uhd
    except ImportError as exc:
        first = f"{type(exc).__name__}: {exc}"
    path = Path(os.environ.get(UHD_PATH_ENV) or DEBIAN_UHD_PATH)
    init = path / "__init__.py"
    if not init.is_file():
        raise RadioError(f"usrp: cannot import uhd ({first}) and {path} holds no UHD package; {INSTALL_HINT}")
    spec = importlib.util.spec_from_file_location("uhd", init, submodule_search_locations=[str(path)])
    module = importlib.util.module_from_spec(spec)
    before = set(sys.modules)
    sys.modules["uhd"] = module                     # its own relative imports resolve through it
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - a broken or mismatched build: say so and what to do
        sys.modules.pop("uhd", None)
        for name in [n for n in sys.modules if n.startswith("uhd.") and n not in before]:
            del sys.modules[name]
        raise RadioError(f"usrp: cannot load UHD's Python API from {path} ({type(exc).__name__}: {exc}); "
                         f"{INSTALL_HINT}") from exc
    return module


class UsrpRadio(Radio):
    """A USRP (see the module docstring).

    Args:
        address: UHD device arguments (``type=b200,serial=3150361``, ``addr=192.168.10.2``; ``""``:
            the first USRP UHD finds).
        profile: a ``usrp`` :class:`RadioProfile`.
        retries: per timed-out receive buffer.
        timeout_s: UHD's timeout for one ``recv`` / ``send`` call (seconds).
        uhd_module: the ``uhd`` module to use (tests pass a fake); default: :func:`load_uhd`.

    Raises:
        RadioError: UHD's Python API missing (says what to install), or no USRP at ``address``.
    """

    kind = "usrp"

    def __init__(self, address: str, profile: RadioProfile, *, retries: int = 3, timeout_s: float = 1.0,
                 uhd_module: Any = None):
        super().__init__(address, profile, retries=retries)
        self.timeout_s = timeout_s
        self._uhd = uhd_module if uhd_module is not None else load_uhd()
        try:
            self._usrp = self._uhd.usrp.MultiUSRP(address)
        except Exception as exc:  # noqa: BLE001 - UHD raises RuntimeError("LookupError: ...") and others
            self.closed = True
            raise RadioError(f"usrp {address or '(any)'}: cannot open: {exc} (is it attached? "
                             "`mtsc-sdr radios` lists the radios it finds)") from exc
        self._rx_stream: Any = None
        self._tx_stream: Any = None
        self._tx_thread: Optional[threading.Thread] = None
        self._tx_stop = threading.Event()
        self._tx_error: Optional[BaseException] = None
        self._async_lock = threading.Lock()

    @property
    def serial(self) -> str:
        """The motherboard's serial number (``get_usrp_rx_info()["mboard_serial"]``), ``""`` if unknown."""
        try:
            return str(dict(self._usrp.get_usrp_rx_info(0)).get("mboard_serial", ""))
        except Exception:  # noqa: BLE001 - an attribute for records, never worth an error
            return ""

    def _error(self, exc: BaseException, what: str, received: Optional[np.ndarray] = None) -> RadioError:
        text = f"{type(exc).__name__}: {exc}"
        if _GONE_WORDS.search(text):
            return RadioDisconnected(f"usrp {self.address}: {what}: the device is gone ({text})", received)
        return RadioError(f"usrp {self.address}: {what} failed: {text}")

    def _stream_args(self) -> Any:
        args = self._uhd.usrp.StreamArgs("fc32", "sc16")
        args.channels = [0]
        return args

    # -- configure -------------------------------------------------------------------------------------

    def _apply(self, s: RadioSettings) -> None:
        u, types = self._usrp, self._uhd.types
        self._stop_rx()
        with self._errors("configure"):
            u.set_rx_rate(float(s.rate_sps), 0)
            u.set_tx_rate(float(s.rate_sps), 0)
            u.set_rx_freq(types.TuneRequest(float(s.freq_hz)), 0)
            u.set_tx_freq(types.TuneRequest(float(s.freq_hz)), 0)
            u.set_rx_bandwidth(float(s.bandwidth_hz), 0)
            u.set_tx_bandwidth(float(s.bandwidth_hz), 0)
            if s.gain_mode != "manual":
                u.set_rx_agc(True, 0)
            else:
                if self.profile.agc_modes:
                    u.set_rx_agc(False, 0)
                u.set_rx_gain(float(s.rx_gain_db), 0)
            u.set_tx_gain(float(s.tx_gain_db), 0)

    # -- receive ---------------------------------------------------------------------------------------

    def _start_rx(self) -> None:
        types = self._uhd.types
        with self._errors("start receiving"):
            self._rx_stream = self._usrp.get_rx_stream(self._stream_args())
            cmd = types.StreamCMD(types.StreamMode.start_cont)
            cmd.stream_now = True
            self._rx_stream.issue_stream_cmd(cmd)

    def _stop_rx(self) -> None:
        """Stop a running receive stream and drop what is still in flight (best effort)."""
        stream, self._rx_stream = self._rx_stream, None
        if stream is None:
            return
        types = self._uhd.types
        try:
            stream.issue_stream_cmd(types.StreamCMD(types.StreamMode.stop_cont))
            scratch, md = np.empty(4096, np.complex64), types.RXMetadata()
            for _ in range(1000):                   # bounded: a stopped stream runs dry at once
                if not stream.recv(scratch, md, 0.1):
                    break
        except Exception as exc:  # noqa: BLE001 - stopping a stream of a device that may be gone
            log.debug("usrp %s: stopping the receive stream: %s", self.address, exc)

    def _recv(self) -> np.ndarray:
        if self._rx_stream is None:
            self._start_rx()
        codes = self._uhd.types.RXMetadataErrorCode
        md = self._uhd.types.RXMetadata()
        buf = np.empty(self.settings.rx_buffer_samples, np.complex64)
        got = 0
        while got < len(buf):
            try:
                got += int(self._rx_stream.recv(buf[got:], md, self.timeout_s))
            except Exception as exc:  # noqa: BLE001
                raise self._error(exc, "receive", buf[:got].copy()) from exc
            code = md.error_code
            if code == codes.overflow:
                self.counters.overflows += 1
            elif code == codes.timeout:
                if got:
                    return buf[:got]
                raise RadioTimeout(f"usrp {self.address}: no samples within {self.timeout_s:g} s")
            elif code != codes.none:
                raise RadioError(f"usrp {self.address}: receive failed: {md.strerror()}")
        return buf

    # -- transmit --------------------------------------------------------------------------------------

    def _send_all(self, x: np.ndarray, start_of_burst: bool) -> None:
        """Send all of ``x`` (complex64 (N,)), ``start_of_burst`` on its first packet."""
        md = self._uhd.types.TXMetadata()
        md.start_of_burst, md.end_of_burst = start_of_burst, False
        sent = 0
        while sent < len(x):
            try:
                n = int(self._tx_stream.send(x[sent:], md, self.timeout_s))
            except Exception as exc:  # noqa: BLE001
                raise self._error(exc, "transmit") from exc
            if n == 0:
                raise RadioTimeout(f"usrp {self.address}: transmit stalled: no sample taken within "
                                   f"{self.timeout_s:g} s ({sent} of {len(x)} sent)")
            sent += n
            md.start_of_burst = False

    def _end_burst(self) -> None:
        md = self._uhd.types.TXMetadata()
        md.start_of_burst, md.end_of_burst = False, True
        with self._errors("end the burst"):
            self._tx_stream.send(np.zeros(1, np.complex64), md, self.timeout_s)

    def _drain_async(self) -> None:
        """Count the underflows the transmit streamer reported since the last call."""
        if self._tx_stream is None:
            return
        types = self._uhd.types
        underflow = (types.TXMetadataEventCode.underflow, types.TXMetadataEventCode.underflow_in_packet)
        md = types.TXAsyncMetadata()
        with self._async_lock, self._errors("read transmit events"):
            while self._tx_stream.recv_async_msg(md, 0.0):
                if md.event_code in underflow:
                    self.counters.underflows += 1

    def _cyclic(self, x: np.ndarray) -> None:
        """Background thread: resend ``x`` back to back until ``_tx_stop`` is set."""
        try:
            first = True
            while not self._tx_stop.is_set():
                self._send_all(x, start_of_burst=first)
                first = False
                self._drain_async()
            self._end_burst()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by _stop_send
            self._tx_error = exc

    def _send(self, x: np.ndarray, cyclic: bool) -> None:
        self._stop_send()
        if self._tx_stream is None:
            with self._errors("start transmitting"):
                self._tx_stream = self._usrp.get_tx_stream(self._stream_args())
        if not cyclic:
            self._send_all(x, start_of_burst=True)
            self._end_burst()
            self._drain_async()
            return
        if len(x) == 0:
            raise ValueError("samples: a cyclic transmission needs at least one sample")
        reps = max(1, math.ceil(self.settings.tx_buffer_samples / len(x)))
        self._tx_stop.clear()
        self._tx_thread = threading.Thread(target=self._cyclic, args=(np.tile(x, reps),), daemon=True,
                                           name=f"usrp-tx-{self.address}")
        self._tx_thread.start()

    def _stop_send(self) -> None:
        thread, self._tx_thread = self._tx_thread, None
        if thread is not None:
            self._tx_stop.set()
            thread.join(timeout=10 * self.timeout_s + 5.0)
            if thread.is_alive():
                raise RadioError(f"usrp {self.address}: the transmit thread did not stop (device hung?)")
        error, self._tx_error = self._tx_error, None
        if error is not None:
            raise error
        self._drain_async()

    # -- release ---------------------------------------------------------------------------------------

    def _release(self) -> None:
        self._stop_rx()
        self._tx_stream = None
        self._usrp = None
