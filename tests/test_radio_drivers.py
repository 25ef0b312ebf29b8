"""The direct radio drivers (PlutoRadio over pyadi-iio, UsrpRadio over UHD) against fakes of the
vendor libraries (tests/fakes_radio.py), the real vendor libraries where importable (no device: a
clear RadioError), and the ``mtsc-sdr radios`` command."""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fakes_radio import DMA_OVERFLOW_BIT, DMA_STATUS_REGISTER, FakeAdi, FakeUhd, tone, usb_tree
from mtsc_sdr.radio import discovery, radios_cli
from mtsc_sdr.radio import usrp as usrp_mod
from mtsc_sdr.radio.discovery import FoundRadio, RadioSearch, SearchEnv
from mtsc_sdr.radio.driver import RadioDisconnected, RadioError, RadioTimeout, open_radio
from mtsc_sdr.radio.pluto import PlutoRadio
from mtsc_sdr.radio.profiles import ProfileError, RadioSettings, radio_profile
from mtsc_sdr.radio.usrp import UsrpRadio

PLUTO = RadioSettings(freq_hz=2.4e9, rate_sps=2e6, tx_gain_db=-10.0, rx_gain_db=30.0, rx_buffer_samples=1000)
USRP = RadioSettings(freq_hz=2.4e9, rate_sps=2e6, tx_gain_db=10.0, rx_gain_db=30.0, rx_buffer_samples=1000)


def pluto(fake: FakeAdi, profile: str = "pluto-ad9363", settings: RadioSettings | None = PLUTO, **kw) -> PlutoRadio:
    radio = PlutoRadio("ip:192.168.2.1", radio_profile(profile), adi_module=fake, **kw)
    if settings is not None:
        radio.configure(settings)
    return radio


def usrp(fake: FakeUhd, profile: str = "usrp-b210", settings: RadioSettings | None = USRP, **kw) -> UsrpRadio:
    radio = UsrpRadio("type=b200", radio_profile(profile), uhd_module=fake, **kw)
    if settings is not None:
        radio.configure(settings)
    return radio


def expected(signal, start: int, n: int, scale: float) -> np.ndarray:
    """What the fake delivers for samples start .. start+n, quantized to ``scale`` steps per 1.0."""
    x = signal(np.arange(start, start + n))
    return (np.rint(x.real * scale) + 1j * np.rint(x.imag * scale)) / scale


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------


def test_pluto_configure_sets_every_attribute_with_the_types_pyadi_iio_takes():
    fake = FakeAdi()
    radio = pluto(fake, settings=None)
    assert fake.sets() == []
    resolved = radio.configure(RadioSettings(freq_hz=915e6, rate_sps=3e6, tx_gain_db=-20.5, rx_gain_db=40.0))
    attrs = fake.device._attrs
    assert {k: attrs[k] for k in ("rx_lo", "tx_lo", "sample_rate", "rx_rf_bandwidth", "tx_rf_bandwidth",
                                  "gain_control_mode_chan0", "rx_hardwaregain_chan0", "tx_hardwaregain_chan0",
                                  "rx_buffer_size")} == {
        "rx_lo": 915_000_000, "tx_lo": 915_000_000, "sample_rate": 3_000_000, "rx_rf_bandwidth": 3_000_000,
        "tx_rf_bandwidth": 3_000_000, "gain_control_mode_chan0": "manual", "rx_hardwaregain_chan0": 40.0,
        "tx_hardwaregain_chan0": -20.5, "rx_buffer_size": 32768}
    # the mode is set before the gain (the real setter ignores a gain outside manual mode)
    names = [e[1] for e in fake.sets()]
    assert names.index("gain_control_mode_chan0") < names.index("rx_hardwaregain_chan0")
    assert resolved.bandwidth_hz == 3e6 and radio.settings == resolved
    # the receive buffer is sized when created: it is destroyed before the new size is set
    assert fake.log.index(("call", "rx_destroy_buffer")) < fake.log.index(("set", "rx_buffer_size", 32768))
    # the stale overflow bit is cleared
    assert ("call", "reg_write", DMA_STATUS_REGISTER, DMA_OVERFLOW_BIT) in fake.log


