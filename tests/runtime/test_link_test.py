"""End to end across processes: link_tx -> software channel process -> PHY receiver."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mtsc_sdr.config import ConfigError
from mtsc_sdr.runtime.link_test import LinkTestConfig, run_link_test
from mtsc_sdr.runtime.link_tx import frame_train, payload_for


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mtsc_sdr.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_payloads_are_reproducible_unit_power_and_distinct():
    a = payload_for(7, 3, 4096)
    assert a.dtype.name == "complex64"
    assert abs(float((abs(a) ** 2).mean()) - 1.0) < 0.05
    assert (a == payload_for(7, 3, 4096)).all()
    assert not (a == payload_for(7, 4, 4096)).any()


def test_frame_train_layout():
    samples, slot = frame_train(seed=1, frames=3, payload_len=100, gap=50)
    assert samples.dtype.name == "complex64"
    assert (samples[:50] == 0).all() and (samples[50:60] != 0).all()
    assert samples.size == 3 * slot + 4096


def test_link_test_software_channel_recovers_every_frame_with_impairments():
    cfg = LinkTestConfig(frames=60, snr_db=20.0, cfo_hz=12_000.0, sro_ppm=30.0, seed=5)
    r = run_link_test(cfg)
    assert r["frames_sent"] == 60
    assert r["frames_detected"] == 60
    assert r["frames_header_ok"] == 60
    assert abs(r["snr_est_db"] - 20.0) < 1.0
    assert -21.5 < r["evm_db"] < -18.0  # noise-limited: about -SNR
    assert abs(r["cfo_est_hz"] - 12_000.0) < 200.0
    assert r["throughput_msps"] > 0
    metrics = {row["metric"] for row in r["rows"]}
    assert {"detected_ratio", "header_ok_ratio", "evm_db", "snr_est_db", "msps"} <= metrics
    assert set(r["meta"]) >= {"config", "seeds", "versions", "machine"}


def test_link_test_cli_json_keys():
    out = _cli("link-test", "--channel", "software", "--snr-db", "15", "--frames", "20", "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    for key in ("frames_sent", "frames_detected", "frames_header_ok", "evm_db", "snr_est_db",
                "snr_set_db", "throughput_msps"):
        assert key in r
    assert r["frames_header_ok"] == 20 and r["snr_set_db"] == 15


def test_bad_configuration_names_the_field():
    with pytest.raises(ConfigError, match="frames"):
        from mtsc_sdr.config import from_dict
        from_dict(LinkTestConfig, {"frames": 0})
    out = _cli("link-test", "--frames", "0")
    assert out.returncode == 2
    assert "frames" in out.stderr


def test_bad_channel_profile_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("fading: {k_factor_db: high}\n")
    out = _cli("channel", "--in", "tcp://127.0.0.1:1", "--out", "tcp://127.0.0.1:2", "--profile", str(bad))
    assert out.returncode == 2
    assert "fading.k_factor_db" in out.stderr


def test_link_test_gnuradio_sim_flowgraph_recovers_every_frame_at_20db(gr_python):
    """The GNU Radio sim_channel flowgraph (real GNU Radio) between our processes: every frame at 20 dB."""
    cfg = LinkTestConfig(channel="gnuradio-sim", frames=100, snr_db=20.0, cfo_hz=8_000.0, sro_ppm=20.0, seed=3)
    r = run_link_test(cfg)
    assert r["frames_sent"] == 100
    assert r["frames_header_ok"] == 100
    assert abs(r["snr_est_db"] - 20.0) < 1.0
    assert abs(r["cfo_est_hz"] - 8_000.0) < 200.0


@pytest.mark.parametrize("kind, label, gain", [("pluto", "Pluto", "-10"), ("usrp", "USRP", "40")])
def test_radio_link_without_radio_fails_fast_saying_what_was_searched(kind, label, gain):
    out = _cli("link-test", "--channel", kind, "--frames", "5", "--tx-gain-db", gain, timeout=60)   # within the profile
    assert out.returncode == 1
    assert f"no {label} found; searched:" in out.stderr
    assert "--radio-args" in out.stderr


def test_dead_channel_process_is_reported_by_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("awgn: {snr_db: loud}\n")
    out = _cli("link-test", "--profile", str(bad), "--frames", "5", timeout=60)
    assert out.returncode == 1
    assert "software channel" in out.stderr and "awgn.snr_db" in out.stderr


def test_missing_gnuradio_says_how_to_install(monkeypatch):
    monkeypatch.setenv("MTSC_GR_PYTHON", "/nonexistent/python")
    out = _cli("link-test", "--channel", "gnuradio-sim", "--frames", "5", timeout=60)
    assert out.returncode == 1
    assert "apt-get install gnuradio" in out.stderr and "MTSC_GR_PYTHON" in out.stderr


def test_radio_settings_outside_the_profile_are_refused_before_any_radio_is_searched(monkeypatch):
    from mtsc_sdr.radio import links
    from mtsc_sdr.radio.profiles import ProfileError

    def no_search(*a, **k):
        raise AssertionError("discovery ran for a request the profile refuses")

    monkeypatch.setattr(links, "find_radios", no_search)
    with pytest.raises(ProfileError, match=r"freq_hz: 6 GHz is outside pluto-ad9363's range .* pluto-ad9364 reaches"):
        run_link_test(LinkTestConfig(channel="pluto", lo_freq_hz=6e9, frames=5))
    with pytest.raises(ProfileError, match=r"tx_gain_db: -10 dB is outside usrp-b210's range 0 dB"):
        run_link_test(LinkTestConfig(channel="usrp", frames=5))                 # the default gain is a Pluto's
    with pytest.raises(ProfileError, match=r"freq_hz: .* outside usrp-n210's range"):
        run_link_test(LinkTestConfig(channel="usrp", lo_freq_hz=5e9, tx_gain_db=10, radio_profile="usrp-n210"))
