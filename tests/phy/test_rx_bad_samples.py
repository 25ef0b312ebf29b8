"""The receiver never dies on bad samples: NaN, inf, huge and denormal samples are counted and
their span skipped, the detector's running sums stay clean, and frames after them decode."""

from __future__ import annotations

import numpy as np
import pytest

from mtsc_sdr.phy import Receiver
from mtsc_sdr.phy.rx import MAX_SAMPLE_ABS
from tests.phy.impairments import make_stream, match


def _hostile_stream(seed: int):
    """Three frames at 15 dB in noise, with a NaN, an inf and a burst of 1e30 between them (and a
    few denormals): (stream, truth, number of bad samples)."""
    rng = np.random.default_rng(seed)
    stream, truth = make_stream(rng, 3, 15.0, payload_len=96, gap=(600, 900), max_cfo=0.01)
    gaps = [truth.starts[1] - 200, truth.starts[2] - 300, truth.starts[2] - 150]
    stream[gaps[0]] = np.nan
    stream[gaps[1]] = complex(np.inf, 0.0)
    stream[gaps[2]:gaps[2] + 40] = 1e30
    stream[10:14] = np.complex64(1e-44)
    return stream, truth, 1 + 1 + 40


def _chunked(rx: Receiver, stream: np.ndarray, rng: np.random.Generator) -> list:
    frames, i = [], 0
    while i < stream.size:
        n = int(rng.integers(1, 5000))
        frames += rx.process(stream[i:i + n])
        i += n
    return frames + rx.flush()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_three_frames_survive_nan_inf_and_a_huge_burst_in_random_chunkings(seed):
    stream, truth, n_bad = _hostile_stream(seed)
    rx = Receiver()
    with np.errstate(all="raise"):          # nothing inside may even overflow
        frames = _chunked(rx, stream, np.random.default_rng(100 + seed))
    got = match(frames, truth, tol=4)
    assert sorted(got) == [0, 1, 2], rx.stats
    assert rx.stats["samples_bad"] == n_bad
    assert rx.stats["bad_spans"] == 3           # however the chunks cut them
    for i, f in got.items():
        assert np.allclose(f.payload, truth.payloads[i], atol=0.5)


def test_the_detector_is_not_poisoned_after_a_nan():
    """The same stream with and without the NaN (placed in a gap) gives the same frames."""
    stream, truth, _ = _hostile_stream(7)
    clean = stream.copy()
    clean[~np.isfinite(clean) | (np.abs(clean) > MAX_SAMPLE_ABS)] = 0
    a, b = Receiver(), Receiver()
    fa, fb = a.process(stream) + a.flush(), b.process(clean) + b.flush()
    assert [(f.start, f.header.seq) for f in fa] == [(f.start, f.header.seq) for f in fb]
    assert a.stats["frames"] == b.stats["frames"] == 3


def test_a_stream_of_nothing_but_bad_samples_yields_nothing_and_counts_them():
    rx = Receiver()
    junk = np.full(20000, np.nan, dtype=np.complex64)
    junk[::3] = 1e30
    assert rx.process(junk[:7000]) + rx.process(junk[7000:]) + rx.flush() == []
    assert rx.stats["samples_bad"] == 20000 and rx.stats["bad_spans"] == 1
