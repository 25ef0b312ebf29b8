"""Building a fresh :class:`~.split.MTSCModel` from a :class:`~.config.ModelConfig`."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from . import backbones
from .config import ModelConfig
from .split import MTSCModel
from .tokenizer import TextTokenizer


def build_model(cfg: ModelConfig, tokenizer: Optional[TextTokenizer] = None,
                lam_path: Optional[str] = None) -> MTSCModel:
    """A fresh :class:`MTSCModel`.

    Args:
        cfg: sizes; ``cfg.backbone`` names the project's own backbone
            (:mod:`mtsc_sdr.model.backbones`); ``cfg.lam_path`` (or ``lam_path``) selects a local
            Hugging Face checkpoint instead, whose backbone kind is detected from its config.
        tokenizer: required for the project's own BART (train one with
            :meth:`TextTokenizer.train`); a backbone with packaged weights (minilm) uses the
            packaged tokenizer unless given; with a local checkpoint its own tokenizer is loaded
            from the same directory unless given. The returned model's ``cfg`` has the sizes the
            backbone fixes (:func:`mtsc_sdr.model.backbones.sized`).
    Raises:
        ValueError: no tokenizer, or one with more ids than the backbone's vocabulary.
    """
    lam_path = lam_path or cfg.lam_path
    if lam_path:
        module = backbones.get(backbones.detect(lam_path))
        backbone = module.load(lam_path, cfg)
        tokenizer = tokenizer or module.tokenizer(lam_path)
        cfg = replace(module.model_config(cfg, backbone.config), lam_path=str(lam_path))
        cfg.validate()
    else:
        module = backbones.get(cfg.backbone)
        tokenizer = tokenizer or module.packaged_tokenizer()
        if tokenizer is None:
            raise ValueError(f"the project's own {cfg.backbone} backbone needs a tokenizer: "
                             "TextTokenizer.train() or .load(dir)")
        cfg = backbones.sized(cfg)
        cfg.validate()
        backbone = module.build(cfg, tokenizer)
    if tokenizer.vocab_size > backbone.vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.vocab_size} ids but the backbone's vocabulary has "
                         f"{backbone.vocab_size}: they are not made for each other")
    return MTSCModel(cfg, tokenizer, backbone)
