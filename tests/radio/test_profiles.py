"""Radio and client-device profiles (firmware_profiles/): every file loads and validates, requests are
checked against the limits with messages that name the field and the limit, and a broken profile
file names its field."""

from __future__ import annotations

import math
import shutil

import pytest

from mtsc_sdr.config import ConfigError
from mtsc_sdr.radio.profiles import (
    DEFAULT_PROFILE,
    DIR_ENV_VAR,
    DeviceProfile,
    ProfileError,
    RadioProfile,
    RadioSettings,
    device_profile,
    device_profiles,
    profiles_dir,
    radio_profile,
    radio_profiles,
)


def test_every_profile_file_loads_and_validates():
    radios = radio_profiles()
    files = sorted(p.stem for p in (profiles_dir() / "radios").glob("*.yaml"))
    assert sorted(radios) == files and {"pluto-ad9363", "pluto-ad9364", "pluto-2r2t", "usrp-b210"} <= set(radios)
    for name, prof in radios.items():
        assert isinstance(prof, RadioProfile) and prof.name == name
        prof.validate()
        assert prof.max_stream_rate_sps <= prof.rate_sps.max
        assert prof.buffers.rx_samples <= prof.buffers.max_samples
    devices = device_profiles()
    assert sorted(devices) == sorted(p.stem for p in (profiles_dir() / "devices").glob("*.yaml"))
    assert devices, "no device profiles"
    for name, prof in devices.items():
        assert isinstance(prof, DeviceProfile) and prof.name == name and prof.memory_gb > 0
        prof.validate()
    for kind, name in DEFAULT_PROFILE.items():
        assert radio_profile(name).driver == kind


def test_every_radio_profile_resolves_a_request_at_its_own_limits():
    """The corners of each profile are accepted (the limits are inclusive)."""
    for prof in radio_profiles().values():
        for freq, rate, tx, rx in ((prof.freq_hz.min, prof.rate_sps.min, prof.tx_gain_db.min, prof.rx_gain_db.min),
                                   (prof.freq_hz.max, prof.rate_sps.max, prof.tx_gain_db.max, prof.rx_gain_db.max)):
            s = prof.resolve(RadioSettings(freq_hz=freq, rate_sps=rate, tx_gain_db=tx, rx_gain_db=rx))
            assert s.bandwidth_hz in prof.bandwidth_hz


def test_ad9363_refuses_6_ghz_and_names_the_ad9364_profile():
    with pytest.raises(ProfileError) as info:
        radio_profile("pluto-ad9363").resolve(RadioSettings(freq_hz=6e9))
    assert info.value.field == "freq_hz"
    assert str(info.value) == ("freq_hz: 6 GHz is outside pluto-ad9363's range 325 MHz .. 3.8 GHz (AD9363); "
                               "profile pluto-ad9364 reaches 70 MHz .. 6 GHz")
    assert radio_profile("pluto-ad9364").resolve(RadioSettings(freq_hz=6e9)).freq_hz == 6e9
    prof = radio_profile("pluto-ad9364").firmware
    assert any("ad9364" in c for c in prof.commands) and prof.check


def test_bandwidth_follows_the_rate_clipped_into_the_profile_range():
    ad9363 = radio_profile("pluto-ad9363")                 # bandwidth 200 kHz .. 20 MHz
    assert ad9363.resolve(RadioSettings(rate_sps=2e6)).bandwidth_hz == 2e6
    assert ad9363.resolve(RadioSettings(rate_sps=30e6)).bandwidth_hz == 20e6
    x310 = radio_profile("usrp-x310")                      # rate from 196 ksps, bandwidth from 200 kHz
    assert x310.resolve(RadioSettings(rate_sps=196_078.4, tx_gain_db=0.0, rx_gain_db=0.0)).bandwidth_hz == 200e3
    # an explicit bandwidth is never clipped: outside the range it is refused
    assert ad9363.resolve(RadioSettings(rate_sps=2e6, bandwidth_hz=1.5e6)).bandwidth_hz == 1.5e6
    with pytest.raises(ProfileError, match=r"^bandwidth_hz: 30 MHz is outside pluto-ad9363's range 200 kHz \.\. "
                                           r"20 MHz \(AD9363\); profile pluto-ad9364 reaches 200 kHz \.\. 56 MHz$"):
        ad9363.resolve(RadioSettings(bandwidth_hz=30e6))


