"""Interoperation with real GNU Radio gr-zeromq blocks (flowgraphs run under the Python that has
GNU Radio, as subprocesses). Skipped with the reason when GNU Radio is absent.

(1) our IQPush -> GNU Radio pull_source -> vector sink: exact samples
(2) GNU Radio vector_source_c -> push_sink -> our IQPull: exact samples
(3) pass_tags both ways: tags we send appear in GNU Radio at the right offsets with the right
    values, and GNU Radio's tags reach us.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from mtsc_sdr.link import IQPull, IQPush, Pair, Tag, UInt64, free_tcp_endpoint

pytestmark = pytest.mark.gnuradio

TIMEOUT_S = 60

# GNU Radio receives: pull_source -> vector_sink until n samples arrived (or 50 s); writes them to a
# file and prints the tags. (head(n) would not end the flowgraph: it returns DONE only when called
# again after its n-th item, and no more items come.)
_GR_PULL = r"""
import json, sys, time
import numpy as np
import pmt
from gnuradio import gr, blocks, zeromq
addr, n, pass_tags, out = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
tb = gr.top_block()
src = zeromq.pull_source(gr.sizeof_gr_complex, 1, addr, 100, pass_tags, -1)
snk = blocks.vector_sink_c()
tb.connect(src, snk)
tb.start()
deadline = time.monotonic() + 50
while snk.nitems_read(0) < n and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.2)  # anything beyond n would show up as extra samples
tb.stop()
tb.wait()
np.array(snk.data(), dtype=np.complex64).tofile(out)
tags = [[t.offset, pmt.write_string(t.key), pmt.write_string(t.value), pmt.write_string(t.srcid)] for t in snk.tags()]
print(json.dumps(tags), flush=True)
"""

# GNU Radio sends: vector_source_c(data, tags) -> push_sink; exits when told on stdin.
_GR_PUSH = r"""
import sys
import numpy as np
import pmt
from gnuradio import gr, blocks, zeromq
addr, infile, pass_tags = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
data = np.fromfile(infile, dtype=np.complex64)
gr_id = pmt.intern("gr")
cfg = pmt.dict_add(pmt.make_dict(), pmt.intern("mode"), pmt.intern("fast"))
tag_list = [
    (0, "frame", pmt.from_long(7)),
    (3, "gain", pmt.from_complex(1.5 - 2j)),
    (777, "iq", pmt.init_c32vector(2, [1j, 2])),
    (999, "cfg", cfg),
    (1234, "rx_time", pmt.make_tuple(pmt.from_uint64(1700000000), pmt.from_double(0.25))),
    (50000, "freq", pmt.from_double(2.4e9)),
    (len(data) - 1, "eob", pmt.PMT_T),
]
tags = [gr.tag_utils.python_to_tag((off, pmt.intern(k), v, gr_id)) for off, k, v in tag_list] if pass_tags else []
tb = gr.top_block()
src = blocks.vector_source_c(data.tolist(), False, 1, tags)
snk = zeromq.push_sink(gr.sizeof_gr_complex, 1, addr, 100, pass_tags, -1)
tb.connect(src, snk)
tb.run()
print("sent", flush=True)
sys.stdin.readline()
"""


def _samples(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)


def _our_push_to_gnuradio(gr_python, tmp_path, x, *, tags=(), pass_tags=False):
    out = tmp_path / "gr_received.c64"
    push = IQPush("tcp://127.0.0.1:*", pass_tags=pass_tags, max_message_samples=8192, send_timeout_ms=30_000)
    try:
        proc = subprocess.Popen([gr_python, "-c", _GR_PULL, push.endpoint, str(len(x)), "1" if pass_tags else "0", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            push.send(x, tags=list(tags))  # blocks until GNU Radio's pull_source has connected
            stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    finally:
        push.close(0)
    assert proc.returncode == 0, stderr
    return np.fromfile(out, dtype=np.complex64), json.loads(stdout.strip().splitlines()[-1])


def _gnuradio_push_to_us(gr_python, tmp_path, x, *, pass_tags=False):
    infile = tmp_path / "gr_send.c64"
    x.tofile(infile)
    endpoint = free_tcp_endpoint()
    pull = IQPull(endpoint, pass_tags=pass_tags)  # connects first; GNU Radio binds when it starts
    proc = subprocess.Popen([gr_python, "-c", _GR_PUSH, endpoint, str(infile), "1" if pass_tags else "0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        chunks = []
        have = 0
        while have < len(x):
            chunk = pull.recv_chunk(timeout_ms=TIMEOUT_S * 1000)
            assert chunk is not None, "no samples from GNU Radio's push_sink"
            chunks.append(chunk)
            have += len(chunk.samples)
        _, stderr = proc.communicate("done\n", timeout=TIMEOUT_S)
        assert proc.returncode == 0, stderr
        assert pull.stats.dropped == 0, pull.stats
        return chunks
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        pull.close()


def test_our_push_feeds_gnuradio_pull_source_exactly(gr_python, tmp_path):
    x = _samples(200_003, 1)
    got, tags = _our_push_to_gnuradio(gr_python, tmp_path, x)
    np.testing.assert_array_equal(got, x)
    assert tags == []


def test_gnuradio_push_sink_feeds_our_pull_exactly(gr_python, tmp_path):
    x = _samples(150_001, 2)
    chunks = _gnuradio_push_to_us(gr_python, tmp_path, x)
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), x)
    assert all(c.tags == () for c in chunks)


def test_our_tags_arrive_in_gnuradio(gr_python, tmp_path):
    x = _samples(100_000, 3)
    tags = [
        Tag(0, "sob", True),
        Tag(5, "frame", 42, "mtsc"),
        Tag(8191, "edge", "last-of-message"),  # last sample of the first 8192-sample message
        Tag(8192, "rx_time", (UInt64(1700000000), 0.25)),
        Tag(60_000, "cfo_hz", -1250.5),
        Tag(99_999, "gain", 1.5 - 2j),
    ]
    got, gr_tags = _our_push_to_gnuradio(gr_python, tmp_path, x, tags=tags, pass_tags=True)
    np.testing.assert_array_equal(got, x)
    assert gr_tags == [
        [0, "sob", "#t", "#f"],
        [5, "frame", "42", "mtsc"],
        [8191, "edge", "last-of-message", "#f"],
        [8192, "rx_time", "{1700000000 0.25}", "#f"],
        [60000, "cfo_hz", "-1250.5", "#f"],
        [99999, "gain", "1.5+-2i", "#f"],
    ]


def test_gnuradio_tags_arrive_in_our_pull(gr_python, tmp_path):
    x = _samples(100_000, 4)
    chunks = _gnuradio_push_to_us(gr_python, tmp_path, x, pass_tags=True)
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), x)
    tags = {t.key: t for c in chunks for t in c.tags}
    for c in chunks:
        for t in c.tags:
            assert 0 <= t.offset - c.offset < len(c.samples), "tag outside the chunk that carried it"
    assert [(t.offset, t.key) for t in sorted(tags.values(), key=lambda t: t.offset)] == [
        (0, "frame"), (3, "gain"), (777, "iq"), (999, "cfg"), (1234, "rx_time"), (50000, "freq"), (99_999, "eob")]
    assert all(t.srcid == "gr" for t in tags.values())
    assert tags["frame"].value == 7
    assert tags["gain"].value == 1.5 - 2j
    np.testing.assert_array_equal(tags["iq"].value, np.array([1j, 2], np.complex64))
    assert tags["iq"].value.dtype == np.complex64
    assert tags["cfg"].value == {"mode": "fast"}
    secs, frac = tags["rx_time"].value
    assert isinstance(secs, UInt64) and secs == 1700000000 and frac == 0.25
    assert tags["freq"].value == 2.4e9
    assert tags["eob"].value is True
    assert not any(isinstance(t.value, Pair) for t in tags.values())
