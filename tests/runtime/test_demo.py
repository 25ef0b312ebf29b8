"""``mtsc-sdr demo`` on the micro model: trains once into the cache and reuses it, sweeps the software
channel, adds the baseline, writes report.json and the plots. ``configs/``: every run config loads,
and ``configs/demo.yaml`` is what the demo runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_demo_trains_once_then_reuses_the_cached_model(tmp_path, monkeypatch, capsys):
    from mtsc_sdr.cli import main
    from mtsc_sdr.train.config import TrainConfig

    monkeypatch.setenv("MTSC_CACHE", str(tmp_path / "cache"))
    micro = TrainConfig.from_dict({"preset": "micro", "tokenizer_scenes": 40, "examples_per_task": 8, "steps": 6,
                                   "batch_size": 2, "num_threads": 1})
    monkeypatch.setattr(TrainConfig, "default", classmethod(lambda cls: micro))
    args = ["demo", "--snr-db", "0", "20", "--n-per-task", "2", "--no-gnuradio", "--precision", "fp32"]
    assert main(args + ["--out", str(tmp_path / "d1")]) == 0
    weights = tmp_path / "cache" / "models" / "default" / "model.safetensors"
    first = weights.stat().st_mtime_ns
    out = capsys.readouterr()
    assert "training the default model" in out.err
    assert "software/fp32" in out.out and "separate" in out.out
    assert main(args + ["--out", str(tmp_path / "d2"), "--json"]) == 0
    assert weights.stat().st_mtime_ns == first                      # reused, not retrained
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((tmp_path / "d2" / "report.json").read_text())
    systems = {(r["system"], r["channel"]) for r in report["rows"]}
    assert {("mtsc", "software"), ("separate", "awgn"), ("capacity", "awgn"), ("mtsc", "awgn")} <= systems
    for png in ("metrics_vs_snr.png", "latency.png", "constellation_software.png"):
        assert (tmp_path / "d2" / png).stat().st_size > 0


@pytest.mark.parametrize("name", ["demo", "sim", "hil-ci", "pluto-ota", "usrp-ota"])
def test_run_configs_load(name):
    from mtsc_sdr.runtime.run import load_config

    cfg = load_config(str(REPO / "configs" / f"{name}.yaml"))
    assert cfg.name == name


def test_demo_yaml_is_what_the_demo_runs():
    from mtsc_sdr.config import to_dict
    from mtsc_sdr.runtime.demo import DEFAULT_SNRS_DB, demo_run_config
    from mtsc_sdr.runtime.run import load_config

    cfg = load_config(str(REPO / "configs" / "demo.yaml"))
    ours = demo_run_config(["software", "gnuradio-sim"], "ck", list(DEFAULT_SNRS_DB), n_per_task=10,
                           precision="int8", cfo_hz=2000.0, seed=1, out="o")
    skip = {"name", "checkpoint", "out"}
    assert {k: v for k, v in to_dict(cfg).items() if k not in skip} == \
        {k: v for k, v in to_dict(ours).items() if k not in skip}


def test_bad_run_config_names_the_field(tmp_path):
    from mtsc_sdr.config import ConfigError
    from mtsc_sdr.runtime.run import load_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("channel: pluto\nsnr_db: [0, 10]\n")
    with pytest.raises(ConfigError, match="snr_db"):
        load_config(str(bad))
    bad.write_text("clients:\n  - {tasks: [vqa, dance]}\n")
    with pytest.raises(ConfigError, match=r"clients\[0\]\.tasks"):
        load_config(str(bad))
