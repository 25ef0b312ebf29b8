"""CURVE key files, the allow-list directory and ``mtsc-sdr keys`` (mtsc_sdr/link/keys.py, cli.py),
and the --curve-* / --insecure options every process shares (mtsc_sdr/link/security.py)."""

from __future__ import annotations

import argparse
import json
import os
import stat

import pytest
import zmq
import zmq.auth

from mtsc_sdr.cli import main
from mtsc_sdr.link import CurveClient, MessageClient, MessageServer, NonLoopbackBindError
from mtsc_sdr.link.keys import (
    AllowListDir,
    KeyFileError,
    allow,
    create_keypair,
    list_keys,
    read_keypair,
    read_public_key,
    revoke,
)
from mtsc_sdr.link.security import add_security_arguments, security_from_args


def handshake(ctx, endpoint: str, curve: CurveClient, timeout_ms: int = 5000) -> str:
    """Connect a CURVE client socket to ``endpoint`` and name its first handshake event (monitored
    from before the connect, so none is missed): ZeroMQ reports success, or an authentication
    failure with the server's ZAP status, deterministically."""
    from zmq.utils.monitor import recv_monitor_message

    from mtsc_sdr.link.curve import apply_curve

    sock = ctx.socket(zmq.DEALER)
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                      | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
    try:
        apply_curve(sock, curve)
        sock.connect(endpoint)
        assert monitor.poll(timeout_ms), "no handshake event"
        return zmq.Event(recv_monitor_message(monitor)["event"]).name
    finally:
        sock.disable_monitor()
        monitor.close(0)
        sock.close(0)


def test_create_writes_zmq_auth_files_with_a_private_secret_and_never_overwrites(tmp_path):
    info = create_keypair(tmp_path / "keys", "bs")
    public, secret = zmq.auth.load_certificate(str(tmp_path / "keys" / "bs.key_secret"))
    assert zmq.auth.load_certificate(str(tmp_path / "keys" / "bs.key")) == (public, None)
    assert info.public == public.decode() and zmq.curve_public(secret) == public
    assert stat.S_IMODE(os.stat(tmp_path / "keys" / "bs.key_secret").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "keys").st_mode) == 0o700
    with pytest.raises(FileExistsError, match="--force"):
        create_keypair(tmp_path / "keys", "bs")
    assert zmq.auth.load_certificate(str(tmp_path / "keys" / "bs.key_secret")) == (public, secret)
    again = create_keypair(tmp_path / "keys", "bs", force=True)
    assert again.public != info.public
    assert stat.S_IMODE(os.stat(tmp_path / "keys" / "bs.key_secret").st_mode) == 0o600
    with pytest.raises(KeyFileError, match="key name"):
        create_keypair(tmp_path / "keys", "../evil")


def test_keys_are_found_by_path_or_name_and_public_keys_as_z85_too(tmp_path, monkeypatch):
    monkeypatch.setenv("MTSC_KEYS_DIR", str(tmp_path))
    info = create_keypair(tmp_path, "bs")
    for spec in ("bs", str(tmp_path / "bs"), str(tmp_path / "bs.key_secret")):
        assert read_keypair(spec).public.decode() == info.public
    for spec in ("bs", str(tmp_path / "bs.key"), info.public):
        assert read_public_key(spec).decode() == info.public
    (tmp_path / "bs.key_secret").unlink()
    with pytest.raises(KeyFileError, match="only a public key|mtsc-sdr keys create"):
        read_keypair(str(tmp_path / "bs.key"))
    with pytest.raises(KeyFileError, match="mtsc-sdr keys create"):
        read_keypair("nobody")
    with pytest.raises(KeyFileError, match="Z85"):
        read_public_key("short")
    assert [(k.name, k.secret) for k in list_keys(tmp_path)] == [("bs", False)]


def test_allow_list_directory_is_re_read_when_it_changes(tmp_path):
    laptop, jetson = create_keypair(tmp_path, "laptop"), create_keypair(tmp_path, "jetson")
    allowed_dir = tmp_path / "allowed"
    allow(allowed_dir, str(tmp_path / "laptop.key"))
    listed = AllowListDir(allowed_dir)
    assert laptop.public.encode() in listed and jetson.public.encode() not in listed
    allow(allowed_dir, jetson.public, name="jetson")
    assert jetson.public.encode() in listed and len(listed) == 2
    with pytest.raises(KeyFileError, match="already allowed as 'jetson'"):
        allow(allowed_dir, jetson.public, name="other")
    with pytest.raises(KeyFileError, match="--name"):
        allow(allowed_dir, jetson.public)
    assert [g.name for g in revoke(allowed_dir, laptop.public)] == ["laptop"]
    assert laptop.public.encode() not in listed and len(listed) == 1
    with pytest.raises(KeyFileError, match="not in the allow-list"):
        revoke(allowed_dir, "laptop")
    # zmq.auth reads the same directory
    assert set(zmq.auth.load_certificates(str(allowed_dir))) == {jetson.public.encode()}


