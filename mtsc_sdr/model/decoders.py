"""Client-side task decoders: they turn task semantics (B, Q, d) into answers, captions or images.

Both run on the client, after the one downlink message: text generation is local, so it never
needs a radio round trip per token.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import ModelConfig


class TextDecoder(nn.Module):
    """Small causal transformer decoder over the tokenizer vocabulary, cross-attending to the
    task semantics. Input and output embeddings are tied to the LAM's shared token embedding
    (the client holds it anyway), so no second vocabulary table is stored."""

    def __init__(self, cfg: ModelConfig, embedding: nn.Embedding, bos_id: int, eos_id: int, pad_id: int):
        super().__init__()
        d = cfg.d_model
        self.embedding = embedding
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id
        self.max_len = cfg.max_output_len
        # room for <s>, a prompt (the VQA question, and local knowledge snippets) and the output
        self.pos = nn.Parameter(torch.randn(1 + cfg.max_question_len + cfg.context_tokens + cfg.max_output_len, d)
                                * 0.02)
        layer = nn.TransformerDecoderLayer(d, cfg.attention_heads, cfg.ffn_dim, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.layers = nn.TransformerDecoder(layer, cfg.text_decoder_layers)
        self.norm = nn.LayerNorm(d)

    def forward(self, ids: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
        """ids int64 (B, T) (starting with <s>), semantics float32 (B, Q, d) -> logits (B, T, V)."""
        t = ids.shape[1]
        if t > self.pos.shape[0]:
            raise ValueError(f"text decoder input of {t} tokens exceeds 1 + max_question_len + context_tokens + "
                             f"max_output_len = {self.pos.shape[0]}")
        x = self.embedding(ids) + self.pos[:t]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=ids.device), diagonal=1)
        h = self.layers(x, semantics, tgt_mask=causal, tgt_key_padding_mask=ids == self.pad_id,
                        tgt_is_causal=True)
        return self.norm(h) @ self.embedding.weight.T

    @torch.no_grad()
    def generate(self, semantics: torch.Tensor, max_len: int | None = None,
                 prompt: torch.Tensor | None = None) -> torch.Tensor:
        """Greedy decoding: semantics (B, Q, d) -> ids int64 (B, <= max_len), without <s> and the
        prompt; rows that finished are padded with </s>.

        ``prompt`` int64 (B, P), right-padded with <pad>: tokens fed after <s> before the output
        starts (the VQA question; see :meth:`mtsc_sdr.model.split.ClientModel.target_ids`). Each
        row continues right after its own prompt; causal attention never looks past the position
        being predicted, so the padding after a short prompt is never read."""
        max_len = self.max_len if max_len is None else min(int(max_len), self.max_len)
        b, dev = semantics.shape[0], semantics.device
        if prompt is None:
            prompt = torch.empty((b, 0), dtype=torch.int64, device=dev)
        buf = torch.full((b, 1 + prompt.shape[1] + max_len), self.pad_id, dtype=torch.int64, device=dev)
        buf[:, 0] = self.bos_id
        buf[:, 1:1 + prompt.shape[1]] = prompt
        cur = 1 + (prompt != self.pad_id).sum(1)          # (B,) where each row's output starts
        rows = torch.arange(b, device=dev)
        out = torch.full((b, max_len), self.eos_id, dtype=torch.int64, device=dev)
        done = torch.zeros(b, dtype=torch.bool, device=dev)
        steps = 0
        for t in range(max_len):
            logits = self(buf[:, :int(cur.max())], semantics)
            nxt = logits[rows, cur - 1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.eos_id), nxt)
            buf[rows, cur] = nxt
            out[:, t] = nxt
            cur, steps = cur + 1, t + 1
            done |= nxt == self.eos_id
            if bool(done.all()):
                break
        return out[:, :steps]


class ImageDecoder(nn.Module):
    """Task semantics float32 (B, Q, d) -> image float32 (B, 3, H, W) in [0, 1].

    The mirror of :class:`~.encoders.ImageEncoder`'s pixel path, plus a small convolutional
    refinement:

    1. a linear map across the Q task semantics to the g x g grid cells (identity at init when
       Q = g * g, so output i starts as cell i);
    2. each cell's d features -> its p x p x 3 pixels by one linear map (the inverse of the
       encoder's pixel embedding), giving a first image;
    3. a 3-layer conv net at full resolution adds a correction (zero at init), smoothing the
       seams between cells; the result is clipped to [0, 1].
    """

    def __init__(self, cfg: ModelConfig, refine_channels: int = 32):
        super().__init__()
        grid = int(round(math.sqrt(cfg.image_tokens)))
        self.size, self.cell_px = cfg.image_size, cfg.image_size // grid
        self.to_cells = nn.Linear(cfg.task_queries, grid * grid)
        if cfg.task_queries == grid * grid:
            with torch.no_grad():
                self.to_cells.weight.copy_(torch.eye(grid * grid))
                self.to_cells.bias.zero_()
        self.to_pixels = nn.Linear(cfg.d_model, 3 * self.cell_px ** 2)
        c = refine_channels
        self.refine = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.GELU(),
                                    nn.Conv2d(c, c, 3, padding=1), nn.GELU(),
                                    nn.Conv2d(c, 3, 3, padding=1))
        nn.init.zeros_(self.refine[-1].weight)
        nn.init.zeros_(self.refine[-1].bias)

    def forward(self, semantics: torch.Tensor) -> torch.Tensor:
        cells = self.to_cells(semantics.transpose(1, 2)).transpose(1, 2)       # (B, g*g, d)
        px = self.to_pixels(cells).transpose(1, 2)                              # (B, 3 p^2, g*g)
        image = F.fold(px, (self.size, self.size), self.cell_px, stride=self.cell_px) * 0.5 + 0.5
        return (image + self.refine(image)).clamp(0.0, 1.0)