def test_pluto_agc_mode_leaves_the_receive_gain_to_the_agc():
    fake = FakeAdi()
    pluto(fake, settings=RadioSettings(gain_mode="slow_attack"))
    assert fake.device._attrs["gain_control_mode_chan0"] == "slow_attack"
    assert "rx_hardwaregain_chan0" not in [e[1] for e in fake.sets()]


def test_pluto_2r2t_opens_an_ad9361_and_uses_channel_0():
    fake = FakeAdi()
    radio = pluto(fake, profile="pluto-2r2t")
    assert fake.calls("ad9361") == [("call", "ad9361", "ip:192.168.2.1")]
    assert fake.device._attrs["rx_enabled_channels"] == [0] and fake.device._attrs["tx_enabled_channels"] == [0]
    x = radio.receive(1500)
    assert x.shape == (1500,) and x.dtype == np.complex64
    radio.transmit(np.full(10, 0.5, np.complex64))
    assert len(fake.transmitted) == 1


def test_usrp_configure_calls_every_setter_on_channel_0():
    fake = FakeUhd()
    radio = usrp(fake, settings=None)
    assert fake.log == [("call", "MultiUSRP", "type=b200")]
    radio.configure(RadioSettings(freq_hz=5.8e9, rate_sps=10e6, bandwidth_hz=8e6, tx_gain_db=40.0, rx_gain_db=20.0))
    assert fake.device.values == {"set_rx_rate": 10e6, "set_tx_rate": 10e6, "set_rx_freq": 5.8e9,
                                  "set_tx_freq": 5.8e9, "set_rx_bandwidth": 8e6, "set_tx_bandwidth": 8e6,
                                  "set_rx_agc": False, "set_rx_gain": 20.0, "set_tx_gain": 40.0}
    assert all(e[-1] == 0 for e in fake.log[1:]), "every setter on channel 0"


def test_usrp_agc_mode_and_a_daughterboard_without_agc():
    fake = FakeUhd()
    usrp(fake, settings=RadioSettings(tx_gain_db=10.0, gain_mode="agc"))
    assert fake.device.values["set_rx_agc"] is True and "set_rx_gain" not in fake.device.values
    fake = FakeUhd(has_agc=False)                     # N210 + SBX: set_rx_agc would raise
    usrp(fake, profile="usrp-n210", settings=RadioSettings(tx_gain_db=10.0, rx_gain_db=20.0))
    assert "set_rx_agc" not in fake.device.values and fake.device.values["set_rx_gain"] == 20.0


def test_requests_outside_the_profile_are_refused_before_the_device_is_touched():
    fake = FakeAdi()
    radio = pluto(fake, settings=None)
    with pytest.raises(ProfileError) as info:
        radio.configure(RadioSettings(freq_hz=6e9))
    assert info.value.field == "freq_hz"
    assert "3.8 GHz" in str(info.value) and "pluto-ad9364" in str(info.value)
    assert fake.sets() == [] and radio.settings is None
    with pytest.raises(RadioError, match="configure"):
        radio.receive(10)                              # nothing was configured
    ufake = FakeUhd()
    radio = usrp(ufake, settings=None)
    with pytest.raises(ProfileError, match=r"tx_gain_db: -10 dB is outside usrp-b210's range 0 dB \.\. 89\.75 dB"):
        radio.configure(RadioSettings())              # the default TX gain is a Pluto's (<= 0 dB)
    assert ufake.log == [("call", "MultiUSRP", "type=b200")]


def test_a_device_error_while_configuring_is_a_radio_error_naming_it():
    from dataclasses import replace

    from mtsc_sdr.radio.profiles import Limits

    fake = FakeAdi()
    loose = replace(radio_profile("pluto-ad9363"), rate_sps=Limits(500e3, 61.44e6))   # a profile looser than pyadi-iio
    radio = PlutoRadio("ip:192.168.2.1", loose, adi_module=fake)
    with pytest.raises(RadioError, match=r"pluto ip:192\.168\.2\.1: configure failed: .*521e3"):
        radio.configure(RadioSettings(rate_sps=510_000))  # inside that profile, below what pyadi-iio takes
    assert radio.settings is None


# ------------------------------------------------------------------------------------------------
# Scaling
# ------------------------------------------------------------------------------------------------


