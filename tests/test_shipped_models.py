"""Every release model in ``models/`` loads with the current code and still does its job: a change
that breaks a shipped model (its layout, its config, the tokenizer, a renamed parameter) fails
here. Quality floors are far below each model card's figures (a few validation items, 20 dB,
one process) but far above what an untrained or broken model scores."""

from __future__ import annotations


import pytest

from mtsc_sdr.model.checkpoint import SHIPPED_MODELS

RELEASES = sorted(p.parent.name for p in SHIPPED_MODELS.glob("*/config.json"))
#: main metric -> the least a shipped model scores on FLOOR_ITEMS validation items at 20 dB.
#: Untrained: VQA about 0 %, CIDEr about 0, PSNR about 10 dB; answering every question with the
#: most common training answer gives 36 % VQA.
#: Measured with these items when the floors were set: default VQA 87.5 %, captions CIDEr 310 /
#: 518 / 456 (image / audio / video), patches 38.8 dB (the analog image code; 27.1 dB on the
#: token path before it); rag (no knowledge bases) 91.7 %, 366 / 518 / 511, 38.9 dB. minilm, the
#: 12000-step release: VQA 20.8 % on these 24 items (47.5 % on 200 validation items, seed 5; the
#: 1200-step release it replaced: 45.8 % here, 31.5 % on those 200), so its VQA floor sits at 3 of 24.
FLOORS = {"default": {"vqa": 60.0, "caption_image": 150.0, "caption_audio": 150.0, "caption_video": 150.0,
                      "reconstruct": 34.0},
          "minilm": {"vqa": 12.5, "caption_image": 30.0, "caption_audio": 30.0, "caption_video": 30.0,
                     "reconstruct": 34.0},
          # the retrieval-augmented model, here without knowledge bases (tests/rag/test_shipped_rag.py
          # checks what it does with them)
          "rag": {"vqa": 60.0, "caption_image": 150.0, "caption_audio": 150.0, "caption_video": 150.0,
                  "reconstruct": 34.0}}
FLOOR_ITEMS = 24


def test_the_release_models_are_shipped():
    assert {"default", "minilm", "rag"} <= set(RELEASES)
    assert set(RELEASES) <= set(FLOORS), "a new release needs its quality floors here"


@pytest.mark.parametrize("name", RELEASES)
def test_release_loads_and_keeps_its_quality(name):
    from mtsc_sdr import tasks
    from mtsc_sdr.runtime.evaluate import evaluate
    from mtsc_sdr.train.release import CARD, MAX_RELEASE_BYTES, directory_bytes

    directory = SHIPPED_MODELS / name
    assert directory_bytes(directory) <= MAX_RELEASE_BYTES
    card = (directory / CARD).read_text()
    assert "mtsc-sdr train --config" in card and "## Evaluation" in card
    report = evaluate(directory, [20.0], n_per_task=FLOOR_ITEMS, split="val", seed=3, baseline=False, threads=2)
    scores = {r["task"]: r["value"] for r in report["rows"]
              if r["system"] == "mtsc" and r["metric"] == tasks.get(r["task"]).main_metric}
    assert set(scores) == set(tasks.names())
    low = {t: (round(v, 2), FLOORS[name][t]) for t, v in scores.items() if v < FLOORS[name][t]}
    assert not low, f"{name}: below the floor (score, floor): {low}"
