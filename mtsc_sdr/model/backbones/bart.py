"""BART as the LAM: the project's own small BART, or any local Hugging Face BART (``--lam PATH``).

The project's own BART is built from a ``BartConfig`` made from :class:`~..config.ModelConfig`
(random init, trained by the project). :func:`load` reads a *local* Hugging Face checkpoint
directory (e.g. BART-base) with ``local_files_only=True``: nothing is downloaded. Either way the
``BartModel`` is cut into :class:`BartLAMEncoder` (client) and :class:`BartLAMDecoder` (server);
see :mod:`..lam` for the tensors they take and give. The module interface is described in
:mod:`mtsc_sdr.model.backbones`.

* **Tuning a local pre-trained BART** follows ``ModelConfig.lam_tuning``: ``lora`` (the default,
  the paper's phase I: "the pre-trained layers of the LAM remain unchanged, while trainable
  low-rank decomposition matrices are embedded into the existing layers") freezes every
  pre-trained weight -- token and position embeddings, layer norms, and BART's cross-attention,
  which is pre-trained too -- and injects LoRA adapters (HF ``peft``, rank ``lora_rank``, scale
  ``lora_alpha / lora_rank``, :mod:`.lora`) into the :data:`ADAPTER_TARGETS` of every encoder and
  decoder layer, cross-attention included; ``full`` trains every weight. The backbone config then
  records the adapters under :data:`LORA_KEY` (``{"rank": r, "alpha": a}``), absent without them.
* **The project's own BART** (no ``lam_path``) has nothing pre-trained to keep: it is randomly
  initialised and trained fully whatever ``lam_tuning`` says, its config dict is the plain
  ``BartConfig`` one, as before.
* **Checkpoints** of a LoRA-tuned local BART store every weight (the frozen base included) with
  the adapters: the local directory the base came from need not exist where the checkpoint is
  loaded. :func:`from_config` rebuilds the LoRA wrappers from :data:`LORA_KEY`, so the stored
  keys (``...q_proj.base_layer.weight``, ``...q_proj.lora_A.default.weight``) fit again. The int8
  client merges the adapters into the encoder's weights first (:meth:`BartLAMEncoder.merge_adapters`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from transformers import AutoConfig, BartConfig, BartModel

from ..config import ModelConfig
from ..lam import CrossAttention, LAMDecoder, LAMEncoder
from ..tokenizer import TextTokenizer
from . import Backbone, lora

#: Hugging Face ``model_type`` values this module loads.
MODEL_TYPES: tuple[str, ...] = ("bart", "mbart")
#: Linear layers adapters may target: attention projections (self- and cross-attention) and the
#: feed-forward layers of every encoder and decoder layer.
ADAPTER_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
#: key of the backbone config dict that records LoRA adapters (a local BART tuned with ``lora``)
LORA_KEY = "mtsc_lora"


class BartLAMEncoder(LAMEncoder):
    """Client half: BART's encoder (and the shared token embedding it owns); ``tuned``: it holds
    LoRA adapters."""

    def __init__(self, encoder, tuned: bool = False):
        super().__init__()
        self.encoder, self.lora = encoder, tuned

    @property
    def embed_tokens(self) -> nn.Embedding:
        return self.encoder.embed_tokens

    def forward(self, inputs_embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """inputs_embeds (B, L, d), mask bool (B, L) -> states (B, L, d). BART adds positions."""
        return self.encoder(inputs_embeds=inputs_embeds, attention_mask=mask.long()).last_hidden_state

    def merge_adapters(self) -> None:
        """Fold each LoRA delta into its base weight and drop the adapter (in place)."""
        if self.lora:
            lora.merge(self)
            self.lora = False


class BartLAMDecoder(LAMDecoder):
    """Server half: BART's decoder run on learned task queries instead of tokens."""

    def __init__(self, decoder):
        super().__init__()
        decoder.embed_tokens = None  # tokens are never embedded server-side
        self.decoder = decoder

    def forward(self, queries: torch.Tensor, semantics: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """queries (B, Q, d), semantics (B, K, d), mask bool (B, K) -> task semantics (B, Q, d)."""
        return self.decoder(inputs_embeds=queries, encoder_hidden_states=semantics,
                            encoder_attention_mask=mask.long(), use_cache=False).last_hidden_state

    def cross_attentions(self) -> list[CrossAttention]:
        return [CrossAttention(a.q_proj, a.k_proj, a.num_heads, a.head_dim, a.scaling)
                for a in (layer.encoder_attn for layer in self.decoder.layers)]


def matches(hf_config: dict) -> bool:
    """Whether a Hugging Face ``config.json`` (as a dict) describes a BART-family model."""
    return hf_config.get("model_type") in MODEL_TYPES


def own_config(cfg: ModelConfig, vocab_size: int, pad_id: int, bos_id: int, eos_id: int) -> BartConfig:
    """A ``BartConfig`` for the project's own small BART.

    ``init_std = d_model ** -0.5``: BART's default 0.02 is sized for d_model 768-1024; at 128 it
    makes every linear a ~0.23 gain, so the cross-attention path (v then out projection) from the
    received semantics into the task queries starts at ~0.05 of the residual stream, the task
    semantics are nearly the same for every input, and training settles on the text prior
    (constant outputs). With 1/sqrt(d) each linear starts near unit gain."""
    return BartConfig(vocab_size=vocab_size, d_model=cfg.d_model, encoder_layers=cfg.encoder_layers,
                      decoder_layers=cfg.decoder_layers, encoder_attention_heads=cfg.attention_heads,
                      decoder_attention_heads=cfg.attention_heads, encoder_ffn_dim=cfg.ffn_dim,
                      decoder_ffn_dim=cfg.ffn_dim, max_position_embeddings=cfg.max_positions,
                      dropout=cfg.dropout, attention_dropout=0.0, activation_dropout=0.0,
                      pad_token_id=pad_id, bos_token_id=bos_id, eos_token_id=eos_id,
                      decoder_start_token_id=eos_id, forced_eos_token_id=eos_id,
                      scale_embedding=False, tie_word_embeddings=True,
                      init_std=cfg.d_model ** -0.5)


def config_to_dict(conf: BartConfig) -> dict[str, Any]:
    """``conf`` as a plain JSON dict: ``BartConfig.to_dict()`` without the transformers version,
    as JSON has it (``id2label``'s int keys become strings), so it equals what a checkpoint reads."""
    out = conf.to_dict()
    out.pop("transformers_version", None)
    return json.loads(json.dumps(out))


def config_from_dict(config: dict[str, Any]) -> BartConfig:
    """The ``BartConfig`` of a dict written by :func:`config_to_dict` (or ``BartConfig.to_dict()``)."""
    return BartConfig(**{k: v for k, v in config.items() if k != "transformers_version"})


def _wrap(bart: BartModel, adapters: Optional[dict[str, float]] = None) -> Backbone:
    """A ``BartModel`` cut into the two LAM halves; with ``adapters`` (``{"rank": r, "alpha": a}``)
    its pre-trained weights are frozen and LoRA adapters injected first (recorded in the config)."""
    config = config_to_dict(bart.config)
    if adapters is not None:
        lora.inject(bart, ADAPTER_TARGETS, adapters["rank"], adapters["alpha"])
        config[LORA_KEY] = dict(adapters)
    tuned = adapters is not None
    return Backbone("bart", config, BartLAMEncoder(bart.encoder, tuned), BartLAMDecoder(bart.decoder),
                    bart.config.vocab_size)


def from_config(config: dict[str, Any]) -> Backbone:
    """A randomly initialised BART from its config dict, with the LoRA wrappers :data:`LORA_KEY`
    records (a checkpoint's weights are copied in afterwards); no download."""
    conf = config_from_dict({k: v for k, v in config.items() if k != LORA_KEY})
    return _wrap(BartModel(conf), config.get(LORA_KEY))


def build(cfg: ModelConfig, tokenizer: TextTokenizer) -> Backbone:
    """The project's own small BART sized by ``cfg``, its vocabulary and special ids the tokenizer's."""
    conf = own_config(cfg, tokenizer.vocab_size, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id)
    return _wrap(BartModel(conf))


def load(path: str | Path, cfg: ModelConfig) -> Backbone:
    """BART weights from a local checkpoint directory (``--lam PATH``); never the hub. Tuned as
    ``cfg.lam_tuning`` says: ``lora`` (frozen, adapters of rank ``cfg.lora_rank`` and alpha
    ``cfg.lora_alpha``) or ``full``.

    Raises:
        FileNotFoundError: ``path`` is not a directory.
        ValueError: the checkpoint is not a BART-family model.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"--lam {path}: not a directory holding a Hugging Face checkpoint")
    conf = AutoConfig.from_pretrained(str(path), local_files_only=True)
    if conf.model_type not in MODEL_TYPES:
        raise ValueError(f"--lam {path}: model_type is {conf.model_type!r}, expected a BART model")
    adapters = {"rank": cfg.lora_rank, "alpha": cfg.lora_alpha} if cfg.lam_tuning == "lora" else None
    return _wrap(BartModel.from_pretrained(str(path), local_files_only=True), adapters)


def fixed_config(cfg: ModelConfig) -> None:
    """None: ``cfg`` sizes the project's own BART."""
    return None


def packaged_tokenizer() -> None:
    """None: the project's own BART uses the project's trained tokenizer."""
    return None


def tokenizer(path: str | Path) -> TextTokenizer:
    """The transformers tokenizer saved in the local directory ``path`` (never the hub)."""
    return TextTokenizer.from_hf_dir(path)


def model_config(cfg: ModelConfig, config: dict[str, Any]) -> ModelConfig:
    """``cfg`` with the backbone fields (width, layers, heads, ffn, positions) of a BART config dict."""
    return replace(cfg, backbone="bart", d_model=config["d_model"], encoder_layers=config["encoder_layers"],
                   decoder_layers=config["decoder_layers"], attention_heads=config["encoder_attention_heads"],
                   ffn_dim=config["encoder_ffn_dim"], max_positions=config["max_position_embeddings"])
