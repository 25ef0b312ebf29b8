"""Channel coding of the separate-coding baseline: CRC-32, K=7 convolutional code with puncturing,
bit interleaving, Gray QAM with max-log soft demapping, soft Viterbi; the MCS table.

One **block** carries one item in exactly ``symbols`` complex symbols:

``payload field`` (length in ``w`` bits + data bytes + zero padding) ``| CRC-32`` -> convolutional
code (rate 1/2, K = 7, generators 133/171 octal as in IEEE 802.11, zero tail of 6 bits) ->
puncturing to the MCS rate (802.11 patterns) -> fixed pseudo-random bit interleaver (BICM) ->
Gray QAM, unit average power -> zero bits fill the last symbols.

scikit-commpy is the reference: its ``Trellis`` / ``conv_encode`` / ``viterbi_decode`` give the
same code and decisions, but take ~60 us per bit to encode and ~1-4 ms per bit to decode (2 s for a
2000-bit block), far too slow for BLER sweeps, so by default the encoder is two numpy GF(2)
convolutions and the decoder is the project's vectorised max-log soft Viterbi
(:func:`mtsc_sdr.phy.coding.viterbi_decode`, the header's decoder: ~1-10 ms per 1000-bit block at
low SNR, well under 1 ms when the hard decisions already form a codeword); ``backend='commpy'`` /
``decoder='commpy'`` select commpy's. commpy's octal convention puts the *current* input bit in the
generator's LSB, so the 802.11 code (MSB = current bit) is ``Trellis([6], [[0o155, 0o117]])``
there (bit-reversed 133/171); the tests check that all three encoders agree bit for bit. A failed
decode is caught by the CRC (undetected error probability ~2**-32) and the receiver returns None,
never garbage.

LLRs are ``log P(b=0)/P(b=1)`` (positive -> 0), as in :mod:`mtsc_sdr.phy.coding`; bit 0 maps to
the positive amplitude on each axis. SNR is Es/N0 per complex symbol with Es = 1
(:mod:`mtsc_sdr.conventions`).

MCS table and measured thresholds
---------------------------------
Threshold = SNR (AWGN, Es/N0) at which the block error rate of full-capacity blocks is 10%,
measured with :func:`threshold_snr_db` (400 blocks per point, 0.5 dB grid, log-BLER interpolation,
seed 0) for blocks of 256 and 1024 symbols. :data:`THRESHOLD_SNR_DB` holds the 256-symbol values;
longer blocks need ~0.5 dB more (more bits that can fail). Capacity = payload bytes per block::

    MCS        bits/sym  rate  thr@256  thr@1024  bytes@256  bytes@1024
    bpsk-1/2       1     1/2    -1.0     -0.5        10         58
    qpsk-1/2       2     1/2     2.2      3.0        26        122
    qpsk-3/4       2     3/4     5.0      5.6        42        186
    16qam-1/2      4     1/2     8.1      8.9        58        250
    16qam-3/4      4     3/4    11.5     12.1        90        378
    64qam-2/3      6     2/3    15.7     16.4       122        506
    64qam-3/4      6     3/4    17.2     17.8       138        570
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from mtsc_sdr.channel import AWGN
from mtsc_sdr.phy.coding import viterbi_decode

__all__ = [
    "Mcs", "MCS_TABLE", "MCS_BY_NAME", "THRESHOLD_SNR_DB", "QamModem", "conv_encode", "trellis",
    "BlockCode", "choose_mcs", "block_error_rate", "threshold_snr_db", "CRC_BITS", "TAIL_BITS",
]

CRC_BITS = 32
TAIL_BITS = 6
#: 802.11 puncturing patterns over the interleaved mother-code stream c0[0] c1[0] c0[1] c1[1] ...
PUNCTURE = {
    Fraction(1, 2): (1, 1),
    Fraction(2, 3): (1, 1, 1, 0),
    Fraction(3, 4): (1, 1, 1, 0, 0, 1),
}
INTERLEAVER_SEED = 0x5EC0DE


@dataclass(frozen=True)
class Mcs:
    """A modulation and coding scheme: ``bits_per_symbol`` (1 BPSK, 2 QPSK, 4/6 16-/64-QAM) and the
    code ``rate``."""

    name: str
    bits_per_symbol: int
    rate: Fraction

    @property
    def spectral_efficiency(self) -> float:
        """Information bits per complex symbol (before CRC and tail)."""
        return self.bits_per_symbol * float(self.rate)


MCS_TABLE: tuple[Mcs, ...] = (
    Mcs("bpsk-1/2", 1, Fraction(1, 2)),
    Mcs("qpsk-1/2", 2, Fraction(1, 2)),
    Mcs("qpsk-3/4", 2, Fraction(3, 4)),
    Mcs("16qam-1/2", 4, Fraction(1, 2)),
    Mcs("16qam-3/4", 4, Fraction(3, 4)),
    Mcs("64qam-2/3", 6, Fraction(2, 3)),
    Mcs("64qam-3/4", 6, Fraction(3, 4)),
)
MCS_BY_NAME = {m.name: m for m in MCS_TABLE}

#: Measured AWGN SNR (dB, Es/N0) at 10% block error rate, 256-symbol blocks (see module docstring).
THRESHOLD_SNR_DB: dict[str, float] = {
    "bpsk-1/2": -1.0,
    "qpsk-1/2": 2.2,
    "qpsk-3/4": 5.0,
    "16qam-1/2": 8.1,
    "16qam-3/4": 11.5,
    "64qam-2/3": 15.7,
    "64qam-3/4": 17.2,
}


# --- modulation ------------------------------------------------------------------------------------

class QamModem:
    """Gray-mapped BPSK / square QAM with unit average power and a max-log soft demapper.

    For M = 2**(2m) the first m bits of a symbol choose the in-phase level, the last m the
    quadrature level; each axis is Gray-coded PAM with bit 0 on the positive side (BPSK: bit 0 ->
    +1). Shapes: bits (N * bits_per_symbol,) uint8 <-> symbols (N,) complex128.
    """

    def __init__(self, bits_per_symbol: int):
        if bits_per_symbol != 1 and (bits_per_symbol < 2 or bits_per_symbol % 2):
            raise ValueError(f"bits_per_symbol must be 1 or even, got {bits_per_symbol}")
        self.bits_per_symbol = bits_per_symbol
        self._m = 1 if bits_per_symbol == 1 else bits_per_symbol // 2  # bits per axis
        n_lev = 1 << self._m
        idx = np.arange(n_lev)
        gray = idx ^ (idx >> 1)
        amp = (n_lev - 1) - 2 * idx  # descending: index 0 is the most positive level
        scale = 1.0 if bits_per_symbol == 1 else math.sqrt(2.0 * (n_lev ** 2 - 1) / 3.0)
        self.levels = np.empty(n_lev)
        self.levels[gray] = amp / scale  # levels[g] = amplitude of the Gray label g
        # label bits MSB first, (n_lev, m)
        self._label_bits = ((np.arange(n_lev)[:, None] >> np.arange(self._m - 1, -1, -1)) & 1)

    @property
    def constellation(self) -> np.ndarray:
        """All points, indexed by the integer value of their bits (MSB first)."""
        if self.bits_per_symbol == 1:
            return self.levels.astype(np.complex128)
        n = len(self.levels)
        return (self.levels[:, None] + 1j * self.levels[None, :]).reshape(n * n)

    def _axis_labels(self, bits: np.ndarray) -> np.ndarray:
        w = 1 << np.arange(self._m - 1, -1, -1)
        return bits.reshape(-1, self._m) @ w

    def modulate(self, bits: np.ndarray) -> np.ndarray:
        bits = np.asarray(bits, dtype=np.int64)
        if bits.size % self.bits_per_symbol:
            raise ValueError(f"{bits.size} bits is not a multiple of {self.bits_per_symbol}")
        if self.bits_per_symbol == 1:
            return self.levels[bits].astype(np.complex128)
        b = bits.reshape(-1, 2, self._m)
        i = self.levels[self._axis_labels(b[:, 0])]
        q = self.levels[self._axis_labels(b[:, 1])]
        return i + 1j * q

    def _axis_llr(self, y: np.ndarray, n0: np.ndarray) -> np.ndarray:
        """(N,) real, (N,) noise N0 -> (N, m) max-log LLRs: (min_{b=1} d - min_{b=0} d) / N0,
        d = (y - level)^2; each axis carries N0/2 of noise."""
        d = (y[:, None] - self.levels[None, :]) ** 2  # (N, L)
        out = np.empty((y.size, self._m))
        for j in range(self._m):
            one = self._label_bits[:, j] == 1
            out[:, j] = d[:, one].min(axis=1) - d[:, ~one].min(axis=1)
        return out / n0[:, None]

    def demodulate_llr(self, y: np.ndarray, n0) -> np.ndarray:
        """Symbols (N,) complex (already equalised) and noise power N0 per symbol (scalar or (N,))
        -> LLRs (N * bits_per_symbol,) float64, positive -> bit 0."""
        y = np.asarray(y, dtype=np.complex128)
        n0 = np.broadcast_to(np.asarray(n0, dtype=np.float64), y.shape)
        if self.bits_per_symbol == 1:
            # only the real axis carries the bit, it has noise N0/2: LLR = 4 y / N0
            return 4.0 * y.real / n0
        li = self._axis_llr(y.real, n0)
        lq = self._axis_llr(y.imag, n0)
        return np.concatenate([li, lq], axis=1).reshape(-1)


# --- convolutional code ----------------------------------------------------------------------------

_TRELLIS = None


def trellis():
    """commpy Trellis of the 802.11 K=7 code (133/171 octal in the standard's MSB-first notation)."""
    global _TRELLIS
    if _TRELLIS is None:
        # commpy (seconds to import) only as the reference backend; the default path is numpy
        from commpy.channelcoding import Trellis
        _TRELLIS = Trellis(np.array([TAIL_BITS]), np.array([[0o155, 0o117]]))
    return _TRELLIS


#: The 802.11 generators, MSB = current input bit: taps as arrays over (u[t], u[t-1], .., u[t-6]).
_G0 = np.array([int(c) for c in format(0o133, "07b")], dtype=np.int64)
_G1 = np.array([int(c) for c in format(0o171, "07b")], dtype=np.int64)


def conv_encode(bits: np.ndarray, backend: str = "numpy") -> np.ndarray:
    """Rate-1/2 coded bits with a zero tail: (k,) -> (2 * (k + 6),) uint8, order c0[0] c1[0] ...

    ``backend='numpy'``: two GF(2) convolutions (~10 us for 1000 bits); ``'commpy'``: scikit-commpy's
    ``conv_encode`` on :func:`trellis` (identical output, ~60 us *per bit*)."""
    u = np.asarray(bits, dtype=np.int64)
    if backend == "commpy":
        from commpy.channelcoding import conv_encode as _enc
        return _enc(u, trellis(), "term").astype(np.uint8)
    if backend != "numpy":
        raise ValueError(f"backend must be 'numpy' or 'commpy', got {backend!r}")
    u = np.concatenate([u, np.zeros(TAIL_BITS, dtype=np.int64)])
    out = np.empty(2 * u.size, dtype=np.uint8)
    out[0::2] = np.convolve(u, _G0)[:u.size] & 1
    out[1::2] = np.convolve(u, _G1)[:u.size] & 1
    return out


def _viterbi(llr: np.ndarray, n_bits: int, decoder: str) -> np.ndarray:
    """(F, 2 (n_bits + 6)) LLRs -> (F, n_bits) bits."""
    if decoder == "fast":
        return viterbi_decode(llr, n_bits)
    if decoder == "commpy":
        from commpy.channelcoding import viterbi_decode as commpy_viterbi_decode
        # commpy's unquantized metric compares with 2c - 1 (bit 1 -> +1): feed -LLR
        return np.stack([commpy_viterbi_decode(-row, trellis(), 5 * (TAIL_BITS + 1), "unquantized")[:n_bits]
                         for row in llr]).astype(np.uint8)
    raise ValueError(f"decoder must be 'fast' or 'commpy', got {decoder!r}")


def _puncture_mask(rate: Fraction, n_coded: int) -> np.ndarray:
    if rate not in PUNCTURE:
        raise ValueError(f"no puncturing pattern for rate {rate}")
    p = np.array(PUNCTURE[rate], dtype=bool)
    return np.resize(p, n_coded)


def _bits(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))


