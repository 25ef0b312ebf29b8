"""PNG plots of run and demo reports (report rows in, files out; matplotlib without a display)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

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


def _label(key: tuple[str, str, str]) -> str:
    system, channel, precision = key
    detail = f"{channel}{', ' + precision if precision and system == 'mtsc' else ''}"
    if system == "mtsc" and channel in ("awgn", "rician"):      # eval's rows: the model in one process
        return f"mtsc in one process (torch {detail})"
    return f"{system} ({detail})"


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width))


#: Line styles per system (ours: markers only differ per channel).
_STYLES = {"separate": dict(marker="s", linestyle="--"), "capacity": dict(marker="^", linestyle=":", color="k")}
_OURS_MARKERS = ("o", "D", "v", "P", "X", "h")


def metrics_vs_snr(rows: list[dict], path: Path) -> Path | None:
    """One panel per task: its main metric against the SNR, one line per (system, channel): the
    mean over the items with error bars of one standard error (the rows' ``std_error``), the
    separate-coding baseline and the capacity bound, when present, on the same axes. Lines are
    spread a little along the SNR axis so their error bars do not hide each other; one legend
    for the figure, beneath the panels."""
    main = {spec.name: spec.main_metric for spec in tasks.specs()}
    shown = [t for t in main if any(r["task"] == t and r["metric"] == main[t] for r in rows)]
    if not shown:
        return None
    plt = _plt()
    keys = sorted({_line(r) for r in rows if r["task"] in shown and r["metric"] == main[r["task"]]})
    ours = [k for k in keys if k[0] not in _STYLES]
    styles = {k: _STYLES.get(k[0]) or dict(marker=_OURS_MARKERS[ours.index(k) % len(_OURS_MARKERS)]) for k in keys}
    snrs = sorted({r["snr_db"] for r in rows if r["snr_db"] is not None and r["task"] in shown})
    step = min(np.diff(snrs)) if len(snrs) > 1 else 1.0
    spread = {k: (i - (len(keys) - 1) / 2) * 0.4 * step / max(len(keys), 1) for i, k in enumerate(keys)}
    ncols = min(3, len(shown))
    nrows = math.ceil(len(shown) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows + 1.2), squeeze=False,
                             layout="constrained")
    handles: dict[str, Any] = {}
    counts: set[int] = set()
    for ax, task in zip(axes.flat, shown):
        metric = main[task]
        mine = [r for r in rows if r["task"] == task and r["metric"] == metric and r["snr_db"] is not None
                and r["value"] is not None and math.isfinite(r["value"])]
        for key in keys:
            pts = sorted((r["snr_db"], r["value"], r.get("std_error")) for r in mine if _line(r) == key)
            if not pts:
                continue
            counts.update(r["n"] for r in mine if _line(r) == key and r.get("n"))
            x = np.array([p[0] for p in pts]) + spread[key]
            y = np.array([p[1] for p in pts])
            err = np.array([p[2] if p[2] is not None and math.isfinite(p[2]) else 0.0 for p in pts])
            h = ax.errorbar(x, y, yerr=err if err.any() else None, capsize=2.5, markersize=4, linewidth=1.2,
                            elinewidth=0.9, label=_label(key), **styles[key])
            handles.setdefault(_label(key), h)
        unit = next((r.get("unit") for r in mine if r.get("unit")), None)
        ax.set_title(_wrap(f"{task}: {metric}", 40), fontsize=10)
        ax.set_xlabel("SNR (dB)")
        ax.set_ylabel(metric + (f" ({unit})" if unit and not metric.lower().endswith(unit.lower()) else ""))
        ax.set_xticks(snrs)
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_axis_off()
    n = (f"{min(counts)}" if len(counts) == 1 else f"{min(counts)}-{max(counts)}") if counts else "?"
    fig.suptitle(_wrap(f"Each task's main metric against the SNR: mean over n = {n} items per point, "
                       f"error bars one standard error (lines spread a little along the SNR axis)", 110),
                 fontsize=10)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(3, len(handles)),
               fontsize=8, frameon=False)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def latency_breakdown(rows: list[dict], path: Path) -> Path | None:
    """Horizontal bars: p50 latency per stage, one group per channel (stages in pipeline order),
    each labelled with its value; a log axis when the stages span more than two decades."""
    lat = [r for r in rows if r["metric"] == "latency_ms_p50" and r["task"] == "all" and r.get("stage") in STAGES
           and r["value"] is not None]
    if not lat:
        return None
    plt = _plt()
    groups = sorted({(r["channel"], r.get("precision") or "") for r in lat})
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(STAGES) * len(groups) + 1.8), layout="constrained")
    h = 0.8 / len(groups)
    positive = [r["value"] for r in lat if r["value"] > 0]
    log = bool(positive) and max(positive) > 100 * min(positive)
    for i, (ch, precision) in enumerate(groups):
        vals = {r["stage"]: r["value"] for r in lat if r["channel"] == ch and (r.get("precision") or "") == precision}
        y = np.arange(len(STAGES)) + i * h
        ax.barh(y, [vals.get(s, 0.0) for s in STAGES], height=h, label=f"{ch} {precision}".strip())
        for yy, stage in zip(y, STAGES):
            if vals.get(stage):
                ax.annotate(f"{vals[stage]:.3g}", (vals[stage], yy), xytext=(3, 0), textcoords="offset points",
                            va="center", fontsize=7)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(left=0.5 * min(positive), right=3 * max(positive))
    else:
        ax.set_xlim(right=1.15 * max(positive or [1.0]))
    ax.set_yticks(np.arange(len(STAGES)) + 0.4 - h / 2, STAGES)
    ax.invert_yaxis()
    ax.set_xlabel("p50 latency per item (ms" + (", log scale)" if log else ")"))
    ax.set_title(_wrap("Latency per stage, p50 per item (items in flight and processes sharing the "
                       "machine wait for each other: queueing counts)", 70), fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def constellation(payloads: np.ndarray, snr_est_db: float | None, title: str, path: Path) -> Path:
    """Scatter of received (zero-forced) payload symbols, with the SNR estimate in the title."""
    plt = _plt()
    z = np.asarray(payloads).reshape(-1)
    fig, ax = plt.subplots(figsize=(4.8, 5.0), layout="constrained")
    ax.scatter(z.real, z.imag, s=2, alpha=0.4)
    lim = float(np.percentile(np.abs(z), 99.5)) * 1.1 if z.size else 1.0
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="I", ylabel="Q", aspect="equal")
    ax.set_title(_wrap(title, 48) + ("" if snr_est_db is None else f"\nSNR estimate {snr_est_db:.1f} dB"),
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
