"""Post-training int8 quantization of the client half (:class:`~mtsc_sdr.model.ClientModel`).

Method (no calibration data, no retraining):

* **Weights** are int8, symmetric, one fp32 scale per output channel (per row of a linear map,
  per output channel of a convolution): ``w ~ scale[o] * q[o, ...]``, ``scale = max|w[o]| / 127``.
* **Linear layers** (the LAM encoder's projections and MLPs, the JSC heads, the attention
  projections of the audio / video / text transformers, unpacked from PyTorch's fused
  ``in_proj``) compute int8 x int8 -> int32 products with ``torch._int_mm`` (oneDNN on x86, with
  VNNI where the CPU has it); their inputs are quantized on the fly, symmetric, one scale per
  row (per token): "dynamic" quantization.
* **Convolutions** store int8 weights and dequantize them per call (weight-only): their bytes
  shrink, their arithmetic stays fp32.
* The **analog image code**'s PCA basis (:mod:`mtsc_sdr.model.analog`, 3072 x 1022 in the
  default model, more than all the rest) is int8 with one scale per coefficient, dequantized per
  call (weight-only, :class:`Int8AnalogCode`); its mean, variances and statistics stay fp32.
* Embeddings, position tables, LayerNorms and biases stay fp32 (about 3 % of the weights).
* **Adapters** (LoRA on a pre-trained LAM encoder) are merged into their base weights first
  (``W + B A * alpha / r``), then quantized with them.

Why this path: it needs nothing beyond torch (the client must also run on a Jetson, where the
same wheel family exists), it quantizes every large tensor of this model -- including the fused
attention ``in_proj`` of ``nn.MultiheadAttention`` and the convolutions, which
``torch.ao.quantization.quantize_dynamic`` leaves in fp32 -- and ``torch.ao.quantization`` itself
is deprecated (torch 2.13 warns on use). The code is small enough to check by eye; the tests
compare every quantized layer with its fp32 original.

Why it stays beside ONNX Runtime's methods (:mod:`.onnx_quant`, faster on every model measured,
``benchmarks/COMPRESSION.md``): the torch runtime is the client's default and needs no exported
artifact (``mtsc-sdr client --precision int8``, the demo's int8 client, replays of recordings),
and it needs an int8 path of its own. :func:`mtsc_sdr.compress.artifact.load_client` loads a
checkpoint's client with it (``precision`` int8), and ``--quantization int8-torch`` makes it an
artifact the planner can choose.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from mtsc_sdr.model.analog import AnalogImageCode

PRECISIONS = ("fp32", "int8")


def _quantize_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float (O, ...) -> (int8 (O, ...), fp32 scale (O,)): symmetric, one scale per output channel."""
    w = w.detach().float()
    scale = w.reshape(w.shape[0], -1).abs().amax(dim=1).clamp(min=1e-12) / 127.0
    q = torch.round(w / scale.view(-1, *([1] * (w.dim() - 1)))).clamp(-127, 127).to(torch.int8)
    return q, scale


