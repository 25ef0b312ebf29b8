"""ZeroMQ endpoints: loopback-by-default binding, free ports, and the socket options we set.

Conventions
-----------
* Endpoints are ZeroMQ address strings: ``tcp://127.0.0.1:5555``, ``ipc:///tmp/x``, ``inproc://x``.
  ``tcp://127.0.0.1:*`` binds a free port chosen by the kernel; the socket's ``.endpoint`` then
  says which one.
* Binding is loopback-only unless the caller passes ``allow_remote=True``: :func:`check_bind_endpoint`
  refuses ``tcp://*:5555``, ``tcp://0.0.0.0:5555`` or a LAN address otherwise, and warns when a remote
  bind has no CURVE (links beyond the machine should be authenticated and encrypted).
* Connecting is not restricted: which host a client talks to is its configuration's business.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from urllib.parse import urlsplit

import zmq

log = logging.getLogger("mtsc_sdr.link")

#: Host used when a helper has to pick one.
LOOPBACK = "127.0.0.1"

# Reconnect and heartbeat settings for every socket we create (milliseconds). A connecting socket
# retries 100 ms after losing its peer, backing off to 2 s; ZMTP heartbeats every second find a
# peer that vanished without closing TCP (power loss, cable) within 5 s, so the reconnect starts.
RECONNECT_IVL_MS = 100
RECONNECT_IVL_MAX_MS = 2000
HEARTBEAT_IVL_MS = 1000
HEARTBEAT_TIMEOUT_MS = 5000
HEARTBEAT_TTL_MS = 10000
#: How long :func:`bind` retries a port that is still being released (seconds).
BIND_RETRY_S = 2.0


class NonLoopbackBindError(ValueError):
    """Refused to bind a non-loopback address without ``allow_remote=True``."""


def _host_of(endpoint: str) -> tuple[str, str]:
    """(transport, host) of a ZeroMQ endpoint; host is '' for ipc/inproc."""
    transport, sep, rest = endpoint.partition("://")
    if not sep:
        raise ValueError(f"not a ZeroMQ endpoint (want e.g. tcp://127.0.0.1:5555): {endpoint!r}")
    if transport not in ("tcp", "ipc", "inproc"):
        raise ValueError(f"unsupported transport {transport!r} in endpoint {endpoint!r} (tcp, ipc, inproc)")
    if transport != "tcp":
        return transport, ""
    # tcp://[iface;]host:port ; urlsplit understands [::1]:port
    hostport = rest.split(";")[-1]
    parts = urlsplit("//" + hostport)
    host = parts.hostname if parts.hostname is not None else hostport.rsplit(":", 1)[0]
    if hostport.rsplit(":", 1)[0] == "*":
        host = "*"
    return transport, host


def is_loopback_endpoint(endpoint: str) -> bool:
    """True for ipc/inproc endpoints and tcp endpoints on a loopback address or ``localhost``."""
    transport, host = _host_of(endpoint)
    if transport != "tcp":
        return True
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', interface names, DNS names: not provably loopback


def check_bind_endpoint(endpoint: str, *, allow_remote: bool = False, encrypted: bool = False) -> str:
    """Validate an endpoint we are about to bind; returns it unchanged.

    Raises :class:`NonLoopbackBindError` for a non-loopback address unless ``allow_remote``; with
    ``allow_remote`` but without CURVE (``encrypted=False``) it logs a warning instead.
    """
    if is_loopback_endpoint(endpoint):
        return endpoint
    if not allow_remote:
        raise NonLoopbackBindError(
            f"refusing to bind {endpoint!r}: not a loopback address. Pass allow_remote=True to listen "
            "beyond this machine (and consider CURVE: curve=CurveServer(...))."
        )
    if not encrypted:
        log.warning("binding %s beyond loopback without CURVE: traffic is unauthenticated and in clear", endpoint)
    return endpoint


def free_tcp_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free on ``host`` a moment ago (the kernel picks it).

    For peers that must be told a port before they bind (GNU Radio's push_sink). Our own sockets
    can bind ``tcp://127.0.0.1:*`` instead, which has no race.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_tcp_endpoint(host: str = LOOPBACK) -> str:
    """``tcp://host:PORT`` with a port from :func:`free_tcp_port`."""
    h = f"[{host}]" if ":" in host else host
    return f"tcp://{h}:{free_tcp_port(host)}"


def set_common_options(sock: zmq.Socket, *, linger_ms: int) -> None:
    """Reconnect back-off, ZMTP heartbeats and linger, identical on every socket we make."""
    sock.setsockopt(zmq.LINGER, int(linger_ms))
    sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
    sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
    sock.setsockopt(zmq.HEARTBEAT_TTL, HEARTBEAT_TTL_MS)


def bind(sock: zmq.Socket, endpoint: str, *, allow_remote: bool = False, encrypted: bool = False,
         retry_s: float = BIND_RETRY_S) -> str:
    """Bind after :func:`check_bind_endpoint`; returns the endpoint actually bound (port resolved).

    ZeroMQ closes sockets asynchronously, so re-binding a port that a socket of this process has
    just closed can fail with EADDRINUSE for a moment: that is retried for up to ``retry_s``.
    """
    check_bind_endpoint(endpoint, allow_remote=allow_remote, encrypted=encrypted)
    deadline = time.monotonic() + retry_s
    while True:
        try:
            sock.bind(endpoint)
            break
        except zmq.ZMQError as e:
            if e.errno != zmq.EADDRINUSE or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)
    last = sock.getsockopt(zmq.LAST_ENDPOINT)
    return last.decode() if isinstance(last, bytes) else str(last)
