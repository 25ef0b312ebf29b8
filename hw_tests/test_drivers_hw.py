"""The direct drivers (PlutoRadio, UsrpRadio) on real radios: ``pytest -ra hw_tests``.

Each test looks for its radio with :func:`~mtsc_sdr.radio.discovery.find_radios` and is skipped with
what was searched when there is none, or with the vendor library's install hint when the radio is
there but the library is not.

* Pluto loopback: a cyclic tone 100 kHz above the LO comes back at +100 kHz. Connect TX to RX with
  a cable and >= 30 dB of attenuation, or leave both antennas on (the board's own leakage is enough).
* Streaming at the profile's ``max_stream_rate_sps`` for a few seconds, TX cyclic and RX together:
  the overflow / underflow counts are printed, and the profile's claim is checked: at that rate
  the host takes >= 90 % of the samples and the radio reports no overflow.
* Clean close: a radio closed while streaming can be opened again at once.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from mtsc_sdr.radio.discovery import find_radios
from mtsc_sdr.radio.driver import Radio, RadioError, open_radio
from mtsc_sdr.radio.profiles import RadioSettings

#: TX / RX gains that keep a cabled loopback (>= 30 dB attenuation) out of saturation.
GAINS_DB = {"pluto": (-30.0, 20.0), "usrp": (30.0, 20.0)}
STREAM_SECONDS = 3.0


def open_found(kind: str) -> Radio:
    """The first radio of ``kind`` found, opened with the default profile; skips when there is none."""
    found = find_radios(kind)
    if not found:
        pytest.skip(found.summary())
    try:
        return open_radio(kind, found[0].address)
    except RadioError as exc:
        pytest.skip(f"{found[0].address} found but not usable here: {exc}")


def settings(kind: str, rate_sps: float) -> RadioSettings:
    tx_gain_db, rx_gain_db = GAINS_DB[kind]
    return RadioSettings(freq_hz=2.4e9, rate_sps=rate_sps, tx_gain_db=tx_gain_db, rx_gain_db=rx_gain_db)


def test_pluto_loopback_tone_comes_back_at_its_offset():
    rate_sps, offset_hz, n = 2e6, 100e3, 20_000              # 1000 whole periods: a seamless cyclic buffer
    with open_found("pluto") as radio:
        radio.configure(settings("pluto", rate_sps))
        t = np.arange(n) / rate_sps
        radio.transmit((0.5 * np.exp(2j * np.pi * offset_hz * t)).astype(np.complex64), cyclic=True)
        radio.receive(4 * radio.settings.rx_buffer_samples)   # let the LOs, gains and buffers settle
        x = radio.receive(1 << 16)
        radio.stop_transmit()
    spectrum = np.abs(np.fft.fftshift(np.fft.fft((x - x.mean()) * np.hanning(len(x))))) ** 2
    freqs = np.fft.fftshift(np.fft.fftfreq(len(x), 1 / rate_sps))
    peak = int(np.argmax(spectrum))
    peak_over_median_db = 10 * np.log10(spectrum[peak] / np.median(spectrum))
    print(f"\npluto loopback: peak at {freqs[peak] / 1e3:+.2f} kHz, {peak_over_median_db:.1f} dB over the median; "
          f"counters {radio.counters.as_dict()}")
    assert abs(freqs[peak] - offset_hz) < 2e3, f"tone at {freqs[peak]:.0f} Hz, sent at {offset_hz:.0f} Hz"
    assert peak_over_median_db > 20.0
    assert radio.counters.saturated_rx < len(x) // 100, "receive gain too high for this loopback"


@pytest.mark.parametrize("kind", ["pluto", "usrp"])
def test_streaming_at_the_profiles_max_rate_reports_its_counters(kind):
    with open_found(kind) as radio:
        rate_sps = radio.profile.max_stream_rate_sps
        radio.configure(settings(kind, rate_sps))
        tone = (0.3 * np.exp(2j * np.pi * 0.01 * np.arange(100_000))).astype(np.complex64)
        radio.transmit(tone, cyclic=True)
        received, start = 0, time.monotonic()
        for chunk in radio.stream():
            received += len(chunk)
            if time.monotonic() - start >= STREAM_SECONDS:
                break
        elapsed = time.monotonic() - start
        radio.stop_transmit()
        counters = radio.counters.as_dict()
    print(f"\n{kind} at {rate_sps / 1e6:g} Msps for {elapsed:.1f} s: received {received} samples "
          f"({received / elapsed / 1e6:.2f} Msps delivered), overflows {counters['overflows']}, "
          f"underflows {counters['underflows']}, timeouts {counters['timeouts']}")
    assert counters["samples_rx"] >= received
    # the profile says this rate is sustained: every sample delivered, no overflow
    assert received >= 0.9 * rate_sps * elapsed and counters["overflows"] == 0, (
        f"{radio.profile.name}'s max_stream_rate_sps {rate_sps:g} is more than this host sustains: {counters}")


@pytest.mark.parametrize("kind", ["pluto", "usrp"])
def test_close_while_streaming_releases_the_radio(kind):
    radio = open_found(kind)
    address = radio.address
    radio.configure(settings(kind, 2e6))
    radio.transmit(np.full(10_000, 0.1, np.complex64), cyclic=True)
    next(radio.stream())
    radio.close()
    radio.close()
    assert radio.closed
    with pytest.raises(RadioError, match="closed"):
        radio.receive(1)
    with open_radio(kind, address) as again:                # the device was released
        again.configure(settings(kind, 2e6))
        assert len(again.receive(1000)) == 1000
