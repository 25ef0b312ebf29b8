"""The MTSC model: modality encoders -> LAM encoder -> JSC encoder | channel | JSC decoder ->
LAM decoder -> task decoders, split into :class:`ClientModel` and :class:`ServerModel`.

Quick start (nothing is downloaded)::

    from mtsc_sdr.model import ModelConfig, TextTokenizer, build_model, save, load
    tok = TextTokenizer.train()                       # on the built-in corpus
    model = build_model(ModelConfig.default(), tok)   # own small BART
    # or: build_model(ModelConfig(lam_path="/models/bart-base"))  (local HF checkpoint + tokenizer)
    loss = model.loss(batch, "vqa", snr_db=10.0)      # batch = mtsc_sdr.data.collate(examples)

Importing this package imports torch (it is the model); the CLI imports it lazily.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from .checkpoint import CheckpointMismatch, load, save
from .config import TASK_IDS, TEXT_TASKS, ModelConfig
from .jsc import JSCCode, JSCDecoder, JSCEncoder, choose_rate, keep_top_k
from .split import ClientModel, LinkResult, MTSCModel, ServerModel, TaskSemantics, Uplink
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


__all__ = ["CheckpointMismatch", "load", "save", "TASK_IDS", "TEXT_TASKS", "ModelConfig", "JSCCode",
           "JSCDecoder", "JSCEncoder", "choose_rate", "keep_top_k", "ClientModel", "LinkResult",
           "MTSCModel", "ServerModel", "TaskSemantics", "Uplink", "TextTokenizer", "build_model"]
