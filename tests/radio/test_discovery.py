"""Radio discovery with fakes of iio_info / uhd_find_devices, sysfs USB trees and loopback servers,
plus one real, bounded search."""

from __future__ import annotations

import socket
import subprocess
import threading

import pytest

from mtsc_sdr.radio import discovery
from mtsc_sdr.radio.discovery import FoundRadio, RadioSearch, SearchEnv, find_radios
from tests.fakes_radio import usb_tree


# --------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------

_IIO_SCAN = """\
Library version: 0.24 (git tag: v0.24)
Compiled with backends: local xml ip usb
Available contexts:
\t0: 0456:b673 (Analog Devices Inc. PlutoSDR (ADALM-PLUTO)), serial=104473dc5993000d1800 [usb:1.4.5]
\t1: 1234:5678 (Some Other Board), serial=1 [usb:1.9.1]
"""

_UHD_FIND = """\
[INFO] [UHD] linux; GNU C++ version 12.2.0; Boost_107400; UHD_4.3.0.0+ds1-5
--------------------------------------------------
-- UHD Device 0
--------------------------------------------------
Device Address:
    serial: 3150361
    name: MyB210
    product: B210
    type: b200


--------------------------------------------------
-- UHD Device 1
--------------------------------------------------
Device Address:
    serial: 30AD2C5
    addr: 192.168.10.2
    name:
    product: N210r4
    type: usrp2

"""


def test_parse_iio_scan():
    radios = discovery.parse_iio_scan(_IIO_SCAN)
    assert [r.address for r in radios] == ["usb:1.4.5"]
    assert "PlutoSDR" in radios[0].description


def test_parse_uhd_find_devices():
    radios = discovery.parse_uhd_find_devices(_UHD_FIND)
    assert [r.address for r in radios] == ["type=b200,serial=3150361", "type=usrp2,serial=30AD2C5,addr=192.168.10.2"]
    assert radios[0].description == 'USRP B210 "MyB210"'
    assert discovery.parse_uhd_find_devices("No UHD Devices Found\n") == []