def test_pluto_scaling_round_trip_and_clipping():
    signal = tone(amplitude=0.7, cycles_per_sample=0.013)
    fake = FakeAdi(signal=signal)
    radio = pluto(fake)
    x = np.array([1.0, -1.0j, 0.5 + 0.25j, 1.5 - 0.2j, -2.0 + 3.0j, 0.0], np.complex64)
    radio.transmit(x)
    (cyclic, pushed), = fake.transmitted
    assert not cyclic
    np.testing.assert_array_equal(pushed, [16384, -16384j, 8192 + 4096j, 16384 - 3277j, -16384 + 16384j, 0])
    assert radio.counters.clipped_tx == 2 and radio.counters.samples_tx == 6
    y = radio.receive(3000)
    np.testing.assert_allclose(y, expected(signal, 0, 3000, 2 ** 11), atol=1e-6)
    assert np.max(np.abs(y - signal(np.arange(3000)))) <= 0.5 / 2 ** 11 * np.sqrt(2) + 1e-7
    assert radio.counters.saturated_rx == 0 and radio.counters.samples_rx == 3000


def test_pluto_samples_at_the_adc_rails_are_counted_as_saturated():
    fake = FakeAdi(signal=lambda n: np.where(n % 10 == 0, 1.5, 0.1).astype(complex))
    radio = pluto(fake)
    y = radio.receive(1000)
    assert radio.counters.saturated_rx == 100
    assert np.max(np.abs(y.real)) == pytest.approx(2047 / 2048)


