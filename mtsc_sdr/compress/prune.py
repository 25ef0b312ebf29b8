"""Structured pruning of the client encoder: attention heads and feed-forward channels really removed
(smaller ``nn.Linear`` modules), then a short recovery fine-tune through the channel.

What is pruned
--------------
* **LAM encoder** (the bulk of the client encoder's matrices): in every layer, whole attention
  heads -- their rows of the query / key / value projections and their columns of the attention
  output projection -- and whole FFN channels -- rows of the first FFN linear map, columns of the
  second. The residual width d (LayerNorms, embeddings, the JSC encoder's input) is unchanged, so
  ``client.lam_encoder(x, mask)`` still maps (B, L, d) to (B, L, d). Both backbones: BART
  (``BartEncoderLayer``: ``self_attn.{q,k,v,out}_proj``, ``fc1`` / ``fc2``) and MiniLM (``BertLayer``:
  ``attention.self.{query,key,value}``, ``attention.output.dense``, ``intermediate.dense``,
  ``output.dense``). LoRA adapters are merged into their weights first (``merge_adapters``).
* **Modality encoders** (``modality=True``): the FFN channels of their transformer layers (the
  audio ``mixer`` and the video ``temporal`` ``nn.TransformerEncoderLayer``: ``linear1`` rows,
  ``linear2`` columns; their heads stay: ``nn.MultiheadAttention`` fuses q/k/v into one
  ``in_proj`` of width ``embed_dim = num_heads * head_dim`` and has no smaller-head form), and the
  output channels of the last convolution of each CNN with the input columns of the projection
  they feed (:data:`CONV_FEEDS`; the video projection, (C * g * g) -> d, is the largest matrix of
  the default model's encode path). Earlier convolutions stay: each is followed by
  ``GroupNorm(1, C)`` over all its channels, so removing one changes the others' outputs.
* **Analog image code** (``modality=True``; :mod:`mtsc_sdr.model.analog`): its projection, a
  (3 H W) x C PCA basis and most of the default client's weight bytes, keeps its first
  ``C - round(ratio C)`` columns, those of the largest variance
  (:meth:`~mtsc_sdr.model.analog.AnalogImageCode.keep`): the others are sent as zeros, so the
  base station decodes the code as before, and the client's synthesis drops their estimates.
  The variance is the importance: no data or gradients are needed to rank PCA components.

How heads are counted after surgery (transformers 5.x, checked against the installed source):
``BartAttention.forward`` and ``BertSelfAttention.forward`` reshape their projections with
``view(*shape, -1, head_dim)`` and flatten the attention output with ``reshape(*shape, -1)``; the
head count is inferred from the (smaller) projection width, and ``head_dim`` / ``scaling`` do not
change. :func:`apply` still updates the counts the modules keep (``BartAttention.num_heads``;
``BertSelfAttention.num_attention_heads`` and ``all_head_size``) so that nothing reading them is
misled. ``BartAttention.embed_dim`` is the residual width d, which does not change. The model
config (``ModelConfig.attention_heads``, the HF config) keeps the source sizes: layers may now
differ, and the :class:`PruneSpec` is what records them.

Measured (``models/default``, ratio 0.5 everywhere by :func:`choose` on :func:`calibration_batches`,
then :func:`recover` for 300 steps of batch 16 per task, lr 3e-4, seed 0; 1 CPU thread, 0.24 s a
step): LAM encoder 424,192 -> 226,688 parameters, the client's encode path 1,237,625 -> 791,705
(its weight bytes after the torch int8 path of :mod:`.quantize`: 4.98 MB fp32 unpruned -> 0.97 MB,
5.1x); on 64 val items per task at 20 dB AWGN, VQA accuracy 90.6 % unpruned, 54.7 % pruned,
90.6 % recovered, and every task's val loss recovered to within 0.07 of the unpruned model's
(caption_video 0.29 against 0.23). The analog image code's basis goes from 3072 x 1022 to
3072 x 511: with int8-dynamic graphs the client encode's weights are 17.56 -> 2.49 MB (7.0x; losses
per task in ``benchmarks/COMPRESSION.md``). ``models/minilm``: encode path 27,315,833 (adapters
merged) -> 20,553,881, 2.4 s a recovery step; its 11.7 M-row token embedding is not pruned.

Files (:func:`save` / :func:`load_pruned`; shared with :mod:`.distill`)
-----------------------------------------------------------------------
A directory with ``compress.json`` (format, version, kind ``prune`` | ``distill``, the spec, the
parameter counts, and ``frozen_sha256``: a hash of the client tensors that are *not* stored, so
that loading with another source checkpoint is refused) and ``encoder.safetensors``: the client's
encoder-side tensors (:data:`ENCODER_PARTS`, less the token embedding tied to the text decoder).
No pickle. Loading rebuilds the source checkpoint's client, applies the spec and copies the
tensors in after checking every name, shape and dtype.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn
from transformers.models.bart.modeling_bart import BartEncoderLayer
from transformers.models.bert.modeling_bert import BertLayer

from mtsc_sdr import tasks as task_table
from mtsc_sdr.data import collate, examples
from mtsc_sdr.model import load
from mtsc_sdr.model.split import ClientModel, MTSCModel

FORMAT = "mtsc-sdr-compressed-client"
VERSION = 1
SPEC_FILE = "compress.json"
WEIGHTS_FILE = "encoder.safetensors"
#: the client's encode path (:meth:`ClientModel.encode`): the modules and tables whose weights
#: pruning, recovery and distillation change, and :func:`save_client` stores
ENCODER_PARTS = ("image_encoder", "audio_encoder", "video_encoder", "task_embed", "modality_embed",
                 "lam_encoder", "jsc_encoder")
CRITERIA = ("taylor", "weight_norm")


# -- the layers, as the surgery sees them ---------------------------------------------------------

Ref = tuple[nn.Module, str]          # (parent module, attribute name) of a linear map


def _get(ref: Ref) -> nn.Linear:
    return getattr(*ref)


@dataclass
class _Block:
    """One LAM-encoder layer: where its linear maps hang and how its attention counts heads.

    ``qkv``: the query / key / value projections, (d) -> (H * head_dim), rows grouped by head;
    ``out``: the attention output projection, (H * head_dim) -> (d), columns grouped by head;
    ``fc1``: (d) -> (F) and ``fc2``: (F) -> (d), the FFN, F channels."""

    attn: nn.Module
    qkv: tuple[Ref, Ref, Ref]
    out: Ref
    fc1: Ref
    fc2: Ref
    head_dim: int
    set_heads: Callable[[nn.Module, int], None]

    @property
    def n_heads(self) -> int:
        return _get(self.qkv[0]).out_features // self.head_dim


def _set_bart_heads(attn: nn.Module, n: int) -> None:
    attn.num_heads = n                # forward infers it (view(..., -1, head_dim)); kept for readers


def _set_bert_heads(attn: nn.Module, n: int) -> None:
    attn.num_attention_heads = n
    attn.all_head_size = n * attn.attention_head_size


def _blocks(lam_encoder: nn.Module) -> list[_Block]:
    """The encoder layers of a LAM encoder, first first.

    Raises:
        ValueError: it holds no BART or BERT encoder layer (another backbone needs its entry here).
    """
    out = []
    for m in lam_encoder.modules():
        if isinstance(m, BartEncoderLayer):
            a = m.self_attn
            out.append(_Block(a, ((a, "q_proj"), (a, "k_proj"), (a, "v_proj")), (a, "out_proj"),
                              (m, "fc1"), (m, "fc2"), a.head_dim, _set_bart_heads))
        elif isinstance(m, BertLayer):
            a = m.attention.self
            out.append(_Block(a, ((a, "query"), (a, "key"), (a, "value")), (m.attention.output, "dense"),
                              (m.intermediate, "dense"), (m.output, "dense"), a.attention_head_size,
                              _set_bert_heads))
    if not out:
        raise ValueError(f"{type(lam_encoder).__name__}: no BART or BERT encoder layers to prune")
    return out


def layer_list(lam_encoder: nn.Module) -> tuple[nn.Module, str]:
    """(parent, attribute) of the ``nn.ModuleList`` holding the LAM encoder's layers."""
    for parent in lam_encoder.modules():
        for name, child in parent.named_children():
            if (isinstance(child, nn.ModuleList) and len(child)
                    and all(isinstance(m, (BartEncoderLayer, BertLayer)) for m in child)):
                return parent, name
    raise ValueError(f"{type(lam_encoder).__name__}: no list of BART or BERT encoder layers")