class _FakeRun:
    """Stands in for subprocess.run: maps the command's program (or a probe's marker) to output."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, cmd, **kw):
        self.calls.append(cmd)
        assert kw.get("timeout") is not None, "every search must be bounded"
        probe = cmd[-1] if len(cmd) > 1 and cmd[1] == "-c" else ""
        key = "gr-iio" if "get_pluto_uri" in probe else "gr-uhd" if "find_devices" in probe else cmd[0]
        answer = self.answers[key]
        if isinstance(answer, BaseException):
            raise answer
        return subprocess.CompletedProcess(cmd, answer[0], answer[1], answer[2] if len(answer) > 2 else "")


def _env(tmp_path, answers, *, tools=(), python="/fake/gr/python", usb=None, hosts=(), port=1):
    return SearchEnv(which=lambda t: f"/usr/bin/{t}" if t in tools else None, run=_FakeRun(answers),
                     gr_python=lambda: python, usb_root=usb_tree(tmp_path / "usb", usb or {}),
                     pluto_hosts=hosts, iiod_port=port)


class _TcpServer:
    """Loopback server answering every connection with ``reply`` (an IIO daemon or an impostor)."""

    def __init__(self, reply: bytes):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.recv(64)
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def test_find_pluto_with_fakes(tmp_path):
    iiod = _TcpServer(b"0.24 c4498c2\n")
    try:
        env = _env(tmp_path, {"/usr/bin/iio_info": (0, _IIO_SCAN),
                              "gr-iio": (0, 'ERROR: avahi\n{"uri": "usb:1.4.5"}\n')},
                   tools=("iio_info",), hosts=("127.0.0.1",), port=iiod.port,
                   usb={"1-4": ("0456", "b673", "1", "4", "104473")})
        found = find_radios("pluto", env=env)
    finally:
        iiod.close()
    assert isinstance(found, list) and isinstance(found, RadioSearch)
    assert [r.address for r in found] == ["usb:1.4.5", "ip:127.0.0.1"]  # duplicates merged
    assert found[0].source == "iio_info" and found[1].description.startswith("IIO daemon 0.24 c4498c2")
    assert "USB bus" in found.searched[-1] and "not needed" in found.searched[-1]
    assert found.summary().startswith("found 2 Plutos: usb:1.4.5")


def test_find_pluto_none_says_what_was_searched(tmp_path):
    impostor = _TcpServer(b"HTTP/1.1 400 Bad Request\r\n\r\n")  # a proxy accepts any connection
    try:
        env = _env(tmp_path, {"gr-iio": (0, '{"none": "No Pluto device found"}\n')},
                   hosts=("127.0.0.1",), port=impostor.port)
        found = find_radios("pluto", env=env, timeout_s=2.0)
    finally:
        impostor.close()
    assert found == []
    summary = found.summary()
    assert summary.startswith("no Pluto found; searched: iio_info -s (libiio scan): not installed; ")
    assert "gr-iio get_pluto_uri() under /fake/gr/python: No Pluto device found" in summary
    assert "127.0.0.1: not an IIO daemon (answered 'HTTP/1.1 400 Bad Request')" in summary


def test_find_pluto_falls_back_to_usb_and_survives_broken_tools(tmp_path):
    env = _env(tmp_path, {"/usr/bin/iio_info": subprocess.TimeoutExpired("iio_info", 1),
                          "gr-iio": (1, "", "Traceback ...\nImportError: libiio.so.0")},
               tools=("iio_info",), python=None, usb={"3-1": ("0456", "b673", "3", "7", "")})
    found = find_radios("pluto", env=env)
    assert [(r.address, r.source) for r in found] == [("usb:3.7.5", "usb")]
    text = "; ".join(found.searched)
    assert "iio_info -s: timed out" in text and "skipped (no Python with GNU Radio)" in text


def test_find_usrp_with_fakes(tmp_path):
    env = _env(tmp_path, {"/usr/bin/uhd_find_devices": (0, _UHD_FIND),
                          "gr-uhd": (0, '[INFO] [UHD] x\n{"how": "libuhd", "devices": '
                                        '[{"type": "b200", "serial": "3150361", "product": "B210"}]}\n')},
               tools=("uhd_find_devices",), usb={"2-1": ("2500", "0020", "2", "3", "3150361")})
    found = find_radios("usrp", env=env)
    assert [r.address for r in found] == ["type=b200,serial=3150361", "type=usrp2,serial=30AD2C5,addr=192.168.10.2"]
    assert "via libuhd's C API): 1 USRP(s)" in found.searched[1]


def test_find_usrp_none_and_usb_fallback(tmp_path):
    env = _env(tmp_path, {"gr-uhd": (0, '{"error": "AttributeError: x; libuhd: OSError: not found"}\n')})
    found = find_radios("usrp", env=env)
    assert found == [] and found.summary().startswith("no USRP found; searched: uhd_find_devices: not installed; ")
    assert "libuhd: OSError: not found" in found.summary()
    env = _env(tmp_path / "b", {"gr-uhd": (0, '{"how": "gr-uhd", "devices": []}\n')},
               usb={"1-2": ("2500", "0020", "1", "2", "ABC")})
    found = find_radios("usrp", env=env)
    assert [(r.address, r.source) for r in found] == [("type=b200,serial=ABC", "usb")]


def test_find_radios_rejects_unknown_kind():
    with pytest.raises(ValueError, match="pluto"):
        find_radios("hackrf")


def test_real_search_is_bounded_and_explains_itself():
    """The real searches on this machine: each kind reports what it searched (no radio is
    expected in CI; any found must be well formed)."""
    for kind in ("pluto", "usrp"):
        found = find_radios(kind, timeout_s=5.0)
        assert isinstance(found, RadioSearch) and found.kind == kind
        assert len(found.searched) >= 3
        assert all(isinstance(r, FoundRadio) and r.kind == kind and r.address for r in found)
        if not found:
            assert found.summary().startswith(f"no {'Pluto' if kind == 'pluto' else 'USRP'} found; searched: ")


def test_iiod_version_unreachable_is_fast():
    port = socket.create_server(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    version, why = discovery.iiod_version("127.0.0.1", free, 1.0)
    assert version is None and why


def test_discovery_reads_serials_from_the_scans():
    scan = ("\t0: 0456:b673 (Analog Devices Inc. PlutoSDR (ADALM-PLUTO)), serial=104473dc5993000d1800 [usb:1.4.5]\n"
            "\t1: 0456:b673 (Analog Devices Inc. PlutoSDR (ADALM-PLUTO)) [usb:1.5.5]\n")
    assert [r.serial for r in discovery.parse_iio_scan(scan)] == ["104473dc5993000d1800", ""]
    uhd = ("-- UHD Device 0\nDevice Address:\n    serial: 3150361\n    product: B210\n    type: b200\n"
           "-- UHD Device 1\nDevice Address:\n    addr: 192.168.10.2\n    type: usrp2\n")
    assert [r.serial for r in discovery.parse_uhd_find_devices(uhd)] == ["3150361", ""]
