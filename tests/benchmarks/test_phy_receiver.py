"""The PHY receiver benchmark's side-by-side timing runs end to end and writes tidy rows with the
ratio and the issue's targets. It checks the script and its schema, not the speed (no wall-clock
asserts); the peer is this checkout itself, so no worktree is created."""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchmarks.helpers import load_benchmark

ROOT = Path(__file__).resolve().parents[2]
ROW_KEYS = {"system", "task", "channel", "snr_db", "metric", "value"}


def test_back_to_back_side_by_side_rows(capsys):
    bench = load_benchmark("phy_receiver")
    assert bench.main(["--parts", "back_to_back", "--runs", "1", "--baseline", str(ROOT), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert all(ROW_KEYS <= r.keys() and r["task"] == "phy" for r in rows)
    msps = {(r["system"], r["payload_len"]): r for r in rows if r["metric"] == "msps"}
    assert set(msps) == {(s, L) for s in ("mtsc", "baseline") for L in (256, 512)}
    assert all(r["value"] > 0 and r["threads"] == 1 and r["clock"] == "process_time" for r in msps.values())
    assert msps[("baseline", 512)]["tree"] == str(ROOT)
    # the 512-symbol case carries issue 18's target; the link test's 256-symbol train has none
    assert msps[("mtsc", 512)]["target"] == 10.0 and isinstance(msps[("mtsc", 512)]["meets_target"], bool)
    assert "target" not in msps[("mtsc", 256)] and "target" not in msps[("baseline", 512)]
    ratios = [r for r in rows if r["metric"] == "msps_ratio"]
    assert {r["payload_len"] for r in ratios} == {256, 512} and all(r["peer"] == "baseline" for r in ratios)
    fps = [r for r in rows if r["metric"] == "frames_per_s"]
    assert len(fps) == 4 and all("target" not in r for r in fps)
