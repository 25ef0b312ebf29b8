"""``mtsc-sdr channel`` with a receiver that takes nothing: each stall is reported with what is in
flight, the samples are kept, and a receiver that connects later gets all of them."""

from __future__ import annotations

import json
import subprocess
import time

import numpy as np

from mtsc_sdr.cli import main
from mtsc_sdr.link import IQPull, IQPush, free_tcp_endpoint

from .helpers import cli_argv


def _records(err: str, key: str) -> list[dict]:
    return [json.loads(line)[key] for line in err.splitlines() if line.startswith("{") and f'"{key}"' in line]


def test_a_receiver_that_takes_nothing_is_reported_and_loses_nothing():
    upstream = IQPush("tcp://127.0.0.1:*", send_timeout_ms=20_000)
    out = free_tcp_endpoint()
    proc = subprocess.Popen(cli_argv("channel", "--in", upstream.endpoint, "--out", out, "--snr-db", "40",
                                     "--stall-report-s", "0.3"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pull = None
    try:
        x = np.full(3000, 0.5 - 0.5j, np.complex64)
        upstream.send(x)                       # waits for the channel to connect; no receiver yet
        time.sleep(2.0)                        # several stall periods
        pull = IQPull(out)
        got = pull.recv_samples(x.size, timeout_ms=30_000)
        assert got is not None and len(got) == x.size
        assert np.abs(got - x).max() < 0.1
    finally:
        if pull is not None:
            pull.close()
        upstream.close(0)
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    stalls = _records(err, "channel_stall")
    assert len(stalls) >= 2, err
    assert all(s["receiver"] == out and s["samples_held"] == x.size and s["samples_out"] == 0 for s in stalls)
    assert [s["seconds_without_progress"] for s in stalls[:2]] == [0.3, 0.6]     # growing while nothing moves
    assert stalls[0]["samples_in"] == x.size and stalls[0]["messages_queued_at_most"] > 0
    summary = _records(err, "channel_summary")[-1]
    assert summary["samples_out"] == x.size and summary["samples_held"] == 0


def test_stall_period_must_be_positive(capsys):
    assert main(["channel", "--in", free_tcp_endpoint(), "--out", free_tcp_endpoint(), "--stall-report-s", "0"]) == 2
    assert "--stall-report-s must be > 0" in capsys.readouterr().err
