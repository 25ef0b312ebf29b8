"""Summary statistics of timings."""

from __future__ import annotations

from typing import Iterable

import numpy as np

#: The percentiles every latency report gives.
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0}


def percentiles(values_ms: Iterable[float]) -> dict[str, float | None]:
    """``{"p50", "p90", "p99"}`` of the values (linear interpolation between order statistics,
    numpy's default), rounded to microseconds; all None for no values."""
    v = np.asarray([x for x in values_ms if x is not None], dtype=float)
    if v.size == 0:
        return dict.fromkeys(PERCENTILES)
    return {k: round(float(np.percentile(v, q)), 3) for k, q in PERCENTILES.items()}
