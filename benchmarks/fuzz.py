#!/usr/bin/env python3
"""Fuzz every parser of untrusted input at depth (issue 18): >= 10^5 inputs per target, zero crashes.

    .venv/bin/python benchmarks/fuzz.py [--runs 100000] [--targets message,pmt] [--engine auto]
                                         [--seed 0] [--crashes results/fuzz/crashes] [--scratch /dev/shm]
                                         [--json]

Targets, their documented errors and their seeds are the registry ``tests/fuzz/targets.py`` (the
hypothesis tests in ``tests/fuzz/`` use the same). Each target runs in its own child process:

* ``atheris`` (the default where it imports): coverage-guided libFuzzer, the parsers' modules
  (``mtsc_sdr``) instrumented; the seeds are its starting corpus; ``-runs``, ``-seed``,
  ``-timeout`` (a hang) and ``-rss_limit_mb`` (a huge allocation) are libFuzzer's.
* ``mutation``: bit flips, byte inserts / deletes / repeats, interesting integers written over
  length fields, splices of two seeds; a per-input alarm (hang) and a peak-RSS check (allocation).

Each child works in a scratch directory made under ``--scratch`` (default /dev/shm, a tmpfs, where
writable: file writes, fsyncs and unlinks cost next to nothing there; see :func:`default_scratch`).

A crash is any exception outside the target's documented error types, a hang or a huge
allocation; its input is saved to ``--crashes/<target>/`` and printed. Report per target: inputs
run, crashes, the exception types seen and how often (mutation; atheris counts them too), wall
time, the seeds (count and sha256 of their concatenation).

Measured (a shared 2-core VM, other jobs running; see benchmarks/FUZZ.md for the full table).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # the repository root: tests.fuzz.targets

from tests.fuzz import targets as registry  # noqa: E402

#: a mutation-engine input that runs longer than this is a hang (seconds)
HANG_S = 20
#: a child whose peak RSS grows past this is a huge allocation (MiB): libFuzzer's default limit
RSS_LIMIT_MB = 2048
INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]


class Hang(BaseException):
    """An input ran past HANG_S (BaseException: no target catches it)."""


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One mutated input: 1-4 edits of a seed (or a splice of two)."""
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:                       # bit flip
            data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and data:                     # random byte
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 2:                              # delete a run
            del data[pos:pos + rng.choice((1, 2, 4, 8, 64))]
        elif op == 3:                              # insert random bytes
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 4, 8))))
        elif op == 4 and data:                     # repeat a run (nesting, long strings)
            run = data[pos:pos + rng.randint(1, 16)]
            data[pos:pos] = run * rng.choice((2, 16, 256))
        elif op == 5:                              # an interesting integer over a length field
            width, order = rng.choice((1, 2, 4, 8)), rng.choice(("little", "big"))
            value = rng.choice(INTERESTING) % (1 << (8 * width))
            data[pos:pos + width] = value.to_bytes(width, order)
        else:                                      # splice with another seed
            other = rng.choice(seeds)
            cut = rng.randrange(len(other) + 1)
            data = data[:pos] + other[cut:]
    return bytes(data)


