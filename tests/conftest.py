"""Fixtures of the default suite (``gr_python`` is in the root conftest.py, shared with hw_tests/)."""

from __future__ import annotations

import os

import pytest

# Radio discovery probes a Pluto's default network addresses (192.168.2.1, pluto.local). Tests run
# in CI where only loopback is fair game: probe no host (discovery tests use fake loopback servers).
os.environ["MTSC_PLUTO_HOSTS"] = ""


@pytest.fixture
def ctx():
    """A private ZeroMQ context for one test, terminated afterwards."""
    import zmq

    context = zmq.Context()
    yield context
    context.term()
