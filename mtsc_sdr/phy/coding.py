"""Bit-level coding for the frame header: CRC-16, a K=7 rate-1/2 convolutional code with a soft
max-log Viterbi decoder (vectorised over states and over a batch of frames), and a fixed interleaver.

Bits are ``uint8`` arrays of 0/1. LLRs follow ``llr = log P(bit=0) / P(bit=1)`` (positive -> 0).
"""

from __future__ import annotations

import numpy as np

# --- CRC-16 (CCITT polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR) ----------
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF


def _crc_table() -> list[int]:
    """CRC register update for each value of (top byte of the register) XOR (input byte)."""
    table = []
    for byte in range(256):
        reg = byte << 8
        for _ in range(8):
            reg = ((reg << 1) ^ CRC_POLY if reg & 0x8000 else reg << 1) & 0xFFFF
        table.append(reg)
    return table


_CRC_TABLE = _crc_table()


def crc16_bytes(data: bytes, reg: int = CRC_INIT) -> int:
    """CRC-16 register after ``data`` (whole bytes, MSB first), table-driven, from ``reg``."""
    for byte in data:
        reg = ((reg << 8) & 0xFFFF) ^ _CRC_TABLE[(reg >> 8) ^ byte]
    return reg


def crc16_value(bits: np.ndarray) -> int:
    """CRC-16 of a bit array (MSB-first) as an integer: table-driven a byte at a time, the
    remaining (len % 8) bits one by one."""
    bits = np.asarray(bits, dtype=np.uint8)
    n_bytes = bits.size // 8
    reg = crc16_bytes(np.packbits(bits[:8 * n_bytes]).tobytes())
    for b in bits[8 * n_bytes:].tolist():
        fb = ((reg >> 15) & 1) ^ b
        reg = (reg << 1) & 0xFFFF
        if fb:
            reg ^= CRC_POLY
    return reg


def crc16(bits: np.ndarray) -> np.ndarray:
    """CRC-16 of a bit array (MSB-first); returns its 16 bits, MSB first."""
    return int_to_bits(crc16_value(bits), 16)


