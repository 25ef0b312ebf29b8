"""ZeroMQ links: IQ sample streams compatible with GNU Radio's gr-zeromq, and tensor/control messages.

* :mod:`.iq` - :class:`IQPush` (binds PUSH) / :class:`IQPull` (connects PULL): raw complex64,
  optional gr-zeromq tag headers (:mod:`.tags`, PMTs via :mod:`.pmtcodec`).
* :mod:`.messages` - :class:`MessageServer` (ROUTER, binds) / :class:`MessageClient` (DEALER,
  connects): versioned JSON header + raw tensor frames, sequence tracking, no pickle.
* :mod:`.drain` - :class:`IQDrain`: a reader thread draining IQ streams into bounded queues that
  drop their oldest chunks, counted, when the consumer falls behind (the sender is never blocked).
* :mod:`.curve` - CURVE authentication and encryption; :mod:`.keys` - its key files and the
  allow-list (``mtsc-sdr keys``, :mod:`.cli`); :mod:`.security` - the ``--curve-*`` / ``--insecure``
  options of every process that binds or connects.
* :mod:`.endpoints` - secure by default beyond loopback (the one bind rule), free ports, common socket options.
* :mod:`.alloc` - opt-in malloc tuning for processes streaming MiB-sized messages.
"""

from .alloc import tune_allocator_for_streaming
from .curve import CurveClient, CurveKeyPair, CurveServer, curve_keypair, load_keypair
from .endpoints import (
    NonLoopbackBindError,
    check_bind_endpoint,
    free_tcp_endpoint,
    free_tcp_port,
    is_loopback_endpoint,
)
from .drain import IQDrain
from .iq import IQChunk, IQPull, IQPush, IQSendTimeout, IQStats
from .messages import LinkTimeout, Message, MessageClient, MessageServer, MessageStats, PeerUnreachable
from .pmtcodec import Pair, PMTDecodeError, UInt64
from .tags import Tag, TagHeaderError, decode_tag_header, encode_tag_header

__all__ = [
    "CurveClient", "CurveKeyPair", "CurveServer", "curve_keypair", "load_keypair",
    "NonLoopbackBindError", "check_bind_endpoint", "free_tcp_endpoint", "free_tcp_port", "is_loopback_endpoint",
    "IQDrain", "IQChunk", "IQPull", "IQPush", "IQSendTimeout", "IQStats",
    "LinkTimeout", "Message", "MessageClient", "MessageServer", "MessageStats", "PeerUnreachable",
    "Pair", "PMTDecodeError", "UInt64",
    "Tag", "TagHeaderError", "decode_tag_header", "encode_tag_header",
    "tune_allocator_for_streaming",
]
