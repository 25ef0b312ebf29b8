"""Retrieved knowledge as model input (retrieval-augmented generation, ``ModelConfig.context_tokens``).

Where the snippets enter:

* **Client, local knowledge base** (private): the snippets' tokens join the LAM encoder's input
  after the question (:meth:`~.split.ClientModel.embed`), marked by a learned vector, so semantic
  extraction reads them and the JSC encoder sends what it extracted -- never their text.
* **Base station, global knowledge base** (public): :class:`KnowledgeEncoder` turns the snippets
  into states the LAM decoder cross-attends to beside the received semantics
  (:meth:`~.split.ServerModel.forward`): content generation conditioned on them.

Precedence (trained, and tested on the release model): when the two bases disagree about a fact,
the client's local base wins -- it is the user's own, more specific knowledge.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from .config import ModelConfig
from .tokenizer import TextTokenizer


def adapted_query(vectors: np.ndarray, adapter: Optional[np.ndarray]) -> np.ndarray:
    """Questions' sentence embeddings float32 (Q, dim) -> the vectors that search a knowledge base:
    ``normalize(v + v @ adapter.T)`` with the model's learned query adapter float (dim, dim)
    (:mod:`mtsc_sdr.rag.adapter`), or ``vectors`` unchanged for None.

    The document side is untouched (every stored vector stays the embedder's), so a base needs no
    re-embedding and takes new documents as before: only the question moves, as the trained query
    encoder of retrieval-augmented generation does (Lewis et al., 2020, fine-tune the query encoder
    and keep the document index)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if adapter is None:
        return vectors
    out = vectors + vectors @ np.asarray(adapter, dtype=np.float32).T
    return (out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def padded(rows: list[list[int]], pad_id: int, device) -> torch.Tensor:
    """Token id rows -> int64 (B, T) right-padded with ``pad_id``, T = the longest row (>= 1)."""
    out = torch.full((len(rows), max(1, max((len(r) for r in rows), default=0))), pad_id, dtype=torch.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r, dtype=torch.int64)
    return out.to(device)


def context_ids(tokenizer: TextTokenizer, texts: list[str], max_len: int, device) -> torch.Tensor:
    """Retrieved snippets (one string per item, "" for none) -> int64 (B, T) padded with <pad>,
    T >= 1; each cut to its first ``max_len`` tokens (the best-ranked snippet comes first)."""
    return padded([tokenizer._ids(t)[:max_len] if t else [] for t in texts], tokenizer.pad_id, device)


class KnowledgeEncoder(nn.Module):
    """The base station's reader of global snippets: token ids int64 (B, T) (T <=
    ``context_tokens``) -> states float32 (B, T, d) and mask bool (B, T) (True = a real token).

    Its own token embedding (the server has none: the LAM decoder never embeds tokens), learned
    positions and one transformer layer, so a name is read together with the subject it is about.
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int, pad_id: int):
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, cfg.d_model)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.pos = nn.Parameter(torch.randn(cfg.context_tokens, cfg.d_model) * 0.02)
        self.layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.attention_heads, cfg.ffn_dim, cfg.dropout,
                                                activation="gelu", batch_first=True, norm_first=True)
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = ids != self.pad_id
        x = self.embed(ids) + self.pos[:ids.shape[1]]
        # a row with no snippet attends to nothing: give it one unmasked (zero) key so the softmax
        # stays finite; its mask stays False, so the LAM decoder never reads it
        keys = mask.clone()
        keys[:, 0] = True
        x = self.layer(x, src_key_padding_mask=~keys)
        return self.norm(x) * mask[..., None], mask
