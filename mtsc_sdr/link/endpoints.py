"""ZeroMQ endpoints: loopback-by-default binding, free ports, and the socket options we set.

Conventions
-----------
* Endpoints are ZeroMQ address strings: ``tcp://127.0.0.1:5555``, ``ipc:///tmp/x``, ``inproc://x``.
  ``tcp://127.0.0.1:*`` binds a free port chosen by the kernel; the socket's ``.endpoint`` then
  says which one.
* Secure by default beyond loopback (:func:`check_bind_endpoint`, the one rule every process that
  binds follows): a loopback endpoint (127.0.0.0/8, ``::1``, ``localhost``, a host name that resolves
  only to loopback, ``ipc://``, ``inproc://``) needs nothing; anything else (``*``, ``0.0.0.0``, a LAN
  address, a host name that resolves elsewhere) needs CURVE server keys (``curve=CurveServer(...)``;
  on the command line ``--curve-keys``, from ``mtsc-sdr keys create``), or ``insecure=True``
  (``--insecure``), which binds in clear and logs a loud warning. Otherwise
  :class:`NonLoopbackBindError` says how to fix it. ``allow_remote`` (``--allow-remote``) is the
  deprecated name of ``insecure``.
* Connecting is not restricted: which host a client talks to is its configuration's business.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
import warnings
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
    """Refused to bind beyond loopback without CURVE and without ``insecure=True``."""


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


def _is_loopback_host(host: str) -> bool:
    if host in ("localhost", "lo"):             # the name, and Linux's loopback interface
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        mapped = getattr(address, "ipv4_mapped", None)
        return address.is_loopback or (mapped is not None and mapped.is_loopback)
    if host == "*":
        return False
    try:                                        # a host name: loopback only if every address is
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False                            # interface names, unresolvable names: not provably loopback
    addresses = {info[4][0].split("%", 1)[0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def is_loopback_endpoint(endpoint: str) -> bool:
    """True for ipc/inproc endpoints and tcp endpoints on a loopback address, ``localhost``, or a
    host name that resolves only to loopback addresses."""
    transport, host = _host_of(endpoint)
    if transport != "tcp":
        return True
    return _is_loopback_host(host)


def deprecated_allow_remote(allow_remote: bool) -> bool:
    """``allow_remote=True``, the old name of ``insecure=True``: warns (DeprecationWarning) and says True."""
    if allow_remote:
        warnings.warn("allow_remote is deprecated: it is the same as insecure=True", DeprecationWarning, stacklevel=3)
    return bool(allow_remote)


def check_bind_endpoint(endpoint: str, *, insecure: bool = False, encrypted: bool = False,
                        curve_possible: bool = True, allow_remote: bool = False) -> str:
    """Validate an endpoint we are about to bind (the rule in the module docstring); returns it unchanged.

    Args:
        insecure: bind beyond loopback without CURVE (logs a loud warning).
        encrypted: the socket is a CURVE server: it may bind anywhere.
        curve_possible: whether this socket can use CURVE at all (False for sockets whose peers
            are GNU Radio's gr-zeromq blocks); only changes the advice in the error.
        allow_remote: deprecated name of ``insecure``.

    Raises:
        NonLoopbackBindError: beyond loopback, without CURVE and without ``insecure``.
    """
    insecure = insecure or deprecated_allow_remote(allow_remote)
    if is_loopback_endpoint(endpoint) or encrypted:
        return endpoint
    if not insecure:
        if curve_possible:
            why, fix = "has no CURVE authentication or encryption", (
                "create a CURVE key pair (`mtsc-sdr keys create NAME`) and pass it (--curve-keys NAME; in Python "
                "curve=CurveServer(...)), its peers then connect with --curve-server-key NAME.key; or bind a loopback "
                "address (tcp://127.0.0.1:PORT)")
        else:
            why, fix = "this socket has no CURVE (its peer may be a GNU Radio gr-zeromq block)", (
                "bind a loopback address (tcp://127.0.0.1:PORT), run its peer on this machine and cross between "
                "machines on a CURVE link (the base station's --control, a software channel's --out with --curve-keys)")
        raise NonLoopbackBindError(
            f"refusing to bind {endpoint!r}: it is reachable beyond this machine and {why}. Fix: {fix}; or say "
            "--insecure (insecure=True) to accept unauthenticated traffic in clear.")
    log.warning("INSECURE: %s is bound beyond loopback without CURVE (--insecure): anyone who reaches it can "
                "connect, inject and read its traffic in clear", endpoint)
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


def bind(sock: zmq.Socket, endpoint: str, *, insecure: bool = False, encrypted: bool = False,
         retry_s: float = BIND_RETRY_S, curve_possible: bool = True) -> str:
    """Bind after :func:`check_bind_endpoint`; returns the endpoint actually bound (port resolved).

    ZeroMQ closes sockets asynchronously, so re-binding a port that a socket of this process has
    just closed can fail with EADDRINUSE for a moment: that is retried for up to ``retry_s``.
    """
    check_bind_endpoint(endpoint, insecure=insecure, encrypted=encrypted, curve_possible=curve_possible)
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
