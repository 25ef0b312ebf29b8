"""CURVE key files and the allow-list: what ``mtsc-sdr keys`` writes and the processes read.

Files are ``zmq.auth`` certificates (``zmq.auth.load_certificate`` reads them):

* a keypair ``NAME`` is ``DIR/NAME.key`` (public key only: the file to copy to the peers) and
  ``DIR/NAME.key_secret`` (public and secret key; mode 0600, never leaves the machine);
* the **allow-list** of a server is a directory of public ``.key`` files, one per admitted
  client (``zmq.auth``'s own layout, ``configure_curve(location=DIR)``): ``mtsc-sdr keys allow``
  copies a client's key in, ``revoke`` deletes it. :class:`AllowListDir` re-reads the directory
  whenever it changes, so a revoked client is refused from its next connection on, without a
  restart.

The keys directory is ``--dir``, else ``$MTSC_KEYS_DIR``, else ``~/.config/mtsc-sdr/keys``
(:func:`keys_dir`); the allow-list is ``DIR/allowed`` unless given. Wherever a process takes a key
(:func:`read_keypair`, :func:`read_public_key`) it accepts a path, or a bare ``NAME`` looked up in
the keys directory; a public key may also be given as its 40 characters of Z85 text.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass
from pathlib import Path

from zmq.utils import z85

from .curve import CurveKeyPair, curve_keypair

#: Environment variable naming the default keys directory.
KEYS_DIR_ENV = "MTSC_KEYS_DIR"
#: The allow-list's directory inside the keys directory (the default of ``--allow-dir``).
ALLOWED_SUBDIR = "allowed"
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")
_BANNER = ("#   ****  Generated on {now} by mtsc-sdr keys  ****\n"
           "#   ZeroMQ CURVE {what} Certificate (zmq.auth format)\n"
           "#   {advice}\n\n")


class KeyFileError(ValueError):
    """A key name, file or Z85 text that cannot be used; the message says which and why."""


def keys_dir(directory: str | os.PathLike | None = None) -> Path:
    """``directory``, else ``$MTSC_KEYS_DIR``, else ``~/.config/mtsc-sdr/keys``."""
    if directory:
        return Path(directory).expanduser()
    env = os.environ.get(KEYS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".config" / "mtsc-sdr" / "keys"


def allow_dir(directory: str | os.PathLike | None = None, keys: str | os.PathLike | None = None) -> Path:
    """The allow-list directory: ``directory``, else ``<keys_dir(keys)>/allowed``."""
    return Path(directory).expanduser() if directory else keys_dir(keys) / ALLOWED_SUBDIR


def check_name(name: str) -> str:
    """A key name usable as a file name (letters, digits, ``_ . @ -``; not starting with ``.`` or ``-``)."""
    if not _NAME.fullmatch(name or ""):
        raise KeyFileError(f"key name {name!r}: use letters, digits and _ . @ - (at most 64, not starting "
                           "with . or -)")
    return name


def check_z85_key(key: str | bytes, what: str = "key") -> bytes:
    """A 40-character Z85 CURVE key as bytes; KeyFileError otherwise."""
    raw = key.encode("ascii", "replace") if isinstance(key, str) else bytes(key)
    try:
        ok = len(raw) == 40 and len(z85.decode(raw)) == 32
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise KeyFileError(f"{what} {raw[:60]!r} is not a CURVE key (40 characters of Z85 text)")
    return raw


def _write_cert(path: Path, public: bytes, secret: bytes | None, *, force: bool) -> None:
    """Write a zmq.auth certificate; a secret one is created 0600 (never world-readable, not even
    for a moment); an existing file is replaced only with ``force`` (atomically)."""
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists (give --force to replace it)")
    what, advice = (("Secret", "Keep this file private: it is the key pair itself.") if secret is not None else
                    ("Public", "Give this file to the peers that must know this key."))
    text = _BANNER.format(now=datetime.datetime.now().isoformat(timespec="seconds"), what=what, advice=advice)
    text += f'metadata\ncurve\n    public-key = "{public.decode()}"\n'
    if secret is not None:
        text += f'    secret-key = "{secret.decode()}"\n'
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret is not None else 0o644)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)              # fails if someone created it meanwhile: never overwrite
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class KeyInfo:
    """One key file in a directory: ``name``, its ``public`` key (Z85 text), whether the secret
    is present, and the file holding it (the ``.key_secret`` when present, else the ``.key``)."""

    name: str
    public: str
    secret: bool
    path: str

    def as_dict(self) -> dict:
        return {"name": self.name, "public_key": self.public, "secret": self.secret, "path": self.path}


def create_keypair(directory: str | os.PathLike, name: str, *, force: bool = False) -> KeyInfo:
    """A fresh keypair in ``directory/NAME.key`` and ``NAME.key_secret`` (0600; the directory is
    made 0700 when new). FileExistsError unless ``force`` when either file exists."""
    check_name(name)
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    public_path, secret_path = directory / (name + PUBLIC_SUFFIX), directory / (name + SECRET_SUFFIX)
    if not force:
        for path in (public_path, secret_path):
            if path.exists():
                raise FileExistsError(f"{path} exists (give --force to replace the key pair {name!r})")
    pair = curve_keypair()
    _write_cert(secret_path, pair.public, pair.secret, force=force)
    _write_cert(public_path, pair.public, None, force=force)
    return KeyInfo(name, pair.public.decode(), True, str(secret_path))


def _load(path: Path) -> tuple[bytes, bytes | None]:
    import zmq.auth  # only where key files are read

    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a readable CURVE certificate ({exc})") from None
    check_z85_key(public, f"{path}: public key")
    if secret is not None:
        check_z85_key(secret, f"{path}: secret key")
    return public, secret


def list_keys(directory: str | os.PathLike) -> list[KeyInfo]:
    """Every key in ``directory`` (``NAME.key`` and/or ``NAME.key_secret``), sorted by name; files
    that are not certificates are skipped. An absent directory has none."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    names = sorted({p.name[:-len(suf)] for suf in (PUBLIC_SUFFIX, SECRET_SUFFIX)
                    for p in directory.glob("*" + suf) if not p.name.startswith(".")})
    out = []
    for name in names:
        secret_path, public_path = directory / (name + SECRET_SUFFIX), directory / (name + PUBLIC_SUFFIX)
        path = secret_path if secret_path.exists() else public_path
        try:
            public, secret = _load(path)
        except KeyFileError:
            continue
        out.append(KeyInfo(name, public.decode(), secret is not None, str(path)))
    return out


