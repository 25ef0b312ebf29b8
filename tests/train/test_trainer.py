"""Phase I training on the micro configuration: CLI run writes a loadable checkpoint, a resumed
run equals an uninterrupted one, bad configs name the field, the LR schedule."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

from mtsc_sdr.config import ConfigError
from mtsc_sdr.train.config import TrainConfig

FAST = {"preset": "micro", "tokenizer_scenes": 40, "examples_per_task": 8, "steps": 6, "batch_size": 3,
        "checkpoint_every": 2, "warmup_steps": 1}


def micro(tmp_path, name, **over):
    return TrainConfig.from_dict({**FAST, "checkpoint_dir": str(tmp_path / name), **over})


def test_cli_micro_run_writes_a_loadable_checkpoint(tmp_path, capsys):
    from mtsc_sdr.cli import main
    from mtsc_sdr.model import ModelConfig, load

    cfg_file = tmp_path / "train.yaml"
    cfg_file.write_text("preset: micro\ntokenizer_scenes: 40\nexamples_per_task: 8\nsteps: 4\nbatch_size: 2\n")
    out = tmp_path / "ck"
    rc = main(["train", "--config", str(cfg_file), "--checkpoint-dir", str(out), "--quiet", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(report) == {"meta", "rows"}
    assert report["meta"]["finished"] is True and report["meta"]["config"]["steps"] == 4
    assert all({"system", "task", "channel", "snr_db", "metric", "value"} <= set(r) for r in report["rows"])
    for f in ("model.safetensors", "config.json", "tokenizer.json", "optimizer.safetensors", "trainer_state.json"):
        assert (out / f).is_file(), f
    model = load(out, expect=ModelConfig.micro())
    assert model.cfg == ModelConfig.micro()
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["step"] == 4 and len(state["history"]) == 4 * 5   # one entry per task and step (mix_tasks)
    # finished run found again: nothing to do, exit 0
    assert main(["train", "--config", str(cfg_file), "--checkpoint-dir", str(out), "--quiet"]) == 0


def test_resume_equals_uninterrupted(tmp_path):
    import torch
    from safetensors.torch import load_file

    from mtsc_sdr.train.trainer import train

    straight = train(micro(tmp_path, "a"), quiet=True)
    half = train(micro(tmp_path, "b"), until_step=3, quiet=True)
    assert half.step == 3 and not half.finished and half.stopped_by == "until_step"
    rest = train(micro(tmp_path, "b"), quiet=True)
    assert rest.start_step == 3 and rest.finished
    la = [h[2] for h in straight.history]
    lb = [h[2] for h in rest.history]
    assert [h[1] for h in straight.history] == [h[1] for h in rest.history]
    assert la == pytest.approx(lb, rel=1e-5, abs=1e-6)
    wa = load_file(str(tmp_path / "a" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6, msg=k)


def test_resume_refuses_another_config(tmp_path):
    from mtsc_sdr.train.trainer import ResumeMismatch, train

    train(micro(tmp_path, "c", steps=2), quiet=True)
    with pytest.raises(ResumeMismatch, match="lr"):
        train(micro(tmp_path, "c", steps=2, lr=5e-3), quiet=True)


def test_the_model_config_records_the_runs_retrieval_k():
    cfg = TrainConfig.from_dict({"preset": "micro", "model": {"context_tokens": 8}, "retrieval_k": 3})
    assert cfg.model_config().retrieval_k == 3


def test_bad_config_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"^task_weights"):
        TrainConfig.from_dict({"task_weights": [1.0, 2.0]})
    with pytest.raises(ConfigError, match=r"tasks\[1\]"):
        TrainConfig.from_dict({"tasks": ["vqa", "translate"]})
    with pytest.raises(ConfigError, match=r"^steps: expected an integer"):
        TrainConfig.from_dict({"steps": "many"})
    with pytest.raises(ConfigError, match=r"^model\.d_model"):
        TrainConfig.from_dict({"model": {"d_model": 0}})
    with pytest.raises(ConfigError, match=r"^snr_db_range"):
        TrainConfig.from_dict({"snr_db_range": [20, -5]})
    with pytest.raises(ConfigError, match=r"^importance_weight: must be >= 0"):
        TrainConfig.from_dict({"importance_weight": -1})
    with pytest.raises(ConfigError, match=r"^knowledge_filler_words: must be >= 0"):
        TrainConfig.from_dict({"knowledge_filler_words": -1})
    with pytest.raises(ConfigError, match=r"^model\.retrieval_k: is the run's retrieval_k"):
        TrainConfig.from_dict({"model": {"context_tokens": 8, "retrieval_k": 3}}).model_config()
    with pytest.raises(ConfigError, match=r"^retrieval_k: must be >= 1"):
        TrainConfig.from_dict({"retrieval_k": 0})
    with pytest.raises(ConfigError, match=r"^bogus: unknown field"):
        TrainConfig.from_dict({"bogus": 1})
    f = tmp_path / "bad.yaml"
    f.write_text("train:\n  preset: micro\n  rician_fraction: 2\n")
    with pytest.raises(ConfigError, match=r"^train\.rician_fraction"):
        TrainConfig.load(f)


def test_cli_bad_config_exits_2_naming_the_field(tmp_path, capsys):
    from mtsc_sdr.cli import main

    f = tmp_path / "bad.yaml"
    f.write_text("preset: micro\nbatch_size: 0\n")
    assert main(["train", "--config", str(f), "--checkpoint-dir", str(tmp_path / "x")]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_presets_and_shipped_configs():
    from pathlib import Path

    from mtsc_sdr.config import to_dict

    root = Path(__file__).resolve().parents[2] / "configs"
    assert to_dict(TrainConfig.load(root / "train-micro.yaml")) == to_dict(TrainConfig.micro())
    d = TrainConfig.load(root / "train-default.yaml")
    assert d.preset == "default" and d.snr_db_range == (-5.0, 20.0) and d.num_threads == 2
    assert d.time_budget_s is not None and d.time_budget_s <= 600


def test_lr_schedule_and_draws():
    from mtsc_sdr.train.trainer import draw_step, lr_at

    cfg = TrainConfig.from_dict({"steps": 100, "warmup_steps": 10, "lr": 1e-3, "min_lr_ratio": 0.1})
    assert lr_at(cfg, 0) == pytest.approx(1e-4)
    assert lr_at(cfg, 10) == pytest.approx(1e-3)
    assert lr_at(cfg, 100) == pytest.approx(1e-4)
    sizes = {t: 50 for t in cfg.tasks}
    a, b = draw_step(cfg, 7, sizes), draw_step(cfg, 7, sizes)
    assert a.task == b.task and (a.items == b.items).all() and (a.snr_db == b.snr_db).all()
    snrs = [s for k in range(200) for s in draw_step(cfg, k, sizes).snr_db]
    assert -5 <= min(snrs) < -3 and 18 < max(snrs) <= 20
    fad = {draw_step(cfg, k, sizes).fading for k in range(50)}
    assert fad == {None, "rician"}


def test_mixed_draws_budgets_and_snr_curriculum():
    from mtsc_sdr.train.trainer import draw_steps, snr_range_at

    cfg = TrainConfig.from_dict({"steps": 100, "budgets": [256, 512], "snr_curriculum": 0.5})
    sizes = {t: 50 for t in cfg.tasks}
    draws = draw_steps(cfg, 3, sizes)
    assert [d.task for d in draws] == list(cfg.tasks)               # mix_tasks: every task every step
    assert all(len(d.items) == cfg.batch_size for d in draws)
    again = draw_steps(cfg, 3, sizes)
    assert all((a.items == b.items).all() and a.budget == b.budget for a, b in zip(draws, again))
    assert {d.budget for k in range(20) for d in draw_steps(cfg, k, sizes)} == {256, 512}
    assert snr_range_at(cfg, 0) == (20.0, 20.0)
    assert snr_range_at(cfg, 25) == pytest.approx((7.5, 20.0))
    assert snr_range_at(cfg, 50) == (-5.0, 20.0) == snr_range_at(cfg, 99)
    early = [s for d in draw_steps(cfg, 10, sizes) for s in d.snr_db]
    assert min(early) >= 15.0
    one = TrainConfig.from_dict({"steps": 100, "mix_tasks": False})
    assert len(draw_steps(one, 3, sizes)) == 1
    with pytest.raises(ConfigError, match="snr_curriculum"):
        TrainConfig.from_dict({"snr_curriculum": 2})
    with pytest.raises(ConfigError, match="budgets"):
        TrainConfig.from_dict({"budgets": [0]})


def test_cli_minilm_trains_only_adapters_and_new_modules(minilm_env, tmp_path):
    """`train --backbone minilm`: the frozen pre-trained weights get no optimizer state and are not
    stored; the run resumes against the sizes of the base."""
    from safetensors import safe_open

    from mtsc_sdr.cli import main
    from mtsc_sdr.model import backbones, load

    cfg_file = tmp_path / "train.yaml"
    cfg_file.write_text("preset: micro\nexamples_per_task: 8\nsteps: 3\nbatch_size: 2\nmodel: {dropout: 0.0}\n")
    out = tmp_path / "ck"
    argv = ["train", "--config", str(cfg_file), "--backbone", "minilm", "--checkpoint-dir", str(out), "--quiet"]
    assert main(argv + ["--until-step", "2"]) == 0
    assert main(argv) == 0                                                   # resumes
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["step"] == 3 and state["train_config"]["model"] == {"dropout": 0.0, "backbone": "minilm"}
    assert all(h[2] == h[2] and abs(h[2]) < 1e6 for h in state["history"])    # finite losses
    model = load(out)
    assert model.cfg == backbones.sized(TrainConfig.from_dict({"preset": "micro", "model": {
        "dropout": 0.0, "backbone": "minilm"}}).model_config())
    with safe_open(str(out / "optimizer.safetensors"), "pt") as f:
        params = {k.rpartition("/")[0] for k in f.keys()}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and not (params & frozen)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == params
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert not (set(f.keys()) & model.base_keys())


def test_data_fraction_limits_the_distinct_items_not_the_steps(tmp_path):
    import argparse

    from mtsc_sdr.train.cli import add_arguments, config_from_args
    from mtsc_sdr.train.trainer import example_pool, read_state, train

    full = example_pool(micro(tmp_path, "p", examples_per_task=20))
    tenth = example_pool(micro(tmp_path, "p", examples_per_task=20, data_fraction=0.1))
    for task, items in full.items():
        kept = [e.item_id for e in tenth[task]]
        assert len(kept) == max(1, round(0.1 * len(items)))
        assert kept == [e.item_id for e in items][:len(kept)]        # a subset of the full pool
    assert micro(tmp_path, "p").data_fraction == 1.0
    res = train(micro(tmp_path, "f", steps=3, data_fraction=0.1), quiet=True)
    assert res.step == 3 and read_state(res.checkpoint_dir)["train_config"]["data_fraction"] == 0.1
    with pytest.raises(ConfigError, match=r"^data_fraction: must be in \(0, 1\]"):
        micro(tmp_path, "p", data_fraction=0)
    p = argparse.ArgumentParser()
    add_arguments(p)
    assert config_from_args(p.parse_args(["--preset", "micro", "--data-fraction", "0.25"])).data_fraction == 0.25


def test_task_examples_sizes_one_task_pool(tmp_path):
    from mtsc_sdr.train.trainer import example_pool

    pool = example_pool(micro(tmp_path, "p", examples_per_task=6, task_examples={"vqa": 15}))
    assert len(pool["vqa"]) == 15 and len(pool["caption_image"]) == 6
    with pytest.raises(ConfigError, match=r"^task_examples\.vqa: must be an integer >= 1"):
        micro(tmp_path, "p", task_examples={"vqa": 0})
    with pytest.raises(ConfigError, match=r"^task_examples\.bogus: unknown task"):
        micro(tmp_path, "p", task_examples={"bogus": 3})


def test_release_configs_load():
    """Each shipped model is one run from scratch, with the analog image code fit at its start."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    d = TrainConfig.load(root / "release-default.yaml")
    assert d.preset == "default" and d.model_config().analog_image and d.init_from is None and d.steps > 0
    assert d.pool_size("vqa") > d.pool_size("caption_image")
    m = TrainConfig.load(root / "release-minilm.yaml")
    assert m.model_config().backbone == "minilm" and m.model_config().lam_tuning == "lora"
    assert m.model_config().analog_image and m.init_from is None and m.steps > 0
    for file in sorted((root / "experiments").glob("*.yaml")):     # documented experiments still load
        assert TrainConfig.load(file).steps > 0, file


