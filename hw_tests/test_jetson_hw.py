"""On a Jetson (``/etc/nv_tegra_release`` present; skipped elsewhere): the client-latency measurement
of ``mtsc-sdr bench`` (:func:`mtsc_sdr.bench.cli.bench`, in-process client stages) on a micro model
trained here for a few seconds, with the board's memory sampled by ``tegrastats``. The report must
carry the latency rows and the peak RAM in use that tegrastats saw.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TEGRA_RELEASE = Path("/etc/nv_tegra_release")

pytestmark = pytest.mark.skipif(not TEGRA_RELEASE.exists(), reason=f"not a Jetson ({TEGRA_RELEASE} is absent)")


@pytest.fixture(scope="module")
def micro_checkpoint(tmp_path_factory) -> Path:
    """A micro model trained for 40 steps (what the default suite's process tests run)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from mtsc_sdr.train.config import TrainConfig
    from mtsc_sdr.train.trainer import train

    out = tmp_path_factory.mktemp("micro") / "ck"
    train(TrainConfig.from_dict({"preset": "micro", "tokenizer_scenes": 40, "examples_per_task": 16, "steps": 40,
                                 "batch_size": 4, "checkpoint_dir": str(out), "num_threads": 1}), quiet=True)
    return out


def test_client_latency_report_has_tegrastats_peak_memory(micro_checkpoint, tmp_path):
    from mtsc_sdr.bench.cli import bench, format_table
    from mtsc_sdr.memory import TegraStats

    assert TegraStats.available(), "tegrastats is not on PATH on this Jetson (it ships with every JetPack)"
    report = bench(str(micro_checkpoint), precisions=("int8", "fp32"), tasks=("vqa", "reconstruct"), items=3,
                   warmup=1, pipeline=False, out=tmp_path)
    print("\n" + format_table(report))
    tegra = report["meta"]["tegrastats"]
    print(f"tegrastats: {tegra}")
    assert tegra is not None and tegra["samples"] > 0, tegra
    assert 0 < tegra["peak_used_mb"] <= tegra["total_mb"], tegra
    p50 = [r for r in report["rows"] if r["metric"] == "latency_ms_p50" and r["task"] == "all"
           and r["stage"] == "encode"]
    assert {r["precision"] for r in p50} == {"int8", "fp32"}
    assert all(r["value"] is not None and r["value"] > 0 for r in p50), p50