def test_keys_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MTSC_KEYS_DIR", str(tmp_path))
    assert main(["keys", "create", "bs"]) == 0
    assert main(["keys", "create", "laptop", "--json"]) == 0
    created = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert created["rows"][0]["name"] == "laptop" and created["rows"][0]["secret"] is True
    assert main(["keys", "create", "bs"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["keys", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["name"], r["secret"], len(r["public_key"])) for r in rows] == [("bs", True, 40), ("laptop", True, 40)]
    assert main(["keys", "allow", "laptop"]) == 0
    assert main(["keys", "allowed", "--json"]) == 0
    allowed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert allowed["meta"]["dir"] == str(tmp_path / "allowed")
    assert [(r["name"], r["public_key"], r["secret"]) for r in allowed["rows"]] == [("laptop", rows[1]["public_key"], False)]
    assert main(["keys", "revoke", "laptop"]) == 0
    assert main(["keys", "allowed"]) == 0
    assert "no keys" in capsys.readouterr().out
    assert main(["keys", "list", "--dir", str(tmp_path / "elsewhere")]) == 0


def _parse(argv, **kw):
    p = argparse.ArgumentParser()
    add_security_arguments(p, **kw)
    return security_from_args(p.parse_args(argv))


def test_security_options(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MTSC_KEYS_DIR", str(tmp_path))
    bs, laptop = create_keypair(tmp_path, "bs"), create_keypair(tmp_path, "laptop")
    allow(tmp_path / "allowed", "laptop")
    sec = _parse(["--curve-keys", "bs", "--curve-allow", str(tmp_path / "allowed")], binds="--control", connects="--rx")
    assert sec.server.keypair.public.decode() == bs.public and laptop.public.encode() in sec.server.allowed_clients
    assert sec.client is None and not sec.insecure
    sec = _parse(["--curve-server-key", "bs", "--curve-keys", "laptop"], binds="--tx", connects="--control",
                 curve_binds=False)
    assert sec.server is None and sec.client.server_public.decode() == bs.public
    assert sec.client.keypair.public.decode() == laptop.public
    assert _parse(["--insecure"], binds="--out").insecure
    with caplog.at_level("WARNING", logger="mtsc_sdr.link"):
        assert _parse(["--allow-remote"], binds="--out").insecure
    assert "deprecated" in caplog.text
    with pytest.raises(ValueError, match="--curve-allow needs --curve-keys"):
        _parse(["--curve-allow", str(tmp_path / "allowed")], binds="--control")
    with pytest.raises(FileNotFoundError, match="allow-list"):
        _parse(["--curve-keys", "bs", "--curve-allow", str(tmp_path / "none")], binds="--control")
    with pytest.raises(NonLoopbackBindError, match="GNU Radio"):
        _parse([], binds="--tx", curve_binds=False).check_plain_bind("tcp://0.0.0.0:5555")


def test_server_beyond_loopback_with_key_files_admits_only_the_allow_list(tmp_path, ctx):
    """A control server bound on every interface with keys from `mtsc-sdr keys` files, reached over
    loopback: the listed client talks, an unlisted one and one with the wrong server key are refused."""
    create_keypair(tmp_path, "bs")
    create_keypair(tmp_path, "laptop")
    create_keypair(tmp_path, "stranger")
    allow(tmp_path / "allowed", str(tmp_path / "laptop.key"))
    sec = _parse(["--curve-keys", str(tmp_path / "bs"), "--curve-allow", str(tmp_path / "allowed")], binds="--control")
    server = MessageServer("tcp://0.0.0.0:*", curve=sec.server, linger_ms=0)
    port = server.endpoint.rsplit(":", 1)[1]
    server_key = read_public_key(str(tmp_path / "bs.key"))
    endpoint = f"tcp://127.0.0.1:{port}"
    good = MessageClient(endpoint, session=1, context=ctx, linger_ms=0,
                         curve=CurveClient(server_key, read_keypair(str(tmp_path / "laptop"))))
    try:
        good.send("hello", meta={"x": 1})
        msg = server.recv(timeout_ms=5000)
        assert msg is not None and msg.kind == "hello" and msg.meta == {"x": 1}
        laptop, stranger = read_keypair(str(tmp_path / "laptop")), read_keypair(str(tmp_path / "stranger"))
        assert handshake(ctx, endpoint, CurveClient(server_key, laptop)) == "HANDSHAKE_SUCCEEDED"
        assert handshake(ctx, endpoint, CurveClient(server_key, stranger)) == "HANDSHAKE_FAILED_AUTH"
        assert handshake(ctx, endpoint, CurveClient(stranger.public, laptop)) != "HANDSHAKE_SUCCEEDED"
    finally:
        good.close()
        server.close()