def test_resume_accepts_a_checkpoint_from_before_a_new_field(tmp_path):
    from mtsc_sdr.train.trainer import STATE_FILE, train

    train(micro(tmp_path, "old", steps=2), quiet=True)
    state_file = tmp_path / "old" / STATE_FILE
    state = json.loads(state_file.read_text())
    del state["train_config"]["data_fraction"]        # as written before the field existed
    state_file.write_text(json.dumps(state))
    assert train(micro(tmp_path, "old", steps=2), quiet=True).finished


def test_blind_batches_zero_the_input_of_tasks_with_a_question():
    from mtsc_sdr.data import collate, examples, zero_question_inputs

    items = examples("train", ["vqa"], n_per_task=3, seed=1)
    vqa = collate(items)
    assert float(vqa["image"].abs().sum()) > 0
    questions = list(vqa["question"])
    vqa = collate(zero_question_inputs(items, "vqa"))
    assert tuple(vqa["image"].shape) == (3, 3, 32, 32) and float(vqa["image"].abs().sum()) == 0.0
    assert vqa["question"] == questions                         # the question is left alone
    caps = examples("train", ["caption_image"], n_per_task=2, seed=1)
    before = collate(caps)["image"].clone()
    assert bool((collate(zero_question_inputs(caps, "caption_image"))["image"] == before).all())   # no question: unchanged


