"""Building blocks shared by the streaming stages: the stage interface, seeding, block streams.

Every streaming stage takes and returns 1-D complex64 arrays of any length (including 0) and keeps
whatever state it needs (phase, delay line, fading block, resampler history) so that feeding a
signal in one call or in many chunks gives the same output stream.

Chunk invariance of random stages comes from :class:`BlockStream`: random numbers are generated in
blocks of a fixed size, in order, and handed out to the caller in whatever lengths it asks for, so
the numbers drawn never depend on how the input was cut. Outputs then agree to float32 rounding:
additive stages are bit-exact; numpy's complex multiply may round one sample one ulp differently
when a chunk boundary leaves it alone in a call (its scalar and vectorised loops differ), which is
far below any impairment and not worth a slower multiply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Union

import numpy as np

Seed = Union[int, np.random.SeedSequence]


def seed_sequence(seed: Seed) -> np.random.SeedSequence:
    """An explicit seed (non-negative int or SeedSequence) as a SeedSequence; None is refused."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or a numpy SeedSequence, got {seed!r}")
    return np.random.SeedSequence(int(seed))


def make_rng(seed: Seed) -> np.random.Generator:
    """A numpy Generator from an explicit seed.

    The bit generator is SFC64: statistically strong (passes PractRand and BigCrush), not meant for
    cryptography, and the fastest numpy offers (about 20% more Gaussian samples per second than
    PCG64, which is what bounds the AWGN stage's throughput).
    """
    return np.random.Generator(np.random.SFC64(seed_sequence(seed)))


def as_complex64(x: np.ndarray) -> np.ndarray:
    """``x`` as a 1-D contiguous complex64 array (a copy, so the caller's array is never modified)."""
    x = np.array(x, dtype=np.complex64, copy=True, order="C")
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D array of samples, got shape {x.shape}")
    return x


class Stage:
    """One impairment of the streaming channel.

    Subclasses implement :meth:`process_`; :meth:`__call__` wraps it with a defensive copy.

    Attributes:
        lookahead_samples: how many more input samples a stage needs before the output for a given
            input sample appears (0 for sample-by-sample stages; the resampler's half-width).
    """

    lookahead_samples: int = 0

    def process_(self, x: np.ndarray) -> np.ndarray:
        """Process a contiguous complex64 chunk, possibly in place.

        Args:
            x: (N,) complex64, full-scale units; may be overwritten.
        Returns:
            (M,) complex64 output; ``x`` itself unless the stage changes the stream length.
        """
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(N,) complex -> (M,) complex64; ``x`` is left untouched. M == N unless the stage resamples."""
        return self.process_(as_complex64(x))

    def __repr__(self) -> str:
        public = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in public.items())})"


class BlockStream:
    """An endless stream produced in fixed-size blocks and consumed in arbitrary lengths.

    ``make_block()`` returns the next block (an array of ``block_len`` items); it may reuse its
    buffer, so a segment handed out by :meth:`segments` is valid only until the next one is asked
    for. Because blocks are produced in order and always of the same size, the stream's content
    does not depend on how it is consumed.
    """

    def __init__(self, block_len: int, make_block: Callable[[], np.ndarray]):
        if block_len <= 0:
            raise ValueError(f"block_len must be positive, got {block_len}")
        self.block_len = int(block_len)
        self._make_block = make_block
        self._block: np.ndarray | None = None
        self._pos = self.block_len  # nothing buffered yet

    def segments(self, n: int) -> Iterator[np.ndarray]:
        """Yield consecutive views of the stream whose lengths add up to ``n``."""
        while n > 0:
            if self._pos == self.block_len:
                self._block = self._make_block()
                self._pos = 0
            k = min(n, self.block_len - self._pos)
            yield self._block[self._pos:self._pos + k]
            self._pos += k
            n -= k

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` items as one new array."""
        parts = [seg.copy() for seg in self.segments(n)]
        if not parts:
            return np.empty(0, dtype=self._dtype_hint())
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def unconsumed(self) -> np.ndarray | None:
        """View of what is left of the current block (for in-place rescaling), or None."""
        if self._block is None:
            return None
        return self._block[self._pos:]

    def _dtype_hint(self) -> np.dtype:
        return self._block.dtype if self._block is not None else np.dtype(np.complex64)
