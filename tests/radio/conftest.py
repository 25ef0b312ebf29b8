"""Fixtures of the radio tests: a stand-in flowgraph (a .grc file and a script run by this Python)
that the launcher and ``mtsc-sdr flowgraph`` tests start."""

from __future__ import annotations

import pytest

from mtsc_sdr.radio import flowgraph as fgmod


_FAKE_GRC = """\
options:
  parameters: {id: fake, title: Fake flowgraph, generate_options: no_gui, run_options: run}
  states: {coordinate: [8, 8], rotation: 0, state: enabled}
blocks:
- name: mode
  id: parameter
  parameters: {label: Behaviour, type: str, value: run}
  states: {coordinate: [8, 100], rotation: 0, state: enabled}
- name: n
  id: parameter
  parameters: {label: A number, type: eng_float, value: '1.0'}
  states: {coordinate: [8, 200], rotation: 0, state: enabled}
- name: announce_running
  id: snippet
  parameters: {section: main_after_start, priority: '0', code: "print('mtsc-sdr: flowgraph running', flush=True)"}
  states: {coordinate: [8, 300], rotation: 0, state: enabled}
connections: []
metadata: {file_format: 1}
"""

# Mimics a generated no_gui script: SIGINT/SIGTERM stop it with exit code 0.
_FAKE_PY = """\
import argparse, signal, sys, time
p = argparse.ArgumentParser()
p.add_argument("--mode", default="run")
p.add_argument("--n", type=float, default=1.0)
o = p.parse_args()
def stop(sig, frame):
    print("stopping on signal", sig, flush=True)
    sys.exit(0)
if o.mode == "crash":
    print("starting", flush=True)
    raise ValueError("n must be positive, got %g" % o.n)
signal.signal(signal.SIGINT, signal.SIG_IGN if o.mode in ("ignore_int", "stubborn") else stop)
signal.signal(signal.SIGTERM, signal.SIG_IGN if o.mode == "stubborn" else stop)
if o.mode != "silent":
    print("mtsc-sdr: flowgraph running", flush=True)
if o.mode == "die_later":
    time.sleep(0.3)
    print("RuntimeError: device vanished", file=sys.stderr, flush=True)
    sys.exit(3)
if o.mode == "finish":
    sys.exit(0)
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def fake_dir(tmp_path, monkeypatch):
    d = tmp_path / "flowgraphs"
    d.mkdir()
    (d / "fake.grc").write_text(_FAKE_GRC)
    (d / "fake.py").write_text(_FAKE_PY)
    monkeypatch.setenv(fgmod.DIR_ENV_VAR, str(d))
    return d
