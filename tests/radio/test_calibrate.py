"""Radio calibration against the simulated radio (tests/radio/sim_link.py): each estimator recovers
the SimRadio's known impairments within tolerances from its own statistics; the gain table and its
inverse; ``mtsc-sdr calibrate`` with sim radios. Records are in test_calibration.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mtsc_sdr.channel import ChannelProfile, IQImbalance
from mtsc_sdr.radio import calibration as cal
from mtsc_sdr.radio.calibrate import (
    CalibrateSettings,
    calibrate,
    estimate_iq_imbalance,
    estimate_noise,
    estimate_tone,
    tone,
)
from mtsc_sdr.radio.sim import SimRadio
from tests.radio.sim_link import CFO_HZ, DC, GAIN_DB, LAB_PLUTO, N, PHASE_DEG, SETTINGS, Z, noise_n0, sim


# -- estimators --------------------------------------------------------------------------------------


def test_noise_floor_and_dc_offset_recovered():
    with sim(seed=1) as radio:
        est = estimate_noise(radio.receive(N))
    n0 = noise_n0()
    # noise floor: mean of N exponential powers, relative std 1/sqrt(N)
    std_db = 10 / math.log(10) / math.sqrt(N)
    assert est.noise_floor_std_db == pytest.approx(std_db)
    assert abs(est.noise_floor_dbfs - 10 * math.log10(n0)) < Z * std_db
    # DC: the mean of N samples; I carries N0_floor/2, Q g^2 N0_floor/2 (the model of IQImbalance)
    s_i = math.sqrt(10 ** -4 / 2 / N)
    s_q = 10 ** (GAIN_DB / 20) * s_i
    assert abs(est.dc.real - DC.real) < Z * s_i and abs(est.dc.imag - DC.imag) < Z * s_q
    assert est.dc_std == pytest.approx(math.sqrt(n0 / (2 * N)), rel=0.01)


def test_cfo_recovered_at_the_cramer_rao_bound():
    with sim(seed=2) as radio:
        radio.transmit(tone(1024, 128), cyclic=True)
        est = estimate_tone(radio.receive(N), 1 / 8)
    # CRLB of a tone's frequency: var = 6 / ((2 pi)^2 snr N^3) (cycles/sample)^2, snr = |a|^2 / N0;
    # the tone (amplitude 0.5) arrives at the reference gains with the link's 0 dB net gain
    snr = 0.25 * abs(IQImbalance(GAIN_DB, PHASE_DEG).coefficients[0]) ** 2 / noise_n0()
    crlb_hz = math.sqrt(6 / ((2 * math.pi) ** 2 * snr * N ** 3)) * SETTINGS.rate_sps
    assert 0.5 < est.freq_std * SETTINGS.rate_sps / crlb_hz < 2.0      # the estimator's own std is honest
    cfo = (est.freq - 1 / 8) * SETTINGS.rate_sps
    assert abs(cfo - CFO_HZ) < Z * crlb_hz, (cfo, crlb_hz)


def test_iq_imbalance_recovered_and_its_std_matches_the_spread_over_draws():
    ests = []
    for seed in range(8):
        with sim(seed=100 + seed) as radio:
            radio.transmit(tone(1024, 128), cyclic=True)
            ests.append(estimate_iq_imbalance(radio.receive(N)))
    g = np.array([e.gain_db for e in ests])
    p = np.array([e.phase_deg for e in ests])
    g_std = np.mean([e.gain_std_db for e in ests])
    p_std = np.mean([e.phase_std_deg for e in ests])
    for e in ests:
        assert abs(e.gain_db - GAIN_DB) < Z * e.gain_std_db and abs(e.phase_deg - PHASE_DEG) < Z * e.phase_std_deg
    # the batch-means std agrees with the spread of independent measurements (8 draws: a sample
    # std within a factor 2.5 of the truth has probability > 0.99)
    assert 1 / 2.5 < np.std(g, ddof=1) / g_std < 2.5
    assert 1 / 2.5 < np.std(p, ddof=1) / p_std < 2.5


def test_calibrate_records_the_known_impairments(calibrated):
    radio, rec, warnings = calibrated
    r = rec.results
    assert warnings == []
    assert abs(r.cfo.cfo_hz - CFO_HZ) < Z * r.cfo.std_hz
    assert r.cfo.ppm == pytest.approx(r.cfo.cfo_hz / 2.4e9 * 1e6)
    # the recorded std is the rms of I's and Q's; Q's noise is g times I's (IQImbalance's model)
    g2 = 10 ** (GAIN_DB / 10)
    assert abs(r.dc_offset.i - DC.real) < Z * r.dc_offset.std / math.sqrt((1 + g2) / 2)
    assert abs(r.dc_offset.q - DC.imag) < Z * r.dc_offset.std * math.sqrt(g2) / math.sqrt((1 + g2) / 2)
    assert abs(r.iq_imbalance.gain_db - GAIN_DB) < Z * r.iq_imbalance.gain_std_db
    assert abs(r.iq_imbalance.phase_deg - PHASE_DEG) < Z * r.iq_imbalance.phase_std_deg
    assert abs(r.noise_floor_dbfs - 10 * math.log10(noise_n0())) < Z * r.noise_floor_std_db
    assert rec.temperature_c == 37.5 and rec.tx.serial == rec.rx.serial == "sim-loopback"
    assert rec.tone_tx_gain_db == -10.0 and rec.rx_gain_db == 30.0


def test_correct_iq_removes_dc_and_imbalance(calibrated):
    _, rec, _ = calibrated
    r = rec.results
    with sim(seed=3) as radio:
        radio.transmit(tone(1024, 128), cyclic=True)
        x = radio.receive(N)
    before = estimate_iq_imbalance(x)
    after = estimate_iq_imbalance(cal.correct_iq(x, rec))
    assert abs(before.gain_db) > 10 * before.gain_std_db           # there was something to remove
    # residual = (record's estimation error) + (this estimate's error): independent, stds add in quadrature
    assert abs(after.gain_db) < Z * math.hypot(r.iq_imbalance.gain_std_db, after.gain_std_db)
    assert abs(after.phase_deg) < Z * math.hypot(r.iq_imbalance.phase_std_deg, after.phase_std_deg)
    with sim(seed=4) as radio:
        quiet = estimate_noise(cal.correct_iq(radio.receive(N), rec))
    assert abs(quiet.dc) < Z * math.hypot(r.dc_offset.std, quiet.dc_std) * math.sqrt(2)
    # the corrected noise is circular again: the original floor, -40 dBFS (the correction's gain
    # error moves the Q half of the noise power by twice it, the total by about it)
    assert abs(quiet.noise_floor_dbfs + 40.0) < Z * math.hypot(quiet.noise_floor_std_db, r.iq_imbalance.gain_std_db)
    with pytest.raises(ValueError, match="1-D"):
        cal.correct_iq(np.zeros((2, 2), np.complex64), rec)


# -- the gain table --------------------------------------------------------------------------------------


def test_gain_table_is_monotone_and_follows_the_link(calibrated):
    radio, rec, _ = calibrated
    table = rec.results.gain_table
    assert [p.tx_gain_db for p in table] == [-40.0, -30.0, -20.0, -10.0]
    assert all(b.snr_db > a.snr_db for a, b in zip(table, table[1:]))
    for p in table:
        assert p.frames == 40
        assert abs(p.snr_db - radio.expected_snr_db(p.tx_gain_db, 30.0)) < Z * p.snr_std_db, p
        # payload power at the ADC: -10 dBFS on the wire + tx + path loss + rx gain
        assert p.rx_power_dbfs == pytest.approx(-10 + p.tx_gain_db - 20 + 30, abs=0.5)


def test_inverting_the_table_gives_gains_that_achieve_the_snr(calibrated):
    radio, rec, _ = calibrated
    target = 13.3
    tx_gain, rx_gain = cal.gains_for_snr(rec, target)
    assert rx_gain == rec.rx_gain_db and -30 < tx_gain < -10
    assert cal.snr_for_gain(rec, tx_gain) == pytest.approx(target)
    # measure again at that gain with a fresh calibration run of just that point
    check, _ = calibrate(radio, radio, CalibrateSettings(gains_db=[tx_gain], frames=40, seed=5))
    p = check.results.gain_table[0]
    lo, hi = [q for q in rec.results.gain_table if q.tx_gain_db <= tx_gain][-1], \
        [q for q in rec.results.gain_table if q.tx_gain_db >= tx_gain][0]
    interp_std = max(lo.snr_std_db, hi.snr_std_db)
    assert abs(p.snr_db - target) < Z * math.hypot(p.snr_std_db, interp_std)
    for bad in (rec.results.gain_table[0].snr_db - 1, rec.results.gain_table[-1].snr_db + 1):
        with pytest.raises(ValueError, match="outside the range measured"):
            cal.gains_for_snr(rec, bad)
    with pytest.raises(ValueError, match="outside the measured gains"):
        cal.snr_for_gain(rec, 0.0)


def test_a_table_that_does_not_increase_is_not_inverted(calibrated):
    _, rec, _ = calibrated
    flat = cal.record_from_dict(rec.to_dict())
    flat.results.gain_table[-1].snr_db = flat.results.gain_table[-2].snr_db - 0.5
    with pytest.raises(ValueError, match="does not increase .* saturation"):
        cal.gains_for_snr(flat, flat.results.gain_table[0].snr_db + 0.1)


def test_xo_correction_moves_the_rx_lo_onto_the_tx_lo():
    """The formula against the synthesiser model f_LO = f_c * f_xo_true / xo_correction."""
    f_c, nominal = 2.4e9, 40e6
    for eps_tx, eps_rx in ((3e-6, -1e-6), (-12e-6, 7e-6)):
        xo_tx, xo_rx = nominal * (1 + eps_tx), nominal * (1 + eps_rx)
        f_tx, f_rx = f_c * xo_tx / nominal, f_c * xo_rx / nominal
        cfo = f_tx - f_rx
        new_rx = f_c * xo_rx / cal.xo_correction_hz(cfo, f_c, nominal, apply_to="rx")
        new_tx = f_c * xo_tx / cal.xo_correction_hz(cfo, f_c, nominal, apply_to="tx")
        # residual: cfo * eps of the corrected radio (the dropped second-order term)
        assert abs(new_rx - f_tx) <= abs(cfo * eps_rx) * 1.01 + 1e-6
        assert abs(new_tx - f_rx) <= abs(cfo * eps_tx) * 1.01 + 1e-6
        assert abs(new_rx - f_tx) < 1e-3 * abs(cfo)
    with pytest.raises(ValueError, match="apply_to"):
        cal.xo_correction_hz(1.0, f_c, apply_to="both")


# -- the command line ------------------------------------------------------------------------------------


def test_cli_with_sim_radios_writes_a_valid_record(tmp_path, capsys):
    from mtsc_sdr.cli import main

    code = main(["calibrate", "--tx", "sim", "--rx", "sim", "--sim-profile", str(LAB_PLUTO), "--out", str(tmp_path),
                 "--gains", "-30", "-20", "-10", "--frames", "8", "--capture-samples", "32768",
                 "--note", "test", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    rec = cal.load_record(out["path"])
    assert rec.id == out["record_id"] and rec.note == "test" and rec.tx.kind == "sim"
    assert rec.freq_hz == 2.4e9 and [p.tx_gain_db for p in rec.results.gain_table] == [-30.0, -20.0, -10.0]
    lab = ChannelProfile.from_yaml(LAB_PLUTO)
    # the lab profile's CFO, plus the tone's shift by the 2 ppm sample-rate offset, within the
    # estimator's std (dominated here by the profile's 50 Hz phase-noise linewidth)
    c = rec.results.cfo
    sro = lab.sro.sro_ppm * 1e-6
    assert abs(c.cfo_hz - (lab.cfo.cfo_hz - c.tone_hz * sro / (1 + sro))) < Z * c.std_hz
    assert c.std_hz < 0.01 * lab.cfo.cfo_hz
    assert rec.results.cfo.xo_correction_hz == pytest.approx(40e6 / (1 + rec.results.cfo.cfo_hz / 2.4e9))


def test_cli_two_sim_radios_share_the_air_and_print_a_table(tmp_path, capsys):
    from mtsc_sdr.cli import main

    code = main(["calibrate", "--tx", "sim:a", "--rx", "sim:b", "--out", str(tmp_path / "r.yaml"),
                 "--gains", "-20", "-10", "--frames", "5", "--capture-samples", "16384"])
    assert code == 0
    text = capsys.readouterr().out
    assert "calibration r: tx sim sim-a -> rx sim sim-b" in text and "SNR Es/N0" in text
    rec = cal.load_record(tmp_path / "r.yaml")
    assert (rec.tx.serial, rec.rx.serial) == ("sim-a", "sim-b") and rec.results.gain_table[-1].snr_db > 40
    assert main(["calibrate", "--tx", "hackrf"]) == 1
    assert "KIND pluto, usrp or sim" in capsys.readouterr().err


def test_cli_capture_records_every_received_sample_annotated_per_step(tmp_path, capsys):
    from mtsc_sdr.capture import read_recording
    from mtsc_sdr.cli import main

    code = main(["calibrate", "--tx", "sim", "--out", str(tmp_path), "--gains", "-20", "-10", "--frames", "5",
                 "--capture-samples", "16384", "--capture", str(tmp_path / "cal"), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    rec = read_recording(tmp_path / "cal")
    assert rec.field("mtsc:source") == "calibration" and rec.end == "complete"
    steps = [a["core:comment"] for a in rec.annotations]
    assert steps[0].startswith("noise floor") and any(x.startswith("CFO") for x in steps)
    assert {x for x in steps if x.startswith("SNR")} == {"SNR at TX gain -20 dB", "SNR at TX gain -10 dB"}
    # the annotations tile the recording: every received sample is there, in order
    starts = [a["core:sample_start"] for a in rec.annotations]
    counts = [a["core:sample_count"] for a in rec.annotations]
    assert starts == list(np.cumsum([0] + counts[:-1])) and sum(counts) == rec.samples().size
    assert "recording: cal.sigmf-meta" in cal.load_record(out["path"]).note


def test_cli_capture_survives_an_unplugged_radio(tmp_path, capsys, monkeypatch):
    """The radio goes away mid-calibration: a clear error, exit 1, and the recording holds every
    sample received up to then, the partial buffer included, closed with the error as its end."""
    from mtsc_sdr.capture import read_recording
    from mtsc_sdr.cli import main
    from mtsc_sdr.radio.driver import RadioDisconnected

    calls = {"n": 0}
    real = SimRadio._recv

    def flaky(self):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RadioDisconnected("sim: USB device went away", received=real(self)[:1000])
        return real(self)

    monkeypatch.setattr(SimRadio, "_recv", flaky)
    code = main(["calibrate", "--tx", "sim", "--out", str(tmp_path), "--gains", "-10", "--frames", "5",
                 "--capture-samples", "16384", "--capture", str(tmp_path / "cal")])
    assert code == 1 and "USB device went away" in capsys.readouterr().err
    rec = read_recording(tmp_path / "cal")
    assert "RadioDisconnected" in rec.end and "went away" in rec.end
    # what receive() delivered: noise (one buffer discarded, 16384 kept), the tone's discarded buffer,
    # then the 1000 samples of the interrupted call
    assert rec.samples().size == 32768 + 16384 + 32768 + 1000
    assert not list(tmp_path.glob("*.yaml"))             # no record from a half-done calibration
