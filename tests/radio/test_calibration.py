"""Calibration records: round trip, validation errors naming file and field, find_record's choice
and warnings, the software channel built from a record, the profile option that accepts one, and
the shipped example record."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from mtsc_sdr.channel import ChannelProfile, IQImbalance, build_channel
from mtsc_sdr.conventions import PAYLOAD_POWER
from mtsc_sdr.radio import calibration as cal
from mtsc_sdr.radio.calibrate import estimate_iq_imbalance, estimate_noise, estimate_tone, tone
from tests.radio.sim_link import LAB_PLUTO, N, REPO, Z


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
