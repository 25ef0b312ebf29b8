"""Radio calibration against the simulated radio: each estimator recovers the SimRadio's known
impairments within tolerances from its own statistics; the gain table and its inverse; records
(round trip, validation errors naming file and field, find_record's warnings); the software channel
built from a record; ``mtsc-sdr calibrate`` with sim radios; ``run``'s record lookup; and the
SimRadio's Radio contract."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from mtsc_sdr.channel import ChannelProfile, IQImbalance, build_channel
from mtsc_sdr.conventions import PAYLOAD_POWER
from mtsc_sdr.radio import calibration as cal
from mtsc_sdr.radio.calibrate import (
    CalibrateSettings,
    calibrate,
    estimate_iq_imbalance,
    estimate_noise,
    estimate_tone,
    tone,
)
from mtsc_sdr.radio.driver import RadioError, open_radio
from mtsc_sdr.radio.profiles import ProfileError, RadioSettings
from mtsc_sdr.radio.sim import SimRadio

REPO = Path(__file__).resolve().parents[1]
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


@pytest.fixture(scope="module")
def calibrated():
    """One full calibration of the known link (about half a second)."""
    radio = sim(seed=11, temperature_c=37.5)
    rec, warnings = calibrate(radio, radio, CalibrateSettings(gains_db=[-40.0, -30.0, -20.0, -10.0], frames=40))
    yield radio, rec, warnings
    radio.close()


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


# -- records -------------------------------------------------------------------------------------------


def test_record_round_trip(calibrated, tmp_path):
    _, rec, _ = calibrated
    path = cal.save_record(rec, tmp_path)
    assert path.parent == tmp_path and rec.id == path.stem == cal.record_name(rec)
    back = cal.load_record(path)
    assert back.to_dict() == rec.to_dict() and back.id == path.stem
    assert back.time.tzinfo is not None
    named = cal.save_record(rec, tmp_path / "lab-bench.yaml")
    assert cal.load_record(named).id == "lab-bench"


def _write(tmp_path, data, name="rec.yaml") -> Path:
    f = tmp_path / name
    f.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return f


def _drop(d: dict, dotted: str) -> None:
    *head, last = dotted.split(".")
    for k in head:
        d = d[k]
    del d[last]


def _set(d: dict, dotted: str, value) -> None:
    *head, last = dotted.split(".")
    for k in head:
        d = d[k] if not k.isdigit() else d[int(k)]
    d[last] = value


@pytest.mark.parametrize("edit,field", [
    (("drop", "results.cfo.cfo_hz"), "results.cfo.cfo_hz"),
    (("drop", "temperature_c"), "temperature_c"),
    (("set", "results.cfo.cfo_hz", "abc"), "results.cfo.cfo_hz"),
    (("set", "freq_hz", -1.0), "freq_hz"),
    (("set", "rx.kind", "hackrf"), "rx.kind"),
    (("set", "timestamp", "2025-01-01T12:00:00"), "timestamp"),
    (("set", "schema_version", 99), "schema_version"),
    (("set", "results.dc_offset.i", 3.0), "results.dc_offset.i"),
    (("set", "results.iq_imbalance.gain_db", 1.0), "results.iq_imbalance.correction"),
    (("set", "results.gain_table", []), "results.gain_table"),
    (("set", "results.extra", 1), "results.extra"),
])
def test_bad_records_are_refused_naming_file_and_field(calibrated, tmp_path, edit, field):
    _, rec, _ = calibrated
    data = rec.to_dict()
    if edit[0] == "drop":
        _drop(data, edit[1])
    else:
        _set(data, edit[1], edit[2])
    f = _write(tmp_path, data)
    with pytest.raises(cal.CalibrationError) as exc:
        cal.load_record(f)
    assert exc.value.field == field and str(exc.value).startswith(f"{f}: {field}: ")


def test_unsorted_gain_table_and_corrupt_yaml_are_refused(calibrated, tmp_path):
    _, rec, _ = calibrated
    data = rec.to_dict()
    data["results"]["gain_table"].reverse()
    with pytest.raises(cal.CalibrationError, match=r"results\.gain_table\[1\]\.tx_gain_db: tx gains must increase"):
        cal.load_record(_write(tmp_path, data))
    bad = _write(tmp_path, "schema_version: 1\nresults: [unclosed\n", "broken.yaml")
    with pytest.raises(cal.CalibrationError, match=re.escape(f"{bad}: not valid YAML")):
        cal.load_record(bad)
    with pytest.raises(cal.CalibrationError, match=re.escape(f"{tmp_path / 'list.yaml'}: expected a mapping")):
        cal.load_record(_write(tmp_path, "- 1\n- 2\n", "list.yaml"))


def _variant(rec, tmp_path, name, *, serial=None, freq_hz=None, days_old=0.0, now=None):
    r = cal.record_from_dict(rec.to_dict())
    if serial:
        r.tx.serial = r.rx.serial = serial
    if freq_hz:
        r.freq_hz = freq_hz
    r.timestamp = (now - dt.timedelta(days=days_old)).isoformat(timespec="seconds")
    return cal.save_record(r, tmp_path, name)


def test_find_record_picks_the_best_match_and_warns(calibrated, tmp_path):
    _, rec, _ = calibrated
    now = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)
    _variant(rec, tmp_path, "a-2400-new", serial="A", freq_hz=2.4e9, days_old=2, now=now)
    _variant(rec, tmp_path, "a-2400-old", serial="A", freq_hz=2.4e9, days_old=40, now=now)
    _variant(rec, tmp_path, "a-915", serial="A", freq_hz=915e6, days_old=1, now=now)
    _variant(rec, tmp_path, "b-2400", serial="B", freq_hz=2.4e9, days_old=1, now=now)
    m = cal.find_record(tmp_path, "A", "A", 2.4e9, now=now)
    assert m.id == "a-2400-new" and m.warnings == []
    m = cal.find_record(tmp_path, "A", "A", 2.4e9, now=now + dt.timedelta(days=31))
    assert m.id == "a-2400-new" and len(m.warnings) == 1 and "33.0 days old" in m.warnings[0]
    m = cal.find_record(tmp_path, "A", "A", 2.4e9, now=now, max_age_days=1)
    assert "older than 1 days" in m.warnings[0]
    m = cal.find_record(tmp_path, "A", "A", 1.0e9, now=now)     # nearest frequency: 915 MHz
    assert m.id == "a-915" and "taken at 915 MHz, not 1000 MHz" in m.warnings[0]
    assert cal.find_record(tmp_path, "A", "A", 916e6, now=now, freq_tolerance_hz=2e6).warnings == []
    assert cal.find_record(tmp_path, "B", "B", 2.4e9, now=now).id == "b-2400"
    assert cal.find_record(tmp_path, "loopback", "loopback", 2.4e9, now=now).record is not None   # by address
    none = cal.find_record(tmp_path, "C", "C", 2.4e9, now=now)
    assert none.record is None and "no calibration record for tx C, rx C" in none.warnings[-1]
    assert cal.find_record(tmp_path, None, None, 2.4e9, kind="pluto", now=now).record is None
    by_kind = cal.find_record(tmp_path, None, None, 2.4e9, kind="sim", now=now)
    assert by_kind.record is not None and "matched by radio kind only" in by_kind.warnings[-1]
    (tmp_path / "zz-corrupt.yaml").write_text("schema_version: 1\nresults: {}\n")
    m = cal.find_record(tmp_path, "A", "A", 2.4e9, now=now)
    assert m.id == "a-2400-new" and any("zz-corrupt.yaml: " in w and "skipped" in w for w in m.warnings)


# -- the software channel from a record ---------------------------------------------------------------


def test_channel_from_record_applies_the_measured_impairments(calibrated, tmp_path):
    _, rec, _ = calibrated
    r = rec.results
    profile = cal.channel_profile(rec)
    top = r.gain_table[-1]
    assert profile.rate_sps == rec.rate_sps and profile.awgn.snr_db == pytest.approx(top.snr_db)
    ch = build_channel(profile, seed=9)
    # a tone at the payload's power: re-estimating from the channel's output gives the record back
    y = ch(np.tile(tone(1024, 128, amplitude=math.sqrt(PAYLOAD_POWER)), N // 1024))
    est, iq = estimate_tone(y, 1 / 8), estimate_iq_imbalance(y)
    assert abs((est.freq - 1 / 8) * rec.rate_sps - r.cfo.cfo_hz) < Z * est.freq_std * rec.rate_sps
    assert abs(iq.gain_db - r.iq_imbalance.gain_db) < Z * iq.gain_std_db
    assert abs(iq.phase_deg - r.iq_imbalance.phase_deg) < Z * iq.phase_std_deg
    # DC keeps its ratio to the payload: scaled by sqrt(PAYLOAD_POWER / rx_power) of the top point
    quiet = estimate_noise(build_channel(profile, seed=10)(np.zeros(N, np.complex64)))
    scale = math.sqrt(PAYLOAD_POWER / 10 ** (top.rx_power_dbfs / 10))
    assert abs(quiet.dc - complex(r.dc_offset.i, r.dc_offset.q) * scale) < Z * quiet.dc_std * math.sqrt(2)
    # noise at the record's SNR on the payload power, through the record's IQ imbalance
    k1, k2 = IQImbalance(r.iq_imbalance.gain_db, r.iq_imbalance.phase_deg).coefficients
    n0_db = 10 * math.log10(PAYLOAD_POWER) - top.snr_db + 10 * math.log10(abs(k1) ** 2 + abs(k2) ** 2)
    assert abs(quiet.noise_floor_dbfs - n0_db) < Z * quiet.noise_floor_std_db
    # at a given gain, or SNR
    assert cal.channel_profile(rec, tx_gain_db=-20.0).awgn.snr_db == pytest.approx(r.gain_table[2].snr_db)
    assert cal.channel_profile(rec, snr_db=3.0).awgn.snr_db == 3.0
    with pytest.raises(ValueError, match="DC offset would be"):
        low = cal.record_from_dict(rec.to_dict())
        low.results.gain_table[0].rx_power_dbfs = -120.0
        cal.channel_profile(low, tx_gain_db=-40.0)


def test_profile_option_accepts_a_calibration_record(calibrated, tmp_path):
    _, rec, _ = calibrated
    path = cal.save_record(rec, tmp_path)
    by_content = cal.load_impairment_profile(path)
    assert by_content == cal.channel_profile(rec)
    assert cal.load_impairment_profile(f"calibration:{path}") == by_content
    assert cal.load_impairment_profile(LAB_PLUTO) == ChannelProfile.from_yaml(LAB_PLUTO)
    (tmp_path / "bad.yaml").write_text("schema_version: 1\nresults: {}\n")
    with pytest.raises(cal.CalibrationError, match="bad.yaml: note: required field is missing"):
        cal.load_impairment_profile(tmp_path / "bad.yaml")
    from mtsc_sdr.runtime.channel import add_arguments, profile_from_args
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--in", "tcp://127.0.0.1:1", "--out", "tcp://127.0.0.1:2", "--profile", str(path),
                         "--snr-db", "7"])
    got = profile_from_args(args)
    assert got.cfo.cfo_hz == rec.results.cfo.cfo_hz and got.awgn.snr_db == 7.0


def test_the_shipped_example_record_is_valid_and_labelled_simulated():
    examples = sorted((REPO / "calibration").glob("*.yaml"))
    assert examples, "calibration/ ships an example record"
    for f in examples:
        rec = cal.load_record(f)
        assert rec.tx.kind == "sim" and "SIMULATED" in rec.note
        profile = cal.load_impairment_profile(f)  # CI can run the software channel with it
        assert profile.cfo.cfo_hz == rec.results.cfo.cfo_hz and profile.dc_offset is not None


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

# -- run picks the record ------------------------------------------------------------------------------


def test_run_looks_up_the_record_of_its_radios(calibrated, tmp_path, monkeypatch, capsys):
    from mtsc_sdr.config import ConfigError, from_dict
    from mtsc_sdr.runtime.run import RunConfig, calibration_meta

    _, rec, _ = calibrated
    monkeypatch.chdir(tmp_path)
    pluto = cal.record_from_dict(rec.to_dict())
    for ident in (pluto.tx, pluto.rx):
        ident.kind, ident.serial, ident.address, ident.profile = "pluto", "1044730a", "ip:192.168.2.1", "pluto-ad9363"
    pluto.timestamp = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=45)).isoformat(timespec="seconds")
    path = cal.save_record(pluto, Path("calibration"), "bench")
    cfg = RunConfig(channel="pluto", snr_db=[15.0], radio_args="ip:192.168.2.1", calibration="auto")
    meta = calibration_meta(cfg)
    assert meta["id"] == "bench" and meta["path"] == str(path)
    assert len(meta["warnings"]) == 1 and "days old (older than 30 days)" in meta["warnings"][0]
    assert "calibration bench is 45.0 days old" in capsys.readouterr().err
    assert calibration_meta(replace(cfg, calibration_max_age_days=60, lo_freq_hz=2.45e9))["warnings"] == [
        f"calibration bench was taken at 2400 MHz, not 2450 MHz (tolerance 1 MHz): its CFO scales with "
        f"frequency, its gain table may not hold"]
    none = calibration_meta(replace(cfg, radio_args="usb:1.2.5"))
    assert none["id"] is None and "no calibration record for tx usb:1.2.5" in none["warnings"][0]
    assert calibration_meta(replace(cfg, channel="software", snr_db=[0.0, 10.0])) is None    # no radios
    assert calibration_meta(replace(cfg, calibration=None)) is None
    explicit = calibration_meta(replace(cfg, calibration=str(path), radio_args="ip:10.0.0.2"))
    assert explicit["id"] == "bench" and any("not the pluto ip:10.0.0.2 in use" in w for w in explicit["warnings"])
    (tmp_path / "calibration" / "bench.yaml").write_text("schema_version: one\n")
    with pytest.raises(cal.CalibrationError, match="bench.yaml: schema_version: expected an integer"):
        calibration_meta(replace(cfg, calibration=str(path)))
    with pytest.raises(ConfigError, match="calibration: must be 'auto'"):
        from_dict(RunConfig, {"calibration": "yes"})



def test_run_asks_the_record_for_the_gains_of_its_snr(calibrated, tmp_path, monkeypatch):
    """gains_from_calibration: the run's one snr_db goes through the record's table; the links get
    the TX / RX gains it gives, and an SNR the table does not cover names snr_db."""
    from mtsc_sdr.config import ConfigError, from_dict
    from mtsc_sdr.runtime.run import RunConfig, calibration_meta

    _, rec, _ = calibrated
    monkeypatch.chdir(tmp_path)
    path = cal.save_record(rec, Path("calibration"), "bench")
    snrs = [p.snr_db for p in rec.results.gain_table]
    want = 0.5 * (snrs[0] + snrs[1])
    cfg = RunConfig(channel="pluto", snr_db=[want], calibration=str(path), gains_from_calibration=True)
    meta = calibration_meta(cfg)
    g = [p.tx_gain_db for p in rec.results.gain_table]
    assert g[0] < meta["tx_gain_db"] < g[1] and meta["rx_gain_db"] == rec.rx_gain_db
    assert cal.snr_for_gain(rec, meta["tx_gain_db"]) == pytest.approx(want)
    with pytest.raises(ConfigError, match=r"snr_db: snr_db 99 dB is outside the range measured by calibration bench"):
        calibration_meta(replace(cfg, snr_db=[99.0]))
    with pytest.raises(ConfigError, match="gains_from_calibration: needs a calibration record"):
        from_dict(RunConfig, {"channel": "pluto", "snr_db": [10.0], "gains_from_calibration": True})

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


def test_cli_capture_survives_an_unplugged_radio(tmp_path, capsys, monkeypatch):
    """The radio goes away mid-calibration: a clear error, exit 1, and the recording holds every
    sample received up to then, the partial buffer included, closed with the error as its end."""
    from mtsc_sdr.capture import read_recording
    from mtsc_sdr.cli import main
    from mtsc_sdr.radio.driver import RadioDisconnected
    from mtsc_sdr.radio.sim import SimRadio

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
