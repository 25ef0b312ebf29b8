"""``mtsc-sdr replay`` of the recordings shipped in ``recordings/``: end to end, the link-test
recording's frame statistics, and its refusals (another checkpoint, malformed session fields)."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tests.capture.helpers import SHIPPED, jsonl_items


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
    got = jsonl_items(tmp_path / "items.jsonl")
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
