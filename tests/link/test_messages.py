"""Tensor/control message channel: round trips, many clients, malformed input, sequence gaps,
unreachable peers, timeouts, CURVE, and a server process that is killed and restarted."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zmq

from mtsc_sdr.link import (
    CurveClient,
    CurveServer,
    LinkTimeout,
    MessageClient,
    MessageServer,
    NonLoopbackBindError,
    PeerUnreachable,
    curve_keypair,
    free_tcp_endpoint,
)
from mtsc_sdr.link.messages import DTYPES, VERSION, encode

ANY_PORT = "tcp://127.0.0.1:*"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(ctx):
    srv = MessageServer(ANY_PORT, context=ctx, linger_ms=0)
    yield srv
    srv.close()


@pytest.fixture
def client(ctx, server):
    cli = MessageClient(server.endpoint, session=1234, context=ctx, linger_ms=0)
    yield cli
    cli.close()


def test_tensor_roundtrip_both_ways(server, client):
    acts = np.random.default_rng(0).standard_normal((4, 8, 16)).astype(np.float32)
    seq = client.send("tensor", {"acts": acts, "mask": np.array([True, False])}, {"step": 3, "task": "vqa"})
    assert seq == 0
    msg = server.recv(timeout_ms=5000)
    assert (msg.kind, msg.session, msg.seq, msg.meta) == ("tensor", 1234, 0, {"step": 3, "task": "vqa"})
    assert list(msg.tensors) == ["acts", "mask"]
    np.testing.assert_array_equal(msg.tensors["acts"], acts)
    assert not msg.tensors["acts"].flags.writeable
    assert msg.peer == client.routing_id and msg.src == client.src
    server.reply(msg, "control", meta={"ok": True})
    back = client.recv(timeout_ms=5000)
    assert (back.kind, back.session, back.seq, back.meta, back.tensors) == ("control", 1234, 0, {"ok": True}, {})
    assert back.src == server.src


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_every_wire_dtype_roundtrips(server, client, dtype):
    shape = (3, 0, 2) if dtype == "uint16" else (5, 3)
    x = (np.arange(int(np.prod(shape))) % 2).reshape(shape).astype(dtype)
    client.send("tensor", {"x": x, "scalar": np.array(7, dtype=dtype)})
    msg = server.recv(timeout_ms=5000)
    assert msg.tensors["x"].dtype == np.dtype(dtype) and msg.tensors["x"].shape == shape
    np.testing.assert_array_equal(msg.tensors["x"], x)
    assert msg.tensors["scalar"].shape == () and msg.tensors["scalar"] == np.array(7, dtype=dtype)


def test_big_endian_input_arrives_as_native_values(server, client):
    x = np.arange(10, dtype=">f8")
    client.send("tensor", {"x": x})
    got = server.recv(timeout_ms=5000).tensors["x"]
    assert got.dtype == np.float64 and got.dtype.isnative
    np.testing.assert_array_equal(got, np.arange(10.0))


def test_torch_tensors_are_sent_via_numpy(server, client):
    torch = pytest.importorskip("torch")
    client.send("tensor", {"t": torch.arange(6, dtype=torch.float32).reshape(2, 3)})
    got = server.recv(timeout_ms=5000).tensors["t"]
    assert torch.equal(torch.from_numpy(got.copy()), torch.arange(6, dtype=torch.float32).reshape(2, 3))
    with pytest.raises(TypeError, match="bfloat16"):
        client.send("tensor", {"t": torch.zeros(2, dtype=torch.bfloat16)})


def test_send_validates_before_anything_goes_out(client):
    with pytest.raises(TypeError, match="not supported"):
        client.send("tensor", {"x": np.array(["a"], dtype=object)})
    with pytest.raises(ValueError, match="kind"):
        client.send("Bad Kind!")
    with pytest.raises(ValueError, match="name"):
        client.send("tensor", {"bad name": np.zeros(1)})
    with pytest.raises(ValueError):
        client.send("control", meta={"x": float("nan")})
    assert client.stats.sent == 0
    assert client.send("hello") == 0  # sequence numbers were not used up by the failures


def test_one_server_many_clients(ctx, server):
    clients = [MessageClient(server.endpoint, context=ctx, linger_ms=0) for _ in range(3)]
    try:
        for i, cli in enumerate(clients):
            cli.send("tensor", {"i": np.array([i])})
        for _ in clients:
            msg = server.recv(timeout_ms=5000)
            server.reply(msg, "tensor", {"i2": msg.tensors["i"] * 2})
        for i, cli in enumerate(clients):
            back = cli.recv(timeout_ms=5000)
            assert back.session == cli.session and back.tensors["i2"][0] == 2 * i
    finally:
        for cli in clients:
            cli.close()


def _dealer(ctx, endpoint: str) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    return sock


def _header(**fields) -> bytes:
    h = {"v": VERSION, "kind": "tensor", "session": 1, "seq": 0, "src": 5, "tensors": [], "meta": {}}
    h.update(fields)
    return json.dumps(h).encode()


def test_malformed_messages_are_counted_logged_dropped_and_server_keeps_going(ctx, caplog):
    srv = MessageServer(ANY_PORT, max_message_bytes=10_000, context=ctx, linger_ms=0)
    raw = _dealer(ctx, srv.endpoint)
    f32 = {"name": "x", "dtype": "float32", "shape": [4]}
    try:
        with caplog.at_level(logging.WARNING, logger="mtsc_sdr.link"):
            raw.send_multipart([b"\x80not json"])
            raw.send_multipart([b"[1, 2]"])
            raw.send_multipart([_header(v=2)])
            raw.send_multipart([_header(session=-1)])
            raw.send_multipart([_header(tensors=[f32])])  # header names a tensor, no frame
            raw.send_multipart([_header(tensors=[{**f32, "dtype": "object"}]), b"x" * 16])
            raw.send_multipart([_header(tensors=[f32]), b"x" * 15])
            raw.send_multipart([_header(tensors=[{**f32, "shape": [2, -2]}]), b"x" * 16])
            raw.send_multipart([_header(tensors=[{**f32, "shape": [4000]}]), b"x" * 16000])
            raw.send_multipart([_header(kind="control", meta={"alive": 1})])
            msg = srv.recv(timeout_ms=5000)
        assert msg.kind == "control" and msg.meta == {"alive": 1}
        st = srv.stats
        assert (st.dropped_bad_header, st.dropped_unknown_version, st.dropped_bad_dtype,
                st.dropped_size_mismatch, st.dropped_oversized) == (5, 1, 1, 1, 1)
        assert st.dropped == 9 and st.received == 1
        for words in ("not JSON", "version 2", "dtype 'object'", "needs 16 bytes, frame has 15", "max_message_bytes"):
            assert words in caplog.text
    finally:
        raw.close()
        srv.close()


def test_sequence_gaps_are_counted_and_duplicates_dropped(ctx, server, caplog):
    raw = _dealer(ctx, server.endpoint)
    try:
        with caplog.at_level(logging.WARNING, logger="mtsc_sdr.link"):
            for seq in (0, 1, 4, 2, 5):
                raw.send_multipart(encode("tensor", 9, seq, 77))
            seen = [m.seq for m in iter(lambda: server.recv(timeout_ms=500), None)]
        assert seen == [0, 1, 4, 5]
        assert (server.stats.lost, server.stats.gaps, server.stats.dropped_duplicate) == (2, 1, 1)
        assert "lost 2 message(s): seq 2..3" in caplog.text
        # a new sender instance (src) in the same session starts a new sequence: not a loss
        raw.send_multipart(encode("tensor", 9, 0, 78))
        assert server.recv(timeout_ms=5000).seq == 0
        assert server.stats.lost == 2 and server.stats.peer_restarts == 1
    finally:
        raw.close()


def test_unknown_peer_is_reported(server):
    with pytest.raises(PeerUnreachable, match="not connected"):
        server.send(b"nobody", "control")
    assert server.stats.sent == 0


def test_client_send_times_out_when_queue_is_full(ctx):
    endpoint = free_tcp_endpoint()  # nobody listens
    cli = MessageClient(endpoint, hwm=2, send_timeout_ms=100, context=ctx, linger_ms=0)
    try:
        with pytest.raises(LinkTimeout, match="not sent"):
            for _ in range(100):
                cli.send("tensor", {"x": np.zeros(4)})
        assert 1 <= cli.stats.sent <= 10
    finally:
        cli.close()


def test_loopback_by_default(ctx):
    with pytest.raises(NonLoopbackBindError):
        MessageServer("tcp://*:0", context=ctx)


def test_curve_authenticated_pair_talks_and_others_do_not(ctx):
    server_keys, client_keys = curve_keypair(), curve_keypair()
    srv = MessageServer(ANY_PORT, curve=CurveServer(server_keys, frozenset({client_keys.public})), linger_ms=0)
    good = MessageClient(srv.endpoint, curve=CurveClient(server_keys.public, client_keys), context=ctx, linger_ms=0)
    wrong_server_key = MessageClient(srv.endpoint, curve=CurveClient(curve_keypair().public, client_keys),
                                     context=ctx, linger_ms=0)
    unlisted = MessageClient(srv.endpoint, curve=CurveClient(server_keys.public), context=ctx, linger_ms=0)
    plain = MessageClient(srv.endpoint, context=ctx, linger_ms=0)
    try:
        for cli in (wrong_server_key, unlisted, plain):
            cli.send("hello", meta={"who": "intruder"})
        good.send("hello", meta={"who": "friend"})
        msg = srv.recv(timeout_ms=5000)
        assert msg.meta == {"who": "friend"}
        srv.reply(msg, "control", meta={"welcome": True})
        assert good.recv(timeout_ms=5000).meta == {"welcome": True}
        assert srv.recv(timeout_ms=500) is None  # none of the others got through
    finally:
        for cli in (good, wrong_server_key, unlisted, plain):
            cli.close()
        srv.close()


_ECHO_SERVER = r"""
import sys
from mtsc_sdr.link import MessageServer
srv = MessageServer(sys.argv[1], linger_ms=0)
print("ready", flush=True)
while True:
    m = srv.recv(timeout_ms=None)
    srv.reply(m, "echo", m.tensors, {"seq": m.seq, "server_src": srv.src})
"""


def _start_echo_server(endpoint: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", _ECHO_SERVER, endpoint], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_client_continues_after_server_process_is_killed_and_restarted(ctx):
    endpoint = free_tcp_endpoint()
    cli = MessageClient(endpoint, context=ctx, linger_ms=0)
    first = _start_echo_server(endpoint)
    second = None
    try:
        cli.send("tensor", {"x": np.arange(3)})
        reply = cli.recv(timeout_ms=10_000)
        assert reply.kind == "echo" and reply.meta["seq"] == 0
        old_src = reply.meta["server_src"]

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        cli.send("tensor", {"x": np.arange(4)})  # queued while nobody listens
        second = _start_echo_server(endpoint)

        reply = cli.recv(timeout_ms=10_000)  # reconnect (100 ms .. 2 s back-off) delivers the queued one
        assert reply is not None, "client did not reconnect to the restarted server"
        assert reply.meta["server_src"] != old_src and reply.meta["seq"] == 1
        np.testing.assert_array_equal(reply.tensors["x"], np.arange(4))
        assert cli.stats.peer_restarts == 1 and cli.stats.lost == 0
        cli.send("tensor", {"x": np.arange(5)})
        assert cli.recv(timeout_ms=10_000).meta["seq"] == 2
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        cli.close()
