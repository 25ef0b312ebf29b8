"""The simulated link the calibration tests measure: SimRadios with known impairments (CFO, IQ
imbalance, DC offset, AWGN at 30 dB) and the reference settings."""

from __future__ import annotations

from pathlib import Path

from mtsc_sdr.channel import ChannelProfile, IQImbalance
from mtsc_sdr.radio.driver import open_radio
from mtsc_sdr.radio.profiles import RadioSettings
from mtsc_sdr.radio.sim import SimRadio

REPO = Path(__file__).resolve().parents[2]
LAB_PLUTO = REPO / "configs" / "channels" / "lab-pluto.yaml"

#: The simulated link's truth. With awgn.snr_db 30 the reference gains (tx -10, rx 30 dB) put the
#: payload at its wire power (-10 dBFS) 30 dB over the noise floor: -40 dBFS at the ADC.
CFO_HZ, GAIN_DB, PHASE_DEG, DC = 3100.0, 0.4, -2.5, complex(0.012, -0.007)
KNOWN = {"rate_sps": 1e6, "awgn": {"snr_db": 30.0}, "cfo": {"cfo_hz": CFO_HZ},
         "iq_imbalance": {"gain_db": GAIN_DB, "phase_deg": PHASE_DEG}, "dc_offset": {"i": DC.real, "q": DC.imag}}
SETTINGS = RadioSettings(freq_hz=2.4e9, rate_sps=1e6, tx_gain_db=-10.0, rx_gain_db=30.0)
N = 65536
Z = 5.0   # tolerance in standard deviations (a 5-sigma miss has probability ~6e-7)


def sim(seed: int = 0, **kw) -> SimRadio:
    radio = open_radio("sim", "", impairments=ChannelProfile.from_dict(KNOWN), seed=seed, **kw)
    radio.configure(SETTINGS)
    return radio


def noise_n0() -> float:
    """Total noise power after the receiver's IQ imbalance (the noise passes through the mixer)."""
    k1, k2 = IQImbalance(GAIN_DB, PHASE_DEG).coefficients
    return 10.0 ** (-40.0 / 10.0) * (abs(k1) ** 2 + abs(k2) ** 2)
