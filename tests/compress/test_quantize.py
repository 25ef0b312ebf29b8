"""int8 quantization of the client half: each quantized layer against its fp32 original, the whole
client on the micro model, and the loader."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtsc_sdr.compress.quantize import (Int8Attention, Int8Conv, Int8DecoderLayer, Int8EncoderLayer, Int8Linear,
                                        quantize_client, weight_bytes)


def _rel(a, b):
    return float((a - b).detach().norm() / b.detach().norm())


@pytest.mark.parametrize("k,n,m", [(1, 128, 4), (2, 7, 1), (128, 512, 26), (192, 128, 16), (64, 1, 3)])
def test_int8_linear_matches_fp32(k, n, m):
    torch.manual_seed(0)
    lin = nn.Linear(k, n)
    x = torch.randn(2, m, k)
    q = Int8Linear.from_linear(lin)
    assert q.weight_t.dtype == torch.int8 and q.weight_t.stride() == (n, 1)
    assert _rel(q(x), lin(x)) < 0.02
    assert q(torch.zeros(0, k)).shape == (0, n)


def test_int8_conv_matches_fp32():
    torch.manual_seed(0)
    for conv, x in ((nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.randn(2, 3, 16, 16)),
                    (nn.Conv1d(8, 4, 3, padding=1), torch.randn(2, 8, 20))):
        q = Int8Conv(conv)
        assert q.weight_q.dtype == torch.int8
        assert _rel(q(x), conv(x)) < 0.02


def test_int8_attention_matches_multihead_attention_with_masks():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    q = Int8Attention(mha)
    x, mem = torch.randn(3, 5, 32), torch.randn(3, 7, 32)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[0, 4:] = True
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)
    with torch.no_grad():
        assert _rel(q(x, mem, mem, key_padding_mask=pad)[0], mha(x, mem, mem, key_padding_mask=pad)[0]) < 0.03
        assert _rel(q(x, x, x, attn_mask=causal)[0], mha(x, x, x, attn_mask=causal)[0]) < 0.03
        assert _rel(q(x, x, x, is_causal=True)[0], mha(x, x, x, attn_mask=causal)[0]) < 0.03
        additive = torch.zeros(5, 5).masked_fill(causal, float("-inf"))          # float masks are added
        assert _rel(q(x, x, x, attn_mask=additive)[0], mha(x, x, x, attn_mask=causal)[0]) < 0.03
        per_head = torch.rand(3 * 4, 5, 7) < 0.3                                   # (B * heads, T, S)
        per_head[..., 0] = False
        assert _rel(q(x, mem, mem, attn_mask=per_head)[0], mha(x, mem, mem, attn_mask=per_head)[0]) < 0.03


def test_int8_transformer_layers_match():
    torch.manual_seed(0)
    enc = nn.TransformerEncoderLayer(32, 4, 64, 0.0, activation="gelu", batch_first=True, norm_first=True).eval()
    dec = nn.TransformerDecoderLayer(32, 4, 64, 0.0, activation="gelu", batch_first=True, norm_first=True).eval()
    x, mem = torch.randn(2, 6, 32), torch.randn(2, 9, 32)
    kpm = torch.zeros(2, 6, dtype=torch.bool)
    kpm[1, 5] = True
    causal = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
    with torch.no_grad():
        got, want = Int8EncoderLayer(enc)(x, src_key_padding_mask=kpm), enc(x, src_key_padding_mask=kpm)
        assert _rel(got[0], want[0]) < 0.03 and _rel(got[1, :5], want[1, :5]) < 0.03   # padded position 5 aside
        got = Int8DecoderLayer(dec)(x, mem, tgt_mask=causal, tgt_key_padding_mask=kpm, tgt_is_causal=True)
        want = dec(x, mem, tgt_mask=causal, tgt_key_padding_mask=kpm, tgt_is_causal=True)
        assert _rel(got, want) < 0.03
    with pytest.raises(ValueError, match="norm_first"):
        Int8EncoderLayer(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, norm_first=False))
    with pytest.raises(ValueError, match="GELU"):
        Int8EncoderLayer(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, norm_first=True))   # ReLU


def test_quantized_client_replaces_every_large_layer_and_stays_close(micro_checkpoint):
    from mtsc_sdr.data import collate, examples
    from mtsc_sdr.model import load

    model = load(micro_checkpoint).eval()
    fp32 = model.client
    q = quantize_client(fp32)
    assert not any(isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.MultiheadAttention)) for m in q.modules())
    assert any(isinstance(m, nn.Linear) for m in fp32.modules())            # the original is untouched
    assert weight_bytes(q) < 0.45 * weight_bytes(fp32)                        # micro: embeddings weigh more
    for task in ("vqa", "caption_audio", "caption_video", "reconstruct"):
        batch = collate(examples("val", [task], n_per_task=4))
        snr = torch.full((4,), 10.0)
        with torch.no_grad():
            a, b = fp32.encode(batch, task, snr), q.encode(batch, task, snr)
            analog = fp32.sends_analog(task)
            inputs = {"image": batch["image"]} if analog else fp32.encoder_inputs(batch, task)
            pa, pb = fp32.project(task, inputs, snr, analog), q.project(task, inputs, snr, analog)
        assert torch.equal(a.rate_idx, b.rate_idx) and torch.equal(a.n_tokens, b.n_tokens)
        # the network's outputs (importance scores, every token's code); which tokens are kept
        # may flip between near-equal scores of this 40-step model, so symbols are not compared
        for x, y in zip(pa, pb):
            finite = torch.isfinite(x)
            assert torch.equal(finite, torch.isfinite(y)) and _rel(y[finite], x[finite]) < 0.05


def test_load_client(micro_checkpoint):
    from mtsc_sdr.compress.artifact import encode_modules, load_client

    a, b = load_client(micro_checkpoint, precision="fp32"), load_client(micro_checkpoint, precision="int8")
    assert (a.precision, b.precision) == ("fp32", "int8")
    assert (a.encoder.runtime, b.encoder.runtime) == ("torch", "torch")
    assert b.weight_bytes < a.weight_bytes == sum(weight_bytes(m) for m in encode_modules(a.model))
    with pytest.raises(ValueError, match="precision"):
        load_client(micro_checkpoint, precision="int4")
    with pytest.raises(ValueError, match="artifact"):
        load_client(micro_checkpoint, runtime="onnxruntime")


def test_int8_client_of_a_lora_minilm_merges_the_adapters(minilm_env, minilm_micro_checkpoint):
    from peft.tuners.lora import LoraLayer

    from mtsc_sdr.compress.artifact import load_client
    from mtsc_sdr.data import collate, examples

    a = load_client(minilm_micro_checkpoint, precision="fp32")
    b = load_client(minilm_micro_checkpoint, precision="int8")
    assert any(isinstance(m, LoraLayer) for m in a.model.modules())
    assert not any(isinstance(m, (LoraLayer, nn.Linear)) for m in b.model.modules())
    assert b.weight_bytes < a.weight_bytes
    for task in ("vqa", "caption_audio", "reconstruct"):
        batch = collate(examples("val", [task], n_per_task=4))
        with torch.no_grad():
            x, y = a.model.encode(batch, task, 10.0), b.model.encode(batch, task, 10.0)
        assert torch.equal(x.n_tokens, y.n_tokens)
        assert _rel(y.symbols, x.symbols) < 0.1
