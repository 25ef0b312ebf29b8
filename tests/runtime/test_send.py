"""``mtsc-sdr send FILE`` on the micro model over the software channel: an image caption, a VQA
answer, a reconstructed PNG, and bad input named with exit status 2 before any process starts."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mtsc_sdr.runtime import protocol
from tests.runtime.helpers import cli_argv


@pytest.fixture
def photo(tmp_path):
    """A 48x64 RGB PNG (fitted to the model's 32x32 by the client)."""
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)).save(path)
    return path


def _send(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cli_argv("send", *args), capture_output=True, text=True, timeout=300, env=env)


def test_send_captions_an_image_over_the_software_channel(micro_checkpoint, photo, tmp_path):
    proc = _send(str(photo), "--checkpoint", str(micro_checkpoint), "--snr-db", "20", "--out", str(tmp_path / "o"),
                 "--json")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert rec["task"] == "caption_image" and rec["channel"] == "software" and rec["item_id"] == str(photo)
    assert isinstance(rec["output"], str) and rec["failures"] == []
    assert abs(rec["snr_est_db"] - 20.0) < 2.0
    assert all(rec["latency_ms"][stage] is not None for stage in protocol.stages("torch")), rec["latency_ms"]
    assert rec["latency_ms"]["total"] > 0 and rec["meta"]["config"]["checkpoint"] == str(micro_checkpoint)


def test_send_answers_a_question(micro_checkpoint, photo, tmp_path):
    proc = _send(str(photo), "--question", "what colour is the circle?", "--checkpoint", str(micro_checkpoint),
                 "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{photo}: vqa over software at 20 dB")
    assert [line.split()[0] for line in lines[1:]] == ["question", "answer", "SNR", "latency"], proc.stdout
    assert "modality_encoders" in lines[-1] and "total" in lines[-1]


def test_send_reconstruct_writes_a_png(micro_checkpoint, photo, tmp_path):
    from PIL import Image

    out = tmp_path / "o"
    proc = _send(str(photo), "--task", "reconstruct", "--checkpoint", str(micro_checkpoint), "--out", str(out),
                 "--json")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    png = Path(rec["output"])
    assert rec["task"] == "reconstruct" and png.parent == out and png.name == "1_photo.png"
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (32, 32)
    assert np.isfinite(rec["psnr_db"])


def test_send_names_a_missing_file_or_checkpoint_and_exits_2(photo, tmp_path):
    proc = _send(str(tmp_path / "no-such.png"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no-such.png: no such file" in proc.stderr, proc.stderr
    # the default checkpoint is the shipped model; MTSC_MODELS moves it, here to where none is
    env = dict(os.environ, MTSC_MODELS=str(tmp_path / "models"))
    proc = _send(str(photo), "--out", str(tmp_path / "o"), env=env)
    assert proc.returncode == 2 and str(tmp_path / "models" / "default") in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()                  # nothing started, nothing written