def default_scratch() -> str:
    """/dev/shm where it is a writable directory (a tmpfs), else "" (the system's temporary directory).

    The file targets write every input to a file and some of the code they drive fsyncs what it
    writes after the parse (a knowledge base saves its rebuilt index: two files and their directory,
    fsynced). On a shared VM's disk an fsync or an unlink costs milliseconds, most of such an input's
    time; on a tmpfs they cost next to nothing. The code run is the same."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else ""


def _save_crash(crash_dir: Path, name: str, data: bytes, why: str) -> Path:
    folder = crash_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crash-{hashlib.sha256(data).hexdigest()[:16]}"
    path.write_bytes(data)
    print(f"CRASH {name}: {why} -> {path}", file=sys.stderr, flush=True)
    return path


def _setup(name: str, work: Path):
    """The target, its runner and seeds (each checked to parse), made in ``work``; the seeds are
    also written to ``work/../seeds`` for the report."""
    import logging

    logging.disable(logging.CRITICAL)     # the parsers log every drop; millions of lines otherwise
    work.mkdir(parents=True, exist_ok=True)
    target = registry.get(name)
    run, seeds = target.make(work)
    seeds_dir = work.parent / "seeds"
    seeds_dir.mkdir(exist_ok=True)
    for i, seed in enumerate(seeds):
        assert registry.feed(target, run, seed) is None, f"{name}: a seed does not parse"
        (seeds_dir / f"{i:03d}").write_bytes(seed)
    return target, run, seeds


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_mutation(name: str, runs: int, seed: int, crash_dir: Path, work: Path) -> dict:
    """The mutation engine for one target, in this (child) process."""
    target, run, seeds = _setup(name, work)
    rng = random.Random(seed)
    errors: dict[str, int] = {}
    crashes: list[str] = []
    rss0 = _peak_rss_mb()

    def alarm(*_):
        raise Hang(f"input ran past {HANG_S} s")

    signal.signal(signal.SIGALRM, alarm)
    t0 = time.perf_counter()
    for i in range(runs):
        data = seeds[i] if i < len(seeds) else mutate(rng, seeds)
        signal.alarm(HANG_S)
        try:
            outcome = registry.feed(target, run, data) or "parsed"
        except (Exception, Hang) as exc:
            outcome = f"CRASH {type(exc).__name__}"
            crashes.append(str(_save_crash(crash_dir, name, data, f"{type(exc).__name__}: {str(exc)[:200]}")))
        finally:
            signal.alarm(0)
        if _peak_rss_mb() - rss0 > RSS_LIMIT_MB:
            crashes.append(str(_save_crash(crash_dir, name, data, f"peak RSS {_peak_rss_mb():.0f} MiB")))
            break
        errors[outcome] = errors.get(outcome, 0) + 1
    return {"inputs": sum(errors.values()), "crashes": len(crashes), "crash_files": crashes, "outcomes": errors,
            "wall_s": time.perf_counter() - t0, "peak_rss_mb": _peak_rss_mb()}


def child_atheris(name: str, runs: int, seed: int, crash_dir: Path, work: Path, stats_file: Path) -> None:
    """libFuzzer via atheris for one target, in this (child) process; atheris.Fuzz never returns:
    the outcome counts go to ``stats_file`` every 1000 inputs, libFuzzer's summary to stderr."""
    import atheris

    with atheris.instrument_imports(include=["mtsc_sdr"]):
        target, run, seeds = _setup(name, work)
    corpus = work / "corpus"
    corpus.mkdir(exist_ok=True)
    for s in seeds:
        (corpus / hashlib.sha256(s).hexdigest()[:16]).write_bytes(s)
    errors: dict[str, int] = {}

    def one(data: bytes) -> None:
        outcome = registry.feed(target, run, data) or "parsed"   # an undocumented exception: libFuzzer's crash
        errors[outcome] = errors.get(outcome, 0) + 1
        if sum(errors.values()) % 1000 == 0:
            stats_file.write_text(json.dumps(errors))

    folder = crash_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    # libFuzzer's own default is the largest seed, but at most 1 MiB: a larger seed (a checkpoint's
    # weights, 2 MB) would be cut, never parse, and the corpus shrink to a few bytes of garbage
    max_len = max(4096, *(len(s) for s in seeds))
    argv = [sys.argv[0], f"-runs={runs}", f"-seed={seed + 1}", f"-timeout={HANG_S}", f"-rss_limit_mb={RSS_LIMIT_MB}",
            f"-max_len={max_len}", f"-artifact_prefix={folder}/", "-print_final_stats=1", str(corpus)]
    atheris.Setup(argv, one)
    atheris.Fuzz()


