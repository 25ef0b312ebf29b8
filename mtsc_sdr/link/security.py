"""The command-line side of secure-by-default links: one set of options, declared here once, for
every process that binds or connects ZeroMQ sockets (``bs``, the fine-tuning station, ``channel``,
``client``, the link test's transmitter; the GNU Radio launcher takes ``--insecure`` only).

The rule (:func:`~mtsc_sdr.link.endpoints.check_bind_endpoint`): binding a loopback endpoint needs
nothing; binding beyond loopback needs CURVE server keys or ``--insecure``.

* ``--curve-keys KEYPAIR``: this process's key pair (``mtsc-sdr keys create NAME``; ``NAME`` in the
  keys directory or the ``NAME.key_secret`` path). What the process binds then speaks CURVE with
  it (anywhere, loopback too: its peers need ``--curve-server-key``), and it is this process's
  identity towards a server with an allow-list. Sockets whose peers may be GNU Radio's gr-zeromq
  blocks (a client's ``--tx``, the link test's transmitter) have no CURVE: for them it is the
  identity only.
* ``--curve-allow DIR``: admit only the client keys in this allow-list directory
  (``mtsc-sdr keys allow``; re-read when it changes).
* ``--curve-server-key KEY``: the public key of the server this process connects to (Z85 text, a
  ``.key`` file, or ``NAME`` in the keys directory): that connection speaks CURVE and refuses an
  impostor.
* ``--insecure``: bind beyond loopback without CURVE (a loud warning). ``--allow-remote`` is its
  deprecated name.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from .curve import CurveClient, CurveKeyPair, CurveServer
from .endpoints import check_bind_endpoint
from .keys import AllowListDir, read_keypair, read_public_key

log = logging.getLogger("mtsc_sdr.link")


@dataclass(frozen=True)
class LinkSecurity:
    """How a process secures its sockets (see the module docstring).

    Attributes:
        server: CURVE server role for what it binds (None: plain, loopback only unless ``insecure``).
        client: CURVE client role for what it connects to (None: plain).
        insecure: bind beyond loopback without CURVE.
        keypair: the process's own key pair (``--curve-keys``), if any.
    """

    server: CurveServer | None = None
    client: CurveClient | None = None
    insecure: bool = False
    keypair: CurveKeyPair | None = None

    def check_plain_bind(self, endpoint: str) -> str:
        """The rule for a socket that has no CURVE (its peers may be GNU Radio): loopback, or ``insecure``."""
        return check_bind_endpoint(endpoint, insecure=self.insecure, curve_possible=False)


class _DeprecatedAllowRemote(argparse.Action):
    """``--allow-remote``: sets ``insecure`` and remembers that the old name was used."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.insecure = True
        namespace.allow_remote_deprecated = True


def add_security_arguments(p: argparse.ArgumentParser, *, binds: str | None, connects: str | None = None,
                           curve_binds: bool = True) -> None:
    """Add the options of the module docstring for a process that binds ``binds`` (an option name
    such as ``--control``; None: binds nothing) and connects ``connects``; ``curve_binds=False``
    for a bound socket without CURVE (GNU Radio peers)."""
    g = p.add_argument_group("link security (secure by default beyond loopback; `mtsc-sdr keys`)")
    if curve_binds or connects:
        roles = []
        if binds and curve_binds:
            roles.append(f"{binds} speaks CURVE with it (its peers need --curve-server-key NAME.key)")
        if connects:
            roles.append(f"it identifies this process to a {connects} server that has an allow-list")
        g.add_argument("--curve-keys", metavar="KEYPAIR",
                       help="this process's CURVE key pair (`mtsc-sdr keys create NAME`): NAME in the keys directory "
                            "or the NAME.key_secret path; " + "; ".join(roles))
    if binds and curve_binds:
        g.add_argument("--curve-allow", metavar="DIR",
                       help=f"with --curve-keys: admit on {binds} only the client public keys in this allow-list "
                            "directory (*.key files: `mtsc-sdr keys allow`); re-read when it changes")
    if connects:
        g.add_argument("--curve-server-key", metavar="KEY",
                       help=f"public key of the server {connects} reaches (40 characters of Z85 text, its .key "
                            "file, or NAME in the keys directory): that link speaks CURVE")
    if binds:
        g.add_argument("--insecure", action="store_true", default=False,
                       help=f"allow binding {binds} beyond loopback without CURVE: unauthenticated, in clear "
                            "(a warning is logged)")
        g.add_argument("--allow-remote", action=_DeprecatedAllowRemote, nargs=0, default=argparse.SUPPRESS,
                       help="deprecated: the same as --insecure")


def security_from_args(args: argparse.Namespace) -> LinkSecurity:
    """The :class:`LinkSecurity` the options of :func:`add_security_arguments` ask for.

    Raises:
        ValueError: a key that cannot be read (:class:`~mtsc_sdr.link.keys.KeyFileError`), or
            ``--curve-allow`` without ``--curve-keys``. FileNotFoundError: no such allow-list directory.
    """
    if getattr(args, "allow_remote_deprecated", False):
        log.warning("--allow-remote is deprecated: it is the same as --insecure")
    keys_spec = getattr(args, "curve_keys", None)
    allow_spec = getattr(args, "curve_allow", None)
    server_key = getattr(args, "curve_server_key", None)
    if allow_spec and not keys_spec:
        raise ValueError("--curve-allow needs --curve-keys (the server's own key pair)")
    keypair = read_keypair(keys_spec) if keys_spec else None
    server = None
    if keypair is not None and hasattr(args, "curve_allow"):     # this process binds with CURVE
        allowed = AllowListDir(allow_spec) if allow_spec else None
        if allowed is not None and not len(allowed):
            log.warning("allow-list %s is empty: every client will be refused", allow_spec)
        server = CurveServer(keypair, allowed)
    client = CurveClient(read_public_key(server_key), keypair) if server_key else None
    if keypair is not None and server is None and client is None:
        log.warning("--curve-keys is used only with --curve-server-key here: nothing uses CURVE")
    return LinkSecurity(server=server, client=client, insecure=bool(getattr(args, "insecure", False)), keypair=keypair)


__all__ = ["LinkSecurity", "add_security_arguments", "security_from_args"]
