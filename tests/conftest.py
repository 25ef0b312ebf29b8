"""Shared fixtures. GNU Radio tests skip with the reason when no Python with GNU Radio exists."""

from __future__ import annotations

import os

import pytest

# Radio discovery probes a Pluto's default network addresses (192.168.2.1, pluto.local). Tests run
# in CI where only loopback is fair game: probe no host (discovery tests use fake loopback servers).
os.environ["MTSC_PLUTO_HOSTS"] = ""


@pytest.fixture(scope="session")
def gr_python() -> str:
    """Path of a Python interpreter that has GNU Radio; skips the test when there is none."""
    from mtsc_sdr.radio.grpython import INSTALL_HINT, find_gr_python

    python = find_gr_python()
    if python is None:
        pytest.skip(f"GNU Radio not available: {INSTALL_HINT}")
    return python


@pytest.fixture
def ctx():
    """A private ZeroMQ context for one test, terminated afterwards."""
    import zmq

    context = zmq.Context()
    yield context
    context.term()
