"""The LAM backbone: a BART encoder-decoder from ``transformers``, split in two halves.

* :class:`LAMEncoder` (client): ``inputs_embeds`` float32 (B, L, d) + mask bool (B, L) ->
  states float32 (B, L, d). Text enters through the BART shared token embedding
  (:meth:`LAMEncoder.embed_text`); modality tokens are already d-wide.
* :class:`LAMDecoder` (server): task queries float32 (B, Q, d) cross-attend to the received
  semantics (B, K, d) (mask (B, K)) -> task semantics float32 (B, Q, d). BART's decoder
  self-attention is causal, so query q sees queries 0..q; every query sees all semantics.
  Its token embedding is dropped: the server never embeds tokens.

The default BART is built from a ``BartConfig`` made from :class:`ModelConfig` (random init,
trained by the project). :func:`load_bart` reads a *local* Hugging Face checkpoint directory
(``--lam PATH``, e.g. BART-base) with ``local_files_only=True``: nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .config import ModelConfig


def bart_config(cfg: ModelConfig, vocab_size: int, pad_id: int, bos_id: int, eos_id: int):
    """A ``transformers.BartConfig`` for the project's own small BART.

    ``init_std = d_model ** -0.5``: BART's default 0.02 is sized for d_model 768-1024; at 128 it
    makes every linear a ~0.23 gain, so the cross-attention path (v then out projection) from the
    received semantics into the task queries starts at ~0.05 of the residual stream, the task
    semantics are nearly the same for every input, and training settles on the text prior
    (constant outputs). With 1/sqrt(d) each linear starts near unit gain."""
    from transformers import BartConfig

    return BartConfig(vocab_size=vocab_size, d_model=cfg.d_model, encoder_layers=cfg.encoder_layers,
                      decoder_layers=cfg.decoder_layers, encoder_attention_heads=cfg.attention_heads,
                      decoder_attention_heads=cfg.attention_heads, encoder_ffn_dim=cfg.ffn_dim,
                      decoder_ffn_dim=cfg.ffn_dim, max_position_embeddings=cfg.max_positions,
                      dropout=cfg.dropout, attention_dropout=0.0, activation_dropout=0.0,
                      pad_token_id=pad_id, bos_token_id=bos_id, eos_token_id=eos_id,
                      decoder_start_token_id=eos_id, forced_eos_token_id=eos_id,
                      scale_embedding=False, tie_word_embeddings=True,
                      init_std=cfg.d_model ** -0.5)


def build_bart(config_dict_or_obj):
    """A randomly initialised ``BartModel`` from a BartConfig (or its ``to_dict()``); no download."""
    from transformers import BartConfig, BartModel

    conf = config_dict_or_obj
    if isinstance(conf, dict):
        conf = BartConfig(**{k: v for k, v in conf.items() if k not in ("transformers_version",)})
    return BartModel(conf)


def load_bart(path: str | Path):
    """``BartModel`` weights from a local checkpoint directory (``--lam PATH``); never the hub.

    Raises:
        FileNotFoundError: ``path`` is not a directory.
        ValueError: the checkpoint is not a BART-family model.
    """
    from transformers import AutoConfig, BartModel

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"--lam {path}: not a directory holding a Hugging Face checkpoint")
    conf = AutoConfig.from_pretrained(str(path), local_files_only=True)
    if conf.model_type not in ("bart", "mbart"):
        raise ValueError(f"--lam {path}: model_type is {conf.model_type!r}, expected a BART model")
    return BartModel.from_pretrained(str(path), local_files_only=True)


def config_from_bart(cfg: ModelConfig, conf) -> ModelConfig:
    """``cfg`` with the backbone fields (width, layers, heads, ffn, positions) taken from ``conf``."""
    from dataclasses import replace

    heads = conf.encoder_attention_heads
    return replace(cfg, d_model=conf.d_model, encoder_layers=conf.encoder_layers,
                   decoder_layers=conf.decoder_layers, attention_heads=heads,
                   ffn_dim=conf.encoder_ffn_dim, max_positions=conf.max_position_embeddings)


class LAMEncoder(nn.Module):
    """Client half: BART's encoder (and the shared token embedding it owns)."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    @property
    def embed_tokens(self) -> nn.Embedding:
        """The shared token embedding (vocab, d); the text decoder ties to it."""
        return self.encoder.embed_tokens

    def embed_text(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids int64 (B, T) -> embeddings float32 (B, T, d) (BART's own scaling)."""
        return self.encoder.embed_tokens(ids)

    def forward(self, inputs_embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """inputs_embeds (B, L, d), mask bool (B, L) -> states (B, L, d). BART adds positions."""
        return self.encoder(inputs_embeds=inputs_embeds, attention_mask=mask.long()).last_hidden_state


class LAMDecoder(nn.Module):
    """Server half: BART's decoder run on learned task queries instead of tokens."""

    def __init__(self, decoder):
        super().__init__()
        decoder.embed_tokens = None  # tokens are never embedded server-side
        self.decoder = decoder

    def forward(self, queries: torch.Tensor, semantics: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """queries (B, Q, d), semantics (B, K, d), mask bool (B, K) -> task semantics (B, Q, d)."""
        return self.decoder(inputs_embeds=queries, encoder_hidden_states=semantics,
                            encoder_attention_mask=mask.long(), use_cache=False).last_hidden_state

    def forward_with_attention(self, queries: torch.Tensor, semantics: torch.Tensor,
                               mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`forward`, plus the share of cross-attention each received token gets:
        float32 (B, K), the softmax weights averaged over layers, heads and queries (rows sum to
        1 over the unmasked tokens). Recomputed from each layer's query and key projections
        (captured by hooks), so it does not depend on the attention kernel transformers picks."""
        captured: list[tuple[str, torch.Tensor]] = []
        hooks = []
        for layer in self.decoder.layers:
            att = layer.encoder_attn
            hooks.append(att.q_proj.register_forward_hook(lambda m, i, o: captured.append(("q", o))))
            hooks.append(att.k_proj.register_forward_hook(lambda m, i, o: captured.append(("k", o))))
        try:
            out = self.forward(queries, semantics, mask)
        finally:
            for h in hooks:
                h.remove()
        qs = [t for kind, t in captured if kind == "q"]
        ks = [t for kind, t in captured if kind == "k"]
        share = semantics.new_zeros(mask.shape, dtype=torch.float32)
        for layer, q, k in zip(self.decoder.layers, qs, ks):
            att = layer.encoder_attn
            b, nq, _ = q.shape
            q = q.view(b, nq, att.num_heads, att.head_dim).transpose(1, 2)        # (B, H, Q, hd)
            k = k.view(b, k.shape[1], att.num_heads, att.head_dim).transpose(1, 2)  # (B, H, K, hd)
            logits = (q @ k.transpose(-1, -2)) * att.scaling
            w = logits.float().masked_fill(~mask[:, None, None, :], float("-inf")).softmax(-1)
            share = share + w.mean(dim=(1, 2))
        return out, share / max(1, len(qs))
