"""The Flower ServerApp of federated split fine-tuning: rounds and checked aggregation.

``main`` reads the run configuration (:mod:`.runconfig`), builds the initial global state from the
task module (``task.trainable_state(task.build_model(run_config))``: float32 arrays by state-dict
key, the client-side trainable tensors only), and runs :class:`~.strategy.CheckedFedAvg` for
``num-server-rounds`` rounds: each round one train phase (replies checked, the accepted ones
averaged) and one evaluate phase on the new global state.

Outputs (paths from the run config; "" = not written):

* ``report-path``: JSON ``{"rounds": [...], "num_rounds", "trainable_params", "trainable_bytes",
  "keys", "run_config"}``; per round (:meth:`~.strategy.RoundRecord.as_dict`): for ``train`` and
  ``evaluate`` the sampled nodes, ``accepted`` / ``rejected`` (with reasons) / ``absent``, each
  client's metrics, example count, update norm and bytes up, the aggregated metrics, bytes of
  model state down and up, and ``bytes_model_updates`` for the round. Written when the run ends,
  also when it fails (then with ``"error"``).
* ``state-out``: the final global state as safetensors (float32 tensors by key).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from .runconfig import load_task, resolve
from .strategy import CheckedFedAvg, encode


def make_server_app(run_config: dict[str, Any] | None = None) -> ServerApp:
    """A ServerApp whose run configuration is ``run_config`` under Flower's ``context.run_config``
    (:func:`.runconfig.resolve`)."""
    app = ServerApp()
    baked = dict(run_config or {})

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run(grid, resolve(baked, context.run_config))

    return app


def make_strategy(config: dict[str, Any]) -> CheckedFedAvg:
    """The strategy the run config describes."""
    min_nodes = int(config["min-nodes"])
    bound = float(config["max-update-norm"])
    return CheckedFedAvg(
        fraction_train=float(config["fraction-train"]), fraction_evaluate=float(config["fraction-evaluate"]),
        min_train_nodes=min_nodes, min_evaluate_nodes=min_nodes, min_available_nodes=min_nodes,
        max_update_norm=bound if bound > 0 else math.inf, max_examples=int(config["max-examples"]))


def run(grid: Grid, config: dict[str, Any]) -> CheckedFedAvg:
    """Run the federation on ``grid`` with the resolved run ``config``; returns the strategy (its
    ``rounds`` and ``global_state``)."""
    task = load_task(config)
    initial = {k: np.asarray(v) for k, v in task.trainable_state(task.build_model(config)).items()}
    strategy = make_strategy(config)
    strategy.set_global_arrays(encode(initial))
    error = None
    try:
        strategy.start(grid=grid, initial_arrays=strategy.global_arrays,
                       num_rounds=int(config["num-server-rounds"]), timeout=float(config["round-timeout-s"]),
                       train_config=ConfigRecord(), evaluate_config=ConfigRecord())
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if config["report-path"]:
            write_report(Path(str(config["report-path"])), strategy, initial, config, error)
    if config["state-out"]:
        save_state(Path(str(config["state-out"])), strategy.global_state)
    return strategy


def report(strategy: CheckedFedAvg, initial: dict[str, np.ndarray], config: dict[str, Any],
           error: str | None = None) -> dict[str, Any]:
    """The report of a run (see the module docstring)."""
    out: dict[str, Any] = {
        "num_rounds": len(strategy.rounds),
        "rounds": [r.as_dict() for r in strategy.rounds],
        "keys": list(initial),
        "trainable_params": int(sum(v.size for v in initial.values())),
        "trainable_bytes": int(sum(v.nbytes for v in initial.values())),
        "run_config": dict(config),
    }
    if error is not None:
        out["error"] = error
    return out


def write_report(path: Path, strategy: CheckedFedAvg, initial: dict[str, np.ndarray],
                 config: dict[str, Any], error: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report(strategy, initial, config, error), indent=1) + "\n")
    tmp.replace(path)


def save_state(path: Path, state: dict[str, np.ndarray]) -> None:
    """``state`` as a safetensors file (tensors by key)."""
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(path))


def load_state(path: Path) -> dict[str, np.ndarray]:
    """A state written by :func:`save_state`."""
    from safetensors.numpy import load_file

    return load_file(str(path))


#: The app Flower loads: ``mtsc_sdr.finetune.server_app:app`` (run config from Flower alone).
app = make_server_app()

__all__ = ["app", "load_state", "make_server_app", "make_strategy", "report", "run", "save_state"]
