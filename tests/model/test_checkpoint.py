"""Checkpoints written before the backbone seam (``config.json`` with a ``"bart"`` key instead of
``"backbone": {"kind", "config"}``) still load, keep their identity, and the shipped one is such."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

from mtsc_sdr.model import CheckpointMismatch, load, save
from mtsc_sdr.runtime import protocol

SHIPPED = Path(__file__).resolve().parents[2] / "recordings" / "checkpoint"


def _old_format(src: Path, dst: Path) -> Path:
    """A copy of checkpoint ``src`` whose config.json is written the way it was before backbones
    were recorded by kind: the BartConfig dict under ``"bart"``, no ``model.backbone``."""
    shutil.copytree(src, dst)
    meta = json.loads((dst / "config.json").read_text())
    meta["bart"] = meta.pop("backbone")["config"]
    del meta["model"]["backbone"]
    (dst / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return dst


def _old_identity_config(directory: Path) -> str:
    """The config hash as the identity computed it before the seam."""
    meta = json.loads((directory / "config.json").read_text())
    return hashlib.sha256(json.dumps({"model": meta["model"], "bart": meta["bart"]},
                                     sort_keys=True).encode()).hexdigest()[:16]


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_old_format_checkpoint_loads_with_its_old_identity(micro_checkpoint, tmp_path):
    old = _old_format(micro_checkpoint, tmp_path / "old")
    model = load(old)
    assert model.backbone_kind == "bart" and model.cfg.backbone == "bart"
    assert _same_weights(model, load(micro_checkpoint))
    assert protocol.checkpoint_identity(old)["config"] == _old_identity_config(old)
    # saving it again writes the current format, which loads to the same model
    again = save(model, tmp_path / "again")
    meta = json.loads((again / "config.json").read_text())
    assert "bart" not in meta and meta["backbone"]["kind"] == "bart"
    assert _same_weights(load(again), model)


def test_shipped_checkpoint_is_old_format_and_loads():
    meta = json.loads((SHIPPED / "config.json").read_text())
    assert "bart" in meta and "backbone" not in meta
    assert load(SHIPPED).backbone_kind == "bart"
    assert protocol.checkpoint_identity(SHIPPED)["config"] == _old_identity_config(SHIPPED)


def test_backbone_field_errors_are_named(micro_checkpoint, tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(micro_checkpoint, ck)
    meta = json.loads((ck / "config.json").read_text())
    for edit, message in ((lambda m: m["backbone"].update(kind="gpt9"), r"backbone\.kind: 'gpt9'.*backbones are bart"),
                          (lambda m: m["backbone"].update(config=[1]), r"backbone\.config"),
                          (lambda m: m.pop("backbone"), "missing field 'backbone'"),
                          (lambda m: m["backbone"]["config"].update(d_model="x"),
                           r"backbone\.config\.d_model: expected an integer >= 1"),
                          (lambda m: m["backbone"]["config"].update(activation_function=7),
                           r"backbone\.config is not a valid bart config")):
        broken = json.loads(json.dumps(meta))
        edit(broken)
        (ck / "config.json").write_text(json.dumps(broken))
        with pytest.raises(CheckpointMismatch, match=message):
            load(ck)
