"""Helpers of the runtime tests that start the project's own processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def cli_argv(*args: str) -> list[str]:
    """The command line of ``mtsc-sdr ARGS...`` under this Python."""
    return [sys.executable, "-m", "mtsc_sdr.cli", *args]


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file written so far; [] while it does not exist."""
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def record_wire(monkeypatch) -> list[bytes]:
    """Record every byte this process puts on the link from now on: each encoded control/tensor
    message frame (:func:`mtsc_sdr.link.messages.encode`) and each IQ block sent
    (:meth:`mtsc_sdr.link.IQPush.send`), both ways. Returns the (growing) list of byte strings."""
    import numpy as np

    from mtsc_sdr.link import IQPush, messages

    wire: list[bytes] = []
    encode, send = messages.encode, IQPush.send

    def recorded_encode(*args, **kwargs):
        frames = encode(*args, **kwargs)
        wire.extend(bytes(f) if isinstance(f, (bytes, bytearray)) else np.ascontiguousarray(f).tobytes()
                    for f in frames)
        return frames

    def recorded_send(self, samples, *args, **kwargs):
        wire.append(np.ascontiguousarray(samples).tobytes())
        return send(self, samples, *args, **kwargs)

    monkeypatch.setattr(messages, "encode", recorded_encode)
    monkeypatch.setattr(IQPush, "send", recorded_send)
    return wire
