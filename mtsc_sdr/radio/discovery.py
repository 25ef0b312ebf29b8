"""Find attached radios (PlutoSDR, USRP) without importing GNU Radio, libiio or UHD in this process.

:func:`find_radios` runs every search it can and returns what it found together with one line per
search saying what was tried and what came of it, so a caller can fail fast with e.g.
``no Pluto found; searched: iio_info -s: not installed; ...``.

Pluto searches (an address is an IIO context URI, what the ``uri`` parameter of ``pluto_tx`` /
``pluto_rx`` takes):

* ``iio_info -s`` (libiio-utils), if installed: libiio's scan of USB (and network) contexts;
* gr-iio under the GNU Radio Python: ``iio.get_pluto_uri()``, the scan the Pluto blocks use;
* the IIO daemon port (30431) at the Pluto's default addresses ``192.168.2.1`` and ``pluto.local``;
* the USB bus in sysfs (Analog Devices 0456:b673), used only when nothing above found a Pluto.

USRP searches (an address is a UHD device-argument string, what ``device_args`` takes):

* ``uhd_find_devices`` (uhd-host), if installed;
* UHD under the GNU Radio Python: ``gnuradio.uhd.find_devices()``, falling back to libuhd's C API
  ``uhd_usrp_find`` through ctypes (GNU Radio 3.10.5's Python wrapper of ``find_devices`` is broken);
* the USB bus in sysfs (Ettus / NI B2xx ids), used only when nothing above found a USRP.

Every search is bounded by ``timeout_s``; nothing here opens or configures a radio.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from .grpython import find_gr_python
from .registry import HARDWARE_KINDS as KINDS
from .registry import HardwareKindName

_LABEL = {"pluto": "Pluto", "usrp": "USRP"}

#: The IIO daemon's TCP port.
IIOD_PORT = 30431
#: Where a Pluto answers by default (USB network gadget address, and its mDNS name).
PLUTO_HOSTS: tuple[str, ...] = ("192.168.2.1", "pluto.local")
#: Environment variable overriding :data:`PLUTO_HOSTS` (comma-separated; empty: probe no host).
#: The test suite sets it empty so that CI never sends traffic beyond loopback.
PLUTO_HOSTS_ENV = "MTSC_PLUTO_HOSTS"


def pluto_hosts() -> tuple[str, ...]:
    """The hosts whose IIO daemon port is probed: ``$MTSC_PLUTO_HOSTS`` or :data:`PLUTO_HOSTS`."""
    value = os.environ.get(PLUTO_HOSTS_ENV)
    if value is None:
        return PLUTO_HOSTS
    return tuple(h.strip() for h in value.split(",") if h.strip())
#: USB vendor:product ids (lower-case hex) -> (kind, model).
USB_IDS: dict[tuple[str, str], tuple[str, str]] = {
    ("0456", "b673"): ("pluto", "ADALM-PLUTO (PlutoSDR)"),
    ("2500", "0020"): ("usrp", "Ettus B200/B210"),
    ("2500", "0021"): ("usrp", "Ettus B200mini"),
    ("2500", "0022"): ("usrp", "Ettus B205mini"),
    ("3923", "7813"): ("usrp", "NI USRP-2900 (B200)"),
    ("3923", "7814"): ("usrp", "NI USRP-2901 (B210)"),
}


@dataclasses.dataclass(frozen=True)
class FoundRadio:
    """One radio found.

    Attributes:
        kind: ``"pluto"`` or ``"usrp"``.
        address: Pluto: IIO context URI (``usb:1.4.5``, ``ip:192.168.2.1``); USRP: UHD device
            arguments (``type=b200,serial=3150361``).
        description: what it is, in words.
        source: which search found it (``iio_info``, ``gr-iio``, ``iiod``, ``uhd_find_devices``,
            ``gr-uhd``, ``libuhd``, ``usb``).
        serial: the device's serial number where the search reports one (``iio_info``'s scan, UHD's
            device address, the USB descriptor), else ``""``.
    """

    kind: str
    address: str
    description: str
    source: str
    serial: str = ""


class RadioSearch(list):
    """A ``list`` of :class:`FoundRadio` plus ``kind`` and ``searched`` (one line per search tried)."""

    def __init__(self, kind: str, radios: Sequence[FoundRadio] = (), searched: Sequence[str] = ()) -> None:
        super().__init__(radios)
        self.kind = kind
        self.searched = list(searched)

    def summary(self) -> str:
        """``found 1 Pluto: ip:192.168.2.1 (...)`` or ``no Pluto found; searched: ...``."""
        label = _LABEL.get(self.kind, self.kind)
        if not self:
            return f"no {label} found; searched: " + "; ".join(self.searched)
        found = ", ".join(f"{r.address} ({r.description})" for r in self)
        return f"found {len(self)} {label}{'s' if len(self) > 1 else ''}: {found}"

    def __repr__(self) -> str:
        return f"RadioSearch({self.kind!r}, {list(self)!r}, searched={self.searched!r})"


Runner = Callable[..., subprocess.CompletedProcess]


@dataclasses.dataclass
class SearchEnv:
    """What the searches touch, replaceable in tests.

    Attributes:
        which: finds an executable on PATH (``shutil.which``).
        run: runs a command (``subprocess.run``; called with ``capture_output``, ``text``, ``timeout``).
        gr_python: returns the Python with GNU Radio, or None.
        usb_root: sysfs USB device directory.
        pluto_hosts: hosts whose IIO daemon port is tried (default :func:`pluto_hosts`).
        iiod_port: that port.
    """

    which: Callable[[str], str | None] = shutil.which
    run: Runner = subprocess.run
    gr_python: Callable[[], str | None] = find_gr_python
    usb_root: Path = Path("/sys/bus/usb/devices")
    pluto_hosts: Sequence[str] = dataclasses.field(default_factory=pluto_hosts)
    iiod_port: int = IIOD_PORT


def find_radios(kind: HardwareKindName, *, timeout_s: float = 5.0, python: str | None = None,
                env: SearchEnv | None = None) -> RadioSearch:
    """Look for attached radios of ``kind`` (``"pluto"`` or ``"usrp"``).

    Args:
        timeout_s: bound on each search (each runs at most one short subprocess or connection).
        python: the Python with GNU Radio to use for the gr-iio / gr-uhd searches (default: found
            as for flowgraphs; none is not an error, those searches are skipped).
        env: replacements for what the searches touch (tests).

    Returns:
        a :class:`RadioSearch`: the radios (no duplicates) and what was searched.
    """
    if kind not in KINDS:
        raise ValueError(f"radio kind must be one of {KINDS}, got {kind!r}")
    env = env or SearchEnv()
    if python is not None:
        env = dataclasses.replace(env, gr_python=lambda: python)
    searches = _PLUTO_SEARCHES if kind == "pluto" else _USRP_SEARCHES
    radios: list[FoundRadio] = []
    searched: list[str] = []
    for search in searches:
        found, note = search(env, timeout_s)
        radios += found
        searched.append(note)
    usb, note = _search_usb(kind, env)
    if radios:
        note += " (not needed: found by the searches above)" if usb else ""
    else:
        radios += usb
    searched.append(note)
    unique: dict[str, FoundRadio] = {}
    for radio in radios:
        unique.setdefault(radio.address, radio)
    return RadioSearch(kind, list(unique.values()), searched)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _run(env: SearchEnv, cmd: list[str], timeout_s: float) -> tuple[subprocess.CompletedProcess | None, str]:
    """Run ``cmd``; (result, "") or (None, why it could not run)."""
    try:
        return env.run(cmd, capture_output=True, text=True, timeout=timeout_s), ""
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout_s:g} s"
    except OSError as exc:
        return None, f"could not run: {exc.strerror or exc}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _json_line(text: str) -> object | None:
    """The last line of ``text`` that parses as JSON (library log lines may precede it)."""
    for line in reversed((text or "").splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


# --------------------------------------------------------------------------------------------
# Pluto
# --------------------------------------------------------------------------------------------

_PLUTO_WORDS = re.compile(r"pluto|adalm|0456:b673", re.IGNORECASE)
_URI_IN_BRACKETS = re.compile(r"\[((?:usb|ip|serial|local):[^\]]*)\]")
_SERIAL = re.compile(r"\bserial=([^\s,\]]+)")


def parse_iio_scan(text: str) -> list[FoundRadio]:
    """Plutos in the output of ``iio_info -s`` / ``iio_attr -S``: lines like
    ``0: 0456:b673 (Analog Devices Inc. PlutoSDR (ADALM-PLUTO)), serial=104473... [usb:1.4.5]``."""
    radios = []
    for line in text.splitlines():
        match = _URI_IN_BRACKETS.search(line)
        if match and _PLUTO_WORDS.search(line):
            desc = re.sub(r"^\s*\d+:\s*", "", line[: match.start()]).strip().rstrip(",")
            serial = _SERIAL.search(line)
            radios.append(FoundRadio("pluto", match.group(1), desc or "PlutoSDR", "iio_info",
                                     serial.group(1) if serial else ""))
    return radios


def _search_iio_info(env: SearchEnv, timeout_s: float) -> tuple[list[FoundRadio], str]:
    tool = env.which("iio_info")
    if not tool:
        return [], "iio_info -s (libiio scan): not installed"
    for flag in ("-s", "-S"):  # libiio 0.x scans with -s, libiio 1.x with -S
        result, why = _run(env, [tool, flag], timeout_s)
        if result is None:
            return [], f"iio_info {flag}: {why}"
        if result.returncode == 0 and "context" in (result.stdout + result.stderr).lower():
            radios = parse_iio_scan(result.stdout)
            return radios, f"iio_info {flag} (libiio scan): {len(radios)} Pluto(s)"
    return [], f"iio_info: scan failed: {_last_line(result.stderr or result.stdout)}"


_GR_IIO_PROBE = """
import json
try:
    from gnuradio import iio