def read_keypair(spec: str | os.PathLike, directory: str | os.PathLike | None = None) -> CurveKeyPair:
    """The keypair named by ``spec``: a ``NAME.key_secret`` path, that path without the suffix, or
    a bare ``NAME`` in :func:`keys_dir` (``directory``)."""
    text = str(spec)
    candidates = [Path(text).expanduser()]
    if not text.endswith(SECRET_SUFFIX):
        base = text[:-len(PUBLIC_SUFFIX)] if text.endswith(PUBLIC_SUFFIX) else text
        candidates.insert(0, Path(base + SECRET_SUFFIX).expanduser())
    if os.sep not in text and _NAME.fullmatch(text):
        candidates.append(keys_dir(directory) / (text + SECRET_SUFFIX))
    for path in candidates:
        if path.is_file():
            public, secret = _load(path)
            if secret is None:
                raise KeyFileError(f"{path} holds only a public key; this needs the key pair ({SECRET_SUFFIX} file)")
            return CurveKeyPair(public, secret)
    raise KeyFileError(f"no CURVE key pair {text!r} (looked for {', '.join(str(p) for p in candidates)}); "
                       "create one with `mtsc-sdr keys create NAME`")


def read_public_key(spec: str | os.PathLike, directory: str | os.PathLike | None = None) -> bytes:
    """The public key named by ``spec``: 40 characters of Z85 text, a ``.key`` / ``.key_secret``
    file, or a bare ``NAME`` in :func:`keys_dir` (``directory``)."""
    text = str(spec)
    if len(text) == 40 and not Path(text).exists():
        try:
            return check_z85_key(text)
        except KeyFileError:
            pass
    candidates = [Path(text).expanduser()]
    if os.sep not in text and _NAME.fullmatch(text):
        d = keys_dir(directory)
        candidates += [d / (text + PUBLIC_SUFFIX), d / (text + SECRET_SUFFIX)]
    for path in candidates:
        if path.is_file():
            return _load(path)[0]
    raise KeyFileError(f"no CURVE public key {text!r}: give its 40 characters of Z85 text, its .key file, or "
                       f"a NAME in {keys_dir(directory)}")


