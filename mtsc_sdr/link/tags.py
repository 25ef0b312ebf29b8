"""gr-zeromq's ``pass_tags`` header: stream tags in front of the samples of one ZMQ message.

With ``pass_tags=True`` every message a gr-zeromq sink sends is ``header + samples`` in one frame,
and a gr-zeromq source expects the same. Header layout (GNU Radio 3.10, native little-endian
integers, then big-endian PMTs)::

    u16 magic = 0x5FF0 | u8 version = 1 | u64 offset | u64 ntags
    ntags x ( u64 tag offset | PMT key | PMT value | PMT srcid )

``offset`` is the sender's absolute stream position of the message's first sample; tag offsets are
absolute in the same stream. A receiver re-bases them onto its own stream position, as GNU Radio's
``pull_source`` does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Any, Iterable

from . import pmtcodec

MAGIC = 0x5FF0
VERSION = 1
_FIXED = struct.Struct("<HBQQ")  # magic, version, offset, ntags: 19 bytes
_U64 = struct.Struct("<Q")
_MIN_TAG_BYTES = 8 + 3  # offset + three one-byte PMTs


class TagHeaderError(ValueError):
    """A message whose tag header cannot be read (wrong magic/version, truncated, unknown PMT)."""


@dataclass(frozen=True)
class Tag:
    """A stream tag. ``offset`` is a sample index (see where the tag came from for its origin).

    ``key`` is a PMT symbol (``str``) in all GNU Radio blocks; ``srcid`` defaults to ``False``,
    GNU Radio's default (``pmt::PMT_F``).
    """

    offset: int
    key: Any
    value: Any = None
    srcid: Any = False

    def shifted(self, delta: int) -> Tag:
        return replace(self, offset=self.offset + delta)


def encode_tag_header(offset: int, tags: Iterable[Tag] = ()) -> bytes:
    """The header for a message whose first sample is at absolute stream position ``offset``."""
    tags = list(tags)
    parts = [_FIXED.pack(MAGIC, VERSION, offset, len(tags))]
    for tag in tags:
        if tag.offset < 0:
            raise ValueError(f"negative tag offset {tag.offset}")
        parts.append(_U64.pack(tag.offset))
        parts.append(pmtcodec.dumps(tag.key))
        parts.append(pmtcodec.dumps(tag.value))
        parts.append(pmtcodec.dumps(tag.srcid))
    return b"".join(parts)


def decode_tag_header(buf: bytes | memoryview) -> tuple[int, list[Tag], int]:
    """Parse a header at the start of ``buf``: (offset, tags with absolute offsets, header length).

    Raises :class:`TagHeaderError`. A PMT of a type we cannot read makes the header's length, and
    so where the samples start, unknowable: the caller must drop the whole message.
    """
    if not isinstance(buf, bytes):
        buf = memoryview(buf).cast("B")  # no copy of the samples that follow the header
    if len(buf) < _FIXED.size:
        raise TagHeaderError(f"message of {len(buf)} bytes is shorter than a tag header ({_FIXED.size})")
    magic, version, offset, ntags = _FIXED.unpack_from(buf, 0)
    if magic != MAGIC:
        raise TagHeaderError(f"bad tag header magic 0x{magic:04x} (want 0x{MAGIC:04x})")
    if version != VERSION:
        raise TagHeaderError(f"unknown tag header version {version} (know {VERSION})")
    if ntags > (len(buf) - _FIXED.size) // _MIN_TAG_BYTES:
        raise TagHeaderError(f"tag header claims {ntags} tags in {len(buf)} bytes")
    pos = _FIXED.size
    tags = []
    try:
        for _ in range(ntags):
            if pos + 8 > len(buf):
                raise TagHeaderError("tag header truncated")
            (tag_offset,) = _U64.unpack_from(buf, pos)
            key, pos = pmtcodec.loads(buf, pos + 8)
            value, pos = pmtcodec.loads(buf, pos)
            srcid, pos = pmtcodec.loads(buf, pos)
            tags.append(Tag(tag_offset, key, value, srcid))
    except pmtcodec.PMTDecodeError as e:
        raise TagHeaderError(f"tag PMT: {e}") from None
    return offset, tags, pos
