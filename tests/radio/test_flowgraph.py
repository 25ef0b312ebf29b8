"""mtsc_sdr.radio without GNU Radio: the flowgraph registry read from the .grc files, parameter
validation, the launcher's lifecycle (with a stand-in flowgraph script run by this Python), the
``mtsc-sdr flowgraph`` command line, and radio discovery with fakes plus one real search."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from mtsc_sdr import conventions
from mtsc_sdr.radio import flowgraph as fgmod
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

REPO = Path(__file__).resolve().parents[2]
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
