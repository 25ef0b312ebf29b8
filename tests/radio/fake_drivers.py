"""PlutoRadio and UsrpRadio built over the fakes of the vendor libraries (tests/fakes_radio.py),
with the settings the driver tests use."""

from __future__ import annotations

import numpy as np

from mtsc_sdr.radio.pluto import PlutoRadio
from mtsc_sdr.radio.profiles import RadioSettings, radio_profile
from mtsc_sdr.radio.usrp import UsrpRadio
from tests.fakes_radio import FakeAdi, FakeUhd

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
