"""The ``mtsc-sdr radios`` command over discovery with fakes."""

from __future__ import annotations

import json

from mtsc_sdr.radio import discovery, radios_cli
from mtsc_sdr.radio.discovery import FoundRadio, RadioSearch, SearchEnv
from tests.fakes_radio import usb_tree


# ------------------------------------------------------------------------------------------------
# mtsc-sdr radios
# ------------------------------------------------------------------------------------------------


def test_radios_lists_what_discovery_finds_with_serials(tmp_path):
    env = SearchEnv(which=lambda tool: None, gr_python=lambda: None, pluto_hosts=(),
                    usb_root=usb_tree(tmp_path, {"1-4": ("0456", "b673", "1", "4", "104400b8399100081200"),
                                                  "2-1": ("2500", "0020", "2", "3", "3150361")}))
    report = radios_cli.list_radios(timeout_s=1.0, env=env)
    assert report["pluto"]["found"] == [{"kind": "pluto", "address": "usb:1.4.5", "serial": "104400b8399100081200",
                                         "description": "ADALM-PLUTO (PlutoSDR) on USB bus 1 device 4, serial "
                                                        "104400b8399100081200 (0456:b673)", "source": "usb"}]
    assert report["usrp"]["found"][0]["address"] == "type=b200,serial=3150361"
    assert report["usrp"]["found"][0]["serial"] == "3150361"
    assert any("iio_info -s (libiio scan): not installed" in s for s in report["pluto"]["searched"])
    text = radios_cli.format_report(report)
    assert "pluto  usb:1.4.5  serial 104400b8399100081200" in text and "(found by usb)" in text
    assert "usrp   type=b200,serial=3150361  serial 3150361" in text


def test_radios_command_says_plainly_when_none_were_found(monkeypatch, capsys):
    from mtsc_sdr.cli import main

    found = {"pluto": RadioSearch("pluto", [FoundRadio("pluto", "ip:192.168.2.1", "IIO daemon 0.25", "iiod")],
                                  ["iio_info -s (libiio scan): not installed", "IIO daemon port 30431 at ..."]),
             "usrp": RadioSearch("usrp", [], ["uhd_find_devices: not installed", "USB bus (/sys): 0 found"])}
    seen = []

    def fake_find(kind, *, timeout_s, env=None):
        seen.append((kind, timeout_s))
        return found[kind]

    monkeypatch.setattr(discovery, "find_radios", fake_find)
    assert main(["radios", "--timeout-s", "2.5"]) == 0
    out = capsys.readouterr().out
    assert seen == [("pluto", 2.5), ("usrp", 2.5)]
    assert "pluto  ip:192.168.2.1  IIO daemon 0.25  (found by iiod)" in out
    assert "no USRP found; searched: uhd_find_devices: not installed; USB bus (/sys): 0 found" in out
    assert main(["radios", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["usrp"] == {"found": [], "searched": found["usrp"].searched,
                              "summary": found["usrp"].summary()}
    assert report["pluto"]["found"][0]["serial"] == ""
