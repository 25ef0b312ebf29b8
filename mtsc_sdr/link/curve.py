"""Optional ZeroMQ CURVE: authentication and encryption for links beyond the machine.

The binding side is usually the CURVE *server* (it owns a long-term keypair and publishes its
public key); the connecting side is the *client* and must know the server's public key, so it
cannot be fooled by an impostor. The server optionally admits only listed client public keys;
that check runs in a ZAP handler thread on a context private to that socket.

Keys are Z85 text (40 characters), as made by :func:`curve_keypair` or ``zmq.auth`` certificate
files (:func:`load_keypair`). GNU Radio's gr-zeromq blocks have no CURVE option: use CURVE only
between our own processes.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from pathlib import Path

import zmq


@dataclass(frozen=True)
class CurveKeyPair:
    """A CURVE keypair in Z85 text (bytes of length 40 each)."""

    public: bytes
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        for name in ("public", "secret"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != 40:
                raise ValueError(f"CURVE {name} key must be 40 bytes of Z85 text, got {value!r:.60}")


def curve_keypair() -> CurveKeyPair:
    """A fresh random keypair (libzmq must be built with CURVE; pyzmq's wheels are)."""
    if not zmq.has("curve"):
        raise RuntimeError("this libzmq has no CURVE support")
    public, secret = zmq.curve_keypair()
    return CurveKeyPair(public, secret)


def load_keypair(path: str | Path) -> CurveKeyPair:
    """Read a ``zmq.auth`` certificate file (``*.key_secret`` for a full pair)."""
    import zmq.auth  # only for CURVE links; the IQ streams of the channel process import link/

    public, secret = zmq.auth.load_certificate(str(path))
    if secret is None:
        raise ValueError(f"{path} holds only a public key; a keypair needs the .key_secret file")
    return CurveKeyPair(public, secret)


@dataclass(frozen=True)
class CurveServer:
    """CURVE server role: our keypair, and optionally the only client public keys admitted
    (any container of Z85 keys: a frozenset, or :class:`~mtsc_sdr.link.keys.AllowListDir`, which
    re-reads its directory when it changes)."""

    keypair: CurveKeyPair
    allowed_clients: Container[bytes] | None = None


@dataclass(frozen=True)
class CurveClient:
    """CURVE client role: the server's public key, and our keypair (a fresh one when None)."""

    server_public: bytes
    keypair: CurveKeyPair | None = None


class _AllowList:
    def __init__(self, keys: Container[bytes]) -> None:
        self._keys = keys

    def callback(self, domain: str, key: bytes) -> bool:  # called by pyzmq's authenticator
        return key in self._keys


def context_for(curve: CurveServer | CurveClient | None, context: zmq.Context | None) -> tuple[zmq.Context, object | None, bool]:
    """Context to create a socket in, an authenticator to stop on close, and whether we own the context.

    A server with an allow-list gets a private context with its own ZAP handler, so several servers
    in one process do not share (or fight over) one.
    """
    if isinstance(curve, CurveServer) and curve.allowed_clients is not None:
        from zmq.auth.thread import ThreadAuthenticator

        ctx = zmq.Context()
        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve_callback("*", credentials_provider=_AllowList(curve.allowed_clients))
        return ctx, auth, True
    return (context or zmq.Context.instance()), None, False


class SocketOwner:
    """One ZeroMQ socket with the context and authenticator it may own; closes them in order.

    Subclasses set ``_sock``, ``_ctx``, ``_auth`` and ``_own_ctx`` (from :func:`context_for`).
    """

    _sock: zmq.Socket
    _ctx: zmq.Context
    _auth: object | None = None
    _own_ctx: bool = False

    @property
    def socket(self) -> zmq.Socket:
        """The underlying socket, for a :class:`zmq.Poller` that waits on several links at once
        (read from it only through this object's own ``recv`` methods)."""
        return self._sock

    def close(self, linger_ms: int | None = None) -> None:
        """Close the socket; queued messages get ``linger_ms`` (default: the socket's) to go out.

        When the context is this object's own, terminating it waits for them (bounded by linger).
        """
        sock = getattr(self, "_sock", None)
        if sock is not None and not sock.closed:
            sock.close(linger=linger_ms)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._own_ctx:
            self._ctx.term()
            self._own_ctx = False

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def apply_curve(sock: zmq.Socket, curve: CurveServer | CurveClient | None) -> None:
    """Set the CURVE socket options for the role (before bind/connect)."""
    if curve is None:
        return
    if isinstance(curve, CurveServer):
        sock.curve_secretkey = curve.keypair.secret
        sock.curve_publickey = curve.keypair.public
        sock.curve_server = True
    elif isinstance(curve, CurveClient):
        pair = curve.keypair or curve_keypair()
        if not isinstance(curve.server_public, bytes) or len(curve.server_public) != 40:
            raise ValueError("CurveClient.server_public must be the server's 40-byte Z85 public key")
        sock.curve_serverkey = curve.server_public
        sock.curve_publickey = pair.public
        sock.curve_secretkey = pair.secret
    else:
        raise TypeError(f"curve must be CurveServer, CurveClient or None, not {type(curve).__name__}")
