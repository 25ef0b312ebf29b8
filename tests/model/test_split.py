"""Model modules with the micro configuration: shapes, power, rate choice, importance top-k,
client/server split vs one-process wiring, train-ability, generation, checkpoints, truncation."""

from __future__ import annotations

import json
import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

from mtsc_sdr.config import ConfigError
from mtsc_sdr.data import collate, examples
from mtsc_sdr.model import (CheckpointMismatch, ModelConfig, TextTokenizer, build_model,
                            choose_rate, load, save)
from mtsc_sdr.model import tokenizer as tokmod
from mtsc_sdr.model.jsc import JSCEncoder
from mtsc_sdr.model.split import TaskSemantics
from mtsc_sdr.model.encoders import LogMel, mel_filterbank

TASKS = ["vqa", "caption_image", "caption_audio", "caption_video", "reconstruct"]
SNRS = torch.tensor([-5.0, 3.0, 8.0, 20.0])


@pytest.fixture(scope="module")
def tok():
    return TextTokenizer.train(tokmod.corpus(n_scenes=150, n_audio=60, n_video=60))


@pytest.fixture(scope="module")
def batches():
    return {t: collate(examples("train", [t], n_per_task=4, seed=3)) for t in TASKS}


@pytest.fixture()
def model(tok):
    torch.manual_seed(0)
    return build_model(ModelConfig.micro(), tok).eval()


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# -- config ------------------------------------------------------------------------------------
def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"model\.rate_table\[1\]"):
        ModelConfig.from_dict({"rate_table": [4, "x"]})
    with pytest.raises(ConfigError, match="rate_snr_thresholds_db"):
        ModelConfig.from_dict({"rate_table": [4, 8], "rate_snr_thresholds_db": [0.0, 5.0]})
    with pytest.raises(ConfigError, match="attention_heads"):
        ModelConfig.from_dict({"d_model": 30, "attention_heads": 4})
    assert ModelConfig.from_dict({}).d_model == ModelConfig.default().d_model


# -- tokenizer ---------------------------------------------------------------------------------
def test_tokenizer_round_trip_and_fingerprint(tok, tmp_path):
    assert [tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id] == [0, 1, 2, 3]
    ids = tok.encode_target("what colour is the circle?", 16)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert tok.decode(ids) == "what colour is the circle?"
    tok.save(tmp_path)
    again = TextTokenizer.load(tmp_path)
    assert again.fingerprint == tok.fingerprint
    other = TextTokenizer.train(["a totally different corpus"])
    assert other.fingerprint != tok.fingerprint


def test_long_question_truncated_with_warning(model, batches):
    b = dict(batches["vqa"])
    b["question"] = ["what colour is " + "the big red circle " * 20 + "?"] + b["question"][1:]
    with pytest.warns(UserWarning, match="truncated to the model's limit of 12"):
        ids = model.client.question_ids(b["question"])
    assert ids.shape[1] == model.cfg.max_question_len
    with pytest.warns(UserWarning, match="truncated"):
        up = model.client.encode(b, "vqa", 10.0)
    assert up.symbols.shape == (4, model.cfg.symbols_per_item)


# -- encoders ----------------------------------------------------------------------------------
def test_mel_filterbank_and_logmel_shapes():
    fb = mel_filterbank(16)
    assert fb.shape == (201, 16) and bool((fb >= 0).all()) and bool((fb.sum(0) > 0).all())
    spec = LogMel(16)(torch.zeros(2, 16000))
    assert spec.shape == (2, 16, 101)


def test_encoder_input_shapes(model, batches):
    cfg = model.cfg
    expect = {"vqa": 1 + cfg.image_tokens, "caption_image": 1 + cfg.image_tokens,
              "reconstruct": 1 + cfg.image_tokens, "caption_audio": 1 + cfg.audio_tokens,
              "caption_video": 1 + cfg.video_frames}
    for task in TASKS:
        x, mask = model.client.embed_inputs(batches[task], task)
        assert x.dtype == torch.float32 and mask.dtype == torch.bool
        if task == "vqa":
            assert x.shape[1] > expect[task]  # + question tokens
        else:
            assert x.shape == (4, expect[task], cfg.d_model)
        assert mask.shape == x.shape[:2] and bool(mask[:, 0].all())


