"""Retrieved knowledge as model input (mtsc_sdr.model.knowledge): where it enters, what it changes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from mtsc_sdr.data import collate, examples
from mtsc_sdr.model import ModelConfig, build_model
from mtsc_sdr.model.knowledge import context_ids
from mtsc_sdr.model.tokenizer import TextTokenizer, corpus


@pytest.fixture(scope="module")
def tok():
    from mtsc_sdr.data.knowledge import vocabulary

    return TextTokenizer.train(corpus(n_scenes=40, n_audio=10, n_video=10)).with_words(vocabulary())


def _model(tok, context_tokens):
    torch.manual_seed(0)
    return build_model(replace(ModelConfig.micro(), context_tokens=context_tokens), tok).eval()


def _batch(local="", glob=""):
    items = [replace(e, local_context=local, global_context=glob) for e in examples("val", ["vqa"], 3)]
    return collate(items)


def _semantics(m, batch):
    with torch.no_grad():
        return m(batch, "vqa", 30.0, fading=None, generator=torch.Generator().manual_seed(0)).downlink.semantics


def test_extending_a_tokenizer_keeps_every_old_id(tok):
    base = TextTokenizer.train(corpus(n_scenes=40, n_audio=10, n_video=10))
    assert all(tok.get_vocab()[w] == i for w, i in base.get_vocab().items())
    ids = tok._ids("the red circle belongs to alice.")
    assert tok.unk_id not in ids and tok.decode(ids) == "the red circle belongs to alice."


def test_context_ids_pad_and_cut_to_the_limit(tok):
    ids = context_ids(tok, ["the red circle belongs to alice.", ""], 4, "cpu")
    assert ids.shape == (2, 4) and (ids[1] == tok.pad_id).all()
    assert context_ids(tok, ["", ""], 4, "cpu").shape == (2, 1)


def test_a_model_without_context_tokens_has_no_knowledge_parameters(tok):
    m = _model(tok, 0)
    assert m.server.knowledge is None and m.client.context_embed is None
    assert not any("knowledge" in k or "context_embed" in k for k in m.state_dict())
    assert m.knowledge_ids(_batch(glob="the red circle belongs to alice."), "vqa") is None


def test_local_snippets_change_what_the_client_sends(tok):
    m = _model(tok, 16)
    with torch.no_grad():
        plain = m.client.encode(_batch(), "vqa", 30.0).symbols
        told = m.client.encode(_batch(local="the red circle belongs to alice."), "vqa", 30.0).symbols
    assert not torch.allclose(plain, told)
    inputs = m.client.encoder_inputs(_batch(local="the red circle belongs to alice."), "vqa")
    assert inputs["context_ids"].shape == (3, 7)


def test_global_snippets_change_the_server_output_but_not_what_is_sent(tok):
    m = _model(tok, 16)
    a, b = _batch(), _batch(glob="the red circle was made in rome.")
    with torch.no_grad():
        assert torch.equal(m.client.encode(a, "vqa", 30.0).symbols, m.client.encode(b, "vqa", 30.0).symbols)
    assert not torch.allclose(_semantics(m, a), _semantics(m, b))


def test_an_empty_snippet_is_the_same_as_none(tok):
    m = _model(tok, 16)
    b = _batch()
    with torch.no_grad():
        res = m(b, "vqa", 30.0, fading=None, generator=torch.Generator().manual_seed(0))
        none = m.server(res.received, res.uplink.rate_idx, res.uplink.n_tokens, res.snr_est_db, res.uplink.task_ids)
    assert torch.allclose(res.downlink.semantics, none.semantics, atol=1e-6)


def test_tasks_without_a_question_take_no_context(tok):
    m = _model(tok, 16)
    items = [replace(e, local_context="x", global_context="y") for e in examples("val", ["caption_image"], 2)]
    batch = collate(items)
    assert "context_ids" not in m.client.encoder_inputs(batch, "caption_image")
    assert m.knowledge_ids(batch, "caption_image") is None


def test_gradients_reach_the_knowledge_encoder(tok):
    m = _model(tok, 16).train()
    b = _batch(local="the red circle belongs to alice.", glob="bob owns the red circle.")
    m.loss(b, "vqa", 10.0, fading=None, importance_weight=0.2).backward()
    assert m.server.knowledge.embed.weight.grad.abs().sum() > 0
    assert m.client.context_embed.grad.abs().sum() > 0


def test_knowledge_ids_for_a_model_without_them_are_refused(tok):
    m = _model(tok, 0)
    with pytest.raises(ValueError, match="context_tokens 0"):
        m.server.with_knowledge(torch.zeros(1, 2, m.cfg.d_model), torch.ones(1, 2, dtype=torch.bool),
                                 torch.zeros(1, 3, dtype=torch.int64))
