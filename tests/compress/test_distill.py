"""Distillation of a shallower client encoder (:mod:`mtsc_sdr.compress.distill`) on micro models of
both backbones (2-layer LAM encoders; see tests/compress/test_prune.py for the models)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from mtsc_sdr.compress import distill, prune
from mtsc_sdr.model import save
from tests.compress import test_prune
from tests.compress.test_prune import encode_outputs, lam_input

#: the shipped release models, and a fresh micro model of each backbone (fixtures of test_prune)
shipped = test_prune.shipped
model = test_prune.model


def test_the_student_keeps_the_given_layers_copied_from_the_teacher(model):
    teacher = model.client
    assert distill.n_layers(teacher) == 2
    student = distill.student(teacher, [1])
    assert distill.n_layers(student) == 1 and distill.n_layers(teacher) == 2     # the teacher is untouched
    assert prune.param_count(student.lam_encoder) < prune.param_count(teacher.lam_encoder)
    merged = copy.deepcopy(teacher)
    merged.lam_encoder.merge_adapters()
    s_q = prune._get(prune._blocks(student.lam_encoder)[0].qkv[0]).weight
    t_q = prune._get(prune._blocks(merged.lam_encoder)[1].qkv[0]).weight
    assert torch.equal(s_q, t_q) and s_q.data_ptr() != t_q.data_ptr()
    x, mask = lam_input(teacher.cfg.d_model)
    with torch.no_grad():
        assert student.eval().lam_encoder(x, mask).shape == (3, 9, teacher.cfg.d_model)
    assert all(torch.isfinite(o.abs()).all() for o in encode_outputs(student))
    for bad in ([], [1, 0], [0, 0], [2], [-1]):
        with pytest.raises(ValueError, match="keep_layers"):
            distill.student(teacher, bad)


def test_distillation_matches_the_teacher_states(model):
    """Micro models (random decoders, whose task loss hardly moves): the state term falls. The
    student's layer is perturbed first (a random fixture BERT layer hardly changes its input, so a
    copied one already matches)."""
    student = distill.student(model.client, [0])
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in student.lam_encoder.parameters():
            if p.ndim == 2 and p.shape[0] < 1000:               # the layer's matrices, not the embeddings
                p.add_(0.3 * torch.randn(p.shape, generator=g) * p.std())
    history = distill.distill(model, student, 8, tasks=["vqa", "caption_audio"], batch_size=4,
                              examples_per_task=4, lr=1e-3, snr_db_range=(20.0, 20.0), rician_fraction=0.0,
                              budgets=None, seed=3)
    mse = [sum(h["extra"].values()) for h in history]
    assert mse[-1] < 0.6 * mse[0], mse


def test_distillation_lowers_the_loss_and_leaves_the_teacher_alone(shipped):
    """The trained release models: a student of every other layer (default: 1 of 2, minilm: 3 of 6)."""
    model = shipped
    total = distill.n_layers(model.client)
    student = distill.student(model.client, list(range(0, total, 2)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = distill.distill(model, student, 10, tasks=["vqa", "caption_image", "reconstruct"], batch_size=4,
                              examples_per_task=4, lr=2e-4, snr_db_range=(20.0, 20.0), rician_fraction=0.0,
                              budgets=None, seed=3)
    losses = [h["loss"] for h in history]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.2, losses
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.client is not student and distill.n_layers(model.client) == total


def test_save_and_load_round_trip_and_a_spec_that_does_not_fit(model, tmp_path):
    checkpoint = save(model, tmp_path / "ck")
    student = distill.student(model.client, [1])
    distill.distill(model, student, 2, tasks=["vqa"], batch_size=2, examples_per_task=2, seed=1)
    spec = distill.StudentSpec([1], 2)
    out = distill.save(student, spec, tmp_path / "student")
    loaded = distill.load_student(checkpoint, out)
    assert distill.n_layers(loaded) == 1
    for got, want in zip(encode_outputs(loaded), encode_outputs(student)):
        assert torch.equal(got, want)

    meta = json.loads((out / prune.SPEC_FILE).read_text())
    assert meta["kind"] == "distill" and meta["spec"] == spec.to_dict()
    meta["spec"]["keep_layers"] = [0, 1]           # the file holds one layer's tensors, not two
    (out / prune.SPEC_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"missing tensors: lam_encoder\.\S*1\."):
        distill.load_student(checkpoint, out)
    meta["spec"] = {"keep_layers": [1], "source_layers": 6}
    (out / prune.SPEC_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="6-layer"):
        distill.load_student(checkpoint, out)
    with pytest.raises(ValueError, match="expected 'prune'"):
        prune.load_pruned(checkpoint, out)
