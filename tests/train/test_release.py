"""``mtsc-sdr release``: a training run -> a loadable release directory with its model card."""

from __future__ import annotations

import json

import pytest


def test_release_writes_a_half_precision_model_with_its_card(tmp_path, micro_checkpoint, capsys):
    import torch
    from safetensors import safe_open

    from mtsc_sdr.cli import main
    from mtsc_sdr.data import collate, examples
    from mtsc_sdr.model import load

    (tmp_path / "eval.md").write_text("| task | accuracy |\n| --- | --- |\n| vqa | 12.5 |\n")
    dst = tmp_path / "models" / "micro"
    argv = ["release", str(micro_checkpoint), "--to", str(dst), "--half", "--commit", "abc123",
            "--command", "mtsc-sdr train --preset micro", "--evaluation", str(tmp_path / "eval.md")]
    assert main(argv) == 0
    assert "MODEL_CARD.md" in capsys.readouterr().out
    assert sorted(f.name for f in dst.iterdir()) == sorted(
        ["MODEL_CARD.md", "config.json", "model.safetensors", "provenance.json", "tokenizer.json"])   # no optimizer
    record = json.loads((dst / "provenance.json").read_text())
    assert record["format"] == "mtsc-sdr-provenance" and record["command"] == "mtsc-sdr train --preset micro"
    assert record["step"] == 40 and record["train_config"]["preset"] == "micro" and record["runs"]
    assert "history" not in record                                   # the loss history stays behind
    with safe_open(str(dst / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} <= {torch.float16, torch.int64, torch.bool}
    card = (dst / "MODEL_CARD.md").read_text()
    for text in ("mtsc-sdr train --preset micro", "abc123", "float16", "| vqa | 12.5 |", "Steps: 40 of 40",
                 "sha256"):
        assert text in card
    ours, theirs = load(micro_checkpoint).eval(), load(dst).eval()
    batch = collate(examples("val", ["caption_image"], n_per_task=4, seed=0))
    with torch.no_grad():
        a = ours.client.encode(batch, "caption_image", 20.0).symbols
        b = theirs.client.encode(batch, "caption_image", 20.0).symbols
    assert a.dtype == b.dtype == torch.complex64
    assert torch.allclose(a, b, atol=0.05)                            # float16 rounding only
    from safetensors.torch import load_file

    first = load_file(str(dst / "model.safetensors"))
    assert main(argv) == 0                                          # releasing again: the same weights
    again = load_file(str(dst / "model.safetensors"))
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)


def test_release_refuses_what_is_not_a_training_run_or_too_big(tmp_path, micro_checkpoint, monkeypatch, capsys):
    import shutil

    from mtsc_sdr.cli import main
    from mtsc_sdr.train import release

    bare = tmp_path / "bare"
    shutil.copytree(micro_checkpoint, bare)
    (bare / "trainer_state.json").unlink()
    assert main(["release", str(bare), "--to", str(tmp_path / "r"), "--command", "x"]) == 2
    assert "not a training directory" in capsys.readouterr().err
    monkeypatch.setattr(release, "MAX_RELEASE_BYTES", 1000)
    with pytest.raises(release.ReleaseError, match="over the 0 MB limit"):
        release.release(micro_checkpoint, tmp_path / "big", command="x")
    assert not (tmp_path / "big").exists() and not (tmp_path / "big.tmp").exists()


def test_a_run_initialised_from_a_release_carries_its_provenance(tmp_path, micro_checkpoint):
    """The release keeps its run's record, so a run started from the release (not from the training
    directory) names that run's steps, machine and commit on its own card."""
    from mtsc_sdr.config import ConfigError
    from mtsc_sdr.train import release
    from mtsc_sdr.train.config import TrainConfig
    from mtsc_sdr.train.trainer import read_state, train

    first = release.release(micro_checkpoint, tmp_path / "models" / "first", command="stage 1", commit="abc123")
    over = {"preset": "micro", "tokenizer_scenes": 40, "examples_per_task": 8, "batch_size": 2, "steps": 0,
            "num_threads": 1, "init_from": str(first), "checkpoint_dir": str(tmp_path / "second")}
    train(TrainConfig.from_dict(over), quiet=True)
    source = read_state(tmp_path / "second")["init_from"]
    assert source["step"] == 40 and source["train_config"]["preset"] == "micro" and source["runs"]
    second = release.release(tmp_path / "second", tmp_path / "models" / "second", command="stage 2")
    card = (second / "MODEL_CARD.md").read_text()
    assert f"Initialised from `{first}`" in card and "a run of 40 steps" in card
    assert "predates provenance records" not in card.split("Initialised from")[1]

    (first / "provenance.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="^init_from: .*provenance.json: not a mtsc-sdr-provenance record"):
        train(TrainConfig.from_dict({**over, "checkpoint_dir": str(tmp_path / "third")}), quiet=True)
