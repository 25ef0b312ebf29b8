"""Capture hooks: ``bs --capture`` through ``mtsc-sdr run`` records what replays to the same decoded
items, and the link test annotates every frame in the recording's own sample index."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from mtsc_sdr.capture import read_recording
from tests.capture.helpers import ROOT, decoded, jsonl_items, sigmf_file


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
    f = sigmf_file(tmp_path / "run/recordings/bs-rx0")
    g = f.get_global_info()
    assert g["mtsc:source"] == "bs input" and g["mtsc:end"] == "complete"
    assert g["mtsc:checkpoint"] == protocol.checkpoint_identity(micro_checkpoint)
    assert g["mtsc:sessions"]["1"]["items"] == {"split": "val", "tasks": ["vqa", "reconstruct"], "n_per_task": 1,
                                               "seed": 0}
    frames = [a for a in f.get_annotations() if a["core:label"] == "frame"]
    assert [(a["mtsc:session"], a["mtsc:seq"], a["mtsc:task_id"]) for a in frames] == [(1, 0, 0), (1, 1, 4)]
    live = jsonl_items(tmp_path / "run/items.jsonl")
    assert [a["mtsc:snr_db"] for a in frames] == [r["snr_est_db"] for r in live]

    out = subprocess.run([sys.executable, "-m", "mtsc_sdr.cli", "replay", str(tmp_path / "run/recordings/bs-rx0"),
                          "--checkpoint", str(micro_checkpoint), "--out", str(tmp_path / "replay"), "--fast", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["frames"]["matching_recording"] == rep["frames"]["frames_recorded"] == 2
    assert rep["failures"] == [] and rep["sessions"]["1"]["items_ok"] == 2
    assert decoded(jsonl_items(tmp_path / "replay/items.jsonl")) == decoded(live)
    assert (tmp_path / "replay/images").is_dir() and {r["metric"] for r in rep["rows"]} >= {"accuracy", "psnr_db"}


def test_link_test_capture_annotates_every_frame_in_the_recordings_own_index(tmp_path):
    from mtsc_sdr.capture.hooks import frame_samples
    from mtsc_sdr.runtime.link_test import LinkTestConfig, run_link_test
    from mtsc_sdr.runtime.link_tx import payload_for

    cfg = LinkTestConfig(frames=6, payload_len=64, snr_db=25.0, cfo_hz=2000.0, seed=4, capture=str(tmp_path / "lt"))
    result = run_link_test(cfg)
    rec = read_recording(tmp_path / "lt")
    sigmf_file(tmp_path / "lt")
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
