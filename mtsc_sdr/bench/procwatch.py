"""Watching the processes of a run from the outside: resident memory, open file descriptors, CPU
time and temporary files of every descendant of this process, sampled every few seconds (the
soak and load benchmarks, ``benchmarks/soak.py`` and ``benchmarks/load.py``).

A :class:`ProcessWatch` runs a thread that, every ``interval_s`` seconds, lists this process's
descendants (psutil), names each of ours by its ``mtsc-sdr`` subcommand (``bs``, ``channel``,
``client`` with its first ``--session``) and records a :class:`Sample`. Processes that are not
ours (a GNU Radio flowgraph's helpers, a shell) are named by their executable. Files in
``temp_dir`` (the run's own ``TMPDIR``) are counted with every sample.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Sample:
    """One process at one time: ``t_s`` seconds since the watch started; ``rss_mb`` resident set
    (MiB); ``fds`` open file descriptors; ``cpu_s`` user + system CPU seconds so far;
    ``temp_files`` files in the watched temp directory (the same for every process of a round);
    ``uss_mb`` unique set size (MiB: memory no other process shares, what one more such process
    would add) on every ``uss_every``-th round of a :class:`ProcessWatch`, else None."""

    t_s: float
    pid: int
    name: str
    rss_mb: float
    fds: int
    cpu_s: float
    temp_files: int
    uss_mb: float | None = None


def process_name(cmdline: list[str]) -> str:
    """``bs``, ``channel``, ``client <session>`` (its first ``--session``) for an ``mtsc-sdr``
    process; the executable's base name for anything else."""
    if "mtsc_sdr.cli" in cmdline or any(a.endswith("mtsc-sdr") for a in cmdline[:2]):
        i = next(k for k, a in enumerate(cmdline) if a == "mtsc_sdr.cli" or a.endswith("mtsc-sdr"))
        command = cmdline[i + 1] if i + 1 < len(cmdline) else "?"
        if command == "client" and "--session" in cmdline:
            return f"client {cmdline[cmdline.index('--session') + 1]}"
        return command
    return Path(cmdline[0]).name if cmdline else "?"


class ProcessWatch:
    """Samples every descendant of ``root_pid`` (default: this process) every ``interval_s``.

    ``samples``: every :class:`Sample` so far (append-only; read it after :meth:`stop`, or copy).
    ``system``: ``(t_s, busy_s)`` at every sample: CPU seconds the whole machine (every process,
    ours or not, all cores) has spent busy since boot (everything but idle and iowait).
    """

    def __init__(self, interval_s: float = 5.0, *, root_pid: int | None = None, temp_dir: str | Path | None = None,
                 uss_every: int = 0):
        self.interval_s = float(interval_s)
        self.root = psutil.Process(root_pid or os.getpid())
        self.temp_dir = Path(temp_dir) if temp_dir is not None else None
        self.uss_every = int(uss_every)          # 0: never (reading smaps costs milliseconds per process)
        self._rounds = 0
        self.samples: list[Sample] = []
        self.system: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self._procs: dict[int, psutil.Process] = {}     # kept, so cpu_percent-style state survives

    def start(self) -> "ProcessWatch":
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="process-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.samples

    def temp_files(self) -> int:
        """Files under the temp directory now (0 without one; directories, such as a library's
        empty cache folder, are not counted)."""
        if self.temp_dir is None or not self.temp_dir.is_dir():
            return 0
        return sum(1 for p in self.temp_dir.rglob("*") if not p.is_dir())

    def sample_once(self) -> list[Sample]:
        """Sample every live descendant now; returns (and keeps) the new samples."""
        t = time.monotonic() - self._t0
        temp = self.temp_files()
        uss = self.uss_every > 0 and self._rounds % self.uss_every == 0
        self._rounds += 1
        new = []
        for child in self.root.children(recursive=True):
            proc = self._procs.setdefault(child.pid, child)
            try:
                with proc.oneshot():
                    name = process_name(proc.cmdline())
                    mem, fds, cpu = proc.memory_info(), proc.num_fds(), proc.cpu_times()
                    unique = round(proc.memory_full_info().uss / 2**20, 2) if uss else None
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            new.append(Sample(round(t, 3), proc.pid, name, round(mem.rss / 2**20, 2), fds,
                              round(cpu.user + cpu.system, 3), temp, unique))
        self.samples.extend(new)
        cpu = psutil.cpu_times()
        self.system.append((round(t, 3), sum(cpu) - cpu.idle - getattr(cpu, "iowait", 0.0)))
        return new

    def system_cores(self, start_s: float, end_s: float) -> float | None:
        """Cores the whole machine kept busy on average between ``start_s`` and ``end_s`` (the
        samples nearest inside); None with fewer than two samples there."""
        inside = [x for x in self.system if start_s <= x[0] <= end_s]
        if len(inside) < 2:
            return None
        return round((inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]), 3)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample_once()
            self._stop.wait(self.interval_s)


