"""``mtsc-sdr demo`` on the micro model (as the shipped model): never trains, sweeps the software
channel, adds the baseline, writes report.json and the plots. ``configs/``: every run config loads,
and ``configs/demo.yaml`` is what the demo runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_demo_uses_the_shipped_model_and_never_trains(tmp_path, monkeypatch, capsys, micro_checkpoint):
    import shutil

    from mtsc_sdr.cli import main
    from mtsc_sdr.train import trainer

    monkeypatch.setenv("MTSC_MODELS", str(tmp_path / "models"))
    monkeypatch.setattr(trainer, "train", lambda *a, **k: pytest.fail("the demo trained a model"))
    args = ["demo", "--snr-db", "0", "20", "--n-per-task", "2", "--no-gnuradio", "--precision", "fp32"]
    assert main(args + ["--out", str(tmp_path / "d0")]) == 2          # no shipped model: say so, train nothing
    assert "no model in" in capsys.readouterr().err
    shutil.copytree(micro_checkpoint, tmp_path / "models" / "default")
    assert main(args + ["--out", str(tmp_path / "d2"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((tmp_path / "d2" / "report.json").read_text())
    assert report["meta"]["checkpoint"] == str(tmp_path / "models" / "default")
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
    from mtsc_sdr.runtime.demo import DEFAULT_N_PER_TASK, DEFAULT_SNRS_DB, demo_run_config
    from mtsc_sdr.runtime.run import load_config

    cfg = load_config(str(REPO / "configs" / "demo.yaml"))
    assert DEFAULT_N_PER_TASK >= 50
    ours = demo_run_config(["software", "gnuradio-sim"], "ck", list(DEFAULT_SNRS_DB), n_per_task=DEFAULT_N_PER_TASK,
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
