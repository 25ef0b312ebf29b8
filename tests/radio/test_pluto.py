"""PlutoRadio over the fake of pyadi-iio (tests/fakes_radio.py), and the real ``adi`` package where
importable (no device: a clear RadioError). What both drivers share is in test_driver.py."""

from __future__ import annotations

import errno
import sys

import numpy as np
import pytest

from mtsc_sdr.radio.driver import RadioDisconnected, RadioError
from mtsc_sdr.radio.pluto import PlutoRadio
from mtsc_sdr.radio.profiles import RadioSettings, radio_profile
from tests.fakes_radio import DMA_OVERFLOW_BIT, DMA_STATUS_REGISTER, FakeAdi, tone
from tests.radio.fake_drivers import expected, pluto


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


def test_pluto_buffer_size_change_takes_effect():
    fake = FakeAdi()
    radio = pluto(fake)
    assert len(next(radio.stream())) == 1000
    radio.configure(RadioSettings(rx_buffer_samples=4096))
    assert len(next(radio.stream())) == 4096
    assert [e[2] for e in fake.calls("rx_buffer_created")] == [1000, 4096]


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


def test_missing_pyadi_iio_names_the_packages(monkeypatch):
    monkeypatch.setitem(sys.modules, "adi", None)      # import adi -> ImportError
    with pytest.raises(RadioError, match=r"pyadi-iio.*pip install pyadi-iio.*apt-get install libiio0"):
        PlutoRadio("ip:192.168.2.1", radio_profile("pluto-ad9363"))


def test_real_pyadi_iio_with_nothing_at_the_address():
    """The real adi module (libiio underneath): a URI with no IIO daemon behind it."""
    try:
        import adi  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"pyadi-iio / libiio not importable here ({exc}): pip install pyadi-iio, apt-get install libiio0")
    with pytest.raises(RadioError, match=r"pluto ip:127\.0\.0\.1: cannot open: No device found"):
        PlutoRadio("ip:127.0.0.1", radio_profile("pluto-ad9363"))


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
