"""The software channel, the client and the link test's transmitter follow the one bind rule
(mtsc_sdr/link/endpoints.py): beyond loopback only with CURVE keys or --insecure. The channel bound on
every interface with keys carries samples to the peer that has its public key."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from mtsc_sdr.cli import main
from mtsc_sdr.link import CurveClient, IQPull, IQPush, free_tcp_endpoint, free_tcp_port
from mtsc_sdr.link.keys import create_keypair, read_public_key

from .helpers import cli_argv


def test_channel_beyond_loopback_without_keys_refuses_and_says_how(capsys):
    assert main(["channel", "--in", free_tcp_endpoint(), "--out", "tcp://0.0.0.0:0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to bind 'tcp://0.0.0.0:0'" in err
    assert "mtsc-sdr keys create" in err and "--curve-keys" in err and "--insecure" in err


def test_client_tx_beyond_loopback_refuses_before_loading_anything(capsys):
    argv = ["client", "--tx", "tcp://0.0.0.0:5555", "--control", free_tcp_endpoint(), "--split", "val",
            "--n-per-task", "1", "--checkpoint", "/nonexistent"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "refusing to bind 'tcp://0.0.0.0:5555'" in err and "--insecure" in err


def test_link_tx_beyond_loopback_refuses():
    from mtsc_sdr.link import NonLoopbackBindError
    from mtsc_sdr.runtime.link_tx import main as link_tx

    with pytest.raises(NonLoopbackBindError, match="--insecure"):
        link_tx(["--out", "tcp://0.0.0.0:0", "--frames", "1", "--payload-len", "8", "--gap", "8", "--seed", "0"])


@pytest.mark.parametrize("secure", [True, False], ids=["curve-keys", "insecure"])
def test_channel_on_every_interface_carries_samples(tmp_path, secure):
    """``mtsc-sdr channel --out tcp://0.0.0.0:P`` with --curve-keys (the receiver connects over
    loopback with the channel's public key) or with --insecure (a warning on its stderr)."""
    create_keypair(tmp_path, "channel")
    upstream = IQPush("tcp://127.0.0.1:*", send_timeout_ms=20_000)
    port = free_tcp_port()
    security = ["--curve-keys", str(tmp_path / "channel")] if secure else ["--insecure"]
    proc = subprocess.Popen(cli_argv("channel", "--in", upstream.endpoint, "--out", f"tcp://0.0.0.0:{port}",
                                     "--snr-db", "40", *security),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    curve = CurveClient(read_public_key(str(tmp_path / "channel.key"))) if secure else None
    pull = IQPull(f"tcp://127.0.0.1:{port}", curve=curve)
    try:
        x = np.full(4096, 0.5 + 0.5j, np.complex64)
        upstream.send(x)                        # waits for the channel to connect
        got = pull.recv_samples(x.size, timeout_ms=30_000)
        assert got is not None and len(got) == x.size
        assert np.abs(got - x).max() < 0.1      # 40 dB: the samples, a little noise
    finally:
        pull.close()
        upstream.close(0)
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert ("INSECURE" in err) is (not secure)