def test_blind_training_never_sees_the_image(tmp_path, monkeypatch):
    """With ``blind`` the training losses are the same whatever the images are (the pool's real
    images, or noise in their place); the same model's loss on unblinded batches does depend on
    them. trainer_state records the field."""
    from dataclasses import replace

    import numpy as np
    import torch

    from mtsc_sdr.data import collate, zero_question_inputs
    from mtsc_sdr.model import load
    from mtsc_sdr.train import trainer

    real_pool = trainer.example_pool

    def noise_pool(cfg):
        rng = np.random.default_rng(9)
        return {t: [replace(e, image=rng.integers(0, 256, e.image.shape, dtype=np.uint8)) for e in items]
                for t, items in real_pool(cfg).items()}

    def losses(name, pool):
        monkeypatch.setattr(trainer, "example_pool", pool)
        cfg = micro(tmp_path, name, tasks=["vqa"], steps=2, blind=True)
        return [h[2] for h in trainer.train(cfg, quiet=True).history], cfg

    real, cfg = losses("b1", real_pool)
    assert real == losses("b2", noise_pool)[0]
    state = json.loads((tmp_path / "b1" / trainer.STATE_FILE).read_text())
    assert state["train_config"]["blind"] is True and state["train_config"]["tasks"] == ["vqa"]
    model = load(tmp_path / "b1").eval()

    def loss(pool, blind):
        items = pool(cfg)["vqa"][:3]
        batch = collate(zero_question_inputs(items, "vqa") if blind else items)
        with torch.no_grad():
            return float(model.loss(batch, "vqa", torch.full((3,), 20.0), generator=torch.Generator().manual_seed(0)))

    assert loss(real_pool, True) == loss(noise_pool, True)
    assert loss(real_pool, False) != loss(noise_pool, False)


