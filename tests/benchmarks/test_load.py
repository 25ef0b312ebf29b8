"""The load benchmark: how it finds the window in which every client was sending, the knee and
what gives first, and a tiny run end to end (the figures per client count and their schema)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.helpers import load_benchmark

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "load.py"


@pytest.fixture(scope="module")
def load():
    return load_benchmark("load")


def test_the_window_spans_from_the_last_first_answer_to_the_first_last_one(load, tmp_path):
    counter = load.AnswerCounter(tmp_path)
    counter.series = {"a": [(1, 0), (2, 5), (3, 10), (4, 15), (5, 20), (6, 20)],
                      "b": [(1, 0), (2, 0), (3, 4), (4, 8), (5, 12), (6, 16), (7, 20)]}
    assert counter.window(2, 0.5) == (3, 5, (20 - 10) + (12 - 4), "steady")
    assert counter.window(2, 1.0)[3] == "all"              # less than three ticks of overlap


def test_the_knee_is_where_throughput_stops_growing_and_latency_climbs(load):
    results = [{"clients": 1, "items_per_s": 50, "latency_ms_p50": 40}, {"clients": 4, "items_per_s": 90, "latency_ms_p50": 80},
               {"clients": 16, "items_per_s": 95, "latency_ms_p50": 300}, {"clients": 32, "items_per_s": 94, "latency_ms_p50": 600}]
    assert load.knee(results)["clients"] == 4
    assert load.knee(results[:2]) is None


def test_what_gives_first_names_the_saturated_resource(load):
    base = {"samples_dropped": 0, "downlink_failed": 0, "cores": 2}
    assert "base station's CPU" in load.gives_first({**base, "cpu_cores": {"bs": 0.95, "client": 0.8},
                                                     "cpu_cores_ours": 1.75, "cpu_cores_machine": 1.9})
    busy = load.gives_first({**base, "cpu_cores": {"bs": 0.3, "client": 0.6}, "cpu_cores_ours": 0.9,
                             "cpu_cores_machine": 1.9})
    assert "machine's CPU" in busy and "other processes 1.00" in busy
    assert "nothing saturated" in load.gives_first({**base, "cpu_cores": {"bs": 0.3}, "cpu_cores_ours": 0.3,
                                                    "cpu_cores_machine": 0.5})
    assert "IQ queues" in load.gives_first({**base, "samples_dropped": 10, "cpu_cores": {}, "cpu_cores_ours": 0.1,
                                            "cpu_cores_machine": 0.1})


def test_a_tiny_load_run_reports_every_client_count(tmp_path):
    out = tmp_path / "load"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--clients", "1", "2", "--items-per-client", "4",
                           "--out", str(out), "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert {"meta", "rows", "summary", "counts"} <= set(report)
    assert [c["clients"] for c in report["counts"]] == [1, 2]
    for c in report["counts"]:
        assert c["records"] == c["items_given"] == 4 * c["clients"] and c["stopped"] is None
        assert c["items_per_s"] > 0 and c["latency_ms_p50"] is not None
    rows = [r for r in report["rows"] if r["metric"] in ("items_error", "rx_queue_peak_samples")]
    assert len(rows) == 4 and all(r["meets_target"] for r in rows)
    assert (out / "load.png").is_file()