class Int8Linear(nn.Module):
    """``y = x W^T + b`` with W int8 per output channel and x quantized per row at run time.

    x float32 (..., K) -> y float32 (..., N).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        q, scale = _quantize_rows(weight)
        # (K, N) int8 with row-major strides, the layout _int_mm takes (``q.t().contiguous()`` can
        # keep the strides of the transpose when K = 1, which oneDNN then misreads)
        self.register_buffer("weight_t", torch.empty((q.shape[1], q.shape[0]), dtype=torch.int8).copy_(q.t()))
        self.register_buffer("scale", scale)                     # (N,)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]

    @classmethod
    def from_linear(cls, lin: nn.Linear) -> "Int8Linear":
        return cls(lin.weight, lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).float()
        if x2.shape[0] == 0:
            y = x2.new_zeros((0, self.out_features))
            if self.bias is not None:
                y = y + self.bias
        else:
            s = x2.abs().amax(dim=1, keepdim=True).clamp_(min=1e-12).div_(127.0)   # (M, 1)
            xq = torch.div(x2, s).round_().to(torch.int8)
            y = torch._int_mm(xq, self.weight_t).float().mul_(s).mul_(self.scale)  # in place: no (M, N) temporaries
            if self.bias is not None:
                y.add_(self.bias)
        return y.reshape(*shape[:-1], self.out_features)


class Int8Conv(nn.Module):
    """A Conv1d / Conv2d with int8 weights (per output channel), dequantized per call."""

    def __init__(self, conv: nn.Conv1d | nn.Conv2d):
        super().__init__()
        if conv.padding_mode != "zeros":
            raise ValueError(f"Int8Conv: padding_mode {conv.padding_mode!r} is not supported")
        q, scale = _quantize_rows(conv.weight)
        self.register_buffer("weight_q", q)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().float().clone())
        self._conv = F.conv1d if isinstance(conv, nn.Conv1d) else F.conv2d
        self._args = dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight_q.float() * self.scale.view(-1, *([1] * (self.weight_q.dim() - 1)))
        return self._conv(x, w, self.bias, **self._args)


class Int8AnalogCode(AnalogImageCode):
    """:class:`~mtsc_sdr.model.analog.AnalogImageCode` with its basis (D, C) stored int8, one
    scale per coefficient (column), dequantized per call; every method is the fp32 code's."""

    def __init__(self, code: AnalogImageCode):
        nn.Module.__init__(self)
        self._cache = {}
        for name in ("lam", "ln_stats", "mean"):
            self.register_buffer(name, getattr(code, name).detach().clone())
        q, scale = _quantize_rows(code.basis.T)                 # (C, D): one row per coefficient
        self.register_buffer("basis_q", q)
        self.register_buffer("basis_scale", scale)

    @property
    def basis(self) -> torch.Tensor:
        """float32 (D, C), dequantized."""
        return (self.basis_q.float() * self.basis_scale[:, None]).T


