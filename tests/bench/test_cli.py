"""``mtsc-sdr bench`` (schema, on the micro model) and the memory helpers."""

from __future__ import annotations

import json

from mtsc_sdr.memory import TegraStats, parse_tegrastats
from mtsc_sdr.report import peak_rss_mb
from mtsc_sdr.report import percentiles


def test_percentiles():
    assert percentiles([]) == {"p50": None, "p90": None, "p99": None}
    p = percentiles(list(range(1, 101)))
    assert p["p50"] == 50.5 and p["p90"] == 90.1 and p["p99"] == 99.01


def test_parse_nvpmodel_query():
    from mtsc_sdr.report import parse_nvpmodel

    assert parse_nvpmodel("NV Power Mode: 15W\n0\n") == {"name": "15W", "id": 0}
    assert parse_nvpmodel("NVPM WARN: ...\nNV Power Mode: MAXN\n2\n") == {"name": "MAXN", "id": 2}
    assert parse_nvpmodel("nvpmodel: command failed\n") is None


def test_parse_tegrastats_lines():
    orin = ("11-24-2026 10:00:00 RAM 2270/7620MB (lfb 4x4MB) SWAP 0/3810MB (cached 0MB) CPU [1%@1510,off,"
            "off,off,2%@1510,0%@1510] GR3D_FREQ 0% cpu@44.5C soc2@43.4C VDD_IN 4471mW/4471mW")
    assert parse_tegrastats(orin) == (2270, 7620)
    xavier = "RAM 1854/6854MB (lfb 1x4MB) SWAP 0/3427MB IRAM 0/252kB(lfb 252kB) CPU [3%@1190,2%@1190]"
    assert parse_tegrastats(xavier) == (1854, 6854)
    assert parse_tegrastats("CPU [1%@1510] GR3D_FREQ 0%") is None


def test_tegrastats_sampler_reads_a_fake_tool(tmp_path):
    fake = tmp_path / "tegrastats"
    fake.write_text("#!/bin/sh\nfor u in 100 300 200; do echo \"RAM $u/4000MB CPU [1%@100]\"; sleep 0.05; done\n"
                    "sleep 30\n")
    fake.chmod(0o755)
    assert TegraStats.available(str(fake))
    with TegraStats(interval_ms=50, command=str(fake)) as t:
        import time

        deadline = time.monotonic() + 10
        while t.samples < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert (t.peak_used_mb, t.total_mb, t.samples) == (300, 4000, 3)
    assert peak_rss_mb() > 10


def test_bench_report_schema(micro_checkpoint, tmp_path, capsys):
    from mtsc_sdr.cli import main

    rc = main(["bench", "--checkpoint", str(micro_checkpoint), "--items", "2", "--warmup", "1", "--tasks", "vqa",
               "reconstruct", "--no-pipeline", "--out", str(tmp_path), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((tmp_path / "bench.json").read_text())
    meta = report["meta"]
    assert {"config", "versions", "machine", "torch_threads", "tegrastats"} <= set(meta)
    assert meta["config"]["precisions"] == ["int8", "fp32"]
    rows = report["rows"]
    for r in rows:
        assert {"system", "task", "channel", "snr_db", "metric", "value"} <= set(r)
    for precision in ("int8", "fp32"):
        p99 = {r["stage"]: r["value"] for r in rows if r.get("precision") == precision and r["task"] == "all"
               and r["metric"] == "latency_ms_p99"}
        assert set(p99) == {"modality_encoders", "lam_encoder", "jsc_encoder", "encode", "framing", "task_decoders"}
        assert all(v is not None and v > 0 for v in p99.values()), p99
        p50 = {r["stage"]: r["value"] for r in rows if r.get("precision") == precision and r["task"] == "all"
               and r["metric"] == "latency_ms_p50"}
        assert all(p50[k] <= p99[k] for k in p99)
    wb = {r["precision"]: r["value"] for r in rows if r["metric"] == "weight_bytes"}
    assert wb["int8"] < wb["fp32"]
    assert any(r["metric"] == "peak_rss_mb" and r["process"] == "bench" for r in rows)


def test_peak_rss_of_a_child_is_its_own_not_its_parents():
    """Linux's ru_maxrss carries the parent's size at fork across exec; peak_rss_mb must not."""
    import subprocess
    import sys

    import numpy as np

    held = np.ones(300_000_000 // 8)                     # 300 MB resident in this process
    held[::512] = 2.0
    child = subprocess.run([sys.executable, "-c", "from mtsc_sdr.report import peak_rss_mb; print(peak_rss_mb())"],
                           capture_output=True, text=True, check=True)
    assert float(child.stdout) < 200.0 and held.sum() > 0
