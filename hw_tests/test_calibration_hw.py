"""Calibration round trip on a real radio (loopback cable with >= 30 dB attenuation, or two radios
of one kind): ``pytest -ra hw_tests``; skipped with what was searched when no radio is found.

1. ``calibrate`` measures the pair and the record is written and read back unchanged;
2. the record's gain table is used the way ``run`` would: ask for an SNR in the table's range, set
   the TX gain it gives, and the PHY receiver measures that SNR within 2 dB (cables drift a little;
   over the air fading moves the SNR by more, so use a cable; checked against the simulated radio
   over the lab-pluto impairments without fading: asked 9.67 dB, measured 9.78 dB);
3. ``correct_iq`` with the record's DC and IQ estimates leaves no imbalance beyond the estimator's
   spread (5 sigma) and a small allowance for drift (0.02 dB, 0.2 deg).
"""

from __future__ import annotations

import numpy as np
import pytest

from mtsc_sdr.radio.calibrate import (CalibrateSettings, calibrate, estimate_iq_imbalance, frame_train, fresh_samples,
                                      measure_snr, receive_frames, tone)
from mtsc_sdr.radio.calibration import correct_iq, gains_for_snr, load_record, save_record
from mtsc_sdr.radio.profiles import RadioSettings

from test_drivers_hw import GAINS_DB, open_found


@pytest.mark.parametrize("kind", ["pluto", "usrp"])
def test_calibration_round_trip(kind, tmp_path):
    radio = open_found(kind)
    tx_gain, rx_gain = GAINS_DB[kind]
    gains = [tx_gain - 20.0, tx_gain - 10.0, tx_gain]
    with radio:
        rec, warnings = calibrate(radio, radio, CalibrateSettings(rx_gain_db=rx_gain, gains_db=gains, frames=20))
        path = save_record(rec, tmp_path, name="hw")
        again = load_record(path)
        assert again.results == rec.results and again.tx == rec.tx, warnings
        # 2: an SNR from the middle of the table, through the gains it maps to
        snrs = [p.snr_db for p in rec.results.gain_table]
        want = float(np.median(snrs))
        tx_db, rx_db = gains_for_snr(rec, want)
        radio.configure(RadioSettings(freq_hz=rec.freq_hz, rate_sps=rec.rate_sps, tx_gain_db=tx_db, rx_gain_db=rx_db))
        train = frame_train(20, 256, 200, seed=1)
        radio.transmit(train, cyclic=True)
        frames = receive_frames(radio, 2 * train.size + 4096, rec.rate_sps, complex(rec.results.dc_offset.i, rec.results.dc_offset.q),
                                 rec.results.iq_imbalance.correction)
        radio.stop_transmit()
        got, _, _ = measure_snr(frames)
        print(f"{kind}: asked {want:.2f} dB -> TX {tx_db:.2f} dB, measured {got:.2f} dB")
        assert abs(got - want) < 2.0
        # 3: the record's correction removes most of the imbalance of a fresh tone capture
        radio.transmit(tone(1024, 128), cyclic=True)
        x = fresh_samples(radio, 65536)
        radio.stop_transmit()
        raw, fixed = estimate_iq_imbalance(x), estimate_iq_imbalance(correct_iq(x, rec))
        print(f"{kind}: IQ imbalance raw {raw.gain_db:.3f} dB / {raw.phase_deg:.2f} deg, corrected "
              f"{fixed.gain_db:.3f} dB / {fixed.phase_deg:.2f} deg")
        # the residual is zero within the estimator's spread (plus a margin for drift since the record)
        assert abs(fixed.gain_db) <= 5 * fixed.gain_std_db + 0.02
        assert abs(fixed.phase_deg) <= 5 * fixed.phase_std_deg + 0.2
