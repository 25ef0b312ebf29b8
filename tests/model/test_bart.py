"""The bart backbone (:mod:`mtsc_sdr.model.backbones.bart`) tuned with LoRA: a local pre-trained
BART (``lam_path``, a tiny one saved here) is frozen with adapters by default, its checkpoints
round-trip without the local directory, and the int8 client merges its adapters; the project's
own BART stays randomly initialised and trained fully."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch
from peft.tuners.lora import LoraLayer
from torch import nn

from mtsc_sdr.compress.quantize import quantize_client
from mtsc_sdr.config import to_dict
from mtsc_sdr.model import ModelConfig, TextTokenizer, build_model, load
from mtsc_sdr.model.backbones import bart
from mtsc_sdr.model.tokenizer import corpus
from tests.bart_fixture import write_bart
from tests.model.helpers import lam_outputs


@pytest.fixture(scope="module")
def tok():
    return TextTokenizer.train(corpus(n_scenes=40, n_audio=10, n_video=10))


@pytest.fixture(scope="module")
def lam(tok, tmp_path_factory):
    return str(write_bart(tmp_path_factory.mktemp("bart") / "bart", tok))


def micro(**over) -> ModelConfig:
    return ModelConfig.from_dict({**to_dict(ModelConfig.micro()), **over})


def _in_lam(name: str) -> bool:
    return ".lam_encoder." in name or ".lam_decoder." in name


def test_a_local_bart_trains_only_its_adapters_by_default(lam):
    model = build_model(micro(), lam_path=lam)
    assert model.cfg.lam_tuning == "lora" and model.backbone_config[bart.LORA_KEY] == {"rank": 8, "alpha": 16.0}
    for name, p in model.named_parameters():
        # inside the LAM only the adapters train (the pre-trained cross-attention is frozen too)
        assert p.requires_grad == (not _in_lam(name) or "lora_" in name), name
    lora_names = [n for n, _ in model.named_parameters() if "lora_A" in n]
    assert {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n in lora_names} == set(bart.ADAPTER_TARGETS)
    assert any(".encoder_attn." in n for n in lora_names)              # cross-attention adapted
    rank = model.client.lam_encoder.encoder.layers[0].self_attn.q_proj.lora_A["default"].weight.shape[0]
    assert rank == 8 and model.base_keys() == set()                    # checkpoints keep every weight


def test_full_tuning_of_a_local_bart_trains_every_weight(lam):
    model = build_model(micro(lam_tuning="full"), lam_path=lam)
    assert all(p.requires_grad for p in model.parameters())
    assert not any(isinstance(m, LoraLayer) for m in model.modules())
    assert bart.LORA_KEY not in model.backbone_config


def test_fresh_adapters_keep_the_pretrained_output_and_trained_ones_change_it_in_eval_no_grad(lam):
    full, tuned = build_model(micro(lam_tuning="full"), lam_path=lam), build_model(micro(), lam_path=lam)
    before = lam_outputs(tuned)
    for a, b in zip(lam_outputs(full), before):                         # lora_B starts at zero
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if "lora_B" in name:
                p.fill_(0.05)
    for b, a in zip(before, lam_outputs(tuned)):
        assert (a - b).abs().max() > 1e-3


def test_checkpoint_round_trip_without_the_local_directory(bart_lora_checkpoint):
    model = load(bart_lora_checkpoint)                                 # the local BART is deleted
    assert any(isinstance(m, LoraLayer) for m in model.modules())
    again = load(bart_lora_checkpoint)
    for a, b in zip(lam_outputs(model), lam_outputs(again)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    state = model.state_dict()
    assert any(k.endswith("q_proj.base_layer.weight") for k in state)  # the frozen base is stored
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)


def test_int8_client_merges_the_adapters(bart_lora_checkpoint):
    from mtsc_sdr.data import collate, examples

    model = load(bart_lora_checkpoint).eval()
    q = quantize_client(model.client)
    assert not any(isinstance(m, (LoraLayer, nn.Linear)) for m in q.modules())
    assert any(isinstance(m, LoraLayer) for m in model.client.modules())   # the original is untouched
    batch = collate(examples("val", ["vqa"], n_per_task=4))
    with torch.no_grad():
        x, y = model.client.encode(batch, "vqa", 10.0), q.encode(batch, "vqa", 10.0)
    assert torch.equal(x.n_tokens, y.n_tokens)
    assert (y.symbols - x.symbols).norm() / x.symbols.norm() < 0.1


def test_the_projects_own_bart_ignores_lam_tuning(tok):
    """No ``lam_path``: random init, every weight trained, the plain BartConfig dict, the same
    weights for the same seed whatever ``lam_tuning`` says."""
    built = {}
    for tuning in ("lora", "full"):
        torch.manual_seed(0)
        built[tuning] = build_model(micro(lam_tuning=tuning), tok)
    lora, full = built["lora"], built["full"]
    assert all(p.requires_grad for p in lora.parameters())
    assert not any(isinstance(m, LoraLayer) for m in lora.modules())
    assert bart.LORA_KEY not in lora.backbone_config and lora.backbone_config == full.backbone_config
    assert lora.backbone_config == bart.config_to_dict(bart.own_config(lora.cfg, tok.vocab_size, tok.pad_id,
                                                                       tok.bos_id, tok.eos_id))
    for (ka, a), (kb, b) in zip(lora.state_dict().items(), full.state_dict().items()):
        assert ka == kb and torch.equal(a, b), ka
