"""IQ sample streams between our own sockets: exact samples, splitting, tags, malformed input,
flow control and a sender that restarts (CURVE: test_curve.py; loopback-only binding:
test_endpoints.py)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import zmq

from mtsc_sdr.link import IQPull, IQPush, IQSendTimeout, Tag, UInt64, encode_tag_header, free_tcp_endpoint

ANY_PORT = "tcp://127.0.0.1:*"


def samples(n: int, seed: int = 0) -> np.ndarray:
    """``n`` complex64 Gaussian samples drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)


@pytest.fixture
def pair(ctx):
    push = IQPush(ANY_PORT, max_message_samples=4096, context=ctx)
    pull = IQPull(push.endpoint, context=ctx)
    yield push, pull
    pull.close()
    push.close(0)


def test_roundtrip_exact_and_split_into_bounded_messages(pair):
    push, pull = pair
    x = samples(10_000)
    assert push.send(x) == 3  # 4096 + 4096 + 1808
    got = pull.recv_samples(len(x), timeout_ms=5000)
    np.testing.assert_array_equal(got, x)
    assert pull.stats.messages == 3 and pull.stats.samples == 10_000 and pull.stats.dropped == 0
    assert push.samples_sent == 10_000 and push.messages_sent == 3


def test_recv_returns_read_only_view_and_none_on_timeout(pair):
    push, pull = pair
    push.send(samples(16))
    y = pull.recv(timeout_ms=5000)
    assert y.dtype == np.complex64 and y.shape == (16,) and not y.flags.writeable
    assert pull.recv(timeout_ms=50) is None


def test_zero_copy_send(pair):
    push, pull = pair
    x = samples(50_000)
    push.send(x.copy(), copy=False)
    np.testing.assert_array_equal(pull.recv_samples(len(x), timeout_ms=5000), x)


def test_send_rejects_wrong_dtype_and_shape(pair):
    push, _ = pair
    with pytest.raises(TypeError, match="complex64"):
        push.send(np.zeros(4, np.complex128))
    with pytest.raises(ValueError, match="1-D"):
        push.send(np.zeros((2, 2), np.complex64))
    with pytest.raises(ValueError, match="pass_tags"):
        push.send(np.zeros(4, np.complex64), tags=[Tag(0, "k", 1)])
    assert push.send(np.zeros(0, np.complex64)) == 0


def test_non_contiguous_input_is_sent_correctly(pair):
    push, pull = pair
    x = samples(2000)
    push.send(x[::2])
    np.testing.assert_array_equal(pull.recv_samples(1000, timeout_ms=5000), x[::2])


def test_tags_roundtrip_with_stream_offsets(ctx):
    push = IQPush(ANY_PORT, pass_tags=True, max_message_samples=1000, context=ctx)
    pull = IQPull(push.endpoint, pass_tags=True, context=ctx)
    try:
        push.send(samples(500, 1))  # stream position 500 before the tagged call
        x = samples(2500, 2)
        tags = [Tag(0, "sob", True), Tag(1200, "rx_time", (UInt64(1700000000), 0.5)), Tag(2499, "frame", 42, "tx")]
        assert push.send(x, tags=tags) == 3
        chunks = list(pull.chunks(timeout_ms=500))
        assert [c.offset for c in chunks] == [0, 500, 1500, 2500]
        got = np.concatenate([c.samples for c in chunks])
        np.testing.assert_array_equal(got[500:], x)
        all_tags = [t for c in chunks for t in c.tags]
        assert all_tags == [t.shifted(500) for t in tags]
        for c in chunks:  # every tag lands inside the chunk that carries it
            for t in c.tags:
                assert 0 <= t.offset - c.offset < len(c.samples)
        assert pull.stats.tags_seen == 3
    finally:
        pull.close()
        push.close(0)


def test_tag_offset_outside_samples_is_refused(ctx):
    with IQPush(ANY_PORT, pass_tags=True, context=ctx) as push:
        with pytest.raises(ValueError, match="outside"):
            push.send(np.zeros(10, np.complex64), tags=[Tag(10, "k", 1)])


def _raw_push(ctx) -> tuple[zmq.Socket, str]:
    sock = ctx.socket(zmq.PUSH)
    sock.linger = 0
    sock.bind(ANY_PORT)
    return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)


def test_malformed_messages_are_counted_logged_dropped_and_stream_continues(ctx, caplog):
    raw, endpoint = _raw_push(ctx)
    pull = IQPull(endpoint, max_message_bytes=8 * 1000, context=ctx)
    good = samples(100)
    nan = good.copy()
    nan[17] = complex(np.nan, 0)
    inf = good.copy()
    inf[3] = complex(0, np.inf)
    try:
        with caplog.at_level(logging.WARNING, logger="mtsc_sdr.link"):
            raw.send(good.tobytes()[:-3])            # 797 bytes: not a multiple of 8
            raw.send(nan.tobytes())                  # NaN
            raw.send(inf.tobytes())                  # inf
            raw.send(samples(1001).tobytes())       # 8008 bytes > max_message_bytes
            raw.send(b"")                            # empty: skipped, not an error
            raw.send(good.tobytes())                 # the next good message still arrives
            got = pull.recv(timeout_ms=5000)
        np.testing.assert_array_equal(got, good)
        st = pull.stats
        assert (st.dropped_not_multiple_of_8, st.dropped_nonfinite, st.dropped_oversized) == (1, 2, 1)
        assert st.dropped == 4 and st.dropped_samples == 200 and st.empty_messages == 1
        assert st.messages == 1 and st.samples == 100
        text = caplog.text
        assert "not a multiple of 8" in text and "NaN or infinite" in text and "max_message_bytes" in text
    finally:
        pull.close()
        raw.close()


