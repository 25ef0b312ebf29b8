"""Fixtures of the default suite (``gr_python`` is in the root conftest.py, shared with hw_tests/)."""

from __future__ import annotations

import os

import pytest

# Radio discovery probes a Pluto's default network addresses (192.168.2.1, pluto.local). Tests run
# in CI where only loopback is fair game: probe no host (discovery tests use fake loopback servers).
os.environ["MTSC_PLUTO_HOSTS"] = ""


@pytest.fixture
def ctx():
    """A private ZeroMQ context for one test, terminated afterwards."""
    import zmq

    context = zmq.Context()
    yield context
    context.term()


@pytest.fixture(scope="session")
def micro_checkpoint(tmp_path_factory):
    """A micro model trained for 40 steps (a few seconds): what the process tests run."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from mtsc_sdr.train.config import TrainConfig
    from mtsc_sdr.train.trainer import train

    out = tmp_path_factory.mktemp("micro") / "ck"
    cfg = TrainConfig.from_dict({"preset": "micro", "tokenizer_scenes": 40, "examples_per_task": 16,
                                 "steps": 40, "batch_size": 4, "checkpoint_dir": str(out), "num_threads": 1})
    train(cfg, quiet=True)
    return out


@pytest.fixture(scope="module")
def calibrated():
    """One full calibration of the known simulated link (tests/radio/sim_link.py; about half a second):
    (the radio, its record, the calibration's warnings). The radio and runtime tests use it."""
    from mtsc_sdr.radio.calibrate import CalibrateSettings, calibrate
    from tests.radio.sim_link import sim

    radio = sim(seed=11, temperature_c=37.5)
    rec, warnings = calibrate(radio, radio, CalibrateSettings(gains_db=[-40.0, -30.0, -20.0, -10.0], frames=40))
    yield radio, rec, warnings
    radio.close()


@pytest.fixture(scope="session")
def minilm_base(tmp_path_factory):
    """Tiny fixture base weights for the minilm backbone (tests/minilm_fixture.py): its environment
    (``MTSC_MINILM_DIR``, ``MTSC_MINILM_SHA256``) as a dict."""
    from tests.minilm_fixture import env, write_base

    directory = tmp_path_factory.mktemp("minilm") / "model"
    return env(directory, write_base(directory))


@pytest.fixture
def minilm_env(minilm_base, monkeypatch):
    """The minilm backbone reads the fixture base weights in this test (and its child processes)."""
    for key, value in minilm_base.items():
        monkeypatch.setenv(key, value)
    return minilm_base


@pytest.fixture(scope="session")
def minilm_micro_checkpoint(minilm_base, tmp_path_factory):
    """A micro model on the fixture minilm backbone (LoRA), trained for 20 steps. Tests using it
    need ``minilm_env`` too (loading rebuilds the base from the fixture)."""
    from mtsc_sdr.train.config import TrainConfig
    from mtsc_sdr.train.trainer import train

    out = tmp_path_factory.mktemp("minilm-micro") / "ck"
    cfg = TrainConfig.from_dict({"preset": "micro", "model": {"backbone": "minilm"}, "examples_per_task": 16,
                                 "steps": 20, "batch_size": 4, "checkpoint_dir": str(out), "num_threads": 1})
    with pytest.MonkeyPatch.context() as mp:
        for key, value in minilm_base.items():
            mp.setenv(key, value)
        train(cfg, quiet=True)
    return out


@pytest.fixture(scope="session")
def bart_lora_checkpoint(tmp_path_factory):
    """A micro model on a tiny local BART (tests/bart_fixture.py) tuned with LoRA, its adapters set
    to non-zero values (so they change every output), saved; the local BART directory is deleted
    afterwards: the checkpoint must not need it."""
    import shutil

    import torch

    from mtsc_sdr.model import ModelConfig, TextTokenizer, build_model, save
    from mtsc_sdr.model.tokenizer import corpus
    from tests.bart_fixture import write_bart

    root = tmp_path_factory.mktemp("bart-lora")
    lam = write_bart(root / "bart", TextTokenizer.train(corpus(n_scenes=40, n_audio=10, n_video=10)))
    torch.manual_seed(0)
    model = build_model(ModelConfig.micro(), lam_path=str(lam))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.05)
    save(model, root / "ck")
    shutil.rmtree(lam)
    return root / "ck"
