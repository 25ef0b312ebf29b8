"""Bit-level coding for the frame header: CRC-16, a K=7 rate-1/2 convolutional code with a soft
max-log Viterbi decoder (vectorised over states and over a batch of frames), and a fixed interleaver.

Bits are ``uint8`` arrays of 0/1. LLRs follow ``llr = log P(bit=0) / P(bit=1)`` (positive -> 0).
"""

from __future__ import annotations

import numpy as np

# --- CRC-16 (CCITT polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR) ----------
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF


def crc16(bits: np.ndarray) -> np.ndarray:
    """CRC-16 of a bit array (MSB-first); returns its 16 bits, MSB first."""
    reg = CRC_INIT
    for b in np.asarray(bits, dtype=np.uint8).tolist():
        fb = ((reg >> 15) & 1) ^ b
        reg = (reg << 1) & 0xFFFF
        if fb:
            reg ^= CRC_POLY
    return int_to_bits(reg, 16)


def int_to_bits(value: int, width: int) -> np.ndarray:
    """``width`` bits of a non-negative int, MSB first."""
    return np.array([(value >> (width - 1 - i)) & 1 for i in range(width)], dtype=np.uint8)


def bits_to_int(bits: np.ndarray) -> int:
    out = 0
    for b in np.asarray(bits).tolist():
        out = (out << 1) | int(b)
    return out


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
    """
    u = np.concatenate([np.asarray(bits, dtype=np.int64), np.zeros(TAIL, dtype=np.int64)])
    reg = np.zeros(u.size, dtype=np.int64)
    for d in range(K):  # reg[n] = sum_d u[n-d] << (K-1-d)
        reg[d:] |= u[: u.size - d] << (K - 1 - d)
    out = np.empty((u.size, 2), dtype=np.uint8)
    for j, g in enumerate(GENERATORS):
        out[:, j] = _parity(reg & g)
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


_SIGNS_R = _trellis_r(RADIX_BITS)


def viterbi_decode(llr: np.ndarray, n_bits: int) -> np.ndarray:
    """Max-log soft Viterbi for :func:`conv_encode` (terminated by the zero tail).

    llr: float (2 * (n_bits + 6),) or batched (F, 2 * (n_bits + 6)). Returns uint8 (n_bits,) or
    (F, n_bits). Add-compare-select runs over all states (and frames) at once, RADIX_BITS trellis
    steps per iteration.
    """
    r = RADIX_BITS
    llr = np.asarray(llr, dtype=np.float64)
    single = llr.ndim == 1
    if single:
        llr = llr[None, :]
    n_frames = llr.shape[0]
    steps = n_bits + TAIL
    if llr.shape[1] != 2 * steps:
        raise ValueError(f"expected {2 * steps} LLRs per frame, got {llr.shape[1]}")
    pad = -steps % r  # extra steps with input 0 and no information keep the tail intact
    if pad:
        llr = np.concatenate([llr, np.zeros((n_frames, 2 * pad))], axis=1)
    groups = (steps + pad) // r
    nb, nq = 1 << r, N_STATES >> r
    lt = llr.reshape(n_frames, groups, 2 * r).transpose(1, 0, 2).reshape(groups * n_frames, 2 * r)
    bm = (lt @ _SIGNS_R.reshape(-1, 2 * r).T).reshape(groups, n_frames, nb, nq, nb)
    pm = np.full((n_frames, nb, nq), -1e30)  # state (B << (6 - r)) | q at [:, B, q]
    pm[:, 0, 0] = 0.0
    decisions = np.empty((groups, n_frames, nb, nq), dtype=np.intp)
    m = np.empty((n_frames, nb, nq, nb))
    for t in range(groups):
        # the predecessors (q << r) | d of every state are the previous states in memory order
        np.add(bm[t], pm.reshape(n_frames, 1, nq, nb), out=m)
        m.argmax(axis=3, out=decisions[t])
        m.max(axis=3, out=pm)
        if t % 4 == 3:
            pm -= pm.max(axis=(1, 2), keepdims=True)
    decisions = decisions.reshape(groups, n_frames, N_STATES)
    # traceback from state 0 (terminated trellis)
    state = np.zeros(n_frames, dtype=np.intp)
    bits = np.empty((n_frames, groups * r), dtype=np.uint8)
    rows = np.arange(n_frames)
    shifts = np.arange(6 - r, 6)
    for t in range(groups - 1, -1, -1):
        bits[:, t * r:(t + 1) * r] = (state[:, None] >> shifts) & 1
        state = ((state & (nq - 1)) << r) | decisions[t, rows, state]
    out = bits[:, :n_bits]
    return out[0] if single else out


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
