"""Tests that need a radio: run them with ``pytest hw_tests`` on a machine with a PlutoSDR or USRP
attached. Each test looks for its radio first (:func:`mtsc_sdr.radio.discovery.find_radios`) and is
skipped with what was searched when there is none, or when GNU Radio is absent.

* the receive flowgraph (``pluto_rx`` / ``usrp_rx``) opens the radio, streams finite samples over
  ZeroMQ and stops cleanly;
* the over-the-air link test (``mtsc-sdr link-test --channel pluto|usrp``) over a loopback cable
  (with >= 30 dB attenuation) or two antennas: nearly every frame arrives with a sane SNR estimate.
"""

from __future__ import annotations

import numpy as np
import pytest
import zmq

from mtsc_sdr.link import free_tcp_endpoint
from mtsc_sdr.radio.discovery import find_radios
from mtsc_sdr.radio.flowgraph import Flowgraph

ADDRESS_PARAM = {"pluto": "uri", "usrp": "device_args"}


def _radio(kind: str):
    found = find_radios(kind)
    if not found:
        pytest.skip(found.summary())
    return found[0]


@pytest.mark.parametrize("kind", ["pluto", "usrp"])
def test_rx_flowgraph_streams_samples(gr_python, kind):
    radio = _radio(kind)
    out_addr = free_tcp_endpoint()
    params = {ADDRESS_PARAM[kind]: radio.address, "out_addr": out_addr, "rate_sps": 2e6, "lo_freq_hz": 2.4e9}
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVTIMEO, 10_000)
    pull.setsockopt(zmq.LINGER, 0)
    try:
        with Flowgraph(f"{kind}_rx", params, python=gr_python, startup_timeout_s=60) as fg:
            pull.connect(out_addr)
            total = 0
            while total < 200_000:
                x = np.frombuffer(pull.recv(), dtype=np.complex64)
                assert np.all(np.isfinite(x)) and np.max(np.abs(x)) <= 1.5
                total += len(x)
            fg.check()
        assert fg.returncode == 0, fg.output_tail()
    finally:
        pull.close(0)
        ctx.term()


@pytest.mark.parametrize("kind", ["pluto", "usrp"])
def test_link_test_over_the_air(gr_python, kind):
    from mtsc_sdr.runtime.link_test import LinkTestConfig, run_link_test

    radio = _radio(kind)
    tx_gain, rx_gain = {"pluto": (-10.0, 30.0), "usrp": (40.0, 30.0)}[kind]     # each within its profile
    cfg = LinkTestConfig(channel=kind, frames=200, radio_args=radio.address, gap_samples=2000,
                         tx_gain_db=tx_gain, rx_gain_db=rx_gain)
    r = run_link_test(cfg)
    assert r["frames_header_ok"] >= 0.95 * r["frames_sent"], r
    assert r["snr_est_db"] is not None and r["snr_est_db"] > 10.0, r
    assert r["evm_db"] < -8.0, r
