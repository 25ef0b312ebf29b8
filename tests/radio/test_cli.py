"""The ``mtsc-sdr flowgraph`` command line (list, errors, a run until interrupted, a failure) with
the stand-in flowgraph."""

from __future__ import annotations

import argparse
import json
import sys

from mtsc_sdr.radio import cli as radio_cli
from mtsc_sdr.radio.flowgraph import Flowgraph


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

EXPECTED = {"sim_channel", "pluto_tx", "pluto_rx", "usrp_tx", "usrp_rx"}


def _cli(argv: list[str]) -> argparse.Namespace:
    from mtsc_sdr.cli import build_parser

    parser, subparsers = build_parser()
    radio_cli.add_arguments(subparsers["flowgraph"])
    return parser.parse_args(["flowgraph", *argv])


def test_cli_list(capsys):
    assert radio_cli.run(_cli(["--list"])) == 0
    out = capsys.readouterr().out
    for name in EXPECTED:
        assert f"{name}: " in out
    assert "--snr-db" in out and "--rx-gain-db" in out
    assert radio_cli.run(_cli(["sim_channel", "--list", "--json"])) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["sim_channel"] and data["sim_channel"]["params"]["snr_db"]["option"] == "--snr-db"


def test_cli_errors(capsys):
    assert radio_cli.run(_cli(["sim_channel", "--bogus", "3"])) == 2
    assert "has no parameter 'bogus'" in capsys.readouterr().err
    assert radio_cli.run(_cli(["sim_channel", "--snr-db", "loud"])) == 2
    assert "snr_db: expected a number, got 'loud'" in capsys.readouterr().err
    assert radio_cli.run(_cli(["nope"])) == 2
    assert "no flowgraph named 'nope'" in capsys.readouterr().err
    assert radio_cli.run(_cli([])) == 2
    assert "no flowgraph NAME given" in capsys.readouterr().err


def test_flowgraph_binds_beyond_loopback_only_when_told_insecure(capsys, caplog):
    """gr-zeromq has no CURVE: a push_sink address beyond loopback is refused before anything starts,
    with the way out; --insecure (also after NAME) lets it bind, with a loud warning."""
    assert radio_cli.run(_cli(["sim_channel", "--out-addr", "tcp://0.0.0.0:5556"])) == 2
    err = capsys.readouterr().err
    assert "refusing to bind 'tcp://0.0.0.0:5556'" in err and "--insecure" in err and "GNU Radio" in err
    args = _cli(["sim_channel", "--out-addr", "tcp://0.0.0.0:5556", "--insecure"])
    radio_cli._take_launcher_options(args, list(args.params), set(Flowgraph("sim_channel").spec.params))
    assert args.insecure
    with caplog.at_level("WARNING", logger="mtsc_sdr.link"):
        Flowgraph("sim_channel", {"out_addr": "tcp://0.0.0.0:5556"}, insecure=True)   # constructed, not started
        Flowgraph("pluto_rx", {"out-addr": "tcp://127.0.0.1:5556"})
    assert "INSECURE" in caplog.text and caplog.text.count("INSECURE") == 1


def test_cli_runs_until_interrupted(fake_dir, capsys, monkeypatch):
    """Foreground run: launcher options may follow NAME; Ctrl-C stops it cleanly (exit 0)."""
    calls = {"n": 0}
    real_wait = Flowgraph.wait

    def wait_then_interrupt(self, timeout_s=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_wait(self, 0.05)

    monkeypatch.setattr(Flowgraph, "wait", wait_then_interrupt)
    args = _cli(["fake", "--n", "2k", "--python", sys.executable, "--stop-timeout-s", "2"])
    assert args.python is None  # taken from after NAME by the launcher
    assert radio_cli.run(args) == 0
    err = capsys.readouterr().err
    assert "fake running (pid" in err and "fake stopped" in err and "[fake] stopping on signal 2" in err


def test_cli_reports_failure(fake_dir, capsys):
    assert radio_cli.run(_cli(["fake", "--mode", "crash", "--python", sys.executable])) == 1
    err = capsys.readouterr().err
    assert "exited with code 1 during startup: ValueError: n must be positive" in err
    assert radio_cli.run(_cli(["fake", "--mode", "die_later", "--python", sys.executable, "--quiet"])) == 3
    err = capsys.readouterr().err
    assert "exited unexpectedly with code 3" in err and "RuntimeError: device vanished" in err
