"""The command line starts without the heavy libraries: `mtsc-sdr --help`, every command's
`--help` and the processes that move samples (channel, run, link test) never import torch or
transformers; they come in only where a model runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers")

# Runs in a fresh interpreter: this test process has torch in sys.modules already.
PROBE = """
import importlib, json, sys
from mtsc_sdr import cli
parser, subparsers = cli.build_parser()
for name, (module, _) in cli.COMMANDS.items():
    importlib.import_module(module).add_arguments(subparsers[name])
for module in ("mtsc_sdr.runtime.channel", "mtsc_sdr.runtime.run", "mtsc_sdr.runtime.link_test",
               "mtsc_sdr.model.checkpoint"):
    importlib.import_module(module)
print(json.dumps({name: name in sys.modules for name in %r}))
""" % (HEAVY,)


def test_parser_and_fast_paths_import_neither_torch_nor_transformers():
    root = str(Path(__file__).resolve().parents[1])          # this checkout's mtsc_sdr, first on the path
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True,
                         cwd=root, env=env)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {name: False for name in HEAVY}
