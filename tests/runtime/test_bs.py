"""The base station: frames it cannot serve are counted and dropped, and each dropped frame is logged."""

from __future__ import annotations

import numpy as np
import pytest

from mtsc_sdr.runtime import protocol


def test_base_station_counts_and_drops_frames_it_cannot_serve(micro_checkpoint):
    from mtsc_sdr.link import MessageClient, free_tcp_endpoint
    from mtsc_sdr.phy.header import FrameHeader
    from mtsc_sdr.phy.rx import Receiver
    from mtsc_sdr.phy.tx import Transmitter
    from mtsc_sdr.runtime.bs import BaseStation

    def frame(session, rate_idx, n, seq=0, task_id=1):
        payload = (np.random.default_rng(seq).standard_normal(2 * n).astype(np.float32).view(np.complex64)
                   * np.float32(0.7))
        x = np.concatenate([np.zeros(300, np.complex64),
                            Transmitter().build(payload, FrameHeader(session_id=session, seq=seq, payload_len=n,
                                                                     rate_idx=rate_idx, task_id=task_id)),
                            np.zeros(300, np.complex64)])
        (f,) = Receiver().process(x)
        return f

    bs = BaseStation(str(micro_checkpoint), [free_tcp_endpoint()], "tcp://127.0.0.1:*")
    client = MessageClient(bs.control.endpoint, session=42)
    try:
        bs._on_frame(frame(42, 0, 16), 0.0, 0.0)                  # no hello from session 42 yet
        assert bs.stats["frames_unknown_session"] == 1
        client.send(protocol.HELLO, meta={"checkpoint": dict(bs.identity, weights="f" * 16)})
        bs._on_message(bs.control.recv(timeout_ms=5000))
        assert client.recv(timeout_ms=5000).kind == protocol.REFUSED and 42 not in bs.sessions
        client.send(protocol.HELLO, meta={"checkpoint": bs.identity})
        bs._on_message(bs.control.recv(timeout_ms=5000))
        assert client.recv(timeout_ms=5000).kind == protocol.WELCOME and 42 in bs.sessions
        rates = bs.server.cfg.rate_table
        bs._on_frame(frame(42, len(rates), 16), 0.0, 0.0)          # rate index outside the table
        bs._on_frame(frame(42, 1, rates[1] + 1), 0.0, 0.0)         # not a whole number of tokens
        bs._on_frame(frame(42, 1, rates[1], task_id=15), 0.0, 0.0)  # no such task
        assert bs.stats["frames_bad_layout"] == 3
        bs._on_frame(frame(42, 1, 3 * rates[1], seq=5), 0.0, 0.0)
        msg = client.recv(timeout_ms=5000)
        assert msg.kind == protocol.SEMANTICS and msg.meta["seq"] == 5 and msg.meta["n_tokens"] == 3
        assert msg.tensors["semantics"].shape == (bs.server.cfg.task_queries, bs.server.cfg.d_model)
        assert bs.stats["items"] == 1
    finally:
        client.close()
        bs.close()


def test_base_station_logs_each_dropped_frame(caplog):
    import logging

    from mtsc_sdr.phy.header import FrameHeader
    from mtsc_sdr.phy.rx import Receiver
    from mtsc_sdr.phy.tx import Transmitter
    from mtsc_sdr.runtime.bs import BaseStation

    tx, rx = Transmitter(), Receiver()
    bad = [tx.build(np.full(32, 0.7, np.complex64), FrameHeader(session_id=1, seq=k, payload_len=32), corrupt_crc=True)
           for k in range(2)]
    gap = np.zeros(300, np.complex64)
    with caplog.at_level(logging.INFO, logger="mtsc_sdr.bs"):
        last = None
        for frame in bad:
            rx.process(np.concatenate([gap, frame, gap]))
            BaseStation._log_drops("tcp://test", rx, last)
            last = rx.drops[-1]
        BaseStation._log_drops("tcp://test", rx, last)            # nothing new: nothing logged
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("header_crc_fail" in m and "tcp://test" in m for m in lines)


def test_base_station_refuses_a_client_artifact_made_from_another_checkpoint(micro_checkpoint):
    from mtsc_sdr.link import MessageClient, free_tcp_endpoint
    from mtsc_sdr.runtime.bs import BaseStation

    bs = BaseStation(str(micro_checkpoint), [free_tcp_endpoint()], "tcp://127.0.0.1:*")
    client = MessageClient(bs.control.endpoint, session=7)
    try:
        for source, want in ((dict(bs.identity, weights="e" * 16), protocol.REFUSED), (bs.identity, protocol.WELCOME)):
            client.send(protocol.HELLO, meta={"checkpoint": bs.identity,
                                              "artifact": {"name": "int8-dynamic", "runtime": "onnxruntime",
                                                           "source": source}})
            bs._on_message(bs.control.recv(timeout_ms=5000))
            answer = client.recv(timeout_ms=5000)
            assert answer.kind == want
            if want == protocol.REFUSED:
                assert "artifact" in answer.meta["reason"] and "weights" in answer.meta["differs"]
                assert 7 not in bs.sessions
        assert 7 in bs.sessions
    finally:
        client.close(linger_ms=0)
        bs.close()


