"""Frame header: fields, bit layout, channel coding and QPSK mapping.

Fields (64 bits, MSB first)::

    version 4 | task_id 4 | rate_idx 8 | session_id 16 | seq 16 | payload_len 16

followed by a CRC-16 (CCITT, see :mod:`mtsc_sdr.phy.coding`) over those 64 bits. The 80 bits plus
6 zero tail bits are convolutionally coded (K=7, rate 1/2) into 172 coded bits, which are repeated
cyclically to fill the ``N_HEADER_SYM * 96 = 672`` QPSK bit slots (about 3.9x), permuted by a fixed
interleaver (spreading copies and neighbours across subcarriers and symbols) and mapped to QPSK on the
48 data subcarriers of ``N_HEADER_SYM`` OFDM symbols. The receiver adds the LLRs of all copies and
runs a soft Viterbi decoder; the effective code rate is 80/672 and decoding is reliable below
0 dB SNR. A frame whose CRC fails is dropped and counted, never decoded further.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from mtsc_sdr.phy import coding
from mtsc_sdr.phy.ofdm import N_DATA

#: Header format version written by this transmitter; the receiver drops (and counts) all others.
#: Version 2 frames carry the payload DFT-spread (:mod:`mtsc_sdr.phy.spreading`); version 1 frames
#: (recordings made before it) carry it symbol by symbol, and still decode.
PHY_VERSION = 2
SUPPORTED_VERSIONS = frozenset({1, PHY_VERSION})


def spreads_payload(version: int) -> bool:
    """Whether frames of header ``version`` carry their payload DFT-spread."""
    return version >= 2

N_HEADER_SYM = 7
FIELD_BITS = (("version", 4), ("task_id", 4), ("rate_idx", 8), ("session_id", 16), ("seq", 16),
              ("payload_len", 16))
N_FIELD_BITS = sum(w for _, w in FIELD_BITS)  # 64
N_INFO_BITS = N_FIELD_BITS + 16  # with CRC
N_CODED = 2 * (N_INFO_BITS + coding.TAIL)  # 172
N_SLOTS = N_HEADER_SYM * N_DATA * 2  # QPSK bit slots
_REPEAT_INDEX = np.arange(N_SLOTS) % N_CODED
_INTERLEAVER = coding.permutation(N_SLOTS, seed=0x4D545343)  # "MTSC"
#: the coded bit each slot carries: slot _INTERLEAVER[i] carries coded bit _REPEAT_INDEX[i]
_SLOT_SOURCE = np.empty(N_SLOTS, dtype=np.intp)
_SLOT_SOURCE[_INTERLEAVER] = _REPEAT_INDEX
#: QPSK value of the bit pair (b0 << 1) | b1: (1 - 2 b0 + j (1 - 2 b1)) / sqrt(2)
_QPSK = np.array([1 + 1j, 1 - 1j, -1 + 1j, -1 - 1j]) / math.sqrt(2.0)


@dataclass(frozen=True)
class FrameHeader:
    """One frame's header. All fields are unsigned integers within their bit widths.

    payload_len is the number of complex payload symbols (1 .. 65535); rate_idx selects the JSC rate /
    importance mask; task_id names the task; seq wraps at 2**16.
    """

    session_id: int
    seq: int
    payload_len: int
    rate_idx: int = 0
    task_id: int = 0
    version: int = PHY_VERSION

    def __post_init__(self) -> None:
        for name, width in FIELD_BITS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"FrameHeader.{name}: expected an integer, got {value!r}")
            if not 0 <= int(value) < (1 << width):
                raise ValueError(f"FrameHeader.{name}: {value} is outside 0..{(1 << width) - 1}")
            object.__setattr__(self, name, int(value))
        if self.payload_len < 1:
            raise ValueError("FrameHeader.payload_len: must be at least 1")

    def replace(self, **changes) -> "FrameHeader":
        return dataclasses.replace(self, **changes)


def header_bits(header: FrameHeader) -> np.ndarray:
    """The 80 header bits (fields then CRC-16), MSB first."""
    word = 0
    for name, width in FIELD_BITS:
        word = (word << width) | getattr(header, name)
    crc = coding.crc16_bytes(word.to_bytes(N_FIELD_BITS // 8, "big"))
    return coding.int_to_bits((word << 16) | crc, N_INFO_BITS)


def encode(header: FrameHeader, *, corrupt_crc: bool = False) -> np.ndarray:
    """Header -> QPSK values (N_HEADER_SYM, 48), unit power.

    ``corrupt_crc=True`` flips one CRC bit before coding (for testing the receiver's CRC drop path).
    """
    bits = header_bits(header)
    if corrupt_crc:
        bits = bits.copy()
        bits[-1] ^= 1
    coded = coding.conv_encode(bits)
    return _QPSK[(coded[_SLOT_SOURCE[0::2]] << 1) | coded[_SLOT_SOURCE[1::2]]].reshape(N_HEADER_SYM, N_DATA)


def slot_llrs(symbols: np.ndarray, noise_var: np.ndarray) -> np.ndarray:
    """Per-slot LLRs from equalised QPSK values (N_HEADER_SYM, 48) and their noise variances."""
    scale = 2.0 * math.sqrt(2.0) / np.maximum(noise_var, 1e-12)
    llr = np.empty(symbols.shape + (2,))
    llr[..., 0] = symbols.real * scale
    llr[..., 1] = symbols.imag * scale
    return llr.reshape(-1)


def decode(slot_llr: np.ndarray) -> tuple[FrameHeader | None, int, bool]:
    """Combine copies, Viterbi-decode and check the CRC.

    Returns ``(header, version, crc_ok)``; header is None when the CRC fails or the fields are not a
    valid header (payload_len 0). ``version`` is the decoded version field (meaningful when crc_ok).
    """
    rep = slot_llr[_INTERLEAVER]
    coded = np.bincount(_REPEAT_INDEX, weights=rep, minlength=N_CODED)
    packed = np.packbits(coding.viterbi_decode(coded, N_INFO_BITS)).tobytes()  # fields (8 bytes), CRC (2)
    fields = packed[:N_FIELD_BITS // 8]
    if coding.crc16_bytes(fields) != int.from_bytes(packed[N_FIELD_BITS // 8:], "big"):
        return None, -1, False
    word = int.from_bytes(fields, "big")
    values = {}
    pos = N_FIELD_BITS
    for name, width in FIELD_BITS:
        pos -= width
        values[name] = (word >> pos) & ((1 << width) - 1)
    if values["payload_len"] < 1:
        return None, values["version"], True
    return FrameHeader(**values), values["version"], True
