"""``mtsc-sdr finetune`` end to end: a training base station, a software channel per client and
the Flower apps in the simulation engine, on the micro model."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.mark.parametrize("link", ["software", pytest.param("gnuradio-sim", marks=pytest.mark.gnuradio)])
def test_two_clients_one_round_over_each_kind_of_link(micro_checkpoint, tmp_path, link):
    """The same logic over the software channel and over the GNU Radio sim flowgraph."""
    from mtsc_sdr.finetune.run import finetune
    from mtsc_sdr.finetune.server_app import load_state
    from mtsc_sdr.finetune.task import build_model, trainable_state

    config = {"checkpoint": str(micro_checkpoint), "local-steps": 2, "batch-size": 3, "eval-items": 6,
              "tasks": "vqa,caption_image", "examples-per-client": 20}
    report = finetune(2, 1, config, tmp_path, link, progress=False)
    assert report["meta"]["link"] == link
    assert json.loads((tmp_path / "finetune.json").read_text())["meta"]["clients"] == 2
    (rnd,) = report["federation"]["rounds"]
    train = rnd["train"]
    assert sorted(c["partition_id"] for c in train["clients"]) == [0, 1] and not train["rejected"]
    for c in train["clients"]:
        m = c["metrics"]
        assert m["steps"] == 2 and m["batches_lost"] == 0 and np.isfinite(m["loss"])
        assert m["iq_bytes"] > 0 and m["activation_bytes"] == m["gradient_up_bytes"] > 0
    assert set(rnd["evaluate"]["aggregated_metrics"]) >= {"vqa", "caption_image"}
    assert report["station"]["bs"]["train_steps"] == 4                   # 2 clients x 2 steps
    params = report["parameters"]
    assert 0 < params["shared"] < params["client_total"] <= params["total"]
    before = trainable_state(build_model(config))
    after = load_state(tmp_path / "state.safetensors")
    assert set(after) == set(before) and any(not np.array_equal(after[k], before[k]) for k in before)
