"""``mtsc-sdr train`` and ``eval`` on the real data sets' official layouts (tiny fixtures), mixed with
the built-in world; ``--lam`` with a local BART end to end; ``--device cuda`` without a GPU."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

from mtsc_sdr.cli import main
from mtsc_sdr.config import ConfigError
from mtsc_sdr.train.config import TrainConfig

from ..data.fixtures import write_all

TASKS = ["vqa", "caption_image", "caption_audio", "caption_video", "reconstruct"]
FAST = "preset: micro\ntokenizer_scenes: 40\nexamples_per_task: 8\nbatch_size: 2\ncheckpoint_every: 2\n"


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("real"), n=3)


def _config(tmp_path, text=FAST):
    f = tmp_path / "train.yaml"
    f.write_text(text)
    return str(f)


def _json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _data(specs):
    return [a for s in specs for a in ("--data", s)]


def test_train_and_eval_on_all_five_real_sets(tmp_path, specs, capsys):
    from mtsc_sdr.model import load

    ck = tmp_path / "ck"
    rc = main(["train", "--config", _config(tmp_path), "--steps", "2", "--checkpoint-dir", str(ck),
               "--quiet", "--json", *_data(specs)])
    assert rc == 0
    report = _json(capsys)
    assert report["meta"]["config"]["data"] == specs and report["meta"]["config"]["tasks"] == TASKS
    assert {r["task"] for r in report["rows"] if r["metric"] == "train_loss"} == set(TASKS)
    load(ck)
    rc = main(["eval", "--checkpoint", str(ck), "--snr-db", "10", "--n-per-task", "2", "--no-baseline",
               "--out", str(tmp_path / "ev"), "--json", *_data(specs)])
    assert rc == 0
    ev = _json(capsys)
    assert {r["task"] for r in ev["rows"]} == set(TASKS)
    assert ev["meta"]["config"]["data"]["vqa"] == specs[0] and ev["meta"]["config"]["items"]["vqa"] == 2
    assert all(i.startswith(("vqav2/", "coco/", "cifar10/", "audiocaps/", "msrvtt/"))
               for ids in ev["meta"]["item_ids"].values() for i in ids)


def test_mixed_with_builtin_and_only_the_given_sets(tmp_path, specs, capsys):
    """``data: [builtin, coco=...]``: COCO feeds caption_image, the built-in world the rest; without
    builtin the tasks default to those the sets feed, and eval of another task is refused."""
    ck = tmp_path / "mixed"
    text = FAST + f"steps: 2\ntasks: [caption_image, vqa]\ndata: [builtin, '{specs[1]}']\n"
    assert main(["train", "--config", _config(tmp_path, text), "--checkpoint-dir", str(ck), "--quiet"]) == 0
    rc = main(["eval", "--checkpoint", str(ck), "--snr-db", "10", "--n-per-task", "2", "--no-baseline",
               "--tasks", "caption_image", "vqa", "--data", "builtin", "--data", specs[1],
               "--out", str(tmp_path / "ev"), "--json"])
    assert rc == 0
    ids = _json(capsys)["meta"]["item_ids"]
    assert all(i.startswith("coco/val2014/") for i in ids["caption_image"])
    assert all(i.startswith("scene/") for i in ids["vqa"])
    ck2 = tmp_path / "only"
    assert main(["train", "--config", _config(tmp_path), "--steps", "1", "--checkpoint-dir", str(ck2),
                 "--quiet", "--data", specs[4]]) == 0
    assert json.loads((ck2 / "trainer_state.json").read_text())["train_config"]["tasks"] == ["caption_video"]
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(ck2), "--data", specs[4], "--tasks", "vqa",
                 "--out", str(tmp_path / "ev2")]) == 2
    assert "no data for task(s) ['vqa']" in capsys.readouterr().err


def test_bad_data_names_the_field_and_the_layout(tmp_path, specs, capsys):
    with pytest.raises(ConfigError, match=r"train\.data\[1\]: .*NAME one of"):
        TrainConfig.load(_config(tmp_path, "train:\n  preset: micro\n  data: [builtin, imagenet=/x]\n"))
    with pytest.raises(ConfigError, match=r"^tasks: no data for task\(s\) \['vqa'\]"):
        TrainConfig.from_dict({"preset": "micro", "tasks": ["vqa"], "data": [specs[1]]})
    nowhere = tmp_path / "nowhere"
    assert main(["train", "--config", _config(tmp_path), "--data", f"vqav2={nowhere}"]) == 2
    err = capsys.readouterr().err
    assert "vqav2" in err and str(nowhere) in err and "v2_OpenEnded_mscoco" in err
    (tmp_path / "empty").mkdir()
    assert main(["train", "--config", _config(tmp_path), "--checkpoint-dir", str(tmp_path / "ck"), "--quiet",
                 "--data", f"msrvtt={tmp_path / 'empty'}"]) == 2
    assert "data error: MSR-VTT: annotation JSON not found" in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_exits_2(tmp_path, capsys):
    assert main(["train", "--config", _config(tmp_path), "--device", "cuda", "--checkpoint-dir",
                 str(tmp_path / "ck")]) == 2
    err = capsys.readouterr().err
    assert "device: 'cuda' asked for, but torch finds no CUDA GPU" in err
    with pytest.raises(ConfigError, match="precision: fp16 autocast needs a GPU"):
        TrainConfig.from_dict({"preset": "micro", "precision": "fp16"})


def test_lam_local_bart_trains_evaluates_and_loads(tmp_path, capsys):
    """``--lam PATH``: a tiny Hugging Face BART saved here; a few steps, eval, load the checkpoint."""
    from mtsc_sdr.model import TextTokenizer, load
    from mtsc_sdr.model.tokenizer import corpus
    from tests.bart_fixture import write_bart

    tok = TextTokenizer.train(corpus(n_scenes=40, n_audio=10, n_video=10))
    lam = write_bart(tmp_path / "bart", tok)
    ck = tmp_path / "ck"
    args = ["train", "--config", _config(tmp_path, FAST + "model: {dropout: 0.0}\n"), "--steps", "2",
            "--checkpoint-dir", str(ck), "--quiet", "--lam", str(lam)]
    assert main(args + ["--until-step", "1"]) == 0
    assert main(args) == 0                                               # resumes step 1 -> 2
    state = json.loads((ck / "trainer_state.json").read_text())
    assert state["step"] == 2 and state["train_config"]["model"] == {"dropout": 0.0, "lam_path": str(lam)}
    model = load(ck)
    assert model.cfg.d_model == 48 and model.cfg.lam_path == str(lam) and model.tokenizer.kind == "hf"
    assert model.cfg.lam_tuning == "lora" and model.backbone_config["mtsc_lora"] == {"rank": 8, "alpha": 16.0}
    assert any("lora_A" in name for name, _ in model.named_parameters())          # LoRA by default
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(ck), "--snr-db", "10", "--n-per-task", "2", "--tasks", "vqa",
                 "caption_image", "--out", str(tmp_path / "ev"), "--json"]) == 0
    assert {r["system"] for r in _json(capsys)["rows"]} >= {"mtsc", "separate"}
