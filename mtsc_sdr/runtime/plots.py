"""PNG plots of run and demo reports (report rows in, files out; matplotlib without a display)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mtsc_sdr import tasks
from mtsc_sdr.runtime.protocol import STAGES


def _plt():
    # matplotlib (~0.2 s) only when a plot is drawn: `run` and `demo` import this module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _line(r: dict) -> tuple[str, str, str]:
    """What one plotted line shows: (system, channel, precision of our client or "")."""
    return r["system"], r["channel"], r.get("precision") or ""


def metrics_vs_snr(rows: list[dict], path: Path) -> Path | None:
    """One panel per task: its main metric against the SNR, one line per (system, channel); the
    separate-coding baseline and the capacity bound, when present, on the same axes."""
    main = {spec.name: spec.main_metric for spec in tasks.specs()}
    shown = [t for t in main if any(r["task"] == t and r["metric"] == main[t] for r in rows)]
    if not shown:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.6), squeeze=False)
    for ax, task in zip(axes[0], shown):
        metric = main[task]
        lines = sorted({_line(r) for r in rows if r["task"] == task and r["metric"] == metric})
        for key in lines:
            pts = sorted((r["snr_db"], r["value"]) for r in rows if r["task"] == task and r["metric"] == metric
                         and _line(r) == key and r["value"] is not None and math.isfinite(r["value"]))
            if pts:
                style = {"separate": dict(marker="s", linestyle="--"), "capacity": dict(marker="^", linestyle=":")}
                system, channel, precision = key
                label = f"{system} ({channel}{', ' + precision if precision and system == 'mtsc' else ''})"
                ax.plot(*zip(*pts), label=label, **style.get(system, dict(marker="o")))
        ax.set(xlabel="SNR (dB)", ylabel=metric, title=task)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def latency_breakdown(rows: list[dict], path: Path) -> Path | None:
    """Horizontal bars: p50 latency per stage, one group per channel (stages in pipeline order)."""
    lat = [r for r in rows if r["metric"] == "latency_ms_p50" and r["task"] == "all" and r.get("stage") in STAGES
           and r["value"] is not None]
    if not lat:
        return None
    plt = _plt()
    groups = sorted({(r["channel"], r.get("precision") or "") for r in lat})
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(STAGES) * len(groups) + 1.5))
    h = 0.8 / len(groups)
    for i, (ch, precision) in enumerate(groups):
        vals = {r["stage"]: r["value"] for r in lat if r["channel"] == ch and (r.get("precision") or "") == precision}
        y = np.arange(len(STAGES)) + i * h
        ax.barh(y, [vals.get(s, 0.0) for s in STAGES], height=h, label=f"{ch} {precision}".strip())
    ax.set_yticks(np.arange(len(STAGES)) + 0.4 - h / 2, STAGES)
    ax.invert_yaxis()
    ax.set(xlabel="p50 latency per item (ms)", title="Latency per stage")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def constellation(payloads: np.ndarray, snr_est_db: float | None, title: str, path: Path) -> Path:
    """Scatter of received (zero-forced) payload symbols, with the SNR estimate in the title."""
    plt = _plt()
    z = np.asarray(payloads).reshape(-1)
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.scatter(z.real, z.imag, s=2, alpha=0.4)
    lim = float(np.percentile(np.abs(z), 99.5)) * 1.1 if z.size else 1.0
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="I", ylabel="Q", aspect="equal",
           title=title + ("" if snr_est_db is None else f"\nSNR estimate {snr_est_db:.1f} dB"))
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