def test_defaults_filled_and_other_fields_checked():
    prof = radio_profile("pluto-ad9363")
    s = prof.resolve(RadioSettings())
    assert (s.rx_buffer_samples, s.tx_buffer_samples) == (prof.buffers.rx_samples, prof.buffers.tx_samples)
    for settings, field, message in (
            (RadioSettings(rate_sps=100e6), "rate_sps", "100 Msps is outside pluto-ad9363's range 521 ksps .. "
                                                        "61.44 Msps"),
            (RadioSettings(tx_gain_db=5.0), "tx_gain_db", "5 dB is outside pluto-ad9363's range -89.75 dB .. 0 dB"),
            (RadioSettings(rx_gain_db=80.0), "rx_gain_db", "80 dB is outside"),
            (RadioSettings(gain_mode="agc"), "gain_mode", "'agc' is not a gain mode of pluto-ad9363 (manual, "
                                                          "slow_attack, fast_attack, hybrid)"),
            (RadioSettings(rx_buffer_samples=prof.buffers.max_samples + 1), "rx_buffer_samples",
             f"{prof.buffers.max_samples + 1} samples is outside pluto-ad9363's buffer range 1 .. "),
            (RadioSettings(freq_hz=math.nan), "freq_hz", "must be a finite number, got nan"),
            (RadioSettings(freq_hz="2.4e9"), "freq_hz", "must be a finite number, got '2.4e9'")):
        with pytest.raises(ProfileError) as info:
            prof.resolve(settings)
        assert info.value.field == field and message in str(info.value), str(info.value)
    with pytest.raises(ProfileError, match="gain_mode: 'agc' is not a gain mode of usrp-n210 \\(manual, no AGC\\)"):
        radio_profile("usrp-n210").resolve(RadioSettings(tx_gain_db=0.0, rx_gain_db=0.0, gain_mode="agc"))


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"radio_profile: no radio profile 'pluto-ad9999'; known: .*pluto-ad9363"):
        radio_profile("pluto-ad9999")
    with pytest.raises(ConfigError, match=r"device_profile: no device profile 'tx2'; known: .*x86-cpu"):
        device_profile("tx2")


def _copy_profiles(tmp_path, monkeypatch):
    dst = tmp_path / "profiles"
    shutil.copytree(profiles_dir(), dst)
    monkeypatch.setenv(DIR_ENV_VAR, str(dst))
    return dst


@pytest.mark.parametrize("edit, field, message", [
    (("freq_hz: {min: 325.0e+6, max: 3.8e+9}", "freq_hz: {min: low, max: 3.8e+9}"), "freq_hz.min",
     "expected a number, got 'low'"),
    (("freq_hz: {min: 325.0e+6, max: 3.8e+9}", "freq_hz: {min: 3.8e+9, max: 325.0e+6}"), "freq_hz",
     "min 3800000000.0 > max"),
    (("driver: pluto", "driver: hackrf"), "driver", "expected one of ['pluto', "),
    (("max_stream_rate_sps: 4.0e+6", "max_stream_rate_sps: 100.0e+6"), "max_stream_rate_sps",
     "must be in (0, rate_sps.max = 61440000.0]"),
    (("tx_channels: 1", "tx_chanels: 1"), "tx_chanels", "unknown field (known: "),
    (("buffers: {rx_samples: 32768,", "buffers: {rx_samples: 0,"), "buffers.rx_samples", "must be >= 1"),
    (("gain_mode: manual", "gain_mode: fast"), "gain_mode", "must be 'manual' or one of agc_modes"),
    (("name: pluto-ad9363", "name: pluto"), "pluto-ad9363.yaml: name", "must match the file name 'pluto-ad9363'"),
])
def test_a_corrupt_profile_names_its_field(tmp_path, monkeypatch, edit, field, message):
    dst = _copy_profiles(tmp_path, monkeypatch)
    f = dst / "radios" / "pluto-ad9363.yaml"
    text = f.read_text()
    assert edit[0] in text, edit[0]
    f.write_text(text.replace(edit[0], edit[1]))
    with pytest.raises(ConfigError) as info:
        radio_profiles()
    assert info.value.field.endswith(field) and message in str(info.value), str(info.value)
    if not field.endswith(": name"):                  # the same error through the file path
        with pytest.raises(ConfigError) as info:
            radio_profile(f)
        assert info.value.field == field


def test_a_profile_that_is_not_yaml_says_so(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml is not valid YAML"):
        radio_profile(bad)


def test_a_lab_profile_in_its_own_directory_is_offered_when_the_request_needs_it(tmp_path, monkeypatch):
    dst = _copy_profiles(tmp_path, monkeypatch)
    text = (dst / "radios" / "pluto-ad9364.yaml").read_text()
    (dst / "radios" / "pluto-ad9364.yaml").unlink()
    (dst / "radios" / "pluto-wide.yaml").write_text(text.replace("name: pluto-ad9364", "name: pluto-wide"))
    with pytest.raises(ProfileError, match="profile pluto-wide reaches 70 MHz .. 6 GHz"):
        radio_profile("pluto-ad9363").resolve(RadioSettings(freq_hz=5e9))