def int_to_bits(value: int, width: int) -> np.ndarray:
    """``width`` bits of a non-negative int (below 2**width), MSB first."""
    n_bytes = -(-width // 8)
    return np.unpackbits(np.frombuffer(int(value).to_bytes(n_bytes, "big"), dtype=np.uint8))[8 * n_bytes - width:]


def bits_to_int(bits: np.ndarray) -> int:
    """The unsigned integer of a bit array, MSB first."""
    bits = np.asarray(bits, dtype=np.uint8)
    if bits.size == 0:
        return 0
    return int.from_bytes(np.packbits(bits).tobytes(), "big") >> (-bits.size % 8)


# --- convolutional code ---------------------------------------------------------------------------
K = 7
N_STATES = 1 << (K - 1)  # 64
GENERATORS = (0o133, 0o171)  # the industry-standard K=7 pair, free distance 10
TAIL = K - 1


def _parity(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    out = np.zeros_like(x)
    while np.any(x):
        out ^= x & 1
        x >>= 1
    return out


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """Rate-1/2 encoding of ``bits`` followed by K-1 zero tail bits -> 2 * (len + 6) coded bits.

    Output order c0[0], c1[0], c0[1], c1[1], ... The register's MSB is the newest input bit.
    Coded stream j is the GF(2) product of the input polynomial with generator j's.
    """
    bits = np.asarray(bits, dtype=np.uint8)
    n = bits.size + TAIL
    u = _poly_of(bits)
    out = np.empty((n, 2), dtype=np.uint8)
    for j in range(2):
        out[:, j] = _bits_of_poly(_poly_mul(u, _GEN_POLY[j]), n)
    return out.reshape(-1)


RADIX_BITS = 4  # trellis steps per add-compare-select iteration (radix 16)


def _trellis_r(r: int) -> np.ndarray:
    """Branch signs of ``r`` trellis steps at once (radix 2**r).

    State = the 6 most recent inputs, bit 5 newest. Inputs b_0 .. b_{r-1} (in time order) take
    state s to ``(B << (6 - r)) | (s >> r)`` with ``B = sum_i b_i << i``, so the predecessors of
    states ``(B << (6 - r)) | q`` are ``(q << r) | d``, d = 0 .. 2**r - 1.
    ``signs[B, q, d, j]`` is +1 when coded bit j (of 2 r) on that path is 0, else -1.
    """
    nq = N_STATES >> r
    q = np.arange(nq)
    signs = np.empty((1 << r, nq, 1 << r, 2 * r))
    for B in range(1 << r):
        for d in range(1 << r):
            state = (q << r) | d
            for i in range(r):
                b = (B >> i) & 1
                reg = (b << 6) | state  # 7-bit register, MSB = newest input
                for j, g in enumerate(GENERATORS):
                    signs[B, :, d, 2 * i + j] = 1.0 - 2.0 * _parity(reg & g)
                state = (b << 5) | (state >> 1)
    return signs


#: (2 r, 64 * 2**r) branch-sign matrix: LLRs (groups, 2 r) @ it = branch metrics [state, d].
_SIGNS_R = np.ascontiguousarray(_trellis_r(RADIX_BITS).reshape(-1, 2 * RADIX_BITS).T)


# GF(2) polynomials as Python ints, bit i = coefficient of D^i. Coded stream j is u(D) g_j(D) with
# g_j[d] = bit (K-1-d) of GENERATORS[j] (the register's MSB is the newest input, delay 0).
def _poly_mul(a: int, b: int) -> int:
    out = 0
    while b:
        if b & 1:
            out ^= a
        a <<= 1
        b >>= 1
    return out


def _poly_divmod(a: int, b: int) -> tuple[int, int]:
    q = 0
    while a.bit_length() >= b.bit_length():
        s = a.bit_length() - b.bit_length()
        q |= 1 << s
        a ^= b << s
    return q, a


def _poly_bezout(f: int, g: int) -> tuple[int, int]:
    """(a, b) with a f + b g = 1 over GF(2) (extended Euclid; needs gcd(f, g) = 1)."""
    r0, r1, a0, a1, b0, b1 = f, g, 1, 0, 0, 1
    while r1:
        q, r = _poly_divmod(r0, r1)
        r0, r1 = r1, r
        a0, a1 = a1, a0 ^ _poly_mul(q, a1)
        b0, b1 = b1, b0 ^ _poly_mul(q, b1)
    if r0 != 1:
        raise ValueError("generators share a factor: the code is catastrophic")
    return a0, b0


def _poly_of(bits: np.ndarray) -> int:
    """The GF(2) polynomial (bit i = coefficient of D^i) of a 0/1 or bool array, element i at D^i."""
    return int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little")


def _bits_of_poly(poly: int, n: int) -> np.ndarray:
    """The first n coefficients of a GF(2) polynomial as uint8 (n,)."""
    n_bytes = -(-n // 8)
    return np.unpackbits(np.frombuffer(poly.to_bytes(n_bytes, "little"), dtype=np.uint8), bitorder="little")[:n]


#: the generators as polynomials in the delay D (g_j[d] = bit K-1-d of GENERATORS[j]), and the
#: feedforward inverse (a, b): a g0 + b g1 = 1
_GEN_POLY = tuple(sum(((g >> (K - 1 - d)) & 1) << d for d in range(K)) for g in GENERATORS)
_INV_POLY = _poly_bezout(*_GEN_POLY)


def _hard_codeword(llr: np.ndarray, n_bits: int) -> np.ndarray | None:
    """The information bits of the hard decisions ``llr < 0`` if they form a terminated codeword,
    else None. llr: (2 * (n_bits + 6),), no zeros. Shapes out: uint8 (n_bits,).

    The inverse ``u = a c0 + b c1`` recovers the input of any codeword; re-encoding it and
    comparing with the hard decisions checks that they are one (polynomials as Python ints: a few
    big-integer operations instead of array convolutions)."""
    hard = llr < 0
    c0, c1 = _poly_of(hard[0::2]), _poly_of(hard[1::2])
    u = (_poly_mul(c0, _INV_POLY[0]) ^ _poly_mul(c1, _INV_POLY[1])) & ((1 << n_bits) - 1)
    if _poly_mul(u, _GEN_POLY[0]) == c0 and _poly_mul(u, _GEN_POLY[1]) == c1:
        return _bits_of_poly(u, n_bits)
    return None


def viterbi_decode(llr: np.ndarray, n_bits: int) -> np.ndarray:
    """Max-log soft Viterbi for :func:`conv_encode` (terminated by the zero tail).

    llr: float (2 * (n_bits + 6),) or batched (F, 2 * (n_bits + 6)). Returns uint8 (n_bits,) or
    (F, n_bits).

    The decoder returns the codeword maximising the correlation ``sum_i llr_i s_i`` (s_i = +-1 its
    bits). The hard decisions ``sign(llr)`` maximise it over *all* sign vectors, so when they
    form a codeword (and no LLR is exactly 0, which could tie) that codeword is the Viterbi
    answer: such frames (nearly all above a few dB) skip the trellis, with identical output.
    The rest run add-compare-select over all states (and frames) at once, RADIX_BITS trellis
    steps per iteration.
    """
    llr = np.asarray(llr, dtype=np.float64)
    single = llr.ndim == 1
    if single:
        llr = llr[None, :]
    steps = n_bits + TAIL
    if llr.shape[1] != 2 * steps:
        raise ValueError(f"expected {2 * steps} LLRs per frame, got {llr.shape[1]}")
    out = np.empty((llr.shape[0], n_bits), dtype=np.uint8)
    soft = []
    for f in range(llr.shape[0]):
        bits = _hard_codeword(llr[f], n_bits) if np.all(llr[f] != 0) else None
        if bits is None:
            soft.append(f)
        else:
            out[f] = bits
    if soft:
        out[soft] = _viterbi_trellis(llr[soft], n_bits)
    return out[0] if single else out


def _viterbi_trellis(llr: np.ndarray, n_bits: int) -> np.ndarray:
    """The trellis search of :func:`viterbi_decode`: llr (F, 2 * (n_bits + 6)) -> uint8 (F, n_bits)."""
    r = RADIX_BITS
    n_frames = llr.shape[0]
    steps = n_bits + TAIL
    pad = -steps % r  # extra steps with input 0 and no information keep the tail intact
    if pad:
        llr = np.concatenate([llr, np.zeros((n_frames, 2 * pad))], axis=1)
    groups = (steps + pad) // r
    nb, nq = 1 << r, N_STATES >> r
    # bm[t, f, s, d]: metric of the r-step branch into state s from its predecessor (q << r) | d,
    # state s = (B << (6 - r)) | q
    lt = llr.reshape(n_frames, groups, 2 * r).transpose(1, 0, 2)
    bm = (lt @ _SIGNS_R).reshape(groups, n_frames, nb, nq, nb)
    pm = np.full((n_frames, N_STATES), -1e30)
    pm[:, 0] = 0.0
    decisions = np.empty((groups, n_frames, N_STATES), dtype=np.intp)
    m = np.empty((n_frames, nb, nq, nb))
    m_flat = m.reshape(-1)
    m_rows = m.reshape(n_frames, N_STATES, nb)
    row_start = np.arange(n_frames * N_STATES).reshape(n_frames, N_STATES) * nb
    best = np.empty((n_frames, N_STATES), dtype=np.intp)
    for t in range(groups):
        # the predecessors (q << r) | d of every state are the previous states in memory order
        np.add(bm[t], pm.reshape(n_frames, 1, nq, nb), out=m)
        m_rows.argmax(axis=2, out=decisions[t])  # argmax over a short last axis is fast, max is not
        np.add(decisions[t], row_start, out=best)
        np.take(m_flat, best, out=pm)
        if t % 4 == 3:
            pm -= pm.max(axis=1, keepdims=True)
    # traceback from state 0 (terminated trellis), one frame at a time in Python integers
    top = np.empty(groups, dtype=np.intp)  # B of the state after each group = its r input bits
    out = np.empty((n_frames, groups * r), dtype=np.uint8)
    shifts = np.arange(r)
    for f in range(n_frames):
        state = 0
        for t in range(groups - 1, -1, -1):
            top[t] = state >> (6 - r)
            state = ((state & (nq - 1)) << r) | int(decisions[t, f, state])
        out[f] = ((top[:, None] >> shifts) & 1).reshape(-1)
    return out[:, :n_bits]


# --- interleaver ----------------------------------------------------------------------------------
def permutation(n: int, seed: int) -> np.ndarray:
    """A fixed pseudo-random permutation of range(n) (Fisher-Yates driven by a 32-bit LCG)."""
    perm = np.arange(n)
    x = seed & 0xFFFFFFFF
    for i in range(n - 1, 0, -1):
        x = (1664525 * x + 1013904223) & 0xFFFFFFFF
        j = (x >> 8) % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm
