"""Endpoints (mtsc_sdr/link/endpoints.py): what counts as loopback, and the one bind rule: beyond
loopback only with CURVE or when told --insecure (which warns loudly)."""

from __future__ import annotations

import logging

import pytest

from mtsc_sdr.link import IQPush, NonLoopbackBindError, check_bind_endpoint, is_loopback_endpoint


@pytest.mark.parametrize("endpoint,loop", [
    ("tcp://127.0.0.1:5555", True), ("tcp://localhost:5555", True), ("tcp://[::1]:5555", True),
    ("tcp://127.0.0.2:*", True), ("ipc:///tmp/x", True), ("inproc://x", True),
    ("tcp://*:5555", False), ("tcp://0.0.0.0:5555", False), ("tcp://192.168.1.10:5555", False),
    ("tcp://eth0:5555", False),
])
def test_loopback_classification(endpoint, loop):
    assert is_loopback_endpoint(endpoint) is loop


def test_host_names_count_as_loopback_only_when_they_resolve_to_loopback(monkeypatch):
    import socket

    table = {"lab-bs": ["192.168.1.10"], "me": ["127.0.1.1", "::1"], "mixed": ["127.0.0.1", "10.0.0.2"]}

    def fake_getaddrinfo(host, *args, **kwargs):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in table[host]]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    assert is_loopback_endpoint("tcp://me:5555")
    assert not is_loopback_endpoint("tcp://lab-bs:5555")
    assert not is_loopback_endpoint("tcp://mixed:5555")
    assert not is_loopback_endpoint("tcp://no-such-host:5555")
    assert is_loopback_endpoint("tcp://lo:5555") and is_loopback_endpoint("tcp://[::ffff:127.0.0.1]:5555")


def test_non_loopback_bind_needs_curve_or_insecure(ctx, caplog):
    with pytest.raises(NonLoopbackBindError, match="mtsc-sdr keys create") as refused:
        IQPush("tcp://0.0.0.0:0", context=ctx)
    assert "--insecure" in str(refused.value) and "--curve-keys" in str(refused.value)
    with pytest.raises(NonLoopbackBindError, match="no CURVE .*GNU Radio"):
        check_bind_endpoint("tcp://*:5555", curve_possible=False)
    with pytest.raises(ValueError, match="transport"):
        check_bind_endpoint("udp://127.0.0.1:1")
    with caplog.at_level(logging.WARNING, logger="mtsc_sdr.link"):
        assert check_bind_endpoint("tcp://*:5555", insecure=True) == "tcp://*:5555"
        assert check_bind_endpoint("tcp://192.168.1.10:5555", encrypted=True) == "tcp://192.168.1.10:5555"
    assert len(caplog.records) == 1 and "INSECURE" in caplog.text and "without CURVE" in caplog.text


def test_allow_remote_is_the_deprecated_name_of_insecure(ctx, caplog):
    with caplog.at_level(logging.WARNING, logger="mtsc_sdr.link"), pytest.deprecated_call():
        assert check_bind_endpoint("tcp://*:5555", allow_remote=True) == "tcp://*:5555"
    assert "without CURVE" in caplog.text
    with pytest.deprecated_call():
        push = IQPush("tcp://0.0.0.0:*", context=ctx, allow_remote=True)
    push.close(0)


def test_loopback_binds_need_nothing_and_curve_binds_anywhere(ctx, caplog):
    from mtsc_sdr.link import CurveServer, MessageServer, curve_keypair

    with caplog.at_level(logging.WARNING, logger="mtsc_sdr.link"):
        for endpoint in ("tcp://127.0.0.1:*", "tcp://localhost:*", "inproc://plain"):
            IQPush(endpoint, context=ctx).close(0)
        server = MessageServer("tcp://0.0.0.0:*", curve=CurveServer(curve_keypair()), context=ctx, linger_ms=0)
        server.close()
    assert caplog.records == []
