"""The run configuration of the Flower apps (:mod:`.server_app`, :mod:`.client_app`): its keys,
their defaults, and how an app finds its task module. No Flower import here.

Flower hands an app its run configuration as ``context.run_config``: in deployment from the app's
``pyproject.toml`` (``[tool.flwr.app.config]``, overridden by ``flwr run -c``), in the simulation
engine's Python API as nothing (:mod:`.federation` bakes the values into the app objects instead).
An app reads :func:`resolve` of both, so every key below always has a value. Values are TOML
scalars (bool, int, float, str), as Flower's run config allows; an empty string means "none".

The same dict goes to the task module's functions (``build_model(run_config)`` and so on), with
the task's own keys beside these: keys this module does not know pass through unchanged.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

#: The training base station's AdamW learning rate unless told otherwise (``mtsc-sdr finetune
#: --server-lr`` and the station's own ``--lr``); the clients' default (task key ``lr``) is the same.
SERVER_LR = 5e-4

#: Every key the apps read, with its default.
DEFAULTS: dict[str, bool | int | float | str] = {
    # module with build_model / trainable_state / load_trainable_state / local_train / evaluate
    "task-module": "mtsc_sdr.finetune.task",
    "num-server-rounds": 3,
    # sampling: fraction of connected nodes per round, and the minimum number that must be
    # connected (and sampled) before a round starts
    "fraction-train": 1.0,
    "fraction-evaluate": 1.0,
    "min-nodes": 2,
    # update checks (CheckedFedAvg): L2 norm bound of (client state - global state) over all
    # arrays, and the largest example count a client may claim
    "max-update-norm": 100.0,
    "max-examples": 1_000_000,
    # how long the server waits for a round's replies (s); a node silent by then is "absent"
    "round-timeout-s": 3600.0,
    # where the server writes its per-round report (JSON) and the final global state
    # (safetensors); "" = not written
    "report-path": "",
    "state-out": "",
}


def resolve(baked: dict[str, Any] | None, run_config: dict[str, Any] | None) -> dict[str, Any]:
    """The run configuration an app uses: :data:`DEFAULTS`, then ``baked`` (values the app object
    was made with), then Flower's ``context.run_config`` (wins)."""
    return {**DEFAULTS, **(baked or {}), **dict(run_config or {})}


def check_value(key: str, value: Any) -> None:
    """Raise ValueError naming ``key`` unless ``value`` is a TOML scalar Flower's run config takes."""
    if not isinstance(value, (bool, int, float, str)):
        raise ValueError(f"run config {key!r}: {type(value).__name__} is not a bool, int, float or str")


def load_task(run_config: dict[str, Any]) -> ModuleType:
    """Import the task module named by ``run_config["task-module"]``.

    Raises:
        ImportError: the module cannot be imported (its name is in the message).
        ValueError: it lacks one of the task functions.
    """
    name = str(run_config.get("task-module") or DEFAULTS["task-module"])
    module = importlib.import_module(name)
    missing = [f for f in TASK_FUNCTIONS if not callable(getattr(module, f, None))]
    if missing:
        raise ValueError(f"task module {name!r} lacks {', '.join(missing)}")
    return module


#: What a task module provides (see :mod:`mtsc_sdr.finetune.task`).
TASK_FUNCTIONS = ("build_model", "trainable_state", "load_trainable_state", "local_train", "evaluate")

__all__ = ["DEFAULTS", "TASK_FUNCTIONS", "check_value", "load_task", "resolve"]
