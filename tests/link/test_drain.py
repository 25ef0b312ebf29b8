"""IQDrain: a consumer that falls behind costs dropped chunks (oldest first, counted, the hole
told), never a blocked sender or an unbounded queue; one stream's flood leaves the others alone."""

from __future__ import annotations

import time

import numpy as np

from mtsc_sdr.link import IQDrain, IQPull, IQPush


def _wait_for(predicate, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_flood_drops_the_oldest_chunks_counted_and_the_queue_stays_bounded():
    n, chunk = 300, 16384              # 300 x 128 KiB: far beyond ZeroMQ's high-water marks
    bound = 8 * chunk
    flood = IQPush("tcp://127.0.0.1:*", send_timeout_ms=5000)      # IQSendTimeout if the reader blocked it
    quiet = IQPush("tcp://127.0.0.1:*", send_timeout_ms=5000)
    pulls = [IQPull(flood.endpoint), IQPull(quiet.endpoint)]
    drain = IQDrain(pulls, max_queued_samples=bound).start()
    try:
        for k in range(n):          # nobody consumes meanwhile; chunk k holds the value k
            flood.send(np.full(chunk, k, np.complex64))
        quiet.send(np.full(100, -1, np.complex64))
        _wait_for(lambda: drain.stats(0).chunks_in == n and drain.stats(1).chunks_in == 1, "every chunk read")
        st = drain.stats(0)
        assert st.queued_samples == bound and st.queued_samples_peak == bound
        assert st.chunks_dropped == n - 8 and st.samples_dropped == (n - 8) * chunk
        assert drain.totals() == {"chunks_dropped": n - 8, "samples_dropped": (n - 8) * chunk}
        x, gap = drain.get(0)
        assert gap and x[0] == n - 8                  # the freshest are kept, the hole is told once
        kept = [int(drain.get(0)[0][0].real) for _ in range(7)]
        assert kept == list(range(n - 7, n)) and drain.get(0) is None
        assert drain.stats(0).gaps == 1
        x, gap = drain.get(1)                          # the quiet stream lost nothing
        assert not gap and x.size == 100 and drain.stats(1).chunks_dropped == 0
        flood.send(np.full(chunk, 7, np.complex64))    # recovered: the next chunk comes whole, no gap
        _wait_for(lambda: drain.queued(0) == chunk, "the next chunk")
        drain.clear_wake()
        x, gap = drain.get(0)
        assert not gap and x.size == chunk
    finally:
        drain.close()
        for s in (*pulls, flood, quiet):
            s.close(0)


def test_a_chunk_larger_than_the_bound_is_kept_alone():
    push = IQPush("tcp://127.0.0.1:*", send_timeout_ms=5000)
    pull = IQPull(push.endpoint)
    drain = IQDrain([pull], max_queued_samples=10).start()
    try:
        push.send(np.ones(4, np.complex64))
        push.send(np.ones(25, np.complex64))
        _wait_for(lambda: drain.stats(0).chunks_in == 2, "both chunks")
        assert drain.stats(0).chunks_dropped == 1 and drain.queued(0) == 25
        assert drain.get(0)[0].size == 25
    finally:
        drain.close()
        pull.close(0)
        push.close(0)