def by_process(samples: list[Sample]) -> dict[tuple[str, int], list[Sample]]:
    """Samples grouped by (name, pid), each group in time order."""
    groups: dict[tuple[str, int], list[Sample]] = {}
    for s in sorted(samples, key=lambda s: s.t_s):
        groups.setdefault((s.name, s.pid), []).append(s)
    return groups


def growth_after(series: list[Sample], warmup_s: float) -> dict[str, float | int | None]:
    """How one process's memory and descriptors moved after ``warmup_s`` seconds: ``rss_mb_at_warmup``
    (the first sample at or after it), ``rss_mb_max`` and ``rss_mb_end`` after it, ``rss_growth_pct``
    (max over the baseline, %), ``fds_at_warmup``, ``fds_max``, ``fds_growth``, and ``samples`` after
    the warm-up. Values are None when no sample falls after the warm-up."""
    after = [s for s in series if s.t_s >= warmup_s]
    if not after:
        return {"samples": 0, "rss_mb_at_warmup": None, "rss_mb_max": None, "rss_mb_end": None,
                "rss_growth_pct": None, "fds_at_warmup": None, "fds_max": None, "fds_growth": None}
    base = after[0]
    rss_max = max(s.rss_mb for s in after)
    fds_max = max(s.fds for s in after)
    return {"samples": len(after), "rss_mb_at_warmup": base.rss_mb, "rss_mb_max": rss_max,
            "rss_mb_end": after[-1].rss_mb, "rss_growth_pct": round(100.0 * (rss_max - base.rss_mb) / base.rss_mb, 3),
            "fds_at_warmup": base.fds, "fds_max": fds_max, "fds_growth": fds_max - base.fds}


def as_dicts(samples: list[Sample]) -> list[dict]:
    return [asdict(s) for s in samples]


def run_watched(cfg, watch: ProcessWatch, *, tick=None, tick_s: float = 1.0) -> tuple[dict | None, str | None]:
    """:func:`mtsc_sdr.runtime.run.execute` of the run configuration ``cfg`` (in this thread, so
    Ctrl-C stops it as it stops ``mtsc-sdr run``) while ``watch`` samples its processes and
    ``tick()`` (when given) is called every ``tick_s`` seconds from another thread. Returns (the
    run's report, why it ended early or None): a run that raised after writing its report (a
    process failed, ``timeout_s`` reached: the clients were interrupted and wrote error records for
    what was unfinished) is read back from its directory."""
    import json

    from mtsc_sdr.runtime.run import RunFailed, execute

    done = threading.Event()

    def ticking():
        while not done.wait(tick_s):
            tick()

    ticker = threading.Thread(target=ticking, name="tick", daemon=True) if tick is not None else None
    watch.start()
    if ticker is not None:
        ticker.start()
    report, error = None, None
    try:
        report = execute(cfg)
    except RunFailed as exc:
        error = f"time limit ({cfg.timeout_s:g} s) reached" if "within timeout_s" in str(exc) else str(exc)
    except Exception as exc:     # noqa: BLE001 - reported; the caller still writes its figures
        error = f"{type(exc).__name__}: {exc}"
    finally:
        done.set()
        if ticker is not None:
            ticker.join()
        watch.stop()
    path = cfg.out_dir() / "report.json"
    if report is None and path.is_file():
        report = json.loads(path.read_text())
    return report, error
