"""``mtsc-sdr keys``: CURVE key pairs and the allow-list of client keys (see :mod:`.keys`).

::

    mtsc-sdr keys create NAME [--dir DIR] [--force]        # DIR/NAME.key (public) + NAME.key_secret (0600)
    mtsc-sdr keys list [--dir DIR]                         # name, public key, whether the secret is here
    mtsc-sdr keys allow KEY [--name NAME] [--allow-dir D]  # KEY: a .key file, Z85 text or NAME in --dir
    mtsc-sdr keys revoke NAME|KEY [--allow-dir D]
    mtsc-sdr keys allowed [--allow-dir D]                  # the allow-list

``--dir`` defaults to ``$MTSC_KEYS_DIR``, else ``~/.config/mtsc-sdr/keys``; ``--allow-dir`` to
``<dir>/allowed``. Each action takes ``--json`` (one object: ``meta`` and ``rows``, one record
``{"name", "public_key", "secret", "path"}`` per key). Errors (a bad name or key, a file that
exists without ``--force``) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from mtsc_sdr.options import add_json

from .keys import KeyFileError, KeyInfo, allow, allow_dir, create_keypair, keys_dir, list_keys, revoke

ACTIONS = ("create", "list", "allow", "revoke", "allowed")


def add_arguments(p: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", metavar="DIR", help="the keys directory (default: $MTSC_KEYS_DIR, else "
                        "~/.config/mtsc-sdr/keys)")
    add_json(common)
    allow_common = argparse.ArgumentParser(add_help=False)
    allow_common.add_argument("--allow-dir", metavar="DIR", help="the allow-list directory, what the base station's "
                              "--curve-allow reads (default: DIR/allowed of --dir)")
    sub = p.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    c = sub.add_parser("create", parents=[common], help="create a key pair NAME.key + NAME.key_secret",
                       description="Create a CURVE key pair: DIR/NAME.key (public: copy it to the peers) and "
                                   "DIR/NAME.key_secret (mode 0600: keep it on this machine).")
    c.add_argument("name", metavar="NAME")
    c.add_argument("--force", action="store_true", help="replace an existing key pair of that name")
    sub.add_parser("list", parents=[common], help="the keys in the directory: name, public key, secret present")
    a = sub.add_parser("allow", parents=[common, allow_common], help="admit a client's public key",
                       description="Add a client's public key to the allow-list (a directory of .key files).")
    a.add_argument("key", metavar="KEY", help="the client's .key file, its 40-character Z85 public key, or a NAME in --dir")
    a.add_argument("--name", help="name of the entry (default: the key file's name; required for Z85 text)")
    a.add_argument("--force", action="store_true", help="replace an entry of that name holding another key")
    r = sub.add_parser("revoke", parents=[common, allow_common], help="remove a client from the allow-list")
    r.add_argument("key", metavar="NAME|KEY", help="the entry's name or its Z85 public key")
    sub.add_parser("allowed", parents=[common, allow_common], help="the allow-list: the client keys admitted")


def _print(args: argparse.Namespace, rows: list[KeyInfo], where: str, text: str) -> None:
    if args.json:
        print(json.dumps({"meta": {"command": f"keys {args.keys_action}", "dir": where},
                          "rows": [r.as_dict() for r in rows]}))
    else:
        print(text)


def _table(rows: list[KeyInfo], where: str) -> str:
    if not rows:
        return f"no keys in {where}"
    width = max(len(r.name) for r in rows)
    lines = [f"{'name':<{width}}  {'public key (Z85)':<40}  secret"]
    lines += [f"{r.name:<{width}}  {r.public:<40}  {'yes' if r.secret else 'no'}" for r in rows]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    directory = keys_dir(args.dir)
    allowed = allow_dir(getattr(args, "allow_dir", None), args.dir)
    try:
        if args.keys_action == "create":
            info = create_keypair(directory, args.name, force=args.force)
            _print(args, [info], str(directory),
                   f"created {directory / (args.name + '.key')} (public: give it to the peers) and\n"
                   f"        {info.path} (secret, mode 0600: keep it here)\npublic key: {info.public}")
        elif args.keys_action == "list":
            rows = list_keys(directory)
            _print(args, rows, str(directory), _table(rows, str(directory)))
        elif args.keys_action == "allow":
            info = allow(allowed, args.key, name=args.name, force=args.force, keys=args.dir)
            _print(args, [info], str(allowed), f"allowed {info.name}: {info.public} ({info.path})")
        elif args.keys_action == "revoke":
            gone = revoke(allowed, args.key)
            _print(args, gone, str(allowed), "\n".join(f"revoked {g.name}: {g.public}" for g in gone))
        else:
            rows = list_keys(allowed)
            _print(args, rows, str(allowed), _table(rows, str(allowed)))
    except (KeyFileError, OSError) as exc:
        print(f"mtsc-sdr keys {args.keys_action}: {exc}", file=sys.stderr)
        return 2
    return 0