class Int8Attention(nn.Module):
    """``nn.MultiheadAttention`` (batch_first, same embed dims) with int8 projections.

    Same call as the original: (query (B, T, d), key (B, S, d), value (B, S, d), key_padding_mask
    (B, S) bool (True = ignore) or float (added), attn_mask (T, S) or (B * heads, T, S), bool (True =
    not allowed) or float (added), is_causal) -> (out, None). Attention weights are not returned.
    """

    batch_first = True

    def __init__(self, mha: nn.MultiheadAttention):
        super().__init__()
        if not (mha.batch_first and mha._qkv_same_embed_dim):
            raise ValueError("Int8Attention needs batch_first=True and equal q/k/v dims")
        d = mha.embed_dim
        w, b = mha.in_proj_weight, mha.in_proj_bias
        part = (lambda t, i: None if t is None else t[i * d:(i + 1) * d])  # noqa: E731
        self.q_proj, self.k_proj, self.v_proj = (Int8Linear(part(w, i), part(b, i)) for i in range(3))
        self.out_proj = Int8Linear.from_linear(mha.out_proj)
        self.num_heads = mha.num_heads

    def forward(self, query, key, value, key_padding_mask=None, need_weights=False, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        b, t, d = query.shape
        s, h = key.shape[1], self.num_heads
        split = (lambda x, n: x.view(b, n, h, d // h).transpose(1, 2))  # noqa: E731
        q, k, v = split(self.q_proj(query), t), split(self.k_proj(key), s), split(self.v_proj(value), s)
        bias = torch.zeros((b, 1, t, s), dtype=q.dtype, device=query.device)     # added to the scores
        if attn_mask is None and is_causal:
            attn_mask = torch.ones((t, s), dtype=torch.bool, device=query.device).triu(1)
        if attn_mask is not None:
            add = _additive(attn_mask.view(t, s) if attn_mask.dim() == 2 else attn_mask.view(b, h, t, s), q.dtype)
            bias = bias + (add if add.dim() == 4 else add[None, None])
        if key_padding_mask is not None:
            bias = bias + _additive(key_padding_mask, q.dtype)[:, None, None, :]
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.out_proj(o.transpose(1, 2).reshape(b, t, d)), None


def _additive(mask: torch.Tensor, dtype) -> torch.Tensor:
    """A PyTorch attention mask as scores to add: bool True -> -inf, float as it is."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


def _check_layer(layer) -> None:
    if not layer.norm_first:
        raise ValueError(f"{type(layer).__name__}: only norm_first=True layers are quantized")
    if layer.activation is not F.gelu:
        raise ValueError(f"{type(layer).__name__}: only layers with exact GELU (activation='gelu') are quantized")


class Int8EncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer`` (norm_first, GELU, eval) with int8 attention and MLP."""

    def __init__(self, layer: nn.TransformerEncoderLayer):
        super().__init__()
        _check_layer(layer)
        self.self_attn = Int8Attention(layer.self_attn)
        self.linear1, self.linear2 = Int8Linear.from_linear(layer.linear1), Int8Linear.from_linear(layer.linear2)
        self.norm1, self.norm2 = copy.deepcopy(layer.norm1), copy.deepcopy(layer.norm2)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = self.norm1(src)
        src = src + self.self_attn(x, x, x, key_padding_mask=src_key_padding_mask, attn_mask=src_mask,
                                   is_causal=is_causal)[0]
        return src + self.linear2(F.gelu(self.linear1(self.norm2(src))))


class Int8DecoderLayer(nn.Module):
    """``nn.TransformerDecoderLayer`` (norm_first, GELU, eval) with int8 attention and MLP."""

    def __init__(self, layer: nn.TransformerDecoderLayer):
        super().__init__()
        _check_layer(layer)
        self.self_attn = Int8Attention(layer.self_attn)
        self.multihead_attn = Int8Attention(layer.multihead_attn)
        self.linear1, self.linear2 = Int8Linear.from_linear(layer.linear1), Int8Linear.from_linear(layer.linear2)
        self.norm1, self.norm2, self.norm3 = (copy.deepcopy(n) for n in (layer.norm1, layer.norm2, layer.norm3))

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = self.norm1(tgt)
        tgt = tgt + self.self_attn(x, x, x, key_padding_mask=tgt_key_padding_mask, attn_mask=tgt_mask,
                                   is_causal=bool(tgt_is_causal))[0]
        tgt = tgt + self.multihead_attn(self.norm2(tgt), memory, memory, key_padding_mask=memory_key_padding_mask,
                                        attn_mask=memory_mask, is_causal=bool(memory_is_causal))[0]
        return tgt + self.linear2(F.gelu(self.linear1(self.norm3(tgt))))


def _replace(module: nn.Module) -> None:
    """Swap, depth first, transformer layers, then linear layers and convolutions, for int8 ones."""
    for name, child in module.named_children():
        if isinstance(child, nn.TransformerEncoderLayer):
            setattr(module, name, Int8EncoderLayer(child))
        elif isinstance(child, nn.TransformerDecoderLayer):
            setattr(module, name, Int8DecoderLayer(child))
        elif isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear.from_linear(child))
        elif isinstance(child, (nn.Conv1d, nn.Conv2d)):
            setattr(module, name, Int8Conv(child))
        else:
            _replace(child)


def quantize_client(client: nn.Module) -> nn.Module:
    """An int8 copy of a client half (the original is untouched); eval mode, inference only.
    Adapters (a LoRA-tuned LAM encoder's) are first merged into the weights they adapt, so each
    adapted layer is quantized as one linear map."""
    q = copy.deepcopy(client).eval()
    q.lam_encoder.merge_adapters()
    _replace(q)
    if getattr(q, "analog", None) is not None:
        q.analog = Int8AnalogCode(q.analog)
    return q.requires_grad_(False)


def weight_bytes(module: nn.Module) -> int:
    """Bytes of every parameter and buffer (shared tensors counted once; the buffers include the
    audio front end's fixed window and mel filters: 34 KB in the default model)."""
    seen, total = set(), 0
    for t in list(module.parameters()) + list(module.buffers()):
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total