except Exception as exc:
    print(json.dumps({"error": "cannot import gnuradio.iio: %s" % exc}))
else:
    try:
        print(json.dumps({"uri": iio.get_pluto_uri()}))
    except Exception as exc:
        print(json.dumps({"none": str(exc)}))
"""


def _search_gr_iio(env: SearchEnv, timeout_s: float) -> tuple[list[FoundRadio], str]:
    python = env.gr_python()
    if not python:
        return [], "gr-iio get_pluto_uri(): skipped (no Python with GNU Radio)"
    result, why = _run(env, [python, "-c", _GR_IIO_PROBE], timeout_s)
    if result is None:
        return [], f"gr-iio get_pluto_uri() under {python}: {why}"
    answer = _json_line(result.stdout)
    if not isinstance(answer, dict):
        return [], f"gr-iio get_pluto_uri() under {python}: failed: {_last_line(result.stderr or result.stdout)}"
    if answer.get("uri"):
        return [FoundRadio("pluto", str(answer["uri"]), "PlutoSDR (gr-iio scan)", "gr-iio")], \
            f"gr-iio get_pluto_uri() under {python}: {answer['uri']}"
    if "none" in answer:
        return [], f"gr-iio get_pluto_uri() under {python}: {answer['none'] or 'nothing'}"
    return [], f"gr-iio get_pluto_uri() under {python}: {answer.get('error')}"


_IIOD_VERSION = re.compile(r"^\s*(\d+\.\d+)(?:\s+(\S+))?")


def iiod_version(host: str, port: int = IIOD_PORT, timeout_s: float = 1.5) -> tuple[str | None, str]:
    """Ask ``host:port`` for its IIO daemon version (``VERSION`` command of the iiod text
    protocol); ``(version, "")`` or ``(None, why not)``. A bare TCP connection is not proof: proxies
    and firewalls accept connections to anything. Name resolution, which can hang on mDNS names,
    is bounded by ``timeout_s`` too."""
    result: dict[str, str] = {}

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s) as sock:
                sock.sendall(b"VERSION\r\n")
                reply = sock.recv(128).decode("ascii", "replace")
        except OSError as exc:
            result["why"] = exc.strerror or str(exc)
            return
        match = _IIOD_VERSION.match(reply)
        if match:
            result["version"] = " ".join(g for g in match.groups() if g)
        else:
            first = reply.strip().splitlines()[0][:60] if reply.strip() else "nothing"
            result["why"] = f"not an IIO daemon (answered {first!r})"

    thread = threading.Thread(target=attempt, daemon=True, name=f"iiod-probe-{host}")
    thread.start()
    thread.join(timeout_s + 0.2)
    if "version" in result:
        return result["version"], ""
    return None, result.get("why") or f"no answer within {timeout_s:g} s"


def _search_iiod(env: SearchEnv, timeout_s: float) -> tuple[list[FoundRadio], str]:
    radios, notes = [], []
    per_host = min(timeout_s, 1.5)
    for host in env.pluto_hosts:
        version, why = iiod_version(host, env.iiod_port, per_host)
        if version is None:
            notes.append(f"{host}: {why}")
        else:
            notes.append(f"{host}: IIO daemon {version}")
            radios.append(FoundRadio("pluto", f"ip:{host}", f"IIO daemon {version} at {host}:{env.iiod_port}", "iiod"))
    if not notes:
        return radios, f"IIO daemon port: no host to probe (${PLUTO_HOSTS_ENV} is empty)"
    return radios, f"IIO daemon port {env.iiod_port} at " + ", ".join(notes)


# --------------------------------------------------------------------------------------------
# USRP
# --------------------------------------------------------------------------------------------


def parse_uhd_find_devices(text: str) -> list[FoundRadio]:
    """USRPs in the output of ``uhd_find_devices`` (blocks of ``key: value`` lines under
    ``-- UHD Device N``)."""
    radios = []
    for block in re.split(r"--[ \t]*UHD Device \d+", text)[1:]:
        fields = dict(re.findall(r"^[ \t]*([A-Za-z_]+):[ \t]*(\S.*?)[ \t]*$", block, re.MULTILINE))
        if fields:
            radios.append(_usrp_from_fields(fields, "uhd_find_devices"))
    return radios


def parse_device_addr(text: str) -> dict[str, str]:
    """``type=b200,serial=123`` -> ``{"type": "b200", "serial": "123"}``."""
    return dict(part.split("=", 1) for part in text.split(",") if "=" in part)


def _usrp_from_fields(fields: dict[str, str], source: str) -> FoundRadio:
    address = ",".join(f"{k}={fields[k]}" for k in ("type", "serial", "addr", "resource") if fields.get(k))
    product = fields.get("product") or fields.get("type") or "USRP"
    extra = f" \"{fields['name']}\"" if fields.get("name") else ""
    return FoundRadio("usrp", address or ",".join(f"{k}={v}" for k, v in fields.items()),
                      f"USRP {product}{extra}", source, fields.get("serial", ""))


def _search_uhd_find_devices(env: SearchEnv, timeout_s: float) -> tuple[list[FoundRadio], str]:
    tool = env.which("uhd_find_devices")
    if not tool:
        return [], "uhd_find_devices: not installed"
    result, why = _run(env, [tool], timeout_s)
    if result is None:
        return [], f"uhd_find_devices: {why}"
    radios = parse_uhd_find_devices(result.stdout)
    if radios or "No UHD Devices Found" in result.stdout + result.stderr or result.returncode == 0:
        return radios, f"uhd_find_devices: {len(radios)} USRP(s)"
    return [], f"uhd_find_devices: failed: {_last_line(result.stderr or result.stdout)}"


_GR_UHD_PROBE = r"""
import json
found, how = None, None
try:
    from gnuradio import uhd
    found = [dict((k, d.get(k)) for k in d.keys()) for d in uhd.find_devices("")]
    how = "gr-uhd"
