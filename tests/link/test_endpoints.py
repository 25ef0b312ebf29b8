"""Endpoints (mtsc_sdr/link/endpoints.py): what counts as loopback, and binding beyond the machine
only when asked for."""

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


def test_non_loopback_bind_needs_explicit_permission(ctx, caplog):
    with pytest.raises(NonLoopbackBindError, match="allow_remote"):
        IQPush("tcp://0.0.0.0:0", context=ctx)
    with pytest.raises(ValueError, match="transport"):
        check_bind_endpoint("udp://127.0.0.1:1")
    with caplog.at_level(logging.WARNING, logger="mtsc_sdr.link"):
        assert check_bind_endpoint("tcp://*:5555", allow_remote=True) == "tcp://*:5555"
    assert "without CURVE" in caplog.text
