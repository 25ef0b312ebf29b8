"""mtsc_sdr.radio without GNU Radio: the flowgraph registry read from the .grc files, parameter
validation, the launcher's lifecycle (with a stand-in flowgraph script run by this Python), the
``mtsc-sdr flowgraph`` command line, and radio discovery with fakes plus one real search."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mtsc_sdr import conventions
from mtsc_sdr.radio import cli as radio_cli
from mtsc_sdr.radio import discovery
from mtsc_sdr.radio import flowgraph as fgmod
from mtsc_sdr.radio.discovery import FoundRadio, RadioSearch, SearchEnv, find_radios
from mtsc_sdr.radio.flowgraph import (
    FLOWGRAPHS,
    READY_MARKER,
    Flowgraph,
    FlowgraphFailed,
    FlowgraphParamError,
    UnknownFlowgraph,
    last_error_line,
    parse_eng_float,
    split_param_args,
)
from mtsc_sdr.radio.grpython import GnuRadioNotFound

from fakes_radio import usb_tree

REPO = Path(__file__).resolve().parents[1]
EXPECTED = {"sim_channel", "pluto_tx", "pluto_rx", "usrp_tx", "usrp_rx"}


# --------------------------------------------------------------------------------------------
# Registry (parsed from the real .grc files)
# --------------------------------------------------------------------------------------------


def test_registry_has_every_flowgraph_with_its_generated_python():
    assert set(FLOWGRAPHS) == EXPECTED
    for name, spec in FLOWGRAPHS.items():
        assert spec.grc == REPO / "flowgraphs" / f"{name}.grc"
        assert spec.script.is_file(), f"{spec.script} missing: run grcc"
        assert spec.ready_marker, f"{name}.grc lacks the snippet that prints the ready marker"
        text = spec.script.read_text()
        assert READY_MARKER in text
        assert "generate_options: no_gui" in spec.grc.read_text()
        assert "run_options: run" in spec.grc.read_text()


def test_flowgraph_parameters_and_endpoints():
    sim = FLOWGRAPHS["sim_channel"]
    assert set(sim.params) == {"in_addr", "out_addr", "rate_sps", "snr_db", "payload_power", "cfo_hz",
                               "sro_ppm", "taps", "fading", "k_factor_db", "doppler_hz", "seed"}
    assert sim.binds == ("out_addr",) and sim.connects == ("in_addr",)
    assert sim.params["snr_db"].type == "eng_float" and sim.params["seed"].type == "intx"
    assert sim.params["snr_db"].option == "--snr-db"
    assert {"uri", "lo_freq_hz", "rate_sps", "bandwidth_hz", "tx_atten_db", "buffer_size", "in_addr"} == \
        set(FLOWGRAPHS["pluto_tx"].params)
    assert {"uri", "lo_freq_hz", "rate_sps", "bandwidth_hz", "rx_gain_db", "buffer_size", "out_addr"} == \
        set(FLOWGRAPHS["pluto_rx"].params)
    assert FLOWGRAPHS["pluto_tx"].params["uri"].default == "ip:192.168.2.1"
    for name in ("usrp_tx", "usrp_rx"):
        assert {"device_args", "lo_freq_hz", "rate_sps", "gain_db", "antenna"} <= set(FLOWGRAPHS[name].params)
    assert FLOWGRAPHS["pluto_rx"].binds == ("out_addr",) and FLOWGRAPHS["usrp_tx"].connects == ("in_addr",)


def test_pluto_rx_uses_manual_gain():
    text = FLOWGRAPHS["pluto_rx"].script.read_text()
    assert "set_gain_mode(0, 'manual')" in text and "set_gain(0, rx_gain_db)" in text


def test_sim_channel_noise_voltage_follows_conventions():
    """The .grc's noise_voltage expression is conventions.noise_voltage, and its default payload
    power is conventions.PAYLOAD_POWER."""
    import yaml

    data = yaml.safe_load(FLOWGRAPHS["sim_channel"].grc.read_text())
    variables = {b["name"]: b["parameters"]["value"] for b in data["blocks"] if b["id"] == "variable"}
    assert float(FLOWGRAPHS["sim_channel"].params["payload_power"].default) == pytest.approx(conventions.PAYLOAD_POWER)
    for snr_db in (-5.0, 0.0, 7.5, 20.0, 40.0):
        for power in (conventions.PAYLOAD_POWER, 1.0):
            value = eval(variables["noise_voltage"], {}, {"payload_power": power, "snr_db": snr_db})  # our own .grc
            assert value == pytest.approx(conventions.noise_voltage(snr_db, power), rel=1e-12)
    assert eval(variables["epsilon"], {}, {"sro_ppm": 50.0}) == pytest.approx(1.00005)
    assert eval(variables["cfo_norm"], {}, {"cfo_hz": 1000.0, "rate_sps": 1e6}) == pytest.approx(1e-3)


def test_unknown_flowgraph_names_the_known_ones():
    with pytest.raises(UnknownFlowgraph, match="no flowgraph named 'nope'.*sim_channel"):
        FLOWGRAPHS["nope"]


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


def test_command_args_accepts_both_spellings_and_validates_types():
    spec = FLOWGRAPHS["sim_channel"]
    args = spec.command_args({"snr_db": 20, "seed": "0x10", "--cfo-hz": "-1.5k",
                              "taps": "1, 0.5j", "in_addr": "tcp://127.0.0.1:1"})
    assert args == ["--snr-db=20.0", "--seed=16", "--cfo-hz=-1500.0", "--taps=1, 0.5j",
                    "--in-addr=tcp://127.0.0.1:1"]
    assert spec.command_args({"snr-db": -3}) == ["--snr-db=-3.0"]
    assert spec.command_args({"seed": 7.0}) == ["--seed=7"]


@pytest.mark.parametrize("params, message", [
    ({"snr_dbb": 3}, r"no parameter 'snr_dbb' \(its parameters: .*snr_db"),
    ({"snr_db": "high"}, r"snr_db: expected a number, got 'high'"),
    ({"snr_db": float("nan")}, r"snr_db: expected a number"),
    ({"snr_db": True}, r"snr_db: expected a number"),
    ({"seed": 1.5}, r"seed: expected an integer, got 1.5"),
    ({"seed": "one"}, r"seed: expected an integer"),
    ({"snr_db": 1, "snr-db": 2}, r"given twice"),
])
def test_bad_parameters_are_named(params, message):
    with pytest.raises(FlowgraphParamError, match=message):
        FLOWGRAPHS["sim_channel"].command_args(params)
    with pytest.raises(FlowgraphParamError, match=message):
        Flowgraph("sim_channel", params)  # rejected before anything is launched


def test_parse_eng_float():
    assert parse_eng_float("2.4G") == pytest.approx(2.4e9)
    assert parse_eng_float("100k") == pytest.approx(1e5)
    assert parse_eng_float("1e6") == 1e6
    assert parse_eng_float("-3") == -3.0
    with pytest.raises(ValueError):
        parse_eng_float("abc")


def test_split_param_args():
    assert split_param_args(["--snr-db", "20", "--seed=3", "--cfo_hz", "-5"]) == \
        {"snr-db": "20", "seed": "3", "cfo_hz": "-5"}
    for bad, message in ((["20"], "expected --name VALUE"), (["--snr-db"], "needs a value"),
                         (["--a", "1", "--a", "2"], "given twice"), (["--", "x"], "expected --name")):
        with pytest.raises(FlowgraphParamError, match=message):
            split_param_args(bad)


def test_last_error_line():
    out = "noise\nTraceback (most recent call last):\n  File \"x\", line 1\nValueError: bad taps\n"
    assert last_error_line(out) == "ValueError: bad taps"
    assert last_error_line("a\nUHD error\n\n") == "UHD error"
    assert last_error_line("") == ""


# --------------------------------------------------------------------------------------------
# Launcher lifecycle with a stand-in flowgraph (this Python, no GNU Radio)
# --------------------------------------------------------------------------------------------

_FAKE_GRC = """\
options:
  parameters: {id: fake, title: Fake flowgraph, generate_options: no_gui, run_options: run}
  states: {coordinate: [8, 8], rotation: 0, state: enabled}
