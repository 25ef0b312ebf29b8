"""The MTSC model: modality encoders -> LAM encoder -> JSC encoder | channel | JSC decoder ->
LAM decoder -> task decoders, split into :class:`ClientModel` and :class:`ServerModel`.

Quick start (nothing is downloaded)::

    from mtsc_sdr.model import ModelConfig, TextTokenizer, build_model, save, load
    tok = TextTokenizer.train()                       # on the built-in corpus
    model = build_model(ModelConfig.default(), tok)   # own small BART (ModelConfig.backbone)
    # or: build_model(ModelConfig(lam_path="/models/bart-base"))  (local HF checkpoint + tokenizer)

The LAM backbone is one module of :mod:`mtsc_sdr.model.backbones` (a registry of kinds); the
rest of the model sees only its two halves, :class:`~.lam.LAMEncoder` and :class:`~.lam.LAMDecoder`.
    loss = model.loss(batch, "vqa", snr_db=10.0)      # batch = mtsc_sdr.data.collate(examples)

Importing this package imports nothing heavy: each name is imported from its submodule on first use
(torch comes with the model's modules; ``checkpoint``, ``config`` and ``tokenizer`` do without it).
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the submodule that defines it. Attributes are imported on first use (PEP 562),
#: so ``mtsc_sdr.model.checkpoint`` or ``.config`` can be used without importing torch.
_EXPORTS = {
    "CheckpointMismatch": "checkpoint", "load": "checkpoint", "save": "checkpoint",
    "default_checkpoint_dir": "checkpoint",
    "shipped_model_dir": "checkpoint",
    "ModelConfig": "config",
    "JSCCode": "jsc", "JSCDecoder": "jsc", "JSCEncoder": "jsc", "choose_rate": "jsc", "kept_positions": "jsc",
    "ClientModel": "split", "LinkResult": "split", "MTSCModel": "split", "ServerModel": "split",
    "TaskSemantics": "split", "Uplink": "split",
    "TextTokenizer": "tokenizer",
    "build_model": "build",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
