"""``run`` looks up the calibration record of its radios and asks it for the gains of its SNR."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from mtsc_sdr.radio import calibration as cal


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
        "calibration bench was taken at 2400 MHz, not 2450 MHz (tolerance 1 MHz): its CFO scales with "
        "frequency, its gain table may not hold"]
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
