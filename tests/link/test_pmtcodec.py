"""PMT codec and gr-zeromq tag header: golden bytes from GNU Radio 3.10.5 (``pmt.serialize_str``)
so compatibility is checked even where GNU Radio is absent, plus a live cross-check when present."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from mtsc_sdr.link import pmtcodec
from mtsc_sdr.link.pmtcodec import Pair, PMTDecodeError, UInt64
from mtsc_sdr.link.tags import Tag, TagHeaderError, decode_tag_header, encode_tag_header

# (python value, hex of GNU Radio 3.10.5's pmt.serialize_str of the same PMT)
GOLDEN = [
    (True, "00"),
    (False, "01"),
    ("rx_time", "02000772785f74696d65"),
    (5, "0300000005"),
    (-5, "03fffffffb"),
    (2**40, "0d0000010000000000"),
    (UInt64(2**63 + 5), "0b8000000000000005"),
    (1.5, "043ff8000000000000"),
    (1 + 2j, "053ff00000000000004000000000000000"),
    (None, "06"),
    (Pair("a", 1), "07020001610300000001"),
    ((UInt64(1), 0.5), "0c000000020b0000000000000001043fe0000000000000"),
    ((), "0c00000000"),
    (["x", 3], "0800000002020001780300000003"),
    (Pair(None, np.array([1, 2], np.uint8)), "07060a000000000201000102"),
]
# dict {k: 1, j: 2.0} built with dict_add(k) then dict_add(j): GNU Radio lists the newest first
GOLDEN_DICT = ({"j": 2.0, "k": 1}, "09070200016a04400000000000000009070200016b030000000106")
GOLDEN_UVEC = [
    (np.array([1 + 1j, 2 - 1j], np.complex64), "0a0a0000000201003f8000003f80000040000000bf800000"),
    (np.array([1.0, 2.0], np.float32), "0a080000000201003f80000040000000"),
    (np.array([1, 2, 3], np.uint8), "0a00000000030100010203"),
    (np.array([-1, 2], np.int16), "0a03000000020100ffff0002"),
    (np.array([3.0], np.float64), "0a090000000101004008000000000000"),
    (np.array([3 + 1j], np.complex128), "0a0b00000001010040080000000000003ff0000000000000"),
    (np.array([7], np.uint64), "0a060000000101000000000000000007"),
    (np.array([-7], np.int32), "0a05000000010100fffffff9"),
    (np.array([-7], np.int8), "0a01000000010100f9"),
    (np.array([7], np.uint16), "0a020000000101000007"),
    (np.array([7], np.uint32), "0a0400000001010000000007"),
    (np.array([-7], np.int64), "0a07000000010100fffffffffffffff9"),
]
# One message from GNU Radio 3.10.5's push_sink(pass_tags=True): vector_source_c of
# complex(i, -i) for i in 0..9 with tag (offset 3, key frame, value 7, srcid src).
GR_PUSH_SINK_MESSAGE = (
    "f05f010000000000000000010000000000000003000000000000000200056672616d6503000000070200037372"
    "6300000000000000000000803f000080bf00000040000000c000004040000040c000008040000080c00000a040"
    "0000a0c00000c0400000c0c00000e0400000e0c000000041000000c100001041000010c1"
)


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, Pair):
        return isinstance(b, Pair) and _same(a.car, b.car) and _same(a.cdr, b.cdr)
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("value,hexbytes", GOLDEN + GOLDEN_UVEC, ids=lambda v: repr(v)[:20])
def test_pmt_matches_gnuradio_bytes(value, hexbytes):
    assert pmtcodec.dumps(value).hex() == hexbytes
    decoded, end = pmtcodec.loads(bytes.fromhex(hexbytes))
    assert end == len(hexbytes) // 2
    assert _same(decoded, value), (decoded, value)


def test_pmt_dict_matches_gnuradio_bytes():
    value, hexbytes = GOLDEN_DICT
    decoded, end = pmtcodec.loads(bytes.fromhex(hexbytes))
    assert decoded == value and end == len(hexbytes) // 2
    assert pmtcodec.dumps(value).hex() == hexbytes
    assert pmtcodec.dumps({}) == b"\x06"  # PMT's empty dict is nil


@pytest.mark.parametrize("bad", ["ff", "0e", "0200", "020005616263", "03000000", "0a0c0000000101000000",
                                 "0800000009", "07", "090300000001", "0aff00000000"])
def test_pmt_rejects_unknown_or_truncated(bad):
    with pytest.raises(PMTDecodeError):
        pmtcodec.loads(bytes.fromhex(bad))


def test_pmt_depth_is_bounded():
    deep = bytes([pmtcodec.T_PAIR]) * 10_000 + b"\x06" * 10_001
    with pytest.raises(PMTDecodeError, match="deeper"):
        pmtcodec.loads(deep)


def test_pmt_write_rejects_unmappable():
    with pytest.raises(TypeError):
        pmtcodec.dumps(object())
    with pytest.raises(ValueError):
        pmtcodec.dumps(2**64)
    with pytest.raises(ValueError):
        pmtcodec.dumps(np.zeros((2, 2), np.float32))


def test_tag_header_parses_gnuradio_push_sink_message():
    raw = bytes.fromhex(GR_PUSH_SINK_MESSAGE)
    offset, tags, hlen = decode_tag_header(raw)
    assert offset == 0
    assert tags == [Tag(3, "frame", 7, "src")]
    samples = np.frombuffer(raw[hlen:], np.complex64)
    np.testing.assert_array_equal(samples, np.array([complex(i, -i) for i in range(10)], np.complex64))
    # and we write byte-identical headers
    assert encode_tag_header(0, [Tag(3, "frame", 7, "src")]) == raw[:hlen]


def test_tag_header_rejects_bad_input():
    good = encode_tag_header(100, [Tag(101, "k", 1.0)])
    with pytest.raises(TagHeaderError, match="magic"):
        decode_tag_header(b"\x00\x00" + good[2:])
    with pytest.raises(TagHeaderError, match="version"):
        decode_tag_header(good[:2] + b"\x02" + good[3:])
    with pytest.raises(TagHeaderError, match="shorter"):
        decode_tag_header(good[:10])
    with pytest.raises(TagHeaderError):
        decode_tag_header(good[:-3])  # truncated PMT
    huge = good[:11] + (10**12).to_bytes(8, "little") + good[19:]
    with pytest.raises(TagHeaderError, match="claims"):
        decode_tag_header(huge)
    unknown_pmt = good[:27] + b"\xee" + good[28:]
    with pytest.raises(TagHeaderError, match="PMT"):
        decode_tag_header(unknown_pmt)


_GR_SERIALIZE = r"""
import json, sys, pmt
v = pmt.make_vector(2, pmt.PMT_NIL); pmt.vector_set(v, 0, pmt.intern("x")); pmt.vector_set(v, 1, pmt.from_long(3))
d = pmt.dict_add(pmt.dict_add(pmt.make_dict(), pmt.intern("gain_db"), pmt.from_double(-3.5)), pmt.intern("id"), pmt.from_long(9))
vals = {
  "rx_time": pmt.make_tuple(pmt.from_uint64(1700000000), pmt.from_double(0.125)),
  "big": pmt.from_long(-(2**40)), "cpx": pmt.from_complex(0.5 - 2j), "vec": v, "dict": d,
  "c32": pmt.init_c32vector(3, [1j, -1, 0.5 + 0.25j]), "pdu": pmt.cons(d, pmt.init_u8vector(2, [7, 8])),
}
out = {k: pmt.serialize_str(p).hex() for k, p in vals.items()}
mine = {k: pmt.write_string(pmt.deserialize_str(bytes.fromhex(h))) for k, h in json.loads(sys.argv[1]).items()}
print(json.dumps({"gr": out, "read_back": mine}))
"""


@pytest.mark.gnuradio
def test_pmt_cross_check_with_live_gnuradio(gr_python):
    ours = {
        "rx_time": (UInt64(1700000000), 0.125),
        "c32": np.array([1j, -1, 0.5 + 0.25j], np.complex64),
        "dict": {"id": 9, "gain_db": -3.5},
        "vec": ["x", 3],
    }
    arg = json.dumps({k: pmtcodec.dumps(v).hex() for k, v in ours.items()})
    proc = subprocess.run([gr_python, "-c", _GR_SERIALIZE, arg], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    gr = {k: pmtcodec.loads(bytes.fromhex(h))[0] for k, h in result["gr"].items()}
    assert _same(gr["rx_time"], (UInt64(1700000000), 0.125))
    assert gr["big"] == -(2**40) and gr["cpx"] == 0.5 - 2j and gr["vec"] == ["x", 3]
    assert gr["dict"] == {"id": 9, "gain_db": -3.5}
    np.testing.assert_array_equal(gr["c32"], np.array([1j, -1, 0.5 + 0.25j], np.complex64))
    assert isinstance(gr["pdu"], Pair) and gr["pdu"].car == {"id": 9, "gain_db": -3.5}
    np.testing.assert_array_equal(gr["pdu"].cdr, np.array([7, 8], np.uint8))
    # GNU Radio reads what we wrote
    back = result["read_back"]
    assert back["rx_time"] == "{1700000000 0.125}"
    assert back["vec"] == "#(x 3)"
    assert "id" in back["dict"] and "gain_db" in back["dict"]
    assert back["c32"].startswith("#[")
