"""The LAM's two halves, as the rest of the model sees them, whatever backbone is inside.

* :class:`LAMEncoder` (client): ``inputs_embeds`` float32 (B, L, d) + mask bool (B, L) ->
  states float32 (B, L, d). Text enters through the backbone's shared token embedding
  (:meth:`LAMEncoder.embed_text`); modality tokens are already d-wide.
* :class:`LAMDecoder` (server): task queries float32 (B, Q, d) cross-attend to the received
  semantics (B, K, d) (mask (B, K)) -> task semantics float32 (B, Q, d). The decoder's
  self-attention is causal, so query q sees queries 0..q; every query sees all semantics.
  Its token embedding is dropped: the server never embeds tokens.

Each backbone (:mod:`.backbones`, e.g. :mod:`.backbones.bart`) subclasses both halves around its
own encoder and decoder; what names the backbone's internals stays in its module.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class CrossAttention:
    """One decoder layer's cross-attention, as :meth:`LAMDecoder.forward_with_attention` reads it.

    Attributes:
        q_proj: query projection, (B, Q, d) -> (B, Q, num_heads * head_dim).
        k_proj: key projection, (B, K, d) -> (B, K, num_heads * head_dim).
        num_heads, head_dim: the heads the projections are split into.
        scaling: the factor on q . k before the softmax (usually head_dim ** -0.5).
    """

    q_proj: nn.Module
    k_proj: nn.Module
    num_heads: int
    head_dim: int
    scaling: float


class LAMEncoder(nn.Module):
    """Client half: the backbone's encoder and the shared token embedding it owns."""

    @property
    def embed_tokens(self) -> nn.Embedding:
        """The shared token embedding (vocab, d); the text decoder ties to it."""
        raise NotImplementedError

    def embed_text(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids int64 (B, T) -> embeddings float32 (B, T, d) (the backbone's own scaling)."""
        return self.embed_tokens(ids)

    def forward(self, inputs_embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """inputs_embeds (B, L, d), mask bool (B, L) -> states (B, L, d). The backbone adds positions."""
        raise NotImplementedError

    def base_keys(self) -> set[str]:
        """State-dict keys of this half that hold frozen packaged base weights: checkpoints leave
        them out and the backbone rebuilds them (none for a backbone trained by the project)."""
        return set()

    def merge_adapters(self) -> None:
        """Fold adapters (LoRA) into the weights they adapt, in place (before int8 quantization);
        nothing to do for a half without adapters."""


class LAMDecoder(nn.Module):
    """Server half: the backbone's decoder run on learned task queries instead of tokens."""

    def forward(self, queries: torch.Tensor, semantics: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """queries (B, Q, d), semantics (B, K, d), mask bool (B, K) -> task semantics (B, Q, d)."""
        raise NotImplementedError

    def cross_attentions(self) -> list[CrossAttention]:
        """Each decoder layer's cross-attention, first layer first."""
        raise NotImplementedError

    def base_keys(self) -> set[str]:
        """As :meth:`LAMEncoder.base_keys`."""
        return set()

    def forward_with_attention(self, queries: torch.Tensor, semantics: torch.Tensor,
                               mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`forward`, plus the share of cross-attention each received token gets:
        float32 (B, K), the softmax weights averaged over layers, heads and queries (rows sum to
        1 over the unmasked tokens). Recomputed from each layer's query and key projections
        (captured by hooks), so it does not depend on the attention kernel the backbone picks."""
        layers = self.cross_attentions()
        captured: list[tuple[str, torch.Tensor]] = []
        hooks = []
        for att in layers:
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
        for att, q, k in zip(layers, qs, ks):
            b, nq, _ = q.shape
            q = q.view(b, nq, att.num_heads, att.head_dim).transpose(1, 2)        # (B, H, Q, hd)
            k = k.view(b, k.shape[1], att.num_heads, att.head_dim).transpose(1, 2)  # (B, H, K, hd)
            logits = (q @ k.transpose(-1, -2)) * att.scaling
            w = logits.float().masked_fill(~mask[:, None, None, :], float("-inf")).softmax(-1)
            share = share + w.mean(dim=(1, 2))
        return out, share / max(1, len(qs))
