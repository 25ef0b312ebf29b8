"""CURVE-encrypted IQ streams (mtsc_sdr/link/curve.py): only the right server key and listed
clients get samples."""

from __future__ import annotations

import numpy as np

from mtsc_sdr.link import CurveClient, CurveServer, IQPull, IQPush, curve_keypair

from .test_iq import ANY_PORT, samples


def test_curve_encrypted_stream_and_wrong_server_key_gets_nothing(ctx):
    server = curve_keypair()
    push = IQPush(ANY_PORT, curve=CurveServer(server), context=ctx)
    good = IQPull(push.endpoint, curve=CurveClient(server.public), context=ctx)
    impostor = IQPull(push.endpoint, curve=CurveClient(curve_keypair().public), context=ctx)
    try:
        x = samples(256)
        push.send(x)  # PUSH only deals to peers whose handshake succeeded
        np.testing.assert_array_equal(good.recv(timeout_ms=5000), x)
        assert impostor.recv(timeout_ms=300) is None
    finally:
        for s in (good, impostor):
            s.close()
        push.close(0)


def test_curve_allow_list_rejects_unlisted_client(ctx):
    server, listed, unlisted = curve_keypair(), curve_keypair(), curve_keypair()
    push = IQPush(ANY_PORT, curve=CurveServer(server, frozenset({listed.public})), send_timeout_ms=10_000)
    ok = IQPull(push.endpoint, curve=CurveClient(server.public, listed), context=ctx)
    bad = IQPull(push.endpoint, curve=CurveClient(server.public, unlisted), context=ctx)
    try:
        for i in range(3):
            push.send(samples(32, i))
        assert len(ok.recv_samples(96, timeout_ms=5000)) == 96
        assert bad.recv(timeout_ms=300) is None
    finally:
        ok.close()
        bad.close()
        push.close(0)
