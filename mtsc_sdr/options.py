"""Command-line options several commands share, declared once.

Each ``add_*`` adds one option to an ``argparse`` parser with the help text and default most
commands give it; a command whose option differs passes its own ``default`` / ``help``.
:func:`add_dataclass_options` generates options from a configuration dataclass whose fields carry
their help text in ``metadata["help"]`` (:class:`~mtsc_sdr.radio.links.LinkConfig`), so that help
lives once, in the field.

Layer 1: imports nothing from the package.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal, Optional, Union

CHECKPOINT_HELP = "checkpoint directory (default: the shipped model models/default, or $MTSC_MODELS/default when set)"
JSON_HELP = "print the report as one JSON object"
THREADS_HELP = "torch threads"
DATA_HELP = ("where examples come from, repeatable: 'builtin' (the default) and/or NAME=PATH, NAME one of vqav2, "
             "coco, cifar10, audiocaps, msrvtt in its official layout; each real set feeds its task, builtin the rest")


def add_checkpoint(p: argparse.ArgumentParser, help: str = CHECKPOINT_HELP, **kw: Any) -> None:
    """``--checkpoint DIR`` (default None: each command's own default, usually the default model)."""
    kw.setdefault("default", None)
    p.add_argument("--checkpoint", help=help, **kw)


def add_seed(p: argparse.ArgumentParser, default: Optional[int] = 0, help: Optional[str] = None, **kw: Any) -> None:
    """``--seed N``."""
    p.add_argument("--seed", type=int, default=default, help=help, **kw)


def add_threads(p: argparse.ArgumentParser, default: Optional[int] = 1, help: str = THREADS_HELP, **kw: Any) -> None:
    """``--threads N``: torch threads."""
    p.add_argument("--threads", type=int, default=default, help=help, **kw)


def add_data(p: argparse.ArgumentParser) -> None:
    """``--data NAME=PATH`` (repeatable; default None: the command's own, the built-in world)."""
    p.add_argument("--data", action="append", metavar="NAME=PATH", default=None, help=DATA_HELP)


def add_json(p: argparse.ArgumentParser, help: str = JSON_HELP) -> None:
    """``--json``: print one JSON object instead of the table."""
    p.add_argument("--json", action="store_true", help=help)


def option_kwargs(tp: Any) -> dict[str, Any]:
    """``type`` / ``choices`` of an option for a field annotated ``tp`` (Optional unwrapped; none
    for ``str``, argparse's default)."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is Literal:
        return {"choices": typing.get_args(tp)}
    return {} if tp is str else {"type": tp}


def add_dataclass_options(p: argparse.ArgumentParser, cls: type, names: Optional[Iterable[str]] = None,
                          **overrides: dict[str, Any]) -> None:
    """One ``--field-name`` option per field of dataclass ``cls`` (those in ``names``, in field
    order; default all): type or choices from the annotation, default from the field, help from
    ``metadata["help"]``. ``overrides[field]``: keyword arguments that replace those."""
    hints = typing.get_type_hints(cls)
    wanted = None if names is None else set(names)
    for f in dataclasses.fields(cls):
        if wanted is not None and f.name not in wanted:
            continue
        kw = {**option_kwargs(hints[f.name]), "default": f.default, "help": f.metadata.get("help"),
              **overrides.get(f.name, {})}
        p.add_argument("--" + f.name.replace("_", "-"), **kw)