def test_bad_tag_headers_are_dropped_and_stream_continues(ctx, caplog):
    raw, endpoint = _raw_push(ctx)
    pull = IQPull(endpoint, pass_tags=True, context=ctx)
    good = samples(64)
    header = encode_tag_header(0, [Tag(5, "frame", 1)])
    try:
        with caplog.at_level(logging.WARNING, logger="mtsc_sdr.link"):
            raw.send(good.tobytes())                                   # no header at all
            raw.send(header[:2] + b"\x07" + header[3:] + good.tobytes())  # unknown header version
            raw.send(header[:27] + b"\xee" + header[28:] + good.tobytes())  # unknown PMT type
            raw.send(header + good.tobytes())
            chunk = pull.recv_chunk(timeout_ms=5000)
        np.testing.assert_array_equal(chunk.samples, good)
        assert chunk.tags == (Tag(5, "frame", 1),)
        assert pull.stats.dropped_bad_tag_header == 3 and pull.stats.messages == 1
        assert "version 7" in caplog.text and "bad tag header" in caplog.text
    finally:
        pull.close()
        raw.close()


def test_tag_header_offsets_expose_missing_samples_and_sender_restarts(ctx, caplog):
    raw, endpoint = _raw_push(ctx)
    pull = IQPull(endpoint, pass_tags=True, context=ctx)
    x = samples(100)
    nan = x.copy()
    nan[0] = np.nan
    try:
        with caplog.at_level(logging.WARNING, logger="mtsc_sdr.link"):
            raw.send(encode_tag_header(0) + x.tobytes())
            raw.send(encode_tag_header(100) + nan.tobytes())  # dropped, but not "missed"
            raw.send(encode_tag_header(200) + x.tobytes())
            raw.send(encode_tag_header(500) + x.tobytes())   # 200 samples never arrived
            raw.send(encode_tag_header(0) + x.tobytes())     # sender restarted
            got = [c.offset for c in pull.chunks(timeout_ms=500)]
        assert got == [0, 100, 200, 300]
        st = pull.stats
        assert (st.sender_gaps, st.sender_samples_missed, st.sender_restarts, st.dropped_nonfinite) == (1, 200, 1, 1)
        assert "200 samples never arrived" in caplog.text
    finally:
        pull.close()
        raw.close()


def test_finite_check_can_be_disabled(ctx):
    raw, endpoint = _raw_push(ctx)
    pull = IQPull(endpoint, check_finite=False, context=ctx)
    try:
        raw.send(np.full(8, np.nan, np.complex64).tobytes())
        got = pull.recv(timeout_ms=5000)
        assert got is not None and np.isnan(got).all()
    finally:
        pull.close()
        raw.close()


def test_send_times_out_without_receiver_and_says_what_was_not_sent(ctx):
    with IQPush(ANY_PORT, send_timeout_ms=100, max_message_samples=10, context=ctx) as push:
        with pytest.raises(IQSendTimeout) as err:
            push.send(np.zeros(35, np.complex64))
        assert err.value.samples_sent == 0 and err.value.samples_pending == 35
        assert "0 of 35" in str(err.value)


def test_backpressure_blocks_instead_of_dropping(ctx):
    """A slow receiver makes the sender wait (then time out); nothing is dropped silently."""
    push = IQPush(ANY_PORT, hwm=2, send_timeout_ms=200, max_message_samples=1 << 16, context=ctx)
    pull = IQPull(push.endpoint, hwm=2, context=ctx)
    x = np.ones(1 << 16, np.complex64)
    sent = 0
    try:
        with pytest.raises(IQSendTimeout):
            for _ in range(10_000):  # bounded; queues + kernel buffers fill long before
                push.send(x)
                sent += 1
        got = 0
        while (y := pull.recv(timeout_ms=500)) is not None:
            got += len(y)
        assert got == sent * len(x)
        assert pull.stats.dropped == 0
    finally:
        pull.close()
        push.close(0)


def test_receiver_reconnects_when_sender_restarts(ctx):
    endpoint = free_tcp_endpoint()
    pull = IQPull(endpoint, context=ctx)
    try:
        for round_ in range(2):
            with IQPush(endpoint, context=ctx, linger_ms=2000) as push:
                x = samples(1000, round_)
                push.send(x)
                np.testing.assert_array_equal(pull.recv_samples(1000, timeout_ms=10_000), x)
        assert pull.stats.messages == 2
    finally:
        pull.close()