def test_usrp_scaling_is_unity_and_clips_what_it_sends():
    signal = tone(amplitude=0.9)
    fake = FakeUhd(signal=signal)
    radio = usrp(fake)
    radio.transmit(np.array([0.5 + 0.5j, 1.2, -0.25j], np.complex64))
    np.testing.assert_allclose(fake.sent_data[0], [0.5 + 0.5j, 1.0, -0.25j])
    assert radio.counters.clipped_tx == 1
    np.testing.assert_allclose(radio.receive(2500), signal(np.arange(2500)), atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Buffers
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pluto", "usrp"])
def test_receive_a_count_that_is_not_a_multiple_of_the_buffer(kind):
    signal = tone(0.5, 0.003)
    if kind == "pluto":
        radio = pluto(FakeAdi(signal=signal))
        delivered = expected(signal, 0, 3010, 2 ** 11)           # 12-bit ADC codes
    else:
        radio = usrp(FakeUhd(signal=signal, max_num_samps=300))
        delivered = signal(np.arange(3010))                      # fc32
    x = radio.receive(2500)
    assert x.shape == (2500,) and x.dtype == np.complex64
    np.testing.assert_allclose(x, delivered[:2500], atol=1e-6)
    assert radio.counters.samples_rx == 3000            # whole buffers are read
    # the next receive starts at the next buffer: the rest of the third one was dropped
    np.testing.assert_allclose(radio.receive(10), delivered[3000:3010], atol=1e-6)
    assert radio.receive(0).shape == (0,)
    with pytest.raises(ValueError, match="n: expected >= 0"):
        radio.receive(-1)


@pytest.mark.parametrize("kind", ["pluto", "usrp"])
def test_stream_yields_whole_buffers_up_to_max_samples(kind):
    radio = pluto(FakeAdi()) if kind == "pluto" else usrp(FakeUhd(max_num_samps=300))
    chunks = list(radio.stream(max_samples=2500))
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    stream = radio.stream()
    assert [len(next(stream)) for _ in range(4)] == [1000] * 4


def test_pluto_buffer_size_change_takes_effect():
    fake = FakeAdi()
    radio = pluto(fake)
    assert len(next(radio.stream())) == 1000
    radio.configure(RadioSettings(rx_buffer_samples=4096))
    assert len(next(radio.stream())) == 4096
    assert [e[2] for e in fake.calls("rx_buffer_created")] == [1000, 4096]


def test_usrp_streams_start_on_first_receive_and_stop_on_close():
    fake = FakeUhd(max_num_samps=400)
    radio = usrp(fake)
    assert fake.calls("get_rx_stream") == []
    radio.receive(1000)
    radio.receive(1000)
    assert fake.calls("get_rx_stream") == [("call", "get_rx_stream", "fc32", "sc16", [0])]
    modes = [(e[2].name, e[3]) for e in fake.calls("issue_stream_cmd")]
    assert modes == [("start_cont", True)]
    assert [e[2] for e in fake.calls("recv")] == [1000, 600, 200, 1000, 600, 200]
    radio.close()
    assert [e[2].name for e in fake.calls("issue_stream_cmd")] == ["start_cont", "stop_cont"]


def test_usrp_reconfigure_restarts_the_stream_with_the_new_buffer():
    fake = FakeUhd()
    radio = usrp(fake)
    radio.receive(10)
    radio.configure(RadioSettings(tx_gain_db=10.0, rx_buffer_samples=1500))
    assert len(next(radio.stream())) == 1500
    assert [e[2].name for e in fake.calls("issue_stream_cmd")] == ["start_cont", "stop_cont", "start_cont"]


# ------------------------------------------------------------------------------------------------
# Timeouts, overflows, underflows
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pluto", "usrp"])
def test_timeouts_are_retried_then_succeed(kind):
    radio = pluto(FakeAdi(timeouts={0, 1})) if kind == "pluto" else usrp(FakeUhd(timeouts={0, 1}))
    x = radio.receive(1000)
    assert x.shape == (1000,)
    assert (radio.counters.timeouts, radio.counters.retries) == (2, 2)


@pytest.mark.parametrize("kind", ["pluto", "usrp"])
def test_exhausted_retries_raise_radio_timeout_with_a_clear_message(kind):
    timeouts = set(range(3))                           # recv calls 0, 1, 2 time out
    radio = (pluto(FakeAdi(timeouts=timeouts), retries=2) if kind == "pluto"
             else usrp(FakeUhd(timeouts=timeouts), retries=2))
    with pytest.raises(RadioTimeout, match=rf"{kind} .*: no samples after 3 attempts .*rate 2e\+06 sps"):
        radio.receive(10)
    assert (radio.counters.timeouts, radio.counters.retries) == (3, 2)
    assert radio.receive(10).shape == (10,)             # the radio still works once samples come


def test_usrp_timeout_after_some_samples_returns_them():
    fake = FakeUhd(max_num_samps=400, timeouts={1})
    radio = usrp(fake)
    chunks = list(radio.stream(max_samples=1400))
    assert [len(c) for c in chunks] == [400, 1000]      # nothing lost, the short buffer passed on
    assert radio.counters.timeouts == 0


def test_pluto_overflow_is_read_from_the_dma_status_register_and_cleared():
    fake = FakeAdi(overflow_at={1, 3})
    radio = pluto(fake)
    radio.receive(5000)
    assert radio.counters.overflows == 2
    assert fake.device._rxadc.status == 0
    assert len(fake.calls("reg_read")) == 5


def test_pluto_without_register_access_counts_nothing_and_still_receives():
    fake = FakeAdi(overflow_at={0}, register_error=PermissionError(errno.EPERM, "Operation not permitted"))
    radio = pluto(fake)
    assert radio.receive(3000).shape == (3000,)
    assert radio.counters.overflows == 0
    assert len(fake.calls("reg_write")) == 1 and fake.calls("reg_read") == []   # tried once, then off


def test_usrp_overflow_is_counted_and_the_buffer_keeps_filling():
    signal = tone(0.5, 0.01)
    fake = FakeUhd(signal=signal, max_num_samps=500, overflow_at={1, 4})
    radio = usrp(fake)
    x = radio.receive(2000)
    assert radio.counters.overflows == 2
    np.testing.assert_allclose(x, signal(np.arange(2000)), atol=1e-6)   # the fake skips nothing


def test_usrp_other_receive_errors_are_radio_errors():
    fake = FakeUhd()
    radio = usrp(fake)
    radio.receive(10)

    def recv(array, md, timeout=0.1):                   # the streamer reports a corrupt packet
        md.error_code = fake.types.RXMetadataErrorCode.bad_packet
        return 0

    radio._rx_stream.recv = recv
    with pytest.raises(RadioError, match="receive failed: ERROR_CODE_BAD_PACKET") as info:
        radio.receive(10)
    assert not isinstance(info.value, (RadioTimeout, RadioDisconnected))


def test_usrp_burst_transmit_metadata():
    fake = FakeUhd(underflow_at={1})
    radio = usrp(fake)
    x = (0.5 * np.exp(1j * np.linspace(0, 6, 3000))).astype(np.complex64)
    radio.transmit(x)
    assert fake.sends == [(3000, True, False), (1, False, True)]   # the burst, then its end
    np.testing.assert_allclose(fake.sent_data[0], x, atol=1e-7)
    assert fake.sent_data[1].tolist() == [0j]
    assert radio.counters.underflows == 1 and radio.counters.samples_tx == 3000


def test_usrp_cyclic_transmit_resends_until_stopped_and_counts_underflows():
    fake = FakeUhd(underflow_at={2, 5})
    radio = usrp(fake)
    x = np.full(300, 0.25 + 0.25j, np.complex64)
    radio.transmit(x, cyclic=True)
    assert fake.wait_sends(8)
    radio.stop_transmit()
    assert radio._tx_thread is None
    sends = list(fake.sends)
    assert sends[0] == (33000, True, False)           # tiled to >= tx_buffer_samples (32768): 110 whole repetitions
    assert all(s == (33000, False, False) for s in sends[1:-1]) and sends[-1] == (1, False, True)
    np.testing.assert_array_equal(fake.sent_data[1], np.tile(x, 110))
    assert radio.counters.underflows == 2
    n = len(fake.sends)
    radio.stop_transmit()                               # nothing running: nothing sent
    assert len(fake.sends) == n


def test_usrp_a_new_transmission_replaces_a_cyclic_one():
    fake = FakeUhd()
    radio = usrp(fake)
    radio.transmit(np.full(100, 0.1, np.complex64), cyclic=True)
    assert fake.wait_sends(3)
    radio.transmit(np.full(50, 0.2, np.complex64))
    assert fake.sends[-2:] == [(50, True, False), (1, False, True)]
    assert sum(1 for s in fake.sends if s[2]) == 2      # the cyclic burst was ended first


def test_pluto_cyclic_and_burst_buffers():
    fake = FakeAdi()
    radio = pluto(fake)
    a, b = np.full(100, 0.5, np.complex64), np.full(200, 0.25j, np.complex64)
    radio.transmit(a)
    radio.transmit(a)                                   # same length: the buffer is reused
    radio.transmit(a, cyclic=True)                      # a cyclic buffer needs a fresh one
    radio.transmit(b, cyclic=True)                      # replacing a cyclic buffer
    radio.transmit(b)                                   # back to bursts
    assert [(c, len(p)) for c, p in fake.transmitted] == [(False, 100), (False, 100), (True, 100), (True, 200),
                                                         (False, 200)]
    assert len(fake.calls("tx_destroy_buffer")) == 4    # first burst, both cyclic ones, leaving cyclic
    radio.transmit(a, cyclic=True)
    radio.stop_transmit()
    assert fake.log[-1] == ("call", "tx_destroy_buffer")
    destroyed = len(fake.calls("tx_destroy_buffer"))
    radio.stop_transmit()                               # nothing cyclic running
    assert len(fake.calls("tx_destroy_buffer")) == destroyed


# ------------------------------------------------------------------------------------------------
# Disconnects and close
# ------------------------------------------------------------------------------------------------


def test_pluto_disconnect_keeps_what_arrived_and_close_releases_once():
    signal = tone(0.5, 0.02)
    fake = FakeAdi(signal=signal, disconnect_after=2)
    radio = pluto(fake)
    with pytest.raises(RadioDisconnected, match=r"pluto ip:192\.168\.2\.1: receive: the device is gone") as info:
        radio.receive(5000)
    np.testing.assert_allclose(info.value.received, expected(signal, 0, 2000, 2 ** 11), atol=1e-6)
    assert info.value.received.dtype == np.complex64
    radio.close()
    assert [e[1] for e in fake.log[-3:]] == ["rx_destroy_buffer", "tx_destroy_buffer", "close"]
    n = len(fake.log)
    radio.close()
    assert len(fake.log) == n and radio.closed
    with pytest.raises(RadioError, match="closed"):
        radio.receive(10)
    radio.stop_transmit()                               # a no-op once closed


def test_usrp_disconnect_keeps_the_partial_buffer_and_close_is_clean():
    signal = tone(0.5, 0.02)
    fake = FakeUhd(signal=signal, max_num_samps=300, disconnect_after_samples=2500)
    radio = usrp(fake)
    with pytest.raises(RadioDisconnected, match="LIBUSB_ERROR_NO_DEVICE") as info:
        radio.receive(4000)
    np.testing.assert_allclose(info.value.received, signal(np.arange(2500)), atol=1e-6)
    assert radio.counters.samples_rx == 2500
    radio.close()
    radio.close()
    assert radio.closed and radio._usrp is None


def test_usrp_disconnect_in_the_transmit_thread_surfaces_on_stop():
    fake = FakeUhd(tx_disconnect_after=3)
    radio = usrp(fake)
    radio.transmit(np.full(100, 0.1, np.complex64), cyclic=True)
    assert fake.wait_sends(4)
    radio._tx_thread.join(5)
    with pytest.raises(RadioDisconnected, match="transmit: the device is gone"):
        radio.stop_transmit()
    radio.close()                                       # after the error: still releases
    assert radio.closed


def test_context_manager_closes_after_an_error():
    fake = FakeAdi(disconnect_after=0)
    with pytest.raises(RadioDisconnected):
        with pluto(fake) as radio:
            radio.receive(10)
    assert radio.closed and fake.log[-1] == ("call", "close")


# ------------------------------------------------------------------------------------------------
# Opening: missing libraries, absent devices
# ------------------------------------------------------------------------------------------------


def test_open_radio_dispatches_and_rejects_unknown_kinds():
    fake = FakeAdi()
    radio = open_radio("pluto", "usb:1.4.5", adi_module=fake)
    assert isinstance(radio, PlutoRadio) and radio.profile.name == "pluto-ad9363"
    assert radio.serial == fake.serial
    radio = open_radio("usrp", "type=b200", "usrp-b200", uhd_module=FakeUhd())
    assert isinstance(radio, UsrpRadio) and radio.profile.name == "usrp-b200" and radio.serial == "3150361"
    with pytest.raises(ValueError, match="kind: expected one of .*'pluto'.*got 'hackrf'"):
        open_radio("hackrf", "x")
    with pytest.raises(ValueError, match="profile usrp-b210 is for a usrp, not a pluto"):
        PlutoRadio("x", radio_profile("usrp-b210"), adi_module=fake)


def test_absent_devices_are_radio_errors_naming_the_address():
    with pytest.raises(RadioError, match=r"pluto ip:10\.0\.0\.9: cannot open: No device found \(.*refused.*\)"):
        PlutoRadio("ip:10.0.0.9", radio_profile("pluto-ad9363"), adi_module=FakeAdi(present=False))
    with pytest.raises(RadioError, match=r"usrp type=b200: cannot open: LookupError: KeyError: No devices found"):
        UsrpRadio("type=b200", radio_profile("usrp-b210"), uhd_module=FakeUhd(present=False))


def test_missing_pyadi_iio_names_the_packages(monkeypatch):
    monkeypatch.setitem(sys.modules, "adi", None)      # import adi -> ImportError
    with pytest.raises(RadioError, match=r"pyadi-iio.*pip install pyadi-iio.*apt-get install libiio0"):
        PlutoRadio("ip:192.168.2.1", radio_profile("pluto-ad9363"))


def test_missing_uhd_names_the_packages(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "uhd", None)      # import uhd -> ImportError
    monkeypatch.setenv(usrp_mod.UHD_PATH_ENV, str(tmp_path))
    with pytest.raises(RadioError, match=rf"cannot import uhd .* {tmp_path} holds no UHD package.*pip install uhd"
                                         r".*python3-uhd"):
        UsrpRadio("type=b200", radio_profile("usrp-b210"))


def test_a_broken_uhd_package_is_reported_and_not_left_half_imported(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "uhd", None)
    pkg = tmp_path / "uhd"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from . import libpyuhd\n")   # the compiled module is missing
    monkeypatch.setenv(usrp_mod.UHD_PATH_ENV, str(pkg))
    with pytest.raises(RadioError, match=rf"cannot load UHD's Python API from {pkg} \(ImportError"):
        usrp_mod.load_uhd()
    assert "uhd" not in sys.modules


def test_real_pyadi_iio_with_nothing_at_the_address():
    """The real adi module (libiio underneath): a URI with no IIO daemon behind it."""
    try:
        import adi  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"pyadi-iio / libiio not importable here ({exc}): pip install pyadi-iio, apt-get install libiio0")
    with pytest.raises(RadioError, match=r"pluto ip:127\.0\.0\.1: cannot open: No device found"):
        PlutoRadio("ip:127.0.0.1", radio_profile("pluto-ad9363"))


