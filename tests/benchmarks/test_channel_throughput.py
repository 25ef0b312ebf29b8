"""The channel throughput benchmark runs end to end and writes the project's tidy-row JSON.

Tiny sample counts: this checks the script and its schema, not the speed (no wall-clock asserts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "channel_throughput.py"
ROW_KEYS = {"system", "task", "channel", "snr_db", "metric", "value"}


def run_benchmark(*extra: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, str(SCRIPT), "--samples", "2e5", "--repeats", "1", "--json", *extra],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_benchmark_without_gnuradio_says_why_and_times_ours():
    result = run_benchmark("--no-gnuradio")
    assert result["meta"]["gnuradio_skipped"] == "--no-gnuradio given"
    assert result["meta"]["threads"]["mtsc"] == 1 and result["meta"]["seed"] == 1
    rows = result["rows"]
    assert {(r["system"], r["channel"], r["metric"]) for r in rows} == {
        ("mtsc", "awgn", "msps"), ("mtsc", "rician+awgn+cfo", "msps")}
    for row in rows:
        assert ROW_KEYS <= row.keys() and row["task"] == "channel" and row["unit"] == "Msamples/s"
        assert row["value"] > 0


def test_benchmark_skips_gnuradio_with_the_reason_when_absent():
    env = {**os.environ, "MTSC_GR_PYTHON": "/nonexistent/python3"}
    result = run_benchmark(env=env)
    assert result["meta"]["gnuradio_skipped"].startswith("GNU Radio not available")
    assert {r["system"] for r in result["rows"]} == {"mtsc"}


@pytest.mark.gnuradio
def test_benchmark_against_gnuradio_writes_ratio_rows(gr_python):
    result = run_benchmark("--gr-python", gr_python)
    rows = result["rows"]
    assert result["meta"]["versions"]["gnuradio"]["version"].startswith("3.")
    systems = {(r["system"], r["channel"], r["metric"]) for r in rows}
    assert ("gnuradio", "awgn", "msps") in systems and ("gnuradio", "rician+awgn+cfo", "msps") in systems
    ratios = [r for r in rows if r["metric"] == "msps_ratio"]
    assert {r["channel"] for r in ratios} == {"awgn", "rician+awgn+cfo"}
    by_key = {(r["system"], r["channel"], r.get("flowgraph")): r["value"] for r in rows if r["metric"] == "msps"}
    for ratio in ratios:
        assert ratio["peer"] == "gnuradio" and ROW_KEYS <= ratio.keys()
        ours = by_key[("mtsc", ratio["channel"], None)]
        peer = next(v for (s, c, fg), v in by_key.items()
                    if s == "gnuradio" and c == ratio["channel"] and fg != "fastnoise_source_c + add_cc")
        assert ratio["value"] == pytest.approx(ours / peer, rel=0.01)
