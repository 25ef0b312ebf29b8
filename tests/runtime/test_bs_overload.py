"""The base station under overload (issue 18): samples that come faster than it processes them are
dropped, counted and reported while its memory stays bounded, and it decodes again afterwards; a
client that stops reading its answers costs that client, not the others."""

from __future__ import annotations

import functools
import logging
import threading
import time

import numpy as np
import zmq

from mtsc_sdr.runtime import protocol


def _wait_for(predicate, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _frame(session: int, seq: int, rates) -> np.ndarray:
    """Samples of one decodable frame (task 1, three tokens at rate index 1) between zeros."""
    from mtsc_sdr.phy.header import FrameHeader
    from mtsc_sdr.phy.tx import Transmitter

    n = 3 * rates[1]
    payload = (np.random.default_rng(seq).standard_normal(2 * n).astype(np.float32).view(np.complex64)
               * np.float32(0.7))
    header = FrameHeader(session_id=session, seq=seq, payload_len=n, rate_idx=1, task_id=1)
    return np.concatenate([np.zeros(300, np.complex64), Transmitter().build(payload, header),
                           np.zeros(3000, np.complex64)])


class _GatedReceiver:
    """The real receiver behind a gate: ``process`` waits until the test opens it (a base station
    that has fallen behind, with the receiver's contract)."""

    gate = threading.Event()

    def __init__(self, *args, **kwargs):
        from mtsc_sdr.phy.rx import Receiver

        self.rx = Receiver(*args, **kwargs)
        self.stats, self.drops = self.rx.stats, self.rx.drops

    def process(self, x):
        self.gate.wait()
        return self.rx.process(x)

    def flush(self):
        return self.rx.flush()


def _serving(bs):
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            bs.serve(stop_after_s=0.1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return stop, thread


def _hello(client, bs) -> None:
    client.send(protocol.HELLO, meta={"checkpoint": bs.identity})
    assert client.recv(timeout_ms=10000).kind == protocol.WELCOME


def test_a_flood_is_dropped_counted_bounded_and_the_base_station_recovers(micro_checkpoint, monkeypatch, caplog):
    from mtsc_sdr.link import IQPush, MessageClient
    from mtsc_sdr.runtime import bs as bs_module

    monkeypatch.setattr(bs_module, "Receiver", _GatedReceiver)
    _GatedReceiver.gate.clear()
    chunk, n = 16384, 200                        # 200 x 128 KiB: beyond every ZeroMQ and kernel buffer
    bound = 8 * chunk
    push = IQPush("tcp://127.0.0.1:*", send_timeout_ms=10000)   # IQSendTimeout if the base station held it up
    station = bs_module.BaseStation(str(micro_checkpoint), [push.endpoint], "tcp://127.0.0.1:*",
                                    max_queued_samples=bound)
    client = MessageClient(station.control.endpoint, session=5)
    stop, thread = _serving(station)
    try:
        _hello(client, station)
        noise = (np.random.default_rng(0).standard_normal(2 * chunk).astype(np.float32).view(np.complex64)
                 * np.float32(0.01))
        with caplog.at_level(logging.WARNING, logger="mtsc_sdr.link.drain"):
            push.send(noise)                                  # the receiver takes it and stalls on the gate
            _wait_for(lambda: station.drain.stats(0).chunks_in == 1 and station.drain.queued(0) == 0, "first chunk")
            for _ in range(n):
                push.send(noise)
            _wait_for(lambda: station.drain.stats(0).chunks_in == n + 1, "the flood read")
        q = station.drain.stats(0)
        assert q.queued_samples_peak <= bound and q.chunks_dropped == n - 8
        assert any("dropped" in r.getMessage() and "chunks" in r.getMessage() for r in caplog.records)
        _GatedReceiver.gate.set()
        _wait_for(lambda: station.drain.queued(0) == 0, "the queue worked off")
        rates = station.server.cfg.rate_table
        push.send(_frame(5, 9, rates))                        # after the flood: decoded and answered
        answer = client.recv(timeout_ms=30000)
        assert answer is not None and answer.kind == protocol.SEMANTICS and answer.meta["seq"] == 9
        summary = station.summary()
        assert summary["bs"]["chunks_dropped"] == n - 8 and summary["bs"]["samples_dropped"] == (n - 8) * chunk
        assert summary["rx_queues"][0]["gaps"] == 1 and summary["rx_queues"][0]["queued_samples_peak"] <= bound
    finally:
        _GatedReceiver.gate.set()
        stop.set()
        thread.join()
        client.close(linger_ms=0)
        station.close()
        push.close(0)


def test_a_client_that_stops_reading_costs_only_itself(micro_checkpoint, monkeypatch):
    from mtsc_sdr.link import MessageClient, MessageServer, free_tcp_endpoint, messages
    from mtsc_sdr.phy.rx import Receiver
    from mtsc_sdr.runtime import bs as bs_module

    # small queues and kernel buffers toward each client, so that the silent one's fill within a few
    # dozen answers (loopback TCP otherwise buffers megabytes)
    monkeypatch.setattr(bs_module, "MessageServer", functools.partial(MessageServer, hwm=2))
    common = messages.set_common_options

    def small_buffers(sock, **kwargs):
        common(sock, **kwargs)
        sock.setsockopt(zmq.SNDBUF, 4096)

    monkeypatch.setattr(messages, "set_common_options", small_buffers)
    station = bs_module.BaseStation(str(micro_checkpoint), [free_tcp_endpoint()], "tcp://127.0.0.1:*")
    reader = MessageClient(station.control.endpoint, session=1)
    ctx = zmq.Context()
    silent = ctx.socket(zmq.DEALER)          # a client that says hello and then never reads again
    silent.setsockopt(zmq.ROUTING_ID, b"s" + (2).to_bytes(8, "big"))
    silent.setsockopt(zmq.RCVHWM, 1)
    silent.setsockopt(zmq.RCVBUF, 1024)
    silent.setsockopt(zmq.LINGER, 0)
    silent.connect(station.control.endpoint)
    try:
        rates = station.server.cfg.rate_table
        frames = {s: Receiver().process(_frame(s, 0, rates))[0] for s in (1, 2)}
        reader.send(protocol.HELLO, meta={"checkpoint": station.identity})
        silent.send_multipart(messages.encode(protocol.HELLO, 2, 0, 77, meta={"checkpoint": station.identity}))
        for _ in range(2):
            station._on_message(station.control.recv(timeout_ms=10000))
        assert reader.recv(timeout_ms=10000).kind == protocol.WELCOME and set(station.sessions) == {1, 2}
        n = 300      # a blocking send would hold the reading client up by the send timeout each time
        for k in range(n):
            station._on_frame(frames[2], 0.0, 0.0)           # the silent client's answers pile up ...
            station._on_frame(frames[1], 0.0, 0.0)           # ... and the reading client's keep coming
            answer = reader.recv(timeout_ms=10000)
            assert answer is not None and answer.kind == protocol.SEMANTICS
        failed = station.summary()["downlink_failed_sessions"]
        assert failed.get("2", 0) > 0 and "1" not in failed
        assert station.stats["downlink_failed"] == failed["2"] and station.stats["items"] == 2 * n - failed["2"]
    finally:
        silent.close()
        ctx.term()
        reader.close(linger_ms=0)
        station.close()
