"""SigMF recording I/O: the writer (streaming, intact after a disconnect or a kill) and the reader's
refusals, also through ``mtsc-sdr replay``. Capture in a run is in test_hooks.py, replay of the
shipped recordings in tests/runtime/test_replay.py."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mtsc_sdr.capture import END_OPEN, RecordingError, SigMFWriter, read_recording, record
from tests.capture.helpers import ROOT, noise, sigmf_file


# -- writer ---------------------------------------------------------------------------------------------


def test_writer_round_trip_is_valid_sigmf_with_annotations(tmp_path):
    x = noise(5000, 1)
    with SigMFWriter(tmp_path / "rec", sample_rate_sps=1e6, source="bs input", frequency_hz=2.4e9,
                     hw="ADALM-Pluto ip:192.168.2.1", rx_gain_db=30.0, tx_gain_db=-10.0, calibration_id="pluto-ab12",
                     fields={"mtsc:sessions": {"3": {"precision": "fp32"}}}) as w:
        for lo in range(0, 5000, 1000):
            w.write(x[lo:lo + 1000])
        w.annotate(3000, 500, "frame", "session 3 seq 1", session=3, seq=1, snr_db=12.5)
        w.annotate(1200, 400, "dropped", "header CRC", reason="header_crc_fail")    # out of order: sorted on write
    f = sigmf_file(tmp_path / "rec")
    assert np.array_equal(f.read_samples(), x)
    g = f.get_global_info()
    assert g["core:datatype"] == "cf32_le" and g["core:sample_rate"] == 1e6
    assert g["core:recorder"].startswith("mtsc-sdr ") and g["core:hw"] == "ADALM-Pluto ip:192.168.2.1"
    assert (g["mtsc:rx_gain_db"], g["mtsc:tx_gain_db"], g["mtsc:calibration_id"]) == (30.0, -10.0, "pluto-ab12")
    assert (g["mtsc:source"], g["mtsc:end"], g["mtsc:sample_count"]) == ("bs input", "complete", 5000)
    assert g["core:sha512"] == hashlib.sha512(x.tobytes()).hexdigest()
    assert f.get_captures()[0]["core:frequency"] == 2.4e9
    ann = f.get_annotations()
    assert [a["core:label"] for a in ann] == ["dropped", "frame"]
    assert ann[1]["core:sample_start"] == 3000 and ann[1]["core:sample_count"] == 500 and ann[1]["mtsc:seq"] == 1
    rec = read_recording(tmp_path / "rec.sigmf-data")       # any of the names works
    assert rec.sample_count == 5000 and rec.end == "complete"
    assert np.array_equal(np.concatenate(list(rec.chunks(1024))), x)


def test_writer_streams_each_chunk_to_disk_as_it_arrives(tmp_path):
    """The data file grows with every chunk (nothing is held back in memory) and the meta file
    is readable at any time: written at open, rewritten as samples arrive."""
    w = SigMFWriter(tmp_path / "s", sample_rate_sps=2e6, source="calibration", meta_interval_s=0.0)
    assert read_recording(tmp_path / "s").end == END_OPEN          # readable before the first sample
    for k in range(1, 6):
        w.write(noise(777, k))
        assert w.data_path.stat().st_size == 8 * 777 * k
        rec = read_recording(tmp_path / "s")
        assert rec.sample_count == 777 * k and rec.end == END_OPEN
    w.close()
    assert read_recording(tmp_path / "s").end == "complete"


def test_killed_writer_leaves_a_readable_recording(tmp_path):
    """A process killed (SIGKILL) mid-recording: every sample it wrote and the meta of its last
    update are there; the recording says it was never closed."""
    script = f"""
import os, signal
import numpy as np
from mtsc_sdr.capture import SigMFWriter
w = SigMFWriter({str(tmp_path / "k")!r}, sample_rate_sps=1e6, source="bs input", meta_interval_s=0.0)
for k in range(4):
    w.write(np.full(1000, k, np.complex64))