def test_real_uhd_with_no_usrp_attached():
    """The real UHD Python API (imported, or Debian's python3-uhd loaded from its directory)."""
    try:
        usrp_mod.load_uhd()
    except RadioError as exc:
        pytest.skip(str(exc))
    with pytest.raises(RadioError, match=r"usrp type=b200,serial=0: cannot open: .*No devices found"):
        UsrpRadio("type=b200,serial=0", radio_profile("usrp-b200"))


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


def test_discovery_reads_serials_from_the_scans():
    scan = ("\t0: 0456:b673 (Analog Devices Inc. PlutoSDR (ADALM-PLUTO)), serial=104473dc5993000d1800 [usb:1.4.5]\n"
            "\t1: 0456:b673 (Analog Devices Inc. PlutoSDR (ADALM-PLUTO)) [usb:1.5.5]\n")
    assert [r.serial for r in discovery.parse_iio_scan(scan)] == ["104473dc5993000d1800", ""]
    uhd = ("-- UHD Device 0\nDevice Address:\n    serial: 3150361\n    product: B210\n    type: b200\n"
           "-- UHD Device 1\nDevice Address:\n    addr: 192.168.10.2\n    type: usrp2\n")
    assert [r.serial for r in discovery.parse_uhd_find_devices(uhd)] == ["3150361", ""]