blocks:
- name: mode
  id: parameter
  parameters: {label: Behaviour, type: str, value: run}
  states: {coordinate: [8, 100], rotation: 0, state: enabled}
- name: n
  id: parameter
  parameters: {label: A number, type: eng_float, value: '1.0'}
  states: {coordinate: [8, 200], rotation: 0, state: enabled}
- name: announce_running
  id: snippet
  parameters: {section: main_after_start, priority: '0', code: "print('mtsc-sdr: flowgraph running', flush=True)"}
  states: {coordinate: [8, 300], rotation: 0, state: enabled}
connections: []
metadata: {file_format: 1}
"""

# Mimics a generated no_gui script: SIGINT/SIGTERM stop it with exit code 0.
_FAKE_PY = """\
import argparse, signal, sys, time
p = argparse.ArgumentParser()
p.add_argument("--mode", default="run")
p.add_argument("--n", type=float, default=1.0)
o = p.parse_args()
def stop(sig, frame):
    print("stopping on signal", sig, flush=True)
    sys.exit(0)
if o.mode == "crash":
    print("starting", flush=True)
    raise ValueError("n must be positive, got %g" % o.n)
signal.signal(signal.SIGINT, signal.SIG_IGN if o.mode in ("ignore_int", "stubborn") else stop)
signal.signal(signal.SIGTERM, signal.SIG_IGN if o.mode == "stubborn" else stop)
if o.mode != "silent":
    print("mtsc-sdr: flowgraph running", flush=True)
