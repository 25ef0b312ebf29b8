"""A minimal reader and writer for GNU Radio's serialized PMTs (``pmt::serialize`` byte format).

Only what stream tags carry in practice, so gr-zeromq's ``pass_tags`` header can be read and
written without GNU Radio. Multi-byte numbers are big-endian on the wire.

===================  =====================  ==========================================
PMT                  type byte              Python value
===================  =====================  ==========================================
#t / #f              0x00 / 0x01            ``True`` / ``False``
symbol               0x02 + u16 len + utf8  ``str``
int32 / int64        0x03 / 0x0d            ``int`` (written as int32 when it fits)
uint64               0x0b                   :class:`UInt64` (an ``int``)
double               0x04                   ``float``
complex (2 doubles)  0x05                   ``complex``
nil                  0x06                   ``None`` (an empty dict is also nil in PMT)
pair                 0x07 car cdr           :class:`Pair`
vector               0x08 + u32 n           ``list``
dict                 0x09 (k . v) rest      ``dict``
uniform vector       0x0a t u32 n u8 pad    1-D ``numpy.ndarray`` (u8..s64, f32, f64, c32, c64)
tuple                0x0c + u32 n           ``tuple``
===================  =====================  ==========================================

Anything else (blobs, comments, unknown type bytes) raises :class:`PMTDecodeError`; since the
length of an unknown PMT cannot be known, a caller cannot skip past it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

T_TRUE, T_FALSE, T_SYMBOL, T_INT32, T_DOUBLE, T_COMPLEX, T_NULL = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
T_PAIR, T_VECTOR, T_DICT, T_UNIFORM_VECTOR, T_UINT64, T_TUPLE, T_INT64 = 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D

# uniform-vector element type byte -> big-endian numpy dtype
_UVEC_DTYPES: dict[int, np.dtype] = {
    0x00: np.dtype(">u1"), 0x01: np.dtype(">i1"), 0x02: np.dtype(">u2"), 0x03: np.dtype(">i2"),
    0x04: np.dtype(">u4"), 0x05: np.dtype(">i4"), 0x06: np.dtype(">u8"), 0x07: np.dtype(">i8"),
    0x08: np.dtype(">f4"), 0x09: np.dtype(">f8"), 0x0A: np.dtype(">c8"), 0x0B: np.dtype(">c16"),
}
_UVEC_CODES: dict[str, int] = {dt.newbyteorder("=").name: code for code, dt in _UVEC_DTYPES.items()}

MAX_DEPTH = 64

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")
_C128 = struct.Struct(">dd")


class PMTDecodeError(ValueError):
    """Bytes that are not a PMT this module understands (unknown type, truncated, too deep)."""


class UInt64(int):
    """An ``int`` that serializes as a PMT uint64 (e.g. the seconds of a UHD ``rx_time`` tuple)."""

    def __new__(cls, value: int) -> UInt64:
        if not 0 <= int(value) < 1 << 64:
            raise ValueError(f"uint64 out of range: {value}")
        return super().__new__(cls, value)

    def __repr__(self) -> str:
        return f"UInt64({int(self)})"


@dataclass(frozen=True)
class Pair:
    """A PMT pair (cons cell); GNU Radio PDUs are ``Pair(meta_dict, u8vector)``."""

    car: Any
    cdr: Any


# ------------------------------------------------------------------------------------------ read


def loads(buf: bytes | memoryview, offset: int = 0) -> tuple[Any, int]:
    """Decode one PMT from ``buf`` at ``offset``; returns (value, offset just past it)."""
    mv = buf if isinstance(buf, bytes) else memoryview(buf).cast("B")
    return _read(mv, offset, 0)


def _need(buf, pos: int, n: int) -> None:
    if n < 0 or pos + n > len(buf):
        raise PMTDecodeError(f"truncated PMT: need {n} bytes at {pos}, have {len(buf) - pos}")


def _read(buf, pos: int, depth: int) -> tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise PMTDecodeError(f"PMT nested deeper than {MAX_DEPTH}")
    _need(buf, pos, 1)
    t = buf[pos]
    pos += 1
    if t == T_TRUE:
        return True, pos
    if t == T_FALSE:
        return False, pos
    if t == T_NULL:
        return None, pos
    if t == T_SYMBOL:
        _need(buf, pos, 2)
        (n,) = _U16.unpack_from(buf, pos)
        pos += 2
        _need(buf, pos, n)
        try:
            return bytes(buf[pos:pos + n]).decode("utf-8"), pos + n
        except UnicodeDecodeError as e:
            raise PMTDecodeError(f"symbol is not UTF-8: {e}") from None
    if t == T_INT32:
        _need(buf, pos, 4)
        return _I32.unpack_from(buf, pos)[0], pos + 4
    if t == T_INT64:
        _need(buf, pos, 8)
        return _I64.unpack_from(buf, pos)[0], pos + 8
    if t == T_UINT64:
        _need(buf, pos, 8)
        return UInt64(_U64.unpack_from(buf, pos)[0]), pos + 8
    if t == T_DOUBLE:
        _need(buf, pos, 8)
        return _F64.unpack_from(buf, pos)[0], pos + 8
    if t == T_COMPLEX:
        _need(buf, pos, 16)
        re, im = _C128.unpack_from(buf, pos)
        return complex(re, im), pos + 16
    if t == T_PAIR:
        car, pos = _read(buf, pos, depth + 1)
        cdr, pos = _read(buf, pos, depth + 1)
        return Pair(car, cdr), pos
    if t in (T_VECTOR, T_TUPLE):
        _need(buf, pos, 4)
        (n,) = _U32.unpack_from(buf, pos)
        pos += 4
        if n > len(buf) - pos:  # every element takes at least one byte
            raise PMTDecodeError(f"PMT vector/tuple of {n} elements in {len(buf) - pos} bytes")
        items = []
        for _ in range(n):
            item, pos = _read(buf, pos, depth + 1)
            items.append(item)
        return (tuple(items) if t == T_TUPLE else items), pos
    if t == T_DICT:
        # 0x09, then the (key . value) pair, then the rest of the dict (another 0x09 ... or nil)
        out: dict[Any, Any] = {}
        while True:
            kv, pos = _read(buf, pos, depth + 1)
            if not isinstance(kv, Pair):
                raise PMTDecodeError("PMT dict entry is not a pair")
            try:
                out.setdefault(kv.car, kv.cdr)  # first occurrence is the newest in PMT's list
            except TypeError:
                raise PMTDecodeError(f"unhashable PMT dict key {kv.car!r:.40}") from None
            _need(buf, pos, 1)
            if buf[pos] == T_NULL:
                return out, pos + 1
            if buf[pos] != T_DICT:
                raise PMTDecodeError(f"PMT dict tail has type 0x{buf[pos]:02x}")
            pos += 1
            depth += 1
            if depth > MAX_DEPTH * 64:
                raise PMTDecodeError("PMT dict too long")
    if t == T_UNIFORM_VECTOR:
        _need(buf, pos, 6)
        code = buf[pos]
        (n,) = _U32.unpack_from(buf, pos + 1)
        npad = buf[pos + 5]
        pos += 6 + npad
        dt = _UVEC_DTYPES.get(code)
        if dt is None:
            raise PMTDecodeError(f"unknown PMT uniform-vector element type 0x{code:02x}")
        nbytes = n * dt.itemsize
        _need(buf, pos, nbytes)
        arr = np.frombuffer(bytes(buf[pos:pos + nbytes]), dtype=dt).astype(dt.newbyteorder("="))
        return arr, pos + nbytes
    raise PMTDecodeError(f"unsupported PMT type byte 0x{t:02x} at offset {pos - 1}")


# ----------------------------------------------------------------------------------------- write


def dumps(value: Any) -> bytes:
    """Serialize a Python value as a PMT (see the table in the module docstring)."""
    out = bytearray()
    _write(out, value, 0)
    return bytes(out)


def _write(out: bytearray, v: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"value nested deeper than {MAX_DEPTH}")
    if v is True or v is False or isinstance(v, np.bool_):
        out.append(T_TRUE if v else T_FALSE)
    elif v is None:
        out.append(T_NULL)
    elif isinstance(v, str):
        b = v.encode("utf-8")
        if len(b) > 0xFFFF:
            raise ValueError("PMT symbol longer than 65535 bytes")
        out.append(T_SYMBOL)
        out += _U16.pack(len(b)) + b
    elif isinstance(v, UInt64):
        out.append(T_UINT64)
        out += _U64.pack(int(v))
    elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        iv = int(v)
        if -(1 << 31) <= iv < 1 << 31:
            out.append(T_INT32)
            out += _I32.pack(iv)
        elif -(1 << 63) <= iv < 1 << 63:
            out.append(T_INT64)
            out += _I64.pack(iv)
        else:
            raise ValueError(f"integer {iv} does not fit a PMT int64 (use UInt64 for unsigned)")
    elif isinstance(v, (float, np.floating)):
        out.append(T_DOUBLE)
        out += _F64.pack(float(v))
    elif isinstance(v, (complex, np.complexfloating)):
        out.append(T_COMPLEX)
        out += _C128.pack(v.real, v.imag)
    elif isinstance(v, Pair):
        out.append(T_PAIR)
        _write(out, v.car, depth + 1)
        _write(out, v.cdr, depth + 1)
    elif isinstance(v, tuple):
        out.append(T_TUPLE)
        out += _U32.pack(len(v))
        for item in v:
            _write(out, item, depth + 1)
    elif isinstance(v, list):
        out.append(T_VECTOR)
        out += _U32.pack(len(v))
        for item in v:
            _write(out, item, depth + 1)
    elif isinstance(v, dict):
        if not v:
            out.append(T_NULL)  # PMT's empty dict is nil
            return
        for key, val in v.items():
            out.append(T_DICT)
            out.append(T_PAIR)
            _write(out, key, depth + 1)
            _write(out, val, depth + 1)
        out.append(T_NULL)
    elif isinstance(v, np.ndarray):
        if v.ndim != 1:
            raise ValueError("only 1-D arrays map to PMT uniform vectors")
        code = _UVEC_CODES.get(v.dtype.newbyteorder("=").name)
        if code is None:
            raise ValueError(f"no PMT uniform vector for dtype {v.dtype}")
        out.append(T_UNIFORM_VECTOR)
        out.append(code)
        out += _U32.pack(len(v))
        out += b"\x01\x00"  # one padding byte, as GNU Radio writes
        out += np.ascontiguousarray(v, dtype=_UVEC_DTYPES[code]).tobytes()
    else:
        raise TypeError(f"no PMT mapping for {type(v).__name__}")