def test_question_only_config_is_the_release_run_blind_on_vqa():
    """configs/question-only.yaml differs from release-default.yaml only in tasks, blind, its
    directory and the analog image code (which concerns only the dense task it leaves out), so its
    VQA batches (items, SNRs, channel, seeds) are the release model's."""
    from pathlib import Path

    from mtsc_sdr.config import to_dict
    from mtsc_sdr.train.trainer import draw_steps

    root = Path(__file__).resolve().parents[2] / "configs"
    q, r = TrainConfig.load(root / "question-only.yaml"), TrainConfig.load(root / "release-default.yaml")
    assert q.blind and not r.blind and q.tasks == ("vqa",)
    diff = {k for k, v in to_dict(q).items() if to_dict(r)[k] != v}
    assert diff == {"tasks", "blind", "checkpoint_dir", "model"}
    assert q.model == {"analog_image": False} and r.model == {}
    sizes = {t: r.pool_size(t) for t in r.tasks}
    for step in (0, 1, 777, r.steps - 1):
        a, b = draw_steps(q, step, sizes)[0], draw_steps(r, step, sizes)[0]
        assert a.task == b.task == "vqa" and (a.items == b.items).all() and (a.snr_db == b.snr_db).all()
        assert (a.fading, a.noise_seed, a.torch_seed, a.budget) == (b.fading, b.noise_seed, b.torch_seed, b.budget)