def _mixers(client: nn.Module) -> dict[str, nn.TransformerEncoderLayer]:
    """The modality encoders' transformer layers by module name (``audio_encoder.mixer``, ...)."""
    return {name: m for name, m in client.named_modules()
            if isinstance(m, nn.TransformerEncoderLayer) and name.split(".")[0] in ENCODER_PARTS}


#: modality encoders whose last convolution feeds a linear projection channel-major, with only
#: elementwise activations (and, for audio, a per-channel average pool) between them:
#: (encoder attribute, convolution stack attribute, projection attribute). Removing an output
#: channel of that convolution and the projection's input columns it feeds is exact surgery:
#: nothing else reads the channel. Earlier convolutions are followed by ``GroupNorm(1, C)``,
#: which mixes all channels, so they are not pruned.
CONV_FEEDS = (("image_encoder", "cnn", "proj"), ("audio_encoder", "conv", "proj"), ("video_encoder", "cnn", "proj"))
_ELEMENTWISE = (nn.GELU, nn.ReLU, nn.SiLU, nn.Tanh, nn.Identity)


@dataclass
class _ConvFeed:
    """A last convolution (``seq[index]``, C output channels) and the projection ``proj`` (a
    :data:`Ref`) whose input columns it feeds, ``group`` consecutive columns per channel
    (1: per-cell tokens, image and audio; g*g: the flattened (C, g, g) map, video)."""

    seq: nn.Sequential
    index: int
    proj: Ref
    group: int

    @property
    def conv(self) -> nn.Module:
        return self.seq[self.index]


