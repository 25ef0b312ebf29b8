"""The backbone seam (:mod:`mtsc_sdr.model.backbones`): the registry, detection of a local
Hugging Face directory's kind, and what the bart backbone says of itself (config dict, adapter
target names)."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch
from torch import nn

from mtsc_sdr.config import ConfigError
from mtsc_sdr.model import ModelConfig, TextTokenizer, backbones, build_model
from mtsc_sdr.model.backbones import bart
from mtsc_sdr.model.lam import LAMDecoder, LAMEncoder

#: the ModelConfig fields a backbone's own config fixes
SIZES = ("d_model", "encoder_layers", "decoder_layers", "attention_heads", "ffn_dim", "max_positions")


@pytest.fixture(scope="module")
def tok():
    return TextTokenizer.train(["a red square left of a blue circle", "what color is the square ?", "red"])


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    return build_model(ModelConfig.micro(), tok)


def test_registry_refuses_an_unknown_kind_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown backbone 'gpt9'; backbones are bart"):
        backbones.get("gpt9")
    assert backbones.get("bart") is bart
    with pytest.raises(ConfigError, match=r"model\.backbone: must be one of bart, minilm, got 'gpt9'"):
        ModelConfig.from_dict({"backbone": "gpt9"})
    assert ModelConfig.from_dict({}).backbone == "bart"


def test_detect_takes_the_first_backbone_that_matches(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mbart"}))
    assert backbones.detect(tmp_path) == "bart"
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match=r"model_type is 'gpt2', which no backbone takes \(backbones are bart, minilm\)"):
        backbones.detect(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        backbones.detect(tmp_path)


def test_the_model_sees_the_backbone_only_as_the_two_halves(model):
    assert isinstance(model.client.lam_encoder, LAMEncoder)
    assert isinstance(model.server.lam_decoder, LAMDecoder)
    assert model.backbone_kind == "bart" and model.cfg.backbone == "bart"


def test_bart_adapter_targets_are_linear_layers_of_both_halves(model):
    halves = {"encoder": model.client.lam_encoder, "decoder": model.server.lam_decoder}
    for half, module in halves.items():
        found = {name.rsplit(".", 1)[-1]: type(m) for name, m in module.named_modules()
                 if name.rsplit(".", 1)[-1] in bart.ADAPTER_TARGETS}
        assert set(found) == set(bart.ADAPTER_TARGETS), half
        assert all(issubclass(t, nn.Linear) for t in found.values()), (half, found)


def test_bart_config_dict_round_trips(model, tok):
    conf = model.backbone_config
    assert json.loads(json.dumps(conf)) == conf                      # plain JSON
    assert bart.config_to_dict(bart.config_from_dict(conf)) == conf
    again = bart.from_config(conf)
    assert again.kind == "bart" and again.config == conf and again.vocab_size == conf["vocab_size"]
    sized = bart.model_config(ModelConfig(), conf)                   # the default sizes, replaced
    micro = ModelConfig.micro()
    assert [getattr(sized, f) for f in SIZES] == [getattr(micro, f) for f in SIZES]
    built = bart.build(ModelConfig.micro(), tok)
    assert built.config == conf and built.vocab_size == tok.vocab_size