except Exception as exc:
    first = "%s: %s" % (type(exc).__name__, exc)
    try:  # GNU Radio 3.10.5's find_devices wrapper is broken; use libuhd's C API
        import ctypes, ctypes.util
        lib = ctypes.CDLL(ctypes.util.find_library("uhd") or "libuhd.so")
        vp = ctypes.c_void_p
        lib.uhd_string_vector_make.argtypes = [ctypes.POINTER(vp)]
        lib.uhd_usrp_find.argtypes = [ctypes.c_char_p, ctypes.POINTER(vp)]
        lib.uhd_string_vector_size.argtypes = [vp, ctypes.POINTER(ctypes.c_size_t)]
        lib.uhd_string_vector_at.argtypes = [vp, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
        lib.uhd_string_vector_free.argtypes = [ctypes.POINTER(vp)]
        h = vp()
        if lib.uhd_string_vector_make(ctypes.byref(h)) != 0:
            raise RuntimeError("uhd_string_vector_make failed")
        try:
            if lib.uhd_usrp_find(b"", ctypes.byref(h)) != 0:
                raise RuntimeError("uhd_usrp_find failed")
            n = ctypes.c_size_t()
            lib.uhd_string_vector_size(h, ctypes.byref(n))
            found = []
            buf = ctypes.create_string_buffer(4096)
            for i in range(n.value):
                lib.uhd_string_vector_at(h, i, buf, len(buf))
                found.append(dict(p.split("=", 1) for p in buf.value.decode().split(",") if "=" in p))
        finally:
            lib.uhd_string_vector_free(ctypes.byref(h))
        how = "libuhd"
    except Exception as exc2:
        print(json.dumps({"error": "%s; libuhd: %s: %s" % (first, type(exc2).__name__, exc2)}))
if found is not None:
    print(json.dumps({"how": how, "devices": found}))
"""


def _search_gr_uhd(env: SearchEnv, timeout_s: float) -> tuple[list[FoundRadio], str]:
    python = env.gr_python()
    if not python:
        return [], "gr-uhd find_devices(): skipped (no Python with GNU Radio)"
    result, why = _run(env, [python, "-c", _GR_UHD_PROBE], timeout_s)
    label = f"UHD find_devices() under {python}"
    if result is None:
        return [], f"{label}: {why}"
    answer = _json_line(result.stdout)
    if not isinstance(answer, dict):
        return [], f"{label}: failed: {_last_line(result.stderr or result.stdout)}"
    if "devices" not in answer:
        return [], f"{label}: {answer.get('error')}"
    how = str(answer.get("how") or "gr-uhd")
    radios = [_usrp_from_fields({str(k): str(v) for k, v in d.items()}, how)
              for d in answer["devices"] if isinstance(d, dict)]
    via = " (via libuhd's C API)" if how == "libuhd" else ""
    return radios, f"{label}{via}: {len(radios)} USRP(s)"


# --------------------------------------------------------------------------------------------
# USB (sysfs)
# --------------------------------------------------------------------------------------------


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _search_usb(kind: str, env: SearchEnv) -> tuple[list[FoundRadio], str]:
    root = env.usb_root
    if not root.is_dir():
        return [], f"USB bus ({root}): not available"
    radios = []
    for dev in sorted(root.iterdir()):
        ids = (_read(dev / "idVendor").lower(), _read(dev / "idProduct").lower())
        if ids not in USB_IDS or USB_IDS[ids][0] != kind:
            continue
        model = USB_IDS[ids][1]
        bus, num = _read(dev / "busnum"), _read(dev / "devnum")
        serial = _read(dev / "serial")
        where = f"USB bus {bus} device {num}" + (f", serial {serial}" if serial else "")
        if kind == "pluto":
            # libiio's USB URI is usb:BUS.ADDRESS.INTERFACE; the Pluto's IIO interface is 5
            address = f"usb:{int(bus)}.{int(num)}.5" if bus.isdigit() and num.isdigit() else "usb:"
        else:
            address = "type=b200" + (f",serial={serial}" if serial else "")
        radios.append(FoundRadio(kind, address, f"{model} on {where} ({ids[0]}:{ids[1]})", "usb", serial))
    ids_text = ", ".join(f"{v}:{p}" for (v, p), (k, _) in USB_IDS.items() if k == kind)
    return radios, f"USB bus ({root}) for {ids_text}: {len(radios)} found"


_PLUTO_SEARCHES = (_search_iio_info, _search_gr_iio, _search_iiod)
_USRP_SEARCHES = (_search_uhd_find_devices, _search_gr_uhd)

__all__ = ["IIOD_PORT", "KINDS", "PLUTO_HOSTS", "FoundRadio", "RadioSearch", "SearchEnv", "USB_IDS",
           "find_radios", "iiod_version", "parse_device_addr", "parse_iio_scan", "parse_uhd_find_devices"]
