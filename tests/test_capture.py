"""SigMF capture and replay: the writer (streaming, intact after a disconnect or a kill), the
reader's refusals, ``bs --capture`` through ``mtsc-sdr run``, and ``mtsc-sdr replay`` of a
recording made here and of the recordings shipped in ``recordings/``."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from mtsc_sdr.capture import END_OPEN, RecordingError, SigMFWriter, read_recording, record

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "recordings"


def _noise(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)


def _sigmf_file(path: Path):
    """The recording through the sigmf package itself, validated; any warning is an error."""
    import sigmf

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = sigmf.sigmffile.fromfile(str(path))     # checks core:sha512 against the data too
        f.validate()
    return f


# -- writer ---------------------------------------------------------------------------------------------


def test_writer_round_trip_is_valid_sigmf_with_annotations(tmp_path):
    x = _noise(5000, 1)
    with SigMFWriter(tmp_path / "rec", sample_rate_sps=1e6, source="bs input", frequency_hz=2.4e9,
                     hw="ADALM-Pluto ip:192.168.2.1", rx_gain_db=30.0, tx_gain_db=-10.0, calibration_id="pluto-ab12",
                     fields={"mtsc:sessions": {"3": {"precision": "fp32"}}}) as w:
        for lo in range(0, 5000, 1000):
            w.write(x[lo:lo + 1000])
        w.annotate(3000, 500, "frame", "session 3 seq 1", session=3, seq=1, snr_db=12.5)
        w.annotate(1200, 400, "dropped", "header CRC", reason="header_crc_fail")    # out of order: sorted on write
    f = _sigmf_file(tmp_path / "rec")
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
        w.write(_noise(777, k))
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
    _sigmf_file(tmp_path / "k")


def test_record_keeps_everything_when_the_radio_is_unplugged(tmp_path):
    from mtsc_sdr.radio.driver import RadioDisconnected

    chunks = [_noise(1024, k) for k in range(3)]
    partial = _noise(300, 9)

    def stream():
        yield from chunks
        raise RadioDisconnected("pluto ip:192.168.2.1: device went away (USB unplugged)", received=partial)

    w = SigMFWriter(tmp_path / "d", sample_rate_sps=1e6, source="calibration")
    with pytest.raises(RadioDisconnected):
        record(stream(), w)
    rec = read_recording(tmp_path / "d")
    assert np.array_equal(rec.samples(), np.concatenate(chunks + [partial]))
    assert rec.end == "RadioDisconnected: pluto ip:192.168.2.1: device went away (USB unplugged)"
    _sigmf_file(tmp_path / "d")
    # a stream that ends normally is "complete"
    assert record(iter(chunks), SigMFWriter(tmp_path / "ok", sample_rate_sps=1e6, source="x")) == 3 * 1024
    assert read_recording(tmp_path / "ok").end == "complete"


# -- reader refusals ------------------------------------------------------------------------------------


def _good(tmp_path: Path, name: str = "r") -> tuple[Path, Path]:
    with SigMFWriter(tmp_path / name, sample_rate_sps=1e6, source="test") as w:
        w.write(_noise(100, 0))
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


# -- capture in the base station and replay -------------------------------------------------------------


def _items(path: Path) -> list[dict]:
    records = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return sorted(records, key=lambda r: (r["session"], r["seq"]))


def _decoded(records: list[dict]) -> list[tuple]:
    """What the task decoders made of each item: text, or the reconstruction's PSNR."""
    return [(r["session"], r["seq"], r["item_id"], r.get("psnr_db") if r["task"] == "reconstruct" else r["output"],
             r["snr_est_db"]) for r in records]