if o.mode == "die_later":
    time.sleep(0.3)
    print("RuntimeError: device vanished", file=sys.stderr, flush=True)
    sys.exit(3)
if o.mode == "finish":
    sys.exit(0)
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def fake_dir(tmp_path, monkeypatch):
    d = tmp_path / "flowgraphs"
    d.mkdir()
    (d / "fake.grc").write_text(_FAKE_GRC)
    (d / "fake.py").write_text(_FAKE_PY)
    monkeypatch.setenv(fgmod.DIR_ENV_VAR, str(d))
    return d


def _fake(mode: str, **kw) -> Flowgraph:
    kw.setdefault("stop_timeout_s", 1.0)
    return Flowgraph("fake", {"mode": mode}, python=sys.executable, **kw)


def test_fake_registry(fake_dir):
    assert list(FLOWGRAPHS) == ["fake"]
    spec = FLOWGRAPHS["fake"]
    assert list(spec.params) == ["mode", "n"] and spec.ready_marker and spec.script == fake_dir / "fake.py"


def test_start_check_and_clean_stop(fake_dir):
    fg = _fake("run").start()
    assert fg.running and fg.pid
    argv = fg.argv[3:] if fg.argv[0] == "stdbuf" else fg.argv        # stdbuf -o0 -e0: C stdio unbuffered
    assert argv[:3] == [sys.executable, "-u", str(fake_dir / "fake.py")] and "--mode=run" in fg.argv
    fg.check()
    assert fg.stop() == 0
    assert not fg.running and "stopping on signal 2" in fg.output_tail()
    fg.check()  # stopped on request: not a failure
    assert fg.stop() == 0  # idempotent


def test_context_manager_stops(fake_dir):
    with _fake("run") as fg:
        pid = fg.pid
        assert fg.running
    assert fg.returncode == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_stop_escalates_to_sigterm_then_sigkill(fake_dir):
    fg = _fake("ignore_int", stop_timeout_s=0.3).start()
    assert fg.stop() == 0  # SIGINT ignored, SIGTERM handled
    assert "stopping on signal 15" in fg.output_tail()
    fg = _fake("stubborn", stop_timeout_s=0.3).start()
    assert fg.stop() == -9


def test_crash_during_startup_is_reported_with_its_output(fake_dir):
    with pytest.raises(FlowgraphFailed) as info:
        _fake("crash").start()
    err = info.value
    assert err.returncode == 1 and err.name == "fake"
    assert "ValueError: n must be positive" in err.output_tail and "starting" in err.output_tail
    assert "exited with code 1 during startup: ValueError: n must be positive, got 1" in err.summary
    assert "--- last output lines ---" in str(err)


def test_death_after_start_is_reported_by_check(fake_dir):
    fg = _fake("die_later").start()
    assert fg.wait(10) == 3
    with pytest.raises(FlowgraphFailed, match="exited unexpectedly with code 3: RuntimeError: device vanished"):
        fg.check()
    with pytest.raises(FlowgraphFailed):
        with _fake("die_later") as fg2:
            fg2.wait(10)