def test_cli_blind_flag():
    import argparse

    from mtsc_sdr.train.cli import add_arguments, config_from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    assert config_from_args(p.parse_args(["--preset", "micro", "--tasks", "vqa", "--blind"])).blind is True
    assert config_from_args(p.parse_args(["--preset", "micro"])).blind is False


def test_init_from_adds_the_analog_code_to_a_run_trained_without_it(tmp_path):
    """init_from with 0 steps (how the earlier releases added the analog code to a run trained
    without it): keeps every weight, fits the analog image code and records the source run (the
    release card shows it)."""
    import torch

    from mtsc_sdr.model import load
    from mtsc_sdr.train.release import release
    from mtsc_sdr.train.trainer import read_state, train

    train(micro(tmp_path, "s1", steps=2, model={"analog_image": False}), quiet=True)
    res = train(micro(tmp_path, "s2", steps=0, init_from=str(tmp_path / "s1")), quiet=True)
    old, new = load(tmp_path / "s1"), load(res.checkpoint_dir)
    assert old.client.analog is None and new.client.analog is not None
    assert not torch.equal(new.client.analog.basis, torch.eye(*new.client.analog.basis.shape))   # fit
    assert torch.equal(new.server.analog.lam, new.client.analog.lam)
    new_sd = new.state_dict()
    for k, v in old.state_dict().items():
        assert torch.equal(new_sd[k], v), k
    state = read_state(res.checkpoint_dir)
    assert state["step"] == 0 and state["init_from"]["step"] == 2
    assert state["init_from"]["train_config"]["model"] == {"analog_image": False}
    out = release(res.checkpoint_dir, tmp_path / "rel", command="two commands")
    assert "Initialised from" in (out / "MODEL_CARD.md").read_text()
    with pytest.raises(ConfigError, match="^steps: must be >= 1"):
        micro(tmp_path, "x", steps=0)
    with pytest.raises(ConfigError, match="^init_from: "):
        train(micro(tmp_path, "s3", steps=0, init_from=str(tmp_path / "nowhere")), quiet=True)
