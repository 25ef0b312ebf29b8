"""Building a fresh :class:`~.split.MTSCModel` from a :class:`~.config.ModelConfig`."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from .config import ModelConfig
from .split import MTSCModel
from .tokenizer import TextTokenizer


def build_model(cfg: ModelConfig, tokenizer: Optional[TextTokenizer] = None,
                lam_path: Optional[str] = None) -> MTSCModel:
    """A fresh :class:`MTSCModel`.

    Args:
        cfg: sizes; ``cfg.lam_path`` (or ``lam_path``) selects a local HF BART checkpoint.
        tokenizer: required for the project's own BART (train one with :meth:`TextTokenizer.train`);
            with a local checkpoint its own tokenizer is loaded from the same directory unless given.
    Raises:
        ValueError: no tokenizer, or one with more ids than the backbone's vocabulary.
    """
    from .lam import bart_config, build_bart, config_from_bart, load_bart

    lam_path = lam_path or cfg.lam_path
    if lam_path:
        bart = load_bart(lam_path)
        tokenizer = tokenizer or TextTokenizer.from_hf_dir(lam_path)
        cfg = replace(config_from_bart(cfg, bart.config), lam_path=str(lam_path))
        cfg.validate()
    else:
        if tokenizer is None:
            raise ValueError("the project's own BART needs a tokenizer: TextTokenizer.train() or .load(dir)")
        bart = build_bart(bart_config(cfg, tokenizer.vocab_size, tokenizer.pad_id, tokenizer.bos_id,
                                      tokenizer.eos_id))
    if tokenizer.vocab_size > bart.config.vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.vocab_size} ids but the backbone's vocabulary has "
                         f"{bart.config.vocab_size}: they are not made for each other")
    conf = bart.config.to_dict()
    conf.pop("transformers_version", None)
    return MTSCModel(cfg, tokenizer, bart, conf)
