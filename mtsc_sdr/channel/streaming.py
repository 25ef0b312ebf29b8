"""The streaming channel: impairment stages composed in order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import Stage, as_complex64

#: Samples per internal piece: big inputs are cut so each piece crosses every stage while it is
#: still in cache (the output does not depend on this; every stage is chunk-invariant).
PIECE_SAMPLES = 1 << 14


class StreamingChannel:
    """Applies ``stages`` in order to a stream of complex64 chunks.

    Each stage keeps its own state, so ``ch(x)`` equals the concatenation of ``ch(x[:a])``,
    ``ch(x[a:b])``, ... for any cut: random draws, phases, delay lines and resampler history all
    continue across calls (the same draws exactly; the samples to float32 rounding, see
    :mod:`mtsc_sdr.channel.base`). Resampling stages may return more or fewer samples than they
    were given; everything else preserves length.

    Args:
        stages: stages applied first to last.
    Shapes: (N,) complex -> (M,) complex64, M == N without resampling stages. The input is not
        modified.
    """

    def __init__(self, stages: Sequence[Stage]):
        self.stages = list(stages)

    @property
    def lookahead_samples(self) -> int:
        """Input samples still inside the channel after a call (released by :meth:`flush`)."""
        return sum(s.lookahead_samples for s in self.stages)

    def process_(self, x: np.ndarray) -> np.ndarray:
        """Like ``__call__`` but may overwrite ``x`` (contiguous complex64) to save a copy."""
        n = x.size
        outs = []
        same_length = True
        for start in range(0, max(n, 1), PIECE_SAMPLES):
            piece = x[start:start + PIECE_SAMPLES]
            y = piece
            for stage in self.stages:
                y = stage.process_(y)
            if y is not piece:
                if y.size == piece.size:
                    piece[...] = y
                else:
                    same_length = False
            outs.append(y)
        if same_length:
            return x
        return np.concatenate(outs) if len(outs) > 1 else outs[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.process_(as_complex64(x))

    def flush(self) -> np.ndarray:
        """Push ``lookahead_samples`` zeros through so every sample given so far comes out."""
        return self(np.zeros(self.lookahead_samples, dtype=np.complex64))

    def __repr__(self) -> str:
        return "StreamingChannel([" + ", ".join(repr(s) for s in self.stages) + "])"
