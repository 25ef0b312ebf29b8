"""The link test's transmitter process: random-payload frames out of a ZeroMQ IQ stream.

Run as ``python -m mtsc_sdr.runtime.link_tx --out ENDPOINT --frames N ...`` (the link test starts
it). It binds a PUSH socket (GNU Radio's ``pull_source`` or our channel process connects), sends
``frames`` frames separated by ``gap`` zero samples (the channel turns them into noise), then a tail
of zeros so the receiver can see the last frame through, and prints one JSON line with what it sent.

Payloads are complex Gaussian with unit average power, drawn from ``(seed, seq)`` by
:func:`payload_for`, so the receiver can regenerate them to measure EVM without any side channel.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from mtsc_sdr.link import IQPush
from mtsc_sdr.link.security import add_security_arguments, security_from_args
from mtsc_sdr.phy.header import FrameHeader
from mtsc_sdr.phy.tx import Transmitter

#: Session id the link test puts in every header.
LINK_TEST_SESSION = 0x1D
#: Zeros appended after the last frame so that receivers with look-ahead see it through.
TAIL_SAMPLES = 4096


def payload_for(seed: int, seq: int, length: int) -> np.ndarray:
    """The link test's payload of frame ``seq``: (length,) complex64, CN(0, 1) (unit average power)."""
    rng = np.random.default_rng([seed, seq])
    z = rng.standard_normal(2 * length, dtype=np.float32).view(np.complex64)
    return z * np.float32(np.sqrt(0.5))


def frame_train(seed: int, frames: int, payload_len: int, gap: int) -> tuple[np.ndarray, int]:
    """All frames of a link test as one stream (gap zeros before each frame, tail zeros at the end).

    Returns (samples complex64 (N,), samples per frame slot incl. its gap).
    """
    tx = Transmitter()
    parts = []
    for seq in range(frames):
        header = FrameHeader(session_id=LINK_TEST_SESSION, seq=seq % (1 << 16), payload_len=payload_len)
        parts.append(np.zeros(gap, np.complex64))
        parts.append(tx.build(payload_for(seed, seq, payload_len), header))
    parts.append(np.zeros(TAIL_SAMPLES, np.complex64))
    slot = gap + parts[1].size if frames else gap
    return np.concatenate(parts).astype(np.complex64, copy=False), slot


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtsc_sdr.runtime.link_tx", description=__doc__)
    p.add_argument("--out", required=True, help="endpoint to bind, e.g. tcp://127.0.0.1:5555")
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--payload-len", type=int, required=True, help="complex payload symbols per frame")
    p.add_argument("--gap", type=int, required=True, help="zero samples before each frame")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--send-timeout-s", type=float, default=60.0,
                   help="how long to wait for the receiving side to take samples")
    add_security_arguments(p, binds="--out", curve_binds=False)   # its peer may be GNU Radio: no CURVE
    args = p.parse_args(argv)
    security = security_from_args(args)
    security.check_plain_bind(args.out)

    samples, _ = frame_train(args.seed, args.frames, args.payload_len, args.gap)
    push = IQPush(args.out, send_timeout_ms=int(args.send_timeout_s * 1000), linger_ms=30_000,
                  insecure=security.insecure, max_message_samples=1 << 14)
    t0 = time.monotonic()
    try:
        push.send(samples, copy=False)
    finally:
        push.close()  # linger: flushes everything queued before exiting
    print(json.dumps({"frames_sent": args.frames, "samples_sent": int(samples.size),
                      "send_s": round(time.monotonic() - t0, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
