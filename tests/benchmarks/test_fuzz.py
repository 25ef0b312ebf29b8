"""The fuzz benchmark's honesty: its mutation engine counts an undocumented exception as a crash
and saves the input, and a short run over every target reports the schema with zero crashes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.helpers import load_benchmark
from tests.fuzz import targets

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz.py"


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("fuzz")


def test_an_undocumented_exception_is_a_saved_crash(bench, tmp_path, monkeypatch):
    def make(work):
        def run(data: bytes) -> None:
            if data == b"abc" * 8:
                return
            if b"\x00" in data:
                raise KeyError("undocumented")
            raise ValueError("documented")
        return run, [b"abc" * 8]

    monkeypatch.setattr(bench.registry, "get", lambda name: targets.Target(name, (ValueError,), make))
    result = bench.child_mutation("broken", 400, 0, tmp_path / "crashes", tmp_path / "work")
    assert result["inputs"] == 400 and result["crashes"] > 0
    assert result["crashes"] == result["outcomes"]["CRASH KeyError"]
    assert result["outcomes"]["parsed"] + result["outcomes"]["ValueError"] + result["crashes"] == 400
    saved = sorted((tmp_path / "crashes" / "broken").iterdir())
    assert saved and all(b"\x00" in f.read_bytes() for f in saved)


def test_mutations_are_deterministic_and_edit_the_seeds(bench):
    import random

    seeds = [bytes(range(40)), b"x" * 10]
    rng_a, rng_b = random.Random(3), random.Random(3)
    a = [bench.mutate(rng_a, seeds) for _ in range(50)]
    assert a == [bench.mutate(rng_b, seeds) for _ in range(50)]
    assert len(set(a) - set(seeds)) > 40


def test_a_short_run_of_every_target_reports_zero_crashes(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--runs", "200", "--engine", "mutation", "--json",
                           "--crashes", str(tmp_path / "crashes")], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert set(report) == {"meta", "rows"} and report["meta"]["engine"] == "mutation"
    per_target = {r["target"]: r for r in report["meta"]["targets"]}
    assert set(per_target) == set(targets.NAMES)
    for name, r in per_target.items():
        assert r["inputs"] == 200 and r["crashes"] == 0, (name, r)
        assert r["seeds"] >= 1 and len(r["seeds_sha256"]) == 64 and r["covers"]
        assert sum(r["outcomes"].values()) == 200
    crashes = [row for row in report["rows"] if row["metric"] == "crashes"]
    assert len(crashes) == len(targets.NAMES) and all(row["value"] == 0 for row in crashes)
    verdicts = [row for row in report["rows"] if "meets_target" in row]
    assert verdicts and not any(row["meets_target"] for row in verdicts)   # 200 inputs < 10^5
    assert not (tmp_path / "crashes").exists() or not any((tmp_path / "crashes").rglob("crash-*"))