def allow(directory: str | os.PathLike, key: str, *, name: str | None = None, force: bool = False,
          keys: str | os.PathLike | None = None) -> KeyInfo:
    """Admit a client: write its public key into the allow-list ``directory`` as ``NAME.key``.
    ``key``: Z85 text, a key file, or a NAME in the keys directory ``keys``; ``name`` defaults to
    the file's or NAME's name (required for Z85 text). A key already listed under another name
    is an error (one key, one name)."""
    public = read_public_key(key, keys)
    if name is None:
        if len(key) == 40 and not Path(key).exists():
            raise KeyFileError("give --name for a key given as Z85 text")
        base = Path(key).name
        for suffix in (SECRET_SUFFIX, PUBLIC_SUFFIX):
            if base.endswith(suffix):
                base = base[:-len(suffix)]
        name = base
    check_name(name)
    directory = Path(directory)
    for info in list_keys(directory):
        if info.public == public.decode() and info.name != name:
            raise KeyFileError(f"that key is already allowed as {info.name!r}")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / (name + PUBLIC_SUFFIX)
    if path.exists() and not force and _load(path)[0] == public:
        return KeyInfo(name, public.decode(), False, str(path))          # already there: nothing to do
    _write_cert(path, public, None, force=force)
    return KeyInfo(name, public.decode(), False, str(path))


def revoke(directory: str | os.PathLike, name_or_key: str) -> list[KeyInfo]:
    """Remove a client from the allow-list ``directory``, by name or by its Z85 public key; the
    entries removed (KeyFileError when none matched)."""
    gone = [info for info in list_keys(directory) if name_or_key in (info.name, info.public)]
    if not gone:
        raise KeyFileError(f"{name_or_key!r} is not in the allow-list {directory}")
    for info in gone:
        Path(info.path).unlink()
    return gone


class AllowListDir:
    """The allow-list directory as a container of Z85 public keys (``key in allow_list``), read
    again whenever the directory changes (a key allowed or revoked while the server runs counts
    from the next connection on). FileNotFoundError when the directory does not exist."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"allow-list {self.directory} is not a directory (`mtsc-sdr keys allow` makes it)")
        self._stamp: tuple | None = None
        self._keys: frozenset[bytes] = frozenset()
        self._reload()

    def _reload(self) -> None:
        try:                                # the files and their times: a change within one clock tick shows too
            stamp = (self.directory.stat().st_mtime_ns,
                     tuple(sorted((e.name, e.stat().st_mtime_ns) for e in os.scandir(self.directory)
                                  if e.name.endswith(PUBLIC_SUFFIX))))
        except OSError:                     # removed: nobody is admitted
            self._stamp, self._keys = None, frozenset()
            return
        if stamp != self._stamp:
            self._keys = frozenset(info.public.encode() for info in list_keys(self.directory))
            self._stamp = stamp

    @property
    def keys(self) -> frozenset[bytes]:
        self._reload()
        return self._keys

    def __contains__(self, key: object) -> bool:
        return key in self.keys

    def __len__(self) -> int:
        return len(self.keys)


__all__ = ["ALLOWED_SUBDIR", "AllowListDir", "KEYS_DIR_ENV", "KeyFileError", "KeyInfo", "allow", "allow_dir",
           "check_name", "check_z85_key", "create_keypair", "keys_dir", "list_keys", "read_keypair",
           "read_public_key", "revoke"]
