"""The Radio contract both direct drivers keep against the fakes of the vendor libraries
(tests/fakes_radio.py): profile limits, configuration errors, receive counts, streams, retries,
closing after an error, ``open_radio``'s dispatch, absent devices, and the fakes' names."""

from __future__ import annotations

import numpy as np
import pytest

from mtsc_sdr.radio import usrp as usrp_mod
from mtsc_sdr.radio.driver import RadioDisconnected, RadioError, RadioTimeout, open_radio
from mtsc_sdr.radio.pluto import PlutoRadio
from mtsc_sdr.radio.profiles import ProfileError, RadioSettings, radio_profile
from mtsc_sdr.radio.usrp import UsrpRadio
from tests.fakes_radio import FakeAdi, FakeUhd, tone
from tests.radio.fake_drivers import expected, pluto, usrp


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
