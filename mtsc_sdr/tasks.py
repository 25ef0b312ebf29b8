"""The task table: one :class:`TaskSpec` per task, and the registry every list of tasks reads.

A task is data, not code: which modality encoder reads its input, whether a question comes with it,
which output kind answers it, how it is scored and whether the separate-coding baseline covers it.
The code behind an output kind lives where its layer allows, keyed by the kind's name:

* its loss and decoder (torch): :mod:`mtsc_sdr.model.heads`;
* its metrics: :mod:`mtsc_sdr.metrics` (a registry of metric names);
* its result records and report scoring: :mod:`mtsc_sdr.runtime.outputs`;
* its examples: :mod:`mtsc_sdr.data.world` (a registry of example makers keyed by task name).

Adding a task: register its spec here (built-in tasks at the bottom of this module), an example
maker in :mod:`mtsc_sdr.data.world`, a head in :mod:`mtsc_sdr.model.heads` if its output kind is
new, and a metric in :mod:`mtsc_sdr.metrics` if none fits.

Usage::

    from mtsc_sdr import tasks
    tasks.names()                 # ('vqa', 'caption_image', 'caption_audio', 'caption_video', 'reconstruct')
    tasks.get("vqa").main_metric  # 'accuracy'
    tasks.get("vqa").id           # 0: what the frame header and ``task_ids`` tensors carry

This module imports nothing of the package but the standard library: every layer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Optional, TypeVar

T = TypeVar("T")

#: The frame header carries the task id in 4 bits (:mod:`mtsc_sdr.phy.header`).
MAX_TASK_ID = 15

#: Input modalities a modality encoder exists for (:meth:`mtsc_sdr.model.split.ClientModel.embed_inputs`).
MODALITIES = ("image", "audio", "video")


@dataclass(frozen=True)
class TaskSpec:
    """One task.

    Attributes:
        name: the task's name in reports and on the command line (DESIGN.md's task names).
        id: the integer the frame header (4 bits) and the model's ``task_ids`` (B,) int64 tensors
            carry; it indexes the model's per-task tables (task token, task queries), so a task's
            id never changes once checkpoints or recordings exist.
        modality: the input medium, one of :data:`MODALITIES`; it picks the modality encoder and
            the :class:`~mtsc_sdr.data.items.TaskExample` field that holds the input.
        output: the output kind (``text``: answers and captions, ``image``: reconstructions, or
            one registered later); it names the decoder head, the result record and the scoring.
        metrics: report metric names (:data:`mtsc_sdr.metrics.METRIC_UNITS`), in report order.
        main_metric: the one metric summaries and plots show (one of ``metrics``).
        question: the input comes with a question (VQA): it is encoded as text tokens after the
            modality tokens, and it is the text decoder's prompt.
        dense: the LAM decoder's task queries start from the received semantics, one query per
            token (output laid out like the input tokens: reconstruction); see
            :meth:`mtsc_sdr.model.split.ServerModel.queries`.
        no_baseline: why the separate-coding baseline has no rows for this task, or None when it
            covers it.
    """

    name: str
    id: int
    modality: str
    output: str
    metrics: tuple[str, ...]
    main_metric: str
    question: bool = False
    dense: bool = False
    no_baseline: Optional[str] = None

    def __post_init__(self):
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"TaskSpec.name: expected a word of letters, digits and _, got {self.name!r}")
        if not 0 <= self.id <= MAX_TASK_ID:
            raise ValueError(f"TaskSpec.id: must be in 0..{MAX_TASK_ID} (4 header bits), got {self.id}")
        if self.modality not in MODALITIES:
            raise ValueError(f"TaskSpec.modality: must be one of {list(MODALITIES)}, got {self.modality!r}")
        if self.main_metric not in self.metrics:
            raise ValueError(f"TaskSpec.main_metric: must be one of metrics {list(self.metrics)}, "
                             f"got {self.main_metric!r}")

    @property
    def modalities(self) -> tuple[str, ...]:
        """Every input the task reads: its modality, and ``text`` for the question."""
        return (self.modality, "text") if self.question else (self.modality,)


class Registry(Generic[T]):
    """Named entries in registration order, in the manner of Kaira's registries: ``register``,
    ``get`` with an error listing what exists, ``unregister`` (for tests that add their own).
    The task table below is one; output heads, metrics and example makers keep theirs."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under a new ``name``; returns it."""
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self.get(name)
        del self._entries[name]

    def get(self, name: str) -> T:
        """The entry of ``name``; ValueError listing the names there are when it is unknown."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.what} {name!r}; {self.what}s are {list(self._entries)}") from None

    def __contains__(self, name) -> bool:
        return name in self._entries

    def values(self) -> list[T]:
        return list(self._entries.values())


_TASKS: Registry[TaskSpec] = Registry("task")


def register(spec: TaskSpec) -> TaskSpec:
    """Add a task; its name and id must be new. Returns the spec."""
    taken = {s.id: s.name for s in _TASKS.values()}
    if spec.id in taken and spec.name not in _TASKS:
        raise ValueError(f"task id {spec.id} of {spec.name!r} is taken by {taken[spec.id]!r}")
    return _TASKS.register(spec.name, spec)


def unregister(name: str) -> None:
    """Remove a task (tests that register a task of their own)."""
    _TASKS.unregister(name)


def get(name: str) -> TaskSpec:
    """The spec of ``name``; ValueError listing the tasks there are when it is unknown."""
    return _TASKS.get(name)


def by_id(task_id: int) -> TaskSpec:
    """The spec whose :attr:`TaskSpec.id` is ``task_id``; ValueError when none is."""
    for spec in _TASKS.values():
        if spec.id == task_id:
            return spec
    raise ValueError(f"no task has id {task_id}; ids are {list(ids())}")


def specs() -> tuple[TaskSpec, ...]:
    """Every registered task, ordered by id."""
    return tuple(sorted(_TASKS.values(), key=lambda s: s.id))


def names() -> tuple[str, ...]:
    """Every registered task name, ordered by id."""
    return tuple(s.name for s in specs())


def ids() -> tuple[int, ...]:
    """Every registered task id, ascending."""
    return tuple(s.id for s in specs())


def table_size() -> int:
    """Rows of the model's per-task tables: the largest id + 1."""
    return max(ids()) + 1


def check_names(tasks) -> list[str]:
    """``tasks`` as a list, when each is a registered task name; ValueError naming the unknown ones
    and the tasks there are otherwise."""
    tasks = list(tasks)
    unknown = [t for t in tasks if t not in _TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; tasks are {list(names())}")
    return tasks


# -- the built-in tasks (ids are fixed: checkpoints and recordings carry them) -----------------------

_CAPTION = dict(output="text", metrics=("cider", "bleu"), main_metric="cider")

register(TaskSpec("vqa", 0, "image", "text", ("accuracy", "bleu"), "accuracy", question=True))
register(TaskSpec("caption_image", 1, "image", **_CAPTION))
register(TaskSpec("caption_audio", 2, "audio", **_CAPTION,
                  no_baseline="the separate-coding baseline has no audio codec"))
register(TaskSpec("caption_video", 3, "video", **_CAPTION,
                  no_baseline="the separate-coding baseline has no video codec"))
register(TaskSpec("reconstruct", 4, "image", "image", ("psnr_db", "ssim"), "psnr_db", dense=True))

__all__ = ["MAX_TASK_ID", "MODALITIES", "Registry", "TaskSpec", "by_id", "check_names", "get", "ids", "names", "register",
           "specs", "table_size", "unregister"]