def run_target(name: str, args, crash_dir: Path) -> dict:
    """Run one target in a child process; its row of the report."""
    target = registry.get(name)
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-", dir=args.scratch or None) as tmp:
        work = Path(tmp)
        stats = work / "stats.json"
        cmd = [sys.executable, __file__, "--child", name, "--runs", str(args.runs), "--seed", str(args.seed),
               "--engine", args.engine, "--crashes", str(crash_dir), "--work", str(work)]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        seeds = [p.read_bytes() for p in sorted((work / "seeds").glob("*"))]
        if args.engine == "mutation":
            if done.returncode != 0 or not (work / "result.json").is_file():
                raise SystemExit(f"{name}: the fuzz child failed ({done.returncode}):\n{done.stderr[-3000:]}")
            result = json.loads((work / "result.json").read_text())
        else:
            final = re.findall(r"Done (\d+) runs in (\d+) second", done.stderr)
            crash_files = re.findall(r"Test unit written to (\S+)", done.stderr)
            crashed = done.returncode != 0 or bool(crash_files)
            if crashed:     # atheris prints an uncaught Python exception's traceback to stdout
                print(f"CRASH {name}: libFuzzer exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-4000:]}",
                      file=sys.stderr)
            execs = re.findall(r"stat::number_of_executed_units:\s+(\d+)", done.stderr)
            result = {"inputs": int(execs[-1]) if execs else int(final[-1][0]) if final else 0,
                      "crashes": int(crashed), "crash_files": crash_files,
                      "outcomes": json.loads(stats.read_text()) if stats.is_file() else {},
                      "wall_s": wall,
                      "peak_rss_mb": float((re.findall(r"stat::peak_rss_mb:\s+(\d+)", done.stderr) or ["nan"])[-1]),
                      "coverage": int((re.findall(r"cov: (\d+)", done.stderr) or ["0"])[-1])}
    seed_hash = hashlib.sha256(b"".join(hashlib.sha256(s).digest() for s in seeds)).hexdigest()
    return {"target": name, "covers": target.doc, "errors": [e.__name__ for e in target.errors],
            "engine": args.engine, "seeds": len(seeds), "seeds_sha256": seed_hash, **result}


def rows_of(results: list[dict]) -> list[dict]:
    """The DESIGN.md row schema: inputs, crashes and wall time per target, and the issue's target
    (>= 10^5 inputs, zero crashes) as its own row."""
    rows = []
    for r in results:
        base = {"system": "mtsc", "task": "fuzz", "channel": None, "snr_db": None, "stage": r["target"]}
        rows.append({**base, "metric": "inputs", "value": r["inputs"]})
        rows.append({**base, "metric": "crashes", "value": r["crashes"]})
        rows.append({**base, "metric": "wall_s", "value": round(r["wall_s"], 2), "unit": "s"})
        rows.append({**base, "metric": "inputs_per_s", "value": round(r["inputs"] / max(r["wall_s"], 1e-9), 1)})
        rows.append({**base, "metric": "fuzz_target_met", "value": r["inputs"] >= 100_000 and r["crashes"] == 0,
                     "target": ">= 1e5 inputs, 0 crashes",
                     "meets_target": r["inputs"] >= 100_000 and r["crashes"] == 0})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=100_000, help="inputs per target")
    p.add_argument("--targets", default=",".join(registry.NAMES), help="comma-separated target names")
    p.add_argument("--engine", choices=("auto", "atheris", "mutation"), default="auto",
                   help="auto: atheris where it imports, else mutation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crashes", default="results/fuzz/crashes", help="where crashing inputs are saved")
    p.add_argument("--scratch", default=default_scratch(),
                   help="where each target's scratch directory is made (default: /dev/shm where writable, "
                        "else the system's temporary directory)")
    p.add_argument("--json", action="store_true", help="print one JSON object {meta, rows}")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    crash_dir = Path(args.crashes).resolve()

    if args.child:                         # one target, in this process
        work = Path(args.work)
        if args.engine == "mutation":
            result = child_mutation(args.child, args.runs, args.seed, crash_dir, work / "run")
            (work / "result.json").write_text(json.dumps(result))
            return 0
        child_atheris(args.child, args.runs, args.seed, crash_dir, work / "run", work / "stats.json")
        return 0

    if args.engine == "auto":
        args.engine = "atheris" if importlib.util.find_spec("atheris") else "mutation"
    names = [n for n in args.targets.split(",") if n]
    for n in names:
        registry.get(n)                     # an unknown name fails before anything runs
    results = []
    for name in names:
        r = run_target(name, args, crash_dir)
        results.append(r)
        if not args.json:
            print(f"{name:22s} {r['inputs']:>8d} inputs  {r['crashes']} crashes  {r['wall_s']:7.1f} s  "
                  f"{r['seeds']} seeds  {dict(sorted(r['outcomes'].items()))}", flush=True)
    meta = {"benchmark": "fuzz", "config": {k: v for k, v in vars(args).items() if k not in ("child", "work")},
            "seeds": {"base": args.seed}, "engine": args.engine,
            "versions": {"python": platform.python_version()}, "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "targets": results}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows_of(results)}, indent=1))
    return 1 if any(r["crashes"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
