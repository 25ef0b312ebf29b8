"""The SimRadio keeps the Radio contract; its gain model and the air two sim radios share."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mtsc_sdr.radio.driver import RadioError, open_radio
from mtsc_sdr.radio.profiles import ProfileError
from tests.radio.sim_link import LAB_PLUTO, SETTINGS, sim


# -- the simulated radio ---------------------------------------------------------------------------------


def test_sim_radio_honours_the_radio_contract():
    with open_radio("sim", "bench", seed=1) as radio:
        assert radio.serial == "sim-bench" and radio.temperature_c() is None
        with pytest.raises(RadioError, match="configure"):
            radio.receive(10)
        with pytest.raises(ProfileError, match="freq_hz"):
            radio.configure(replace(SETTINGS, freq_hz=7e9))
        s = radio.configure(replace(SETTINGS, rx_buffer_samples=1000))
        assert s.rx_buffer_samples == 1000
        assert [c.size for c in radio.stream(2500)] == [1000, 1000, 500]
        assert radio.receive(0).size == 0
        # a burst comes back once, at the start of the next receive, with the link's 0 dB gain
        burst = np.full(300, 0.3 + 0.1j, np.complex64)
        radio.transmit(burst)
        x = radio.receive(1000)
        assert np.abs(x[:300] - burst).max() < 0.01 and np.abs(x[300:]).max() < 0.01
        assert np.abs(radio.receive(1000)).max() < 0.01                       # gone: noise only
        radio.transmit(burst[:100] * 2, cyclic=True)                          # repeats until stopped
        assert np.abs(radio.receive(1000) - 0.6 - 0.2j).max() < 0.01
        radio.stop_transmit()
        assert np.abs(radio.receive(1000)).max() < 0.01
        # too much gain saturates the ADC; it is counted
        radio.configure(replace(SETTINGS, rx_gain_db=60.0))
        radio.transmit(burst, cyclic=True)
        radio.receive(1000)
        assert radio.counters.saturated_rx > 0 and radio.counters.samples_tx == 300 + 100 + 300
    assert radio.closed
    radio.close()
    with pytest.raises(RadioError, match="closed"):
        radio.configure(SETTINGS)


def test_sim_gain_model_and_shared_air():
    radio = sim(seed=5)
    assert radio.noise_floor_dbfs == -40.0 and radio.path_loss_db == -20.0
    assert radio.expected_snr_db(-10, 30) == pytest.approx(30.0)
    radio.close()
    with open_radio("sim", "x", noise_floor_dbfs=-70.0, path_loss_db=-50.0) as r:
        assert r.expected_snr_db(-10, 30) == pytest.approx(-10 - 10 - 50 + 30 + 70)
    with open_radio("sim", "x", impairments=LAB_PLUTO, noise_floor_dbfs=-60.0) as r:
        assert r.path_loss_db == pytest.approx(25 - 60 + 10 + 10 - 30) and r.expected_snr_db(-10, 30) == 25.0
    a = open_radio("sim", "a", air="t", seed=1)
    b = open_radio("sim", "b", air="t", seed=1)
    with pytest.raises(RadioError, match="other impairments"):
        open_radio("sim", "c", air="t", seed=2)
    a.configure(SETTINGS)
    b.configure(SETTINGS)
    a.transmit(np.full(200, 0.5, np.complex64))
    assert abs(b.receive(1000)[:200].mean() - 0.5) < 0.01
    a.close()
    b.close()
    open_radio("sim", "c", air="t", seed=2).close()        # the air went with its last radio