def test_base_station_beyond_loopback_needs_keys_or_insecure_and_admits_only_allowed_clients(
        micro_checkpoint, tmp_path, capsys, caplog, monkeypatch):
    """Bound on every interface (clients reach it over loopback, there being no second machine):
    without keys `mtsc-sdr bs` refuses before loading its model and says how to fix it; with
    --insecure it serves, warning loudly; with --curve-keys and --curve-allow a client with the
    base station's public key and a listed key pair is welcomed, an unlisted one refused at once."""
    import argparse
    import logging
    import threading

    from mtsc_sdr.cli import main
    from mtsc_sdr.link import CurveClient, MessageClient, NonLoopbackBindError, free_tcp_endpoint
    from mtsc_sdr.link.keys import allow, create_keypair, read_keypair, read_public_key
    from mtsc_sdr.link.security import LinkSecurity
    from mtsc_sdr.model import load
    from mtsc_sdr.runtime.bs import BaseStation, add_arguments, security_for
    from mtsc_sdr.runtime.client import Client, ClientSettings, Refused

    monkeypatch.setenv("MTSC_KEYS_DIR", str(tmp_path / "keys"))
    rx, everywhere = free_tcp_endpoint(), "tcp://0.0.0.0:*"

    def args(*extra):
        p = argparse.ArgumentParser()
        add_arguments(p)
        return p.parse_args(["--checkpoint", str(micro_checkpoint), "--rx", rx, "--control", everywhere, *extra])

    def local(bs):        # the control endpoint over loopback
        return "tcp://127.0.0.1:" + bs.control.endpoint.rsplit(":", 1)[1]

    # 1. no keys: refused, before the model loads (the checkpoint is not even read)
    assert main(["bs", "--checkpoint", str(tmp_path / "no-model"), "--rx", rx, "--control", "tcp://0.0.0.0:5999"]) == 2
    err = capsys.readouterr().err
    assert "refusing to bind 'tcp://0.0.0.0:5999'" in err
    assert "mtsc-sdr keys create" in err and "--curve-keys" in err and "--insecure" in err
    with pytest.raises(NonLoopbackBindError):
        BaseStation(str(micro_checkpoint), [rx], everywhere)

    # 2. --insecure: it serves plain clients, with a loud warning
    with caplog.at_level(logging.WARNING, logger="mtsc_sdr.link"):
        bs = BaseStation(str(micro_checkpoint), [rx], everywhere, security=security_for(args("--insecure")))
    assert "INSECURE" in caplog.text
    client = MessageClient(local(bs), session=5)
    try:
        client.send(protocol.HELLO, meta={"checkpoint": bs.identity})
        bs._on_message(bs.control.recv(timeout_ms=5000))
        assert client.recv(timeout_ms=5000).kind == protocol.WELCOME
    finally:
        client.close()
        bs.close()

    # 3. keys and an allow-list: the listed client is welcomed, the unlisted one refused
    for name in ("bs", "laptop", "stranger"):
        create_keypair(tmp_path / "keys", name)
    allow(tmp_path / "keys" / "allowed", str(tmp_path / "keys" / "laptop.key"))
    bs = BaseStation(str(micro_checkpoint), [rx], everywhere,
                     security=security_for(args("--curve-keys", "bs", "--curve-allow", str(tmp_path / "keys" / "allowed"))))
    stop = threading.Event()
    serving = threading.Thread(target=lambda: [bs.serve(stop_after_s=0.1) for _ in iter(stop.is_set, True)], daemon=True)
    serving.start()
    model = load(str(micro_checkpoint))
    server_key = read_public_key(str(tmp_path / "keys" / "bs.key"))    # what the client's machine was given

    def client_with(name, session):
        security = LinkSecurity(client=CurveClient(server_key, read_keypair(name)))
        return Client(model.client, bs.identity, None, local(bs), ClientSettings(session=session, snr_db=20.0,
                                                                                    hello_timeout_s=60.0),
                      security=security)

    try:
        good = client_with("laptop", 11)
        try:
            good.handshake()
        finally:
            good.close()
        stranger = client_with("stranger", 12)
        try:
            with pytest.raises(Refused, match="allow-list"):
                stranger.handshake()
        finally:
            stranger.close()
    finally:
        stop.set()
        serving.join(timeout=30)
        bs.close()
    assert bs.stats["hello"] == 1          # the stranger's hello never got past the handshake