# -- JSC ---------------------------------------------------------------------------------------
def test_rate_choice_monotone_and_within_budget():
    table, thr = (4, 8, 16, 32), (0.0, 6.0, 12.0)
    snr = torch.linspace(-20, 40, 121)
    r = choose_rate(snr, 512, table, thr)
    spt = torch.tensor(table)[r]
    assert bool((spt[1:] <= spt[:-1]).all()), "more SNR must never mean more symbols per token"
    assert spt[0] == 32 and spt[-1] == 4
    assert choose_rate(torch.tensor([-10.0]), 16, table, thr).item() == 2  # 32 does not fit in 16
    with pytest.raises(ValueError, match="budget"):
        choose_rate(torch.tensor([0.0]), 3, table, thr)


def test_rate_choice_keeps_every_token_when_a_rate_allows():
    table, thr = (4, 8, 16, 32), (0.0, 6.0, 12.0)
    snr = torch.tensor([20.0, 20.0, 20.0, 20.0, 3.0, 3.0, -5.0, -5.0])
    n_valid = torch.tensor([64, 16, 24, 200, 24, 64, 16, 24])
    spt = torch.tensor(table)[choose_rate(snr, 512, table, thr, n_valid)]
    # 64 x 8 = 512; 16 x 32; 24 x 16 (24 x 32 does not fit); 200 tokens never fit -> floor 4;
    # at 3 dB the floor is 16: 24 x 16 fits, 64 do not -> 16; at -5 dB the floor is 32:
    # 16 x 32 fits, 24 do not -> 32 (16 of the 24 kept)
    assert spt.tolist() == [8, 32, 16, 4, 16, 16, 32, 32]


def test_assemble_keeps_highest_scores_in_order():
    """At -5 dB the rate floor is the last (32 symbols per token): a 96-symbol budget keeps the
    3 best-scored tokens of each item, in their original order, each token's code in its slot."""
    enc = JSCEncoder(ModelConfig())
    scores = torch.tensor([[0.1, 5.0, -1.0, 3.0, 4.0, float("-inf")],
                           [9.0, 1.0, 2.0, 0.0, float("-inf"), float("-inf")]])
    # token j's code at every rate: every real part j + 1, imaginary parts 0
    codes = [torch.zeros(2, 6, 2 * s).index_fill(2, torch.arange(0, 2 * s, 2), 1.0)
             * torch.arange(1.0, 7.0)[None, :, None] for s in enc.rate_table]
    code = enc.assemble(scores, codes, torch.tensor([-5.0, -5.0]), budget=96)
    assert code.rate_idx.tolist() == [3, 3] and code.n_tokens.tolist() == [3, 3]
    assert code.kept_positions.tolist() == [[1, 3, 4], [0, 1, 2]]
    for i, kept in enumerate(code.kept_positions.tolist()):
        per_slot = code.symbols[i].view(3, 32)
        assert torch.allclose(per_slot.imag, torch.zeros(3, 32))
        ratio = per_slot.real[:, 0] / per_slot.real[0, 0]
        assert torch.allclose(ratio, torch.tensor([p + 1.0 for p in kept]) / (kept[0] + 1.0))
        assert abs(float(code.symbols[i].abs().pow(2).mean()) - 1.0) < 1e-5