def _conv_feeds(client: nn.Module) -> dict[str, _ConvFeed]:
    """The :data:`CONV_FEEDS` the client has, by name (``video_encoder.cnn``); an encoder whose
    layout is not the expected one (another last module, grouped convolution, a projection width
    that is not a multiple of the channels) is left out, so it is never pruned."""
    out = {}
    for enc_name, seq_attr, proj_attr in CONV_FEEDS:
        enc = getattr(client, enc_name, None)
        seq, proj = getattr(enc, seq_attr, None), getattr(enc, proj_attr, None)
        if not isinstance(seq, nn.Sequential) or not isinstance(proj, nn.Linear):
            continue
        convs = [i for i, m in enumerate(seq) if isinstance(m, (nn.Conv1d, nn.Conv2d))]
        if not convs or not all(isinstance(m, _ELEMENTWISE) for m in list(seq)[convs[-1] + 1:]):
            continue
        conv = seq[convs[-1]]
        if conv.groups != 1 or proj.in_features % conv.out_channels:
            continue
        out[f"{enc_name}.{seq_attr}"] = _ConvFeed(seq, convs[-1], (enc, proj_attr),
                                                  proj.in_features // conv.out_channels)
    return out


def _keep_conv(conv: nn.Module, index: torch.Tensor) -> nn.Module:
    """A new convolution of the same kind with only the output channels ``index``."""
    new = type(conv)(conv.in_channels, len(index), conv.kernel_size, stride=conv.stride, padding=conv.padding,
                     dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
                     padding_mode=conv.padding_mode, device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(conv.weight.detach()[index])
        if conv.bias is not None:
            new.bias.copy_(conv.bias.detach()[index])
    new.requires_grad_(conv.weight.requires_grad)
    return new


def _keep(lin: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new ``nn.Linear`` with only the output rows (``dim`` 0) or input columns (1) ``index``;
    same dtype, device and ``requires_grad``. The bias follows the rows (untouched for columns)."""
    w = lin.weight.detach().index_select(dim, index.to(lin.weight.device))
    new = nn.Linear(w.shape[1], w.shape[0], bias=lin.bias is not None, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if lin.bias is not None:
            new.bias.copy_(lin.bias.detach()[index] if dim == 0 else lin.bias.detach())
    new.requires_grad_(lin.weight.requires_grad)
    return new


def _head_rows(heads: Sequence[int], head_dim: int) -> torch.Tensor:
    """int64 (len(heads) * head_dim,): the projection rows of the given heads, in order."""
    return (torch.as_tensor(list(heads), dtype=torch.int64)[:, None] * head_dim
            + torch.arange(head_dim)).flatten()


# -- the spec -------------------------------------------------------------------------------------

@dataclass
class PruneSpec:
    """What a pruned client keeps (JSON-serialisable: :meth:`to_dict` / :meth:`from_dict`).

    Attributes:
        ratio: the share removed per layer, 0 <= ratio < 1 (0.5: half the heads and half the FFN
            channels of every layer).
        criterion: how the kept ones were chosen, one of :data:`CRITERIA` (see :func:`choose`).
        heads: per LAM-encoder layer (first first), the kept attention heads (sorted indices).
        ffn: per LAM-encoder layer, the kept FFN channels (sorted indices).
        mixers: per modality-encoder transformer layer (module name in the client, e.g.
            ``audio_encoder.mixer``), the kept FFN channels; empty: none pruned.
        convs: per modality encoder's convolution stack (:data:`CONV_FEEDS`, e.g.
            ``video_encoder.cnn``), the kept output channels of its last convolution; empty:
            none pruned.
        analog: components the analog image code's projection keeps (its first); None: not pruned.
    """

    ratio: float
    criterion: str
    heads: list[list[int]]
    ffn: list[list[int]]
    mixers: dict[str, list[int]] = field(default_factory=dict)
    convs: dict[str, list[int]] = field(default_factory=dict)
    analog: Optional[int] = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PruneSpec":
        """Inverse of :meth:`to_dict`. Raises ValueError naming a missing or malformed field."""
        if not isinstance(d, dict):
            raise ValueError(f"prune spec: expected an object, got {type(d).__name__}")
        for key in ("ratio", "criterion", "heads", "ffn"):
            if key not in d:
                raise ValueError(f"prune spec: missing field {key!r}")

        def indices(v, where):
            if not isinstance(v, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
                raise ValueError(f"prune spec: {where}: expected a list of ints")
            return list(v)

        lists = {}
        for key in ("heads", "ffn"):
            if not isinstance(d[key], list):
                raise ValueError(f"prune spec: {key}: expected a list per layer")
            lists[key] = [indices(v, f"{key}[{i}]") for i, v in enumerate(d[key])]
        named = {}
        for key in ("mixers", "convs"):
            value = d.get(key, {}) or {}
            if not isinstance(value, dict):
                raise ValueError(f"prune spec: {key}: expected an object")
            named[key] = {str(k): indices(v, f"{key}[{k!r}]") for k, v in value.items()}
        analog = d.get("analog")
        if analog is not None and (not isinstance(analog, int) or isinstance(analog, bool)):
            raise ValueError(f"prune spec: analog: expected an int or null, got {analog!r}")
        return cls(float(d["ratio"]), str(d["criterion"]), lists["heads"], lists["ffn"], **named, analog=analog)


def _check_index(index: Sequence[int], n: int, where: str) -> torch.Tensor:
    if not index or any(i < 0 or i >= n for i in index) or sorted(set(index)) != list(index):
        raise ValueError(f"prune spec: {where}: expected sorted distinct indices in [0, {n}), at least one, "
                         f"got {list(index)[:8]}{' ...' if len(index) > 8 else ''}")
    return torch.as_tensor(list(index), dtype=torch.int64)


def _n_keep(n: int, ratio: float) -> int:
    """How many of ``n`` a layer keeps at ``ratio``: n - round(ratio * n) (half up), at least one."""
    return max(1, n - int(math.floor(ratio * n + 0.5)))


def _top(score: torch.Tensor, k: int) -> list[int]:
    """The ``k`` highest scores' indices, sorted; ties go to the lower index (stable, deterministic)."""
    order = np.argsort(-score.detach().double().cpu().numpy(), kind="stable")[:k]
    return sorted(int(i) for i in order)


# -- choosing -------------------------------------------------------------------------------------

def calibration_batches(tasks: Optional[Sequence[str]] = None, n_per_task: int = 2, batch_size: int = 8,
                        split: str = "train", seed: int = 0) -> list[tuple[str, dict]]:
    """``n_per_task`` collated batches of ``batch_size`` examples of every task (default: every
    registered task) from the built-in world's ``split``: what :func:`choose` calibrates on."""
    out = []
    for task in task_table.check_names(task_table.names() if tasks is None else tasks):
        items = examples(split, [task], n_per_task=n_per_task * batch_size, seed=seed)
        out += [(task, collate(items[i:i + batch_size])) for i in range(0, len(items), batch_size)]
    return out


def _groups(client: ClientModel, modality: bool) -> dict[tuple[str, str], tuple[torch.Tensor, int]]:
    """Every prunable group family by key -- ("heads", "<layer>"), ("ffn", "<layer>"),
    ("mixers", name), ("convs", name) -- with the output-side weight (d_out, n * group) whose
    column groups carry each member's output, and ``group`` (columns per member)."""
    out = {}
    for i, b in enumerate(_blocks(client.lam_encoder)):
        out[("heads", str(i))] = (_get(b.out).weight, b.head_dim)
        out[("ffn", str(i))] = (_get(b.fc2).weight, 1)
    if modality:
        for name, m in _mixers(client).items():
            out[("mixers", name)] = (m.linear2.weight, 1)
        for name, f in _conv_feeds(client).items():
            out[("convs", name)] = (_get(f.proj).weight, f.group)
    return out


def _weight_scores(client: ClientModel, modality: bool) -> dict[tuple[str, str], torch.Tensor]:
    """Weight-norm importance (no data), per :func:`_groups` key: a head's output is
    W_o[:, h] @ sum_j a_j W_v[h] x_j with attention weights a_j summing to 1, so
    ||W_o[:, h]||_F * ||W_v[h]||_F bounds its gain; an FFN channel's, through an activation of
    slope <= ~1, is bounded by ||fc1[j]|| * ||fc2[:, j]||; a convolution channel's by
    ||conv[c]|| * ||proj[:, cols(c)]||."""
    out = {}
    for i, b in enumerate(_blocks(client.lam_encoder)):
        hd = b.head_dim
        wo = _get(b.out).weight.detach()                     # (d, H * hd)
        wv = _get(b.qkv[2]).weight.detach()                  # (H * hd, d)
        out[("heads", str(i))] = (wo.view(wo.shape[0], -1, hd).norm(dim=(0, 2))
                                  * wv.view(-1, hd, wv.shape[1]).norm(dim=(1, 2)))
        out[("ffn", str(i))] = _get(b.fc1).weight.detach().norm(dim=1) * _get(b.fc2).weight.detach().norm(dim=0)
    if modality:
        for name, m in _mixers(client).items():
            out[("mixers", name)] = m.linear1.weight.detach().norm(dim=1) * m.linear2.weight.detach().norm(dim=0)
        for name, f in _conv_feeds(client).items():
            w = _get(f.proj).weight.detach()
            out[("convs", name)] = (f.conv.weight.detach().flatten(1).norm(dim=1)
                                    * w.view(w.shape[0], -1, f.group).norm(dim=(0, 2)))
    return out


def _taylor_scores(model: MTSCModel, batches, modality: bool, snr_db: float, seed: int
                   ) -> dict[tuple[str, str], torch.Tensor]:
    """First-order head / channel sensitivity (Michel et al. 2019, "Are sixteen heads really better
    than one?"; Molchanov et al. 2019 for channels), per :func:`_groups` key: put a gate g = 1 on
    each head's (channel's) output; dL/dg_h = sum(W_o[:, h] * dL/dW_o[:, h]) is the first-order
    change of the loss when the head is removed. Per task, importance = sum over its calibration
    batches of |dL/dg|; each task's importances are then normalised to sum 1 within the layer and
    summed over the tasks, so that every task has the same say whatever the scale of its loss.
    Only the output-side weights need gradients. The loss is :meth:`MTSCModel.loss` (task loss,
    AWGN at ``snr_db``, the model in eval mode: no dropout), so it ranks by what the server's
    decoders need.

    Measured on ``models/default`` at ratio 0.5 (LAM encoder and mixers), before any recovery
    (val, 64 items per task, AWGN 20 dB; unpruned in brackets): VQA accuracy 76.6 % by this
    criterion, 73.4 % by weight norm (90.6 %); val loss vqa 0.23 / 0.36 (0.10), caption_image
    0.23 / 0.56 (0.12), caption_video 0.48 / 0.68 (0.23), but caption_audio 0.32 / 0.04 (1e-4)
    and reconstruct -2.04 / -2.13 (-2.46): a task whose loss is saturated (audio captions) has
    near-zero gradients, which say little about what it needs. Ranking by each head's output norm
    on the same batches was worse on every task (VQA 57.8 %). With the last convolutions pruned
    too, the two criteria trade places task by task before recovery (VQA 54.7 / 65.6 %,
    caption_video 0.95 / 1.42), and after 300 recovery steps they are within noise of each other
    (VQA 90.6 / 87.5 %, every val loss within 0.03): recovery matters more than the ranking."""
    groups = _groups(model.client, modality)
    keys = list(groups)
    tracked = [groups[k][0] for k in keys]
    per_task: dict[str, list[torch.Tensor]] = {}
    flags = {p: p.requires_grad for p in model.parameters()}
    training = model.training
    model.eval()
    model.requires_grad_(False)
    for w in tracked:
        w.requires_grad_(True)
    try:
        for i, (task, batch) in enumerate(batches):
            gen = torch.Generator().manual_seed(int(np.random.default_rng([seed, i, 0xCA1]).integers(2**62)))
            loss = model.loss(batch, task, float(snr_db), fading=None, generator=gen)
            grads = torch.autograd.grad(loss, tracked, allow_unused=True)
            acc = per_task.setdefault(task, [torch.zeros(w.shape[1] // groups[k][1], dtype=torch.float64)
                                             for k, w in zip(keys, tracked)])
            for a, k, w, g in zip(acc, keys, tracked, grads):
                if g is not None:
                    a += (w.detach() * g).sum(0).view(-1, groups[k][1]).sum(1).abs().double()
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
        model.train(training)
    return {k: sum((a[j] / a[j].sum() if a[j].sum() > 0 else a[j]) for a in per_task.values())
            for j, k in enumerate(keys)}


def choose(model, ratio: float, batches: Optional[Sequence[tuple[str, dict]]] = None, *,
           modality: bool = True, snr_db: float = 10.0, seed: int = 0) -> PruneSpec:
    """Which heads and channels each layer keeps at ``ratio``.

    Criterion:

    * with ``batches`` (``[(task, collated batch), ...]``, e.g. :func:`calibration_batches`):
      ``taylor``, the first-order estimate of how much the training loss grows when a head or
      channel is removed (:func:`_taylor_scores`; needs an :class:`MTSCModel`: the loss goes through
      the server). It ranks by what the tasks use, which the weights alone cannot tell; a layer
      whose gradients are all zero (e.g. the audio mixer with no audio batch) falls back to:
    * without: ``weight_norm``, an upper bound on each head's / channel's output gain from its
      weights (:func:`_weight_scores`); no data.

    Heads (channels) are compared within their layer only, and every layer loses the same share
    ``ratio`` (n - round(ratio * n) kept, at least one), so each layer keeps a fixed shape.

    Args:
        model: an :class:`MTSCModel` (needed with ``batches``) or its :class:`ClientModel`. Its LAM
            encoder's LoRA adapters are merged in place (outputs unchanged up to rounding).
        ratio: share removed, 0 <= ratio < 1.
        modality: also prune the modality encoders: the FFN channels of their transformer layers
            (``mixers``), the output channels of their last convolution (``convs``,
            :data:`CONV_FEEDS`) and the analog image code's components (``analog``), at the same
            ratio.
        snr_db: the AWGN SNR (dB, Es/N0 per complex symbol) of the calibration passes.
        seed: the channel noise of the calibration passes.
    Raises:
        ValueError: ratio out of range, or ``batches`` without an :class:`MTSCModel`.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio must be in [0, 1), got {ratio}")
    client = model.client if isinstance(model, MTSCModel) else model
    if batches is not None and not isinstance(model, MTSCModel):
        raise ValueError("choose with calibration batches needs the MTSCModel (the loss goes through the server)")
    client.lam_encoder.merge_adapters()
    scores = _weight_scores(client, modality)
    criterion = "weight_norm"
    if batches:
        criterion = "taylor"
        taylor = _taylor_scores(model, batches, modality, snr_db, seed)
        scores = {k: taylor[k] if bool((taylor[k] > 0).any()) else w for k, w in scores.items()}
    kept = {k: _top(s, _n_keep(len(s), ratio)) for k, s in scores.items()}
    n = len(_blocks(client.lam_encoder))
    return PruneSpec(ratio=float(ratio), criterion=criterion,
                     heads=[kept[("heads", str(i))] for i in range(n)],
                     ffn=[kept[("ffn", str(i))] for i in range(n)],
                     mixers={name: v for (family, name), v in kept.items() if family == "mixers"},
                     convs={name: v for (family, name), v in kept.items() if family == "convs"},
                     analog=(_n_keep(client.analog.basis.shape[1], ratio)
                             if modality and client.analog is not None else None))


# -- surgery --------------------------------------------------------------------------------------

def apply(client: ClientModel, spec: PruneSpec) -> ClientModel:
    """Remove what ``spec`` does not keep from ``client``, **in place** (returns it): LoRA merged,
    then new smaller ``nn.Linear`` (and convolution) modules for the pruned projections, FFN maps
    and last convolutions, head counts updated. Inputs and outputs keep their shapes:
    ``client.lam_encoder(x (B, L, d), mask (B, L))`` -> (B, L, d), each modality encoder ->
    (B, T, d). A spec keeping everything (ratio 0) gives the same outputs exactly.

    Raises:
        ValueError: the spec does not fit the client (layer count, an index out of range, a
            mixer or convolution the client does not have); the client is unchanged then.
    """
    client.lam_encoder.merge_adapters()
    blocks = _blocks(client.lam_encoder)
    mixers, feeds = _mixers(client), _conv_feeds(client)
    if len(spec.heads) != len(blocks) or len(spec.ffn) != len(blocks):
        raise ValueError(f"prune spec: {len(spec.heads)} head lists and {len(spec.ffn)} FFN lists for a LAM "
                         f"encoder of {len(blocks)} layers")
    for key, named, have in (("mixers", spec.mixers, mixers), ("convs", spec.convs, feeds)):
        unknown = sorted(set(named) - set(have))
        if unknown:
            raise ValueError(f"prune spec: {key} {unknown} are not in the client (it has {sorted(have)})")
    # check everything before changing anything
    plan = []
    for i, (b, heads, chans) in enumerate(zip(blocks, spec.heads, spec.ffn)):
        h = _check_index(heads, b.n_heads, f"heads[{i}]")
        c = _check_index(chans, _get(b.fc1).out_features, f"ffn[{i}]")
        plan.append((b, h, c))
    mix_plan = [(mixers[name], _check_index(chans, mixers[name].linear1.out_features, f"mixers[{name!r}]"))
                for name, chans in spec.mixers.items()]
    conv_plan = [(feeds[name], _check_index(chans, feeds[name].conv.out_channels, f"convs[{name!r}]"))
                 for name, chans in spec.convs.items()]
    if spec.analog is not None:
        have = 0 if client.analog is None else client.analog.basis.shape[1]
        if not 1 <= spec.analog <= have:
            raise ValueError(f"prune spec: analog keeps {spec.analog} components, the client's analog code has {have}")
    for b, h, c in plan:
        rows = _head_rows(h.tolist(), b.head_dim)
        for ref in b.qkv:
            setattr(*ref, _keep(_get(ref), rows, 0))
        setattr(*b.out, _keep(_get(b.out), rows, 1))
        b.set_heads(b.attn, len(h))
        setattr(*b.fc1, _keep(_get(b.fc1), c, 0))
        setattr(*b.fc2, _keep(_get(b.fc2), c, 1))
    for m, c in mix_plan:
        m.linear1, m.linear2 = _keep(m.linear1, c, 0), _keep(m.linear2, c, 1)
    for f, c in conv_plan:
        f.seq[f.index] = _keep_conv(f.conv, c)
        setattr(*f.proj, _keep(_get(f.proj), _head_rows(c.tolist(), f.group), 1))
    if spec.analog is not None:
        client.analog.keep(spec.analog)
    return client


def param_count(module: nn.Module) -> int:
    """Parameters of ``module`` (shared ones counted once)."""
    return sum(p.numel() for p in module.parameters())


def encoder_param_count(client: ClientModel) -> int:
    """Parameters of the client's encode path (:data:`ENCODER_PARTS`), the shared token embedding
    included (shared tensors counted once)."""
    seen, total = set(), 0
    for name in ENCODER_PARTS:
        part = getattr(client, name)
        for p in ([part] if isinstance(part, nn.Parameter) else part.parameters()):
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
    return total


# -- training the encoder side (recovery here, distillation in .distill) ---------------------------

def _encoder_names(client: ClientModel) -> set[str]:
    """State-dict keys of the encode path that are the client's own: under :data:`ENCODER_PARTS`,
    less any tensor shared with a module outside them (the LAM's token embedding, tied to the text
    decoder: it stays as the source checkpoint has it, so the client's decoders do not change)."""
    state = client.state_dict(keep_vars=True)
    inside = {k for k in state if k.split(".")[0] in ENCODER_PARTS}
    outside = {state[k].data_ptr() for k in state if k not in inside}
    return {k for k in inside if state[k].data_ptr() not in outside}


def encoder_parameters(client: ClientModel) -> list[nn.Parameter]:
    """The parameters :func:`recover` and :func:`~.distill.distill` train (see :func:`_encoder_names`)."""
    names = _encoder_names(client)
    return [p for k, p in client.named_parameters() if k in names]


def with_client(model: MTSCModel, client: ClientModel) -> MTSCModel:
    """A view of ``model`` with another client half: the same server (shared, not copied),
    tokenizer and config; ``model`` itself is unchanged."""
    view = copy.copy(model)
    view._modules = {**model._modules, "client": client}
    return view


@dataclass
class _Draw:
    items: np.ndarray
    snr_db: np.ndarray
    fading: Optional[str]
    noise_seed: int
    torch_seed: int
    budget: Optional[int]


def _draw(rng: np.random.Generator, n: int, batch_size: int, snr_db_range, rician_fraction: float,
          budgets) -> _Draw:
    items = rng.choice(n, size=batch_size, replace=batch_size > n)
    snr = rng.uniform(*snr_db_range, size=batch_size).astype(np.float32)
    fading = "rician" if rng.random() < rician_fraction else None
    seeds = int(rng.integers(2**62)), int(rng.integers(2**62))
    budget = None if not budgets else int(budgets[int(rng.integers(len(budgets)))])
    return _Draw(items, snr, fading, *seeds, budget)


def fine_tune(model: MTSCModel, steps: int, *, tasks: Optional[Sequence[str]] = None, batch_size: int = 8,
              examples_per_task: int = 256, lr: float = 3e-4, warmup_steps: Optional[int] = None,
              weight_decay: float = 0.01, grad_clip: float = 1.0, snr_db_range=(-5.0, 20.0),
              rician_fraction: float = 0.5, k_factor_db: float = 6.0, budgets=(128, 256, 512),
              importance_weight: float = 0.2, seed: int = 0,
              extra_loss: Optional[Callable[[str, dict], torch.Tensor]] = None,
              on_step: Optional[Callable[[dict], None]] = None, log: Optional[Callable[[str], None]] = None,
              log_every: int = 50, name: str = "fine-tune") -> list[dict]:
    """Train the client's encode path (:func:`encoder_parameters`) of ``model`` with everything
    else frozen -- the server, the client's task decoders and the shared token embedding -- on the
    loss the model trains with (:meth:`MTSCModel.loss` through the torch channel).

    Every step takes one batch of every task (losses summed, as the release recipe's
    ``mix_tasks``); per batch, items are drawn from a fixed train-split pool of
    ``examples_per_task`` examples, each item's SNR (dB, Es/N0) uniformly from ``snr_db_range``,
    Rician block fading (K = ``k_factor_db``) with probability ``rician_fraction`` else AWGN, and a
    symbol budget from ``budgets`` (None: the model's default). Everything random in step k comes
    from ``numpy.random.default_rng([seed, k, i])`` (task i), so a run is a function of ``seed``
    (bit-identical on the CPU with one thread). AdamW (decay on matrices), linear warm-up over
    ``warmup_steps`` (default steps // 10) then cosine to lr / 10, gradient clipping at ``grad_clip``.
    The encode-path modules run in train mode (dropout), the frozen ones in eval mode.

    Args:
        extra_loss: ``(task, batch) -> scalar`` added to each task's loss, called right after
            that batch's forward pass (distillation's state-matching term).
        on_step: called with each history entry.
        log: called with a progress line (``name``, step, loss, lr, seconds) every ``log_every``
            steps and after the last (e.g. ``print``); None: quiet.
    Returns:
        history: per step ``{"step", "loss" (the summed, optimised value), "tasks": {task: model
        loss}, "extra": {task: extra loss}}`` (``extra`` only with ``extra_loss``).
        ``requires_grad`` flags are restored afterwards and the model is left in eval mode.
    """
    from torch.nn.utils import clip_grad_norm_

    tasks = task_table.check_names(task_table.names() if tasks is None else tasks)
    pool = {t: examples("train", [t], n_per_task=examples_per_task, seed=seed) for t in tasks}
    client = model.client
    params = encoder_parameters(client)
    flags = {p: p.requires_grad for p in model.parameters()}
    model.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    model.eval()
    for attr in ENCODER_PARTS:
        part = getattr(client, attr)
        if isinstance(part, nn.Module):
            part.train()
    opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98), eps=1e-8)
    warmup = max(1, steps // 10) if warmup_steps is None else warmup_steps

    def lr_at(k: int) -> float:
        if k < warmup:
            return lr * (k + 1) / warmup
        frac = min(1.0, (k - warmup) / max(1, steps - warmup))
        return lr * (0.1 + 0.45 * (1.0 + math.cos(math.pi * frac)))

    history = []
    t0 = time.monotonic()
    try:
        for k in range(steps):
            for g in opt.param_groups:
                g["lr"] = lr_at(k)
            total, entry = 0.0, {"step": k, "tasks": {}, **({"extra": {}} if extra_loss else {})}
            for i, task in enumerate(tasks):
                d = _draw(np.random.default_rng([seed, k, i]), len(pool[task]), batch_size, snr_db_range,
                          rician_fraction, budgets)
                batch = collate([pool[task][j] for j in d.items.tolist()])
                torch.manual_seed(d.torch_seed)                        # dropout
                gen = torch.Generator().manual_seed(d.noise_seed)      # fading and noise
                loss = model.loss(batch, task, torch.from_numpy(d.snr_db), fading=d.fading,
                                  k_factor_db=k_factor_db, generator=gen, budget=d.budget,
                                  importance_weight=importance_weight)
                entry["tasks"][task] = float(loss.detach())
                if extra_loss is not None:
                    extra = extra_loss(task, batch)
                    entry["extra"][task] = float(extra.detach())
                    loss = loss + extra
                total = total + loss
            opt.zero_grad(set_to_none=True)
            total.backward()
            if grad_clip > 0:
                clip_grad_norm_(params, grad_clip)
            opt.step()
            entry["loss"] = float(total.detach())
            if not math.isfinite(entry["loss"]):
                raise FloatingPointError(f"loss became {entry['loss']} at step {k}")
            history.append(entry)
            if on_step is not None:
                on_step(entry)
            if log is not None and ((k + 1) % log_every == 0 or k + 1 == steps):
                log(f"{name}: step {k + 1}/{steps} loss {entry['loss']:.4f} lr {lr_at(k):.2e} "
                    f"{time.monotonic() - t0:.0f} s")
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
        model.eval()
    return history


def recover(model: MTSCModel, steps: int, *, seed: int = 0, **settings) -> list[dict]:
    """A short recovery fine-tune of a pruned client (``model.client`` after :func:`apply`) with the
    server frozen: :func:`fine_tune` (its keyword arguments: tasks, batch_size, lr, SNR range, ...;
    defaults: every task per step, batch 8, lr 3e-4, SNR -5..20 dB, half Rician, budgets
    128/256/512, importance weight 0.2 as in training). Returns the history (one entry per step)."""
    return fine_tune(model, steps, seed=seed, **{"name": "recover", **settings})


# -- files (shared with .distill) -----------------------------------------------------------------

def frozen_fingerprint(client: ClientModel) -> str:
    """sha256 (hex) of the client tensors a compressed checkpoint does not store (names, shapes,
    dtypes, bytes): the task decoders, the shared token embedding, the analog code."""
    stored = _encoder_names(client)
    digest = hashlib.sha256()
    for name, t in sorted(client.state_dict().items()):
        if name in stored:
            continue
        t = t.detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_client(client: ClientModel, kind: str, spec: dict, directory) -> Path:
    """Write a compressed client: ``compress.json`` (format, version, ``kind``, ``spec``, parameter
    counts, :func:`frozen_fingerprint`) and ``encoder.safetensors`` (the encode path's own tensors,
    float32 as they are). Returns the directory."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = _encoder_names(client)
    tensors = {k: v.detach().contiguous().cpu() for k, v in client.state_dict().items() if k in names}
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": FORMAT, "version": str(VERSION),
                                                                  "kind": kind})
    meta = {"format": FORMAT, "version": VERSION, "kind": kind, "spec": spec,
            "params": {"client": param_count(client), "encoder": encoder_param_count(client),
                       "lam_encoder": param_count(client.lam_encoder)},
            "frozen_sha256": frozen_fingerprint(client)}
    (directory / SPEC_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
    return directory


def read_meta(directory, kind: str) -> dict:
    """The ``compress.json`` of a directory :func:`save_client` wrote, checked to be ``kind``.

    Raises:
        ValueError: no such file, not valid JSON, another format, version or kind.
    """
    file = Path(directory) / SPEC_FILE
    if not file.is_file():
        raise ValueError(f"{directory}: no {SPEC_FILE} (not a compressed client)")
    try:
        meta = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{file}: not a version-{VERSION} {FORMAT} file")
    if meta.get("kind") != kind:
        raise ValueError(f"{file}: holds a {meta.get('kind')!r} client, expected {kind!r}")
    return meta


def load_client_weights(client: ClientModel, directory, meta: dict) -> ClientModel:
    """Copy a compressed client's stored tensors into ``client`` (rebuilt from the source
    checkpoint with the spec applied), after checking that the unstored tensors are the ones it
    was made with and that every stored name, shape and dtype fits.

    Raises:
        ValueError: naming each missing, unexpected or mismatching tensor, or another source
            checkpoint.
    """
    from safetensors.torch import load_file

    file = Path(directory) / WEIGHTS_FILE
    try:
        tensors = load_file(str(file))
    except Exception as exc:  # noqa: BLE001 - OSError or SafetensorError
        raise ValueError(f"{file}: cannot be read: {exc}") from None
    names = _encoder_names(client)
    own = client.state_dict(keep_vars=True)
    problems = []
    missing, unexpected = sorted(names - set(tensors)), sorted(set(tensors) - names)
    if missing:
        problems.append("missing tensors: " + ", ".join(missing[:8]))
    if unexpected:
        problems.append("unexpected tensors: " + ", ".join(unexpected[:8]))
    problems += [f"tensor {k}: file has shape {tuple(tensors[k].shape)}, the client rebuilt from the spec has "
                 f"{tuple(own[k].shape)}" for k in sorted(names & set(tensors)) if tensors[k].shape != own[k].shape]
    problems += [f"tensor {k}: file has dtype {tensors[k].dtype}, the client has {own[k].dtype}"
                 for k in sorted(names & set(tensors)) if tensors[k].dtype != own[k].dtype]
    if problems:
        raise ValueError(f"{file} does not fit the client its spec gives: " + "; ".join(problems))
    if meta.get("frozen_sha256") != frozen_fingerprint(client):
        raise ValueError(f"{directory}: made from another source checkpoint (the client tensors it does not "
                         f"store -- task decoders, token embedding -- differ)")
    with torch.no_grad():
        for k in names:
            own[k].copy_(tensors[k])
    return client


def save(client: ClientModel, spec: PruneSpec, directory) -> Path:
    """Write a pruned client (:func:`save_client`, kind ``prune``); returns the directory."""
    return save_client(client, "prune", spec.to_dict(), directory)


def load_pruned(checkpoint, directory) -> ClientModel:
    """The pruned client a directory of :func:`save` holds: the source ``checkpoint``'s client
    (:func:`mtsc_sdr.model.load`), the spec applied, the stored tensors copied in; eval mode.

    Raises:
        ValueError: the directory, its spec or a tensor does not fit (the message names it).
        mtsc_sdr.model.CheckpointMismatch: the checkpoint does not load.
    """
    meta = read_meta(directory, "prune")
    client = apply(load(checkpoint).client, PruneSpec.from_dict(meta["spec"]))
    return load_client_weights(client, directory, meta).eval()


__all__ = ["CONV_FEEDS", "CRITERIA", "ENCODER_PARTS", "PruneSpec", "apply", "calibration_batches", "choose",
           "encoder_param_count", "encoder_parameters", "fine_tune", "layer_list", "load_client_weights", "load_pruned",
           "param_count", "read_meta", "recover", "save", "save_client", "with_client", "frozen_fingerprint"]