w.annotate(1500, 100, "frame", session=1, seq=0)
w.write(np.full(500, 9, np.complex64))
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    rec = read_recording(tmp_path / "k")
    assert rec.end == END_OPEN and rec.sample_count == 4500
    assert rec.samples(3999, 2).tolist() == [3, 9]
    assert [a["mtsc:seq"] for a in rec.annotations] == [0]
    sigmf_file(tmp_path / "k")


def test_record_keeps_everything_when_the_radio_is_unplugged(tmp_path):
    from mtsc_sdr.radio.driver import RadioDisconnected

    chunks = [noise(1024, k) for k in range(3)]
    partial = noise(300, 9)

    def stream():
        yield from chunks
        raise RadioDisconnected("pluto ip:192.168.2.1: device went away (USB unplugged)", received=partial)

    w = SigMFWriter(tmp_path / "d", sample_rate_sps=1e6, source="calibration")
    with pytest.raises(RadioDisconnected):
        record(stream(), w)
    rec = read_recording(tmp_path / "d")
    assert np.array_equal(rec.samples(), np.concatenate(chunks + [partial]))
    assert rec.end == "RadioDisconnected: pluto ip:192.168.2.1: device went away (USB unplugged)"
    sigmf_file(tmp_path / "d")
    # a stream that ends normally is "complete"
    assert record(iter(chunks), SigMFWriter(tmp_path / "ok", sample_rate_sps=1e6, source="x")) == 3 * 1024
    assert read_recording(tmp_path / "ok").end == "complete"


# -- reader refusals ------------------------------------------------------------------------------------


def _good(tmp_path: Path, name: str = "r") -> tuple[Path, Path]:
    with SigMFWriter(tmp_path / name, sample_rate_sps=1e6, source="test") as w:
        w.write(noise(100, 0))
    return tmp_path / f"{name}.sigmf-meta", tmp_path / f"{name}.sigmf-data"


def _edit_meta(meta: Path, fn) -> None:
    m = json.loads(meta.read_text())
    fn(m)
    meta.write_text(json.dumps(m))


@pytest.mark.parametrize("corrupt, message", [
    (lambda m, d: m.write_text('{"global": {'), r"r\.sigmf-meta: not valid JSON"),
    (lambda m, d: m.unlink(), r"r\.sigmf-meta: no such file"),
    (lambda m, d: d.unlink(), r"r\.sigmf-data: no such file"),
    (lambda m, d: _edit_meta(m, lambda x: x["global"].update({"core:datatype": "ci16_le"})),
     r"core:datatype is 'ci16_le'.*cf32_le"),
    (lambda m, d: _edit_meta(m, lambda x: x["global"].pop("core:datatype")), r"not valid SigMF metadata"),
    (lambda m, d: _edit_meta(m, lambda x: x.pop("captures")), r"'captures' must be a JSON array"),
    (lambda m, d: d.write_bytes(d.read_bytes()[:-3]), r"r\.sigmf-data: 797 bytes is not a whole number"),
    (lambda m, d: d.write_bytes(d.read_bytes()[:-8]), r"mtsc:sample_count says 100 samples, r\.sigmf-data holds 99"),
    (lambda m, d: _edit_meta(m, lambda x: x["annotations"].append(
        {"core:sample_start": 90, "core:sample_count": 20})), r"annotations\[0\] covers samples up to 110"),
    (lambda m, d: d.write_bytes(bytes(800)), r"SHA-512 differs"),
])
def test_corrupt_recordings_are_refused_with_the_reason(tmp_path, corrupt, message):
    meta, data = _good(tmp_path)
    corrupt(meta, data)
    with pytest.raises(RecordingError, match=message):
        read_recording(tmp_path / "r")


def test_replay_cli_refuses_a_corrupt_recording(tmp_path, capsys):
    from mtsc_sdr.cli import main

    _, data = _good(tmp_path)
    data.write_bytes(data.read_bytes()[:-3])
    assert main(["replay", str(tmp_path / "r"), "--out", str(tmp_path / "o")]) == 2
    assert "not a whole number of 8-byte complex64 samples" in capsys.readouterr().err
