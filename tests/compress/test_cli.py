"""``mtsc-sdr compress``: export + measure, plan (feasible, infeasible), apply; TensorRT refused here."""

from __future__ import annotations

import json

import pytest

from mtsc_sdr.cli import main
from mtsc_sdr.compress.artifact import read


@pytest.fixture(scope="module")
def measured(micro_checkpoint, tmp_path_factory):
    """Two measured artifacts of the micro model: torch fp32 and ONNX Runtime int8-dynamic."""
    root = tmp_path_factory.mktemp("cands")
    for fmt, q in (("torch", "fp32"), ("onnx", "int8-dynamic")):
        assert main(["compress", "export", "--checkpoint", str(micro_checkpoint), "--format", fmt,
                     "--quantization", q, "--out", str(root / f"{q}-{fmt}"), "--measure", "--items", "20"]) == 0
    return root


def test_export_measures_into_the_manifest(measured):
    m = read(measured / "int8-dynamic-onnx").manifest
    assert m["runtime"] == "onnxruntime" and m["name"] == "int8-dynamic"
    assert set(m["accuracy"]) == set(m["tasks"]) and m["accuracy_setup"]["items_per_task"] == 20
    lat = m["latency_ms"]["x86-cpu"]
    assert 0 < lat["p50"] <= lat["p90"] and m["peak_memory_mb"]["x86-cpu"] > 0
    assert m["weight_bytes"] < read(measured / "fp32-torch").manifest["weight_bytes"]


def test_plan_then_apply(micro_checkpoint, measured, tmp_path, capsys):
    plan_file = tmp_path / "plan.json"
    rc = main(["compress", "plan", "--checkpoint", str(micro_checkpoint), "--candidates", str(measured),
               "--profile", "x86-cpu", "--latency-ms", "10000", "--memory-mb", "100000", "--out", str(plan_file),
               "--json"])
    assert rc == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["feasible"] and plan["chosen"] in ("fp32@torch", "int8-dynamic@onnxruntime")
    assert plan["provenance"]["latency_ms_p90"] == "measured"
    rc = main(["compress", "apply", str(plan_file), "--out", str(tmp_path / "applied"), "--items", "10"])
    assert rc == 0
    art = read(tmp_path / "applied")
    assert art.manifest["latency_ms"] and art.source_identity == read(measured / "fp32-torch").source_identity


def test_an_infeasible_plan_names_the_closest_candidate_and_the_broken_constraint(micro_checkpoint, measured,
                                                                                  capsys):
    rc = main(["compress", "plan", "--checkpoint", str(micro_checkpoint), "--candidates", str(measured),
               "--profile", "jetson-orin-nano", "--latency-ms", "0.0001"])
    out = capsys.readouterr().out
    assert rc == 1 and "infeasible" in out.lower() and "latency" in out and "closest" in out.lower()
    assert "estimated" in out          # nothing was measured on a Jetson here


def test_tensorrt_export_without_a_gpu_says_why(micro_checkpoint, tmp_path, capsys):
    from mtsc_sdr.compress.tensorrt import gpu_available

    if gpu_available()[0]:
        pytest.skip("this machine has a GPU and TensorRT: the refusal does not apply")
    rc = main(["compress", "export", "--checkpoint", str(micro_checkpoint), "--format", "tensorrt",
               "--out", str(tmp_path / "trt")])
    assert rc == 2 and "builds engines on the GPU" in capsys.readouterr().err


def test_a_run_lets_the_base_station_plan_its_clients(micro_checkpoint, measured):
    """Two clients with their devices and budgets; the run's planner gives each an artifact."""
    from mtsc_sdr.config import from_dict
    from mtsc_sdr.runtime.run import RunConfig, plan_clients

    cfg = from_dict(RunConfig, {"candidates": str(measured), "clients": [
        {"plan": {"profile": "x86-cpu", "latency_ms": 10000}},
        {"plan": {"profile": "jetson-orin-nano", "memory_mb": 100000}, "precision": "fp32"}]})
    plans = plan_clients(cfg, str(micro_checkpoint))
    assert plans["feasible"] and len(plans["clients"]) == 2
    for spec in cfg.clients:
        assert read(spec.artifact).manifest["runtime"] == spec.runtime and spec.device == spec.plan.profile
    cfg = from_dict(RunConfig, {"candidates": str(measured), "clients": [
        {"plan": {"profile": "x86-cpu", "latency_ms": 0.0001}}]})
    with pytest.raises(ValueError, match="cannot plan"):
        plan_clients(cfg, str(micro_checkpoint))


def test_on_a_jetson_the_memory_probe_also_counts_the_boards_ram(micro_checkpoint, tmp_path, monkeypatch):
    """A fake tegrastats: 1000 MB in use before the probe, 3000 MB while it runs; the GPU's share
    is not in the probe's RSS, so the figure is the board's rise."""
    from mtsc_sdr.compress.measure import peak_memory_mb

    state = tmp_path / "calls"
    fake = tmp_path / "tegrastats"
    fake.write_text(f"#!/bin/sh\nif [ -e {state} ]; then u=3000; else u=1000; touch {state}; fi\n"
                    "while true; do echo \"RAM $u/7620MB CPU [1%@100]\"; sleep 0.05; done\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    assert peak_memory_mb(micro_checkpoint) == 2000.0
