"""UsrpRadio over the fake of UHD's Python API (tests/fakes_radio.py), and the real ``uhd`` package
where importable (no device: a clear RadioError)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mtsc_sdr.radio import usrp as usrp_mod
from mtsc_sdr.radio.driver import RadioDisconnected, RadioError, RadioTimeout
from mtsc_sdr.radio.profiles import RadioSettings, radio_profile
from mtsc_sdr.radio.usrp import UsrpRadio
from tests.fakes_radio import FakeUhd, tone
from tests.radio.fake_drivers import usrp


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


def test_usrp_scaling_is_unity_and_clips_what_it_sends():
    signal = tone(amplitude=0.9)
    fake = FakeUhd(signal=signal)
    radio = usrp(fake)
    radio.transmit(np.array([0.5 + 0.5j, 1.2, -0.25j], np.complex64))
    np.testing.assert_allclose(fake.sent_data[0], [0.5 + 0.5j, 1.0, -0.25j])
    assert radio.counters.clipped_tx == 1
    np.testing.assert_allclose(radio.receive(2500), signal(np.arange(2500)), atol=1e-6)


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


def test_usrp_timeout_after_some_samples_returns_them():
    fake = FakeUhd(max_num_samps=400, timeouts={1})
    radio = usrp(fake)
    chunks = list(radio.stream(max_samples=1400))
    assert [len(c) for c in chunks] == [400, 1000]      # nothing lost, the short buffer passed on
    assert radio.counters.timeouts == 0


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


def test_real_uhd_with_no_usrp_attached():
    """The real UHD Python API (imported, or Debian's python3-uhd loaded from its directory)."""
    try:
        usrp_mod.load_uhd()
    except RadioError as exc:
        pytest.skip(str(exc))
    with pytest.raises(RadioError, match=r"usrp type=b200,serial=0: cannot open: .*No devices found"):
        UsrpRadio("type=b200,serial=0", radio_profile("usrp-b200"))
