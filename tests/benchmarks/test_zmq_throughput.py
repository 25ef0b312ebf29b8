"""The throughput benchmark's own honesty: its sample pattern is finite and self-describing, its
checker catches lost, reordered and corrupted samples, and a short run reports the schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.benchmarks.helpers import load_benchmark

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "zmq_throughput.py"


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("zmq_throughput")


def test_pattern_is_finite_and_decodes_to_sample_index(bench):
    starts = [0, 1 << 29, (1 << 30) - 3, 5 << 30, (1 << 40) + 7]
    for start in starts:
        words = bench.pattern(start, 8)
        assert [bench.decode_word(int(w)) for w in words] == list(range(start, start + 8))
        assert int(words[0]) == bench.pattern_word(start)
        assert np.isfinite(words.view(np.float32)).all()


def test_checker_counts_lost_reordered_and_corrupt(bench):
    n = 16
    chunks = [bench.pattern(i * n, n).view(np.complex64) for i in range(6)]
    clean = bench.PatternChecker(n)
    for c in chunks:
        clean.check(c)
    assert (clean.lost, clean.reordered, clean.corrupt) == (0, 0, 0)

    chk = bench.PatternChecker(n)
    chk.check(chunks[0])
    chk.check(chunks[2])  # chunk 1 lost
    chk.check(chunks[1])  # arrives late
    bad = chunks[3].view(np.uint64).copy()
    bad[5] ^= np.uint64(1)
    chk.check(bad.view(np.complex64))
    chk.check(chunks[4][:7])  # a short message is checked too
    assert (chk.lost, chk.reordered, chk.corrupt) == (n, n, 1)


def test_short_run_reports_rows_and_zero_loss():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--seconds", "0.5", "--rounds", "1", "--no-gnuradio",
                           "--message-samples", "16384", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report) == {"meta", "rows"} and report["meta"]["notes"]["gnuradio"].startswith("skipped")
    rows = {r["metric"]: r for r in report["rows"]}
    assert set(rows) <= {"msps", "cpu_s_per_gsample"} and all(r["system"] == "mtsc" for r in rows.values())
    row = rows["msps"]
    assert (row["system"], row["task"], row["channel"], row["snr_db"], row["metric"], row["unit"]) == (
        "mtsc", "link", "zmq-loopback", None, "msps", "Msamples/s")
    assert row["value"] > 0 and row["lost_samples"] == 0 and row["corrupt_samples"] == 0 and row["verified"]
    if "cpu_s_per_gsample" in rows:  # needs /proc
        assert rows["cpu_s_per_gsample"]["value"] > 0


def test_allocator_tuning_is_opt_in_and_reports_whether_applied():
    from mtsc_sdr.link.alloc import tune_allocator_for_streaming

    code = "from mtsc_sdr.link.alloc import tune_allocator_for_streaming as t; print(t(1 << 20))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=str(SCRIPT.parents[1]))
    assert out.returncode == 0, out.stderr
    expected = sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver())
    assert out.stdout.strip() == str(bool(expected))
    assert callable(tune_allocator_for_streaming)
