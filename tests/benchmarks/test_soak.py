"""The soak benchmark: its item accounting and memory figures, and a tiny run end to end (the
figures' schema and that every item is accounted for; a run this short cannot judge growth)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mtsc_sdr.bench.procwatch import Sample, growth_after, process_name
from tests.benchmarks.helpers import load_benchmark

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


@pytest.fixture(scope="module")
def soak():
    return load_benchmark("soak")


def test_plan_gives_every_client_enough_items_despite_the_patch_limit(soak):
    tasks = ["vqa", "reconstruct"]
    n = soak.plan(2000, 2, tasks)           # reconstruct stops at 539 validation patches
    assert 2 * soak.items_per_client(n, tasks) >= 2000 > 2 * soak.items_per_client(n - 1, tasks)


def test_growth_is_judged_after_the_warm_up_only():
    series = [Sample(t, 1, "bs", rss, fds, 0.0, 0) for t, rss, fds in
              ((0, 100.0, 10), (10, 400.0, 30), (20, 400.0, 30), (30, 410.0, 31), (40, 404.0, 30))]
    g = growth_after(series, 10)
    assert (g["rss_mb_at_warmup"], g["rss_mb_max"], g["rss_mb_end"], g["rss_growth_pct"]) == (400.0, 410.0, 404.0, 2.5)
    assert (g["fds_growth"], g["samples"]) == (1, 4)
    assert growth_after(series, 50)["rss_growth_pct"] is None


def test_processes_are_named_by_their_subcommand():
    cli = [sys.executable, "-m", "mtsc_sdr.cli"]
    assert process_name([*cli, "bs", "--rx", "x"]) == "bs"
    assert process_name([*cli, "client", "--tx", "a", "--session", "7", "8"]) == "client 7"
    assert process_name(["/usr/bin/python3", "flowgraph.py"]) == "python3"


def test_a_tiny_soak_accounts_for_every_item_and_reports_each_process(tmp_path):
    out = tmp_path / "soak"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--items", "10", "--clients", "1", "--sample-s", "0.5",
                           "--tasks", "vqa,caption_image", "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert {"meta", "rows", "processes"} <= set(report)
    rows = report["rows"]
    by = {r["metric"]: r for r in rows if "process" not in r}
    assert by["items_given"]["value"] == 10 and by["items_ok"]["value"] + by["items_error"]["value"] == 10
    assert by["items_unaccounted"]["meets_target"] and by["items_duplicated"]["meets_target"]
    named = {r["process"].split()[0] for r in rows if r["metric"] == "rss_growth_pct"}
    assert named == {"bs", "channel", "client"}
    assert all(r["target"] == 5.0 for r in rows if r["metric"] == "rss_growth_pct")
    assert (out / "soak.png").is_file() and (out / "samples.jsonl").read_text().strip()