def test_uplink_power_budget_and_importance(model, batches):
    cfg = model.cfg
    for task in TASKS:
        for budget in (cfg.symbols_per_item, 40):
            with torch.no_grad():
                up = model.client.encode(batches[task], task, SNRS, budget=budget)
            assert up.symbols.dtype == torch.complex64 and up.symbols.shape == (4, budget)
            assert up.rate_idx.dtype == torch.int64 and up.n_tokens.dtype == torch.int64
            used = up.n_symbols(cfg.rate_table)
            assert bool((used <= budget).all()) and bool((used >= 1).all())
            for i in range(4):
                n = int(used[i])
                p = up.symbols[i, :n].abs().pow(2).mean()
                assert math.isclose(float(p), 1.0, rel_tol=1e-4), (task, budget, i, float(p))
                assert bool((up.symbols[i, n:] == 0).all())
                # the kept tokens are the most important ones
                k = int(up.n_tokens[i])
                kept = up.kept_positions[i, :k]
                imp = up.importance[i]
                assert set(kept.tolist()) == set(imp.topk(k).indices.tolist())
                assert bool((kept[1:] > kept[:-1]).all())
            # the rate obeys the SNR floor; every token goes when an allowed rate fits them all
            # (then the largest such rate), else the floor rate keeps as many as fit
            table = torch.tensor(cfg.rate_table)
            floor = table[choose_rate(SNRS, budget, cfg.rate_table, cfg.rate_snr_thresholds_db)]
            for i in range(4):
                s, n_valid = int(table[up.rate_idx[i]]), int(torch.isfinite(up.importance[i]).sum())
                fit_all = [int(t) for t in table if floor[i] <= t <= budget and n_valid * t <= budget]
                assert s == (max(fit_all) if fit_all else int(floor[i]))
                assert int(up.n_tokens[i]) == min(n_valid, budget // s)
                assert not bool(torch.isfinite(up.importance[i, 0]))  # the task token is never sent


def test_cross_attention_share_matches_bart_eager_attentions(model):
    dec = model.server.lam_decoder
    g = gen(4)
    d = model.cfg.d_model
    q, sem = torch.randn(3, 4, d, generator=g), torch.randn(3, 6, d, generator=g)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, 4:] = False
    with torch.no_grad():
        out, share = dec.forward_with_attention(q, sem, mask)
        assert torch.allclose(out, dec(q, sem, mask))
        conf = dec.decoder.config
        impl = conf._attn_implementation
        conf._attn_implementation = "eager"
        try:
            ref = dec.decoder(inputs_embeds=q, encoder_hidden_states=sem, encoder_attention_mask=mask.long(),
                              use_cache=False, output_attentions=True).cross_attentions
        finally:
            conf._attn_implementation = impl
    want = torch.stack([a.mean(dim=(1, 2)) for a in ref]).mean(0)
    assert torch.allclose(share, want, atol=1e-5)
    assert torch.allclose(share.sum(1), torch.ones(3)) and bool((share[1, 4:] == 0).all())


