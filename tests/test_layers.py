"""The import structure of ``mtsc_sdr``: the layer contract of ``pyproject.toml`` holds, and no
module imports itself back through others (imports inside functions count too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def test_the_layer_contract_holds():
    """``lint-imports`` (import-linter, configured in pyproject.toml) keeps every contract."""
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_module_level_import_cycle():
    """No module A imports B while B reaches A again (the contract's acyclic_siblings does not see a
    package's ``__init__`` importing back from its submodules; this does)."""
    graph = grimp.build_graph("mtsc_sdr", cache_dir=None)
    cycles = [" -> ".join((a, *graph.find_shortest_chain(importer=b, imported=a)))
              for a in sorted(graph.modules)
              for b in sorted(graph.find_modules_directly_imported_by(a))
              if graph.chain_exists(importer=b, imported=a)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