class BlockCode:
    """The whole coding chain of one MCS for blocks of ``symbols`` complex symbols.

    Attributes:
        info_bits: k, bits into the convolutional encoder (payload field + CRC-32).
        coded_bits: bits after puncturing (<= symbols * bits_per_symbol; the rest is zero fill).
        length_bits: w, width of the length field.
        capacity_bytes: the largest payload (bytes) one block carries.
    """

    def __init__(self, mcs: Mcs | str, symbols: int, decoder: str = "fast"):
        self.mcs = MCS_BY_NAME[mcs] if isinstance(mcs, str) else mcs
        self.symbols = int(symbols)
        self.decoder = decoder
        self.modem = QamModem(self.mcs.bits_per_symbol)
        n_avail = self.symbols * self.mcs.bits_per_symbol
        # largest k with punctured length of 2 (k + 6) coded bits <= n_avail
        k = int(n_avail * self.mcs.rate) - TAIL_BITS + 2
        while k > 0 and int(_puncture_mask(self.mcs.rate, 2 * (k + TAIL_BITS)).sum()) > n_avail:
            k -= 1
        self.info_bits = k
        field = k - CRC_BITS
        self.length_bits = max(1, (max(field, 0) // 8).bit_length())
        self.capacity_bytes = max(0, (field - self.length_bits) // 8)
        self._mask = _puncture_mask(self.mcs.rate, 2 * (k + TAIL_BITS)) if k > 0 else np.zeros(0, bool)
        self.coded_bits = int(self._mask.sum())
        self._perm = np.random.default_rng(INTERLEAVER_SEED).permutation(self.coded_bits)

    def __repr__(self) -> str:
        return (f"BlockCode({self.mcs.name}, symbols={self.symbols}, capacity_bytes="
                f"{self.capacity_bytes}, info_bits={self.info_bits}, coded_bits={self.coded_bits})")

    # payload field: length (w bits, MSB first) + data + zero padding, then CRC-32 of its bytes
    def _field(self, data: bytes) -> np.ndarray:
        field_bits = self.info_bits - CRC_BITS
        length = np.array([(len(data) >> (self.length_bits - 1 - i)) & 1
                           for i in range(self.length_bits)], dtype=np.uint8)
        f = np.zeros(field_bits, dtype=np.uint8)
        f[:self.length_bits] = length
        d = _bits(data)
        f[self.length_bits:self.length_bits + d.size] = d
        return f

    @staticmethod
    def _crc(field: np.ndarray) -> np.ndarray:
        return _bits(zlib.crc32(np.packbits(field).tobytes()).to_bytes(4, "big"))

    def encode(self, data: bytes) -> np.ndarray:
        """Payload bytes (at most :attr:`capacity_bytes`) -> (symbols,) complex128 unit-power QAM."""
        if len(data) > self.capacity_bytes:
            raise ValueError(f"{len(data)} bytes exceed the block's capacity of "
                             f"{self.capacity_bytes} bytes ({self!r})")
        field = self._field(data)
        coded = conv_encode(np.concatenate([field, self._crc(field)]))[self._mask]
        tx = np.zeros(self.symbols * self.mcs.bits_per_symbol, dtype=np.uint8)
        tx[:self.coded_bits] = coded[self._perm]
        return self.modem.modulate(tx)

    def llr(self, y: np.ndarray, n0) -> np.ndarray:
        """Equalised symbols (symbols,) and N0 per symbol -> mother-code LLRs (2 (k + 6),) with
        punctured positions as erasures (0)."""
        y = np.asarray(y)
        if y.shape != (self.symbols,):
            raise ValueError(f"expected {self.symbols} symbols, got shape {y.shape}")
        rx = self.modem.demodulate_llr(y, n0)[:self.coded_bits]
        coded = np.empty(self.coded_bits)
        coded[self._perm] = rx
        full = np.zeros(self._mask.size)
        full[self._mask] = coded
        return full

    def decode_llr(self, llr: np.ndarray) -> bytes | None:
        """Mother-code LLRs (2 (k + 6),) or batched (F, ...) -> payload bytes (or a list), None
        where the CRC fails or the length field is impossible."""
        llr = np.asarray(llr, dtype=np.float64)
        single = llr.ndim == 1
        bits = _viterbi(np.atleast_2d(llr), self.info_bits, self.decoder)
        out = [self._unpack(b) for b in bits]
        return out[0] if single else out

    def _unpack(self, bits: np.ndarray) -> bytes | None:
        field, crc = bits[:-CRC_BITS], bits[-CRC_BITS:]
        if not np.array_equal(self._crc(field), crc):
            return None
        n = int(field[:self.length_bits] @ (1 << np.arange(self.length_bits - 1, -1, -1)))
        if n > self.capacity_bytes:
            return None
        return np.packbits(field[self.length_bits:self.length_bits + 8 * n]).tobytes()

    def decode(self, y: np.ndarray, n0) -> bytes | None:
        """Equalised symbols (symbols,) and N0 per symbol (scalar or (symbols,)) -> bytes or None."""
        if self.info_bits <= CRC_BITS:
            return None
        return self.decode_llr(self.llr(y, n0))


# --- link adaptation -------------------------------------------------------------------------------

def choose_mcs(snr_db: float, margin_db: float = 0.5,
               thresholds: dict[str, float] | None = None) -> Mcs:
    """Genie MCS choice: the highest-rate MCS whose 10%-BLER threshold + ``margin_db`` is at most
    ``snr_db``; the most robust one (``bpsk-1/2``) below all thresholds."""
    thr = THRESHOLD_SNR_DB if thresholds is None else thresholds
    best = MCS_TABLE[0]
    for m in MCS_TABLE:
        if thr[m.name] + margin_db <= snr_db and m.spectral_efficiency >= best.spectral_efficiency:
            best = m
    return best


def block_error_rate(mcs: Mcs | str, symbols: int, snr_db: float, n_blocks: int = 200,
                     seed: int = 0) -> float:
    """BLER of full-capacity random payloads over AWGN at ``snr_db`` (Es/N0, unit-power symbols),
    through the project's channel stage :class:`mtsc_sdr.channel.AWGN`."""
    code = BlockCode(mcs, symbols)
    rng = np.random.default_rng(seed)
    payloads = [rng.integers(0, 256, code.capacity_bytes, dtype=np.uint8).tobytes()
                for _ in range(n_blocks)]
    tx = np.concatenate([code.encode(p) for p in payloads])
    noise = AWGN(snr_db, seed=seed, signal_power=1.0)
    rx = noise(tx.astype(np.complex64)).astype(np.complex128).reshape(n_blocks, symbols)
    n0 = noise.noise_power
    llr = np.stack([code.llr(r, n0) for r in rx])
    got = code.decode_llr(llr)
    return sum(g != p for g, p in zip(got, payloads)) / n_blocks


def threshold_snr_db(mcs: Mcs | str, symbols: int, target_bler: float = 0.1,
                     snrs_db: np.ndarray | None = None, n_blocks: int = 100,
                     seed: int = 0) -> float:
    """SNR (dB) at which the BLER falls to ``target_bler``, interpolated linearly in log10(BLER)
    between grid points of ``snrs_db`` (default: 0.5 dB steps from 2.5 dB below the table's value
    up to 4 dB above it). Used to measure :data:`THRESHOLD_SNR_DB`; takes 10-60 s per MCS."""
    m = MCS_BY_NAME[mcs] if isinstance(mcs, str) else mcs
    if snrs_db is None:
        c = THRESHOLD_SNR_DB[m.name]
        snrs_db = np.arange(c - 2.5, c + 4.0 + 1e-9, 0.5)
    prev = None
    for s in snrs_db:
        b = block_error_rate(m, symbols, float(s), n_blocks, seed)
        if b <= target_bler:
            if prev is None:
                return float(s)
            s0, b0 = prev
            lo, hi = math.log10(max(b0, 1e-6)), math.log10(max(b, 0.5 / n_blocks))
            t = (lo - math.log10(target_bler)) / (lo - hi) if lo != hi else 0.0
            return float(s0 + t * (s - s0))
        prev = (float(s), b)
    return math.inf