def test_importance_loss_pulls_scores_towards_attention():
    from mtsc_sdr.model.split import Uplink, importance_loss

    importance = torch.tensor([[float("-inf"), 0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    kept = torch.tensor([[1, 3, 4]])                        # position 2 was not kept
    up = Uplink(torch.zeros(1, 8, dtype=torch.complex64), torch.tensor([0]), torch.tensor([3]),
                torch.tensor([0]), kept, importance)
    attention = torch.tensor([[0.7, 0.2, 0.1]])
    loss = importance_loss(up, attention)
    assert math.isclose(float(loss.detach()), math.log(3.0), rel_tol=1e-6)   # uniform scores: CE = log 3
    loss.backward()
    grad = importance.grad[0].tolist()
    assert grad[1] < 0 < grad[3] < grad[4] and grad[2] == 0.0       # raise 1, lower 4 most


def test_loss_adds_the_weighted_importance_term(model, batches):
    from mtsc_sdr.model.split import importance_loss

    b, kw = batches["vqa"], dict(fading=None, budget=64)
    with torch.no_grad():
        base = model.loss(b, "vqa", 0.0, generator=gen(1), **kw)
        res = model(b, "vqa", 0.0, generator=gen(1), attention=True, **kw)
        both = model.loss(b, "vqa", 0.0, generator=gen(1), importance_weight=0.5, **kw)
    extra = importance_loss(res.uplink, res.attention)
    assert float(extra) > 0 and res.attention.shape == res.uplink.kept_positions.shape
    assert float(both) == pytest.approx(float(base) + 0.5 * float(extra), rel=1e-5)


def test_vqa_question_is_the_decoders_unscored_prompt(model):
    tok = model.tokenizer
    ids, scored = model.client.target_ids(["yes", "two"], ["is there a red circle?", "how many?"])
    q0 = tok.encode_question("is there a red circle?", 24)
    row0 = ids[0].tolist()
    assert row0[0] == tok.bos_id and row0[1:1 + len(q0)] == q0
    # only the answer and its </s> are predicted in the loss
    assert [i + 1 for i in torch.nonzero(scored[0]).flatten().tolist()] == \
        [j for j, t in enumerate(row0) if j > len(q0) and t != tok.pad_id]
    assert tok.decode([t for t, keep in zip(ids[0, 1:].tolist(), scored[0].tolist()) if keep]) == "yes"
    plain, plain_scored = model.client.target_ids(["yes"])
    assert plain[0, 1:].tolist()[:int(plain_scored[0].sum())] == tok.encode_target("yes", 16)[1:]


def test_prompted_generation_matches_row_by_row(model):
    g = gen(9)
    sem = torch.randn(3, model.cfg.task_queries, model.cfg.d_model, generator=g)
    qs = ["is there a red circle?", "how many?", "what shape is the large object at the bottom?"]
    dec = model.client.text_decoder
    with torch.no_grad():
        batch = dec.generate(sem, 6, model.client.prompt_ids("vqa", qs))
        for i, q in enumerate(qs):
            one = dec.generate(sem[i:i + 1], 6, model.client.prompt_ids("vqa", [q]))
            n = one.shape[1]
            assert batch[i, :n].tolist() == one[0].tolist()
            assert all(t == dec.eos_id for t in batch[i, n:].tolist())
    with pytest.raises(ValueError, match="needs the questions"):
        model.client.decode("vqa", TaskSemantics(sem))


# -- split -------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", TASKS)
def test_split_equals_one_process_wiring(model, batches, task):
    from mtsc_sdr.channel.torch_channel import apply_channel

    b = batches[task]
    with torch.no_grad():
        res = model(b, task, SNRS, generator=gen(7))
        # the same by hand: client | channel + equaliser | server
        up = model.client.encode(b, task, SNRS)
        ch = apply_channel(up.symbols, SNRS, fading="rician", k_factor_db=6.0, signal_power=1.0,
                           generator=gen(7))
        h = ch.h[:, :1]
        y = ch.y * h.conj() / (h.abs() ** 2 + ch.noise_power[:, None])
        snr_est = SNRS + 10 * torch.log10(h.abs()[:, 0] ** 2)
        down = model.server(y, up.rate_idx, up.n_tokens, snr_est, up.task_ids)
    q = model.cfg.task_queries
    assert down.semantics.shape == (4, q, model.cfg.d_model) and down.semantics.dtype == torch.float32
    torch.testing.assert_close(down.semantics, res.downlink.semantics)
    out = model.client.decode(task, down, max_len=5, questions=b.get("question"))
    if task == "reconstruct":
        assert out.shape == (4, 3, 32, 32) and float(out.min()) >= 0 and float(out.max()) <= 1
    else:
        assert len(out) == 4 and all(isinstance(s, str) for s in out)


def test_server_holds_no_token_embedding(model):
    names = [n for n, _ in model.server.named_parameters()]
    assert not any("embed_tokens" in n for n in names)
    assert model.client.text_decoder.embedding.weight is model.client.lam_encoder.embed_tokens.weight


def test_lam_decoder_output_depends_on_semantics_at_init(model):
    """Regression: with BART's default init_std 0.02 (sized for d_model 768+) the cross-attention
    path had a gain of ~0.05 at d_model 32-128, so the task semantics barely varied with the
    received semantics (cross-item std / std ~0.005) and training collapsed to the text prior."""
    d = model.cfg.d_model
    sem = torch.randn(8, 6, d, generator=gen(0))
    q = model.server.task_queries[torch.zeros(8, dtype=torch.long)]
    with torch.no_grad():
        out = model.server.lam_decoder(q, sem, torch.ones(8, 6, dtype=torch.bool))
    assert float(out.std(0).mean() / out.std()) > 0.1


# -- train-ability -----------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["vqa", "reconstruct"])
def test_few_steps_reduce_loss(tok, batches, task):
    torch.manual_seed(1)
    m = build_model(ModelConfig.micro(), tok).train()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    b = batches[task]
    losses = []
    for step in range(12):
        loss = m.loss(b, task, 15.0, generator=gen(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    loss = m.loss(b, task, 15.0, generator=gen(0))
    opt.zero_grad()
    loss.backward()
    g = m.client.jsc_encoder.importance[-1].weight.grad    # the importance head learns through the gate
    assert g is not None and float(g.abs().sum()) > 0


def test_analog_reconstruction_trains_on_the_token_path(tok, batches):
    """With the analog code the dense task still trains (its token path teaches the shared image
    encoder), while the model sends it by the analog code."""
    m = build_model(ModelConfig.micro(), tok).train()
    loss = m.loss(batches["reconstruct"], "reconstruct", 15.0, generator=gen(0), importance_weight=0.2)
    loss.backward()
    assert m.client.image_encoder.pixels.weight.grad is not None
    assert float(m.client.image_decoder.to_pixels.weight.grad.abs().sum()) > 0
    with torch.no_grad():
        sent = m(batches["reconstruct"], "reconstruct", 15.0, generator=gen(0))
    assert torch.equal(sent.uplink.kept_positions[0, :3], torch.tensor([1, 2, 3]))   # the analog framing


# -- checkpoints -------------------------------------------------------------------------------
def test_checkpoint_round_trip(model, batches, tmp_path):
    save(model, tmp_path / "ck")
    assert {p.name for p in (tmp_path / "ck").iterdir()} >= {"model.safetensors", "config.json", "tokenizer.json"}
    again = load(tmp_path / "ck", tokenizer=model.tokenizer, expect=model.cfg).eval()
    with torch.no_grad():
        a = model(batches["caption_image"], "caption_image", SNRS, generator=gen(3)).downlink.semantics
        b = again(batches["caption_image"], "caption_image", SNRS, generator=gen(3)).downlink.semantics
    torch.testing.assert_close(a, b)


def _edit_config(path, fn):
    meta = json.loads((path / "config.json").read_text())
    fn(meta)
    (path / "config.json").write_text(json.dumps(meta))


def test_checkpoint_mismatches_are_named(model, tok, tmp_path):
    from safetensors.torch import load_file, save_file

    ck = save(model, tmp_path / "ck")
    # another tokenizer beside the weights
    other = TextTokenizer.train(["another corpus entirely", "with other words"])
    bad = tmp_path / "tok"
    save(model, bad)
    other.save(bad)
    with pytest.raises(CheckpointMismatch, match="tokenizer fingerprint mismatch"):
        load(bad)
    # the caller's tokenizer differs
    with pytest.raises(CheckpointMismatch, match=other.fingerprint):
        load(ck, tokenizer=other)
    # config differs from what the caller expects
    from dataclasses import replace
    with pytest.raises(CheckpointMismatch, match="task_queries"):
        load(ck, expect=replace(model.cfg, task_queries=8))
    # missing and unexpected keys, wrong shapes
    tensors = load_file(str(ck / "model.safetensors"))
    key = "client.jsc_encoder.heads.0.weight"
    t2 = dict(tensors)
    del t2[key]
    t2["client.extra.weight"] = torch.zeros(2)
    t2["server.task_queries"] = torch.zeros(5, 3, 3)
    save_file(t2, str(ck / "model.safetensors"))
    with pytest.raises(CheckpointMismatch) as err:
        load(ck)
    msg = str(err.value)
    assert f"missing keys: {key}" in msg and "unexpected keys: client.extra.weight" in msg
    assert "server.task_queries (checkpoint (5, 3, 3), model (5, 4, 32))" in msg
    # a config that is not valid names the field
    ck2 = save(model, tmp_path / "ck2")
    _edit_config(ck2, lambda m: m["model"].update(d_model="big"))
    with pytest.raises(CheckpointMismatch, match=r"model\.d_model"):
        load(ck2)
    _edit_config(ck2, lambda m: m.update(format="something-else"))
    with pytest.raises(CheckpointMismatch, match="format"):
        load(ck2)
    (ck2 / "config.json").write_text("{not json")
    with pytest.raises(CheckpointMismatch, match="not valid JSON"):
        load(ck2)


def test_local_hf_bart_checkpoint(tok, batches, tmp_path):
    """``--lam PATH``: a local Hugging Face BART dir with its tokenizer; nothing downloaded."""
    from transformers import BartConfig, BartModel, PreTrainedTokenizerFast

    d = tmp_path / "bart"
    conf = BartConfig(vocab_size=tok.vocab_size + 5, d_model=48, encoder_layers=1, decoder_layers=1,
                      encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                      decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
                      eos_token_id=2)
    BartModel(conf).save_pretrained(d)
    PreTrainedTokenizerFast(tokenizer_object=tok.backend, pad_token="<pad>", bos_token="<s>",
                            eos_token="</s>", unk_token="<unk>").save_pretrained(d)
    m = build_model(ModelConfig.micro(), lam_path=str(d)).eval()
    assert m.cfg.d_model == 48 and m.tokenizer.kind == "hf" and m.cfg.lam_path == str(d)
    with torch.no_grad():
        out = m.predict(batches["vqa"], "vqa", 10.0, generator=gen(0))
    assert len(out) == 4
    ck = save(m, tmp_path / "ck")
    again = load(ck)
    assert again.tokenizer.fingerprint == m.tokenizer.fingerprint and again.cfg.d_model == 48
    with pytest.raises(FileNotFoundError, match="not a directory"):
        build_model(ModelConfig.micro(), lam_path=str(tmp_path / "nowhere"))