def test_killed_flowgraph_is_reported(fake_dir):
    fg = _fake("run").start()
    os.kill(fg.pid, 9)
    fg.wait(10)
    with pytest.raises(FlowgraphFailed) as info:
        fg.check()
    assert info.value.returncode == -9


def test_startup_timeout_stops_it(fake_dir):
    with pytest.raises(FlowgraphFailed, match="did not report running within 0.5 s"):
        _fake("silent", startup_timeout_s=0.5, stop_timeout_s=0.5).start()


def test_missing_interpreter_and_missing_gnuradio(fake_dir, monkeypatch):
    with pytest.raises(FlowgraphFailed, match="could not start /nonexistent/python"):
        Flowgraph("fake", python="/nonexistent/python").start()

    def no_gr():
        raise GnuRadioNotFound("GNU Radio 3.10 was not found. On Debian/Ubuntu install it with ...")

    monkeypatch.setattr(fgmod, "require_gr_python", no_gr)
    with pytest.raises(GnuRadioNotFound, match="apt-get|install"):
        Flowgraph("fake").start()


def test_echo_copies_output(fake_dir):
    import io

    buf = io.StringIO()
    fg = Flowgraph("fake", {"mode": "finish"}, python=sys.executable, echo=buf).start()
    assert fg.wait(10) == 0
    assert "[fake] mtsc-sdr: flowgraph running" in buf.getvalue()


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _cli(argv: list[str]) -> argparse.Namespace:
    from mtsc_sdr.cli import build_parser

    parser, subparsers = build_parser()
    radio_cli.add_arguments(subparsers["flowgraph"])
    return parser.parse_args(["flowgraph", *argv])


def test_cli_list(capsys):
    assert radio_cli.run(_cli(["--list"])) == 0
    out = capsys.readouterr().out
    for name in EXPECTED:
        assert f"{name}: " in out
    assert "--snr-db" in out and "--rx-gain-db" in out
    assert radio_cli.run(_cli(["sim_channel", "--list", "--json"])) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["sim_channel"] and data["sim_channel"]["params"]["snr_db"]["option"] == "--snr-db"


def test_cli_errors(capsys):
    assert radio_cli.run(_cli(["sim_channel", "--bogus", "3"])) == 2
    assert "has no parameter 'bogus'" in capsys.readouterr().err
    assert radio_cli.run(_cli(["sim_channel", "--snr-db", "loud"])) == 2
    assert "snr_db: expected a number, got 'loud'" in capsys.readouterr().err
    assert radio_cli.run(_cli(["nope"])) == 2
    assert "no flowgraph named 'nope'" in capsys.readouterr().err
    assert radio_cli.run(_cli([])) == 2
    assert "no flowgraph NAME given" in capsys.readouterr().err


def test_cli_runs_until_interrupted(fake_dir, capsys, monkeypatch):
    """Foreground run: launcher options may follow NAME; Ctrl-C stops it cleanly (exit 0)."""
    calls = {"n": 0}
    real_wait = Flowgraph.wait

    def wait_then_interrupt(self, timeout_s=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_wait(self, 0.05)

    monkeypatch.setattr(Flowgraph, "wait", wait_then_interrupt)
    args = _cli(["fake", "--n", "2k", "--python", sys.executable, "--stop-timeout-s", "2"])
    assert args.python is None  # taken from after NAME by the launcher
    assert radio_cli.run(args) == 0
    err = capsys.readouterr().err
    assert "fake running (pid" in err and "fake stopped" in err and "[fake] stopping on signal 2" in err


def test_cli_reports_failure(fake_dir, capsys):
    assert radio_cli.run(_cli(["fake", "--mode", "crash", "--python", sys.executable])) == 1
    err = capsys.readouterr().err
    assert "exited with code 1 during startup: ValueError: n must be positive" in err
    assert radio_cli.run(_cli(["fake", "--mode", "die_later", "--python", sys.executable, "--quiet"])) == 3
    err = capsys.readouterr().err
    assert "exited unexpectedly with code 3" in err and "RuntimeError: device vanished" in err


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