def test_the_fakes_use_the_real_libraries_names():
    """What the drivers touch on the fakes exists under the same names in the real libraries."""
    try:
        import adi
    except Exception as exc:  # noqa: BLE001
        adi = None
        skipped = f"pyadi-iio: {exc}"
    if adi is not None:
        fake = FakeAdi()
        radio = pluto(fake)
        radio.transmit(np.zeros(10, np.complex64), cyclic=True)
        radio.receive(10)
        radio.close()
        touched = {e[1] for e in fake.log if e[0] == "set"} | {e[1] for e in fake.log if e[0] == "call"}
        touched -= {"Pluto", "rx_buffer_created", "reg_read", "reg_write"}   # constructor; fake-only; iio.Device
        for cls in (adi.Pluto, adi.ad9361):
            assert {n for n in touched if not hasattr(cls, n)} == set(), cls
        import iio
        assert hasattr(iio.Device, "reg_read") and hasattr(iio.Device, "reg_write")
    try:
        uhd = usrp_mod.load_uhd()
    except RadioError as exc:
        uhd = None
        skipped = f"uhd: {exc}"
    if uhd is not None:
        fake = FakeUhd(underflow_at={0})
        radio = usrp(fake)
        radio.receive(10)
        radio.transmit(np.zeros(10, np.complex64))
        radio.close()
        methods = {e[1] for e in fake.log if e[0] == "call"} - {"MultiUSRP", "recv", "issue_stream_cmd"}
        assert {m for m in methods if not hasattr(uhd.usrp.MultiUSRP, m)} == set()
        assert all(hasattr(uhd.usrp.RXStreamer, m) for m in ("recv", "issue_stream_cmd"))
        assert all(hasattr(uhd.usrp.TXStreamer, m) for m in ("send", "recv_async_msg"))
        for enum_name, fake_enum in (("RXMetadataErrorCode", fake.types.RXMetadataErrorCode),
                                     ("TXMetadataEventCode", fake.types.TXMetadataEventCode),
                                     ("StreamMode", fake.types.StreamMode)):
            real = getattr(uhd.types, enum_name)
            assert all(hasattr(real, member.name) for member in fake_enum), enum_name
        for type_name in ("TuneRequest", "RXMetadata", "TXMetadata", "TXAsyncMetadata", "StreamCMD"):
            assert hasattr(uhd.types, type_name)
    if adi is None and uhd is None:
        pytest.skip(skipped)


def test_pluto_reads_temperature_and_xo_correction_from_the_phy_device_or_says_none():
    from types import SimpleNamespace

    fake = FakeAdi()
    radio = pluto(fake)
    assert radio.temperature_c() is None and radio.xo_correction_hz is None     # nothing to read: None, no error
    attr = (lambda v: SimpleNamespace(value=v))  # noqa: E731 - libiio attributes read back as strings
    temp0 = SimpleNamespace(attrs={"input": attr("41250")})
    object.__setattr__(radio._dev, "_ctrl", SimpleNamespace(find_channel=lambda name: temp0 if name == "temp0" else None,
                                                            attrs={"xo_correction": attr("40000012")}))
    assert radio.temperature_c() == 41.25
    assert radio.xo_correction_hz == 40000012.0