def test_bs_capture_in_a_run_and_its_replay_decode_the_same(micro_checkpoint, tmp_path):
    """``run`` with ``capture: true`` over the lab-like software channel records the base station's
    input with its frames and sessions; ``mtsc-sdr replay`` feeds it into a fresh base station and
    decodes exactly what the live clients decoded, finding every frame at the recorded sample."""
    from mtsc_sdr.runtime import protocol
    from mtsc_sdr.runtime.run import ClientSpec, RunConfig, execute

    cfg = RunConfig(name="cap", checkpoint=str(micro_checkpoint), snr_db=[20.0], capture=True,
                    profile=str(ROOT / "configs/channels/lab-pluto.yaml"), out=str(tmp_path / "run"),
                    item_timeout_s=20.0,
                    clients=[ClientSpec(tasks=["vqa", "reconstruct"], n_per_task=1, precision="fp32", window=1)])
    report = execute(cfg)
    assert report["failures"] == []
    assert report["meta"]["recordings"] == [str(tmp_path / "run/recordings/bs-rx0.sigmf-meta")]
    f = _sigmf_file(tmp_path / "run/recordings/bs-rx0")
    g = f.get_global_info()
    assert g["mtsc:source"] == "bs input" and g["mtsc:end"] == "complete"
    assert g["mtsc:checkpoint"] == protocol.checkpoint_identity(micro_checkpoint)
    assert g["mtsc:sessions"]["1"]["items"] == {"split": "val", "tasks": ["vqa", "reconstruct"], "n_per_task": 1,
                                               "seed": 0}
    frames = [a for a in f.get_annotations() if a["core:label"] == "frame"]
    assert [(a["mtsc:session"], a["mtsc:seq"], a["mtsc:task_id"]) for a in frames] == [(1, 0, 0), (1, 1, 4)]
    live = _items(tmp_path / "run/items.jsonl")
    assert [a["mtsc:snr_db"] for a in frames] == [r["snr_est_db"] for r in live]

    out = subprocess.run([sys.executable, "-m", "mtsc_sdr.cli", "replay", str(tmp_path / "run/recordings/bs-rx0"),
                          "--checkpoint", str(micro_checkpoint), "--out", str(tmp_path / "replay"), "--fast", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["frames"]["matching_recording"] == rep["frames"]["frames_recorded"] == 2
    assert rep["failures"] == [] and rep["sessions"]["1"]["items_ok"] == 2
    assert _decoded(_items(tmp_path / "replay/items.jsonl")) == _decoded(live)
    assert (tmp_path / "replay/images").is_dir() and {r["metric"] for r in rep["rows"]} >= {"accuracy", "psnr_db"}


def test_link_test_capture_annotates_every_frame_in_the_recordings_own_index(tmp_path):
    from mtsc_sdr.capture.hooks import frame_samples
    from mtsc_sdr.runtime.link_test import LinkTestConfig, run_link_test
    from mtsc_sdr.runtime.link_tx import payload_for

    cfg = LinkTestConfig(frames=6, payload_len=64, snr_db=25.0, cfo_hz=2000.0, seed=4, capture=str(tmp_path / "lt"))
    result = run_link_test(cfg)
    rec = read_recording(tmp_path / "lt")
    _sigmf_file(tmp_path / "lt")
    assert rec.field("mtsc:source") == "link-test" and rec.field("mtsc:link_test")["frames"] == 6
    assert rec.sample_count == result["samples_received"] and rec.end == "complete"
    frames = [a for a in rec.annotations if a["core:label"] == "frame"]
    assert [a["mtsc:seq"] for a in frames] == list(range(6))
    # each annotation points at its frame: the samples there decode to that frame's payload
    from mtsc_sdr.phy.rx import Receiver

    for a in frames[:2]:
        assert a["core:sample_count"] == frame_samples(64)
        lo = a["core:sample_start"] - 100
        got = Receiver().process(np.concatenate([rec.samples(lo, a["core:sample_count"] + 200),
                                                 np.zeros(2048, np.complex64)]))
        assert len(got) == 1 and got[0].header.seq == a["mtsc:seq"] and got[0].start == 100
        err = np.mean(np.abs(got[0].payload - payload_for(4, a["mtsc:seq"], 64)) ** 2)
        assert 10 * np.log10(err) < -15.0


def _expected() -> dict:
    return json.loads((SHIPPED / "expected.json").read_text())


@pytest.mark.parametrize("name", [n for n, e in _expected().items() if "items" in e])
def test_shipped_recordings_replay_end_to_end(name, tmp_path):
    """Each shipped session recording, replayed into a base station with the checkpoint shipped
    beside it, decodes to what its live clients decoded (recordings/expected.json)."""
    from mtsc_sdr.runtime.replay import replay

    rep = replay(str(SHIPPED / name), checkpoint=str(SHIPPED / "checkpoint"), out=str(tmp_path), fast=True)
    assert rep["failures"] == []
    assert rep["frames"]["matching_recording"] == rep["frames"]["frames_recorded"] == len(_expected()[name]["items"])
    got = _items(tmp_path / "items.jsonl")
    want = _expected()[name]["items"]
    assert [(r["item_id"], r["task"]) for r in got] == [(w["item_id"], w["task"]) for w in want]
    for r, w in zip(got, want):
        assert r["snr_est_db"] == pytest.approx(w["snr_est_db"], abs=0.01)
        if w["task"] == "reconstruct":
            assert r["psnr_db"] == pytest.approx(w["psnr_db"], abs=0.01)
        else:
            assert r["output"] == w["output"]


def test_shipped_link_test_recording_replays_to_frame_statistics(tmp_path, capsys):
    from mtsc_sdr.cli import main

    assert main(["replay", str(SHIPPED / "lab-pluto-link-test"), "--out", str(tmp_path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert "no session info" in rep["message"] and rep["meta"]["config"]["mode"] == "frames"
    fr = rep["frames"]
    assert fr["frames_header_ok"] == fr["matching_recording"] == _expected()["lab-pluto-link-test"]["frames_header_ok"]
    assert 10.0 < fr["snr_est_db_mean"] < 30.0 and 4000.0 < fr["cfo_hz_mean"] < 5600.0     # the profile's 4.8 kHz


def test_replay_refuses_another_checkpoint(tmp_path, capsys):
    """Frames decode correctly only with the checkpoint that encoded them: refused, naming it."""
    from safetensors.torch import load_file, save_file

    from mtsc_sdr.cli import main

    other = tmp_path / "other"
    shutil.copytree(SHIPPED / "checkpoint", other)
    weights = load_file(str(other / "model.safetensors"))
    name = sorted(weights)[0]
    weights[name] = weights[name] + 1.0
    save_file(weights, str(other / "model.safetensors"), metadata={"format": "mtsc-sdr-model", "version": "1"})
    status = main(["replay", str(SHIPPED / "lab-pluto-audio-video"), "--checkpoint", str(other),
                   "--out", str(tmp_path / "o")])
    assert status == 4
    assert "recorded with another checkpoint (weights:" in capsys.readouterr().err


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["annotations"][0].update({"mtsc:rate_idx": 99}), r"annotations\[0\]\.mtsc:rate_idx must be a whole number in 0\.\."),
    (lambda m: m["annotations"][0].update({"mtsc:seq": "zero"}), r"annotations\[0\]\.mtsc:seq must be a whole number"),
    (lambda m: m["global"].update({"mtsc:sessions": [1, 2]}), r"mtsc:sessions must be an object of session objects"),
])
def test_replay_refuses_malformed_session_fields_with_the_field(tmp_path, capsys, edit, message):
    """A shipped session recording whose mtsc: fields were tampered with: refused with the field named
    (exit 2), before any process starts, never a traceback."""
    import shutil

    from mtsc_sdr.cli import main

    name = "lab-pluto-vqa-caption-reconstruct"
    for suffix in (".sigmf-meta", ".sigmf-data"):
        shutil.copy(SHIPPED / (name + suffix), tmp_path / (name + suffix))
    meta_path = tmp_path / (name + ".sigmf-meta")
    meta = json.loads(meta_path.read_text())
    frames = [a for a in meta["annotations"] if a.get("core:label") == "frame"]
    meta["annotations"] = frames + [a for a in meta["annotations"] if a.get("core:label") != "frame"]
    edit(meta)
    meta_path.write_text(json.dumps(meta))
    code = main(["replay", str(tmp_path / name), "--checkpoint", str(SHIPPED / "checkpoint"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert re.search(message, err), err
